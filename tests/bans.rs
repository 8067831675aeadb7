//! Bans and automatic responses through real sockets and the machine's Redis: a playbook
//! on one node bans an attacking client address on every node within a second; bans
//! expire and escalate; never-banned networks stay served; the cap holds; with Redis
//! unreachable a node still bans on its own copy (and says so); `rampart bans` manages
//! the shared list. Clients connect from distinct loopback addresses (127.0.0.0/8).
mod common;
use common::*;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A loopback address no earlier run used (bans in Redis outlive a test run).
fn fresh_ip(tag: u8) -> String {
    let n = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("127.{tag}.{}.{}", (n >> 8) as u8, (n as u8).max(2))
}

async fn status_from(from: &str, port: u16, path: &str) -> u16 {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let mut s = sock
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    status_of(&String::from_utf8_lossy(&out))
}

fn config(events: &Path, bans: &str, playbook: &str, redis: &str, up: SocketAddr) -> String {
    format!(
        "redis: {redis}\nevents:\n  file: {}\nbans:\n{bans}responses:\n{playbook}waf:\n  custom_rules: \"SecRule ARGS:q \\\"@contains attack\\\" \\\"id:10,phase:1,deny,status:403\\\"\"\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        events.display(),
        upstream_yaml("u", &[up], "")
    )
}

fn playbook(name: &str, ban: &str, escalate: &str) -> String {
    format!("  - name: {name}\n    on: [waf_block]\n    count: 5\n    within: 1m\n    ban: {ban}\n    escalate: [{escalate}]\n")
}

fn unique(tag: &str) -> String {
    format!("{tag}{}", std::process::id() as u64 * 1000 + fastrand_ms())
}

fn fastrand_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
        % 1000
}

async fn wait_for(what: &str, mut ok: impl AsyncFnMut() -> bool, within: Duration) {
    let t = Instant::now();
    while !ok().await {
        assert!(t.elapsed() < within, "{what} not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The example: five SQL injections from one client on node A, and node B refuses
/// that client within a second, for the configured time, then longer on a repeat; an
/// address in `bans.never` doing the same is never banned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_on_one_node_bans_on_every_node() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("bans");
    let name = unique("sqli");
    let bans = "  backend: redis\n  never: [\"127.250.0.0/16\"]\n";
    let (ev_a, ev_b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let redis = "redis://127.0.0.1:6379";
    let a = Gateway::start(&config(
        &ev_a,
        bans,
        &playbook(&name, "2s", "30s"),
        redis,
        up.addr,
    ));
    let b = Gateway::start(&config(
        &ev_b,
        bans,
        &playbook(&name, "2s", "30s"),
        redis,
        up.addr,
    ));
    let attacker = fresh_ip(201);
    let bystander = fresh_ip(202);
    let safe = fresh_ip(250);

    for _ in 0..5 {
        assert_eq!(status_from(&attacker, a.port, "/?q=attack").await, 403);
    }
    // Banned on node B within a second, even for a clean request.
    wait_for(
        "the ban on node B",
        async || status_from(&attacker, b.port, "/clean").await == 403,
        Duration::from_secs(1),
    )
    .await;
    assert_eq!(status_from(&bystander, b.port, "/clean").await, 200);
    let events = std::fs::read_to_string(&ev_a).unwrap();
    let ban_event = events
        .lines()
        .find(|l| l.contains("\"stage\":\"response\"") && l.contains(&name))
        .unwrap_or_else(|| panic!("no response event:\n{events}"));
    assert!(ban_event.contains("\"action\":\"ban\""), "{ban_event}");
    assert!(
        ban_event.contains(&format!("banned ip:{attacker} for 2s (level 1)")),
        "{ban_event}"
    );
    let b_log = b.access_log();
    assert!(b_log.contains("\"refused_by\":\"bans\""), "{b_log}");

    // The ban expires; five more attacks ban again, now for the escalated 30 s.
    wait_for(
        "the ban's expiry",
        async || status_from(&attacker, b.port, "/clean").await == 200,
        Duration::from_secs(5),
    )
    .await;
    for _ in 0..5 {
        status_from(&attacker, a.port, "/?q=attack").await;
    }
    wait_for(
        "the second ban",
        async || status_from(&attacker, b.port, "/clean").await == 403,
        Duration::from_secs(1),
    )
    .await;
    let (code, out, err) = rampart(&["bans", "--config", a.config_path.to_str().unwrap(), "list"]);
    assert_eq!(code, 0, "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with(&format!("ip:{attacker}\tbanned\t")))
        .unwrap_or_else(|| panic!("{out}"));
    let left: u64 = line
        .split('\t')
        .nth(2)
        .unwrap()
        .trim_end_matches("s left")
        .parse()
        .unwrap();
    assert!(left > 20, "an escalated ban: {line}");

    // Never banned, however often.
    for _ in 0..6 {
        assert_eq!(status_from(&safe, a.port, "/?q=attack").await, 403);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status_from(&safe, b.port, "/clean").await, 200);
    let events = std::fs::read_to_string(&ev_a).unwrap();
    assert!(
        events.contains(&format!(
            "did not ban ip:{safe}: the address is in bans.never"
        )),
        "{events}"
    );
    rampart(&[
        "bans",
        "--config",
        a.config_path.to_str().unwrap(),
        "remove",
        &format!("ip:{attacker}"),
    ]);
}

/// `rampart bans add|remove` changes every node's list; a bad key is a clear error; a
/// local backend is refused with an explanation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_ban_and_lift_from_the_command_line() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("bans-cli");
    let name = unique("cli");
    let gw = Gateway::start(&config(
        &dir.join("e.jsonl"),
        "  backend: redis\n  never: [\"127.250.0.0/16\"]\n",
        &playbook(&name, "1m", "1h"),
        "redis://127.0.0.1:6379",
        up.addr,
    ));
    let cfg = gw.config_path.to_str().unwrap().to_string();
    let ip = fresh_ip(203);
    let net = format!("net:{}.0/24", ip.rsplit_once('.').unwrap().0);
    let (code, out, err) = rampart(&[
        "bans", "--config", &cfg, "add", &net, "--for", "1m", "--reason", "test",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains(&format!("banned {net} for 60s")), "{out}");
    wait_for(
        "the CLI ban",
        async || status_from(&ip, gw.port, "/").await == 403,
        Duration::from_secs(1),
    )
    .await;
    let (_, out, _) = rampart(&["bans", "--config", &cfg, "list"]);
    assert!(
        out.contains(&format!("{net}\t")) && out.contains("test"),
        "{out}"
    );
    let (code, _, err) = rampart(&["bans", "--config", &cfg, "remove", &net]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "the lift",
        async || status_from(&ip, gw.port, "/").await == 200,
        Duration::from_secs(1),
    )
    .await;
    let (code, _, err) = rampart(&["bans", "--config", &cfg, "add", "ip:127.250.1.1"]);
    assert_eq!(code, 1);
    assert!(err.contains("the address is in bans.never"), "{err}");
    let (code, _, err) = rampart(&["bans", "--config", &cfg, "add", "net:10.1.0.0/8"]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean 10.0.0.0/8"), "{err}");

    let local = dir.join("local.yaml");
    std::fs::write(
        &local,
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\n",
    )
    .unwrap();
    let (code, _, err) = rampart(&["bans", "--config", local.to_str().unwrap(), "list"]);
    assert_eq!(code, 1);
    assert!(err.contains("bans.backend is local"), "{err}");
}

/// Redis unreachable: the node counts and bans on its own copy, says so in the event, and
/// keeps serving everyone else. The cap on automatic bans holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_a_node_bans_alone_and_the_cap_holds() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("bans-down");
    let events = dir.join("e.jsonl");
    let gw = Gateway::start(&config(
        &events,
        "  backend: redis\n  max_automatic: 1\n",
        &playbook("down", "1m", "1h"),
        "redis://127.0.0.1:1",
        up.addr,
    ));
    let (first, second) = (fresh_ip(204), fresh_ip(205));
    for ip in [&first, &second] {
        for _ in 0..5 {
            assert_eq!(status_from(ip, gw.port, "/?q=attack").await, 403);
        }
    }
    wait_for(
        "the local ban",
        async || status_from(&first, gw.port, "/clean").await == 403,
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(
        status_from(&second, gw.port, "/clean").await,
        200,
        "the cap of one"
    );
    // Events are written off the request path: wait for both lines.
    let needles = [
        "on this node only (redis unavailable)",
        "the cap on automatic bans is reached",
    ];
    let deadline = Instant::now() + Duration::from_secs(3);
    let log = loop {
        let log = std::fs::read_to_string(&events).unwrap_or_default();
        if needles.iter().all(|n| log.contains(n)) || Instant::now() > deadline {
            break log;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    for n in needles {
        assert!(log.contains(n), "{n}: {log}");
    }
}

/// Bad ban and playbook settings are located config errors.
#[test]
fn ban_config_errors_are_located() {
    let dir = temp_dir("bans-cfg");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\nbans:\n  backend: redis\n  never: [\"10.0.0.0/33\"]\nresponses:\n  - name: x\n    on: [waf_block, sneezing]\n    count: 0\n    within: 1m\n    ban: 0s\n",
    )
    .unwrap();
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("sneezing"), "{err}");
    std::fs::write(
        &cfg,
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\nbans:\n  backend: redis\n  never: [\"10.0.0.0/33\"]\nresponses:\n  - name: x\n    on: [waf_block]\n    count: 0\n    within: 1m\n    ban: 0s\n",
    )
    .unwrap();
    validate_refuses(
        &cfg,
        &[
            "bans.backend: redis needs a top-level redis: URL",
            "bans.never.0: \"10.0.0.0/33\" has an invalid prefix length",
            "responses.0.count: must be at least 1",
            "responses.0.ban: must be longer than 0s",
        ],
    );
}

/// A playbook can tighten a rate limit instead of banning: after three attacks the client
/// is held to 2 requests a minute on every node (the count shared through Redis), is never
/// refused outright, and everyone else is unaffected. The throttle is listed and is an event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_playbook_can_throttle_instead_of_banning() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("bans-throttle");
    let name = unique("slow");
    let bans = "  backend: redis\n";
    let playbook = format!(
        "  - name: {name}\n    on: [waf_block]\n    count: 3\n    within: 1m\n    ban: 1m\n    throttle: 2/minute\n"
    );
    let (ev_a, ev_b) = (dir.join("a.jsonl"), dir.join("b.jsonl"));
    let redis = "redis://127.0.0.1:6379";
    let a = Gateway::start(&config(&ev_a, bans, &playbook, redis, up.addr));
    let b = Gateway::start(&config(&ev_b, bans, &playbook, redis, up.addr));
    let (attacker, bystander) = (fresh_ip(206), fresh_ip(207));
    for _ in 0..3 {
        assert_eq!(status_from(&attacker, a.port, "/?q=attack").await, 403);
    }
    // Held to the rate: at most two clean requests a minute, across both nodes.
    wait_for(
        "the throttle on node A",
        async || status_from(&attacker, a.port, "/clean").await == 429,
        Duration::from_secs(2),
    )
    .await;
    wait_for(
        "the throttle on node B",
        async || status_from(&attacker, b.port, "/clean").await == 429,
        Duration::from_secs(1),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(status_from(&bystander, b.port, "/clean").await, 200);
    }
    let events = std::fs::read_to_string(&ev_a).unwrap();
    let line = events
        .lines()
        .find(|l| l.contains("\"stage\":\"response\"") && l.contains(&name))
        .unwrap_or_else(|| panic!("no response event:\n{events}"));
    assert!(line.contains("\"action\":\"throttle\""), "{line}");
    assert!(
        line.contains(&format!("throttled ip:{attacker} to 2/minute for 60s")),
        "{line}"
    );
    let cfg = a.config_path.to_str().unwrap().to_string();
    let (code, out, err) = rampart(&["bans", "--config", &cfg, "list"]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.contains(&format!("ip:{attacker}\tthrottled to 2/minute\t")),
        "{out}"
    );
    let log = b.access_log_with(&["throttled by a response playbook"]);
    assert!(log.contains("throttled by a response playbook"), "{log}");
    rampart(&[
        "bans",
        "--config",
        &cfg,
        "remove",
        &format!("ip:{attacker}"),
    ]);

    // A rate the limiter cannot read is a located config error.
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\nresponses:\n  - name: x\n    on: [waf_block]\n    count: 1\n    within: 1m\n    ban: 1m\n    throttle: 2/fortnight\n",
    )
    .unwrap();
    validate_refuses(&bad, &["responses[0].throttle"]);
}

/// A private Redis that the test stops: the node says so (an event), keeps enforcing the
/// bans it holds, and says so again when Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_survive_redis_going_away_and_the_node_says_so() {
    /// Stopped when dropped, whatever the test's outcome.
    struct Redis(std::process::Child);
    impl Drop for Redis {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let port = free_port();
    let start_redis = || {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server (scripts/test installs it)");
        let t = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "redis-server did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Redis(child)
    };
    let redis = start_redis();
    let up = Upstream::start("u").await;
    let dir = temp_dir("bans-redis-down");
    let events = dir.join("e.jsonl");
    let url = format!("redis://127.0.0.1:{port}");
    let gw = Gateway::start(&config(
        &events,
        "  backend: redis\n",
        &playbook("gone", "1m", "1h"),
        &url,
        up.addr,
    ));
    let cfg = gw.config_path.to_str().unwrap().to_string();
    let (banned, other) = (fresh_ip(208), fresh_ip(209));
    let (code, _, err) = rampart(&[
        "bans",
        "--config",
        &cfg,
        "add",
        &format!("ip:{banned}"),
        "--for",
        "1m",
    ]);
    assert_eq!(code, 0, "{err}");
    wait_for(
        "the ban",
        async || status_from(&banned, gw.port, "/").await == 403,
        Duration::from_secs(1),
    )
    .await;

    drop(redis);
    let said = |needle: &str| {
        std::fs::read_to_string(&events)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("\"stage\":\"bans\"") && l.contains(needle))
    };
    wait_for(
        "the degraded event",
        async || said("\"action\":\"degraded\""),
        Duration::from_secs(8),
    )
    .await;
    // The copy this node holds still applies; everyone else is served.
    assert_eq!(status_from(&banned, gw.port, "/").await, 403);
    assert_eq!(status_from(&other, gw.port, "/").await, 200);
    // A playbook ban while Redis is down is this node's alone, and says so.
    for _ in 0..5 {
        assert_eq!(status_from(&other, gw.port, "/?q=attack").await, 403);
    }
    wait_for(
        "the local ban",
        async || status_from(&other, gw.port, "/").await == 403,
        Duration::from_secs(2),
    )
    .await;

    // A Redis that lost everything: the node writes back what it holds, so neither the
    // operator's ban nor the one set during the outage is lost.
    let _redis = start_redis();
    wait_for(
        "the restored event",
        async || said("\"action\":\"restored\""),
        Duration::from_secs(10),
    )
    .await;
    let (code, out, err) = rampart(&["bans", "--config", &cfg, "list"]);
    assert_eq!(code, 0, "{err}");
    for ip in [&banned, &other] {
        assert!(out.contains(&format!("ip:{ip}\t")), "{ip} lost: {out}");
    }
}
