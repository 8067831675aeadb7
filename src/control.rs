//! `rampart export | diff | apply`: a running gateway's config managed through its admin
//! API. The token comes from `RAMPART_ADMIN_TOKEN` or `--token-file`, never from the
//! command line (where `ps` and shell history would show it).

use std::path::{Path, PathBuf};

/// Where the admin API is and who calls it.
pub struct Target {
    pub admin: String,
    pub token_file: Option<PathBuf>,
    /// The CA that signed an https admin listener's certificate (else the system's).
    pub ca: Option<PathBuf>,
    /// A client certificate and key (PEM) for an admin listener that verifies clients.
    pub client_cert: Option<(PathBuf, PathBuf)>,
}

impl Target {
    /// The token, or `None` when a client certificate stands for it.
    fn token_if_any(&self) -> Result<Option<String>, String> {
        if self.client_cert.is_some()
            && self.token_file.is_none()
            && std::env::var_os("RAMPART_ADMIN_TOKEN").is_none()
        {
            return Ok(None);
        }
        self.token().map(Some)
    }

    fn client(&self) -> Result<reqwest::Client, String> {
        let read =
            |p: &PathBuf| std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()));
        let mut b = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30));
        if let Some(ca) = &self.ca {
            let cert = reqwest::Certificate::from_pem(&read(ca)?)
                .map_err(|e| format!("{}: not a PEM certificate: {e}", ca.display()))?;
            b = b.add_root_certificate(cert);
        }
        if let Some((cert, key)) = &self.client_cert {
            let mut pem = read(cert)?;
            pem.push(b'\n');
            pem.extend(read(key)?);
            let id = reqwest::Identity::from_pem(&pem)
                .map_err(|e| format!("{} / {}: {e}", cert.display(), key.display()))?;
            b = b.identity(id);
        }
        b.build().map_err(|e| e.to_string())
    }

    fn token(&self) -> Result<String, String> {
        let token = match &self.token_file {
            Some(p) => std::fs::read_to_string(p)
                .map_err(|e| format!("cannot read the token file {}: {e}", p.display()))?,
            None => std::env::var("RAMPART_ADMIN_TOKEN").map_err(|_| {
                "no admin token: set RAMPART_ADMIN_TOKEN or give --token-file".to_string()
            })?,
        };
        let token = token.trim().to_string();
        if token.is_empty() {
            return Err("the admin token is empty".into());
        }
        Ok(token)
    }

    fn url(&self, path: &str) -> Result<String, String> {
        let base = self.admin.trim_end_matches('/');
        if !base.starts_with("http://") && !base.starts_with("https://") {
            return Err(format!(
                "--admin must be the admin listener's http:// or https:// URL (got {base:?})"
            ));
        }
        Ok(format!("{base}{path}"))
    }
}

struct Answer {
    status: u16,
    etag: Option<String>,
    body: String,
}

fn call(
    t: &Target,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Option<String>,
) -> Result<Answer, String> {
    let url = t.url(path)?;
    let token = t.token_if_any()?;
    let client = t.client()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start a runtime: {e}"))?;
    rt.block_on(async move {
        let mut r = client.request(method, &url);
        if let Some(token) = token {
            r = r.bearer_auth(token);
        }
        for (k, v) in headers {
            r = r.header(*k, v);
        }
        if let Some(b) = body {
            r = r.header("Content-Type", "application/yaml").body(b);
        }
        let resp = r
            .send()
            .await
            .map_err(|e| format!("cannot reach the admin API at {url}: {e}"))?;
        let status = resp.status().as_u16();
        let etag = resp
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = resp.text().await.map_err(|e| e.to_string())?;
        Ok(Answer { status, etag, body })
    })
}

/// The message of an error answer, with its per-pointer errors.
fn explain(a: &Answer) -> String {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(&a.body) else {
        return format!("HTTP {}: {}", a.status, a.body.trim());
    };
    let mut out = format!(
        "HTTP {}: {}",
        a.status,
        v["error"].as_str().unwrap_or("refused")
    );
    for e in v["errors"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "\n  {}: {}",
            e["pointer"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        ));
    }
    out
}

/// The `changes` lines of an answer (`+ routes/x`).
fn changes(v: &serde_json::Value) -> Vec<String> {
    v["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_string))
        .collect()
}

fn read_config(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    rampart_config::document::from_text(&text)
        .map_err(|e| format!("{}: not a config document: {e}", path.display()))?;
    Ok(text)
}

/// The running config as YAML (secrets redacted).
pub fn export(t: &Target) -> Result<String, String> {
    let a = call(t, reqwest::Method::GET, "/config?format=yaml", &[], None)?;
    if a.status != 200 {
        return Err(explain(&a));
    }
    Ok(a.body)
}

/// What applying `config` would change, one resource per line (never a value).
pub fn diff(t: &Target, config: &Path) -> Result<Vec<String>, String> {
    let text = read_config(config)?;
    let a = call(t, reqwest::Method::POST, "/config/diff", &[], Some(text))?;
    if a.status != 200 {
        return Err(explain(&a));
    }
    let v: serde_json::Value =
        serde_json::from_str(&a.body).map_err(|e| format!("unexpected answer: {e}"))?;
    let mut lines = changes(&v);
    for e in v["errors"].as_array().into_iter().flatten() {
        lines.push(format!(
            "! {}: {}",
            e["pointer"].as_str().unwrap_or(""),
            e["message"].as_str().unwrap_or("")
        ));
    }
    Ok(lines)
}

/// Apply `config` as a whole: validated and swapped by the gateway, all or nothing, and
/// only over the config this command read (If-Match).
pub fn apply(t: &Target, config: &Path) -> Result<Vec<String>, String> {
    let text = read_config(config)?;
    let current = call(t, reqwest::Method::GET, "/config", &[], None)?;
    let Some(etag) = current.etag.clone().filter(|_| current.status == 200) else {
        return Err(explain(&current));
    };
    let a = call(
        t,
        reqwest::Method::PUT,
        "/config",
        &[("If-Match", etag)],
        Some(text),
    )?;
    if a.status != 200 {
        return Err(explain(&a));
    }
    let v: serde_json::Value =
        serde_json::from_str(&a.body).map_err(|e| format!("unexpected answer: {e}"))?;
    let mut lines = changes(&v);
    lines.push(format!(
        "applied: generation {}{}",
        v["generation"],
        if v["persisted"] == true {
            " (written to the gateway's config file)"
        } else {
            ""
        }
    ));
    Ok(lines)
}
