//! The admin API through real sockets: tokens and roles, lockout, config changes validated
//! and swapped like a reload (If-Match, 412/428/422, nothing half-applied), written back to
//! the file, secrets redacted on the way out and kept on the way back, history and
//! rollback, bans, upstream health, events and access-log lines for every change, and the
//! API checked against its own OpenAPI document by Schemathesis.
mod common;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const VIEWER: &str = "viewer-token-0123456789abcdef";
const OPERATOR: &str = "operator-token-0123456789abcdef";
const ADMIN: &str = "admin-token-0123456789abcdef";
const API_KEY: &str = "alice-api-key-0123456789";

fn admin_yaml(extra: &str) -> String {
    format!(
        "  tokens:\n    - {{name: vera, role: viewer, sha256: {}}}\n    - {{name: otto, role: operator, sha256: {}}}\n    - {{name: ada, role: admin, sha256: {}}}\n    - {{name: old, role: admin, sha256: {}, expires: 2020-01-01T00:00:00Z}}\n  lockout: {{max_failures: 4, window: 1m, duration: 2s}}\n{extra}",
        sha256_hex(VIEWER.as_bytes()),
        sha256_hex(OPERATOR.as_bytes()),
        sha256_hex(ADMIN.as_bytes()),
        sha256_hex(b"expired-token"),
    )
}

fn body(up: &Upstream, events: &std::path::Path) -> String {
    format!(
        r#"events:
  file: {}
consumers:
  - id: alice
    api_keys:
      - sha256: {}
auth:
  jwt:
    - issuer: https://issuer.example
      algorithms: [HS256]
      keys:
        - secret: jwt-hmac-secret-that-must-not-leak-0123456789
upstreams:
{}routes:
  - name: open
    paths: ["/open"]
    upstream: u
  - name: keyed
    paths: ["/keyed"]
    upstream: u
    auth: {{ methods: [api_key] }}
"#,
        events.display(),
        sha256_hex(API_KEY.as_bytes()),
        upstream_yaml("u", &[up.addr], ""),
    )
}

struct Api {
    base: String,
    c: reqwest::Client,
}

impl Api {
    fn new(gw: &Gateway) -> Api {
        Api {
            base: format!("http://127.0.0.1:{}", gw.admin_port),
            c: client(),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut r = self
            .c
            .request(method.parse().unwrap(), format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let h = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, h, v)
    }

    async fn get(&self, path: &str, token: &str) -> (u16, reqwest::header::HeaderMap, Value) {
        self.call("GET", path, Some(token), &[], None).await
    }

    async fn etag(&self) -> String {
        let (s, h, _) = self.get("/config", ADMIN).await;
        assert_eq!(s, 200);
        h["etag"].to_str().unwrap().to_string()
    }
}

async fn status(url: &str, key: Option<&str>) -> u16 {
    let mut r = client().get(url);
    if let Some(k) = key {
        r = r.header("X-API-Key", k);
    }
    r.send().await.unwrap().status().as_u16()
}

fn events_with(path: &std::path::Path, needles: &[&str]) -> String {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if needles.iter().all(|n| text.contains(n)) || Instant::now() > deadline {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Without a token only the health endpoints answer; roles nest (viewer reads, operator
/// bans, admin writes); an expired token is refused; secrets never leave; `/metrics` can be
/// required to authenticate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_roles_guard_every_endpoint() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-roles");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start_full(
        &body(&up, &events),
        "",
        &admin_yaml("  metrics: authenticated\n"),
    );
    let api = Api::new(&gw);

    for p in ["/healthz", "/readyz"] {
        assert_eq!(api.call("GET", p, None, &[], None).await.0, 200, "{p}");
    }
    for p in [
        "/metrics",
        "/config",
        "/openapi.json",
        "/bans",
        "/routes",
        "/nope",
    ] {
        let (s, h, _) = api.call("GET", p, None, &[], None).await;
        assert_eq!(s, 401, "{p} without a token");
        assert!(h["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer"));
    }
    assert_eq!(api.get("/config", "not-a-token").await.0, 401);
    assert_eq!(api.get("/config", "expired-token").await.0, 401, "expired");
    let (s, _, m) = api.get("/metrics", VIEWER).await;
    assert_eq!(s, 200);
    assert!(
        m.as_str().unwrap().contains("rampart_requests_total")
            || m.as_str().unwrap().contains("# TYPE")
    );

    // The viewer reads the config, redacted: no key hash, no HMAC secret.
    let (s, h, doc) = api.get("/config", VIEWER).await;
    assert_eq!(s, 200);
    assert!(h.contains_key("etag"));
    let text = doc.to_string();
    assert!(!text.contains("jwt-hmac-secret"), "{text}");
    assert!(!text.contains(&sha256_hex(API_KEY.as_bytes())), "{text}");
    assert!(
        !text.contains(&sha256_hex(ADMIN.as_bytes())),
        "token hashes stay inside"
    );
    assert_eq!(doc["auth"]["jwt"][0]["keys"][0]["secret"], "<redacted>");
    let (s, _, who) = api.get("/whoami", VIEWER).await;
    assert_eq!((s, who["role"].as_str()), (200, Some("viewer")));

    // The audit of the config in force: the open route is reported, no secret shown.
    let (s, _, report) = api.get("/audit", VIEWER).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"route-without-auth"), "{ids:?}");
    let open = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "route-without-auth")
        .unwrap();
    assert_eq!(open["path"], "routes.0.auth");
    assert!(open["line"].as_u64().unwrap() > 1);
    assert!(!report.to_string().contains("jwt-hmac-secret"));

    // Writes: the viewer may not ban, the operator may ban but not change the config.
    let ban = json!({"target": "consumer:alice", "duration": "1h", "reason": "test"});
    let (s, _, _) = api
        .call("POST", "/bans", Some(VIEWER), &[], Some(ban.clone()))
        .await;
    assert_eq!(s, 403);
    let etag = api.etag().await;
    let (s, _, _) = api
        .call(
            "PUT",
            "/routes/x",
            Some(OPERATOR),
            &[("If-Match", &etag)],
            Some(json!({"paths": ["/x"], "upstream": "u"})),
        )
        .await;
    assert_eq!(s, 403, "an operator does not change the config");

    // A ban through the API is in force on the data plane, and lifted the same way.
    let keyed = gw.url("/keyed");
    assert_eq!(status(&keyed, Some(API_KEY)).await, 200);
    let (s, _, b) = api
        .call("POST", "/bans", Some(OPERATOR), &[], Some(ban))
        .await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["ban"]["target"], "consumer:alice");
    assert_eq!(status(&keyed, Some(API_KEY)).await, 403, "banned consumer");
    let (s, _, list) = api.get("/bans", VIEWER).await;
    assert_eq!(s, 200);
    assert_eq!(list["bans"][0]["target"], "consumer:alice");
    for bad in [
        json!({"target": "ip:nope", "duration": "1h"}),
        json!({"target": "ip:10.0.0.1"}),
        json!({"target": "ip:10.0.0.1", "duration": "1h", "extra": 1}),
    ] {
        let (s, _, _) = api
            .call("POST", "/bans", Some(OPERATOR), &[], Some(bad.clone()))
            .await;
        assert_eq!(s, 422, "{bad}");
    }
    let (s, _, _) = api
        .call(
            "DELETE",
            "/bans?target=consumer:alice",
            Some(OPERATOR),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(status(&keyed, Some(API_KEY)).await, 200, "lifted");
    let (s, _, _) = api
        .call(
            "DELETE",
            "/bans?target=consumer:alice",
            Some(OPERATOR),
            &[],
            None,
        )
        .await;
    assert_eq!(s, 404, "nothing left to lift");

    // Upstream health, 404 for an unknown upstream, 405 with Allow.
    let (s, _, hl) = api.get("/upstreams/u/health", VIEWER).await;
    assert_eq!(s, 200);
    assert_eq!(hl["targets"][0]["target"], up.addr.to_string());
    assert_eq!(api.get("/upstreams/zz/health", VIEWER).await.0, 404);
    let (s, h, _) = api.call("DELETE", "/config", Some(ADMIN), &[], None).await;
    assert_eq!(s, 405);
    assert_eq!(h["allow"], "GET, PUT, HEAD");

    // Each change is an event naming who did it; failed tokens are events too.
    let ev = events_with(
        &events,
        &["\"action\":\"ban\"", "\"action\":\"unban\"", "auth_failure"],
    );
    let ban_line = ev
        .lines()
        .find(|l| l.contains("\"action\":\"ban\""))
        .unwrap();
    let e: Value = serde_json::from_str(ban_line).unwrap();
    assert_eq!(e["stage"], "admin");
    assert_eq!(e["actor"], "otto");
    assert_eq!(e["changes"][0], "+ bans/consumer:alice");
    assert!(ev.contains("token \\\"old\\\" has expired"), "{ev}");
    assert!(
        !ev.contains(ADMIN) && !ev.contains("expired-token"),
        "no token in events"
    );
    let log = gw.access_log_with(&["\"listener\":\"admin\"", "\"actor\":\"otto\""]);
    assert!(log.contains("\"path\":\"/bans\""), "{log}");
}

/// Config changes: If-Match required and checked, validated like a reload (422 with JSON
/// pointers, nothing changed), swapped and served at once, written back to the file (and
/// not reloaded twice), history and rollback; a redacted document sent back keeps its
/// secrets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_changes_are_checked_applied_persisted_and_reversible() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-config");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start_full(&body(&up, &events), "", &admin_yaml(""));
    let api = Api::new(&gw);
    let g0 = gw.readyz_generation();
    let route = json!({"paths": ["/new"], "upstream": "u"});

    let (s, _, _) = api
        .call("PUT", "/routes/new", Some(ADMIN), &[], Some(route.clone()))
        .await;
    assert_eq!(s, 428, "If-Match is required");
    let (s, h, _) = api
        .call(
            "PUT",
            "/routes/new",
            Some(ADMIN),
            &[("If-Match", "\"999\"")],
            Some(route.clone()),
        )
        .await;
    assert_eq!(s, 412, "stale");
    assert_eq!(h["etag"].to_str().unwrap(), format!("\"{g0}\""));

    // A route naming an unknown upstream and an unknown key: 422, every error, no change.
    let etag = api.etag().await;
    let bad = json!({"paths": ["/bad"], "upstream": "missing", "colour": "red"});
    let (s, _, e) = api
        .call(
            "PUT",
            "/routes/bad",
            Some(ADMIN),
            &[("If-Match", &etag)],
            Some(bad),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    let pointers: Vec<&str> = e["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["pointer"].as_str().unwrap())
        .collect();
    assert!(
        pointers.iter().any(|p| p.starts_with("/routes/2/colour")),
        "{pointers:?}"
    );
    assert!(
        pointers.iter().any(|p| p.starts_with("/routes/2/upstream")),
        "{pointers:?}"
    );
    assert_eq!(gw.readyz_generation(), g0, "nothing changed");
    assert_eq!(status(&gw.url("/bad"), None).await, 404);

    // A good route: created, served at once, written to the file.
    let (s, h, r) = api
        .call(
            "PUT",
            "/routes/new",
            Some(ADMIN),
            &[("If-Match", &etag)],
            Some(route.clone()),
        )
        .await;
    assert_eq!(s, 201, "{r}");
    assert_eq!(r["changes"], json!(["+ routes/new"]));
    assert_eq!(r["persisted"], true);
    let g1 = r["generation"].as_u64().unwrap();
    assert_eq!(h["etag"].to_str().unwrap(), format!("\"{g1}\""));
    assert_eq!(status(&gw.url("/new"), None).await, 200);
    let file = std::fs::read_to_string(&gw.config_path).unwrap();
    assert!(
        file.contains("/new") && file.starts_with("# Written by Rampart"),
        "{file}"
    );
    // The file watch sees the write but does not build the same config again.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(gw.readyz_generation(), g1);

    // The redacted whole config goes back unchanged: secrets kept, API key still works.
    let (_, h, doc) = api.get("/config", ADMIN).await;
    let tag = h["etag"].to_str().unwrap().to_string();
    assert!(doc.to_string().contains("<redacted>"));
    let (s, _, r) = api
        .call(
            "PUT",
            "/config",
            Some(ADMIN),
            &[("If-Match", &tag)],
            Some(doc.clone()),
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["changes"], json!([]));
    assert_eq!(
        status(&gw.url("/keyed"), Some(API_KEY)).await,
        200,
        "key hash kept"
    );
    assert!(std::fs::read_to_string(&gw.config_path)
        .unwrap()
        .contains(&sha256_hex(API_KEY.as_bytes())));
    // A placeholder where no secret is in force is an error at its place.
    let mut d2 = doc.clone();
    d2["consumers"][0]["api_keys"][0]["sha256"] = json!("<redacted>");
    d2["consumers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "bob", "api_keys": [{"sha256": "<redacted>"}]}));
    let tag = api.etag().await;
    let (s, _, e) = api
        .call(
            "PUT",
            "/config",
            Some(ADMIN),
            &[("If-Match", &tag)],
            Some(d2),
        )
        .await;
    assert_eq!(s, 422, "{e}");
    assert_eq!(e["errors"][0]["pointer"], "/consumers/1/api_keys/0/sha256");
    // A change that needs a restart is refused as such.
    let mut d3 = doc.clone();
    d3["listeners"][0]["address"] = json!(format!("127.0.0.1:{}", free_port()));
    let (s, _, e) = api
        .call(
            "PUT",
            "/config",
            Some(ADMIN),
            &[("If-Match", &tag)],
            Some(d3),
        )
        .await;
    assert_eq!(s, 409, "{e}");

    // History and rollback to the version before the route existed.
    let (s, _, hist) = api.get("/config/history", VIEWER).await;
    assert_eq!(s, 200);
    let versions = hist["versions"].as_array().unwrap();
    assert_eq!(versions[0]["by"], "ada");
    let first = versions.last().unwrap()["generation"].as_u64().unwrap();
    assert_eq!(versions.last().unwrap()["by"], "startup");
    let (s, _, old) = api.get(&format!("/config/history/{first}"), VIEWER).await;
    assert_eq!(s, 200);
    assert!(!old.to_string().contains("/new"));
    let tag = api.etag().await;
    let (s, _, r) = api
        .call(
            "POST",
            &format!("/config/history/{first}/restore"),
            Some(ADMIN),
            &[("If-Match", &tag)],
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(r["changes"], json!(["- routes/new"]));
    assert_eq!(status(&gw.url("/new"), None).await, 404);

    // Delete: 404 for a missing entry, then the real one.
    let tag = api.etag().await;
    let (s, _, _) = api
        .call(
            "DELETE",
            "/routes/ghost",
            Some(ADMIN),
            &[("If-Match", &tag)],
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, r) = api
        .call(
            "DELETE",
            "/routes/open",
            Some(ADMIN),
            &[("If-Match", &tag)],
            None,
        )
        .await;
    assert_eq!(s, 200, "{r}");
    assert_eq!(status(&gw.url("/open"), None).await, 404);

    // YAML in, and garbage refused.
    let tag = api.etag().await;
    let resp = client()
        .put(format!("{}/upstreams/v", api.base))
        .bearer_auth(ADMIN)
        .header("If-Match", &tag)
        .header("Content-Type", "application/yaml")
        .body(format!("targets: [\"{}\"]\n", up.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let tag = api.etag().await;
    for (ct, b) in [
        ("application/json", "{"),
        ("text/plain", "{}"),
        ("application/json", "[1]"),
    ] {
        let resp = client()
            .put(format!("{}/config", api.base))
            .bearer_auth(ADMIN)
            .header("If-Match", &tag)
            .header("Content-Type", ct)
            .body(b)
            .send()
            .await
            .unwrap();
        assert!(
            matches!(resp.status().as_u16(), 400 | 415),
            "{ct} {b}: {}",
            resp.status()
        );
    }
    let huge = vec![b' '; 9 * 1024 * 1024];
    let resp = client()
        .put(format!("{}/config", api.base))
        .bearer_auth(ADMIN)
        .header("If-Match", &tag)
        .header("Content-Type", "application/json")
        .body(huge)
        .send()
        .await;
    if let Ok(r) = resp {
        assert_eq!(r.status().as_u16(), 413);
    }
    assert_eq!(api.etag().await, tag, "nothing changed by bad bodies");

    // A new API key made by the gateway: shown once, works at once, never in events.
    let tag = api.etag().await;
    let (s, _, _) = api
        .call(
            "POST",
            "/consumers/nobody/api-keys",
            Some(ADMIN),
            &[("If-Match", &tag)],
            None,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, k) = api
        .call(
            "POST",
            "/consumers/alice/api-keys",
            Some(ADMIN),
            &[("If-Match", &tag)],
            Some(json!({"expires": "2099-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(s, 201, "{k}");
    let key = k["key"].as_str().unwrap().to_string();
    assert_eq!(k["sha256"], sha256_hex(key.as_bytes()));
    assert_eq!(status(&gw.url("/keyed"), Some(&key)).await, 200);
    assert_eq!(
        status(&gw.url("/keyed"), Some(API_KEY)).await,
        200,
        "the old key too"
    );

    let ev = events_with(
        &events,
        &["config_change", "config_refused", "api_key_added"],
    );
    assert!(!ev.contains(&key), "the new key is not in the events");
    let change: Value =
        serde_json::from_str(ev.lines().find(|l| l.contains("config_change")).unwrap()).unwrap();
    assert_eq!(change["actor"], "ada");
    assert_eq!(change["changes"], json!(["+ routes/new"]));
}

/// Repeated bad tokens lock the address out (429 + Retry-After, even with a good token),
/// then it may try again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tokens_lock_the_address_out() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-lock");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start_full(&body(&up, &events), "", &admin_yaml(""));
    let api = Api::new(&gw);
    for _ in 0..3 {
        assert_eq!(api.get("/config", "guess").await.0, 401);
    }
    assert_eq!(
        api.get("/config", "guess").await.0,
        401,
        "the fourth locks out"
    );
    let (s, h, _) = api.get("/config", ADMIN).await;
    assert_eq!(s, 429);
    assert!(h.contains_key("retry-after"));
    assert_eq!(
        api.call("GET", "/healthz", None, &[], None).await.0,
        200,
        "probes still answer"
    );
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(api.get("/config", ADMIN).await.0, 200);
    let ev = events_with(&events, &["\"action\":\"lockout\""]);
    assert!(ev.contains("\"action\":\"lockout\""), "{ev}");
}

/// A non-loopback admin listener without tokens is a config error.
#[test]
fn an_exposed_admin_listener_needs_tokens() {
    let dir = temp_dir("admin-exposed");
    let path = dir.join("c.yaml");
    let cfg = |admin: &str| {
        format!("admin:\n  address: 0.0.0.0:{}\n{admin}listeners:\n  - name: p\n    address: 127.0.0.1:{}\n", free_port(), free_port())
    };
    std::fs::write(&path, cfg("")).unwrap();
    validate_refuses(&path, &["admin.address", "not a loopback address"]);
    std::fs::write(
        &path,
        cfg(&format!(
            "  tokens: [{{name: a, role: admin, sha256: {}}}]\n",
            sha256_hex(b"x")
        )),
    )
    .unwrap();
    assert_eq!(validate(&path).0, Some(0));
}

/// Every operation in `/openapi.json` is routed (no documented path answers "no such
/// endpoint"), and Schemathesis (installed by scripts/test) finds no 5xx and no response
/// that breaks the document, with an admin token, against a gateway of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_keeps_to_its_openapi_document() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-st");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start_full(&body(&up, &events), "", &admin_yaml(""));
    let api = Api::new(&gw);
    let (s, _, doc) = api.get("/openapi.json", VIEWER).await;
    assert_eq!(s, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut n = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            if method == "parameters" {
                continue;
            }
            let concrete = path.replace("{name}", "u").replace("{generation}", "1");
            let (s, _, b) = api
                .call(&method.to_uppercase(), &concrete, Some(VIEWER), &[], None)
                .await;
            let documented = op["responses"].as_object().unwrap();
            assert!(
                documented.contains_key(&s.to_string()),
                "{method} {path}: {s} {b} not documented"
            );
            assert!(
                !b.to_string().contains("no such admin endpoint"),
                "{method} {path} is not routed"
            );
            n += 1;
        }
    }
    assert!(n > 25, "{n} operations");

    let st = std::env::var("RAMPART_SCHEMATHESIS").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/test-tools/venv/bin/st").into()
    });
    assert!(
        std::path::Path::new(&st).exists(),
        "Schemathesis is not installed at {st} (scripts/test installs it)"
    );
    let out = std::process::Command::new(&st)
        .args([
            "run",
            &format!("{}/openapi.json", api.base),
            "--header",
            &format!("Authorization: Bearer {ADMIN}"),
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance",
            "--max-examples",
            "30",
            "--seed",
            "1",
        ])
        .env("NO_COLOR", "1")
        // Its cache (`.schemathesis/`) goes to a scratch directory, not the checkout.
        .current_dir(temp_dir("schemathesis"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "Schemathesis found problems:\n{text}");
    // The gateway still serves after the run.
    assert_eq!(api.call("GET", "/healthz", None, &[], None).await.0, 200);
}

fn cli(args: &[&str], token: Option<&str>) -> (i32, String, String) {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"));
    c.args(args).env_remove("RAMPART_ADMIN_TOKEN");
    if let Some(t) = token {
        c.env("RAMPART_ADMIN_TOKEN", t);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `rampart export`, `diff` and `apply`: the exported (redacted) config edited and applied
/// keeps its secrets; diff names resources only; a bad file changes nothing; the token
/// comes from the environment or a file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_diff_apply_from_the_command_line() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-cli");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start_full(&body(&up, &events), "", &admin_yaml(""));
    let admin = format!("http://127.0.0.1:{}", gw.admin_port);

    let (code, _, err) = cli(&["export", "--admin", &admin], None);
    assert_eq!(code, 1);
    assert!(err.contains("RAMPART_ADMIN_TOKEN"), "{err}");
    let (code, yaml, err) = cli(&["export", "--admin", &admin], Some(VIEWER));
    assert_eq!(code, 0, "{err}");
    assert!(
        yaml.contains("<redacted>") && !yaml.contains("jwt-hmac-secret"),
        "{yaml}"
    );

    // Edit the export: a new route, the open one gone.
    let edited = yaml
        .replace("- name: open\n", "- name: added\n")
        .replace("/open", "/added");
    assert_ne!(edited, yaml);
    let file = dir.join("edited.yaml");
    std::fs::write(&file, &edited).unwrap();
    let f = file.to_str().unwrap();
    let (code, out, err) = cli(&["diff", "--config", f, "--admin", &admin], Some(ADMIN));
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        ["- routes/open", "+ routes/added"],
        "{out}"
    );
    let (code, _, err) = cli(&["diff", "--config", f, "--admin", &admin], Some(VIEWER));
    assert_eq!(code, 1, "diff is for admins");
    assert!(err.contains("403"), "{err}");

    let token_file = dir.join("token");
    std::fs::write(&token_file, format!("{ADMIN}\n")).unwrap();
    let tf = token_file.to_str().unwrap();
    let (code, out, err) = cli(
        &[
            "apply",
            "--config",
            f,
            "--admin",
            &admin,
            "--token-file",
            tf,
        ],
        None,
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains("+ routes/added") && out.contains("applied: generation"),
        "{out}"
    );
    assert_eq!(status(&gw.url("/added"), None).await, 200);
    assert_eq!(
        status(&gw.url("/keyed"), Some(API_KEY)).await,
        200,
        "secrets kept"
    );
    let (code, out, _) = cli(&["diff", "--config", f, "--admin", &admin], Some(ADMIN));
    assert_eq!((code, out.trim()), (0, "no changes"));

    // A broken file: every error, nothing applied.
    std::fs::write(&file, edited.replace("upstream: u", "upstream: nowhere")).unwrap();
    let before = gw.readyz_generation();
    let (code, _, err) = cli(&["apply", "--config", f, "--admin", &admin], Some(ADMIN));
    assert_eq!(code, 1);
    assert!(err.contains("422") && err.contains("/routes/"), "{err}");
    assert_eq!(gw.readyz_generation(), before);
}

struct Pki {
    ca_pem: String,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
}

impl Pki {
    fn new() -> Pki {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "admin test CA");
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = p.self_signed(&key).unwrap();
        Pki {
            ca_pem: cert.pem(),
            issuer: rcgen::Issuer::new(p, key),
        }
    }

    /// (cert PEM, key PEM) for `cn`, with `dns` names.
    fn issue(&self, cn: &str, dns: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut p =
            rcgen::CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        p.distinguished_name.push(rcgen::DnType::CommonName, cn);
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// The admin listener over HTTPS: a client certificate named in `admin.clients` stands for
/// a token (with its role), an unknown one does not; tokens still work; the CLI speaks
/// HTTPS with a CA and a client certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_over_https_knows_client_certificates() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-tls");
    let pki = Pki::new();
    let write = |name: &str, text: &str| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let ca = write("ca.pem", &pki.ca_pem);
    let (sc, sk) = pki.issue("localhost", &["localhost"]);
    let (server_cert, server_key) = (write("server.pem", &sc), write("server.key", &sk));
    let (rc, rk) = pki.issue("ops-robot", &[]);
    let (robot_cert, robot_key) = (write("robot.pem", &rc), write("robot.key", &rk));
    let (xc, xk) = pki.issue("stranger", &[]);
    let admin = format!(
        "{}  tls:\n    certificates: [{{cert: {server_cert}, key: {server_key}}}]\n    client_auth: {{ca: {ca}, mode: optional}}\n  clients:\n    - {{name: robot, role: operator, subject_cn: ops-robot}}\n",
        admin_yaml("")
    );
    let gw = Gateway::start_full(&body(&up, &dir.join("events.jsonl")), "", &admin);
    let base = format!("https://localhost:{}", gw.admin_port);
    let ca_cert = reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap();
    let with = |identity: Option<(&str, &str)>| {
        let mut b = reqwest::Client::builder().add_root_certificate(ca_cert.clone());
        if let Some((c, k)) = identity {
            b = b.identity(reqwest::Identity::from_pem(format!("{c}\n{k}").as_bytes()).unwrap());
        }
        b.build().unwrap()
    };
    let whoami = async |c: &reqwest::Client, token: Option<&str>| {
        let mut r = c.get(format!("{base}/whoami"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let healthz = with(None)
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status().as_u16(), 200);
    assert_eq!(
        whoami(&with(None), None).await.0,
        401,
        "no certificate, no token"
    );
    let (s, b) = whoami(&with(Some((&rc, &rk))), None).await;
    assert_eq!(s, 200, "{b}");
    assert!(
        b.contains("\"name\":\"robot\"") && b.contains("operator"),
        "{b}"
    );
    assert_eq!(
        whoami(&with(Some((&xc, &xk))), None).await.0,
        401,
        "a certificate no client names"
    );
    let (s, b) = whoami(&with(None), Some(ADMIN)).await;
    assert_eq!((s, b.contains("\"role\":\"admin\"")), (200, true), "{b}");
    // Plain HTTP to the HTTPS admin port gets nothing.
    assert!(raw_get(gw.admin_port, "/healthz")
        .map(|(s, _)| s != 200)
        .unwrap_or(true));

    let tls_args = [
        "--admin",
        &base,
        "--ca",
        &ca,
        "--client-cert",
        &robot_cert,
        "--client-key",
        &robot_key,
    ];
    let mut args = vec!["export"];
    args.extend(tls_args);
    let (code, out, err) = cli(&args, None);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("<redacted>"), "{out}");
    let cfg = dir.join("same.yaml");
    std::fs::write(&cfg, &out).unwrap();
    let mut args = vec!["apply", "--config", cfg.to_str().unwrap()];
    args.extend(tls_args);
    let (code, _, err) = cli(&args, None);
    assert_eq!(code, 1, "an operator does not change the config");
    assert!(err.contains("403"), "{err}");
}

/// Bodies the API must refuse whatever their framing: over `admin.max_body` without a
/// length (chunked), a byte order mark, a key given twice; nothing changes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_bodies_are_bounded_and_unambiguous() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("admin-bodies");
    let gw = Gateway::start_full(
        &body(&up, &dir.join("events.jsonl")),
        "",
        &admin_yaml("  max_body: 64KiB\n"),
    );
    let api = Api::new(&gw);
    let tag = api.etag().await;
    let put = async |body: reqwest::Body| {
        client()
            .put(format!("{}/config", api.base))
            .bearer_auth(ADMIN)
            .header("If-Match", &tag)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    };
    // 1 MiB in chunks, no Content-Length.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..64).map(|_| Ok(vec![b' '; 16384])).collect();
    let s = put(reqwest::Body::wrap_stream(futures_util::stream::iter(
        chunks,
    )))
    .await;
    assert!(matches!(s, Ok(413) | Err(_)), "{s:?}");
    let (_, _, doc) = api.get("/config", ADMIN).await;
    let mut bom = vec![0xEF, 0xBB, 0xBF];
    bom.extend(serde_json::to_vec(&doc).unwrap());
    assert_eq!(put(bom.into()).await.unwrap(), 400, "byte order mark");
    let twice = format!(r#"{{"routes": [], {}"#, &doc.to_string()[1..]);
    assert_eq!(put(twice.into()).await.unwrap(), 400, "a key given twice");
    assert_eq!(api.etag().await, tag, "nothing changed");
}
