//! The go-ftw test format (CRS regression tests, ../shared/crs/tests), shared by the
//! in-process conformance test and the gateway runner (`tests/crs_gateway.rs`).
#![allow(dead_code)]

use serde::Deserialize;

#[derive(Deserialize)]
pub struct File {
    pub rule_id: u64,
    pub tests: Vec<Test>,
}

#[derive(Deserialize)]
pub struct Test {
    pub test_id: u64,
    pub stages: Vec<Stage>,
}

#[derive(Deserialize)]
pub struct Stage {
    pub input: Input,
    pub output: Output,
}

#[derive(Deserialize, Default)]
pub struct Input {
    pub method: Option<String>,
    pub uri: Option<String>,
    pub version: Option<String>,
    /// In file order: some tests depend on it.
    #[serde(default)]
    pub headers: serde_yaml::Mapping,
    pub data: Option<serde_yaml::Value>,
    pub encoded_request: Option<String>,
    pub autocomplete_headers: Option<bool>,
}

#[derive(Deserialize, Default)]
pub struct Output {
    #[serde(default)]
    pub log: Log,
    #[serde(default)]
    pub expect_error: Option<bool>,
    pub status: Option<serde_yaml::Value>,
}

#[derive(Deserialize, Default, Clone)]
pub struct Log {
    #[serde(default)]
    pub expect_ids: Vec<u64>,
    #[serde(default)]
    pub no_expect_ids: Vec<u64>,
    #[serde(default)]
    pub match_regex: Option<String>,
    #[serde(default)]
    pub no_match_regex: Option<String>,
}

pub fn yaml_text(v: &serde_yaml::Value) -> String {
    match v {
        serde_yaml::Value::String(s) => s.clone(),
        serde_yaml::Value::Sequence(items) => {
            items.iter().map(yaml_text).collect::<Vec<_>>().join("\r\n")
        }
        other => serde_yaml::to_string(other)
            .unwrap_or_default()
            .trim()
            .to_string(),
    }
}

impl Input {
    pub fn header_list(&self) -> Vec<(String, Vec<u8>)> {
        self.headers
            .iter()
            .map(|(k, v)| (yaml_text(k), yaml_text(v).into_bytes()))
            .collect()
    }

    pub fn body(&self) -> Vec<u8> {
        self.data
            .as_ref()
            .map(yaml_text)
            .unwrap_or_default()
            .into_bytes()
    }

    pub fn raw_request(&self) -> Option<Vec<u8>> {
        use base64::Engine;
        let enc = self.encoded_request.as_ref()?;
        // YAML may fold the base64 over several lines.
        let compact: String = enc.chars().filter(|c| !c.is_whitespace()).collect();
        base64::engine::general_purpose::STANDARD
            .decode(compact)
            .ok()
    }
}

impl Output {
    /// The statuses the test accepts (a number or a list), if it says.
    pub fn statuses(&self) -> Option<Vec<u16>> {
        let v = self.status.as_ref()?;
        Some(match v {
            serde_yaml::Value::Sequence(items) => items
                .iter()
                .filter_map(|i| yaml_text(i).parse().ok())
                .collect(),
            other => yaml_text(other).parse().ok().into_iter().collect(),
        })
    }
}

/// Whether the matched rule ids and the ModSecurity-style log lines satisfy the stage.
pub fn log_ok(l: &Log, ids: &[u64], log: &str) -> bool {
    let mut ok = l.expect_ids.iter().all(|i| ids.contains(i))
        && !l.no_expect_ids.iter().any(|i| ids.contains(i));
    if let Some(re) = &l.match_regex {
        ok &= regex::Regex::new(re)
            .map(|r| r.is_match(log))
            .unwrap_or(false);
    }
    if let Some(re) = &l.no_match_regex {
        ok &= !regex::Regex::new(re)
            .map(|r| r.is_match(log))
            .unwrap_or(true);
    }
    ok
}

/// One log line per matched rule, in ModSecurity's error-log format, which writes control
/// bytes as `\xHH` (a CR LF in matched data does not break the line).
pub fn log_line(id: u64, msg: &str, data: &str, severity: &str) -> String {
    let esc = |t: &str| {
        t.chars()
            .map(|c| {
                if c.is_control() {
                    format!("\\x{:02x}", c as u32)
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
    };
    format!(
        "[id \"{id}\"] [msg \"{}\"] [data \"{}\"] [severity \"{severity}\"]\n",
        esc(msg),
        esc(data)
    )
}

pub fn load(base: &str) -> Vec<(std::path::PathBuf, File)> {
    let mut files = walk(std::path::Path::new(&format!("{base}/tests")));
    files.sort();
    files
        .into_iter()
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            let parsed: File =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            (f, parsed)
        })
        .collect()
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "yaml") {
            out.push(p);
        }
    }
    out
}

/// The skip list (first word of each non-comment line).
pub fn listed_skips(path: &str) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}

/// A test's request, ready for the engine.
pub struct Request {
    pub method: String,
    pub uri: String,
    pub version: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

/// A raw request (`encoded_request`), as sent on the wire.
pub fn parse_raw(raw: &[u8]) -> Option<Request> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut parts = lines.next()?.splitn(3, ' ');
    let method = parts.next()?.to_string();
    let uri = parts.next()?.to_string();
    let version = parts.next().unwrap_or("HTTP/1.1").to_string();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().as_bytes().to_vec()))
        .collect();
    Some(Request {
        method,
        uri,
        version,
        headers,
        body: raw[end + 4..].to_vec(),
    })
}

/// The request a test stage sends (raw requests parsed).
pub fn build(input: &Input) -> Option<Request> {
    if input.encoded_request.is_some() {
        return parse_raw(&input.raw_request()?);
    }
    let mut headers = input.header_list();
    let body = input.body();
    let has = |h: &[(String, Vec<u8>)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if input.autocomplete_headers.unwrap_or(true) && !body.is_empty() {
        if !has(&headers, "content-length") {
            headers.push(("Content-Length".into(), body.len().to_string().into_bytes()));
        }
        // Assumption: a body without a type is form data, as the CRS tests are written.
        if !has(&headers, "content-type") {
            headers.push((
                "Content-Type".into(),
                b"application/x-www-form-urlencoded".to_vec(),
            ));
        }
    }
    Some(Request {
        method: input.method.clone().unwrap_or_else(|| "GET".into()),
        uri: input.uri.clone().unwrap_or_else(|| "/".into()),
        version: input.version.clone().unwrap_or_else(|| "HTTP/1.1".into()),
        headers,
        body,
    })
}
