//! The embedded demo, started as the README says (`rampart serve`, ports moved by the
//! environment), and every command it prints run as printed, each answering the status
//! the line announces: public, redirect, WAF, API key, JWT, rate limit, size limit.
mod common;
use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_demo_does_what_it_prints() {
    // No CRS installed: the inline rules, and the command that installs the CRS.
    let data = temp_dir("demo-data");
    run_demo(&data, "rampart: WAF: three inline rules");
}

#[test]
fn the_demo_runs_the_crs_once_installed() {
    let data = temp_dir("demo-crs");
    let archive = data.join("crs.tar.gz");
    std::fs::write(&archive, crs_archive("4.28.0")).unwrap();
    let sum = sha256_hex(&std::fs::read(&archive).unwrap());
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args([
            "crs",
            "install",
            "--version",
            "4.28.0",
            "--sha256",
            &sum,
            "--url",
        ])
        .arg(&archive)
        .env("RAMPART_DATA_DIR", &data)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_demo(&data, "rampart: WAF: OWASP CRS 4.28.0 from ");
}

/// Starts the demo with `data` as Rampart's data directory; it must say `waf` at start,
/// then every command it prints must answer as announced.
fn run_demo(data: &std::path::Path, waf: &str) {
    let ports: Vec<u16> = (0..4).map(|_| free_port()).collect();
    let mut child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("serve")
        .env("RAMPART_DATA_DIR", data)
        .env("RAMPART_DEMO_HTTPS_ADDR", format!("127.0.0.1:{}", ports[0]))
        .env("RAMPART_DEMO_HTTP_ADDR", format!("127.0.0.1:{}", ports[1]))
        .env("RAMPART_DEMO_ADMIN_ADDR", format!("127.0.0.1:{}", ports[2]))
        .env(
            "RAMPART_DEMO_BACKEND_ADDR",
            format!("127.0.0.1:{}", ports[3]),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let _demo = Demo(child);
    // The commands are the printed lines that announce a status.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut commands = Vec::new();
    let mut said_waf = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while commands.len() < 10 {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the demo printed its commands");
        said_waf |= line.starts_with(waf);
        if let Some((cmd, note)) = line.split_once("# → ") {
            let status: u16 = note[..3].parse().unwrap();
            commands.push((cmd.trim().to_string(), status));
        }
    }
    assert!(said_waf, "the demo did not say {waf:?}");
    // The backend behind the demo answers once its health check passed.
    let deadline = Instant::now() + Duration::from_secs(20);
    while raw_get(ports[2], "/readyz")
        .map(|(s, _)| s != 200)
        .unwrap_or(true)
    {
        assert!(Instant::now() < deadline, "demo not ready");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut seen = Vec::new();
    for (cmd, expected) in &commands {
        // Each curl prints its status last; a loop prints one per request.
        let run = if cmd.starts_with("for ") {
            cmd.clone()
        } else {
            format!("{cmd} -sS -o /dev/null -w '%{{http_code}}'")
        };
        let out = Command::new("sh").arg("-c").arg(&run).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let last: u16 = text
            .split_whitespace()
            .last()
            .and_then(|c| c.parse().ok())
            .unwrap_or(0);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert_eq!(last, *expected, "{run}\n→ {text} {err}");
        seen.push(last);
    }
    seen.sort_unstable();
    seen.dedup();
    assert_eq!(
        seen,
        [200, 308, 401, 403, 413, 429],
        "every kind of answer is shown"
    );
}
