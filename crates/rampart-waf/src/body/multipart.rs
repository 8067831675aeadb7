//! `multipart/form-data` (RFC 7578): parts by boundary, their headers, names and file names.

pub(crate) struct Part {
    pub(crate) name: String,
    pub(crate) filename: Option<String>,
    pub(crate) headers: Vec<String>,
    pub(crate) value: Vec<u8>,
}

/// multipart/form-data: parts by boundary; None when the body does not follow the format.
pub(crate) fn multipart(content_type: &str, body: &[u8]) -> Option<Vec<Part>> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| {
            let p = p.trim();
            p.get(..9)
                .filter(|k| k.eq_ignore_ascii_case("boundary="))
                .map(|_| &p[9..])
        })
        .next()?
        .trim_matches('"')
        .to_string();
    // RFC 2046: 1 to 70 characters.
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let delim = format!("--{boundary}").into_bytes();
    // A linear-time search: the body and the boundary both come from the client.
    let finder = aho_corasick::AhoCorasick::new([&delim]).ok()?;
    let find = |hay: &[u8], from: usize| finder.find(&hay[from..]).map(|m| m.start() + from);
    let mut pos = find(body, 0)? + delim.len();
    let mut parts = Vec::new();
    loop {
        if body[pos..].starts_with(b"--") {
            break;
        }
        let start = pos
            + body[pos..]
                .iter()
                .take(2)
                .take_while(|c| matches!(c, b'\r' | b'\n'))
                .count();
        let next = find(body, start)?;
        let mut chunk = &body[start..next];
        chunk = chunk
            .strip_suffix(b"\r\n")
            .or_else(|| chunk.strip_suffix(b"\n"))
            .unwrap_or(chunk);
        let split = chunk
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map(|i| (i, 4))
            .or_else(|| chunk.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)))?;
        let head = String::from_utf8_lossy(&chunk[..split.0]).into_owned();
        let value = chunk[split.0 + split.1..].to_vec();
        let mut name = String::new();
        let mut filename = None;
        let mut headers = Vec::new();
        for line in head.lines().map(str::trim).filter(|l| !l.is_empty()) {
            headers.push(line.to_string());
            if line.to_ascii_lowercase().starts_with("content-disposition") {
                for (k, v) in disposition_params(line) {
                    match k.as_str() {
                        "name" => name = v,
                        "filename" => filename = Some(v),
                        _ => {}
                    }
                }
            }
        }
        parts.push(Part {
            name,
            filename,
            headers,
            value,
        });
        pos = next + delim.len();
        if pos >= body.len() {
            break;
        }
    }
    Some(parts)
}

/// `form-data; name="a;b"; filename="x=y"`: parameters split on `;` outside quotes.
pub(crate) fn disposition_params(line: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    for c in line.chars() {
        match c {
            _ if escaped => {
                // Only `\"` and `\\` are escapes (as ModSecurity parses it); any other
                // backslash stays, so a name like `a\b` is judged as sent.
                if c != '"' && c != '\\' {
                    cur.push('\\');
                }
                cur.push(c);
                escaped = false;
            }
            '\\' if quoted => escaped = true,
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ';' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    parts.push(cur);
    for p in parts.iter().skip(1) {
        let p = p.trim();
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        let v = v.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|x| x.strip_suffix('"'))
            .unwrap_or(v);
        out.push((k.trim().to_ascii_lowercase(), v.to_string()));
    }
    out
}
