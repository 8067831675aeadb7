//! Bot verdicts and per-route policies through real sockets: signatures (shipped and from a
//! file), a browser's name against a browser's headers, crawlers verified by a real DNS
//! server on loopback (dnsmasq) or by their networks, DNS failures falling back to
//! `unknown` (never to a pass), TLS fingerprints (JA4) read from the real ClientHello.

mod common;

use common::dns::Dnsmasq;
use common::*;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

/// The access log line of the request with this path.
fn line_for(gw: &Gateway, path: &str) -> serde_json::Value {
    let needle = format!("\"path\":\"{path}\"");
    let log = gw.access_log_with(&[&needle]);
    log.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["path"] == path)
        .unwrap_or_else(|| panic!("no line for {path}:\n{log}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_decide_per_route_and_dns_failures_never_let_claims_through() {
    let up = Upstream::start("app").await;
    let dns = Dnsmasq::start(
        &["googlebot.com", "example"],
        &[
            "--host-record=crawl-66-249-66-1.googlebot.com,66.249.66.1",
            "--ptr-record=3.66.249.66.in-addr.arpa,crawler.evil.example",
        ],
    );
    let dir = temp_dir("bots");
    let sigs = dir.join("signatures.txt");
    std::fs::write(&sigs, "# ours\nbad_bot EvilScraper\n").unwrap();
    let config = format!(
        r#"server:
  trusted_proxies: ["127.0.0.1"]
events:
  file: {events}
bots:
  signatures: {sigs}
  dns: {{ servers: ["{dns}"], timeout: 1s }}
  verify:
    - {{ name: googlebot, user_agent: Googlebot, domains: [googlebot.com] }}
    - {{ name: partner, user_agent: PartnerCrawler, networks: [203.0.113.0/24] }}
  challenge:
    secrets: ["challenge-key-0123456789abcdef-0123456789"]
  policy:
    unknown: challenge
upstreams:
{up}routes:
  - name: api
    paths: ["/api"]
    upstream: u
    bots:
      automated: {{ rate_limit: {{ rate: 2/min }} }}
  - name: site
    paths: ["/"]
    upstream: u
    bots: {{ automated: deny }}
"#,
        sigs = sigs.display(),
        events = dir.join("events.jsonl").display(),
        dns = dns.addr,
        up = upstream_yaml("u", &[up.addr], ""),
    );
    let gw = Gateway::start(&config);
    let c = client();
    let hits = || up.hits.load(SeqCst);
    let send = |path: &str, ip: &str, ua: &str, browser_headers: bool| {
        let mut r = c
            .get(gw.url(path))
            .header("x-forwarded-for", ip)
            .header("user-agent", ua);
        if browser_headers {
            r = r
                .header("accept", "application/json")
                .header("accept-language", "en")
                .header("accept-encoding", "gzip");
        }
        async move { r.send().await.unwrap() }
    };

    // Known bad signatures, shipped and from the file: 403 before the backend.
    let r = send(
        "/s1",
        "192.0.2.1",
        "sqlmap/1.8#stable (https://sqlmap.org)",
        false,
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = send("/s2", "192.0.2.1", "Mozilla/5.0 EvilScraper/2", true).await;
    assert_eq!(r.status(), 403);
    assert_eq!(hits(), 0);
    let l = line_for(&gw, "/s1");
    assert_eq!(l["bot"], "bad_bot", "{l}");
    assert_eq!(l["bot_reason"], "bad bot signature");
    assert_eq!(l["refused_by"], "bot_policy");
    assert_eq!(l["reason"], "bot policy denies bad_bot");
    assert_eq!(line_for(&gw, "/s2")["bot"], "bad_bot");
    // Each refusal is a security event that says what the client was taken for.
    let e = event_where(&dir.join("events.jsonl"), Duration::from_secs(5), |e| {
        e["uri"] == "/s1"
    });
    assert_eq!(e["stage"], "bot_policy", "{e}");
    assert_eq!(e["bot"], "bad_bot");
    assert_eq!(e["status"], 403);

    // A browser with a browser's headers is human; the same name without them is not.
    assert_eq!(send("/h1", "192.0.2.2", FIREFOX, true).await.status(), 200);
    assert_eq!(line_for(&gw, "/h1")["bot"], "human");
    let r = c
        .get(gw.url("/h2"))
        .header("x-forwarded-for", "192.0.2.2")
        .header("user-agent", FIREFOX)
        .header("accept", "text/html")
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "automated is denied on /");
    let l = line_for(&gw, "/h2");
    assert_eq!(l["bot"], "automated");
    assert_eq!(l["bot_reason"], "browser name without Accept-Language");

    // Tools on /api: their own budget of 2 a minute, then 429.
    let before = hits();
    for i in 0..2 {
        let r = send(&format!("/api/t{i}"), "192.0.2.3", "curl/8.5.0", false).await;
        assert_eq!(r.status(), 200);
    }
    let r = send("/api/t2", "192.0.2.3", "curl/8.5.0", false).await;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(hits(), before + 2);
    assert_eq!(line_for(&gw, "/api/t2")["refused_by"], "bot_policy");
    // Humans on /api are not counted against the tools' budget.
    assert_eq!(
        send("/api/h", "192.0.2.3", FIREFOX, true).await.status(),
        200
    );

    // The real crawler, confirmed by forward-confirmed reverse DNS.
    let r = send("/g1", "66.249.66.1", GOOGLEBOT, false).await;
    assert_eq!(r.status(), 200);
    let l = line_for(&gw, "/g1");
    assert_eq!(l["bot"], "good_bot", "{l}");
    assert_eq!(l["crawler"], "googlebot");
    assert_eq!(l["bot_reason"], "forward-confirmed reverse DNS");
    // Its name from an address whose reverse DNS is someone else's, or has none.
    for (path, ip, why) in [
        (
            "/g2",
            "66.249.66.3",
            "reverse DNS name outside the crawler's domains",
        ),
        ("/g3", "66.249.66.5", "no reverse DNS name"),
    ] {
        let r = send(path, ip, GOOGLEBOT, false).await;
        assert_eq!(r.status(), 403, "{path}");
        let l = line_for(&gw, path);
        assert_eq!(l["bot"], "bad_bot", "{l}");
        assert_eq!(l["bot_reason"], why);
    }
    // A crawler known by its networks, and its name from elsewhere.
    assert_eq!(
        send("/p1", "203.0.113.7", "PartnerCrawler/1.0", false)
            .await
            .status(),
        200
    );
    assert_eq!(line_for(&gw, "/p1")["bot"], "good_bot");
    assert_eq!(
        send("/p2", "198.51.100.7", "PartnerCrawler/1.0", false)
            .await
            .status(),
        403
    );
    assert_eq!(line_for(&gw, "/p2")["bot"], "bad_bot");

    // Unrecognised clients get the challenge (JSON for an API client), not the backend.
    let before = hits();
    let r = send("/u1", "192.0.2.4", "SomethingElse/1.0", false).await;
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("challenge"),
        "{body}"
    );
    assert_eq!(line_for(&gw, "/u1")["bot"], "unknown");

    // DNS down: a new claim cannot be verified, so it is `unknown` and challenged — never
    // let through as the crawler it names, never a hang.
    drop(dns);
    let t = Instant::now();
    let r = send("/g4", "66.249.66.20", GOOGLEBOT, false).await;
    assert_eq!(r.status(), 403);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    let l = line_for(&gw, "/g4");
    assert_eq!(l["bot"], "unknown", "{l}");
    assert_eq!(l["reason"], "no challenge pass");
    // The confirmed crawler's answer is cached.
    assert_eq!(
        send("/g5", "66.249.66.1", GOOGLEBOT, false).await.status(),
        200
    );
    assert_eq!(hits(), before + 1);

    let m = gw.metrics();
    for v in ["good_bot", "bad_bot", "automated", "human", "unknown"] {
        let n = gw.metric(&format!("rampart_bot_verdicts_total{{verdict=\"{v}\"}}"));
        assert!(n >= 1.0, "{v}: {m}");
    }
}

#[test]
fn bad_bot_settings_are_refused_with_where() {
    let dir = temp_dir("bots-config");
    let sigs = dir.join("sigs.txt");
    std::fs::write(&sigs, "bad_bot Fine\n\nhuman Firefox\n").unwrap();
    let sigs_line = format!("{}:3:", sigs.display());
    let cases = [
        (
            "routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n    bots:\n      evil_bot: deny\n".to_string(),
            vec!["unknown field `evil_bot`", "line 6"],
        ),
        (
            "bots:\n  policy:\n    automated: block\nroutes: []\n".to_string(),
            vec!["unknown bot action `block`", "line 3"],
        ),
        (
            format!("bots:\n  signatures: {}\nroutes: []\n", sigs.display()),
            vec![sigs_line.as_str(), "bad_bot or automated"],
        ),
        (
            "bots:\n  signatures: /nonexistent/sigs.txt\nroutes: []\n".to_string(),
            vec!["bots.signatures", "/nonexistent/sigs.txt"],
        ),
        (
            "bots:\n  fingerprints:\n    - { ja4: t13d-nope, verdict: bad_bot }\nroutes: []\n"
                .to_string(),
            vec!["bots.fingerprints.0.ja4", "not a JA4"],
        ),
        (
            "bots:\n  dns: { servers: [\"dns.example\"] }\nroutes: []\n".to_string(),
            vec!["bots.dns.servers.0", "not an address"],
        ),
        (
            "bots:\n  verify:\n    - { name: x, user_agent: XBot }\nroutes: []\n".to_string(),
            vec!["bots.verify.0", "needs domains or networks"],
        ),
        (
            "bots:\n  policy:\n    automated: { rate_limit: { rate: lots } }\nroutes: []\n"
                .to_string(),
            vec!["bots.policy.automated.rate_limit"],
        ),
    ];
    for (i, (body, needles)) in cases.iter().enumerate() {
        let path = dir.join(format!("c{i}.yaml"));
        let text = format!(
            "listeners:\n  - name: p\n    address: 127.0.0.1:1\nupstreams:\n  u:\n    targets: [\"127.0.0.1:9\"]\n{body}"
        );
        // Line numbers in the needles count from the body's first line.
        let text_lines = text.lines().count() - body.lines().count();
        let needles: Vec<String> = needles
            .iter()
            .map(|n| match n.strip_prefix("line ") {
                Some(k) => format!("{}", k.parse::<usize>().unwrap() + text_lines),
                None => n.to_string(),
            })
            .collect();
        std::fs::write(&path, &text).unwrap();
        let refs: Vec<&str> = needles.iter().map(String::as_str).collect();
        validate_refuses(&path, &refs);
    }
}

/// The ClientHello `cfg` sends, captured by a listener that never answers.
async fn hello_of(cfg: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let client = tokio::spawn(async move {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let _ = tokio::time::timeout(
            Duration::from_secs(2),
            tokio_rustls::TlsConnector::from(cfg).connect(name, tcp),
        )
        .await;
    });
    let (mut s, _) = l.accept().await.unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        use tokio::io::AsyncReadExt;
        let n = s.read(&mut chunk).await.unwrap();
        buf.extend_from_slice(&chunk[..n]);
        if let rampart_bots::tls::Hello::Incomplete(_) = rampart_bots::tls::parse(&buf) {
            continue;
        }
        break;
    }
    client.abort();
    buf
}

fn tls_client(alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
        .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    // A resumed handshake adds `pre_shared_key`, which changes the JA4: each connection
    // here is a full handshake, as the first connection of any client is.
    cfg.resumption = rustls::client::Resumption::disabled();
    Arc::new(cfg)
}

/// One HTTP/1.1 request over TLS; the status.
async fn tls_get(port: u16, cfg: Arc<rustls::ClientConfig>, path: &str, headers: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    let req =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    status_of(&String::from_utf8_lossy(&out))
}

/// One HTTP/2 request over TLS (ALPN h2); the status.
async fn tls_get_h2(
    port: u16,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
    headers: &[(&str, &str)],
) -> u16 {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let tls = tokio_rustls::TlsConnector::from(cfg)
        .connect(name, tcp)
        .await
        .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut h2, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::get(format!("https://localhost{path}"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let (resp, _) = h2.send_request(req.body(()).unwrap(), true).unwrap();
    resp.await.unwrap().status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_fingerprints_and_header_order_come_from_the_wire() {
    let up = Upstream::start("app").await;
    let dir = temp_dir("bots-tls");
    let (cert, key) = self_signed_files(&dir);
    let tls_port = free_port();
    let body = |fingerprints: &str| {
        format!(
            "  - name: secure\n    address: 127.0.0.1:{tls_port}\n    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\nlimits:\n  request_header_timeout: 1s\nbots:\n  policy: {{ automated: deny }}\n{fingerprints}upstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
            cert.display(),
            key.display(),
            upstream_yaml("u", &[up.addr], "")
        )
    };
    let gw = Gateway::start(&body(""));
    let browser_headers = format!(
        "User-Agent: {FIREFOX}\r\nAccept: text/html\r\nAccept-Language: en\r\nAccept-Encoding: gzip\r\n"
    );

    // What the client sends, fingerprinted here independently of the gateway.
    let h2_client = tls_client(&["h2", "http/1.1"]);
    let h1_client = tls_client(&["http/1.1"]);
    let ja4 = |bytes: &[u8]| match rampart_bots::tls::parse(bytes) {
        rampart_bots::tls::Hello::Done(h) => h.ja4,
        other => panic!("{other:?}"),
    };
    let h2_ja4 = ja4(&hello_of(h2_client.clone()).await);
    let h1_ja4 = ja4(&hello_of(h1_client.clone()).await);
    assert_ne!(h2_ja4, h1_ja4);

    // A browser's name and headers over TLS offering h2: human, with its JA4 logged.
    let h2_headers = [
        ("user-agent", FIREFOX),
        ("accept", "text/html"),
        ("accept-language", "en"),
        ("accept-encoding", "gzip"),
    ];
    assert_eq!(
        tls_get_h2(tls_port, h2_client.clone(), "/t1", &h2_headers).await,
        200
    );
    let l = line_for(&gw, "/t1");
    assert_eq!(l["bot"], "human", "{l}");
    assert_eq!(l["ja4"], h2_ja4.as_str());
    // The same name from a TLS client that does not offer h2 is no browser.
    assert_eq!(
        tls_get(tls_port, h1_client.clone(), "/t2", &browser_headers).await,
        403
    );
    let l = line_for(&gw, "/t2");
    assert_eq!(l["bot_reason"], "browser name, TLS without h2", "{l}");
    assert_eq!(l["ja4"], h1_ja4.as_str());

    // Listing the fingerprint makes it a bad bot whatever it says (after a reload).
    let generation = gw.readyz_generation();
    gw.write_config(&body(&format!(
        "  fingerprints:\n    - {{ ja4: {h2_ja4}, verdict: bad_bot }}\n"
    )));
    gw.sighup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while gw.readyz_generation() == generation {
        assert!(Instant::now() < deadline, "no reload: {}", gw.stderr());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let st = tls_get_h2(tls_port, h2_client.clone(), "/t3", &h2_headers).await;
    assert_eq!(st, 403, "{}", line_for(&gw, "/t3"));
    let l = line_for(&gw, "/t3");
    assert_eq!(l["bot"], "bad_bot", "{l}");
    assert_eq!(l["bot_reason"], "listed TLS fingerprint");

    // Plain HTTP/1.1 straight from the client: a browser puts Host first.
    let ok = format!("GET /o1 HTTP/1.1\r\nHost: x\r\n{browser_headers}Connection: close\r\n\r\n");
    assert_eq!(
        status_of(&raw_request(gw.port, ok.as_bytes()).unwrap()),
        200
    );
    let reordered =
        format!("GET /o2 HTTP/1.1\r\n{browser_headers}Host: x\r\nConnection: close\r\n\r\n");
    assert_eq!(
        status_of(&raw_request(gw.port, reordered.as_bytes()).unwrap()),
        403
    );
    assert_eq!(
        line_for(&gw, "/o2")["bot_reason"],
        "browser name, Host not the first header"
    );

    // A client that starts a TLS hello and stalls is cut at the header timeout.
    let t = Instant::now();
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", tls_port))
        .await
        .unwrap();
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
            .await
            .unwrap();
        let mut b = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("the stalled hello was not cut")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    assert!(up.hits.load(SeqCst) >= 2);
}
