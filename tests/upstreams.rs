//! Load balancing, health checks, passive ejection, retries, 502/504, WebSocket.
mod common;
use common::*;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::Duration;

fn route(upstream: &str) -> String {
    format!("routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: {upstream}\n")
}

async fn servers_of(
    gw: &Gateway,
    n: usize,
    header: Option<(&str, String)>,
) -> HashMap<String, usize> {
    let c = client();
    let mut seen = HashMap::new();
    for _ in 0..n {
        let mut rb = c.get(gw.url("/x"));
        if let Some((k, v)) = &header {
            rb = rb.header(*k, v.as_str());
        }
        let r = rb.send().await.unwrap();
        assert_eq!(r.status().as_u16(), 200);
        let v: serde_json::Value = r.json().await.unwrap();
        *seen
            .entry(v["server"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn round_robin_spreads_evenly() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}{}",
        upstream_yaml("u", &[a.addr, b.addr, c.addr], "    balance: round_robin\n"),
        route("u")
    ));
    let seen = servers_of(&gw, 30, None).await;
    assert_eq!(seen.len(), 3, "{seen:?}");
    for (_, n) in seen {
        assert_eq!(n, 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn consistent_hash_is_sticky_per_key() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let c = Upstream::start("c").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}{}",
        upstream_yaml(
            "u",
            &[a.addr, b.addr, c.addr],
            "    balance: consistent_hash\n    hash_key: header:X-User\n"
        ),
        route("u")
    ));
    let mut owners = HashMap::new();
    for user in 0..20 {
        let seen = servers_of(&gw, 5, Some(("X-User", format!("user-{user}")))).await;
        assert_eq!(seen.len(), 1, "user-{user} went to {seen:?}");
        owners.insert(user, seen.into_keys().next().unwrap());
    }
    let distinct: std::collections::HashSet<_> = owners.values().collect();
    assert!(distinct.len() >= 2, "20 keys all on one target: {owners:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn health_checks_eject_and_recover() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}{}",
        upstream_yaml(
            "u",
            &[a.addr, b.addr],
            "    health_check: { path: /healthz, interval: 200ms, unhealthy_after: 2, healthy_after: 2 }\n"
        ),
        route("u")
    ));
    let gauge_b = format!(
        "rampart_upstream_target_healthy{{target=\"{}\",upstream=\"u\"}}",
        b.addr
    );
    assert_eq!(servers_of(&gw, 10, None).await.len(), 2);
    b.healthy.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let seen = servers_of(&gw, 10, None).await;
    assert_eq!(seen.get("a"), Some(&10), "{seen:?}");
    assert_eq!(gw.metric(&gauge_b), 0.0);
    b.healthy.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let seen = servers_of(&gw, 10, None).await;
    assert_eq!(seen.get("b"), Some(&5), "{seen:?}");
    assert_eq!(gw.metric(&gauge_b), 1.0);
    assert!(b.health_hits.load(Ordering::SeqCst) >= 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_failures_retry_idempotent_requests_and_eject() {
    let a = Upstream::start("a").await;
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::start(&format!(
        "upstreams:\n{}{}",
        upstream_yaml(
            "u",
            &[a.addr, dead],
            "    retries: 1\n    passive: {failures: 2, eject_for: 30s}\n"
        ),
        route("u")
    ));
    // Every GET succeeds: a refused connection is retried on the other target.
    let seen = servers_of(&gw, 10, None).await;
    assert_eq!(seen.get("a"), Some(&10));
    let fails = format!(
        "rampart_upstream_failures_total{{kind=\"connect_error\",target=\"{dead}\",upstream=\"u\"}}"
    );
    // After 2 failures the dead target is ejected, so it is not tried again.
    assert_eq!(gw.metric(&fails), 2.0);
    let gauge = format!("rampart_upstream_target_healthy{{target=\"{dead}\",upstream=\"u\"}}");
    assert_eq!(gw.metric(&gauge), 0.0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.access_log();
    assert!(
        log.lines()
            .any(|l| l.contains("\"attempts\":2") && l.contains("\"status\":200")),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn post_is_not_retried() {
    let dead1 = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let a = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}{}",
        upstream_yaml(
            "u",
            &[dead1, a.addr],
            "    retries: 3\n    passive: {failures: 100}\n"
        ),
        route("u")
    ));
    let c = client();
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            c.post(gw.url("/x"))
                .body("x")
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    // Round robin alternates: POSTs that hit the dead target fail with 502, never replayed.
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(a.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_gateway_and_gateway_timeout() {
    let a = Upstream::start("a").await;
    let dead = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let gw = Gateway::start(&format!(
        "upstreams:\n{}{}routes:\n  - name: slow\n    paths: [\"/slow\"]\n    upstream: slow\n  - name: dead\n    paths: [\"/dead\"]\n    upstream: dead\n",
        upstream_yaml("slow", &[a.addr], "    timeouts: { connect: 1s, read: 300ms }\n"),
        upstream_yaml("dead", &[dead], "    retries: 0\n")
    ));
    let c = client();
    let r = c.get(gw.url("/dead")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 502);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "upstream unavailable");
    let text = v.to_string();
    assert!(
        !text.contains("127.0.0.1"),
        "upstream details leaked: {text}"
    );

    let r = c.get(gw.url("/slow?ms=2000")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 504);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "upstream timed out");
    // Within the timeout passes.
    let r = c.get(gw.url("/slow?ms=50")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn websocket_echo_through_gateway() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let ws_addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(s).await else {
                    return;
                };
                while let Some(Ok(m)) = ws.next().await {
                    if m.is_text() || m.is_binary() {
                        let _ = ws.send(m).await;
                    }
                }
            });
        }
    });
    let gw = Gateway::start(&format!(
        "upstreams:\n{}routes:\n  - name: ws\n    paths: [\"/ws\"]\n    upstream: ws\n    websocket: true\n",
        upstream_yaml("ws", &[ws_addr], "")
    ));
    let (mut ws, resp) = tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{}/ws", gw.port))
        .await
        .expect("websocket handshake through the gateway");
    assert_eq!(resp.status().as_u16(), 101);
    assert!(resp.headers().get("x-request-id").is_some());
    for i in 0..5 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.close(None).await.unwrap();
}

/// The adaptive limit follows the backend: late answers shrink it (requests over it are
/// refused at once, never queued in the slow backend), answers on time grow it back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn adaptive_concurrency_follows_the_backends_latency() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&format!(
        "upstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml(
            "u",
            &[up.addr],
            "    adaptive_concurrency: { min: 2, max: 20, tolerance: 20, window: 1h }\n"
        )
    ));
    let c = client();
    let limit = || gw.metric("rampart_upstream_concurrency_limit{upstream=\"u\"}");
    let get = |path: String| {
        let c = c.clone();
        let url = gw.url(&path);
        tokio::spawn(async move { c.get(url).send().await.unwrap().status().as_u16() })
    };
    let round = |n: usize, path: &'static str| {
        let tasks: Vec<_> = (0..n).map(|_| get(path.to_string())).collect();
        async move {
            let mut out = Vec::new();
            for t in tasks {
                out.push(t.await.unwrap());
            }
            out
        }
    };
    // Fast answers set the reference; the limit starts halfway (10). A slow moment of the
    // test machine may already have taken it down a step or two.
    for _ in 0..10 {
        assert_eq!(round(1, "/quick").await, [200]);
    }
    let before = limit() as usize;
    assert!((6..=10).contains(&before), "{before}");
    // The backend slows down (200 ms against a few ms): 30 at once, as many as the limit
    // get in, the rest are refused at once.
    let hits = up.hits.load(Ordering::SeqCst);
    let t = std::time::Instant::now();
    let statuses = round(30, "/slow?ms=200").await;
    let admitted = statuses.iter().filter(|s| **s == 200).count();
    assert_eq!(admitted, before, "{statuses:?}");
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(refused, 30 - before, "{statuses:?}");
    assert_eq!(up.hits.load(Ordering::SeqCst), hits + before);
    assert!(t.elapsed() < Duration::from_secs(2));
    // It stays slow: the limit goes down to its floor.
    for _ in 0..30 {
        round(2, "/slow?ms=50").await;
    }
    assert_eq!(limit(), 2.0, "{}", gw.metrics());
    let statuses = round(6, "/slow?ms=200").await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 503).count(),
        4,
        "{statuses:?}"
    );
    let log = gw.access_log_with(&["upstream concurrency limit"]);
    assert!(log.contains("\"refused_by\":\"upstream_limit\""), "{log}");
    // Fast again, with the limit in use: it grows back.
    for _ in 0..40 {
        round(4, "/quick").await;
    }
    assert!(limit() > 3.0, "{}", limit());
}
