use super::*;

const GOOD: &str = r#"
listeners:
  - name: public
    address: 127.0.0.1:8080
admin:
  address: 127.0.0.1:9901
upstreams:
  items:
    targets: ["127.0.0.1:9001", "127.0.0.1:9002"]
    balance: round_robin
    health_check: { path: /healthz, interval: 2s, unhealthy_after: 3, healthy_after: 2 }
    timeouts: { connect: 2s, read: 30s }
routes:
  - name: items
    hosts: ["api.example.test", "*.example.test"]
    paths: ["/api/items"]
    methods: [GET, POST]
    upstream: items
    strip_prefix: false
limits:
  max_request_body: 1MiB
  max_header_bytes: 16KiB
  request_header_timeout: 10s
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn contract_example_loads() {
    let c = load_str_with_env(GOOD, "t.yaml", &no_env).unwrap();
    assert_eq!(c.routes[0].methods, vec!["GET", "POST"]);
    assert_eq!(c.limits.max_request_body.0, 1 << 20);
    let hc = c.upstreams["items"].health_check.as_ref().unwrap();
    assert_eq!(hc.interval.0, std::time::Duration::from_secs(2));
}

#[test]
fn every_error_is_reported_with_its_location() {
    let bad = GOOD
        .replace("    strip_prefix: false", "    strip_prefx: false")
        .replace("    upstream: items", "    upstream: itemz")
        .replace("interval: 2s", "interval: 2 parsecs");
    let errs = load_str_with_env(&bad, "t.yaml", &no_env).unwrap_err();
    let text = errs.to_string();
    // A type error stops serde, so keys after it and the semantic checks wait for the next pass.
    assert!(
        text.contains("t.yaml:11:37: upstreams.items.health_check.interval: invalid duration"),
        "{text}"
    );
    let fixed = bad.replace("2 parsecs", "2s");
    let text = load_str_with_env(&fixed, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("t.yaml:18:5: routes.0.upstream: unknown upstream \"itemz\""),
        "{text}"
    );
    assert!(
        text.contains("t.yaml:19:5: routes.0.strip_prefx: unknown key"),
        "{text}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = load_str_with_env("listeners: [\n  - a: b\n", "s.yaml", &no_env).unwrap_err();
    let e = &errs.0[0];
    assert_eq!(e.file, "s.yaml");
    assert!(e.line >= 2, "{e}");
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
}

#[test]
fn env_secrets_are_substituted_and_missing_ones_reported() {
    let text = GOOD.replace("127.0.0.1:9001", "${T1}");
    let env = |n: &str| (n == "T1").then(|| "127.0.0.1:9555".to_string());
    let c = load_str_with_env(&text, "t.yaml", &env).unwrap();
    assert_eq!(c.upstreams["items"].targets[0], "127.0.0.1:9555");
    let errs = load_str_with_env(&text, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("environment variable T1 is not set"),
        "{errs}"
    );
    assert!(errs.contains("upstreams.items.targets.0"), "{errs}");
}

#[test]
fn bad_values_are_explained() {
    let bad = GOOD
        .replace("127.0.0.1:8080", "localhost")
        .replace("methods: [GET, POST]", "methods: [get]")
        .replace("\"/api/items\"", "\"api/items\"")
        .replace("\"*.example.test\"", "\"a..b\"");
    let text = load_str_with_env(&bad, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    for needle in [
        "listeners.0.address",
        "routes.0.methods.0",
        "routes.0.paths.0",
        "routes.0.hosts.1",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn missing_required_key() {
    let text = "listeners:\n  - name: a\n";
    let errs = load_str_with_env(text, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(errs.contains("required key `address` is missing"), "{errs}");
}
