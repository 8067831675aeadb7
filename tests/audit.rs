//! `rampart audit`: findings with file:line, text and JSON, exit codes by severity.
mod common;
use std::process::Command;

use common::rampart;

/// Loopback only, authenticated, authorized, rate-limited, behind the WAF: nothing to report.
const CLEAN: &str = r#"listeners:
  - name: local
    address: 127.0.0.1:8080
upstreams:
  app:
    targets: ["127.0.0.1:9000"]
rate_limit:
  - rate: 100/s
waf:
  custom_rules: |
    SecRule ARGS "@rx attack" "id:1,phase:2,deny"
routes:
  - name: api
    paths: ["/api"]
    upstream: app
    auth: { methods: [api_key] }
    authorize: { groups: [staff] }
"#;

/// A plain listener facing the network, an open route, and a short HMAC secret.
const BAD: &str = r#"listeners:
  - name: public
    address: 0.0.0.0:8080
upstreams:
  app:
    targets: ["127.0.0.1:9000"]
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
        - secret: ${AUDIT_TEST_SECRET}
routes:
  - name: open
    paths: ["/open"]
    upstream: app
"#;

const SECRET: &str = "tiny-secret";

/// The 1-based line of `BAD` containing `needle`.
fn line_of(needle: &str) -> usize {
    BAD.lines().position(|l| l.contains(needle)).unwrap() + 1
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("AUDIT_TEST_SECRET", SECRET)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn audit_reports_findings_with_locations_and_exits_by_severity() {
    let dir = common::temp_dir("audit");
    let clean = dir.join("clean.yaml");
    std::fs::write(&clean, CLEAN).unwrap();
    let (code, out, err) = rampart(&["audit", "--config", clean.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out, format!("{}: no findings\n", clean.display()));

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, BAD).unwrap();
    let f = bad.display().to_string();
    let (code, out, err) = run(&["audit", "--config", &f]);
    // The short secret is critical: 10 + 4.
    assert_eq!(code, 14, "{out}{err}");
    let (secret_line, route_line) = (line_of("- secret:"), line_of("- name: open"));
    for expected in [
        format!(
            "{f}:{secret_line}:11: CRITICAL jwt-weak-secret: the HMAC secret of key 0 of issuer \"https://idp.example.test\" is 11 bytes long"
        ),
        format!("{f}:{}:", line_of("- name: public")),
        "MEDIUM plain-http-no-redirect: listener \"public\" serves plain HTTP on 0.0.0.0:8080".to_string(),
        format!("{f}:{route_line}:"),
        "MEDIUM route-without-auth: route \"open\"".to_string(),
        "(API2:2023 Broken Authentication)".to_string(),
        "    fix: ".to_string(),
        format!("{f}: 3 findings (1 critical, 2 medium)"),
    ] {
        assert!(out.contains(&expected), "missing {expected:?} in:\n{out}");
    }
    assert!(!out.contains(SECRET), "the secret is shown:\n{out}");
    // Most severe first.
    assert!(out.starts_with(&format!("{f}:{secret_line}:")), "{out}");

    let (code, out, err) = run(&["audit", "--config", &f, "--format", "json"]);
    assert_eq!(code, 14, "{err}");
    assert!(!out.contains(SECRET), "the secret is shown:\n{out}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["file"], f.as_str());
    let findings = v["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 3, "{out}");
    assert_eq!(findings[0]["id"], "jwt-weak-secret");
    assert_eq!(findings[0]["severity"], "critical");
    assert_eq!(findings[0]["path"], "auth.jwt.0.keys.0.secret");
    assert_eq!(findings[0]["line"], secret_line);
    assert_eq!(findings[0]["owasp"], "API2:2023 Broken Authentication");
    assert!(findings.iter().any(|x| x["id"] == "route-without-auth"));
    assert_eq!(v["summary"]["critical"], 1);
    assert_eq!(v["summary"]["medium"], 2);
    assert_eq!(v["summary"]["exit_code"], 14);

    // Without the secret the config does not load: exit 1, like `validate`.
    let (code, _, err) = rampart(&["audit", "--config", &f]);
    assert_eq!(code, 1);
    assert!(
        err.contains("environment variable AUDIT_TEST_SECRET is not set"),
        "{err}"
    );
    // A format clap does not know is a usage error.
    let (code, _, _) = run(&["audit", "--config", &f, "--format", "xml"]);
    assert_eq!(code, 2);
}
