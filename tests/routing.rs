//! Routing, errors, request ids, forwarding headers and framing, through real sockets.
mod common;
use common::*;

fn routes_config(a: &Upstream, b: &Upstream) -> String {
    format!(
        "upstreams:\n{}{}routes:
  - name: items
    hosts: [\"api.example.test\", \"*.example.test\"]
    paths: [\"/api/items\"]
    methods: [GET, POST]
    upstream: a
  - name: items-exact-host
    hosts: [\"special.example.test\"]
    paths: [\"/api/items\"]
    upstream: b
  - name: catchall-api
    paths: [\"/api\"]
    upstream: b
  - name: stripped
    paths: [\"/svc/b\"]
    upstream: b
    strip_prefix: true
  - name: exact
    paths: [\"=/exact\"]
    methods: [GET]
    upstream: a
limits:
  max_request_body: 1KiB
  max_header_bytes: 4KiB
  request_header_timeout: 1s
",
        upstream_yaml("a", &[a.addr], ""),
        upstream_yaml("b", &[b.addr], "")
    )
}

async fn get_json(c: &reqwest::Client, url: &str, host: &str) -> (u16, serde_json::Value) {
    let r = c.get(url).header("Host", host).send().await.unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn routes_by_host_then_path_then_method() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&routes_config(&a, &b));
    let c = client();

    let (s, v) = get_json(&c, &gw.url("/api/items/7"), "api.example.test").await;
    assert_eq!((s, v["server"].as_str()), (200, Some("a")));
    // Wildcard host.
    let (s, v) = get_json(&c, &gw.url("/api/items"), "x.example.test").await;
    assert_eq!((s, v["server"].as_str()), (200, Some("a")));
    // Exact host beats the wildcard.
    let (s, v) = get_json(&c, &gw.url("/api/items"), "special.example.test").await;
    assert_eq!((s, v["server"].as_str()), (200, Some("b")));
    // Other host: only the host-less route applies.
    let (s, v) = get_json(&c, &gw.url("/api/items"), "other.test").await;
    assert_eq!((s, v["server"].as_str()), (200, Some("b")));
    // strip_prefix rewrites the path, query kept.
    let (s, v) = get_json(&c, &gw.url("/svc/b/users/1?x=1"), "h").await;
    assert_eq!(s, 200);
    assert_eq!(v["path"], "/users/1");
    assert_eq!(v["query"], "x=1");
    // Exact path.
    let (s, _) = get_json(&c, &gw.url("/exact"), "h").await;
    assert_eq!(s, 200);
    let (s, v) = get_json(&c, &gw.url("/exact/more"), "h").await;
    assert_eq!(s, 404);
    assert_eq!(v["error"], "no route matches this request");
    assert!(v["request_id"].as_str().unwrap().len() >= 8);

    // 405 with Allow.
    let r = c
        .delete(gw.url("/api/items/1"))
        .header("Host", "api.example.test")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert!(
        r.headers().get("server").is_none(),
        "no Server header on own errors"
    );
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["error"], "method not allowed");

    // Prefix matching is per segment.
    let (s, _) = get_json(&c, &gw.url("/svc/bx"), "h").await;
    assert_eq!(s, 404);
    assert_eq!(a.hits.load(std::sync::atomic::Ordering::SeqCst), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn request_id_and_forwarding_headers() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&routes_config(&a, &b));
    let c = client();

    let r = c
        .get(gw.url("/api/x"))
        .header("Host", "shop.test:8443")
        .header("X-Request-Id", "trace-abc.123")
        .header("X-Forwarded-For", "6.6.6.6")
        .header("X-Forwarded-Host", "evil.test")
        .header("X-Forwarded-Proto", "https")
        .header("X-Real-IP", "6.6.6.6")
        .header("Forwarded", "for=6.6.6.6;proto=https")
        .header("X-Client-Cert-Subject", "CN=admin")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "trace-abc.123");
    assert!(
        r.headers().get("server").is_none(),
        "upstream Server header leaked"
    );
    assert!(r.headers().get("x-powered-by").is_none());
    let v: serde_json::Value = r.json().await.unwrap();
    let h = &v["headers"];
    assert_eq!(h["x-request-id"], "trace-abc.123");
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "shop.test:8443");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert!(h.get("x-real-ip").is_none());
    assert!(h.get("forwarded").is_none());
    assert!(h.get("x-client-cert-subject").is_none());

    // An invalid id is replaced by a generated one, the same upstream and downstream.
    let r = c
        .get(gw.url("/api/x"))
        .header("X-Request-Id", "has space")
        .send()
        .await
        .unwrap();
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_ne!(id, "has space");
    assert_eq!(id.len(), 36);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["headers"]["x-request-id"], id.as_str());

    // The access log has the request with its id, route and target.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = gw.access_log();
    let line = log
        .lines()
        .find(|l| l.contains(&id))
        .expect("access log line for the request");
    let entry: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(entry["route"], "catchall-api");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["target"], b.addr.to_string());
    assert_eq!(entry["method"], "GET");
    assert!(entry["duration_ms"].as_f64().unwrap() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2c_from_clients() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&routes_config(&a, &b));
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = c.get(gw.url("/api/h2")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status().as_u16(), 200);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["server"], "b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smuggling_and_ambiguous_framing_refused() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&routes_config(&a, &b));
    let cases: &[(&str, &str)] = &[
        (
            "CL+TE",
            "POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "duplicate CL",
            "POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd",
        ),
        (
            "CL list",
            "POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\nabcd",
        ),
        (
            "invalid CL",
            "POST /api/x HTTP/1.1\r\nHost: h\r\nContent-Length: +4\r\n\r\nabcd",
        ),
        (
            "TE list",
            "POST /api/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ),
        (
            "obs-fold",
            "GET /api/x HTTP/1.1\r\nHost: h\r\nX-A: a\r\n  folded\r\n\r\n",
        ),
        (
            "dot segments",
            "GET /api/../admin HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        (
            "bad chunk size",
            "POST /api/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
    ];
    for (name, req) in cases {
        let resp = raw_request(gw.port, req.as_bytes()).unwrap();
        assert_eq!(status_of(&resp), 400, "{name}: {resp}");
        assert!(!resp.contains("Pingora"), "{name}: {resp}");
    }
    // "bad chunk size" is the only case whose headers are unambiguous: it may reach the
    // upstream as a started request, but no other case may.
    let total = a.hits.load(std::sync::atomic::Ordering::SeqCst)
        + b.hits.load(std::sync::atomic::Ordering::SeqCst);
    assert!(total <= 1, "{total} ambiguous requests reached an upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn size_limits_413_and_431() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&routes_config(&a, &b));
    let c = client();
    // Declared length over the limit: refused before the body is read.
    let r = c
        .post(gw.url("/api/x"))
        .body(vec![b'a'; 2048])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 413);
    // Within the limit passes.
    let r = c
        .post(gw.url("/api/x"))
        .body(vec![b'a'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A chunked body that grows over the limit.
    let chunk = format!("{:x}\r\n{}\r\n", 800, "a".repeat(800));
    let req = format!(
        "POST /api/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n{chunk}{chunk}0\r\n\r\n"
    );
    let resp = raw_request(gw.port, req.as_bytes()).unwrap();
    assert_eq!(status_of(&resp), 413, "{resp}");
    // Oversized headers on a fresh connection (pre-filter) and on a kept-alive one.
    let big = "b".repeat(5000);
    let resp = raw_request(
        gw.port,
        format!("GET /api/x HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(status_of(&resp), 431, "{resp}");
    // Second request on a kept-alive connection: checked again.
    let port = gw.port;
    let (first, second) = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        s.write_all(b"GET /api/x HTTP/1.1\r\nHost: h\r\n\r\n")
            .unwrap();
        let mut buf = vec![0u8; 65536];
        let n = s.read(&mut buf).unwrap();
        let first = String::from_utf8_lossy(&buf[..n]).into_owned();
        let big = "c".repeat(4500);
        s.write_all(format!("GET /api/x HTTP/1.1\r\nHost: h\r\nX-Big: {big}\r\n\r\n").as_bytes())
            .unwrap();
        let n = s.read(&mut buf).unwrap_or(0);
        (first, String::from_utf8_lossy(&buf[..n]).into_owned())
    })
    .await
    .unwrap();
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(second.starts_with("HTTP/1.1 431"), "{second}");
    assert!(gw.metric("rampart_rejected_total{reason=\"headers over limit\"}") >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slowloris_is_cut_off() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&routes_config(&a, &b));
    let port = gw.port;
    let (elapsed, resp) = tokio::task::spawn_blocking(move || {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(std::time::Duration::from_millis(100)))
            .unwrap();
        let start = std::time::Instant::now();
        let line =
            b"GET /api/x HTTP/1.1\r\nHost: h\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
        let mut out = Vec::new();
        // One byte every 200 ms: each read is quick, the whole header never completes.
        for &byte in line.iter() {
            if s.write_all(&[byte]).is_err() {
                break;
            }
            let mut buf = [0u8; 1024];
            match s.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    out.extend_from_slice(&buf[..n]);
                    break;
                }
                Err(_) => {}
            }
            if start.elapsed() > std::time::Duration::from_secs(8) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        (start.elapsed(), String::from_utf8_lossy(&out).into_owned())
    })
    .await
    .unwrap();
    assert!(
        elapsed < std::time::Duration::from_secs(3),
        "not cut off: {elapsed:?}"
    );
    assert_eq!(status_of(&resp), 408, "{resp}");
    assert_eq!(a.hits.load(std::sync::atomic::Ordering::SeqCst), 0);
}
