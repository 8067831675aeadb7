//! The security event stream: file (prompt), syslog over UDP, webhook batches.
mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn sha(s: &str) -> String {
    sha256_hex(s.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_decisions_become_events_in_every_sink() {
    let up = Upstream::start("a").await;
    // Webhook receiver.
    let posts: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = listener.local_addr().unwrap();
    let p2 = posts.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let p3 = p2.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let p4 = p3.clone();
                        async move {
                            let b = req.into_body().collect().await.unwrap().to_bytes();
                            p4.lock().unwrap().push(serde_json::from_slice(&b).unwrap());
                            Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let syslog = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let dir = temp_dir("events");
    let file = dir.join("events.jsonl");
    let gw = Gateway::start(&format!(
        r#"events:
  file: {file}
  syslog: {{ address: "{sys}", format: cef }}
  webhook: {{ url: "http://{hook}/events", batch_size: 3, flush_interval: 300ms }}
consumers:
  - {{ id: bob, groups: [readers], api_keys: [{{ sha256: {key} }}] }}
auth:
  api_key: {{ query: api_key }}
upstreams:
{up}routes:
  - name: admin
    paths: ["/admin"]
    upstream: u
    auth: {{ methods: [api_key] }}
    authorize: {{ groups: [admins] }}
  - name: open
    paths: ["/open"]
    upstream: u
"#,
        file = file.display(),
        sys = syslog.local_addr().unwrap(),
        key = sha("key-bob"),
        up = upstream_yaml("u", &[up.addr], "")
    ));
    let c = client();
    let start = Instant::now();
    let r = c
        .get(gw.url("/admin?api_key=key-bob&x=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    // On disk within 100 ms of the response.
    let line = loop {
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains(&id)) {
            break l.to_string();
        }
        assert!(
            start.elapsed() < Duration::from_millis(300),
            "event not written promptly"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["stage"], "authorize");
    assert_eq!(v["action"], "block");
    assert_eq!(v["status"], 403);
    assert_eq!(v["route"], "admin");
    assert_eq!(v["consumer"], "bob");
    assert_eq!(v["reason"], "consumer not in an allowed group or list");
    assert_eq!(v["uri"], "/admin?api_key=REDACTED&x=1");
    assert!(!line.contains("key-bob"), "credential in an event");
    for k in ["ts", "request_id", "client_ip", "method", "host"] {
        assert!(v.get(k).is_some(), "missing {k}");
    }
    // Two authentication failures; an allowed request makes no event.
    c.get(gw.url("/admin")).send().await.unwrap();
    c.get(gw.url("/admin"))
        .header("X-API-Key", "wrong")
        .send()
        .await
        .unwrap();
    c.get(gw.url("/open")).send().await.unwrap();

    let mut buf = [0u8; 4096];
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), syslog.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(
        msg.starts_with("<84>1 ") && msg.contains("CEF:0|Rampart|Rampart|"),
        "{msg}"
    );
    assert!(msg.contains(&format!("cs1={id}")), "{msg}");

    tokio::time::sleep(Duration::from_millis(600)).await;
    let batches = posts.lock().unwrap().clone();
    let events: Vec<&serde_json::Value> =
        batches.iter().flat_map(|b| b.as_array().unwrap()).collect();
    assert_eq!(events.len(), 3, "{batches:?}");
    assert_eq!(batches[0].as_array().unwrap().len(), 3, "batched");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["stage"] == "authenticate")
            .count(),
        2
    );
    assert!(
        gw.metric("rampart_blocked_requests_total{route=\"admin\",stage=\"authenticate\"}") >= 2.0
    );
    assert_eq!(gw.metric("rampart_security_events_dropped_total"), 0.0);
}
