//! OpenAPI contracts through real sockets, in front of Flask (which decodes bodies the way a
//! Python API does: JSON in UTF-8/16/32, the last of duplicate keys, forms): conforming
//! requests reach it whole; each way of breaking the contract is refused with an RFC 9457
//! document before it does, whatever the framing (Content-Length, chunked, HTTP/2 DATA);
//! detect mode reports without refusing; GitHub's REST API description runs on a route.
mod common;
use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

const SPEC: &str = r##"
openapi: 3.0.3
info: { title: items, version: "1" }
servers: [{ url: /api }]
paths:
  /items:
    get:
      operationId: listItems
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
        - { name: X-Tenant, in: header, required: true, schema: { type: string, pattern: "^[a-z]+$" } }
    post:
      operationId: createItem
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "#/components/schemas/Item" }
  /items/{id}:
    get:
      operationId: getItem
      parameters:
        - { name: id, in: path, required: true, schema: { type: integer } }
components:
  schemas:
    Item:
      type: object
      additionalProperties: false
      required: [name, qty]
      properties:
        id: { type: integer, readOnly: true }
        name: { type: string, maxLength: 10 }
        qty: { type: integer, minimum: 1 }
"##;

fn config(spec: &Path, backend: std::net::SocketAddr, extra: &str) -> String {
    format!(
        "upstreams:\n{}routes:\n  - name: api\n    paths: [\"/api\"]\n    upstream: u\n    openapi:\n      spec: {}\n{extra}responses:\n  - name: fuzzers\n    on: [validation_failure]\n    count: 40\n    within: 1m\n    ban: 1m\n",
        upstream_yaml("u", &[backend], ""),
        spec.display()
    )
}

fn write_spec(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("items.yaml");
    std::fs::write(&p, SPEC).unwrap();
    p
}

async fn post(gw: &Gateway, ct: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
    client()
        .post(gw.url("/api/items"))
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .unwrap()
}

/// A body with no length: chunked over HTTP/1.1, DATA frames over HTTP/2.
fn streamed(text: &'static str) -> reqwest::Body {
    let parts: Vec<Result<&'static str, std::io::Error>> = text
        .as_bytes()
        .chunks(7)
        .map(|c| Ok(std::str::from_utf8(c).unwrap()))
        .collect();
    reqwest::Body::wrap_stream(futures_util::stream::iter(parts))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_outside_the_contract_never_reach_the_backend() {
    let flask = Flask::start("werkzeug");
    let dir = temp_dir("contract");
    let gw = Gateway::start(&config(&write_spec(&dir), flask.addr, ""));

    // Conforming: the backend gets the body whole and parses what was checked.
    let r = post(&gw, "application/json", r#"{"name":"bolt","qty":3}"#).await;
    assert_eq!(r.status(), 200);
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["json"], serde_json::json!({"name": "bolt", "qty": 3}));
    let r = client()
        .get(gw.url("/api/items?limit=5"))
        .header("X-Tenant", "acme")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Each way of breaking it, and where the answer points.
    let bad: &[(&str, &str, u16, &str)] = &[
        ("application/json", r#"{"name":"bolt"}"#, 400, "/body"),
        (
            "application/json",
            r#"{"name":"bolt","qty":0}"#,
            400,
            "/body/qty",
        ),
        (
            "application/json",
            r#"{"name":"bolt","qty":1,"id":7}"#,
            400,
            "/body/id",
        ),
        (
            "application/json",
            r#"{"name":"bolt","qty":1,"admin":true}"#,
            400,
            "/body",
        ),
        // Flask keeps the last of duplicate keys: qty would be -5.
        (
            "application/json",
            r#"{"name":"bolt","qty":1,"qty":-5}"#,
            400,
            "/body",
        ),
        (
            "application/json",
            "\u{feff}{\"name\":\"bolt\",\"qty\":1}",
            400,
            "/body",
        ),
        (
            "application/json; charset=utf-16",
            r#"{"name":"bolt","qty":1}"#,
            415,
            "/header/content-type",
        ),
        (
            "text/plain",
            r#"{"name":"bolt","qty":1}"#,
            415,
            "/header/content-type",
        ),
        (
            "application/json",
            r#"{"name":"bolt","qty":1e999}"#,
            400,
            "/body",
        ),
    ];
    for (ct, body, status, pointer) in bad {
        let r = post(&gw, ct, *body).await;
        assert_eq!(r.status().as_u16(), *status, "{ct} {body}");
        assert_eq!(
            r.headers()["content-type"],
            "application/problem+json",
            "{body}"
        );
        let doc: serde_json::Value = r.json().await.unwrap();
        assert_eq!(doc["status"], *status);
        let pointers: Vec<&str> = doc["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["pointer"].as_str().unwrap())
            .collect();
        assert!(pointers.contains(pointer), "{body}: {doc}");
    }
    // UTF-16 JSON, which Flask would decode, is not JSON the contract reads.
    let utf16: Vec<u8> = "{\"name\":\"bolt\",\"qty\":-1}"
        .encode_utf16()
        .flat_map(|u| u.to_le_bytes())
        .collect();
    assert_eq!(post(&gw, "application/json", utf16).await.status(), 400);

    // The same bodies without a length: chunked, and HTTP/2 DATA frames.
    let r = post(
        &gw,
        "application/json",
        streamed(r#"{"name":"bolt","qty":1,"qty":-5}"#),
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = h2c()
        .post(gw.url("/api/items"))
        .header("Content-Type", "application/json")
        .body(streamed(r#"{"name":"a-very-long-name","qty":2}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = h2c()
        .post(gw.url("/api/items"))
        .header("Content-Type", "application/json")
        .body(streamed(r#"{"name":"bolt","qty":2}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "a clean streamed body reaches Flask");
    let seen: serde_json::Value = r.json().await.unwrap();
    assert_eq!(seen["json"]["qty"], 2);

    // Parameters: duplicates, types, a header sent with an underscore (dropped before the
    // check, as before the backend: the required header is missing).
    let get = async |target: &str, tenant: (&str, &str)| {
        client()
            .get(gw.url(target))
            .header(tenant.0, tenant.1)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(
        get("/api/items?limit=1&limit=500", ("X-Tenant", "acme")).await,
        400
    );
    assert_eq!(get("/api/items?limit=all", ("X-Tenant", "acme")).await, 400);
    assert_eq!(get("/api/items?debug=1", ("X-Tenant", "acme")).await, 400);
    assert_eq!(get("/api/items", ("X_Tenant", "acme")).await, 400);
    assert_eq!(get("/api/items", ("X-Tenant", "ACME")).await, 400);
    assert_eq!(get("/api/items/%31%32", ("X-Tenant", "acme")).await, 200);
    assert_eq!(get("/api/items/twelve", ("X-Tenant", "acme")).await, 400);
    // Outside the contract: 404, 405 with Allow.
    assert_eq!(get("/api/other", ("X-Tenant", "acme")).await, 404);
    let r = client()
        .delete(gw.url("/api/items/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET");
    // Over max_body (64 KiB): refused, not checked in part.
    let big = format!(
        r#"{{"name":"bolt","qty":1,"pad":"{}"}}"#,
        "x".repeat(70_000)
    );
    assert_eq!(post(&gw, "application/json", big).await.status(), 413);

    // The access log and the event carry what was decided; the client's values never
    // appear in answers.
    let r = post(
        &gw,
        "application/json",
        r#"{"name":"<script>alert(1)</script>","qty":1}"#,
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(!text.contains("script"), "{text}");
    let log = gw.access_log_with(&[
        "\"refused_by\":\"validate\"",
        "\"operation\":\"createItem\"",
    ]);
    assert!(log.contains("\"refused_by\":\"validate\""), "{log}");
    assert!(log.contains("\"operation\":\"createItem\""), "{log}");
}

/// `show_violations: false` tells the client only that the request broke the contract; the
/// event still lists every violation. Detect mode lets the request through and reports it.
/// Repeated violations feed a `validation_failure` playbook.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hidden_details_detect_mode_and_playbooks() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("contract-modes");
    let spec = write_spec(&dir);
    let events = dir.join("events.jsonl");
    let body = format!(
        "events:\n  file: {}\n{}",
        events.display(),
        config(&spec, up.addr, "      show_violations: false\n")
    );
    let gw = Gateway::start(&body);
    let r = post(&gw, "application/json", r#"{"name":"bolt","qty":0}"#).await;
    assert_eq!(r.status(), 400);
    let doc: serde_json::Value = r.json().await.unwrap();
    assert!(doc.get("errors").is_none(), "{doc}");
    let deadline = Instant::now() + Duration::from_secs(3);
    let event = loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.contains("\"stage\":\"validate\"")) {
            break l.to_string();
        }
        assert!(Instant::now() < deadline, "no validate event: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(event.contains("\"pointer\":\"/body/qty\""), "{event}");
    assert!(event.contains("\"keyword\":\"minimum\""), "{event}");

    // Detect: through to the upstream, reported.
    gw.write_config(&format!(
        "events:\n  file: {}\n{}",
        events.display(),
        config(&spec, up.addr, "      request: detect\n")
    ));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = post(&gw, "application/json", r#"{"name":"bolt","qty":-1}"#).await;
        if r.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "detect mode not in force");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        if text
            .lines()
            .any(|l| l.contains("\"stage\":\"validate\"") && l.contains("\"action\":\"detect\""))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no detect event: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Back to enforce: a client that keeps breaking the contract is banned by the playbook.
    gw.write_config(&format!(
        "events:\n  file: {}\n{}",
        events.display(),
        config(&spec, up.addr, "")
    ));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let s = post(&gw, "application/json", r#"{"qty":0}"#).await.status();
        if s == 403 {
            break;
        }
        assert!(Instant::now() < deadline, "never banned (last {s})");
    }
    // The ban applies before its event is written (the sink writes off the request path).
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&events).unwrap_or_default();
        if text.contains("playbook fuzzers banned ip:127.0.0.1") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        text.contains("playbook fuzzers banned ip:127.0.0.1"),
        "{text}"
    );
}

/// GitHub's REST API description (13 MB, 1,200 operations) on a route: loaded at start,
/// conforming and violating requests told apart; a broken description is a located error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_rest_api_description_on_a_route() {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-fixtures/github-api.json");
    assert!(
        spec.exists(),
        "{} is missing: scripts/test fetches it",
        spec.display()
    );
    let up = Upstream::start("u").await;
    let body = format!(
        "upstreams:\n{}routes:\n  - name: gh\n    paths: [\"/\"]\n    upstream: u\n    openapi:\n      spec: {}\n      unknown_query: allow\n",
        upstream_yaml("u", &[up.addr], ""),
        spec.display()
    );
    let gw = Gateway::start(&body.replace(
        "      unknown_query: allow\n",
        "      unknown_query: allow\n      undeclared: allow\n",
    ));
    let send = async |method: reqwest::Method, path: &str, body: Option<&'static str>| {
        let mut r = client().request(method, gw.url(path));
        if let Some(b) = body {
            r = r.header("Content-Type", "application/json").body(b);
        }
        r.send().await.unwrap().status().as_u16()
    };
    use reqwest::Method;
    assert_eq!(
        send(Method::GET, "/repos/octo/hello/issues?state=open", None).await,
        200
    );
    assert_eq!(
        send(Method::GET, "/repos/octo/hello/issues?state=sideways", None).await,
        400
    );
    assert_eq!(
        send(
            Method::POST,
            "/repos/octo/hello/issues",
            Some(r#"{"title":"bug"}"#)
        )
        .await,
        200
    );
    assert_eq!(
        send(
            Method::POST,
            "/repos/octo/hello/issues",
            Some(r#"{"body":"x"}"#)
        )
        .await,
        400
    );
    assert_eq!(
        send(Method::GET, "/repos/octo/hello/compare/main...dev", None).await,
        200
    );
    // Undeclared paths and methods pass on this route (`undeclared: allow`); declared
    // operations are still checked.
    assert_eq!(send(Method::PATCH, "/users/octocat", None).await, 200);
    assert_eq!(
        send(Method::GET, "/not/in/the/description", None).await,
        200
    );
    drop(gw);

    // A description that does not load is a config error naming the file and the place.
    let dir = temp_dir("contract-bad");
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - $ref: '#/components/parameters/nope'\n",
    )
    .unwrap();
    let cfg = dir.join("c.yaml");
    let write = |spec: &Path, extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "listeners:\n  - name: p\n    address: 127.0.0.1:1\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n    openapi:\n      spec: {}\n{extra}",
                upstream_yaml("u", &[up.addr], ""),
                spec.display()
            ),
        )
        .unwrap();
    };
    write(&bad, "");
    let err = validate_refuses(
        &cfg,
        &[
            "routes.0.openapi.spec",
            "bad.yaml#/paths/~1a/get/parameters/0",
            "points to nothing",
        ],
    );
    write(&spec, "      max_body: 1MiB\n");
    validate_refuses(&cfg, &["routes.0.openapi.max_body", "64KiB"]);
    assert!(!err.contains("panicked"), "{err}");
}

const REFLECTED: &str = r##"
openapi: 3.0.3
info: { title: reflected, version: "1" }
paths:
  /reflect:
    post:
      requestBody: { content: { application/json: { schema: { type: object } } } }
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                required: [id]
                properties:
                  id: { type: integer }
                  secret: { type: string, writeOnly: true }
        "404": { description: not found }
"##;

/// Responses against the contract, with an upstream that answers whatever the test asks
/// (`POST /reflect`): in enforce mode an undeclared status or media type becomes a bodyless
/// 502, and a body outside its schema (or carrying a `writeOnly` property) is cut before any
/// byte of it reaches the client; detect mode passes them and reports.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn responses_outside_the_contract_are_stopped_or_reported() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("contract-resp");
    let spec = dir.join("reflected.yaml");
    std::fs::write(&spec, REFLECTED).unwrap();
    let events = dir.join("events.jsonl");
    let cfg = |mode: &str| {
        format!(
            "events:\n  file: {}\nupstreams:\n{}routes:\n  - name: api\n    paths: [\"/api\"]\n    strip_prefix: true\n    upstream: u\n    openapi:\n      spec: {}\n      response: {mode}\n",
            events.display(),
            upstream_yaml("u", &[up.addr], ""),
            spec.display()
        )
    };
    let gw = Gateway::start(&cfg("enforce"));
    let answer = async |status: u16, ct: &str, body: &str| {
        let ask =
            serde_json::json!({"status": status, "headers": {"Content-Type": ct}, "body": body});
        let r = client()
            .post(gw.url("/api/reflect"))
            .json(&ask)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.bytes().await.map(|b| b.to_vec()).map_err(|_| ()))
    };
    let json = "application/json";
    assert_eq!(
        answer(200, json, r#"{"id":1}"#).await,
        (200, Ok(br#"{"id":1}"#.to_vec()))
    );
    assert_eq!(answer(404, "text/plain", "").await.0, 404);
    let (status, body) = answer(500, json, r#"{"trace":"db at 10.0.0.5"}"#).await;
    assert_eq!((status, body), (502, Ok(Vec::new())), "undeclared status");
    let (status, body) = answer(200, "text/html", "<p>1</p>").await;
    assert_eq!(
        (status, body),
        (502, Ok(Vec::new())),
        "undeclared media type"
    );
    for bad in [
        r#"{"id":"one"}"#,
        r#"{"id":1,"secret":"hunter2"}"#,
        r#"{"id":1,"id":2}"#,
    ] {
        let (status, body) = answer(200, json, bad).await;
        // 502 while the status line is still held back (small bodies); a 200 whose body is
        // cut when it was already out.
        assert!(status == 502 || status == 200, "{bad}: {status}");
        let got = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
        assert!(
            !got.contains("hunter2") && !got.contains(bad) && !got.contains("one"),
            "{bad}: the body must not reach the client, got {got:?}"
        );
    }
    let log = gw.access_log_with(&["\"refused_by\":\"validate_response\""]);
    assert!(
        log.contains("\"refused_by\":\"validate_response\""),
        "{log}"
    );

    // Detect: everything passes, each violation is reported.
    gw.write_config(&cfg("detect"));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while answer(500, json, "{}").await.0 != 500 {
        assert!(Instant::now() < deadline, "detect mode not in force");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = answer(200, json, r#"{"id":1,"secret":"hunter2"}"#).await;
    assert_eq!(status, 200);
    assert_eq!(body.unwrap(), br#"{"id":1,"secret":"hunter2"}"#.to_vec());
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let detected = text.lines().any(|l| {
            l.contains("\"stage\":\"validate_response\"")
                && l.contains("\"action\":\"detect\"")
                && l.contains("\"pointer\":\"/response/body/secret\"")
        });
        if detected {
            assert!(!text.contains("hunter2"), "no response data in events");
            break;
        }
        assert!(Instant::now() < deadline, "no detect event: {text}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

const SECURED: &str = r##"
openapi: 3.0.3
info: { title: secured, version: "1" }
security: [{ apiKeyAuth: [] }]
paths:
  /keyed: { get: { operationId: keyed } }
  /public: { get: { operationId: open, security: [] } }
  /admin: { get: { operationId: admin, security: [{ apiKeyAuth: [admin] }] } }
components:
  securitySchemes:
    apiKeyAuth: { type: apiKey, in: header, name: X-API-Key }
"##;

/// Each operation's `security`, with the description's schemes mapped to authenticators:
/// public operations need nothing, the others their scheme (and scopes).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_carry_their_own_security_requirements() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("contract-sec");
    let spec = dir.join("secured.yaml");
    std::fs::write(&spec, SECURED).unwrap();
    let key = "operation-key-0123456789";
    let body = |auth: &str, mapping: &str| {
        format!(
            "consumers:\n  - id: app\n    api_keys:\n      - sha256: {}\nauth:\n  api_key: {{ header: X-API-Key }}\nupstreams:\n{}routes:\n  - name: api\n    paths: [\"/\"]\n    upstream: u\n{auth}    openapi:\n      spec: {}\n      security: {{ {mapping} }}\n",
            sha256_hex(key.as_bytes()),
            upstream_yaml("u", &[up.addr], ""),
            spec.display()
        )
    };
    let gw = Gateway::start(&body(
        "    auth: { methods: [api_key], optional: true }\n",
        "apiKeyAuth: api_key",
    ));
    let get = async |path: &str, with_key: bool| {
        let mut r = client().get(gw.url(path));
        if with_key {
            r = r.header("X-API-Key", key);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    assert_eq!(get("/public", false).await.0, 200);
    let (s, doc) = get("/keyed", false).await;
    assert_eq!(s, 401, "{doc}");
    assert!(doc.contains("requires apiKeyAuth"), "{doc}");
    assert_eq!(get("/keyed", true).await.0, 200);
    let (s, doc) = get("/admin", true).await;
    assert_eq!(s, 403, "an API key carries no scopes: {doc}");
    assert!(doc.contains("apiKeyAuth (admin)"), "{doc}");
    drop(gw);

    // Unmapped schemes, and a route whose auth would refuse public operations first.
    let cfg = dir.join("c.yaml");
    for (auth, mapping, needle) in [
        (
            "    auth: { methods: [api_key], optional: true }\n",
            "bearer: jwt",
            "not mapped here: apiKeyAuth",
        ),
        (
            "    auth: { methods: [api_key] }\n",
            "apiKeyAuth: api_key",
            "optional: true",
        ),
    ] {
        std::fs::write(
            &cfg,
            format!(
                "listeners:\n  - name: p\n    address: 127.0.0.1:1\n{}",
                body(auth, mapping)
            ),
        )
        .unwrap();
        validate_refuses(&cfg, &["routes.0.openapi.security", needle]);
    }
}

const PETS: &str = r##"
openapi: 3.1.0
info: { title: pets, version: "1" }
servers: [{ url: /api }]
paths:
  /pets:
    get:
      operationId: listPets
      responses: { "200": { description: ok } }
    post:
      operationId: createPet
      requestBody:
        required: true
        content:
          application/json:
            schema: { type: object, properties: { name: { type: string } }, required: [name] }
      responses: { "201": { description: created } }
  /pets/{id}:
    delete:
      operationId: deletePet
      parameters:
        - { name: id, in: path, required: true, schema: { type: integer } }
      responses: { "204": { description: gone } }
"##;

/// Operations as routes of their own: one operation with its own rate limit, another with
/// its own authorization and upstream; the docs show each caller the operations its groups
/// may call (derived from those policies); an operation key the description lacks is a
/// config error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operations_are_routes_of_their_own() {
    let u = Upstream::start("main").await;
    let v = Upstream::start("deleter").await;
    let dir = temp_dir("contract-ops");
    let spec = dir.join("pets.yaml");
    std::fs::write(&spec, PETS).unwrap();
    let (staff_key, admin_key) = ("staff-key-0123456789abc", "admin-key-0123456789abc");
    let body = |ops: &str| {
        format!(
            "consumers:\n  - id: sam\n    groups: [staff]\n    api_keys: [{{sha256: {}}}]\n  - id: ada\n    groups: [staff, admins]\n    api_keys: [{{sha256: {}}}]\nauth:\n  api_key: {{ header: X-API-Key }}\nupstreams:\n{}{}routes:\n  - name: api\n    paths: [\"/api\"]\n    upstream: u\n    auth: {{ methods: [api_key] }}\n    authorize: {{ groups: [staff] }}\n    openapi:\n      spec: {}\n      operations:\n{ops}  - name: docs\n    paths: [\"/docs\"]\n    auth: {{ methods: [api_key] }}\n    docs: {{ spec: {}, by_groups: true }}\n",
            sha256_hex(staff_key.as_bytes()),
            sha256_hex(admin_key.as_bytes()),
            upstream_yaml("u", &[u.addr], ""),
            upstream_yaml("v", &[v.addr], ""),
            spec.display(),
            spec.display(),
        )
    };
    let ops = "        createPet:\n          rate_limit: [{ key: consumer, rate: 2/minute }]\n        \"DELETE /pets/{id}\":\n          authorize: { groups: [admins] }\n          upstream: v\n";
    let gw = Gateway::start(&body(ops));
    let call = async |method: &str, path: &str, key: &str| {
        let mut r = client()
            .request(method.parse().unwrap(), gw.url(path))
            .header("X-API-Key", key);
        if method == "POST" {
            r = r
                .header("Content-Type", "application/json")
                .body(r#"{"name":"rex"}"#);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };

    // createPet has its own limit; listPets does not share it.
    for _ in 0..2 {
        assert_eq!(call("POST", "/api/pets", staff_key).await.0, 200);
    }
    let (s, b) = call("POST", "/api/pets", staff_key).await;
    assert_eq!(s, 429, "{b}");
    for _ in 0..4 {
        assert_eq!(call("GET", "/api/pets", staff_key).await.0, 200);
    }

    // deletePet: admins only, and served by its own upstream.
    let (s, b) = call("DELETE", "/api/pets/7", staff_key).await;
    assert_eq!(s, 403, "{b}");
    let before = (
        u.hits.load(std::sync::atomic::Ordering::SeqCst),
        v.hits.load(std::sync::atomic::Ordering::SeqCst),
    );
    let (s, b) = call("DELETE", "/api/pets/7", admin_key).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(
        v.hits.load(std::sync::atomic::Ordering::SeqCst),
        before.1 + 1,
        "deleter served it"
    );
    assert_eq!(u.hits.load(std::sync::atomic::Ordering::SeqCst), before.0);
    let log = gw.access_log_with(&["operation authorization denied"]);
    assert!(log.contains("\"refused_by\":\"authorize\""), "{log}");

    // The docs: staff see list and create, admins also delete.
    let doc = |key: &'static str| {
        let url = gw.url("/docs/openapi.json");
        async move {
            let r = client()
                .get(url)
                .header("X-API-Key", key)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status().as_u16(), 200);
            r.json::<serde_json::Value>().await.unwrap()
        }
    };
    let staff = doc(staff_key).await;
    assert!(staff["paths"]["/pets"]["get"].is_object(), "{staff}");
    assert!(staff["paths"]["/pets"]["post"].is_object());
    assert!(staff["paths"].get("/pets/{id}").is_none(), "{staff}");
    let admins = doc(admin_key).await;
    assert!(
        admins["paths"]["/pets/{id}"]["delete"].is_object(),
        "{admins}"
    );
    assert!(!admins.to_string().contains("x-groups"));
    drop(gw);

    // An operation the description lacks is refused at load, by name.
    let cfg = dir.join("bad.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listeners:\n  - name: p\n    address: 127.0.0.1:1\n{}",
            body("        removePet: { upstream: v }\n")
        ),
    )
    .unwrap();
    validate_refuses(&cfg, &["no operation \"removePet\""]);
}

/// Operations with policies of their own cannot be gone around by spelling: in detect mode
/// (where `validate` lets undeclared requests through) a trailing slash, another case or a
/// HEAD for a GET must not reach the backend without the operation's policy; encoded and
/// doubled slashes are the canonical path's business and still meet the policy; HTTP/2 the
/// same. The backend answers every path (as a permissive framework would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operation_policies_cannot_be_gone_around() {
    use std::sync::atomic::Ordering::SeqCst;
    let up = Upstream::start("u").await;
    let dir = temp_dir("contract-ops-attack");
    let spec = dir.join("pets.yaml");
    std::fs::write(&spec, PETS).unwrap();
    let (staff, admin) = ("staff-key-0123456789abc", "admin-key-0123456789abc");
    let gw = Gateway::start(&format!(
        "consumers:\n  - id: sam\n    groups: [staff]\n    api_keys: [{{sha256: {}}}]\n  - id: ada\n    groups: [staff, admins]\n    api_keys: [{{sha256: {}}}]\nauth:\n  api_key: {{ header: X-API-Key }}\nupstreams:\n{}routes:\n  - name: api\n    paths: [\"/api\"]\n    upstream: u\n    auth: {{ methods: [api_key] }}\n    openapi:\n      spec: {}\n      request: detect\n      operations:\n        deletePet: {{ authorize: {{ groups: [admins] }} }}\n        listPets: {{ authorize: {{ groups: [admins] }} }}\n",
        sha256_hex(staff.as_bytes()),
        sha256_hex(admin.as_bytes()),
        upstream_yaml("u", &[up.addr], ""),
        spec.display(),
    ));
    let send = async |c: &reqwest::Client, method: &str, path: &str, key: &str| {
        c.request(method.parse().unwrap(), gw.url(path))
            .header("X-API-Key", key)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    };
    let (h1, h2) = (client(), h2c());
    for (c, label) in [(&h1, "HTTP/1.1"), (&h2, "h2c")] {
        for (method, path, want) in [
            ("DELETE", "/api/pets/7/", 404),
            ("DELETE", "/api/PETS/7", 404),
            ("DELETE", "/api/pets/7", 403),
            ("DELETE", "/api//pets/7", 403),
            ("DELETE", "/api/pets/%37", 403),
            ("HEAD", "/api/pets", 403),
            ("GET", "/api/pets/", 404),
        ] {
            let before = up.hits.load(SeqCst);
            assert_eq!(
                send(c, method, path, staff).await,
                want,
                "{label} {method} {path}"
            );
            assert_eq!(
                up.hits.load(SeqCst),
                before,
                "{label} {method} {path} reached the backend"
            );
        }
    }
    // The operations themselves still work for those they are for.
    assert_eq!(send(&h1, "DELETE", "/api/pets/7", admin).await, 200);
    assert_eq!(send(&h1, "HEAD", "/api/pets", admin).await, 200);
}
