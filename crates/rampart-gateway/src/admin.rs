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
        let path = session.req_header().uri.path().to_string();
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
