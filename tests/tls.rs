//! TLS perimeter through real handshakes: SNI, versions, ALPN, redirect, HSTS, rotation,
//! mTLS (required / optional / revoked), upstream TLS verification and upstream mTLS.
mod common;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SanType, SerialNumber,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    cert_pem: String,
    der: CertificateDer<'static>,
}

fn new_ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = p.self_signed(&key).unwrap();
    Ca {
        cert_pem: cert.pem(),
        der: cert.der().clone(),
        issuer: Issuer::new(p, key),
    }
}

struct Leaf {
    cert_pem: String,
    key_pem: String,
    der: CertificateDer<'static>,
}

fn issue(ca: &Ca, cn: &str, dns: &[&str], uri: Option<&str>, serial: u64) -> Leaf {
    let key = KeyPair::generate().unwrap();
    let mut p =
        CertificateParams::new(dns.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.serial_number = Some(SerialNumber::from(serial));
    if let Some(u) = uri {
        p.subject_alt_names
            .push(SanType::URI(u.try_into().unwrap()));
    }
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn write_leaf(dir: &Path, name: &str, leaf: &Leaf) -> (PathBuf, PathBuf) {
    (
        write(dir, &format!("{name}.pem"), &leaf.cert_pem),
        write(dir, &format!("{name}.key"), &leaf.key_pem),
    )
}

fn crl_revoking(ca: &Ca, serial: u64) -> String {
    let now = time::OffsetDateTime::now_utc();
    CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: vec![RevokedCertParams {
            serial_number: SerialNumber::from(serial),
            revocation_time: now - time::Duration::minutes(1),
            reason_code: None,
            invalidity_date: None,
        }],
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&ca.issuer)
    .unwrap()
    .pem()
    .unwrap()
}

fn client_config(ca: &Ca, client: Option<&Leaf>, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let mut cfg = match client {
        Some(l) => {
            let key = rustls_pemfile::private_key(&mut l.key_pem.as_bytes())
                .unwrap()
                .unwrap();
            b.with_client_auth_cert(vec![l.der.clone()], key).unwrap()
        }
        None => b.with_no_client_auth(),
    };
    cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

type Tls = tokio_rustls::client::TlsStream<tokio::net::TcpStream>;

async fn connect(port: u16, sni: &str, cfg: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    tokio_rustls::TlsConnector::from(cfg)
        .connect(ServerName::try_from(sni.to_string()).unwrap(), tcp)
        .await
}

fn leaf_of(s: &Tls) -> CertificateDer<'static> {
    s.get_ref().1.peer_certificates().unwrap()[0]
        .clone()
        .into_owned()
}

/// One HTTP/1.1 request on an open connection; reads exactly one response.
async fn request(
    s: &mut Tls,
    host: &str,
    path: &str,
    extra: &str,
) -> std::io::Result<(u16, String, String)> {
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n").as_bytes())
        .await?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .map_err(|_| std::io::Error::other("timeout"))??;
        if n == 0 {
            return Err(std::io::Error::other(format!(
                "closed after {} bytes",
                buf.len()
            )));
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len: usize = header_of(&text, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if body.len() >= len {
                return Ok((status_of(&text), head.to_string(), body.to_string()));
            }
        }
    }
}

async fn get(
    port: u16,
    sni: &str,
    cfg: Arc<rustls::ClientConfig>,
    path: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = connect(port, sni, cfg).await?;
    request(&mut s, sni, path, "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sni_alpn_hsts_versions_and_redirect() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("tls");
    let ca = new_ca("Test CA");
    let default = issue(&ca, "default.test", &["default.test"], None, 10);
    let api = issue(&ca, "api.example.test", &["api.example.test"], None, 11);
    let wild = issue(&ca, "wild", &["*.other.test"], None, 12);
    let (dc, dk) = write_leaf(&dir, "default", &default);
    let (ac, ak) = write_leaf(&dir, "api", &api);
    let (wc, wk) = write_leaf(&dir, "wild", &wild);
    let tls_port = free_port();
    let body = format!(
        "  - name: secure\n    address: 127.0.0.1:{tls_port}\n    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\n        - {{ cert: {}, key: {} }}\n        - {{ cert: {}, key: {} }}\n    hsts: {{ max_age: 1d, include_subdomains: true, preload: true }}\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        dc.display(), dk.display(), ac.display(), ak.display(), wc.display(), wk.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "    redirect_https: true\n");

    let cfg = client_config(&ca, None, &["h2", "http/1.1"]);
    let s = connect(tls_port, "api.example.test", cfg.clone())
        .await
        .unwrap();
    assert_eq!(leaf_of(&s), api.der, "SNI api.example.test");
    assert_eq!(
        s.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "h2 via ALPN"
    );
    let s = connect(tls_port, "x.other.test", cfg.clone())
        .await
        .unwrap();
    assert_eq!(leaf_of(&s), wild.der, "wildcard");
    let s = connect(tls_port, "default.test", cfg.clone())
        .await
        .unwrap();
    assert_eq!(leaf_of(&s), default.der);
    // Unknown names get the default certificate (and then fail verification client-side).
    assert!(connect(tls_port, "unknown.test", cfg.clone())
        .await
        .is_err());
    let s = connect(tls_port, "a.b.other.test", client_config(&ca, None, &[])).await;
    assert!(s.is_err(), "a wildcard covers exactly one label");

    let h1 = client_config(&ca, None, &["http/1.1"]);
    let (status, head, body) = get(tls_port, "api.example.test", h1, "/x?y=1")
        .await
        .unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        header_of(&format!("{head}\r\n\r\n"), "strict-transport-security").as_deref(),
        Some("max-age=86400; includeSubDomains; preload")
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");

    // Plain listener: 308 to the same host and path on the TLS port, no HSTS over http.
    let resp = raw_request(
        gw.port,
        b"GET /p/q?x=1 HTTP/1.1\r\nHost: api.example.test:1234\r\n\r\n",
    )
    .unwrap();
    assert_eq!(status_of(&resp), 308, "{resp}");
    assert_eq!(
        header_of(&resp, "location").as_deref(),
        Some(format!("https://api.example.test:{tls_port}/p/q?x=1").as_str())
    );
    assert!(header_of(&resp, "strict-transport-security").is_none());

    // TLS 1.1 and older are refused by the server (rustls speaks only 1.2 and 1.3).
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{tls_port}"),
            "-tls1_1",
            "-cipher",
            "DEFAULT:@SECLEVEL=0",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "{text}");
    // The server answers the 1.1 ClientHello with an alert; no certificate is ever sent.
    assert!(
        text.contains("alert") && text.contains("no peer certificate available"),
        "{text}"
    );
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{tls_port}"),
            "-tls1_2",
            "-servername",
            "api.example.test",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Protocol  : TLSv1.2")
            || String::from_utf8_lossy(&out.stdout).contains("TLSv1.2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rotation_without_restart_and_broken_files_refused() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("tls");
    let ca = new_ca("Test CA");
    let first = issue(&ca, "api.example.test", &["api.example.test"], None, 20);
    let (c, k) = write_leaf(&dir, "api", &first);
    let tls_port = free_port();
    let body = format!(
        "  - name: secure\n    address: 127.0.0.1:{tls_port}\n    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\nserver:\n  watch_interval: 200ms\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        c.display(), k.display(), upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start_with_listeners(&body, "");
    let cfg = client_config(&ca, None, &["http/1.1"]);
    let mut open = connect(tls_port, "api.example.test", cfg.clone())
        .await
        .unwrap();
    assert_eq!(leaf_of(&open), first.der);
    assert_eq!(
        request(&mut open, "api.example.test", "/1", "")
            .await
            .unwrap()
            .0,
        200
    );

    // Swap both files: new handshakes present the new certificate.
    let second = issue(&ca, "api.example.test", &["api.example.test"], None, 21);
    write_leaf(&dir, "api", &second);
    let mut rotated = false;
    for _ in 0..40 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let s = connect(tls_port, "api.example.test", cfg.clone())
            .await
            .unwrap();
        if leaf_of(&s) == second.der {
            rotated = true;
            break;
        }
    }
    assert!(
        rotated,
        "new certificate not served; stderr:\n{}",
        gw.stderr()
    );
    // The connection opened before the rotation still serves.
    assert_eq!(
        request(&mut open, "api.example.test", "/2", "")
            .await
            .unwrap()
            .0,
        200
    );

    // A broken certificate file is refused; the current certificate stays.
    std::fs::write(
        &c,
        "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = connect(tls_port, "api.example.test", cfg.clone())
        .await
        .unwrap();
    assert_eq!(leaf_of(&s), second.der);
    assert!(gw.metric("rampart_tls_certificate_reloads_total{result=\"failed\"}") >= 1.0);
    assert!(
        gw.stderr().contains("certificate reload refused"),
        "{}",
        gw.stderr()
    );
    // A key that does not match the certificate is refused too.
    let other = issue(&ca, "api.example.test", &["api.example.test"], None, 22);
    std::fs::write(&c, &other.cert_pem).unwrap();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let s = connect(tls_port, "api.example.test", cfg.clone())
        .await
        .unwrap();
    assert_eq!(leaf_of(&s), second.der);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mutual_tls_required_optional_and_revoked() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("tls");
    let ca = new_ca("Client CA");
    let other_ca = new_ca("Other CA");
    let server = issue(&ca, "api.example.test", &["api.example.test"], None, 30);
    let alice = issue(
        &ca,
        "alice",
        &["alice.clients.test"],
        Some("spiffe://example.test/alice"),
        31,
    );
    let mallory = issue(&other_ca, "mallory", &[], None, 32);
    let revoked = issue(&ca, "revoked", &[], None, 33);
    let (sc, sk) = write_leaf(&dir, "server", &server);
    let ca_path = write(&dir, "ca.pem", &ca.cert_pem);
    let crl_path = write(&dir, "ca.crl", &crl_revoking(&ca, 33));
    let required = free_port();
    let optional = free_port();
    let body = format!(
        "  - name: required\n    address: 127.0.0.1:{required}\n    tls:\n      certificates: [{{ cert: {sc}, key: {sk} }}]\n      client_auth: {{ ca: {ca}, mode: required, crl: {crl} }}\n  - name: optional\n    address: 127.0.0.1:{optional}\n    tls:\n      certificates: [{{ cert: {sc}, key: {sk} }}]\n      client_auth: {{ ca: {ca}, mode: optional, crl: {crl} }}\nconsumers:\n  - {{ id: alice-app, groups: [apps], mtls: [{{ subject_cn: alice }}] }}\nupstreams:\n{}routes:\n  - name: mapped\n    paths: [\"/mapped\"]\n    upstream: u\n    auth: {{ methods: [mtls] }}\n  - name: private\n    paths: [\"/private\"]\n    upstream: u\n    require_client_cert: true\n  - name: public\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], ""),
        sc = sc.display(), sk = sk.display(), ca = ca_path.display(), crl = crl_path.display()
    );
    let _gw = Gateway::start_with_listeners(&body, "");
    let host = "api.example.test";

    // Required: no certificate, a foreign CA or a revoked certificate never get an answer.
    for (what, client) in [
        ("none", None),
        ("other CA", Some(&mallory)),
        ("revoked", Some(&revoked)),
    ] {
        let r = get(required, host, client_config(&ca, client, &[]), "/").await;
        assert!(r.is_err(), "{what}: got {:?}", r.map(|x| x.0));
    }
    let (s, _, body) = get(
        required,
        host,
        client_config(&ca, Some(&alice), &[]),
        "/private",
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["headers"]["x-client-cert-fingerprint"],
        sha256_hex(&alice.der).as_str()
    );
    assert!(v["headers"]["x-client-cert-subject"]
        .as_str()
        .unwrap()
        .contains("CN=alice"));
    assert_eq!(
        v["headers"]["x-client-cert-san"],
        "alice.clients.test, spiffe://example.test/alice"
    );

    // Optional: anonymous clients reach public routes only; spoofed identity headers vanish.
    let anon = client_config(&ca, None, &[]);
    let mut s = connect(optional, host, anon.clone()).await.unwrap();
    let (status, _, body) = request(&mut s, host, "/", "X-Client-Cert-Subject: CN=admin\r\n")
        .await
        .unwrap();
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(v["headers"].get("x-client-cert-subject").is_none(), "{v}");
    let (status, _, body) = get(optional, host, anon, "/private").await.unwrap();
    assert_eq!(status, 403);
    assert!(body.contains("client certificate required"));
    assert_eq!(
        get(
            optional,
            host,
            client_config(&ca, Some(&alice), &[]),
            "/private"
        )
        .await
        .unwrap()
        .0,
        200
    );
    assert!(
        get(optional, host, client_config(&ca, Some(&revoked), &[]), "/")
            .await
            .is_err()
    );
    // A verified certificate maps to a consumer; an unknown one (or none) does not.
    let (s, _, body) = get(
        optional,
        host,
        client_config(&ca, Some(&alice), &[]),
        "/mapped",
    )
    .await
    .unwrap();
    assert_eq!(s, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["headers"]["x-consumer-id"], "alice-app");
    assert_eq!(v["headers"]["x-auth-method"], "mtls");
    let stranger = issue(&ca, "stranger", &[], None, 34);
    let r = get(
        optional,
        host,
        client_config(&ca, Some(&stranger), &[]),
        "/mapped",
    )
    .await;
    assert_eq!(r.unwrap().0, 401);
    let r = get(optional, host, client_config(&ca, None, &[]), "/mapped").await;
    assert_eq!(r.unwrap().0, 401);
}

/// A TLS upstream answering "who are you" with the client certificate's CN, if any.
async fn tls_upstream(cert: &Leaf, client_ca: Option<&Ca>) -> std::net::SocketAddr {
    let key: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut cert.key_pem.as_bytes())
        .unwrap()
        .unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let b = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let b = match client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots.add(ca.der.clone()).unwrap();
            b.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .unwrap(),
            )
        }
        None => b.with_no_client_auth(),
    };
    let cfg = b.with_single_cert(vec![cert.der.clone()], key).unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    return;
                };
                let who = s
                    .get_ref()
                    .1
                    .peer_certificates()
                    .map(|c| format!("client-cert-bytes={}", c[0].len()))
                    .unwrap_or_else(|| "anonymous".into());
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = format!("{{\"who\":\"{who}\"}}");
                let _ = s
                    .write_all(format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                    .await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upstream_tls_verification_and_upstream_mtls() {
    let dir = temp_dir("tls");
    let ca = new_ca("Upstream CA");
    let rogue_ca = new_ca("Rogue CA");
    let good = issue(&ca, "backend.internal", &["backend.internal"], None, 40);
    let rogue = issue(
        &rogue_ca,
        "backend.internal",
        &["backend.internal"],
        None,
        41,
    );
    let gw_client = issue(&ca, "rampart-gateway", &[], None, 42);
    let plain_tls = tls_upstream(&good, None).await;
    let rogue_tls = tls_upstream(&rogue, None).await;
    let mtls = tls_upstream(&good, Some(&ca)).await;
    let ca_path = write(&dir, "up-ca.pem", &ca.cert_pem);
    let (cc, ck) = write_leaf(&dir, "gw-client", &gw_client);
    let tls = |extra: &str| {
        format!(
            "    tls: {{ sni: backend.internal, ca: {}{extra} }}\n",
            ca_path.display()
        )
    };
    let body = format!(
        "upstreams:\n{}{}{}{}routes:\n  - {{ name: ok, paths: [\"/ok\"], upstream: ok }}\n  - {{ name: rogue, paths: [\"/rogue\"], upstream: rogue }}\n  - {{ name: mtls, paths: [\"/mtls\"], upstream: mtls }}\n  - {{ name: nocert, paths: [\"/nocert\"], upstream: nocert }}\n",
        upstream_yaml("ok", &[plain_tls], &tls("")),
        upstream_yaml("rogue", &[rogue_tls], &format!("{}    retries: 0\n", tls(""))),
        upstream_yaml("mtls", &[mtls], &tls(&format!(", client_cert: {}, client_key: {}", cc.display(), ck.display()))),
        upstream_yaml("nocert", &[mtls], &format!("{}    retries: 0\n", tls(""))),
    );
    let gw = Gateway::start(&body);
    let c = client();
    let r = c.get(gw.url("/ok")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert_eq!(r.text().await.unwrap(), "{\"who\":\"anonymous\"}");
    assert_eq!(
        c.get(gw.url("/rogue"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        502,
        "unverified upstream must fail"
    );
    let r = c.get(gw.url("/mtls")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.text().await.unwrap().contains("client-cert-bytes="));
    assert_eq!(
        c.get(gw.url("/nocert"))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16(),
        502
    );
}

#[test]
fn broken_certificates_are_config_errors() {
    let dir = temp_dir("tls");
    let ca = new_ca("CA");
    let a = issue(&ca, "a.test", &["a.test"], None, 50);
    let b = issue(&ca, "b.test", &["b.test"], None, 51);
    let (ac, _) = write_leaf(&dir, "a", &a);
    let (_, bk) = write_leaf(&dir, "b", &b);
    let garbage = write(&dir, "garbage.pem", "hello");
    let cfg = write(
        &dir,
        "c.yaml",
        &format!(
            "listeners:\n  - name: s\n    address: 127.0.0.1:1\n    tls:\n      certificates:\n        - {{ cert: a.pem, key: b.key }}\n        - {{ cert: {}, key: {} }}\n",
            garbage.display(),
            bk.display()
        ),
    );
    let (code, err) = validate(&cfg);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "{} does not match the certificate in {}",
            bk.display(),
            ac.display()
        )),
        "{err}"
    );
    assert!(
        err.contains("garbage.pem: no CERTIFICATE block found"),
        "{err}"
    );
}

/// The header pre-filter covers HTTPS (HTTP/1) too: a client dribbling a header over TLS is
/// cut off with 408 after request_header_timeout, a malformed request line gets Rampart's
/// own 400, and ordinary keep-alive requests on the same kind of connection still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_and_malformed_requests_over_tls_are_refused_by_rampart() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("tls-slow");
    let ca = new_ca("Slow CA");
    let leaf = issue(&ca, "api.example.test", &["api.example.test"], None, 21);
    let (c, k) = write_leaf(&dir, "api", &leaf);
    let tls_port = free_port();
    let body = format!(
        "  - name: secure\n    address: 127.0.0.1:{tls_port}\n    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\nlimits:\n  request_header_timeout: 1s\nupstreams:\n{}routes:\n  - name: r\n    paths: [\"/\"]\n    upstream: u\n",
        c.display(),
        k.display(),
        upstream_yaml("u", &[up.addr], "")
    );
    let gw = Gateway::start(&body);
    let cfg = client_config(&ca, None, &["http/1.1"]);

    // Keep-alive: several requests on one TLS connection pass the pre-filter each time.
    let mut s = connect(tls_port, "api.example.test", cfg.clone())
        .await
        .unwrap();
    for _ in 0..3 {
        let (status, head, _) = request(&mut s, "api.example.test", "/ok", "")
            .await
            .unwrap();
        assert_eq!(status, 200, "{head}");
    }

    // Slowloris over TLS: one header byte every 100 ms never completes the block.
    let mut s = connect(tls_port, "api.example.test", cfg.clone())
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let line = b"GET /slow HTTP/1.1\r\nHost: api.example.test\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut out = Vec::new();
    for &byte in line.iter() {
        if s.write_all(&[byte]).await.is_err() {
            break;
        }
        let mut buf = [0u8; 1024];
        match tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                break;
            }
            Err(_) => {}
        }
        if start.elapsed() > Duration::from_secs(8) {
            break;
        }
    }
    let resp = String::from_utf8_lossy(&out).into_owned();
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "not cut off: {:?}",
        start.elapsed()
    );
    assert_eq!(status_of(&resp), 408, "{resp}");

    // A malformed request line: Rampart's JSON 400, not Pingora's page.
    let mut s = connect(tls_port, "api.example.test", cfg).await.unwrap();
    s.write_all(b"GET /a b c HTTP/1.1\r\nHost: api.example.test\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    let resp = String::from_utf8_lossy(&buf).into_owned();
    assert_eq!(status_of(&resp), 400, "{resp}");
    assert!(resp.contains("\"request_id\""), "{resp}");
    assert!(!resp.to_ascii_lowercase().contains("pingora"), "{resp}");
    assert!(up.hits.load(std::sync::atomic::Ordering::SeqCst) >= 3);
    drop(gw);
}

/// The client CA bundle and CRL are re-read on change, like certificates: a certificate
/// revoked after start is refused from the next handshake, without a restart and without
/// cutting established connections; a broken CRL keeps the previous one; a new CA bundle
/// admits its clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn client_ca_and_crl_reload_without_restart() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("tls-crl");
    let ca = new_ca("Client CA");
    let ca2 = new_ca("Second client CA");
    let server = issue(&ca, "api.example.test", &["api.example.test"], None, 40);
    let alice = issue(&ca, "alice", &[], None, 41);
    let bob = issue(&ca2, "bob", &[], None, 42);
    let (sc, sk) = write_leaf(&dir, "server", &server);
    let ca_path = write(&dir, "ca.pem", &ca.cert_pem);
    // At start the CRL revokes someone else.
    let crl_path = write(&dir, "ca.crl", &crl_revoking(&ca, 99));
    let port = free_port();
    let body = format!(
        "  - name: mtls\n    address: 127.0.0.1:{port}\n    tls:\n      certificates: [{{ cert: {sc}, key: {sk} }}]\n      client_auth: {{ ca: {ca}, crl: {crl} }}\nserver:\n  watch_interval: 200ms\nupstreams:\n{}routes:\n  - name: all\n    paths: [\"/\"]\n    upstream: u\n",
        upstream_yaml("u", &[up.addr], ""),
        sc = sc.display(), sk = sk.display(), ca = ca_path.display(), crl = crl_path.display()
    );
    let gw = Gateway::start_with_listeners(&body, "");
    let host = "api.example.test";
    let alice_cfg = || client_config(&ca, Some(&alice), &[]);
    let mut kept = connect(port, host, alice_cfg()).await.unwrap();
    assert_eq!(request(&mut kept, host, "/", "").await.unwrap().0, 200);

    // Revoked now: refused at the next handshake; the open connection carries on.
    let replace = |path: &Path, text: &str| {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    };
    replace(&crl_path, &crl_revoking(&ca, 41));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get(port, host, alice_cfg(), "/").await.is_ok() {
        assert!(
            std::time::Instant::now() < deadline,
            "revocation not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(request(&mut kept, host, "/", "").await.unwrap().0, 200);

    // A broken CRL is refused: the revocation stays in force.
    let failed = gw.metric("rampart_tls_certificate_reloads_total{result=\"failed\"}");
    replace(
        &crl_path,
        "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n",
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while gw.metric("rampart_tls_certificate_reloads_total{result=\"failed\"}") <= failed {
        assert!(
            std::time::Instant::now() < deadline,
            "broken CRL not noticed"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(get(port, host, alice_cfg(), "/").await.is_err());
    assert!(gw.stderr().contains("client CA/CRL reload refused"));

    // A new CA bundle (both CAs, a CRL revoking nobody of the second): bob gets in.
    assert!(get(port, host, client_config(&ca, Some(&bob), &[]), "/")
        .await
        .is_err());
    replace(
        &crl_path,
        &format!("{}{}", crl_revoking(&ca, 41), crl_revoking(&ca2, 99)),
    );
    replace(&ca_path, &format!("{}{}", ca.cert_pem, ca2.cert_pem));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok((200, _, _)) = get(port, host, client_config(&ca, Some(&bob), &[]), "/").await {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "new CA bundle not applied"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        get(port, host, alice_cfg(), "/").await.is_err(),
        "alice is still revoked"
    );
}

/// A leaf whose Authority Information Access names an OCSP responder at `url`.
fn issue_with_ocsp(ca: &Ca, name: &str, serial: u64, url: &str) -> Leaf {
    // AuthorityInfoAccessSyntax: SEQUENCE { SEQUENCE { id-ad-ocsp, [6] IA5String url } }
    let oid = [0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01];
    let mut desc = oid.to_vec();
    desc.push(0x86);
    desc.push(url.len() as u8);
    desc.extend_from_slice(url.as_bytes());
    let mut inner = vec![0x30, desc.len() as u8];
    inner.extend(desc);
    let mut aia = vec![0x30, inner.len() as u8];
    aia.extend(inner);
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec![name.to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, name);
    p.serial_number = Some(SerialNumber::from(serial));
    p.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
        &[1, 3, 6, 1, 5, 5, 7, 1, 1],
        aia,
    )];
    let cert = p.signed_by(&key, &ca.issuer).unwrap();
    Leaf {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
        der: cert.der().clone(),
    }
}

/// What `openssl s_client -status` says of the staple for `sni`.
fn staple_seen(port: u16, sni: &str) -> String {
    let out = std::process::Command::new("openssl")
        .args([
            "s_client",
            "-connect",
            &format!("127.0.0.1:{port}"),
            "-servername",
            sni,
            "-status",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// OCSP stapling against OpenSSL's own responder: a good certificate gets a checked staple;
/// a revoked one, and one whose responder answers junk, are served without (an event each).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ocsp_responses_are_checked_before_they_are_stapled() {
    let up = Upstream::start("a").await;
    let dir = temp_dir("ocsp");
    let ca = new_ca("OCSP test CA");
    let ca_path = write(&dir, "ca.pem", &ca.cert_pem);
    let ca_key = write(&dir, "ca.key", &ca.issuer.key().serialize_pem());
    let responder = free_port();
    let url = format!("http://127.0.0.1:{responder}");
    let good = issue_with_ocsp(&ca, "good.example.test", 0x51, &url);
    let revoked = issue_with_ocsp(&ca, "revoked.example.test", 0x52, &url);
    // A "responder" that answers HTTP with JSON, not OCSP.
    let junk = issue_with_ocsp(
        &ca,
        "junk.example.test",
        0x53,
        &format!("http://{}", up.addr),
    );
    let chain = |name: &str, l: &Leaf| {
        let c = write(
            &dir,
            &format!("{name}.pem"),
            &format!("{}{}", l.cert_pem, ca.cert_pem),
        );
        let k = write(&dir, &format!("{name}.key"), &l.key_pem);
        (c, k)
    };
    let (gc, gk) = chain("good", &good);
    let (rc, rk) = chain("revoked", &revoked);
    let (jc, jk) = chain("junk", &junk);
    write(
        &dir,
        "index.txt",
        "V\t351231235959Z\t\t51\tunknown\t/CN=good.example.test\nR\t351231235959Z\t250101000000Z\t52\tunknown\t/CN=revoked.example.test\n",
    );
    let mut ocsp = std::process::Command::new("openssl")
        .current_dir(&dir)
        .args([
            "ocsp",
            "-index",
            "index.txt",
            "-port",
            &responder.to_string(),
        ])
        .arg("-rsigner")
        .arg(&ca_path)
        .arg("-rkey")
        .arg(&ca_key)
        .arg("-CA")
        .arg(&ca_path)
        .args(["-nmin", "60", "-ignore_err"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("openssl ocsp");
    // The first fetch happens at start and a failed one is retried only 30 s later, so the
    // responder must answer first. Asked with a real OCSP request: OpenSSL's one-at-a-time
    // responder does not survive a bare connect-and-close probe.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let asked = std::process::Command::new("openssl")
            .arg("ocsp")
            .arg("-issuer")
            .arg(&ca_path)
            .args(["-serial", "0x51", "-url", &url])
            .arg("-CAfile")
            .arg(&ca_path)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        if asked.success() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "openssl ocsp did not answer"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let port = free_port();
    let events = dir.join("events.jsonl");
    let body = format!(
        "  - name: secure\n    address: 127.0.0.1:{port}\n    tls:\n      certificates:\n        - {{ cert: {}, key: {} }}\n        - {{ cert: {}, key: {} }}\n        - {{ cert: {}, key: {} }}\nserver:\n  watch_interval: 200ms\nevents:\n  file: {}\nupstreams:\n{}routes:\n  - name: all\n    paths: [\"/\"]\n    upstream: u\n",
        gc.display(), gk.display(), rc.display(), rk.display(), jc.display(), jk.display(),
        events.display(),
        upstream_yaml("u", &[up.addr], ""),
    );
    let _gw = Gateway::start_with_listeners(&body, "");

    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = staple_seen(port, "good.example.test");
        if out.contains("OCSP Response Status: successful") {
            assert!(out.contains("Cert Status: good"), "{out}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no staple:\n{out}\n{}",
            _gw.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let ev = event_where(&events, Duration::from_secs(5), |e| e["action"] == "ocsp");
    assert!(ev["reason"].as_str().unwrap().contains("stapled"), "{ev}");
    for (name, why) in [
        ("revoked.example.test", "the certificate is revoked"),
        ("junk.example.test", "not an OCSP response"),
    ] {
        let ev = event_where(&events, Duration::from_secs(10), |e| {
            e["action"] == "ocsp_fail" && e["reason"].as_str().unwrap_or("").contains(why)
        });
        assert!(
            ev["reason"]
                .as_str()
                .unwrap()
                .contains("served without a staple"),
            "{ev}"
        );
        let out = staple_seen(port, name);
        assert!(
            out.contains("OCSP response: no response sent"),
            "{name}: {out}"
        );
    }
    let _ = ocsp.kill();
    let _ = ocsp.wait();
}
