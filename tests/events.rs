//! The security event stream (file, syslog over UDP, webhook batches) and spans sent to an
//! OTLP collector, each to a real receiver.
mod common;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

fn sha(s: &str) -> String {
    sha256_hex(s.as_bytes())
}

/// A request a [`receiver`] got: path, `Content-Type`, body.
type Received = (String, String, Bytes);

/// A real HTTP/1.1 receiver on loopback that answers 200 to everything and keeps every
/// request it got, in order (a webhook's, a collector's).
async fn receiver() -> (std::net::SocketAddr, Arc<Mutex<Vec<Received>>>) {
    let got: Arc<Mutex<Vec<Received>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let g = got.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let g = g.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let g = g.clone();
                        async move {
                            let path = req.uri().path().to_string();
                            let ct = req
                                .headers()
                                .get("content-type")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let b = req.into_body().collect().await.unwrap().to_bytes();
                            g.lock().unwrap().push((path, ct, b));
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
    (addr, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn security_decisions_become_events_in_every_sink() {
    let up = Upstream::start("a").await;
    // Webhook receiver.
    let (hook, posts) = receiver().await;
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
    let batches: Vec<serde_json::Value> = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, _, b)| serde_json::from_slice(b).unwrap())
        .collect();
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

/// Spans over OTLP/HTTP to a real receiver that decodes the protobufs: a request from a
/// trusted proxy continuing its trace gives a server span (the gateway's, the upstream's
/// parent, child of the caller's) with the request's facts, a child per stage that did
/// work, and an upstream span with its target; a blocked request's span names the stage.
/// With the collector down the data plane does not wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_reach_an_otlp_collector() {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost::Message;
    let up = Upstream::start("a").await;
    let (collector, got) = receiver().await;
    let gw = Gateway::start(&format!(
        r#"server:
  trusted_proxies: ["127.0.0.1"]
tracing:
  otlp_endpoint: http://{collector}/v1/traces
  service_name: edge-test
waf:
  custom_rules: |
    SecRule ARGS "@contains evil" "id:7,phase:1,deny,log"
upstreams:
{}routes:
  - name: api
    paths: ["/api"]
    upstream: u
"#,
        upstream_yaml("u", &[up.addr], "")
    ));
    let c = client();
    let trace = "0af7651916cd43dd8448eb211c80319c";
    let caller = "b7ad6b7169203331";
    let r = c
        .get(gw.url("/api/items?page=2"))
        .header("traceparent", format!("00-{trace}-{caller}-01"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    let upstream_parent = seen["headers"]["traceparent"]
        .as_str()
        .unwrap()
        .split('-')
        .nth(2)
        .unwrap()
        .to_string();
    let r = c
        .get(gw.url("/api/x?q=evil"))
        .header(
            "traceparent",
            "00-11111111111111111111111111111111-2222222222222222-01",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Every span of the two traces, once the batches arrived.
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let deadline = Instant::now() + Duration::from_secs(5);
    let spans = loop {
        let msgs: Vec<ExportTraceServiceRequest> = got
            .lock()
            .unwrap()
            .iter()
            .map(|(path, ct, b)| {
                assert_eq!(
                    (path.as_str(), ct.as_str()),
                    ("/v1/traces", "application/x-protobuf")
                );
                ExportTraceServiceRequest::decode(b.clone()).expect("OTLP protobuf")
            })
            .collect();
        let all: Vec<(String, opentelemetry_proto::tonic::trace::v1::Span)> = msgs
            .iter()
            .flat_map(|m| m.resource_spans.iter())
            .flat_map(|rs| {
                let service = rs
                    .resource
                    .as_ref()
                    .and_then(|r| r.attributes.iter().find(|a| a.key == "service.name"))
                    .and_then(|a| a.value.as_ref())
                    .map(|v| format!("{:?}", v.value))
                    .unwrap_or_default();
                rs.scope_spans
                    .iter()
                    .flat_map(|ss| ss.spans.iter().cloned())
                    .map(move |s| (service.clone(), s))
            })
            .collect();
        let servers = all.iter().filter(|(_, s)| s.kind == 2).count();
        if servers >= 2 || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let attr = |s: &opentelemetry_proto::tonic::trace::v1::Span, k: &str| {
        s.attributes
            .iter()
            .find(|a| a.key == k)
            .and_then(|a| a.value.as_ref())
            .map(|v| format!("{:?}", v.value))
            .unwrap_or_default()
    };
    let ours: Vec<_> = spans
        .iter()
        .filter(|(_, s)| hex(&s.trace_id) == trace)
        .collect();
    let (service, server) = ours
        .iter()
        .find(|(_, s)| s.kind == 2)
        .unwrap_or_else(|| panic!("no server span in {spans:?}"));
    assert!(service.contains("edge-test"), "{service}");
    assert_eq!(hex(&server.parent_span_id), caller);
    assert_eq!(
        hex(&server.span_id),
        upstream_parent,
        "the upstream's parent is the gateway's span"
    );
    assert!(attr(server, "http.response.status_code").contains("200"));
    assert!(attr(server, "http.route").contains("api"));
    assert!(server.end_time_unix_nano >= server.start_time_unix_nano);
    let upstream = ours
        .iter()
        .map(|(_, s)| s)
        .find(|s| s.name == "upstream")
        .unwrap_or_else(|| panic!("no upstream span in {ours:?}"));
    assert_eq!(upstream.parent_span_id, server.span_id);
    assert_eq!(upstream.kind, 3, "client");
    assert!(attr(upstream, "server.port").contains(&up.addr.port().to_string()));
    assert!(upstream.start_time_unix_nano >= server.start_time_unix_nano);
    assert!(upstream.end_time_unix_nano <= server.end_time_unix_nano);
    // The blocked request: its server span says which stage refused it, and the WAF's
    // span carries the rule count.
    let blocked: Vec<_> = spans
        .iter()
        .map(|(_, s)| s)
        .filter(|s| hex(&s.trace_id) == "11111111111111111111111111111111")
        .collect();
    let server = blocked
        .iter()
        .find(|s| s.kind == 2)
        .expect("the blocked request's span");
    assert!(
        attr(server, "rampart.refused_by").contains("waf"),
        "{server:?}"
    );
    assert!(attr(server, "http.response.status_code").contains("403"));
    let waf = blocked
        .iter()
        .find(|s| s.name == "waf")
        .unwrap_or_else(|| panic!("no waf span in {blocked:?}"));
    assert_eq!(waf.parent_span_id, server.span_id);
    assert!(
        attr(waf, "rampart.waf.rules_matched").contains('1'),
        "{waf:?}"
    );

    // What reached the collector is counted (after its answer: wait for the count).
    let sent = || {
        let m = gw.metrics();
        m.lines()
            .find_map(|l| l.strip_prefix("rampart_spans_sent_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{m}"))
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while sent() < spans.len() as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(sent() >= spans.len() as u64, "{} < {}", sent(), spans.len());

    // A collector that is not there: requests are served as before, nothing waits on it.
    let gw2 = Gateway::start(&format!(
        "tracing:\n  otlp_endpoint: http://127.0.0.1:1/v1/traces\nupstreams:\n{}routes:\n  - name: api\n    paths: [\"/api\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], "")
    ));
    let t0 = Instant::now();
    for _ in 0..50 {
        assert_eq!(c.get(gw2.url("/api/x")).send().await.unwrap().status(), 200);
    }
    assert!(t0.elapsed() < Duration::from_secs(5), "{:?}", t0.elapsed());
}
