//! `rampart crs install|list` against a release mirror served on loopback (an archive built
//! from ../shared/crs), and `waf.crs` loading what it installed: checksums, hostile and
//! broken archives, nothing half-installed, and CRS blocking through the gateway.
mod common;
use common::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A release mirror on loopback: `path → body`; anything else is a 404. Counts requests.
struct Mirror {
    base: String,
    hits: Arc<AtomicUsize>,
}

fn mirror(files: Vec<(String, Vec<u8>)>) -> Mirror {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            h.fetch_add(1, Ordering::SeqCst);
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let line = String::from_utf8_lossy(&req)
                .lines()
                .next()
                .unwrap_or("")
                .to_string();
            let path = line.split(' ').nth(1).unwrap_or("");
            let resp = match files.iter().find(|(p, _)| p == path) {
                Some((_, body)) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = s.write_all(&resp);
        }
    });
    Mirror { base, hits }
}

fn run(args: &[&str], data: &Path) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .env("RAMPART_DATA_DIR", data)
        .env_remove("RAMPART_CRS_MIRROR")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `rampart crs install ARGS…` with `data` as the data directory.
fn install(args: &[&str], data: &Path) -> (i32, String, String) {
    run(&[&["crs", "install"], args].concat(), data)
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(d) => d
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn install_checks_what_it_downloads_and_leaves_nothing_on_failure() {
    let archive = crs_archive("4.28.0");
    let sum = sha256_hex(&archive);
    let cut = archive[..archive.len() / 2].to_vec();
    let cut_sum = sha256_hex(&cut);
    let m = mirror(vec![
        (
            "/v4.28.0/coreruleset-4.28.0-minimal.tar.gz".into(),
            archive.clone(),
        ),
        // Not the real 4.29.0: its checksum is not the one Rampart knows.
        (
            "/v4.29.0/coreruleset-4.29.0-minimal.tar.gz".into(),
            archive.clone(),
        ),
        ("/cut.tar.gz".into(), cut),
    ]);
    let data = temp_dir("crs-data");
    let versions = data.join("crs");

    // A version with no known checksum: refused before anything is fetched.
    let (code, _, err) = install(&["--version", "4.28.0", "--mirror", &m.base], &data);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("knows no SHA-256 for CRS 4.28.0") && err.contains("--sha256"),
        "{err}"
    );
    assert_eq!(m.hits.load(Ordering::SeqCst), 0, "nothing fetched");

    // The default version, from a mirror serving other bytes: the known checksum refuses it.
    let (code, _, err) = run(&["crs", "install", "--mirror", &m.base], &data);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("checksum mismatch") && err.contains("nothing was installed"),
        "{err}"
    );
    assert!(entries(&versions).is_empty(), "{:?}", entries(&versions));

    // A checksum given by hand that the bytes do not have.
    let wrong = "0".repeat(64);
    let (code, _, err) = install(
        &[
            "--version",
            "4.28.0",
            "--mirror",
            &m.base,
            "--sha256",
            &wrong,
        ],
        &data,
    );
    assert_eq!(code, 1);
    assert!(err.contains("checksum mismatch"), "{err}");

    // A truncated archive whose checksum is right: refused as an archive, nothing left.
    let url = format!("{}/cut.tar.gz", m.base);
    let (code, _, err) = install(
        &["--version", "4.28.0", "--url", &url, "--sha256", &cut_sum],
        &data,
    );
    assert_eq!(code, 1);
    assert!(err.contains("is not a usable CRS archive"), "{err}");
    assert!(entries(&versions).is_empty(), "{:?}", entries(&versions));

    // Missing on the mirror; a data directory that cannot be made; a version that is a path.
    let (code, _, err) = install(
        &["--version", "4.27.0", "--mirror", &m.base, "--sha256", &sum],
        &data,
    );
    assert_eq!(code, 1);
    assert!(err.contains("HTTP 404"), "{err}");
    let file = data.join("a-file");
    std::fs::write(&file, "x").unwrap();
    let under_file = file.join("crs");
    let (code, _, err) = install(
        &[
            "--version",
            "4.28.0",
            "--mirror",
            &m.base,
            "--sha256",
            &sum,
            "--dir",
            under_file.to_str().unwrap(),
        ],
        &data,
    );
    assert_eq!(code, 1);
    assert!(
        err.contains("a-file/crs") && err.contains("ot a directory"),
        "{err}"
    );
    let (code, _, err) = install(&["--version", "../../etc", "--sha256", &sum], &data);
    assert_eq!(code, 1);
    assert!(err.contains("is not a CRS version"), "{err}");

    // Nothing yet.
    let (code, out, _) = run(&["crs", "list"], &data);
    assert_eq!(code, 0);
    assert!(out.contains("no CRS installed"), "{out}");

    // The right checksum: installed, listed, and installing again replaces it whole.
    for again in [false, true] {
        let (code, out, err) = install(
            &["--version", "4.28.0", "--mirror", &m.base, "--sha256", &sum],
            &data,
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!(
                "CRS 4.28.0 installed in {}",
                versions.join("4.28.0").display()
            )),
            "{out}"
        );
        assert_eq!(out.contains("replacing"), again, "{out}");
        assert_eq!(entries(&versions), vec!["4.28.0".to_string()]);
    }
    assert!(versions.join("4.28.0/crs-setup.conf.example").is_file());
    assert!(versions
        .join("4.28.0/rules/REQUEST-942-APPLICATION-ATTACK-SQLI.conf")
        .is_file());
    let (code, out, _) = run(&["crs", "list"], &data);
    assert_eq!(code, 0);
    assert!(out.starts_with("4.28.0\t") && out.contains(&sum), "{out}");
}

#[test]
fn a_config_loads_the_installed_crs_and_says_how_to_get_it_when_missing() {
    let data = temp_dir("crs-cfg");
    let dir = temp_dir("crs-cfg-file");
    let cfg = dir.join("rampart.yaml");
    let body = |upstream: &str| {
        format!(
            "upstreams:\n  app:\n    targets: [\"{upstream}\"]\nroutes:\n  - name: app\n    paths: [\"/\"]\n    upstream: app\nwaf:\n  crs: {{ version: \"4.28.0\" }}\n  paranoia: 1\n"
        )
    };
    std::fs::write(
        &cfg,
        format!(
            "listeners:\n  - name: plain\n    address: \"127.0.0.1:1\"\n{}",
            body("127.0.0.1:9")
        ),
    )
    .unwrap();
    let validate = |data: &Path| {
        let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
            .args(["validate", "--config"])
            .arg(&cfg)
            .env("RAMPART_DATA_DIR", data)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, err) = validate(&data);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("waf.crs") && err.contains("rampart crs install --version 4.28.0"),
        "{err}"
    );

    // Installed from a file (no mirror at all): then the same config is valid.
    let archive = dir.join("crs.tar.gz");
    std::fs::write(&archive, crs_archive("4.28.0")).unwrap();
    let sum = sha256_hex(&std::fs::read(&archive).unwrap());
    let (code, _, err) = install(
        &[
            "--version",
            "4.28.0",
            "--url",
            archive.to_str().unwrap(),
            "--sha256",
            &sum,
        ],
        &data,
    );
    assert_eq!(code, 0, "{err}");
    let (code, err) = validate(&data);
    assert_eq!(code, Some(0), "{err}");

    // Both forms at once, or neither, are refused with the pointer.
    std::fs::write(
        &cfg,
        "listeners:\n  - name: plain\n    address: \"127.0.0.1:1\"\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: app\n    paths: [\"/\"]\n    upstream: app\nwaf:\n  crs: { version: \"4.28.0\", dir: /tmp }\n",
    )
    .unwrap();
    let (code, err) = validate(&data);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("waf.crs") && err.contains("either version"),
        "{err}"
    );

    // Through the gateway: CRS's SQL injection rules block, a clean request goes on.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let up = Upstream::start("app").await;
        let gw = Gateway::start_env(
            &body(&up.addr.to_string()),
            "",
            "",
            &[("RAMPART_DATA_DIR", data.as_os_str())],
        );
        let (s, _) = raw_get(gw.port, "/search?q=rampart%20docs").unwrap();
        assert_eq!(s, 200);
        let (s, _) = raw_get(gw.port, "/search?id=1%27%20OR%20%271%27%3D%271").unwrap();
        assert_eq!(s, 403);
        assert_eq!(
            up.hits.load(Ordering::SeqCst),
            1,
            "the attack never reached the app"
        );
        // The block names CRS rules (942100 libinjection, 949110 the blocking evaluation),
        // not inline ones. Lines are written after the response: wait for them.
        let log = gw.access_log_with(&["\"waf_rules\":["]);
        let line = log
            .lines()
            .find(|l| l.contains("\"waf_rules\":["))
            .unwrap_or_else(|| panic!("no WAF line in {log}"));
        assert!(line.contains("942100") && line.contains("949110"), "{line}");
    });
}
