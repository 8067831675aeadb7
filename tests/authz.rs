//! Authorization through real sockets: lists, scopes, claims, per-operation rules, Cedar
//! (context: time, client IP), invalid policies refused with their location, hot reload.
mod common;
use common::*;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const SECRET: &str = "test-hmac-secret-0123456789abcdef";

fn token(claims: Value) -> String {
    let mut c = claims;
    c["iss"] = json!("https://idp.test");
    c["exp"] = json!(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 300
    );
    format!(
        "Bearer {}",
        encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(SECRET.as_bytes())
        )
        .unwrap()
    )
}

fn sha(s: &str) -> String {
    sha256_hex(s.as_bytes())
}

fn base(up: &Upstream, extra_top: &str, routes: &str) -> String {
    format!(
        r#"consumers:
  - {{ id: alice, groups: [readers, writers], api_keys: [{{ sha256: {a} }}], subjects: [alice] }}
  - {{ id: bob, groups: [readers], api_keys: [{{ sha256: {b} }}], subjects: [bob] }}
  - {{ id: eve, groups: [readers, suspended], api_keys: [{{ sha256: {e} }}] }}
auth:
  jwt:
    - issuer: https://idp.test
      algorithms: [HS256]
      keys: [{{ secret: "{SECRET}" }}]
      allow_unknown_subjects: true
{extra_top}upstreams:
{up}routes:
{routes}"#,
        a = sha("key-alice"),
        b = sha("key-bob"),
        e = sha("key-eve"),
        up = upstream_yaml("u", &[up.addr], "")
    )
}

async fn status(c: &reqwest::Client, method: &str, url: String, auth: (&str, &str)) -> u16 {
    c.request(method.parse().unwrap(), url)
        .header(auth.0, auth.1)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lists_scopes_claims_and_operations() {
    let up = Upstream::start("a").await;
    let routes = r#"  - name: readers
    paths: ["/readers"]
    upstream: u
    auth: { methods: [api_key] }
    authorize: { groups: [readers], deny_groups: [suspended] }
  - name: only-bob
    paths: ["/bob"]
    upstream: u
    auth: { methods: [api_key] }
    authorize: { consumers: [bob] }
  - name: scoped
    paths: ["/scoped"]
    upstream: u
    auth: { methods: [jwt] }
    authorize: { scopes: { all: ["orders:read"], any: ["tier:gold", "tier:silver"] } }
  - name: claims
    paths: ["/claims"]
    upstream: u
    auth: { methods: [jwt] }
    authorize:
      claims:
        - { claim: email, glob: "*@example.test" }
        - { claim: org.department, one_of: [sales, support] }
        - { claim: email_verified, equals: "true" }
        - { claim: impersonator, present: false }
  - name: orders
    paths: ["/orders"]
    upstream: u
    auth: { methods: [api_key] }
    authorize:
      operations:
        - { methods: [GET], path: "/orders/{id}", groups: [readers] }
        - { methods: [GET], path: "/orders", groups: [readers] }
        - { methods: [POST, PUT], path: "/orders/**", groups: [writers] }
  - name: plain-auth
    paths: ["/plain"]
    upstream: u
    auth: { methods: [api_key] }
"#;
    let gw = Gateway::start(&base(&up, "", routes));
    let c = client();
    let key = |k: &'static str| ("X-API-Key", k);
    assert_eq!(
        status(&c, "GET", gw.url("/readers"), key("key-bob")).await,
        200
    );
    assert_eq!(
        status(&c, "GET", gw.url("/readers"), key("key-eve")).await,
        403,
        "deny list wins"
    );
    assert_eq!(status(&c, "GET", gw.url("/bob"), key("key-bob")).await, 200);
    assert_eq!(
        status(&c, "GET", gw.url("/bob"), key("key-alice")).await,
        403
    );

    let t = |v: Value| token(v);
    let scoped = gw.url("/scoped");
    assert_eq!(
        status(
            &c,
            "GET",
            scoped.clone(),
            (
                "Authorization",
                &t(json!({"sub": "x", "scope": "orders:read tier:gold"}))
            )
        )
        .await,
        200
    );
    assert_eq!(
        status(
            &c,
            "GET",
            scoped.clone(),
            (
                "Authorization",
                &t(json!({"sub": "x", "scp": ["orders:read", "tier:silver"]}))
            )
        )
        .await,
        200
    );
    assert_eq!(
        status(
            &c,
            "GET",
            scoped.clone(),
            (
                "Authorization",
                &t(json!({"sub": "x", "scope": "orders:read"}))
            )
        )
        .await,
        403
    );
    assert_eq!(
        status(
            &c,
            "GET",
            scoped,
            (
                "Authorization",
                &t(json!({"sub": "x", "scope": "tier:gold"}))
            )
        )
        .await,
        403
    );

    let good = json!({"sub": "x", "email": "a@example.test", "org": {"department": "sales"}, "email_verified": true});
    let claims = gw.url("/claims");
    assert_eq!(
        status(
            &c,
            "GET",
            claims.clone(),
            ("Authorization", &t(good.clone()))
        )
        .await,
        200
    );
    for (k, v) in [
        ("email", json!("a@example.test.evil")),
        ("org", json!({"department": "it"})),
        ("email_verified", json!(false)),
        ("impersonator", json!("admin")),
    ] {
        let mut bad = good.clone();
        bad[k] = v;
        assert_eq!(
            status(&c, "GET", claims.clone(), ("Authorization", &t(bad))).await,
            403,
            "{k}"
        );
    }

    assert_eq!(
        status(&c, "GET", gw.url("/orders/7"), key("key-bob")).await,
        200
    );
    assert_eq!(
        status(&c, "GET", gw.url("/orders"), key("key-bob")).await,
        200
    );
    assert_eq!(
        status(&c, "POST", gw.url("/orders/7"), key("key-bob")).await,
        403,
        "reader cannot write"
    );
    assert_eq!(
        status(&c, "POST", gw.url("/orders/7"), key("key-alice")).await,
        200
    );
    assert_eq!(
        status(&c, "DELETE", gw.url("/orders/7"), key("key-alice")).await,
        403,
        "no rule: deny"
    );
    assert_eq!(
        status(&c, "GET", gw.url("/plain"), key("key-eve")).await,
        200,
        "default allow"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.access_log();
    let line = log
        .lines()
        .find(|l| l.contains("\"path\":\"/readers\"") && l.contains("\"status\":403"))
        .unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["authz"]["reason"], "group suspended is denied");
    assert_eq!(v["refused_by"], "authorize");
}

fn write_policies(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("policies.cedar");
    std::fs::write(&p, text).unwrap();
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cedar_policies_with_context_and_hot_reload() {
    let up = Upstream::start("a").await;
    let hour = (SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        / 3600)
        % 24;
    let near: Vec<String> = [23, 0, 1]
        .iter()
        .map(|d| ((hour + d) % 24).to_string())
        .collect();
    let office = |open: bool| {
        // "Office hours" that include (or exclude) the current hour ±1, so the test does not
        // depend on when it runs.
        let set = format!("[{}]", near.join(", "));
        let cond = if open {
            format!("!({set}.contains(context.time.hour))")
        } else {
            format!("{set}.contains(context.time.hour)")
        };
        format!(
            r#"@id("readers-read")
permit(principal in Group::"readers", action == Action::"GET", resource == Route::"reports");
@id("writers-write")
permit(principal in Group::"writers", action == Action::"create-report", resource == Route::"reports");
@id("outside-office-hours")
forbid(principal, action, resource == Route::"reports") when {{ {cond} }};
@id("no-loopback-admin")
forbid(principal, action, resource == Route::"netcheck") when {{ context.client_ip.isInRange(ip("127.0.0.0/8")) }};
permit(principal, action, resource == Route::"netcheck");
"#
        )
    };
    let dir = temp_dir("cedar");
    let pol = write_policies(&dir, &office(true));
    let routes = r#"  - name: reports
    paths: ["/reports"]
    upstream: u
    auth: { methods: [api_key] }
    authorize:
      cedar: true
      operations:
        - { methods: [GET], path: "/reports/**" }
        - { methods: [POST], path: "/reports", operation_id: create-report }
  - name: netcheck
    paths: ["/netcheck"]
    upstream: u
    auth: { methods: [api_key] }
    authorize: { cedar: true }
"#;
    let top = format!("cedar:\n  policies: {}\n", pol.display());
    let gw = Gateway::start(&base(&up, &top, routes));
    let c = client();
    let key = |k: &'static str| ("X-API-Key", k);
    assert_eq!(
        status(&c, "GET", gw.url("/reports/q3"), key("key-bob")).await,
        200
    );
    assert_eq!(
        status(&c, "POST", gw.url("/reports"), key("key-bob")).await,
        403,
        "bob cannot create"
    );
    assert_eq!(
        status(&c, "POST", gw.url("/reports"), key("key-alice")).await,
        200
    );
    assert_eq!(
        status(&c, "GET", gw.url("/netcheck"), key("key-alice")).await,
        403,
        "loopback forbidden"
    );

    // Close the office: the policy file changes, SIGHUP, no restart.
    write_policies(&dir, &office(false));
    gw.sighup();
    let mut closed = false;
    for _ in 0..50 {
        if status(&c, "GET", gw.url("/reports/q3"), key("key-bob")).await == 403 {
            closed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(closed, "policy reload not applied: {}", gw.stderr());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.access_log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains("/reports/q3") && l.contains("\"status\":403"))
        .unwrap();
    let v: Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["authz"]["policies"], json!(["outside-office-hours"]));

    // An invalid policy is refused and the last good one stays.
    write_policies(
        &dir,
        "permit(principal, action, resource) when { context.nope == };\n",
    );
    gw.sighup();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(gw.metric("rampart_config_reloads_total{result=\"failed\"}") >= 1.0);
    assert!(gw.stderr().contains("policies.cedar:1:"), "{}", gw.stderr());
    assert_eq!(
        status(&c, "GET", gw.url("/reports/q3"), key("key-bob")).await,
        403
    );
}

#[test]
fn invalid_policies_are_config_errors_with_locations() {
    let dir = temp_dir("cedar");
    let pol = write_policies(
        &dir,
        "permit(principal, action, resource);\nforbid(principal, action resource);\n",
    );
    let schema = dir.join("s.cedarschema");
    std::fs::write(&schema, "entity Group;\nentity Consumer in [Group];\nentity Route { path: String, method: String };\naction GET appliesTo { principal: Consumer, resource: Route, context: {} };\n").unwrap();
    let cfg = dir.join("c.yaml");
    let write_cfg = |policies: &std::path::Path, schema: Option<&std::path::Path>| {
        let s = schema
            .map(|s| format!("  schema: {}\n", s.display()))
            .unwrap_or_default();
        std::fs::write(
            &cfg,
            format!(
                "listeners:\n  - name: p\n    address: 127.0.0.1:1\ncedar:\n  policies: {}\n{s}",
                policies.display()
            ),
        )
        .unwrap();
    };
    write_cfg(&pol, None);
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains(&format!("{}:2:", pol.display())), "{err}");
    assert!(err.contains("c.yaml:5:3: cedar.policies:"), "{err}");
    // Valid syntax, but not valid against the schema: an attribute that does not exist.
    let pol2 = dir.join("typed.cedar");
    std::fs::write(&pol2, "permit(principal, action == Action::\"GET\", resource)\nwhen { resource.owner == principal };\n").unwrap();
    write_cfg(&pol2, Some(&schema));
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!("{}:2:", pol2.display())) && err.contains("owner"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn default_authorization_deny() {
    let up = Upstream::start("a").await;
    let routes = "  - name: plain-auth\n    paths: [\"/plain\"]\n    upstream: u\n    auth: { methods: [api_key] }\n";
    let gw = Gateway::start(&base(&up, "default_authorization: deny\n", routes));
    let c = client();
    assert_eq!(
        status(&c, "GET", gw.url("/plain"), ("X-API-Key", "key-alice")).await,
        403
    );
    assert_eq!(
        status(&c, "GET", gw.url("/plain"), ("X-API-Key", "nope")).await,
        401
    );
}
