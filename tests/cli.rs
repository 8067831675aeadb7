//! `rampart validate` and `rampart serve` refusing bad configs.
mod common;
use std::process::Command;

fn rampart(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_a_good_config_and_the_demo() {
    let dir = common::temp_dir("cli");
    let p = dir.join("ok.yaml");
    std::fs::write(
        &p,
        "listeners:\n  - name: p\n    address: 127.0.0.1:8080\nupstreams:\n  u:\n    targets: [\"127.0.0.1:9000\"]\nroutes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
    )
    .unwrap();
    let (code, out, err) = rampart(&["validate", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(": ok"));
    // The embedded demo config, with the certificate `serve` would generate.
    let demo = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/crates/rampart-gateway/src/demo.yaml"
    );
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.join("c.pem"), ck.cert.pem()).unwrap();
    std::fs::write(dir.join("k.pem"), ck.signing_key.serialize_pem()).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["validate", "--config", demo])
        .env("RAMPART_DEMO_CERT", dir.join("c.pem"))
        .env("RAMPART_DEMO_KEY", dir.join("k.pem"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn validate_prints_every_error_with_location() {
    let dir = common::temp_dir("cli");
    let p = dir.join("bad.yaml");
    std::fs::write(
        &p,
        "listeners:\n  - name: p\n    address: nowhere\nupstreams:\n  u:\n    targets: [\"127.0.0.1:9000\"]\n    helth_check: {}\nroutes:\n  - name: r\n    paths: [\"api\"]\n    upstream: v\n",
    )
    .unwrap();
    let (code, _, err) = rampart(&["validate", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    let f = p.display().to_string();
    for expected in [
        format!("{f}:3:5: listeners.0.address: \"nowhere\" is not an IP:port address"),
        format!("{f}:7:5: upstreams.u.helth_check: unknown key"),
        format!("{f}:10:13: routes.0.paths.0: path \"api\" must start with /"),
        format!("{f}:11:5: routes.0.upstream: unknown upstream \"v\" (defined: u)"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    assert!(err.contains("4 error(s)"), "{err}");
}

#[test]
fn serve_refuses_an_invalid_config() {
    let dir = common::temp_dir("cli");
    let p = dir.join("bad.yaml");
    std::fs::write(&p, "listeners: []\n").unwrap();
    let (code, _, err) = rampart(&["serve", "--config", p.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(err.contains("at least one listener is required"), "{err}");
}
