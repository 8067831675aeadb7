//! The rules engine per route, through real sockets: rewrites and header changes the
//! upstream receives, another upstream by consumer group, redirects and fixed answers,
//! conditions on the client's network, and requests that could be read two ways refused.
mod common;
use common::*;
use std::sync::atomic::Ordering;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY: &str = "rules-test-key-0123456789";

fn config(main: &Upstream, beta: &Upstream) -> String {
    format!(
        r#"consumers:
  - id: alice
    groups: [beta-testers]
    api_keys:
      - sha256: {key}
auth:
  api_key: {{ header: X-API-Key }}
network:
  lists:
    office: {{ cidrs: ["127.0.0.4/31"] }}
upstreams:
{main}{beta}routes:
  - name: api
    paths: ["/api"]
    upstream: main
    auth: {{ methods: [api_key], optional: true }}
    rules:
      - name: legacy
        if: {{ path: {{ prefix: /api/v1 }} }}
        then:
          rewrite: {{ prefix: /api/v1, to: /v2 }}
          request_headers: {{ set: {{ X-Api-Version: "1" }}, remove: [X-Debug] }}
      - name: beta
        if: {{ groups: [beta-testers], headers: [{{ name: X-Beta, equals: "on" }}] }}
        then: {{ upstream: beta }}
      - name: moved
        if: {{ path: {{ exact: /api/old }} }}
        then: {{ redirect: {{ location: "https://new.example.test/api/new", status: 308 }} }}
      - name: maintenance
        if: {{ query: [{{ name: maintenance, equals: "1" }}] }}
        then:
          respond: {{ status: 503, body: '{{"down":true}}', content_type: application/json }}
          response_headers: {{ set: {{ Retry-After: "60" }} }}
      - name: debug-from-the-office-only
        if: {{ path: {{ prefix: /api/debug }} }}
        unless: {{ networks: [office] }}
        then: {{ respond: {{ status: 404, body: "not here" }} }}
      - name: tag
        then: {{ response_headers: {{ add: {{ X-Served-By: rampart }} }} }}
"#,
        key = sha256_hex(KEY.as_bytes()),
        main = upstream_yaml("main", &[main.addr], ""),
        beta = upstream_yaml("beta", &[beta.addr], ""),
    )
}

fn request(path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: api.example.test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req + "Connection: close\r\n\r\n"
}

fn send(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> String {
    raw_request(gw.port, request(path, headers).as_bytes()).unwrap()
}

/// The JSON the echo upstream answered with.
fn seen(resp: &str) -> serde_json::Value {
    serde_json::from_str(&body_of(resp)).unwrap_or_else(|_| panic!("not the upstream: {resp}"))
}

/// One request from a given loopback address (127.0.0.x).
async fn send_from(from: &str, gw: &Gateway, path: &str) -> String {
    let s = tokio::net::TcpSocket::new_v4().unwrap();
    s.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut c = s
        .connect(format!("127.0.0.1:{}", gw.port).parse().unwrap())
        .await
        .unwrap();
    c.write_all(request(path, &[]).as_bytes()).await.unwrap();
    let mut out = Vec::new();
    c.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn rules_change_what_the_upstream_gets_and_answer_for_it() {
    let main = Upstream::start("main").await;
    let beta = Upstream::start("beta").await;
    let gw = Gateway::start(&config(&main, &beta));
    let key = ("X-API-Key", KEY);

    // Rewritten path (query kept), header set and removed; the answer tagged.
    let r = send(&gw, "/api/v1/items?x=1", &[("X-Debug", "1")]);
    assert_eq!(status_of(&r), 200, "{r}");
    let v = seen(&r);
    assert_eq!(v["server"], "main");
    assert_eq!(v["path"], "/v2/items");
    assert_eq!(v["query"], "x=1");
    assert_eq!(v["headers"]["x-api-version"], "1");
    assert!(v["headers"].get("x-debug").is_none(), "{v}");
    assert_eq!(header_of(&r, "x-served-by").as_deref(), Some("rampart"));
    let log = gw.access_log_with(&["\"rules\""]);
    assert!(log.contains(r#""rules":["legacy","tag"]"#), "{log}");
    // The canonical path is what is rewritten: merged slashes, decoded unreserved bytes.
    let v = seen(&send(&gw, "/api/%76%31//items", &[]));
    assert_eq!(v["path"], "/v2/items");
    // A rewrite never lifts a request out of its new prefix: dot segments are refused first.
    let before = main.hits.load(Ordering::SeqCst);
    for p in ["/api/v1/../../admin", "/api/v1/%2e%2e/%2e%2e/admin"] {
        let r = send(&gw, p, &[]);
        assert_eq!(status_of(&r), 400, "{p}: {r}");
    }
    assert_eq!(main.hits.load(Ordering::SeqCst), before);

    // Another upstream for a consumer group, on its own header.
    let v = seen(&send(&gw, "/api/items", &[key, ("X-Beta", "on")]));
    assert_eq!(v["server"], "beta");
    // Not the group (anonymous), not the header, or the header under another spelling
    // (Rampart drops `_` names; the backend never sees them either).
    for h in [
        vec![("X-Beta", "on")],
        vec![key, ("X-Beta", "off")],
        vec![key, ("X_Beta", "on")],
    ] {
        let v = seen(&send(&gw, "/api/items", &h));
        assert_eq!(v["server"], "main", "{h:?}");
    }
    // The header it decides on, sent twice: which one would count? Refused.
    let hits = main.hits.load(Ordering::SeqCst) + beta.hits.load(Ordering::SeqCst);
    let r = send(
        &gw,
        "/api/items",
        &[key, ("X-Beta", "on"), ("X-Beta", "off")],
    );
    assert_eq!(status_of(&r), 400, "{r}");
    assert!(gw
        .access_log_with(&["header sent twice"])
        .contains("header sent twice"));

    // A fixed redirect; nothing from the request in it.
    let r = send(&gw, "/api/old?next=https://evil.test", &[]);
    assert_eq!(status_of(&r), 308, "{r}");
    assert_eq!(
        header_of(&r, "location").as_deref(),
        Some("https://new.example.test/api/new")
    );
    // A fixed answer, with the rule's header; the query parameter decoded as a backend
    // would, and refused when given twice.
    for q in ["maintenance=1", "mainten%61nce=%31"] {
        let r = send(&gw, &format!("/api/items?{q}"), &[]);
        assert_eq!(status_of(&r), 503, "{q}: {r}");
        assert_eq!(body_of(&r), r#"{"down":true}"#);
        assert_eq!(
            header_of(&r, "content-type").as_deref(),
            Some("application/json")
        );
        assert_eq!(header_of(&r, "retry-after").as_deref(), Some("60"));
    }
    for q in [
        "maintenance=0&maintenance=1",
        "maintenance=1&mainte%6Eance=0",
    ] {
        let r = send(&gw, &format!("/api/items?{q}"), &[]);
        assert_eq!(status_of(&r), 400, "{q}: {r}");
    }
    assert_eq!(
        main.hits.load(Ordering::SeqCst) + beta.hits.load(Ordering::SeqCst),
        hits,
        "none of these reached an upstream"
    );

    // From the office list, the debug path passes; from anywhere else, it does not exist.
    let r = send_from("127.0.0.4", &gw, "/api/debug/vars").await;
    assert_eq!(seen(&r)["path"], "/api/debug/vars");
    let r = send_from("127.0.0.9", &gw, "/api/debug/vars").await;
    assert_eq!(status_of(&r), 404, "{r}");
    assert_eq!(body_of(&r), "not here");

    // HTTP/2: the same rules, and a header sent twice is refused there too.
    let c = h2c();
    let r = c.get(gw.url("/api/v1/x")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["path"], "/v2/x");
    let r = c
        .get(gw.url("/api/items"))
        .header("X-API-Key", KEY)
        .header("X-Beta", "on")
        .header("x-beta", "off")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

#[test]
fn rule_mistakes_are_refused_with_their_place() {
    let dir = temp_dir("rules-config");
    let spec = dir.join("api.yaml");
    std::fs::write(
        &spec,
        "openapi: 3.0.3\ninfo: { title: t, version: \"1\" }\npaths:\n  /items:\n    get:\n      responses: { \"200\": { description: ok } }\n",
    )
    .unwrap();
    refused_config(
        "rules-config",
        &format!(
            r#"upstreams:
  u:
    targets: ["127.0.0.1:9"]
routes:
  - name: a
    paths: ["/a"]
    upstream: u
    rules:
      - if: {{ path: {{ regex: "(" }}, countries: [DE], consumers: [nobody] }}
        then: {{ upstream: nowhere }}
      - then:
          request_headers: {{ set: {{ X-Forwarded-For: 1.2.3.4 }} }}
          redirect: {{ location: "//evil.test" }}
  - name: b
    paths: ["/b"]
    upstream: u
    openapi: {{ spec: {} }}
    rules:
      - then: {{ rewrite: {{ to: /elsewhere }} }}
"#,
            spec.display()
        ),
        &[
            "routes.0.rules.0.if.path.regex",
            "routes.0.rules.0.if.countries",
            "country database",
            "routes.0.rules.0.if.consumers.0",
            "routes.0.rules.0.then.upstream",
            "routes.0.rules.1.then.request_headers.set.X-Forwarded-For",
            "routes.0.rules.1.then.redirect.location",
            "routes.0.rules.1.then: a rule that answers",
            "routes.1.rules",
            "cannot rewrite paths",
        ],
    );
}

/// WAF rules that parse JSON bodies and refuse any argument containing "evil".
const JSON_EVIL_RULES: &str = r#"
    SecRequestBodyAccess On
    SecRule REQUEST_HEADERS:Content-Type "@rx ^application/json" "id:1,phase:1,pass,nolog,ctl:requestBodyProcessor=JSON"
    SecRule ARGS "@contains evil" "id:1001,phase:2,deny,log,msg:'evil argument'""#;

/// What the rules change is what the checks after them read, and credentials taken out of
/// the query stay out whichever way the path was rewritten.
#[tokio::test(flavor = "multi_thread")]
async fn checks_after_the_rules_see_what_the_upstream_gets() {
    let up = Upstream::start("u").await;
    let rules = JSON_EVIL_RULES;
    let gw = Gateway::start(&format!(
        r#"consumers:
  - id: alice
    api_keys:
      - sha256: {key}
auth:
  api_key: {{ header: X-API-Key, query: api_key }}
waf:
  custom_rules: |{rules}
upstreams:
{up}routes:
  - name: legacy
    paths: ["/legacy"]
    upstream: u
    rules:
      - then: {{ request_headers: {{ set: {{ Content-Type: application/json }} }} }}
  - name: moved
    paths: ["/api"]
    upstream: u
    auth: {{ methods: [api_key] }}
    rules:
      - then: {{ rewrite: {{ prefix: /api, to: /v2 }} }}
  - name: stripped
    paths: ["/svc"]
    upstream: u
    strip_prefix: true
    auth: {{ methods: [api_key] }}
"#,
        key = sha256_hex(KEY.as_bytes()),
        up = upstream_yaml("u", &[up.addr], ""),
    ));
    // HTTP/1.1 without a Content-Type: the rule makes it JSON for the upstream, so the WAF
    // reads the body as JSON too.
    let body = r#"{"q":"evil"}"#;
    let r = raw_request(
        gw.port,
        format!(
            "POST /legacy HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
    let r = raw_request(
        gw.port,
        "POST /legacy HTTP/1.1\r\nHost: x\r\nContent-Length: 12\r\nConnection: close\r\n\r\n{\"q\":\"fine\"}"
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(seen(&r)["headers"]["content-type"], "application/json");

    // The key given in the query authenticates and goes no further: rewritten or stripped.
    for (path, want) in [
        ("/api/items?api_key=KEY&a=1", "/v2/items"),
        ("/svc/items?a=1&api_key=KEY", "/items"),
    ] {
        let p = path.replace("KEY", KEY);
        let r = send(&gw, &p, &[]);
        let v = seen(&r);
        assert_eq!(v["path"], want, "{path}");
        assert_eq!(v["query"], "a=1", "{path}: {v}");
    }
}

/// An outsider's attempts on the routes this engine shapes: bodies without a length, a
/// BOM, other spellings of the path, and floods of what the rules and CORS parse.
#[tokio::test(flavor = "multi_thread")]
async fn attacks_on_rules_and_cors_routes_fail() {
    let up = Upstream::start("u").await;
    let rules = JSON_EVIL_RULES;
    let gw = Gateway::start(&format!(
        r#"waf:
  custom_rules: |{rules}
upstreams:
{up}routes:
  - name: legacy
    paths: ["/legacy"]
    upstream: u
    rules:
      - then: {{ request_headers: {{ set: {{ Content-Type: application/json }} }} }}
  - name: api
    paths: ["/api"]
    upstream: u
    cors: {{ origins: ["https://app.example.test"], headers: ["*"] }}
    rules:
      - if: {{ path: {{ prefix: /api/v1 }} }}
        then: {{ rewrite: {{ prefix: /api/v1, to: /v2 }} }}
      - if: {{ query: [{{ name: maintenance, equals: "1" }}] }}
        then: {{ respond: {{ status: 503 }} }}
"#,
        up = upstream_yaml("u", &[up.addr], ""),
    ));
    let hits = || up.hits.load(Ordering::SeqCst);

    // The body whatever its framing: chunked without a length, HTTP/2 DATA without a
    // length, and JSON after a UTF-8 BOM (as a backend's JSON reader skips it).
    let chunked = "POST /legacy HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n6\r\n{\"q\":\"\r\n6\r\nevil\"}\r\n0\r\n\r\n";
    let r = raw_request(gw.port, chunked.as_bytes()).unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
    let bom = "\u{feff}{\"q\":\"evil\"}";
    let r = raw_request(
        gw.port,
        format!(
            "POST /legacy HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{bom}",
            bom.len()
        )
        .as_bytes(),
    )
    .unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
    let parts: Vec<Result<&'static [u8], std::io::Error>> =
        vec![Ok(&b"{\"q\":"[..]), Ok(&b"\"evil\"}"[..])];
    let r = h2c()
        .post(gw.url("/legacy"))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            parts,
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 403);
    assert_eq!(hits(), 0, "none of these bodies reached the backend");

    // Other spellings of the path: the canonical one decides (an encoded `v1` is `v1`),
    // and case is not folded, as the backend does not fold it.
    let v = seen(&send(&gw, "/api/%76%31/x", &[]));
    assert_eq!(v["path"], "/v2/x");
    let v = seen(&send(&gw, "/api/V1/x", &[]));
    assert_eq!(v["path"], "/api/V1/x");
    assert_eq!(status_of(&send(&gw, "/API/v1/x", &[])), 404);

    // Floods of what the stages parse, in parallel: preflights naming a thousand headers
    // (refused past 64 without comparing them), and queries of 500 parameters for a rule to
    // decode. Every request gets its answer, and the gateway still serves.
    let names: Vec<String> = (0..1000).map(|i| format!("x-h{i}")).collect();
    let names = names.join(",");
    let query: Vec<String> = (0..500).map(|i| format!("p{i}=v{i}")).collect();
    let query = query.join("&");
    let before = hits();
    let mut tasks = Vec::new();
    for i in 0..32 {
        let (port, names, query) = (gw.port, names.clone(), query.clone());
        tasks.push(tokio::task::spawn_blocking(move || {
            let mut statuses = Vec::new();
            for _ in 0..10 {
                let req = if i % 2 == 0 {
                    format!("OPTIONS /api/x HTTP/1.1\r\nHost: x\r\nOrigin: https://app.example.test\r\nAccess-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: {names}\r\nConnection: close\r\n\r\n")
                } else {
                    format!("GET /api/x?{query}&maintenance=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                };
                statuses.push(status_of(&raw_request(port, req.as_bytes()).unwrap()));
            }
            (i, statuses)
        }));
    }
    for t in tasks {
        let (i, statuses) = t.await.unwrap();
        let want = if i % 2 == 0 { 403 } else { 503 };
        assert!(statuses.iter().all(|s| *s == want), "{i}: {statuses:?}");
    }
    assert_eq!(hits(), before, "the floods never reached the backend");
    let v = seen(&send(&gw, "/api/v1/after", &[]));
    assert_eq!(v["path"], "/v2/after");
}
