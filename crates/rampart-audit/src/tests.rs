//! Each finding: a config that triggers it and a close one that does not.

use super::*;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A strong HMAC secret (48 bytes, varied): the clean configs use it.
const STRONG: &str = "q3Vx9LrT2mZp8WcN4bYh7KdF1sJg6AeUoR5iXtQyHl0nMvBw";

/// A config with no finding at all: TLS with HSTS, a redirecting plain listener, a WAF that
/// blocks, a rate limit, JWT with audience and a strong secret, an authorized route.
const BASE: &str = r#"listeners:
  - name: https
    address: 0.0.0.0:8443
    tls:
      certificates:
        - cert: ${CERT}
          key: ${KEY}
    hsts: {}
  - name: http
    address: 0.0.0.0:8080
    redirect_https: true
admin:
  address: 127.0.0.1:9901
upstreams:
  app:
    targets: ["10.0.0.5:9000"]
rate_limit:
  - rate: 100/s
waf:
  custom_rules: |
    SecRule ARGS "@rx attack" "id:1,phase:2,deny"
auth:
  jwt:
    - issuer: https://idp.example.test
      audiences: [api]
      algorithms: [HS256]
      keys:
        - secret: ${JWT_SECRET}
routes:
  - name: api
    paths: ["/api"]
    upstream: app
    auth: { methods: [jwt] }
    authorize: { groups: [staff] }
"#;

const TOKEN_HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

/// A self-signed certificate and its key, written once for all tests: (cert, key).
fn cert_files() -> &'static (PathBuf, PathBuf) {
    static FILES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    FILES.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rampart-audit-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, ck.cert.pem()).unwrap();
        std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
        (cert, key)
    })
}

fn load_with_secret(yaml: &str, secret: &str) -> Config {
    let (cert, key) = cert_files();
    let env = |name: &str| match name {
        "CERT" => Some(cert.display().to_string()),
        "KEY" => Some(key.display().to_string()),
        "JWT_SECRET" => Some(secret.to_string()),
        _ => None,
    };
    match rampart_config::load_str_with_env(yaml, "t.yaml", &env) {
        Ok(c) => c,
        Err(e) => panic!("the test config does not load:\n{e}\n---\n{yaml}"),
    }
}

fn findings_with_secret(yaml: &str, secret: &str) -> Vec<Finding> {
    let mut f = audit(&load_with_secret(yaml, secret));
    locate(&mut f, yaml);
    f
}

fn findings(yaml: &str) -> Vec<Finding> {
    findings_with_secret(yaml, STRONG)
}

/// The findings with `id`.
fn of(yaml: &str, id: &str) -> Vec<Finding> {
    findings(yaml).into_iter().filter(|f| f.id == id).collect()
}

/// The one finding with `id`, with its severity checked.
fn one(yaml: &str, id: &str, severity: Severity) -> Finding {
    let mut f = of(yaml, id);
    assert_eq!(f.len(), 1, "expected one {id} in {f:#?}\n---\n{yaml}");
    let f = f.remove(0);
    assert_eq!(f.severity, severity, "{f:#?}");
    f
}

fn none(yaml: &str, id: &str) {
    let f = of(yaml, id);
    assert!(f.is_empty(), "unexpected {id}: {f:#?}\n---\n{yaml}");
}

/// `BASE` with `old` replaced; the replacement must happen.
fn edit(old: &str, new: &str) -> String {
    assert!(BASE.contains(old), "{old:?} is not in BASE");
    BASE.replacen(old, new, 1)
}

/// `BASE` with top-level keys added before `routes:`.
fn top(extra: &str) -> String {
    edit("routes:\n", &format!("{extra}routes:\n"))
}

/// `text` with one more route (YAML lines of the list item, starting `  - name:`).
fn route(text: &str, item: &str) -> String {
    format!("{text}{item}")
}

/// The 1-based line of the first line of `text` containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).unwrap() + 1
}

const OPEN: &str = "  - name: open\n    paths: [\"/open\"]\n    upstream: app\n";

#[test]
fn the_base_config_is_clean() {
    let f = findings(BASE);
    assert!(f.is_empty(), "{f:#?}");
    assert_eq!(exit_code(&f), 0);
    assert_eq!(render_text(&f, "t.yaml"), "t.yaml: no findings\n");
}

#[test]
fn route_without_auth() {
    let text = route(BASE, OPEN);
    let f = one(&text, "route-without-auth", Severity::Medium);
    assert_eq!(f.path, "routes.1.auth");
    assert_eq!(f.line, line_of(&text, "name: open"));
    assert_eq!(f.owasp, owasp::BROKEN_AUTHENTICATION);

    // Admitting only listed networks lowers it.
    let fenced = route(
        &top("network:\n  lists:\n    office: { cidrs: [10.0.0.0/8] }\n"),
        &format!("{OPEN}    network: {{ allow_only: [office] }}\n"),
    );
    one(&fenced, "route-without-auth", Severity::Low);

    // Public on purpose: said so with optional auth.
    none(
        &route(
            BASE,
            &format!("{OPEN}    auth: {{ methods: [jwt], optional: true }}\n"),
        ),
        "route-without-auth",
    );
    none(BASE, "route-without-auth");
}

#[test]
fn route_without_authorization() {
    let text = edit("    authorize: { groups: [staff] }\n", "");
    let f = one(&text, "route-without-authorization", Severity::Info);
    assert_eq!(f.owasp, owasp::FUNCTION_LEVEL_AUTHORIZATION);
    // Info alone does not fail CI.
    assert_eq!(exit_code(&[f]), 0);
    none(
        &text.replace("routes:\n", "default_authorization: deny\nroutes:\n"),
        "route-without-authorization",
    );
    none(BASE, "route-without-authorization");
}

fn admin(address: &str, extra: &str) -> String {
    edit(
        "admin:\n  address: 127.0.0.1:9901\n",
        &format!(
            "admin:\n  address: {address}\n{extra}  tokens:\n    - name: ops\n      role: admin\n      sha256: {TOKEN_HASH}\n      expires: \"2030-01-01T00:00:00Z\"\n"
        ),
    )
}

#[test]
fn admin_plain_http() {
    let text = admin("0.0.0.0:9901", "");
    let f = one(&text, "admin-plain-http", Severity::High);
    assert_eq!(
        (f.line, f.column),
        (line_of(&text, "address: 0.0.0.0:9901"), 3)
    );
    none(&admin("127.0.0.1:9901", ""), "admin-plain-http");
    none(&admin("\"[::1]:9901\"", ""), "admin-plain-http");
}

#[test]
fn admin_metrics_public() {
    let f = one(
        &admin("0.0.0.0:9901", ""),
        "admin-metrics-public",
        Severity::Medium,
    );
    assert_eq!(f.path, "admin.metrics");
    none(
        &admin("0.0.0.0:9901", "  metrics: authenticated\n"),
        "admin-metrics-public",
    );
    // Public metrics on loopback are the default and reach only this host.
    none(&admin("127.0.0.1:9901", ""), "admin-metrics-public");
}

#[test]
fn admin_token_no_expiry() {
    let text = admin("127.0.0.1:9901", "").replace("      expires: \"2030-01-01T00:00:00Z\"\n", "");
    let f = one(&text, "admin-token-no-expiry", Severity::Low);
    assert_eq!(f.path, "admin.tokens.0.expires");
    assert_eq!(f.line, line_of(&text, "- name: ops"));
    none(&admin("127.0.0.1:9901", ""), "admin-token-no-expiry");
}

#[test]
fn plain_http_no_redirect() {
    let text = edit("    redirect_https: true\n", "");
    let f = one(&text, "plain-http-no-redirect", Severity::Medium);
    assert_eq!(f.path, "listeners.1.redirect_https");
    assert_eq!(f.line, 9);
    // Behind trusted proxies a balancer may terminate TLS.
    let behind = text.replace(
        "routes:\n",
        "server:\n  trusted_proxies: [10.1.0.0/16]\nroutes:\n",
    );
    one(&behind, "plain-http-no-redirect", Severity::Low);
    none(BASE, "plain-http-no-redirect");
    none(
        &text.replace("0.0.0.0:8080", "127.0.0.1:8080"),
        "plain-http-no-redirect",
    );
}

#[test]
fn basic_over_plain_http() {
    let basic = "  - name: login\n    paths: [\"/login\"]\n    upstream: app\n    auth: { methods: [basic] }\n";
    let text = route(&edit("    redirect_https: true\n", ""), basic);
    let f = one(&text, "basic-over-plain-http", Severity::High);
    assert_eq!(f.path, "routes.1.auth.methods");
    assert_eq!(f.line, line_of(&text, "methods: [basic]"));
    assert!(f.title.contains("\"http\""), "{}", f.title);
    none(&route(BASE, basic), "basic-over-plain-http");
    // Bearer tokens are not passwords: another finding's matter.
    none(
        &edit("    redirect_https: true\n", ""),
        "basic-over-plain-http",
    );
}

#[test]
fn hsts_off() {
    let text = edit("    hsts: {}\n", "");
    let f = one(&text, "hsts-off", Severity::Low);
    assert_eq!(f.path, "listeners.0.hsts");
    assert_eq!(f.line, 2);
    none(BASE, "hsts-off");
}

#[test]
fn hsts_short() {
    let text = edit("hsts: {}", "hsts: { max_age: 1d }");
    let f = one(&text, "hsts-short", Severity::Low);
    assert_eq!(f.line, 8);
    assert!(f.title.contains("max-age of 1 day only"), "{}", f.title);
    let f = one(
        &edit("hsts: {}", "hsts: { max_age: 2h }"),
        "hsts-short",
        Severity::Low,
    );
    assert!(f.title.contains("max-age of 2 hours only"), "{}", f.title);
    none(&edit("hsts: {}", "hsts: { max_age: 365d }"), "hsts-short");
}

const WAF: &str =
    "waf:\n  custom_rules: |\n    SecRule ARGS \"@rx attack\" \"id:1,phase:2,deny\"\n";

#[test]
fn waf_off() {
    let f = one(&edit(WAF, ""), "waf-off", Severity::Medium);
    assert_eq!(f.path, "waf");
    let text = edit(
        "    authorize: { groups: [staff] }\n",
        "    authorize: { groups: [staff] }\n    waf: { enabled: false }\n",
    );
    let f = one(&text, "waf-off", Severity::Medium);
    assert_eq!(f.path, "routes.0.waf.enabled");
    assert_eq!(f.line, line_of(&text, "enabled: false"));
    none(BASE, "waf-off");
    // Nothing proxied, nothing to protect.
    let no_routes = edit(WAF, "");
    let no_routes = &no_routes[..no_routes.find("routes:").unwrap()];
    none(no_routes, "waf-off");
}

#[test]
fn waf_detect_only() {
    let f = one(
        &edit(WAF, &format!("{WAF}  mode: detect\n")),
        "waf-detect-only",
        Severity::Medium,
    );
    assert_eq!(f.path, "waf.mode");
    let per_route = |mode: &str| {
        edit(
            "    authorize: { groups: [staff] }\n",
            &format!("    authorize: {{ groups: [staff] }}\n    waf: {{ mode: {mode} }}\n"),
        )
    };
    let f = one(&per_route("detect"), "waf-detect-only", Severity::Medium);
    assert_eq!(f.path, "routes.0.waf.mode");
    none(&per_route("block"), "waf-detect-only");
    none(BASE, "waf-detect-only");
}

#[test]
fn waf_partial_body() {
    let action = |a: &str| edit(WAF, &format!("{WAF}  request_body_limit_action: {a}\n"));
    one(
        &action("process_partial"),
        "waf-partial-body",
        Severity::Low,
    );
    none(&action("reject"), "waf-partial-body");
}

const TOP_LIMIT: &str = "rate_limit:\n  - rate: 100/s\n";

#[test]
fn auth_route_no_rate_limit() {
    let f = one(
        &edit(TOP_LIMIT, ""),
        "auth-route-no-rate-limit",
        Severity::Medium,
    );
    assert_eq!(f.path, "routes.0.rate_limit");
    let opted_out = edit(
        "    authorize: { groups: [staff] }\n",
        "    authorize: { groups: [staff] }\n    rate_limit: []\n",
    );
    let f = one(&opted_out, "auth-route-no-rate-limit", Severity::Medium);
    assert_eq!(f.line, line_of(&opted_out, "rate_limit: []"));
    // Its own limit, without a top-level one.
    let own = edit(TOP_LIMIT, "").replace(
        "    authorize: { groups: [staff] }\n",
        "    authorize: { groups: [staff] }\n    rate_limit: [{ rate: 5/s }]\n",
    );
    none(&own, "auth-route-no-rate-limit");
    none(BASE, "auth-route-no-rate-limit");
}

#[test]
fn route_no_rate_limit() {
    let f = one(
        &route(&edit(TOP_LIMIT, ""), OPEN),
        "route-no-rate-limit",
        Severity::Low,
    );
    assert_eq!(f.path, "routes.1.rate_limit");
    assert_eq!(f.owasp, owasp::RESOURCE_CONSUMPTION);
    none(&route(BASE, OPEN), "route-no-rate-limit");
    none(
        &route(
            &edit(TOP_LIMIT, ""),
            &format!("{OPEN}    rate_limit: [{{ rate: 50/s }}]\n"),
        ),
        "route-no-rate-limit",
    );
}

#[test]
fn jwt_no_audience() {
    let text = edit("      audiences: [api]\n", "");
    let f = one(&text, "jwt-no-audience", Severity::Medium);
    assert_eq!(f.path, "auth.jwt.0.audiences");
    assert_eq!(f.line, line_of(&text, "- issuer:"));
    none(BASE, "jwt-no-audience");
}

#[test]
fn jwt_long_leeway() {
    let leeway = |d: &str| {
        edit(
            "      algorithms: [HS256]\n",
            &format!("      algorithms: [HS256]\n      leeway: {d}\n"),
        )
    };
    let f = one(&leeway("10m"), "jwt-long-leeway", Severity::Low);
    assert!(f.title.contains("600 s"), "{}", f.title);
    none(&leeway("1m"), "jwt-long-leeway");
}

#[test]
fn jwt_weak_secret() {
    let weak = |secret: &str| -> Vec<Finding> {
        findings_with_secret(BASE, secret)
            .into_iter()
            .filter(|f| f.id == "jwt-weak-secret")
            .collect()
    };
    for (secret, severity, why) in [
        ("hunter2", Severity::Critical, "only 7 distinct"),
        ("Zx81mQ2vK9pL4tRw7nB3", Severity::High, "20 bytes long"),
        (
            "aB3$xY7!aB3$xY7!aB3$xY7!aB3$xY7!aB3$xY7!",
            Severity::Critical,
            "8-byte pattern",
        ),
        (
            "passwordpasswordpasswordpassword",
            Severity::Critical,
            "distinct",
        ),
        (
            "0000000000000000000000000000000000000000",
            Severity::Critical,
            "only 1 distinct",
        ),
    ] {
        let f = weak(secret);
        assert_eq!(f.len(), 1, "{secret}: {f:#?}");
        assert_eq!(f[0].severity, severity, "{secret}");
        assert_eq!(f[0].path, "auth.jwt.0.keys.0.secret");
        assert!(f[0].title.contains(why), "{secret}: {}", f[0].title);
        // The secret is never shown, in any output.
        let text = render_text(&f, "t.yaml");
        let json = render_json(&f, "t.yaml");
        for out in [&f[0].title, &f[0].fix, &text, &json] {
            assert!(!out.contains(secret), "{secret} shown in {out}");
        }
    }
    // The line is that of the key as written (`${JWT_SECRET}`).
    let f = weak("short");
    assert_eq!(f[0].line, line_of(BASE, "secret: ${JWT_SECRET}"));
    assert!(
        f[0].title.starts_with("the HMAC secret of key 0 of issuer"),
        "{}",
        f[0].title
    );
    // A key with a kid is named by it.
    let kid = BASE.replace(
        "        - secret:",
        "        - kid: main\n          secret:",
    );
    let f = findings_with_secret(&kid, "short");
    let f = f.iter().find(|f| f.id == "jwt-weak-secret").unwrap();
    assert!(f.title.contains("key \"main\" of issuer"), "{}", f.title);
    assert!(weak(STRONG).is_empty());
    assert!(weak("3f9a1c0b7e2d4f6a8b5c9d0e1f2a3b4c5d6e7f80").is_empty());
}

#[test]
fn auth_backend_without_tls() {
    let jwks = |url: &str| {
        edit(
            "      keys:\n        - secret: ${JWT_SECRET}\n",
            &format!("      jwks_url: {url}\n"),
        )
    };
    let f = one(
        &jwks("http://idp.example.test/jwks"),
        "auth-backend-without-tls",
        Severity::High,
    );
    assert_eq!(f.path, "auth.jwt.0.jwks_url");
    none(
        &jwks("https://idp.example.test/jwks"),
        "auth-backend-without-tls",
    );

    let discovery = |issuer: &str| {
        edit(
            "    - issuer: https://idp.example.test\n",
            &format!("    - issuer: {issuer}\n      discovery: true\n"),
        )
    };
    let f = one(
        &discovery("http://idp.example.test"),
        "auth-backend-without-tls",
        Severity::High,
    );
    assert_eq!(f.path, "auth.jwt.0.issuer");
    none(
        &discovery("https://idp.example.test"),
        "auth-backend-without-tls",
    );

    let introspection = |url: &str| {
        edit(
            "auth:\n",
            &format!("auth:\n  introspection: {{ url: \"{url}\", client_id: gw, client_secret: s3cr3t }}\n"),
        )
    };
    let f = one(
        &introspection("http://idp.example.test/introspect"),
        "auth-backend-without-tls",
        Severity::High,
    );
    assert_eq!(f.path, "auth.introspection.url");
    assert!(!f.title.contains("s3cr3t"));
    none(
        &introspection("https://idp.example.test/introspect"),
        "auth-backend-without-tls",
    );

    let ldap = |url: &str, starttls: bool| {
        edit(
            "auth:\n",
            &format!("auth:\n  ldap: {{ url: \"{url}\", starttls: {starttls}, bind_dn: \"uid={{user}},dc=example\" }}\n"),
        )
    };
    let f = one(
        &ldap("ldap://10.0.0.9:389", false),
        "auth-backend-without-tls",
        Severity::High,
    );
    assert_eq!(f.path, "auth.ldap.url");
    none(
        &ldap("ldap://10.0.0.9:389", true),
        "auth-backend-without-tls",
    );
    none(
        &ldap("ldaps://10.0.0.9:636", false),
        "auth-backend-without-tls",
    );
    none(BASE, "auth-backend-without-tls");
}

#[test]
fn api_key_in_query() {
    let text = edit("auth:\n", "auth:\n  api_key: { query: key }\n");
    let f = one(&text, "api-key-in-query", Severity::Low);
    assert_eq!(f.path, "auth.api_key.query");
    none(
        &edit("auth:\n", "auth:\n  api_key: { header: X-Key }\n"),
        "api-key-in-query",
    );
}

#[test]
fn request_size_limit_high() {
    let limits = |body: &str, headers: &str| {
        top(&format!(
            "limits:\n  max_request_body: {body}\n  max_header_bytes: {headers}\n"
        ))
    };
    let f = of(&limits("100MiB", "128KiB"), "request-size-limit-high");
    assert_eq!(f.len(), 2, "{f:#?}");
    assert_eq!(
        (f[0].severity, f[0].path.as_str()),
        (Severity::Medium, "limits.max_request_body")
    );
    assert_eq!(
        (f[1].severity, f[1].path.as_str()),
        (Severity::Low, "limits.max_header_bytes")
    );
    none(&limits("10MiB", "32KiB"), "request-size-limit-high");
}

#[test]
fn slow_client_timeouts() {
    let limits = |header: &str, body: &str| {
        top(&format!(
            "limits:\n  request_header_timeout: {header}\n  request_body_timeout: {body}\n"
        ))
    };
    assert_eq!(of(&limits("2m", "10m"), "slow-client-timeouts").len(), 2);
    none(&limits("30s", "2m"), "slow-client-timeouts");
}

#[test]
fn upstream_tls_no_hostname_check() {
    let tls = |extra: &str| {
        edit(
            "    targets: [\"10.0.0.5:9000\"]\n",
            &format!("    targets: [\"10.0.0.5:9000\"]\n    tls: {{ sni: app.internal{extra} }}\n"),
        )
    };
    let text = tls(", verify_hostname: false");
    let f = one(&text, "upstream-tls-no-hostname-check", Severity::High);
    assert_eq!(f.path, "upstreams.app.tls.verify_hostname");
    assert_eq!(f.owasp, owasp::UNSAFE_CONSUMPTION);
    assert_eq!(f.line, line_of(&text, "verify_hostname"));
    // An own CA narrows who can impersonate the upstream.
    let ca = cert_files().0.display().to_string();
    one(
        &tls(&format!(", verify_hostname: false, ca: \"{ca}\"")),
        "upstream-tls-no-hostname-check",
        Severity::Medium,
    );
    none(&tls(""), "upstream-tls-no-hostname-check");
}

#[test]
fn upstream_plain_http() {
    let targets = |t: &str| edit("[\"10.0.0.5:9000\"]", t);
    let f = one(
        &targets("[\"10.0.0.5:9000\", \"203.0.113.10:80\"]"),
        "upstream-plain-http",
        Severity::Medium,
    );
    assert!(f.title.contains("203.0.113.10:80") && !f.title.contains("10.0.0.5"));
    none(
        &targets("[\"10.0.0.5:9000\", \"192.168.1.2:80\", \"[fd00::1]:80\", \"100.64.0.1:80\", \"127.0.0.1:80\"]"),
        "upstream-plain-http",
    );
    // Public, but over TLS.
    none(
        &edit(
            "    targets: [\"10.0.0.5:9000\"]\n",
            "    targets: [\"203.0.113.10:443\"]\n    tls: { sni: app.example.test }\n",
        ),
        "upstream-plain-http",
    );
}

#[test]
fn siem_sinks_and_challenge_keys() {
    let sink = |url: &str| {
        top(&format!(
            "events:\n  elastic:\n    url: {url}\n    buffer: {{ dir: /tmp/es }}\n"
        ))
    };
    let f = one(
        &sink("http://es.example.test:9200"),
        "siem-sink-plain-http",
        Severity::High,
    );
    assert_eq!(f.path, "events.elastic.url");
    for fine in [
        "https://es.example.test:9200",
        "http://127.0.0.1:9200",
        "http://[::1]:9200",
        "http://localhost:9200",
    ] {
        none(&sink(fine), "siem-sink-plain-http");
    }
    let challenged = edit(
        "    upstream: app\n",
        "    upstream: app\n    challenge: true\n",
    );
    one(&challenged, "challenge-keys-per-process", Severity::Low);
    none(
        &format!("{challenged}bots:\n  challenge:\n    secrets: [\"0123456789abcdef0123456789abcdef-x\"]\n"),
        "challenge-keys-per-process",
    );
}

#[test]
fn trusted_proxies_any() {
    let proxies = |p: &str| top(&format!("server:\n  trusted_proxies: [\"{p}\"]\n"));
    let f = one(&proxies("0.0.0.0/0"), "trusted-proxies-any", Severity::High);
    assert_eq!(f.path, "server.trusted_proxies.0");
    one(&proxies("::/0"), "trusted-proxies-any", Severity::High);
    none(&proxies("10.0.0.0/8"), "trusted-proxies-any");
}

/// Everything wrong at once: every id fires, sorted most severe first.
pub(crate) const WORST: &str = r#"listeners:
  - name: https
    address: 0.0.0.0:8443
    tls:
      certificates:
        - cert: ${CERT}
          key: ${KEY}
  - name: https-short
    address: 0.0.0.0:9443
    tls:
      certificates:
        - cert: ${CERT}
          key: ${KEY}
    hsts: { max_age: 1h }
  - name: http
    address: 0.0.0.0:8080
admin:
  address: 0.0.0.0:9901
  tokens:
    - name: ops
      role: admin
      sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
server:
  trusted_proxies: ["0.0.0.0/0"]
limits:
  max_request_body: 1GiB
  request_header_timeout: 5m
upstreams:
  app:
    targets: ["203.0.113.10:80"]
  secure:
    targets: ["10.0.0.6:443"]
    tls: { sni: secure.internal, verify_hostname: false }
waf:
  mode: detect
  request_body_limit_action: process_partial
  custom_rules: |
    SecRule ARGS "@rx attack" "id:1,phase:2,deny"
auth:
  api_key: { query: api_key }
  jwt:
    - issuer: http://idp.example.test
      jwks_url: http://idp.example.test/jwks
      leeway: 1h
      algorithms: [HS256]
      keys:
        - secret: ${JWT_SECRET}
routes:
  - name: open
    paths: ["/open"]
    upstream: app
  - name: login
    paths: ["/login"]
    upstream: secure
    auth: { methods: [basic, jwt] }
    rate_limit: []
  - name: raw
    paths: ["/raw"]
    upstream: app
    auth: { methods: [api_key] }
    authorize: { groups: [staff] }
    rate_limit: [{ rate: 10/s }]
    waf: { enabled: false }
  - name: shop
    paths: ["/shop"]
    upstream: app
    challenge: true
events:
  splunk:
    url: http://splunk.example.test:8088/services/collector/event
    token: hec-token-in-the-file
    buffer: { dir: /var/lib/rampart/splunk }
"#;

#[test]
fn every_id_fires_on_the_worst_config_most_severe_first() {
    let f = findings_with_secret(WORST, "tiny");
    for id in FINDING_IDS {
        assert!(f.iter().any(|x| x.id == *id), "{id} missing from {f:#?}");
    }
    assert!(f.iter().all(|x| FINDING_IDS.contains(&x.id)));
    assert!(
        f.windows(2).all(|w| w[0].severity >= w[1].severity),
        "{f:#?}"
    );
    assert_eq!(f[0].id, "jwt-weak-secret");
    assert_eq!(exit_code(&f), 14);
    assert!(f.iter().all(|x| x.line > 0 && x.column > 0), "{f:#?}");
}

#[test]
fn paths_sort_numerically_within_a_severity() {
    let mut text = edit(TOP_LIMIT, "");
    for i in 0..11 {
        text.push_str(&format!(
            "  - name: open{i}\n    paths: [\"/open{i}\"]\n    upstream: app\n"
        ));
    }
    let paths: Vec<String> = of(&text, "route-without-auth")
        .into_iter()
        .map(|f| f.path)
        .collect();
    let expected: Vec<String> = (1..=11).map(|i| format!("routes.{i}.auth")).collect();
    assert_eq!(paths, expected);
}

#[test]
fn exit_codes_follow_the_highest_severity() {
    let at = |s: Severity| Finding {
        id: "hsts-off",
        severity: s,
        path: String::new(),
        line: 0,
        column: 0,
        owasp: owasp::MISCONFIGURATION,
        title: String::new(),
        fix: String::new(),
    };
    assert_eq!(exit_code(&[]), 0);
    assert_eq!(exit_code(&[at(Severity::Info)]), 0);
    assert_eq!(exit_code(&[at(Severity::Low), at(Severity::Info)]), 11);
    assert_eq!(exit_code(&[at(Severity::Low), at(Severity::Medium)]), 12);
    assert_eq!(exit_code(&[at(Severity::High)]), 13);
    assert_eq!(exit_code(&[at(Severity::Info), at(Severity::Critical)]), 14);
}

#[test]
fn text_report() {
    let f = findings(&edit("hsts: {}", "hsts: { max_age: 30d }"));
    assert_eq!(
        render_text(&f, "gw.yaml"),
        "gw.yaml:8:13: LOW hsts-short: TLS listener \"https\" sends HSTS with a max-age of 30 days only (API8:2023 Security Misconfiguration)\n    \
         fix: raise hsts.max_age to at least 180 days (one year, the default, is what the preload list asks)\n\
         gw.yaml: 1 finding (1 low)\n"
    );
    let f = findings(&edit("    redirect_https: true\n", "").replace("    hsts: {}\n", ""));
    let out = render_text(&f, "gw.yaml");
    assert!(
        out.ends_with("gw.yaml: 2 findings (1 medium, 1 low)\n"),
        "{out}"
    );
}

#[test]
fn json_report() {
    let f = findings(&route(BASE, OPEN));
    let v: serde_json::Value = serde_json::from_str(&render_json(&f, "gw.yaml")).unwrap();
    assert_eq!(v["file"], "gw.yaml");
    let first = &v["findings"][0];
    assert_eq!(first["id"], "route-without-auth");
    assert_eq!(first["severity"], "medium");
    assert_eq!(first["path"], "routes.1.auth");
    assert_eq!(first["owasp"], "API2:2023 Broken Authentication");
    assert!(first["line"].as_u64().unwrap() > 0);
    assert!(first["fix"].as_str().unwrap().contains("optional: true"));
    assert_eq!(v["summary"]["medium"], 1);
    assert_eq!(v["summary"]["total"], f.len());
    assert_eq!(v["summary"]["exit_code"], 12);
    let empty: serde_json::Value = serde_json::from_str(&render_json(&[], "gw.yaml")).unwrap();
    assert_eq!(empty["findings"], serde_json::json!([]));
    assert_eq!(empty["summary"]["exit_code"], 0);
}

#[test]
fn unparsable_text_leaves_locations_at_zero() {
    let mut f = findings(&edit("    hsts: {}\n", ""));
    locate(&mut f, "[unclosed");
    assert_eq!(f[0].line, 2);
    let mut f = audit(&load_with_secret(&edit("    hsts: {}\n", ""), STRONG));
    locate(&mut f, "[unclosed");
    assert_eq!((f[0].line, f[0].column), (0, 0));
}

#[test]
fn secret_weakness_rules() {
    use crate::secret::weakness;
    assert!(weakness(STRONG.as_bytes()).is_none());
    assert_eq!(weakness(b"abcdefgh").unwrap().0, Severity::Critical);
    assert_eq!(weakness(&[7u8; 64]).unwrap().0, Severity::Critical);
    let w = weakness(b"0123456789abcdef0123456789abcdef").unwrap();
    assert_eq!(
        w,
        (
            Severity::Critical,
            "is a 16-byte pattern repeated (32 bytes)".into()
        )
    );
    let w = weakness(b"Zx81mQ2vK9pL4tRw7nB3Yc5d").unwrap();
    assert_eq!(
        w,
        (Severity::High, "is 24 bytes long (fewer than 32)".into())
    );
}
