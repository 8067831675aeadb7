//! The annotated configs in `examples/configs/`: each one validates (with the certificate
//! files it names made for the test), and those that need no outside service start and
//! answer as their comments say.
mod common;
use common::*;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DnType, IsCa, Issuer,
    KeyIdMethod, KeyPair, KeyUsagePurpose, SerialNumber,
};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const EXAMPLES: &[&str] = &[
    "public-api.yaml",
    "internal-oidc.yaml",
    "zero-trust-mtls.yaml",
    "legacy-waf.yaml",
    "two-nodes-redis.yaml",
];

/// Every certificate file the examples name, under `dir/certs`.
fn make_certs(dir: &Path) {
    let certs = dir.join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "examples CA");
    p.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = p.self_signed(&key).unwrap();
    let issuer = Issuer::new(p, key);
    for ca_name in ["clients-ca.pem", "internal-ca.pem"] {
        std::fs::write(certs.join(ca_name), ca.pem()).unwrap();
    }
    for name in ["api", "internal", "gateway", "gateway-client"] {
        let k = KeyPair::generate().unwrap();
        let mut lp = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        lp.distinguished_name.push(DnType::CommonName, name);
        let c = lp.signed_by(&k, &issuer).unwrap();
        std::fs::write(certs.join(format!("{name}.pem")), c.pem()).unwrap();
        std::fs::write(certs.join(format!("{name}.key")), k.serialize_pem()).unwrap();
    }
    let now = time::OffsetDateTime::now_utc();
    let crl = CertificateRevocationListParams {
        this_update: now - time::Duration::minutes(1),
        next_update: now + time::Duration::days(1),
        crl_number: SerialNumber::from(1u64),
        issuing_distribution_point: None,
        revoked_certs: Vec::new(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&issuer)
    .unwrap();
    std::fs::write(certs.join("clients.crl"), crl.pem().unwrap()).unwrap();
}

/// `name` copied into a fresh directory (with certificates), addresses replaced.
fn prepare(name: &str, replace: &[(&str, String)]) -> (PathBuf, PathBuf) {
    let dir = temp_dir("example");
    make_certs(&dir);
    let mut text = std::fs::read_to_string(Path::new("examples/configs").join(name)).unwrap();
    for (from, to) in replace {
        assert!(text.contains(from), "{name} has no {from}");
        text = text.replace(from, to);
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

#[test]
fn every_example_validates() {
    let listed: Vec<String> = std::fs::read_dir("examples/configs")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yaml"))
        .collect();
    for n in &listed {
        assert!(EXAMPLES.contains(&n.as_str()), "{n} is not tested here");
    }
    for name in EXAMPLES {
        let (_dir, path) = prepare(name, &[]);
        let (code, err) = validate(&path);
        assert_eq!(code, Some(0), "{name}:\n{err}");
    }
}

struct Running {
    child: std::process::Child,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(path: &Path, port: u16) -> Running {
    let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["serve", "--config"])
        .arg(path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{} did not start",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Running { child }
}

/// The examples that need no outside service, started: the public API redirects HTTP and
/// asks for a key; the legacy app's CRS blocks an injection; two nodes share a limit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_self_contained_examples_run() {
    let (https, http, admin) = (free_port(), free_port(), free_port());
    let (_d, path) = prepare(
        "public-api.yaml",
        &[
            ("0.0.0.0:8443", format!("127.0.0.1:{https}")),
            ("0.0.0.0:8080", format!("127.0.0.1:{http}")),
            ("127.0.0.1:9901", format!("127.0.0.1:{admin}")),
        ],
    );
    let _api = start(&path, https);
    let (s, head) = raw_get(http, "/api/orders").unwrap();
    assert_eq!(s, 308, "{head}");
    let tls = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let r = tls
        .get(format!("https://localhost:{https}/api/orders"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401, "no key");

    let (web, admin) = (free_port(), free_port());
    let (_d, path) = prepare(
        "legacy-waf.yaml",
        &[
            ("0.0.0.0:8080", format!("127.0.0.1:{web}")),
            // A closed port: the test's network may answer for private addresses.
            ("10.3.0.7:80", "127.0.0.1:1".to_string()),
        ],
    );
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap()
            + &format!("admin:\n  address: 127.0.0.1:{admin}\n"),
    )
    .unwrap();
    let _legacy = start(&path, web);
    let (s, _) = raw_get(web, "/?id=1%27%20OR%20%271%27=%271").unwrap();
    assert_eq!(s, 403, "CRS blocks the injection");
    let (s, _) = raw_get(web, "/index.html").unwrap();
    assert_eq!(
        s, 502,
        "a clean request goes on (to a backend that is not there)"
    );

    let (node, admin) = (free_port(), free_port());
    let (_d, path) = prepare(
        "two-nodes-redis.yaml",
        &[("0.0.0.0:8080", format!("127.0.0.1:{node}"))],
    );
    std::fs::write(
        &path,
        std::fs::read_to_string(&path).unwrap()
            + &format!("admin:\n  address: 127.0.0.1:{admin}\n"),
    )
    .unwrap();
    let _node = start(&path, node);
    let (s, _) = raw_get(node, "/?q=1%27%20OR%20%271%27=%271").unwrap();
    assert_eq!(s, 403);
}
