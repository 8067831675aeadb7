//! The admin listener: `/metrics` (Prometheus), `/healthz` (alive), `/readyz` (config loaded).

use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use http::Response;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

pub struct Admin {
    pub state: Arc<ArcSwap<Snapshot>>,
}

fn json(status: u16, body: String) -> Response<Vec<u8>> {
    Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Content-Length", body.len())
        .header("Cache-Control", "no-store")
        .body(body.into_bytes())
        .expect("static response parts")
}

#[async_trait]
impl ServeHttp for Admin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        // Read-only endpoints: anything but GET/HEAD is refused before routing.
        if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
            let mut r = json(405, r#"{"error":"method not allowed"}"#.into());
            r.headers_mut()
                .insert("Allow", http::HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let path = req.uri.path().to_string();
        match path.as_str() {
            "/metrics" => {
                let body = metrics().render();
                Response::builder()
                    .status(200)
                    .header("Content-Type", "text/plain; version=0.0.4")
                    .header("Content-Length", body.len())
                    .body(body)
                    .expect("static response parts")
            }
            "/healthz" => json(200, r#"{"status":"ok"}"#.into()),
            "/readyz" => {
                let g = self.state.load().generation;
                json(
                    200,
                    format!(r#"{{"status":"ready","config_generation":{g}}}"#),
                )
            }
            _ => json(404, r#"{"error":"not found"}"#.into()),
        }
    }
}
