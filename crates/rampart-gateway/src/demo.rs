//! The embedded demo: a default config and a small JSON echo backend in the same process,
//! so `rampart serve` shows a working, protected gateway with one command.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The demo config (`demo.yaml`); its certificate paths come from `RAMPART_DEMO_CERT` and
/// `RAMPART_DEMO_KEY`, set by [`build_config`].
pub const DEMO_CONFIG: &str = include_str!("demo.yaml");
/// The demo config as run: [`DEMO_CONFIG`], with its small inline rule set replaced by the
/// OWASP CRS when one is installed (`rampart crs install`; the newest is used).
pub fn config_text() -> &'static str {
    static TEXT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TEXT.get_or_init(|| match installed_crs() {
        Some(version) => with_crs(DEMO_CONFIG, &version),
        None => DEMO_CONFIG.to_string(),
    })
}

/// The newest complete CRS install, if any (looked up once, so what the demo says at
/// start is what it runs).
fn installed_crs() -> Option<String> {
    static FOUND: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FOUND
        .get_or_init(|| {
            rampart_crs::list(&rampart_crs::versions_dir())
                .ok()?
                .into_iter()
                .find(|l| l.rule_files > 0)
                .map(|l| l.version)
        })
        .clone()
}

/// `text` with its `waf:` section (up to the next top-level key) loading CRS `version`.
fn with_crs(text: &str, version: &str) -> String {
    let Some(start) = text.find("\nwaf:\n") else {
        return text.to_string();
    };
    let rest = &text[start + "\nwaf:\n".len()..];
    // The section ends at the next line that starts with a key.
    let mut len = 0;
    for line in rest.split_inclusive('\n') {
        if line.starts_with(|c: char| c.is_ascii_alphabetic()) {
            break;
        }
        len += line.len();
    }
    let end = start + "\nwaf:\n".len() + len;
    format!(
        "{}\nwaf:\n  crs: {{ version: \"{version}\" }}\n  paranoia: 1\n{}",
        &text[..start],
        &text[end..]
    )
}

/// What the demo's WAF runs, said at start.
pub fn waf_summary() -> String {
    match installed_crs() {
        Some(v) => format!(
            "rampart: WAF: OWASP CRS {v} from {}, paranoia level 1",
            rampart_crs::versions_dir().join(&v).display()
        ),
        None => "rampart: WAF: three inline rules (SQL injection, XSS, path traversal); \
                 for the OWASP Core Rule Set run `rampart crs install`, then start again"
            .to_string(),
    }
}

/// Where the demo listens by default; each is overridable (tests, machines where a port is
/// taken) with the environment variable of the same name.
const DEFAULT_ADDRS: [(&str, &str); 4] = [
    ("RAMPART_DEMO_HTTPS_ADDR", "127.0.0.1:8443"),
    ("RAMPART_DEMO_HTTP_ADDR", "127.0.0.1:8080"),
    ("RAMPART_DEMO_ADMIN_ADDR", "127.0.0.1:9901"),
    ("RAMPART_DEMO_BACKEND_ADDR", "127.0.0.1:18081"),
];

/// A demo address: the environment's, or the default.
pub fn addr(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        DEFAULT_ADDRS
            .iter()
            .find(|(v, _)| *v == var)
            .map(|(_, a)| a.to_string())
            .unwrap_or_default()
    })
}

/// Where the demo backend listens: the demo config's upstream.
pub fn backend_addr() -> String {
    addr("RAMPART_DEMO_BACKEND_ADDR")
}

/// The credentials made for this run, printed at start.
struct Credentials {
    api_key: String,
    token: String,
    /// An admin token with the viewer role, for the live dashboard.
    viewer: String,
}

static CREDENTIALS: std::sync::OnceLock<Credentials> = std::sync::OnceLock::new();

/// A JWT for the demo's `/jwt` route, signed with this run's secret, valid for a day.
fn demo_token(secret: &str) -> Result<String, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let claims = serde_json::json!({
        "iss": "https://demo.rampart.invalid",
        "aud": "demo-api",
        "sub": "demo-user",
        "iat": now,
        "exp": now + 86_400,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())
}

/// What `rampart serve` prints for the demo: its credentials and one command per check
/// (the status each answers with at the end of the line, `# → 401`).
pub fn instructions() -> String {
    let https = addr("RAMPART_DEMO_HTTPS_ADDR");
    let http = addr("RAMPART_DEMO_HTTP_ADDR");
    let admin = addr("RAMPART_DEMO_ADMIN_ADDR");
    let Some(c) = CREDENTIALS.get() else {
        return String::new();
    };
    let base = format!("https://{https}");
    [
        format!("rampart: demo API key (made for this run): {}", c.api_key),
        format!("rampart: demo JWT (signed by a key made for this run): {}", c.token),
        format!(
            "rampart: live dashboard (viewer token made for this run): http://{admin}/dashboard#token={}",
            c.viewer
        ),
        "rampart: try (each line ends with the status it answers):".to_string(),
        format!("  curl -k {base}/api/hello   # → 200 public"),
        format!("  curl http://{http}/api/hello   # → 308 to HTTPS"),
        format!("  curl -k \"{base}/api/hello?id=1'%20OR%20'1'='1\"   # → 403 WAF"),
        format!("  curl -k {base}/keys/hello   # → 401 no API key"),
        format!("  curl -k -H 'X-API-Key: {}' {base}/keys/hello   # → 200", c.api_key),
        format!("  curl -k {base}/jwt/hello   # → 401 no token"),
        format!("  curl -k -H 'Authorization: Bearer {}' {base}/jwt/hello   # → 200", c.token),
        format!("  curl -k {base}/browser/hello   # → 403 browser challenge (a browser solves it and gets through)"),
        format!("  for i in 1 2 3 4 5 6; do curl -k -s -o /dev/null -w '%{{http_code}} ' {base}/limited; done   # → 429 the sixth time"),
        // HTTP/1.1: over HTTP/2 the early 413 ends with RST_STREAM(NO_ERROR) (RFC 9113
        // §8.1), which curl 7.88 reports as an error (tests/limits.rs pins the frames).
        format!("  head -c 2000000 /dev/zero | curl --http1.1 -k --data-binary @- {base}/api/upload   # → 413 over 1MiB"),
    ]
    .join("\n")
}

/// Write a fresh self-signed certificate for localhost into `dir`; returns (cert, key) paths.
pub fn self_signed(dir: &std::path::Path) -> Result<(String, String), crate::Error> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ck = rcgen::generate_simple_self_signed(names).map_err(crate::Error::DemoCertificate)?;
    std::fs::create_dir_all(dir).map_err(crate::Error::DemoFiles)?;
    let cert = dir.join("demo-cert.pem");
    let key = dir.join("demo-key.pem");
    std::fs::write(&cert, ck.cert.pem()).map_err(crate::Error::DemoFiles)?;
    std::fs::write(&key, ck.signing_key.serialize_pem()).map_err(crate::Error::DemoFiles)?;
    Ok((cert.display().to_string(), key.display().to_string()))
}

/// Resolves the demo config's `${ENV}` references: a self-signed certificate made for this
/// run, then the process environment.
pub type DemoEnv = crate::reload::EnvLookup;

/// Make this run's demo certificate; the environment the demo config is read with.
pub fn environment() -> Result<DemoEnv, rampart_config::ConfigErrors> {
    let dir = std::env::temp_dir().join(format!("rampart-demo-{}", std::process::id()));
    let (cert, key) = self_signed(&dir).map_err(|e| {
        rampart_config::ConfigErrors(vec![rampart_config::ConfigError {
            file: "<embedded demo config>".into(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot create the demo certificate: {e}"),
        }])
    })?;
    let fail = |what: &str, e: String| {
        rampart_config::ConfigErrors(vec![rampart_config::ConfigError {
            file: "<embedded demo config>".into(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot make the demo {what}: {e}"),
        }])
    };
    let api_key = rampart_auth::secrets::generate_api_key();
    let key_hash = rampart_auth::secrets::sha256_hex(api_key.as_bytes());
    // 32 random bytes, URL-safe: a strong HMAC secret.
    let jwt_secret = rampart_auth::secrets::generate_api_key();
    let token = demo_token(&jwt_secret).map_err(|e| fail("token", e))?;
    let viewer = rampart_auth::secrets::generate_api_key();
    let viewer_hash = rampart_auth::secrets::sha256_hex(viewer.as_bytes());
    let _ = CREDENTIALS.set(Credentials {
        api_key,
        token,
        viewer,
    });
    Ok(std::sync::Arc::new(move |name: &str| match name {
        "RAMPART_DEMO_CERT" => Some(cert.clone()),
        "RAMPART_DEMO_KEY" => Some(key.clone()),
        "RAMPART_DEMO_API_KEY_SHA256" => Some(key_hash.clone()),
        "RAMPART_DEMO_JWT_SECRET" => Some(jwt_secret.clone()),
        "RAMPART_DEMO_VIEWER_SHA256" => Some(viewer_hash.clone()),
        v if v.starts_with("RAMPART_DEMO_") && v.ends_with("_ADDR") => Some(addr(v)),
        other => std::env::var(other).ok(),
    }))
}

/// The embedded demo config, built by `build` like a config file.
pub fn build_config<T>(
    env: &DemoEnv,
    build: impl FnOnce(rampart_config::Config) -> Result<T, Vec<rampart_config::Problem>>,
) -> Result<T, rampart_config::ConfigErrors> {
    rampart_config::build_str(config_text(), "<embedded demo config>", &|n| env(n), build)
}

/// The demo backend: answers every request with JSON describing it (method, path, query,
/// headers, body size), and `/healthz` with `{"status":"ok"}`.
pub struct DemoBackend;

#[async_trait]
impl ServeHttp for DemoBackend {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        // Read (and bound) the body so the connection can be reused.
        let mut body_len = 0usize;
        while let Ok(Some(chunk)) = session.read_request_body().await {
            body_len += chunk.len();
            if body_len > 1 << 20 {
                break;
            }
        }
        let req = session.req_header();
        let headers: serde_json::Map<String, serde_json::Value> = req
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
                )
            })
            .collect();
        let body = if req.uri.path() == "/healthz" {
            serde_json::json!({"status": "ok"})
        } else {
            serde_json::json!({
                "service": "rampart-demo-backend",
                "method": req.method.as_str(),
                "path": req.uri.path(),
                "query": req.uri.query(),
                "headers": headers,
                "body_bytes": body_len,
            })
        };
        let body = body.to_string().into_bytes();
        Response::builder()
            .status(200)
            .header("Content-Type", "application/json")
            .header("Content-Length", body.len())
            .body(body)
            .expect("static response parts")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_crs_takes_the_place_of_the_inline_rules() {
        let t = super::with_crs(super::DEMO_CONFIG, "4.28.0");
        assert!(t.contains("\nwaf:\n  crs: { version: \"4.28.0\" }\n  paranoia: 1\nevents:"));
        assert!(!t.contains("custom_rules"));
        let before = &super::DEMO_CONFIG[..super::DEMO_CONFIG.find("\nwaf:").unwrap()];
        assert!(t.starts_with(before));
    }
}
