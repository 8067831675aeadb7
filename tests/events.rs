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

/// What a fake SIEM received: every event with its id, in arrival order (duplicates kept).
#[derive(Default)]
struct Siem {
    events: Vec<serde_json::Value>,
    requests: usize,
}

/// A Splunk HTTP Event Collector on `addr`: checks the token and the envelopes, keeps the
/// events. When `misbehave`, it starts with a 503, then a 200 whose body is not HEC's, then a
/// connection closed before any answer, then an answer slower than the sink's timeout
/// (whose events it does not keep); then it works.
async fn hec(addr: std::net::SocketAddr, token: &'static str, misbehave: bool) -> Arc<Mutex<Siem>> {
    let got: Arc<Mutex<Siem>> = Arc::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let g = got.clone();
    tokio::spawn(async move {
        let mut conns = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            conns += 1;
            if misbehave && conns == 3 {
                // Read part of the batch, then hang up.
                let mut buf = [0u8; 512];
                let _ = tokio::io::AsyncReadExt::read(&mut s, &mut buf).await;
                drop(s);
                continue;
            }
            let g = g.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let g = g.clone();
                        async move {
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .unwrap_or("")
                                .to_string();
                            let path = req.uri().path().to_string();
                            let b = req.into_body().collect().await.unwrap().to_bytes();
                            let n = {
                                let mut siem = g.lock().unwrap();
                                siem.requests += 1;
                                if misbehave {
                                    siem.requests
                                } else {
                                    99
                                }
                            };
                            assert_eq!(auth, format!("Splunk {token}"));
                            assert_eq!(path, "/services/collector/event");
                            let answer = |status: u16, body: &str| {
                                let mut r =
                                    hyper::Response::new(Full::new(Bytes::from(body.to_string())));
                                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, hyper::Error>(r)
                            };
                            match n {
                                1 => return answer(503, r#"{"text":"Server is busy","code":9}"#),
                                2 => return answer(200, "<html>proxy error</html>"),
                                // Slower than the sink's timeout: given up and sent again.
                                3 => {
                                    tokio::time::sleep(Duration::from_millis(2500)).await;
                                    return answer(200, r#"{"text":"Success","code":0}"#);
                                }
                                _ => {}
                            }
                            let text = std::str::from_utf8(&b).unwrap();
                            let mut siem = g.lock().unwrap();
                            for line in text.lines() {
                                let env: serde_json::Value = serde_json::from_str(line).unwrap();
                                assert!(env["time"].as_f64().unwrap() > 1.7e9, "{env}");
                                assert_eq!(env["sourcetype"], "rampart:security");
                                assert_eq!(env["source"], "rampart");
                                siem.events.push(env["event"].clone());
                            }
                            answer(200, r#"{"text":"Success","code":0}"#)
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .keep_alive(false)
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    got
}

/// An Elasticsearch `_bulk` endpoint on `addr` with `create` semantics: a second `create`
/// of an id answers 409. Misbehaves first: a 429, then a batch whose last item fails
/// with 503 (the others are created, so the retry meets 409s).
async fn bulk(addr: std::net::SocketAddr) -> Arc<Mutex<Siem>> {
    let got: Arc<Mutex<Siem>> = Arc::default();
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let g = got.clone();
    let docs: Arc<Mutex<std::collections::HashSet<String>>> = Arc::default();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let g = g.clone();
            let docs = docs.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let g = g.clone();
                        let docs = docs.clone();
                        async move {
                            assert_eq!(req.uri().path(), "/_bulk");
                            assert_eq!(
                                req.headers()["content-type"].to_str().unwrap(),
                                "application/x-ndjson"
                            );
                            assert_eq!(
                                req.headers()["authorization"].to_str().unwrap(),
                                "ApiKey c2llbTpzZWNyZXQ="
                            );
                            let b = req.into_body().collect().await.unwrap().to_bytes();
                            let mut siem = g.lock().unwrap();
                            siem.requests += 1;
                            let n = siem.requests;
                            let reply = |status: u16, body: String| {
                                let mut r = hyper::Response::new(Full::new(Bytes::from(body)));
                                *r.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                                Ok::<_, hyper::Error>(r)
                            };
                            if n == 1 {
                                return reply(429, "{}".into());
                            }
                            let lines: Vec<&str> =
                                std::str::from_utf8(&b).unwrap().lines().collect();
                            assert_eq!(lines.len() % 2, 0);
                            let mut items = Vec::new();
                            for (k, pair) in lines.chunks(2).enumerate() {
                                let action: serde_json::Value =
                                    serde_json::from_str(pair[0]).unwrap();
                                let doc: serde_json::Value = serde_json::from_str(pair[1]).unwrap();
                                let id = action["create"]["_id"].as_str().unwrap().to_string();
                                assert_eq!(action["create"]["_index"], "rampart-test");
                                assert_eq!(doc["event"]["id"], id.as_str());
                                assert!(doc["@timestamp"].is_string(), "{doc}");
                                let last = k == lines.len() / 2 - 1;
                                let status = if n == 2 && last {
                                    503
                                } else if docs.lock().unwrap().insert(id.clone()) {
                                    siem.events.push(doc);
                                    201
                                } else {
                                    409
                                };
                                items.push(
                                    serde_json::json!({"create": {"_id": id, "status": status}}),
                                );
                            }
                            reply(
                                200,
                                serde_json::json!({"took": 1, "errors": true, "items": items})
                                    .to_string(),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    got
}

/// A JetStream server of the test's own (Debian's nats-server), so it can be down.
fn nats_server(port: u16, store: &std::path::Path) -> std::process::Child {
    // Debian puts it in /usr/sbin, which a non-root PATH may lack.
    let bin = if std::path::Path::new("/usr/sbin/nats-server").exists() {
        "/usr/sbin/nats-server"
    } else {
        "nats-server"
    };
    let child = std::process::Command::new(bin)
        .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
        .arg(store)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nats-server (Debian package nats-server)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Every message of a JetStream stream, in order.
async fn stream_events(url: &str, stream: &str) -> Vec<(String, serde_json::Value)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = async_nats::jetstream::new(client);
    let mut s = js.get_stream(stream).await.unwrap();
    let n = s.info().await.unwrap().state.messages;
    let mut out = Vec::new();
    for seq in 1..=n {
        let m = s.get_raw_message(seq).await.unwrap();
        let msg_id = m
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_string())
            .unwrap_or_default();
        out.push((msg_id, serde_json::from_slice(&m.payload).unwrap()));
    }
    out
}

/// Waits for a metric to reach `want`.
fn wait_metric(gw: &Gateway, prefix: &str, want: f64, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let v = gw.metric(prefix);
        if v == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix} is {v}, not {want}; stderr:\n{}",
            gw.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `n` of the WAF events' URIs (`/api?attack=evil&n=N`), each with how often it came
/// under distinct event ids (1 when nothing was emitted twice).
fn attacks(
    events: &[serde_json::Value],
    uri_of: impl Fn(&serde_json::Value) -> &str,
    id_of: impl Fn(&serde_json::Value) -> &str,
) -> std::collections::BTreeMap<u32, std::collections::HashSet<String>> {
    let mut by_n: std::collections::BTreeMap<u32, std::collections::HashSet<String>> =
        Default::default();
    for e in events {
        let uri = uri_of(e);
        if let Some(n) = uri.split("&n=").nth(1) {
            by_n.entry(n.parse().unwrap())
                .or_default()
                .insert(id_of(e).to_string());
        }
    }
    by_n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn siem_sinks_lose_nothing_across_an_outage_and_a_restart() {
    const ATTACKS: u32 = 10_000;
    let up = Upstream::start("a").await;
    let spool = temp_dir("siem-spool");
    let (hec_port, es_port, nats_port) = (free_port(), free_port(), free_port());
    let stream = format!("RAMPART_{}", std::process::id());
    let config = format!(
        r#"events:
  splunk:
    url: http://127.0.0.1:{hec_port}/services/collector/event
    token: ${{HEC_TOKEN}}
    timeout: 1s
    buffer: {{dir: {dir}/splunk, fsync: always}}
  elastic:
    url: http://127.0.0.1:{es_port}/
    index: rampart-test
    api_key: c2llbTpzZWNyZXQ=
    batch_size: 500
    buffer: {{dir: {dir}/elastic}}
  nats:
    url: nats://127.0.0.1:{nats_port}
    subject: rampart.test.events
    stream: {stream}
    batch_size: 250
    buffer: {{dir: {dir}/nats, fsync: never}}
waf:
  custom_rules: |
    SecRule ARGS:attack "@streq evil" "id:9001,phase:1,deny,status:403,log,msg:'test attack'"
upstreams:
{}routes:
  - name: api
    paths: ["/api"]
    upstream: u
"#,
        upstream_yaml("u", &[up.addr], ""),
        dir = spool.display(),
    );
    let token = std::ffi::OsStr::new("hec-test-token");
    let gw = Gateway::start_env(&config, "", "", &[("HEC_TOKEN", token)]);
    // Every SIEM is down: the attacks go to the buffers.
    let c = client();
    let base = gw.url("/api");
    futures_util::future::join_all((0..8).map(|k| {
        let c = c.clone();
        let base = base.clone();
        async move {
            for n in (k..ATTACKS).step_by(8) {
                let r = c
                    .get(format!("{base}?attack=evil&n={n}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 403);
            }
        }
    }))
    .await;
    for sink in ["splunk", "elastic", "nats"] {
        let pending = format!("rampart_events_sink{{sink=\"{sink}\",what=\"pending\"}}");
        wait_metric(&gw, &pending, f64::from(ATTACKS), 30);
    }
    assert!(gw.metric("rampart_events_sink{sink=\"splunk\",what=\"retries\"}") > 0.0);
    // A crash (SIGKILL), then a damaged tail on one buffer, as a torn write leaves it.
    drop(gw);
    let mut segs: Vec<_> = std::fs::read_dir(spool.join("splunk"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(segs.last().unwrap())
            .unwrap();
        f.write_all(b"\x40\x00\x00\x00torn").unwrap();
    }

    let gw = Gateway::start_env(&config, "", "", &[("HEC_TOKEN", token)]);
    for sink in ["splunk", "elastic", "nats"] {
        let pending = format!("rampart_events_sink{{sink=\"{sink}\",what=\"pending\"}}");
        // The repair notice is an event too, in every sink.
        wait_metric(&gw, &pending, f64::from(ATTACKS) + 1.0, 10);
    }
    // The SIEMs come back.
    let splunk = hec(([127, 0, 0, 1], hec_port).into(), "hec-test-token", true).await;
    let elastic = bulk(([127, 0, 0, 1], es_port).into()).await;
    let nats_store = temp_dir("nats-store");
    let mut nats = nats_server(nats_port, &nats_store);
    for sink in ["splunk", "elastic", "nats"] {
        let pending = format!("rampart_events_sink{{sink=\"{sink}\",what=\"pending\"}}");
        wait_metric(&gw, &pending, 0.0, 120);
    }

    let check = |name: &str,
                 events: &[serde_json::Value],
                 uri: &dyn Fn(&serde_json::Value) -> &str,
                 id: &dyn Fn(&serde_json::Value) -> &str| {
        let by_n = attacks(events, uri, id);
        assert_eq!(by_n.len() as u32, ATTACKS, "{name}: attacks missing");
        assert!(
            by_n.values().all(|ids| ids.len() == 1),
            "{name}: an attack came under two event ids"
        );
        let unique: std::collections::HashSet<&str> = events.iter().map(id).collect();
        let repairs = events
            .iter()
            .filter(|e| uri(e).is_empty() && e.to_string().contains("set aside"))
            .count();
        assert!(repairs >= 1, "{name}: no repair notice");
        unique.len()
    };
    let s = std::mem::take(&mut *splunk.lock().unwrap());
    let hec_unique = check(
        "splunk",
        &s.events,
        &|e| e["uri"].as_str().unwrap_or(""),
        &|e| e["id"].as_str().unwrap(),
    );
    // Batches the HEC failed were sent again: duplicates exist before de-duplication.
    assert!(s.requests >= 3, "{}", s.requests);
    assert!(hec_unique >= ATTACKS as usize);
    for e in s.events.iter().filter(|e| e["stage"] == "waf").take(3) {
        assert_eq!(e["rules"][0]["id"], 9001, "{e}");
    }
    drop(s);
    let es = std::mem::take(&mut *elastic.lock().unwrap());
    check(
        "elastic",
        &es.events,
        &|e| e["url"]["original"].as_str().unwrap_or(""),
        &|e| e["event"]["id"].as_str().unwrap(),
    );
    let first_waf = es
        .events
        .iter()
        .find(|e| e["rule"]["id"][0] == "9001")
        .unwrap();
    assert_eq!(first_waf["event"]["kind"], "alert");
    assert_eq!(first_waf["http"]["response"]["status_code"], 403);
    assert_eq!(first_waf["source"]["ip"], "127.0.0.1");
    drop(es);
    let url = format!("nats://127.0.0.1:{nats_port}");
    let msgs = stream_events(&url, &stream).await;
    let events: Vec<serde_json::Value> = msgs
        .iter()
        .map(|(msg_id, e)| {
            assert_eq!(e["id"].as_str().unwrap(), msg_id);
            e.clone()
        })
        .collect();
    check(
        "nats",
        &events,
        &|e| e["uri"].as_str().unwrap_or(""),
        &|e| e["id"].as_str().unwrap(),
    );
    // In order: ids count up in the order events were emitted (the run before the crash
    // has its own id prefix).
    let first_run = events[0]["id"]
        .as_str()
        .unwrap()
        .split('-')
        .next()
        .unwrap()
        .to_string();
    let seqs: Vec<u64> = events
        .iter()
        .filter_map(|e| {
            let (prefix, seq) = e["id"].as_str()?.split_once('-')?;
            (prefix == first_run).then(|| seq.parse().unwrap())
        })
        .collect();
    assert_eq!(seqs.len() as u32, ATTACKS);
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "nats order");
    for sink in ["splunk", "elastic", "nats"] {
        let lost = format!("rampart_events_sink{{sink=\"{sink}\",what=\"lost\"}}");
        assert_eq!(gw.metric(&lost), 0.0, "{sink}");
    }
    let _ = nats.kill();
    let _ = nats.wait();
    let _ = std::fs::remove_dir_all(&spool);
    let _ = std::fs::remove_dir_all(&nats_store);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_siem_buffer_counts_and_reports_its_loss() {
    let up = Upstream::start("a").await;
    let spool = temp_dir("siem-full");
    let hec_port = free_port();
    // The machine's JetStream stays up: events reach it live, each under its id.
    let stream = format!("RAMPART_LIVE_{}", std::process::id());
    let subject = format!("rampart.live.{}", std::process::id());
    let config = format!(
        r#"events:
  splunk:
    url: http://127.0.0.1:{hec_port}/services/collector/event
    token: t0ken
    flush_interval: 100ms
    buffer: {{dir: {dir}/splunk, max_size: 1MiB, on_full: drop_newest}}
  nats:
    url: nats://127.0.0.1:4222
    subject: {subject}
    stream: {stream}
    flush_interval: 50ms
    buffer: {{dir: {dir}/nats}}
waf:
  custom_rules: |
    SecRule ARGS:attack "@streq evil" "id:9001,phase:1,deny,status:403,log,msg:'test attack'"
upstreams:
{}routes:
  - name: api
    paths: ["/api"]
    upstream: u
"#,
        upstream_yaml("u", &[up.addr], ""),
        dir = spool.display(),
    );
    let gw = Gateway::start(&config);
    let c = client();
    const SENT: u32 = 3_000;
    futures_util::future::join_all((0..4).map(|k| {
        let c = c.clone();
        let url = gw.url("/api");
        async move {
            for n in (k..SENT).step_by(4) {
                // Padding makes each event ~1 KiB, so 1 MiB holds far fewer than were sent.
                let r = c
                    .get(format!("{url}?pad={}&attack=evil&n={n}", "p".repeat(600)))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 403);
            }
        }
    }))
    .await;
    wait_metric(
        &gw,
        "rampart_events_sink{sink=\"nats\",what=\"delivered\"}",
        f64::from(SENT),
        30,
    );
    let lost_metric = "rampart_events_sink{sink=\"splunk\",what=\"lost\"}";
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.metric("rampart_events_sink{sink=\"splunk\",what=\"pending\"}")
        + gw.metric(lost_metric)
        < f64::from(SENT)
    {
        assert!(Instant::now() < deadline, "{}", gw.metrics());
        std::thread::sleep(Duration::from_millis(100));
    }
    let lost = gw.metric(lost_metric);
    assert!(lost > 1000.0, "{lost}");
    assert!(gw.metric("rampart_events_sink{sink=\"splunk\",what=\"bytes\"}") <= 1048576.0);
    let splunk = hec(([127, 0, 0, 1], hec_port).into(), "t0ken", false).await;
    wait_metric(
        &gw,
        "rampart_events_sink{sink=\"splunk\",what=\"pending\"}",
        0.0,
        60,
    );
    let s = std::mem::take(&mut *splunk.lock().unwrap());
    let waf = s.events.iter().filter(|e| e["stage"] == "waf").count();
    let notices: Vec<&serde_json::Value> = s
        .events
        .iter()
        .filter(|e| e["stage"] == "events" && e["action"] == "drop")
        .collect();
    assert!(!notices.is_empty(), "no loss notice");
    // Every attack is either delivered or counted in a notice, and the notices add up to
    // the metric.
    let reported: u64 = notices
        .iter()
        .map(|e| {
            e["reason"]
                .as_str()
                .unwrap()
                .split("lost ")
                .nth(1)
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        })
        .sum();
    let unique: std::collections::HashSet<&str> = s
        .events
        .iter()
        .filter(|e| e["stage"] == "waf")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(reported as f64, lost);
    assert_eq!(
        unique.len() as u64 + reported,
        u64::from(SENT),
        "{waf} delivered"
    );
    drop(s);
    // JetStream got every attack, each message's Nats-Msg-Id its event id.
    let msgs = stream_events("nats://127.0.0.1:4222", &stream).await;
    let waf: Vec<&(String, serde_json::Value)> =
        msgs.iter().filter(|(_, e)| e["stage"] == "waf").collect();
    assert_eq!(waf.len() as u32, SENT);
    assert!(waf.iter().all(|(id, e)| e["id"] == id.as_str()));
    let client = async_nats::connect("nats://127.0.0.1:4222").await.unwrap();
    let _ = async_nats::jetstream::new(client)
        .delete_stream(&stream)
        .await;
    let _ = std::fs::remove_dir_all(&spool);
}

/// Polls `expr` in the page until it returns true.
async fn page_until(b: &mut common::browser::Browser, expr: &str, secs: u64) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if b.eval(expr).await == serde_json::Value::Bool(true) {
            return;
        }
        if Instant::now() > deadline {
            let state = b
                .eval("document.body.dataset.state + ' ' + document.getElementById('status').textContent + ' blocked=' + document.getElementById('blocked').textContent + ' requests=' + document.getElementById('requests').textContent")
                .await;
            panic!("page never had {expr}: {state}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_live_dashboard_shows_traffic_and_attacks_in_a_browser() {
    const TOKEN: &str = "dashboard-viewer-token-0123456789";
    let up = Upstream::start("a").await;
    let gw = Gateway::start_full(
        &format!(
            r#"waf:
  custom_rules: |
    SecRule ARGS:q "@contains <img" "id:9001,phase:1,deny,status:403,log,msg:'markup in q',logdata:'%{{MATCHED_VAR}}'"
upstreams:
{}routes:
  - name: api
    paths: ["/api"]
    upstream: u
  - name: web
    paths: ["/web"]
    upstream: u
"#,
            upstream_yaml("u", &[up.addr], "")
        ),
        "",
        &format!(
            "  tokens: [{{name: vera, role: viewer, sha256: {}}}]\n",
            sha(TOKEN)
        ),
    );
    let c = client();
    let xss = "<img src=x onerror=window.pwned=1>";
    let send = |path: String| {
        let c = c.clone();
        async move { c.get(path).send().await.unwrap().status().as_u16() }
    };
    for i in 0..40 {
        assert_eq!(send(gw.url(&format!("/api/items/{i}"))).await, 200);
    }
    for i in 0..10 {
        assert_eq!(send(gw.url(&format!("/web/page{i}"))).await, 200);
    }
    let attack = |gw: &Gateway| {
        let mut u = reqwest::Url::parse(&gw.url("/api/search")).unwrap();
        u.query_pairs_mut().append_pair("q", xss);
        u.to_string()
    };
    for _ in 0..7 {
        assert_eq!(send(attack(&gw)).await, 403);
    }
    // And once as raw markup in the request target: refused before routing (Pingora could
    // not parse it as a URI), still a blocked request with its event.
    let raw = format!(
        "GET /api/search?q=<img/src=x/onerror=window.pwned=2> HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        gw.port
    );
    assert_eq!(
        status_of(&raw_request(gw.port, raw.as_bytes()).unwrap()),
        400
    );

    // The data stream needs a token; the page carries no data and a strict CSP.
    let admin = format!("http://127.0.0.1:{}", gw.admin_port);
    let r = c
        .get(format!("{admin}/dashboard/stream"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .get(format!("{admin}/dashboard/stream?window=2d"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = c.get(format!("{admin}/dashboard")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    // A plain SSE client gets a message within a second.
    let mut r = c
        .get(format!("{admin}/dashboard/stream?window=5m&route=api"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let mut text = String::new();
    while !text.contains("\n\n") {
        let chunk = tokio::time::timeout(Duration::from_secs(3), r.chunk())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    let text = text.split("\n\n").next().unwrap().to_string();
    let msg: serde_json::Value =
        serde_json::from_str(text.strip_prefix("data: ").unwrap().trim_end()).unwrap();
    assert_eq!(msg["route"], "api");
    assert_eq!(msg["totals"]["blocked"], 7, "{}", msg["totals"]);
    drop(r);

    let mut b = common::browser::Browser::start().await;
    b.call(
        "Emulation.setDeviceMetricsOverride",
        serde_json::json!({"width": 1400, "height": 1500, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    // A wrong token gets the login form, not data.
    b.call(
        "Page.navigate",
        serde_json::json!({"url": format!("{admin}/dashboard#token=wrong")}),
    )
    .await;
    page_until(&mut b, "document.body.dataset.state === 'login'", 10).await;
    b.call(
        "Page.navigate",
        serde_json::json!({"url": format!("{admin}/dashboard#token={TOKEN}")}),
    )
    .await;
    page_until(&mut b, "document.body.dataset.state === 'live'", 10).await;
    let text = |id: &str| format!("document.getElementById('{id}').textContent");
    page_until(&mut b, &format!("{} === '8'", text("blocked")), 5).await;
    page_until(&mut b, &format!("{} === '58'", text("requests")), 5).await;
    page_until(
        &mut b,
        "document.querySelector('#stages li[data-key=waf]')?.dataset.n === '7' && \
         document.querySelector('#rules li[data-key=\"9001\"]')?.dataset.n === '7' && \
         document.querySelector('#stages li[data-key=framing]')?.dataset.n === '1' && \
         document.querySelector('#ips li[data-key=\"127.0.0.1\"]')?.dataset.n === '8'",
        5,
    )
    .await;
    // The attack (decoded, in the rule's matched data) is shown as text: its markup is
    // never rendered or run.
    page_until(
        &mut b,
        &format!(
            "[...document.querySelectorAll('#events td')].some(td => td.textContent.includes({}))",
            serde_json::to_string(xss).unwrap()
        ),
        5,
    )
    .await;
    page_until(
        &mut b,
        "[...document.querySelectorAll('#events td.req')].some(td => \
         td.textContent.includes('<img/src=x/onerror=window.pwned=2>'))",
        5,
    )
    .await;
    assert_eq!(
        b.eval("typeof window.pwned === 'undefined' && document.querySelectorAll('main img').length === 0")
            .await,
        true
    );
    page_until(
        &mut b,
        &format!(
            "[...document.querySelectorAll('#upstreams td')].some(td => td.textContent === '{}') && \
             document.querySelector('#upstreams td.up') !== null",
            up.addr
        ),
        5,
    )
    .await;
    // Live: new attacks show within the update period.
    for _ in 0..5 {
        assert_eq!(send(attack(&gw)).await, 403);
    }
    let before = Instant::now();
    page_until(&mut b, &format!("{} === '13'", text("blocked")), 5).await;
    assert!(
        before.elapsed() < Duration::from_millis(2500),
        "{:?}",
        before.elapsed()
    );
    // The picture a person would look at.
    let shot = b
        .call(
            "Page.captureScreenshot",
            serde_json::json!({"format": "png"}),
        )
        .await;
    let png = base64::Engine::decode(
        &base64::engine::general_purpose::STANDARD,
        shot["data"].as_str().unwrap(),
    )
    .unwrap();
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard.png");
    std::fs::write(&out, &png).unwrap();
    assert!(png.len() > 20_000, "{} bytes", png.len());
    // Filtered to one route and a longer window.
    b.eval(
        "(() => { const r = document.getElementById('route'); r.value = 'web'; \
         r.dispatchEvent(new Event('change')); \
         const w = document.getElementById('window'); w.value = '1h'; \
         w.dispatchEvent(new Event('change')); return true })()",
    )
    .await;
    page_until(
        &mut b,
        &format!(
            "{} === '10' && {} === '0'",
            text("requests"),
            text("blocked")
        ),
        5,
    )
    .await;
    assert_eq!(
        b.eval("document.querySelectorAll('#events tbody tr').length")
            .await,
        0
    );
}
