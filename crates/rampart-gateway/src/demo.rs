//! The embedded demo: a default config and a small JSON echo backend in the same process,
//! so `rampart serve` shows a working, protected gateway with one command.

use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

/// The demo config (`demo.yaml`); its certificate paths come from `RAMPART_DEMO_CERT` and
/// `RAMPART_DEMO_KEY`, set by [`build_config`].
pub const DEMO_CONFIG: &str = include_str!("demo.yaml");
/// Where the demo backend listens: the demo config's upstream.
pub const DEMO_BACKEND_ADDR: &str = "127.0.0.1:18081";
/// The demo config's HTTPS listener.
pub const DEMO_HTTPS_ADDR: &str = "127.0.0.1:8443";

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
    Ok(std::sync::Arc::new(move |name: &str| match name {
        "RAMPART_DEMO_CERT" => Some(cert.clone()),
        "RAMPART_DEMO_KEY" => Some(key.clone()),
        other => std::env::var(other).ok(),
    }))
}

/// The embedded demo config, built by `build` like a config file.
pub fn build_config<T>(
    env: &DemoEnv,
    build: impl FnOnce(rampart_config::Config) -> Result<T, Vec<rampart_config::Problem>>,
) -> Result<T, rampart_config::ConfigErrors> {
    rampart_config::build_str(DEMO_CONFIG, "<embedded demo config>", &|n| env(n), build)
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
