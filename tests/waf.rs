//! The WAF in the request path: CRS v4 blocking attacks before the upstream sees a byte,
//! bodies held back and forwarded intact, per-route mode and exclusions, response phases,
//! and the security events and metrics it produces.
mod common;
use common::*;
use std::time::{Duration, Instant};

const CRS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/crs");

fn crs_waf(extra: &str) -> String {
    format!(
        "waf:\n  rules:\n    - {CRS}/rules/crs-setup.conf.example\n    - {CRS}/rules/*.conf\n{extra}"
    )
}

/// Event lines for a request id, waiting up to 2 s for the writer.
fn event_for(file: &std::path::Path, request_id: &str) -> serde_json::Value {
    event_where(file, Duration::from_secs(2), |v| {
        v["request_id"] == request_id
    })
}

fn rule_ids(ev: &serde_json::Value) -> Vec<u64> {
    ev["rules"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["id"].as_u64()).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn crs_blocks_attacks_before_the_upstream_and_passes_clean_traffic() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("waf");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start(&format!(
        "events:\n  file: {}\n{}upstreams:\n{}routes:\n  - name: api\n    paths: [\"/\"]\n    upstream: u\n  - name: watched\n    paths: [\"/watched\"]\n    upstream: u\n    waf: {{ mode: detect }}\n",
        events.display(),
        crs_waf(""),
        upstream_yaml("u", &[up.addr], "")
    ));
    let c = client();
    let host = "api.example.test";

    // A clean request passes and produces no event.
    let r = c
        .get(gw.url("/items?page=2&sort=name"))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let clean_id = r.headers()["x-request-id"].to_str().unwrap().to_string();

    // SQL injection in the query: 403, the upstream never sees it, the body says nothing
    // but the request id.
    let hits = up.hits.load(std::sync::atomic::Ordering::SeqCst);
    let r = c
        .get(gw.url("/items?id=1%20UNION%20SELECT%20password%20FROM%20users"))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(
        body,
        serde_json::json!({"error": "forbidden", "request_id": id})
    );
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), hits);
    let ev = event_for(&events, &id);
    assert_eq!(ev["stage"], "waf");
    assert_eq!(ev["action"], "block");
    assert_eq!(ev["status"], 403);
    assert_eq!(ev["route"], "api");
    let ids = rule_ids(&ev);
    assert!(ids.contains(&942100), "{ids:?}");
    assert!(ids.contains(&949110), "{ids:?}");
    assert!(ev["anomaly_score"].as_i64().unwrap() >= 5);
    let first = &ev["rules"][0];
    assert!(first["msg"].as_str().unwrap().contains("SQL Injection"));
    assert!(first["tags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t == "attack-sqli"));

    // XSS in a form body: inspected before the upstream is contacted.
    let r = c
        .post(gw.url("/comments"))
        .header("Host", host)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("comment=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), hits);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert!(rule_ids(&event_for(&events, &id)).contains(&941100));

    // The same attack in a chunked JSON body.
    let (a, b) = (r#"{"q": "1' UNION"#, r#" SELECT * FROM t--"}"#);
    let raw = format!(
        "POST /items HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    let resp = raw_request(gw.port, raw.as_bytes()).unwrap();
    assert_eq!(status_of(&resp), 403, "{resp}");
    assert_eq!(up.hits.load(std::sync::atomic::Ordering::SeqCst), hits);

    // A clean 2 KiB JSON body is held for inspection, then reaches the upstream intact.
    let items: Vec<String> = (0..40)
        .map(|i| format!("{{\"sku\":\"item-{i:04}\",\"qty\":{i},\"note\":\"blue\"}}"))
        .collect();
    let json = format!("{{\"order\":[{}]}}", items.join(","));
    assert!(json.len() > 1500);
    let r = c
        .post(gw.url("/orders"))
        .header("Host", host)
        .header("Content-Type", "application/json")
        .body(json.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["body"], json.as_str());

    // Over the 64 KiB inspection limit: refused (reject is the default action).
    let big = format!("data={}", "a".repeat(100 * 1024));
    let r = c
        .post(gw.url("/upload"))
        .header("Host", host)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);

    // A detect-mode route lets the attack through but reports it.
    let r = c
        .get(gw.url("/watched?id=1%20UNION%20SELECT%20password%20FROM%20users"))
        .header("Host", host)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    let ev = event_for(&events, &id);
    assert_eq!(ev["action"], "detect");
    assert_eq!(ev["route"], "watched");
    assert!(rule_ids(&ev).contains(&942100));

    // A malformed request line is refused before the WAF, and is still an event.
    let resp = raw_request(
        gw.port,
        b"GET /a b HTTP/1.1\r\nHost: api.example.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status_of(&resp), 400, "{resp}");
    let id = header_of(&resp, "x-request-id").unwrap();
    let ev = event_for(&events, &id);
    assert_eq!(ev["stage"], "framing");
    assert_eq!(ev["action"], "block");
    assert_eq!(ev["status"], 400);

    // No event for the clean request; WAF metrics by route and rule.
    let text = std::fs::read_to_string(&events).unwrap();
    assert!(!text.contains(&clean_id));
    assert!(gw.metric("rampart_waf_blocked_requests_total{route=\"api\",rule=\"949110\"}") >= 2.0);
    assert!(gw.metric("rampart_blocked_requests_total{route=\"api\",stage=\"waf\"}") >= 3.0);
    assert!(gw.metric("rampart_waf_rule_matches_total{route=\"watched\",rule=\"942100\"}") >= 1.0);
    assert!(gw
        .metrics()
        .contains("rampart_waf_anomaly_score_bucket{route=\"api\""));
}

/// Custom rules, exclusions per route, partial inspection of large bodies, and the
/// response phases (headers and body) against a reflecting backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn custom_rules_exclusions_partial_bodies_and_response_phases() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("waf2");
    let events = dir.join("events.jsonl");
    let rules = r#"
    SecRequestBodyAccess On
    SecRule ARGS "@contains evil" "id:1001,phase:2,deny,log,msg:'evil argument',tag:'custom-evil'"
    SecRule REQUEST_HEADERS:X-Forbidden "@rx ." "id:1002,phase:1,deny,log,msg:'forbidden header'"
    SecRule RESPONSE_HEADERS:X-Internal-Trace "@rx ." "id:1003,phase:3,deny,log,msg:'trace header leak'"
    SecRule RESPONSE_BODY "@contains SECRET-LEAK" "id:1004,phase:4,deny,log,msg:'secret in response'""#;
    let gw = Gateway::start(&format!(
        r#"events:
  file: {ev}
waf:
  custom_rules: |{rules}
  inspect_response_body: true
  request_body_limit: 1KiB
  request_body_limit_action: process_partial
upstreams:
{up}routes:
  - name: strict
    paths: ["/strict"]
    upstream: u
  - name: reflect
    paths: ["/reflect"]
    upstream: u
  - name: by-id
    paths: ["/by-id"]
    upstream: u
    waf: {{ exclusions: [1001] }}
  - name: by-tag
    paths: ["/by-tag"]
    upstream: u
    waf: {{ exclusions: ["tag:custom-evil"] }}
  - name: by-target
    paths: ["/by-target"]
    upstream: u
    waf: {{ exclusions: ["1001;ARGS:note"] }}
  - name: off
    paths: ["/off"]
    upstream: u
    waf: {{ enabled: false }}
"#,
        ev = events.display(),
        up = upstream_yaml("u", &[up.addr], ""),
    ));
    let c = client();
    let status = |path: &'static str| {
        let c = c.clone();
        let url = gw.url(path);
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/strict?a=evil").await, 403);
    assert_eq!(status("/strict?a=fine").await, 200);
    assert_eq!(status("/by-id?a=evil").await, 200);
    assert_eq!(status("/by-tag?a=evil").await, 200);
    assert_eq!(status("/by-target?note=evil").await, 200);
    assert_eq!(status("/by-target?other=evil").await, 403);
    assert_eq!(status("/off?a=evil").await, 200);
    let r = c
        .get(gw.url("/strict"))
        .header("X-Forbidden", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // process_partial: the first KiB is inspected, the whole body still reaches the upstream.
    let body = format!("a=1&pad={}", "x".repeat(3000));
    let r = c
        .post(gw.url("/strict"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["body"], body.as_str());
    // An attack inside the inspected part is still caught.
    let r = c
        .post(gw.url("/strict"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("a=evil&pad={}", "x".repeat(3000)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // Phase 3: a response header the rules refuse → the configured status, no body.
    let r = c
        .post(gw.url("/reflect"))
        .body(r#"{"status": 200, "headers": {"X-Internal-Trace": "db=10.0.0.5"}, "body": "ok"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert!(r.headers().get("x-internal-trace").is_none());
    let id = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.bytes().await.unwrap().len(), 0);
    let ev = event_for(&events, &id);
    assert_eq!(ev["action"], "block");
    assert_eq!(rule_ids(&ev), vec![1003]);

    // Phase 4: the body is held back until inspected; a leak never reaches the client.
    let leak = format!("{}SECRET-LEAK{}", "a".repeat(5000), "b".repeat(5000));
    let payload = serde_json::json!({"status": 200, "body": leak}).to_string();
    let raw = format!(
        "POST /reflect HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{payload}",
        payload.len()
    );
    let resp = raw_request(gw.port, raw.as_bytes()).unwrap();
    assert!(!resp.contains("SECRET-LEAK"), "leaked: {resp}");
    // A clean reflected body passes whole.
    let clean = "c".repeat(20_000);
    let r = c
        .post(gw.url("/reflect"))
        .body(serde_json::json!({"status": 200, "body": clean}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), clean);
    let deadline = Instant::now() + Duration::from_secs(2);
    while gw.metric("rampart_waf_blocked_requests_total{route=\"reflect\",rule=\"1004\"}") < 1.0 {
        assert!(Instant::now() < deadline, "{}", gw.metrics());
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn bad_waf_settings_are_refused_with_their_location() {
    let dir = temp_dir("wafcfg");
    let rules = dir.join("bad.conf");
    std::fs::write(
        &rules,
        "SecRuleEngine On\n\nSecRule ARGS \"@bogusOperator x\" \"id:1,phase:2,deny\"\n",
    )
    .unwrap();
    let cfg = dir.join("c.yaml");
    let write = |waf: &str, route_extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "listeners:\n  - name: p\n    address: 127.0.0.1:1\nupstreams:\n  u:\n    targets: [\"127.0.0.1:2\"]\nroutes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n{route_extra}{waf}"
            ),
        )
        .unwrap();
    };
    write(&format!("waf:\n  rules: [\"{}\"]\n", rules.display()), "");
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("bad.conf:3"), "{err}");
    assert!(err.contains("bogusOperator"), "{err}");

    write(
        "waf:\n  custom_rules: \"SecRule ARGS \\\"@rx a\\\" \\\"id:1,phase:2,deny\\\"\"\n  request_body_limit: 1MiB\n  paranoia: 7\n",
        "    waf: { exclusions: [\"tag:\", \"12;\"] }\n",
    );
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    for needle in [
        "waf.request_body_limit",
        "64KiB",
        "waf.paranoia",
        "exclusions.0",
        "exclusions.1",
    ] {
        assert!(err.contains(needle), "missing {needle}: {err}");
    }

    write("", "    waf: { mode: detect }\n");
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("top-level waf"), "{err}");

    write(
        &format!(
            "waf:\n  rules: [\"{}/nothing-here/*.conf\"]\n",
            dir.display()
        ),
        "",
    );
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("no file matches"), "{err}");
}

/// process_partial with bodies past Pingora's 64 KiB replay buffer: the WAF inspects the
/// first 64 KiB, and the upstream still gets every byte, in order. (A body whose last read
/// both crosses 64 KiB and ends it cannot be replayed by Pingora and is refused with 413;
/// sizes here are past that window, so the outcome does not depend on read timing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_bodies_reach_the_upstream_whole_after_partial_inspection() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "waf:\n  custom_rules: \"SecRule ARGS \\\"@contains evil\\\" \\\"id:1,phase:2,deny\\\"\"\n  request_body_limit_action: process_partial\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], "")
    ));
    let c = client();
    for size in [300 * 1024, 900 * 1024] {
        // Distinct bytes along the body, so a lost or reordered piece shows.
        let body: String = (0..size)
            .map(|i| char::from(b'a' + ((i / 1000) % 26) as u8))
            .collect();
        let r = c
            .post(gw.url("/upload"))
            .header("Content-Type", "text/plain")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "size {size}");
        let seen: serde_json::Value = r.json().await.unwrap();
        let got = seen["body"].as_str().unwrap();
        assert_eq!(got.len(), body.len(), "size {size}");
        assert!(got == body, "size {size}: body changed on the way");
    }
    // A chunked body, inspected then replayed upstream (re-chunked by the proxy).
    let raw = "POST /chunked HTTP/1.1\r\nHost: localhost\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nHi \r\n3\r\nCRS\r\n0\r\n\r\n";
    let resp = raw_request(gw.port, raw.as_bytes()).unwrap();
    assert_eq!(status_of(&resp), 200, "{resp}");
    assert!(resp.contains("\"body\":\"Hi CRS\""), "{resp}");
    let r = c
        .post(gw.url("/upload"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(format!("a=evil&pad={}", "p".repeat(200 * 1024)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Rules reload with the config: a changed rule file (same config) or new inline rules take
/// effect on SIGHUP; a broken rule is refused and the running rules stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_reload_and_a_broken_rule_keeps_the_old_set() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("wafreload");
    let rules = dir.join("custom.conf");
    let write_rules = |word: &str| {
        let tmp = dir.join("custom.conf.tmp");
        std::fs::write(
            &tmp,
            format!("SecRule ARGS \"@contains {word}\" \"id:5001,phase:2,deny,msg:'{word}'\"\n"),
        )
        .unwrap();
        std::fs::rename(&tmp, &rules).unwrap();
    };
    write_rules("alpha");
    let body = |inline: &str| {
        format!(
            "waf:\n  rules: [\"{}\"]\n  custom_rules: \"{inline}\"\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
            rules.display(),
            upstream_yaml("u", &[up.addr], "")
        )
    };
    let gw = Gateway::start(&body(""));
    let c = client();
    let status = |q: &'static str| {
        let (c, url) = (c.clone(), gw.url(q));
        async move { c.get(url).send().await.unwrap().status().as_u16() }
    };
    assert_eq!(status("/?a=alpha").await, 403);
    assert_eq!(status("/?a=beta").await, 200);

    // The rule file changes, the config does not: SIGHUP recompiles.
    write_rules("beta");
    let g = gw.readyz_generation();
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.readyz_generation() == g {
        assert!(Instant::now() < deadline, "no reload: {}", gw.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(status("/?a=beta").await, 403);
    assert_eq!(status("/?a=alpha").await, 200);

    // A broken inline rule: refused, counted, and the running rules stay.
    let failed = gw.metric("rampart_config_reloads_total{result=\"failed\"}");
    gw.write_config(&body(
        "SecRule ARGS \\\"@noSuchOperator x\\\" \\\"id:6001,phase:2,deny\\\"",
    ));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    while gw.metric("rampart_config_reloads_total{result=\"failed\"}") <= failed {
        assert!(Instant::now() < deadline, "not refused: {}", gw.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(gw.stderr().contains("noSuchOperator"), "{}", gw.stderr());
    assert_eq!(status("/?a=beta").await, 403);
}

/// HTTP/2 (h2c) requests go through the same WAF: headers from the decoded header list,
/// bodies held back and replayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn h2c_requests_are_inspected_too() {
    let up = Upstream::start("a").await;
    let gw = Gateway::start(&format!(
        "{}upstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        crs_waf(""),
        upstream_yaml("u", &[up.addr], "")
    ));
    let c = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let r = c
        .get(gw.url("/items?id=1%20UNION%20SELECT%20password%20FROM%20users"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 403);
    let r = c
        .post(gw.url("/comments"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("comment=%3Cscript%3Ealert(document.cookie)%3C%2Fscript%3E")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let json = r#"{"order":{"sku":"A-1","qty":2,"note":"leave at the door"}}"#;
    let r = c
        .post(gw.url("/orders"))
        .header("Content-Type", "application/json")
        .body(json)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["body"], json);
}

/// Names reach the rules with the bytes the backend receives: an argument or cookie name
/// holding a byte that is not UTF-8 is what `@validateUtf8Encoding` on ARGS_NAMES (CRS's
/// 920250) looks for, and it used to reach the rules as U+FFFD, valid. A JSON body that is
/// not JSON (a bare word) is refused, not read as a value no backend would accept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_keep_their_bytes_and_json_bodies_are_json() {
    use std::sync::atomic::Ordering::SeqCst;
    let up = Upstream::start("a").await;
    let rules = r#"
    SecRequestBodyAccess On
    SecRule ARGS_NAMES|REQUEST_COOKIES_NAMES "@validateUtf8Encoding" "id:1101,phase:2,deny,log,msg:'name not UTF-8'""#;
    let gw = Gateway::start(&format!(
        "waf:\n  custom_rules: |{rules}\nupstreams:\n{}routes:\n  - name: api\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], "")
    ));
    let c = client();
    let host = "api.example.test";
    let get = |q: &'static str| c.get(gw.url(&format!("/items?{q}"))).header("Host", host);
    // UTF-8 names pass (an accented one too); a name with 0xFD or an overlong form does not.
    for (q, want) in [
        ("ok=1", 200),
        ("caf%C3%A9=1", 200),
        ("x%FD=1", 403),
        ("%C0%AE%C0%AE=1", 403),
        ("a=1&&b%FF=2", 403),
    ] {
        let before = up.hits.load(SeqCst);
        let r = get(q).send().await.unwrap();
        assert_eq!(r.status(), want, "?{q}");
        assert_eq!(
            up.hits.load(SeqCst) - before,
            usize::from(want == 200),
            "?{q}"
        );
    }
    // The same in a form body and in a cookie name.
    let before = up.hits.load(SeqCst);
    let r = c
        .post(gw.url("/items"))
        .header("Host", host)
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(&b"n%FE=1"[..])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(gw.url("/items"))
        .header("Host", host)
        .header(
            "Cookie",
            reqwest::header::HeaderValue::from_bytes(b"sid=1; c\xfe=2").unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(up.hits.load(SeqCst), before);
    // JSON: numbers and literals as RFC 8259 has them pass; a bare word is refused.
    for (body, want) in [
        (r#"{"a": 1e3, "b": [true, null, -0.5]}"#, 200),
        (r#"{"a": x}"#, 400),
        (r#"{"a": tru}"#, 400),
        ("test", 400),
    ] {
        let before = up.hits.load(SeqCst);
        let r = c
            .post(gw.url("/items"))
            .header("Host", host)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), want, "{body}");
        assert_eq!(
            up.hits.load(SeqCst) - before,
            usize::from(want == 200),
            "{body}"
        );
    }
}
