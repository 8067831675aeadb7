//! ACME against a real ACME server: Debian's Pebble (RFC 8555 test CA) on loopback, with
//! its validation really done (no `PEBBLE_VA_ALWAYS_VALID`): `pebble-challtestsrv` serves
//! its DNS, answering 127.0.0.1 for every name, so Pebble fetches the HTTP-01 token from
//! Rampart's plain listener and opens `acme-tls/1` handshakes to its TLS listener.

mod common;

use common::*;
use rustls::pki_types::{CertificateDer, ServerName};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A Pebble and its DNS server, killed on drop.
struct Pebble {
    children: Vec<Child>,
    mgmt: u16,
    /// The CA of Pebble's own HTTPS (the `ca` Rampart is given).
    https_ca: PathBuf,
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Pebble's HTTPS certificate, signed by a CA of the test's own.
fn pebble_tls(dir: &Path) -> PathBuf {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_p.distinguished_name
        .push(rcgen::DnType::CommonName, "pebble https test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_p, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let p = rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let cert = p.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("pebble.crt"), cert.pem()).unwrap();
    std::fs::write(dir.join("pebble.key"), key.serialize_pem()).unwrap();
    let ca_path = dir.join("pebble-https-ca.pem");
    std::fs::write(&ca_path, ca.as_ref().pem()).unwrap();
    ca_path
}

/// Starts Pebble on `port`, validating HTTP-01 on `http_port` and TLS-ALPN-01 on
/// `tls_port`, issuing certificates valid `validity` seconds.
fn start_pebble(dir: &Path, port: u16, http_port: u16, tls_port: u16, validity: u64) -> Pebble {
    start_pebble_with(
        dir,
        port,
        http_port,
        tls_port,
        validity,
        serde_json::json!({}),
    )
}

/// As [`start_pebble`], with more keys for Pebble's config.
fn start_pebble_with(
    dir: &Path,
    port: u16,
    http_port: u16,
    tls_port: u16,
    validity: u64,
    extra: serde_json::Value,
) -> Pebble {
    let https_ca = pebble_tls(dir);
    let [dns, cts, mgmt] = free_ports();
    let mut cfg = serde_json::json!({"pebble": {
        "listenAddress": format!("127.0.0.1:{port}"),
        "managementListenAddress": format!("127.0.0.1:{mgmt}"),
        "certificate": dir.join("pebble.crt"),
        "privateKey": dir.join("pebble.key"),
        "httpPort": http_port,
        "tlsPort": tls_port,
        "ocspResponderURL": "",
        "externalAccountBindingRequired": false,
        "domainBlocklist": ["blocked.test"],
        "certificateValidityPeriod": validity,
    }});
    for (k, v) in extra.as_object().unwrap() {
        cfg["pebble"][k] = v.clone();
    }
    let cfg_path = dir.join("pebble.json");
    std::fs::write(&cfg_path, cfg.to_string()).unwrap();
    let log = |n: &str| std::fs::File::create(dir.join(n)).unwrap();
    let cts_child = Command::new("pebble-challtestsrv")
        .args(["-management", &format!("127.0.0.1:{cts}")])
        .args(["-dns01", &format!("127.0.0.1:{dns}")])
        .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
        .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
        .stdout(log("challtestsrv.log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble-challtestsrv (Debian package pebble)");
    let pebble = Command::new("pebble")
        .arg("-config")
        .arg(&cfg_path)
        .args(["-dnsserver", &format!("127.0.0.1:{dns}")])
        .env("PEBBLE_VA_NOSLEEP", "1")
        .env("PEBBLE_WFE_NONCEREJECT", "0")
        .env("PEBBLE_AUTHZREUSE", "0")
        .stdout(log("pebble.log"))
        .stderr(Stdio::null())
        .spawn()
        .expect("pebble (Debian package pebble)");
    let p = Pebble {
        children: vec![pebble, cts_child],
        mgmt,
        https_ca,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "pebble did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    p
}

impl Pebble {
    /// The root Pebble signs with (a new one each time Pebble starts).
    async fn root(&self) -> CertificateDer<'static> {
        let ca = std::fs::read(&self.https_ca).unwrap();
        let c = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
            .build()
            .unwrap();
        // The management listener may come up after the ACME one the start waited for.
        let deadline = Instant::now() + Duration::from_secs(20);
        let pem = loop {
            let r = c
                .get(format!("https://127.0.0.1:{}/roots/0", self.mgmt))
                .send()
                .await;
            match r {
                Ok(r) if r.status().is_success() => break r.text().await.unwrap(),
                _ if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(100)).await
                }
                r => panic!("pebble's management API: {r:?}"),
            }
        };
        let root = rustls_pemfile::certs(&mut pem.as_bytes())
            .next()
            .unwrap()
            .unwrap();
        root
    }
}

/// What a listener serves for `sni`: (issuer CN, serial hex, DNS names), and whether the
/// chain verifies against `root` for that name.
async fn served(
    port: u16,
    sni: &str,
    root: Option<&CertificateDer<'static>>,
) -> (String, String, Vec<String>, bool) {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(AnyCert::ring())
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let s = tokio_rustls::TlsConnector::from(Arc::new(cfg))
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
        .unwrap();
    let leaf = s.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned();
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    let issuer = x
        .issuer()
        .iter_common_name()
        .next()
        .and_then(|c| c.as_str().ok())
        .unwrap_or("")
        .to_string();
    let serial = x.raw_serial_as_string();
    let mut names = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_string());
            }
        }
    }
    let verified = match root {
        Some(root) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(root.clone()).unwrap();
            let cfg = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
            let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            tokio_rustls::TlsConnector::from(Arc::new(cfg))
                .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
                .await
                .is_ok()
        }
        None => false,
    };
    (issuer, serial, names, verified)
}

/// The plain listener redirects to HTTPS, as in production.
const REDIRECT: &str = "    redirect_https: true\n";

/// Waits until the metric line `prefix` reaches `at_least`.
fn wait_metric(gw: &Gateway, prefix: &str, at_least: f64, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let v = gw.metric(prefix);
        if v >= at_least {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "{prefix} is {v}, not {at_least}; stderr:\n{}",
            gw.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until listener `l` has had `n` ACME events `action`.
fn wait_acme(gw: &Gateway, l: &str, action: &str, n: f64, secs: u64) -> f64 {
    wait_metric(gw, &acme_metric(l, action), n, Duration::from_secs(secs))
}

fn acme_metric(listener: &str, action: &str) -> String {
    format!("rampart_acme_events_total{{action=\"{action}\",listener=\"{listener}\"}}")
}

/// Two TLS listeners: `web` proves control with HTTP-01 (on the harness's plain listener),
/// `api` with TLS-ALPN-01 (on its own port).
fn listeners(dir: &Path, pebble_port: u16, https_ca: &Path, web: u16, api: u16) -> String {
    listeners_with(dir, pebble_port, https_ca, (web, ""), (api, ""))
}

/// As [`listeners`], with more `acme` keys (indented lines) for each listener.
fn listeners_with(
    dir: &Path,
    pebble_port: u16,
    https_ca: &Path,
    (web, web_extra): (u16, &str),
    (api, api_extra): (u16, &str),
) -> String {
    let acme = |domains: &str, challenge: &str, store: &str, extra: &str| {
        format!(
            "      acme:\n        directory: https://127.0.0.1:{pebble_port}/dir\n        email: ops@example.test\n        domains: [{domains}]\n        challenge: {challenge}\n        storage: {}\n        ca: {}\n        renew_before: 30s\n        retry_initial: 1s\n        retry_max: 2s\n        timeout: 20s\n{extra}",
            dir.join(store).display(),
            https_ca.display()
        )
    };
    format!(
        "  - name: web\n    address: 127.0.0.1:{web}\n    tls:\n{}  - name: api\n    address: 127.0.0.1:{api}\n    tls:\n{}events:\n  file: {}\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: all\n    paths: [\"/\"]\n    upstream: app\n",
        acme("www.shop.test, shop.test", "http-01", "web", web_extra),
        acme("api.shop.test, static.shop.test", "tls-alpn-01", "api", api_extra),
        dir.join("events.jsonl").display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_issued_renewed_kept_across_restarts_and_outages() {
    let dir = temp_dir("acme");
    let [pebble_port, web, api] = free_ports();
    // Pebble's HTTPS CA is made before Rampart starts, which must trust it.
    let https_ca = pebble_tls(&dir);
    let body = listeners(&dir, pebble_port, &https_ca, web, api);
    let gw = Gateway::start_with_listeners(&body, REDIRECT);

    // Before the CA answers: a self-signed placeholder naming the domains, never nothing.
    let (issuer, _, names, _) = served(web, "shop.test", None).await;
    assert_eq!(issuer, "Rampart placeholder (ACME pending)");
    assert_eq!(names, ["www.shop.test", "shop.test"]);
    wait_acme(&gw, "web", "fail", 1.0, 20);

    // Certificates valid 40 s, renewed when 30 s are left.
    let pebble = start_pebble(&dir, pebble_port, gw.port, api, 40);
    let root = pebble.root().await;
    wait_acme(&gw, "web", "issue", 1.0, 30);
    wait_acme(&gw, "api", "issue", 1.0, 30);
    let (issuer, web1, names, ok) = served(web, "www.shop.test", Some(&root)).await;
    assert!(
        ok && issuer.starts_with("Pebble Intermediate CA"),
        "{issuer}"
    );
    assert_eq!(names, ["www.shop.test", "shop.test"]);
    let (_, api1, names, ok) = served(api, "api.shop.test", Some(&root)).await;
    assert!(ok);
    assert_eq!(names, ["api.shop.test", "static.shop.test"]);
    assert!(served(api, "static.shop.test", Some(&root)).await.3);
    // The HTTP-01 tokens were served by the acme_challenge stage, before the redirect that
    // every other plain request gets, and before any route.
    assert_eq!(
        raw_get(gw.port, "/.well-known/acme-challenge/other")
            .unwrap()
            .0,
        308
    );
    let log = gw.access_log_with(&["/.well-known/acme-challenge/"]);
    assert!(log.contains("/.well-known/acme-challenge/"), "{log}");
    // Stored 0600.
    for f in [
        "web/www.shop.test.key.pem",
        "web/account.json",
        "api/api.shop.test.key.pem",
    ] {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let ev = event_where(&dir.join("events.jsonl"), Duration::from_secs(5), |e| {
        e["stage"] == "acme" && e["action"] == "issue"
    });
    assert!(
        ev["reason"].as_str().unwrap().contains("valid until"),
        "{ev}"
    );
    let days = gw.metric("rampart_acme_certificate_expiry_days{listener=\"web\"}");
    assert!(days > 0.0 && days < 1.0, "{days}");

    // Renewal (10 s after issuance, plus jitter), both challenges again.
    wait_acme(&gw, "web", "renew", 1.0, 40);
    wait_acme(&gw, "api", "renew", 1.0, 40);
    let (_, web2, _, ok) = served(web, "shop.test", Some(&root)).await;
    assert!(ok && web2 != web1);
    let (_, api2, _, ok) = served(api, "api.shop.test", Some(&root)).await;
    assert!(ok && api2 != api1);

    // The CA goes away at the next renewal: failures, retried, the certificate stays.
    drop(pebble);
    let fails = gw.metric(&acme_metric("web", "fail"));
    wait_acme(&gw, "web", "fail", fails + 2.0, 40);
    let (_, still, _, _) = served(web, "shop.test", None).await;
    let renewed = gw.metric(&acme_metric("web", "renew"));
    let api_renewed = gw.metric(&acme_metric("api", "renew"));
    assert_eq!(
        still,
        served(web, "shop.test", None).await.1,
        "serving changed without a renewal"
    );
    assert!(still != web1);

    // The CA comes back (a new Pebble: new root, no memory of the account): the account is
    // made again and the certificate renewed.
    let pebble = start_pebble(&dir, pebble_port, gw.port, api, 40);
    let root2 = pebble.root().await;
    wait_acme(&gw, "web", "renew", renewed + 1.0, 40);
    let (_, web3, _, ok) = served(web, "shop.test", Some(&root2)).await;
    assert!(ok && web3 != still);
    // The other listener too, so what it stores is the new CA's.
    wait_acme(&gw, "api", "renew", api_renewed + 1.0, 40);

    // A restart serves the stored certificate at once, without ordering.
    let stored_api = served(api, "api.shop.test", None).await.1;
    drop(gw);
    let gw = Gateway::start_with_listeners(&body, REDIRECT);
    assert_eq!(gw.metric(&acme_metric("api", "load")), 1.0);
    assert_eq!(gw.metric(&acme_metric("api", "placeholder")), 0.0);
    let (_, served_api, _, ok) = served(api, "api.shop.test", Some(&root2)).await;
    assert!(ok);
    // Unless it was renewed in between (it can be due already with 40 s certificates).
    if gw.metric(&acme_metric("api", "renew")) == 0.0 {
        assert_eq!(served_api, stored_api);
    }
    drop(pebble);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_acme_input_is_an_event_and_never_a_listener_without_a_certificate() {
    let dir = temp_dir("acme-bad");
    let [pebble_port, web, api] = free_ports();
    let https_ca = pebble_tls(&dir);
    let pebble = start_pebble(&dir, pebble_port, 1, api, 3600);
    // A damaged stored certificate for `api`: set aside with an event, a new one ordered.
    std::fs::create_dir_all(dir.join("api")).unwrap();
    std::fs::write(
        dir.join("api/api.shop.test.crt.pem"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.join("api/api.shop.test.key.pem"), "garbage").unwrap();
    // `web`: a name the CA refuses to issue for; `dead`: a directory nobody answers.
    let body = listeners(&dir, pebble_port, &https_ca, web, api)
        .replace("www.shop.test, shop.test", "blocked.test")
        .replace("events:\n", &format!(
            "  - name: dead\n    address: 127.0.0.1:{}\n    tls:\n      acme:\n        directory: https://127.0.0.1:1/dir\n        domains: [dead.shop.test]\n        storage: {}\n        retry_initial: 1s\n        retry_max: 1s\nevents:\n",
            free_port(),
            dir.join("dead").display()
        ));
    let gw = Gateway::start_with_listeners(&body, "");
    let root = pebble.root().await;

    let ev = event_where(&dir.join("events.jsonl"), Duration::from_secs(10), |e| {
        e["stage"] == "acme"
            && e["reason"]
                .as_str()
                .unwrap_or("")
                .contains("stored certificate")
    });
    assert_eq!(ev["action"], "fail", "{ev}");
    wait_acme(&gw, "api", "issue", 1.0, 30);
    assert!(served(api, "api.shop.test", Some(&root)).await.3);

    // The CA's refusal, in its own words, retried with backoff; the placeholder stays.
    let ev = event_where(&dir.join("events.jsonl"), Duration::from_secs(20), |e| {
        e["stage"] == "acme"
            && e["reason"].as_str().unwrap_or("").contains("blocked.test")
            && e["action"] == "fail"
    });
    let why = ev["reason"].as_str().unwrap();
    assert!(
        why.contains("rejectedIdentifier") || why.contains("blocked"),
        "{why}"
    );
    assert!(why.contains("next attempt in"), "{why}");
    let (issuer, _, names, _) = served(web, "blocked.test", None).await;
    assert_eq!(issuer, "Rampart placeholder (ACME pending)");
    assert_eq!(names, ["blocked.test"]);

    // Nobody at the directory: failures, retried, and a certificate all the same.
    wait_acme(&gw, "dead", "fail", 2.0, 20);
    let dead_port = body
        .split("name: dead\n    address: 127.0.0.1:")
        .nth(1)
        .and_then(|r| r.split('\n').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap();
    let (issuer, _, _, _) = served(dead_port, "dead.shop.test", None).await;
    assert_eq!(issuer, "Rampart placeholder (ACME pending)");
    // The gateway still serves requests on its plain listener.
    assert!(raw_get(gw.port, "/").is_ok());
    assert!(gw.stderr().lines().all(|l| !l.contains("panicked")));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_one_order_through_redis() {
    let dir = temp_dir("acme-nodes");
    let [pebble_port, b_http, a_tls, b_tls] = free_ports();
    let https_ca = pebble_tls(&dir);
    // The CA reaches node B only, while node A orders: B answers A's challenge from Redis.
    let pebble = start_pebble(&dir, pebble_port, b_http, 1, 3600);
    let root = pebble.root().await;
    let node = |name: &str, tls: u16, extra_plain: &str| {
        format!(
            "{extra_plain}  - name: web\n    address: 127.0.0.1:{tls}\n    tls:\n      acme:\n        directory: https://127.0.0.1:{pebble_port}/dir\n        domains: [shop.test]\n        storage: {}\n        ca: {}\n        redis: redis://127.0.0.1:6379\n        renew_before: 30m\n        retry_initial: 1s\n        retry_max: 2s\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: all\n    paths: [\"/\"]\n    upstream: app\n",
            dir.join(name).display(),
            https_ca.display()
        )
    };
    let a = Gateway::start_with_listeners(&node("a", a_tls, ""), "");
    let b = Gateway::start_with_listeners(
        &node(
            "b",
            b_tls,
            &format!("  - name: acme\n    address: 127.0.0.1:{b_http}\n"),
        ),
        "",
    );
    wait_acme(&a, "web", "issue", 1.0, 30);
    wait_acme(&b, "web", "pickup", 1.0, 30);
    assert_eq!(
        b.metric(&acme_metric("web", "issue")),
        0.0,
        "{}",
        b.stderr()
    );
    assert_eq!(a.metric(&acme_metric("web", "pickup")), 0.0);
    let (_, sa, _, ok_a) = served(a_tls, "shop.test", Some(&root)).await;
    let (_, sb, _, ok_b) = served(b_tls, "shop.test", Some(&root)).await;
    assert!(ok_a && ok_b);
    assert_eq!(sa, sb, "both nodes serve the one certificate ordered");
    // Node B answered the token of node A's order; A was never asked.
    let log = b.access_log_with(&["/.well-known/acme-challenge/"]);
    assert!(
        log.lines()
            .any(|l| l.contains("/.well-known/acme-challenge/") && l.contains("\"status\":200")),
        "{log}"
    );
    assert!(!a.access_log().contains("acme-challenge"));
    // B keeps it on its own disk too, for its next start.
    assert!(dir.join("b/shop.test.crt.pem").exists());
}

/// A CA that requires external account binding: the wrong MAC key is refused (an event,
/// in the CA's words), the right one gets the certificate.
#[tokio::test(flavor = "multi_thread")]
async fn external_account_binding() {
    let dir = temp_dir("acme-eab");
    let [pebble_port, web, api] = free_ports();
    let https_ca = pebble_tls(&dir);
    let key = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W";
    let pebble = start_pebble_with(
        &dir,
        pebble_port,
        1,
        api,
        3600,
        serde_json::json!({
            "externalAccountBindingRequired": true,
            "externalAccountMACKeys": {"kid-1": key},
        }),
    );
    let root = pebble.root().await;
    let eab = |k: &str| format!("        eab: {{kid: kid-1, hmac_key: {k}}}\n");
    let (wrong, right) = (eab("V3JvbmcgbWFjIGtleSBmb3IgdGhlIHRlc3Q"), eab(key));
    let body = listeners_with(&dir, pebble_port, &https_ca, (web, &wrong), (api, &right));
    let gw = Gateway::start_with_listeners(&body, "");
    // `api` (TLS-ALPN-01, the right key) is issued; `web` (the wrong key) is refused.
    wait_acme(&gw, "api", "issue", 1.0, 30);
    assert!(served(api, "api.shop.test", Some(&root)).await.3);
    let ev = event_where(&dir.join("events.jsonl"), Duration::from_secs(20), |e| {
        e["stage"] == "acme"
            && e["action"] == "fail"
            && e["reason"].as_str().unwrap_or("").contains("web:")
    });
    assert!(
        ev["reason"].as_str().unwrap().contains("new account"),
        "{ev}"
    );
    assert_eq!(gw.metric(&acme_metric("web", "issue")), 0.0);
}

/// An ACME server (HTTPS, signed by `pebble_tls`'s CA) that answers every new account with
/// RFC 8555's `rateLimited` problem; counts the account requests it gets.
async fn rate_limiting_ca(dir: &Path) -> (u16, PathBuf, Arc<std::sync::atomic::AtomicUsize>) {
    let ca = pebble_tls(dir);
    let chain = std::fs::read(dir.join("pebble.crt")).unwrap();
    let key = std::fs::read(dir.join("pebble.key")).unwrap();
    let certs: Vec<_> = rustls_pemfile::certs(&mut &chain[..])
        .map(|c| c.unwrap())
        .collect();
    let key = rustls_pemfile::private_key(&mut &key[..]).unwrap().unwrap();
    let mut cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .unwrap();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let accounts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = accounts.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = l.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let counted = counted.clone();
                        async move {
                            let base = format!("https://127.0.0.1:{port}");
                            let b = hyper::Response::builder();
                            let r = match req.uri().path() {
                                "/dir" => b.header("content-type", "application/json").body(
                                    serde_json::json!({
                                        "newNonce": format!("{base}/nonce"),
                                        "newAccount": format!("{base}/account"),
                                        "newOrder": format!("{base}/order"),
                                        "revokeCert": format!("{base}/revoke"),
                                        "keyChange": format!("{base}/key"),
                                    })
                                    .to_string(),
                                ),
                                "/nonce" => b.header("replay-nonce", "bm9uY2U").body(String::new()),
                                _ => {
                                    counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                    b.status(429)
                                        .header("content-type", "application/problem+json")
                                        .header("replay-nonce", "bm9uY2U")
                                        .header("retry-after", "3600")
                                        .body(
                                            serde_json::json!({
                                                "type": "urn:ietf:params:acme:error:rateLimited",
                                                "detail": "too many new accounts from this address",
                                                "status": 429,
                                            })
                                            .to_string(),
                                        )
                                }
                            };
                            Ok::<_, hyper::Error>(
                                r.unwrap()
                                    .map(|s| http_body_util::Full::new(bytes::Bytes::from(s))),
                            )
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (port, ca, accounts)
}

/// A CA that says "rate limited" is left alone for `retry_max`, not asked again at once.
#[tokio::test(flavor = "multi_thread")]
async fn a_rate_limited_order_waits_instead_of_hammering_the_ca() {
    let dir = temp_dir("acme-429");
    let (ca_port, ca, accounts) = rate_limiting_ca(&dir).await;
    let tls = free_port();
    let body = format!(
        "  - name: web\n    address: 127.0.0.1:{tls}\n    tls:\n      acme:\n        directory: https://127.0.0.1:{ca_port}/dir\n        domains: [shop.test]\n        challenge: tls-alpn-01\n        storage: {}\n        ca: {}\n        retry_initial: 1s\n        retry_max: 1h\nevents:\n  file: {}\nupstreams:\n  app:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: all\n    paths: [\"/\"]\n    upstream: app\n",
        dir.join("store").display(),
        ca.display(),
        dir.join("events.jsonl").display()
    );
    let gw = Gateway::start_with_listeners(&body, "");
    let ev = event_where(&dir.join("events.jsonl"), Duration::from_secs(20), |e| {
        e["stage"] == "acme" && e["action"] == "fail"
    });
    let why = ev["reason"].as_str().unwrap();
    assert!(
        why.contains("rateLimited") && why.contains("too many new accounts"),
        "{why}"
    );
    let secs: f64 = why
        .split("next attempt in ")
        .nth(1)
        .and_then(|r| r.split('s').next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert!(secs >= 2880.0, "{why}");
    // With retry_initial 1s, an ordinary failure would have been retried twice by now.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(accounts.load(std::sync::atomic::Ordering::SeqCst), 1);
    assert_eq!(gw.metric(&acme_metric("web", "fail")), 1.0);
    // And the listener has its placeholder meanwhile.
    assert_eq!(
        served(tls, "shop.test", None).await.0,
        "Rampart placeholder (ACME pending)"
    );
}
