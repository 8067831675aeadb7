//! The deployment files: the systemd unit passes `systemd-analyze verify` and its offline
//! security review stays in the "OK" band (exposure at most 2.5 of 10; systemd takes the
//! threshold in tenths).
mod common;
use std::process::Command;

#[test]
fn the_systemd_unit_verifies_and_is_hardened() {
    let Ok(probe) = Command::new("systemd-analyze").arg("--version").output() else {
        panic!("systemd-analyze is missing (Debian's systemd package)");
    };
    assert!(probe.status.success());
    let dir = common::temp_dir("unit");
    // The unit names /usr/local/bin/rampart; verify it against the binary under test.
    let unit = std::fs::read_to_string("deploy/rampart.service")
        .unwrap()
        .replace("/usr/local/bin/rampart", env!("CARGO_BIN_EXE_rampart"));
    let path = dir.join("rampart.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && text.trim().is_empty(), "{text}");
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--threshold=25"])
        .arg(&path)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exposure above 2.5:\n{report}");
    assert!(report.contains("Overall exposure level"), "{report}");
}

/// The Grafana dashboard (`deploy/grafana/rampart-dashboard.json`) parses, each panel has
/// a place and queries, and every metric its queries read is one a running gateway exports:
/// traffic that passes, is blocked by the WAF, rate limited, sent nowhere, sent to a dead
/// upstream and through a shared limiter whose Redis is down makes every series appear.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_reads_only_metrics_rampart_exports() {
    let text = std::fs::read_to_string("deploy/grafana/rampart-dashboard.json").unwrap();
    let dash: serde_json::Value = serde_json::from_str(&text).expect("the dashboard is JSON");
    let panels = dash["panels"].as_array().expect("panels");
    assert!(panels.len() >= 10);
    let mut exprs: Vec<String> = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("");
        assert!(!title.is_empty(), "a panel without a title: {p}");
        assert!(p["gridPos"]["w"].as_u64().is_some(), "{title}: no gridPos");
        assert_eq!(p["datasource"]["uid"], "${DS_PROMETHEUS}", "{title}");
        let targets = p["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{title}: no query");
        exprs.extend(
            targets
                .iter()
                .map(|t| t["expr"].as_str().unwrap().to_string()),
        );
    }
    for v in dash["templating"]["list"].as_array().unwrap() {
        exprs.push(v["query"]["query"].as_str().unwrap().to_string());
    }
    // The metric names, a histogram's series read by its family's name.
    let mut names = std::collections::BTreeSet::new();
    for e in &exprs {
        let mut rest = e.as_str();
        while let Some(i) = rest.find("rampart_") {
            let tail = &rest[i..];
            let end = tail
                .find(|c: char| !(c.is_ascii_lowercase() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .unwrap_or(name);
            names.insert(family.to_string());
            rest = &tail[end..];
        }
    }
    assert!(names.len() >= 12, "{names:?}");

    let up = common::Upstream::start("a").await;
    let gw = common::Gateway::start(&format!(
        r#"waf:
  custom_rules: |
    SecRule ARGS "@contains evil" "id:1001,phase:1,deny,log,msg:'evil'"
upstreams:
{live}  dead:
    targets: ["127.0.0.1:1"]
routes:
  - name: api
    paths: ["/api"]
    upstream: u
    rate_limit:
      - {{ key: client_ip, rate: 3/min, burst: 3 }}
  - name: down
    paths: ["/down"]
    upstream: dead
  - name: shared
    paths: ["/shared"]
    upstream: u
    rate_limit:
      - {{ key: client_ip, rate: 100/s, backend: redis, on_backend_error: allow }}
redis: redis://127.0.0.1:1
"#,
        live = common::upstream_yaml("u", &[up.addr], "")
    ));
    let c = common::client();
    for path in [
        "/api/x",
        "/api/x?q=evil",
        "/api/x",
        "/api/x",
        "/api/x",
        "/nowhere",
        "/down",
        "/shared",
    ] {
        c.get(gw.url(path)).send().await.unwrap();
    }
    // Counted in the logging phase, after the response: wait for the last ones.
    let mut scrape = gw.metrics();
    for _ in 0..100 {
        if names
            .iter()
            .all(|n| scrape.contains(&format!("# TYPE {n} ")))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        scrape = gw.metrics();
    }
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !scrape.contains(&format!("# TYPE {n} ")))
        .collect();
    assert!(missing.is_empty(), "not exported: {missing:?}\n{scrape}");
}
