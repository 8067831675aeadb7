//! `rampart validate` and `rampart serve` refusing bad configs.
mod common;
use std::process::Command;

use common::rampart;

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
        .env("RAMPART_DEMO_HTTPS_ADDR", "127.0.0.1:8443")
        .env("RAMPART_DEMO_HTTP_ADDR", "127.0.0.1:8080")
        .env("RAMPART_DEMO_ADMIN_ADDR", "127.0.0.1:9901")
        .env("RAMPART_DEMO_BACKEND_ADDR", "127.0.0.1:18081")
        .env("RAMPART_DEMO_API_KEY_SHA256", common::sha256_hex(b"demo"))
        .env("RAMPART_DEMO_VIEWER_SHA256", common::sha256_hex(b"viewer"))
        .env(
            "RAMPART_DEMO_JWT_SECRET",
            "a-demo-secret-of-more-than-32-bytes-0123",
        )
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

#[test]
fn serve_refuses_a_port_another_process_holds() {
    // Held with SO_REUSEPORT too, as some servers do: Pingora alone would share the port.
    let socket = socket2_like_listener();
    let port = socket.local_addr().unwrap().port();
    let dir = common::temp_dir("cli-port");
    let p = dir.join("c.yaml");
    std::fs::write(
        &p,
        format!(
            "listeners:\n  - name: public\n    address: 127.0.0.1:{port}\nadmin:\n  address: 127.0.0.1:{}\nupstreams:\n  u:\n    targets: [\"127.0.0.1:1\"]\nroutes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
            common::free_port()
        ),
    )
    .unwrap();
    // Without the check the gateway would start and serve: give it 5 s, then fail.
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--config", p.to_str().unwrap()])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("rampart started on a port another process holds");
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "listener public: cannot listen on 127.0.0.1:{port}"
        )),
        "{err}"
    );
    drop(socket);
}

/// A listening socket with SO_REUSEADDR and SO_REUSEPORT, as some servers open theirs.
fn socket2_like_listener() -> std::net::TcpListener {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.set_reuseaddr(true).unwrap();
        s.set_reuseport(true).unwrap();
        s.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        s.listen(16).unwrap().into_std().unwrap()
    })
}

/// Shell completions and the manual page come from the same command definitions: every
/// subcommand is in them; bash accepts the script; `man` renders the page.
#[test]
fn completions_and_man_page_cover_every_command() {
    let (code, bash, err) = rampart(&["completions", "bash"]);
    assert_eq!(code, 0, "{err}");
    let (code, page, err) = rampart(&["man"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        page.starts_with(".ie") || page.contains(".TH rampart 1"),
        "{page}"
    );
    for sub in [
        "serve", "validate", "audit", "bans", "export", "diff", "apply", "keygen",
    ] {
        assert!(bash.contains(sub), "bash completion lacks {sub}");
        assert!(page.contains(sub), "man page lacks {sub}");
    }
    for shell in ["zsh", "fish"] {
        let (code, out, err) = rampart(&["completions", shell]);
        assert_eq!(code, 0, "{err}");
        assert!(out.contains("rampart"));
    }
    let (code, _, _) = rampart(&["completions", "tcsh"]);
    assert_eq!(code, 2, "an unknown shell is a usage error");
    // bash itself parses the script.
    let dir = common::temp_dir("completions");
    let script = dir.join("rampart.bash");
    std::fs::write(&script, &bash).unwrap();
    let ok = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap()
        .success();
    assert!(ok, "bash -n refused the completion script");
}
