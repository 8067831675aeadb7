//! CRS's regression tests (go-ftw YAML, ../shared/crs/tests) through the running gateway
//! over real sockets: each stage's request is sent byte for byte (raw `encoded_request`s
//! too) to `rampart serve` with CRS configured as CRS's CI does (crs-setup.conf.example,
//! crs-test-setup.conf, rules; detection only, response bodies inspected), in front of an
//! albedo-like backend. Matched rule ids come from the security event file, found by the
//! `X-Request-Id` each response carries. Prints `passed N, failed M, skipped K`.
//! `WAF_FTW_VERBOSE=1` lists the failing tests.

mod common;
#[path = "../crates/rampart-waf/tests/ftw/mod.rs"]
mod ftw;

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CRS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/crs");
const SKIPS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/crs-gateway-skips.txt");

/// CRS's test backend: 200 and an empty body for anything, except `POST /reflect`.
async fn albedo() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    |req: hyper::Request<hyper::body::Incoming>| async move {
                        let reflect =
                            req.method() == hyper::Method::POST && req.uri().path() == "/reflect";
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        Ok::<_, hyper::Error>(if reflect {
                            common::reflect(&body)
                        } else {
                            hyper::Response::new(Full::new(Bytes::new()))
                        })
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    addr
}

/// The bytes go-ftw would send for a stage.
fn request_bytes(input: &ftw::Input) -> Option<Vec<u8>> {
    if input.encoded_request.is_some() {
        return input.raw_request();
    }
    let method = input.method.clone().unwrap_or_else(|| "GET".into());
    let uri = input.uri.clone().unwrap_or_else(|| "/".into());
    let version = input.version.clone().unwrap_or_else(|| "HTTP/1.1".into());
    let mut headers = input.header_list();
    let body = input.body();
    let has = |h: &[(String, Vec<u8>)], n: &str| h.iter().any(|(k, _)| k.eq_ignore_ascii_case(n));
    if input.autocomplete_headers.unwrap_or(true) {
        if !body.is_empty() && !has(&headers, "content-length") {
            headers.push(("Content-Length".into(), body.len().to_string().into_bytes()));
        }
        if !body.is_empty() && !has(&headers, "content-type") {
            headers.push((
                "Content-Type".into(),
                b"application/x-www-form-urlencoded".to_vec(),
            ));
        }
        if !has(&headers, "connection") {
            headers.push(("Connection".into(), b"close".to_vec()));
        }
    }
    let mut out = format!("{method} {uri} {version}\r\n").into_bytes();
    for (k, v) in headers {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(&v);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    Some(out)
}

/// (status, X-Request-Id) of the response; status 0 when no valid response came.
fn send(port: u16, bytes: &[u8]) -> (u16, Option<String>) {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, None);
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(3)));
    if s.write_all(bytes).is_err() {
        return (0, None);
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    // The head is enough: status and request id. Stop reading once it is complete.
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    if !text.starts_with("HTTP/") {
        return (0, None);
    }
    // Drain the rest briefly so the gateway finishes the request (and its logging phase).
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    while let Ok(n) = s.read(&mut chunk) {
        if n == 0 {
            break;
        }
    }
    (status_of(&text), header_of(&text, "x-request-id"))
}

struct Sent {
    name: String,
    stage: usize,
    status: u16,
    request_id: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crs_regression_suite_through_the_gateway() {
    let backend = albedo().await;
    let dir = temp_dir("crsgw");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start(&format!(
        r#"events:
  file: {ev}
limits:
  max_request_body: 16MiB
  max_header_bytes: 64KiB
  request_header_timeout: 2s
waf:
  rules:
    - {CRS}/rules/crs-setup.conf.example
    - {CRS}/crs-test-setup.conf
    - {CRS}/rules/*.conf
  mode: detect
  request_body_limit_action: process_partial
  inspect_response_body: true
upstreams:
  albedo:
    targets: ["{backend}"]
# CRS's own scanner rules (913xxx) are under test: known scanners reach the WAF.
bots:
  policy:
    bad_bot: allow
routes:
  - name: all
    paths: ["/"]
    upstream: albedo
"#,
        ev = events.display(),
    ));
    let files = ftw::load(CRS);
    let listed = ftw::listed_skips(SKIPS);
    let known: Vec<String> = files
        .iter()
        .flat_map(|(_, f)| {
            f.tests
                .iter()
                .map(|t| format!("{}-{}", f.rule_id, t.test_id))
        })
        .collect();
    for s in &listed {
        assert!(known.contains(s), "{SKIPS} lists {s}, which is not a test");
    }
    // Every stage of every test, sent from a few threads (the gateway is the bottleneck).
    let mut jobs = Vec::new();
    for (_, file) in &files {
        for t in &file.tests {
            let name = format!("{}-{}", file.rule_id, t.test_id);
            if listed.contains(&name) {
                continue;
            }
            for (i, s) in t.stages.iter().enumerate() {
                jobs.push((name.clone(), i, request_bytes(&s.input)));
            }
        }
    }
    let port = gw.port;
    let jobs = Arc::new(Mutex::new(jobs));
    let sent = Arc::new(Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (jobs, sent) = (jobs.clone(), sent.clone());
            std::thread::spawn(move || loop {
                let Some((name, stage, bytes)) = jobs.lock().unwrap().pop() else {
                    break;
                };
                let (status, request_id) = match bytes {
                    Some(b) => send(port, &b),
                    None => (0, None),
                };
                sent.lock().unwrap().push(Sent {
                    name,
                    stage,
                    status,
                    request_id,
                });
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    // Events are on disk within 100 ms of each response.
    std::thread::sleep(Duration::from_millis(500));
    let mut matched: HashMap<String, (Vec<u64>, String)> = HashMap::new();
    for line in std::fs::read_to_string(&events).unwrap_or_default().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let Some(id) = v["request_id"].as_str() else {
            continue;
        };
        let entry = matched.entry(id.to_string()).or_default();
        for r in v["rules"].as_array().into_iter().flatten() {
            let rid = r["id"].as_u64().unwrap_or(0);
            entry.0.push(rid);
            entry.1.push_str(&ftw::log_line(
                rid,
                r["msg"].as_str().unwrap_or(""),
                r["data"].as_str().unwrap_or(""),
                r["severity"].as_str().unwrap_or(""),
            ));
        }
    }
    let sent: HashMap<(String, usize), Sent> = sent
        .lock()
        .unwrap()
        .drain(..)
        .map(|s| ((s.name.clone(), s.stage), s))
        .collect();
    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    let empty = (Vec::new(), String::new());
    for (_, file) in &files {
        for t in &file.tests {
            let name = format!("{}-{}", file.rule_id, t.test_id);
            if listed.contains(&name) {
                skipped += 1;
                continue;
            }
            let mut why = Vec::new();
            for (i, stage) in t.stages.iter().enumerate() {
                let s = &sent[&(name.clone(), i)];
                let (ids, log) = s
                    .request_id
                    .as_ref()
                    .and_then(|id| matched.get(id))
                    .unwrap_or(&empty);
                let out = &stage.output;
                if out.expect_error == Some(true) {
                    // No valid HTTP response, or Rampart's own 400 for what it cannot parse.
                    if !(s.status == 0 || s.status == 400) {
                        why.push(format!("stage {i}: expected an error, got {}", s.status));
                    }
                    continue;
                }
                if let Some(st) = out.statuses() {
                    if !st.contains(&s.status) {
                        why.push(format!("stage {i}: status {} not in {st:?}", s.status));
                    }
                }
                if !ftw::log_ok(&out.log, ids, log) {
                    why.push(format!(
                        "stage {i}: status {}, matched {ids:?}, wanted {:?} not {:?}",
                        s.status, out.log.expect_ids, out.log.no_expect_ids
                    ));
                }
            }
            if why.is_empty() {
                passed += 1;
            } else {
                failed += 1;
                failures.push(format!("{name}: {}", why.join("; ")));
            }
        }
    }
    println!("passed {passed}, failed {failed}, skipped {skipped}");
    if std::env::var("WAF_FTW_VERBOSE").is_ok() {
        for f in &failures {
            println!("FAIL {f}");
        }
    }
    // Every failure is listed with its reason in crs-gateway-failures.txt: exact, so a new
    // failure fails the run and so does a listed test that passes.
    let listed: Vec<String> = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/crs-gateway-failures.txt"
    ))
    .unwrap_or_default()
    .lines()
    .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
    .collect();
    let names: Vec<String> = failures
        .iter()
        .map(|f| f.split(':').next().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        listed, names,
        "crs-gateway-failures.txt is out of date: {failures:?}"
    );
}
