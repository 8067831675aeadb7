//! TLS material for Rampart, independent of the proxy: loading PEM certificates and keys with
//! clear errors (never a panic), choosing a certificate by SNI, building the client
//! certificate verifier for mTLS, and turning a verified client certificate into an
//! identity (subject CN, SANs, SHA-256 fingerprint).

pub mod ocsp;

use arc_swap::ArcSwap;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A TLS material problem, with the file it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsError(pub String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

fn err(path: &Path, msg: impl fmt::Display) -> TlsError {
    TlsError(format!("{}: {msg}", path.display()))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate in a PEM file, leaf first; each must parse as X.509.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut bytes.as_slice())
        .collect::<Result<_, _>>()
        .map_err(|e| err(path, format!("invalid PEM: {e}")))?;
    if certs.is_empty() {
        return Err(err(path, "no CERTIFICATE block found"));
    }
    for (i, c) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(c.as_ref()).map_err(|e| {
            err(
                path,
                format!("certificate {} is not valid X.509: {e}", i + 1),
            )
        })?;
    }
    Ok(certs)
}

/// The private key in a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| err(path, format!("cannot read: {e}")))?;
    rustls_pemfile::private_key(&mut bytes.as_slice())
        .map_err(|e| err(path, format!("invalid PEM: {e}")))?
        .ok_or_else(|| {
            err(
                path,
                "no private key found (expected PKCS#8, RSA or EC PEM)",
            )
        })
}

/// A certificate chain and its key, checked to belong together.
pub fn load_certified_key(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let chain = load_certs(cert)?;
    let der = load_key(key)?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|e| err(key, format!("unsupported private key: {e}")))?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|_| {
        TlsError(format!(
            "{} does not match the certificate in {}",
            key.display(),
            cert.display()
        ))
    })?;
    Ok(ck)
}

/// A certificate chain and its key from PEM text (e.g. what an ACME server issued); `what`
/// names them in errors.
pub fn certified_key_from_pem(
    chain: &[u8],
    key: &[u8],
    what: &str,
) -> Result<CertifiedKey, TlsError> {
    let e = |m: String| TlsError(format!("{what}: {m}"));
    let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &chain[..])
        .collect::<Result<_, _>>()
        .map_err(|x| e(format!("invalid certificate PEM: {x}")))?;
    if certs.is_empty() {
        return Err(e("no CERTIFICATE block found".into()));
    }
    for (i, c) in certs.iter().enumerate() {
        x509_parser::parse_x509_certificate(c.as_ref())
            .map_err(|x| e(format!("certificate {} is not valid X.509: {x}", i + 1)))?;
    }
    let der = rustls_pemfile::private_key(&mut &key[..])
        .map_err(|x| e(format!("invalid key PEM: {x}")))?
        .ok_or_else(|| e("no private key found".into()))?;
    let signing = provider()
        .key_provider
        .load_private_key(der)
        .map_err(|x| e(format!("unsupported private key: {x}")))?;
    let ck = CertifiedKey::new(certs, signing);
    ck.keys_match()
        .map_err(|_| e("the key does not match the certificate".into()))?;
    Ok(ck)
}

/// DNS names a certificate is valid for (SAN DNS entries, else the subject CN).
pub fn dns_names(cert: &CertificateDer<'_>) -> Vec<String> {
    let Ok((_, x)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    if names.is_empty() {
        if let Some(cn) = x
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
        {
            names.push(cn.to_ascii_lowercase());
        }
    }
    names
}

/// One certificate of a listener, with the host names it answers for.
pub struct CertEntry {
    /// PEM certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM private key of the leaf.
    pub key_path: PathBuf,
    /// Explicit names; empty = the names in the certificate.
    pub hosts: Vec<String>,
}

/// Certificates by host name: exact names, then wildcards (`*.example.test`), then the
/// default (the first certificate), for clients that send no or an unknown SNI.
#[derive(Default)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Option<Arc<CertifiedKey>>,
}

impl CertStore {
    /// Loads every entry; the first becomes the default. Fails on any bad file or when empty.
    pub fn load(entries: &[CertEntry]) -> Result<CertStore, TlsError> {
        let mut store = CertStore::default();
        for e in entries {
            let ck = Arc::new(load_certified_key(&e.cert_path, &e.key_path)?);
            store.insert(ck, &e.hosts);
        }
        if store.default.is_none() {
            return Err(TlsError(
                "a TLS listener needs at least one certificate".into(),
            ));
        }
        Ok(store)
    }

    /// Adds a certificate for `hosts` (empty: the names in the certificate). Names already
    /// served keep their certificate; the first certificate added is the default.
    pub fn insert(&mut self, ck: Arc<CertifiedKey>, hosts: &[String]) {
        let names = if hosts.is_empty() {
            dns_names(&ck.cert[0])
        } else {
            hosts.iter().map(|h| h.to_ascii_lowercase()).collect()
        };
        for n in names {
            match n.strip_prefix("*.") {
                Some(suffix) => self
                    .wildcard
                    .entry(suffix.to_string())
                    .or_insert(ck.clone()),
                None => self.exact.entry(n).or_insert(ck.clone()),
            };
        }
        if self.default.is_none() {
            self.default = Some(ck);
        }
    }

    /// Every certificate in the store, once each.
    pub fn keys(&self) -> Vec<Arc<CertifiedKey>> {
        let mut out: Vec<Arc<CertifiedKey>> = Vec::new();
        for k in self
            .default
            .iter()
            .chain(self.exact.values())
            .chain(self.wildcard.values())
        {
            if !out.iter().any(|o| Arc::ptr_eq(o, k)) {
                out.push(k.clone());
            }
        }
        out
    }

    /// The same store with OCSP responses stapled: `staple(leaf)` gives the response for a
    /// certificate (by its leaf's DER), `None` to serve it without one.
    pub fn stapled(&self, staple: impl Fn(&[u8]) -> Option<Vec<u8>>) -> CertStore {
        let mut done: Vec<(Arc<CertifiedKey>, Arc<CertifiedKey>)> = Vec::new();
        let mut map = |k: &Arc<CertifiedKey>| -> Arc<CertifiedKey> {
            if let Some((_, n)) = done.iter().find(|(o, _)| Arc::ptr_eq(o, k)) {
                return n.clone();
            }
            let ocsp = staple(k.cert[0].as_ref());
            let n = if ocsp == k.ocsp {
                k.clone()
            } else {
                let mut c = CertifiedKey::new(k.cert.clone(), k.key.clone());
                c.ocsp = ocsp;
                Arc::new(c)
            };
            done.push((k.clone(), n.clone()));
            n
        };
        CertStore {
            exact: self
                .exact
                .iter()
                .map(|(h, k)| (h.clone(), map(k)))
                .collect(),
            wildcard: self
                .wildcard
                .iter()
                .map(|(h, k)| (h.clone(), map(k)))
                .collect(),
            default: self.default.as_ref().map(&mut map),
        }
    }

    /// The certificate for an SNI name: exact, then a one-label wildcard, then the default.
    pub fn select(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni {
            let name = name.to_ascii_lowercase();
            if let Some(c) = self.exact.get(&name) {
                return Some(c.clone());
            }
            // A wildcard covers exactly one label.
            if let Some((_, parent)) = name.split_once('.') {
                if let Some(c) = self.wildcard.get(parent) {
                    return Some(c.clone());
                }
            }
        }
        self.default.clone()
    }
}

/// The SNI resolver handed to the TLS acceptor. Its store is swapped on rotation, so new
/// handshakes use new certificates while established connections carry on.
pub struct SniResolver {
    store: ArcSwap<CertStore>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl SniResolver {
    /// A resolver serving `store`.
    pub fn new(store: CertStore) -> SniResolver {
        SniResolver {
            store: ArcSwap::from_pointee(store),
        }
    }

    /// Swaps in a new store (certificate rotation); only new handshakes see it.
    pub fn replace(&self, store: CertStore) {
        self.store.store(Arc::new(store));
    }

    /// The store in use.
    pub fn current(&self) -> Arc<CertStore> {
        self.store.load_full()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.store.load().select(hello.server_name())
    }
}

/// Client certificate verification for a listener: chains to `ca`, not revoked by `crl`.
/// With `optional`, clients without a certificate are admitted (routes decide), but a
/// certificate that is presented must verify.
pub fn client_verifier(
    ca: &Path,
    crl: Option<&Path>,
    optional: bool,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for c in load_certs(ca)? {
        roots
            .add(c)
            .map_err(|e| err(ca, format!("unusable CA certificate: {e}")))?;
    }
    let mut b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider());
    if let Some(crl) = crl {
        let bytes = std::fs::read(crl).map_err(|e| err(crl, format!("cannot read: {e}")))?;
        let crls: Vec<CertificateRevocationListDer<'static>> =
            rustls_pemfile::crls(&mut bytes.as_slice())
                .collect::<Result<_, _>>()
                .map_err(|e| err(crl, format!("invalid PEM: {e}")))?;
        if crls.is_empty() {
            return Err(err(crl, "no X509 CRL block found"));
        }
        b = b.with_crls(crls);
    }
    if optional {
        b = b.allow_unauthenticated();
    }
    b.build()
        .map_err(|e| err(ca, format!("cannot build client verifier: {e}")))
}

/// A listener's client certificate verifier that can be replaced while it runs: a CA
/// bundle or CRL that changed on disk applies to the next handshakes, established
/// connections carry on.
#[derive(Debug)]
pub struct SwappableVerifier {
    inner: ArcSwap<Arc<dyn rustls::server::danger::ClientCertVerifier>>,
    /// The CA names sent in the CertificateRequest. rustls borrows them past the call, so
    /// each set is leaked: a few hundred bytes per CA reload.
    hints: std::sync::Mutex<&'static [rustls::DistinguishedName]>,
}

fn leaked_hints(
    v: &Arc<dyn rustls::server::danger::ClientCertVerifier>,
) -> &'static [rustls::DistinguishedName] {
    Box::leak(v.root_hint_subjects().to_vec().into_boxed_slice())
}

impl SwappableVerifier {
    /// Starts with `v`.
    pub fn new(v: Arc<dyn rustls::server::danger::ClientCertVerifier>) -> SwappableVerifier {
        SwappableVerifier {
            hints: std::sync::Mutex::new(leaked_hints(&v)),
            inner: ArcSwap::from_pointee(v),
        }
    }

    /// Verifies with `v` from the next handshake on.
    pub fn replace(&self, v: Arc<dyn rustls::server::danger::ClientCertVerifier>) {
        *self.hints.lock().unwrap_or_else(|p| p.into_inner()) = leaked_hints(&v);
        self.inner.store(Arc::new(v));
    }
}

impl rustls::server::danger::ClientCertVerifier for SwappableVerifier {
    fn offer_client_auth(&self) -> bool {
        self.inner.load().offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.load().client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        *self.hints.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        self.inner
            .load()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.load().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.load().supported_verify_schemes()
    }
}

/// Who a verified client certificate says the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    /// The subject's distinguished name.
    pub subject: String,
    /// The subject's common name.
    pub common_name: Option<String>,
    /// DNS subject alternative names.
    pub dns_sans: Vec<String>,
    /// URI subject alternative names.
    pub uri_sans: Vec<String>,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub fingerprint_sha256: String,
}

impl ClientIdentity {
    /// The identity in a DER certificate; `None` when it does not parse.
    pub fn from_der(der: &[u8]) -> Option<ClientIdentity> {
        let (_, x) = x509_parser::parse_x509_certificate(der).ok()?;
        let mut dns_sans = Vec::new();
        let mut uri_sans = Vec::new();
        if let Ok(Some(san)) = x.subject_alternative_name() {
            for n in &san.value.general_names {
                match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => {
                        dns_sans.push(d.to_string())
                    }
                    x509_parser::extensions::GeneralName::URI(u) => uri_sans.push(u.to_string()),
                    _ => {}
                }
            }
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, der);
        let common_name = x
            .subject()
            .iter_common_name()
            .next()
            .and_then(|c| c.as_str().ok())
            .map(str::to_string);
        Some(ClientIdentity {
            subject: x.subject().to_string(),
            common_name,
            dns_sans,
            uri_sans,
            fingerprint_sha256: digest.as_ref().iter().map(|b| format!("{b:02x}")).collect(),
        })
    }
}

/// TLS material for connecting to an upstream: CA roots (DER) and an optional client
/// certificate (DER chain + key), validated here so the proxy never sees a bad file.
pub struct UpstreamTlsMaterial {
    /// CA roots (DER); `None` when no CA file is given (the system roots apply).
    pub ca: Option<Vec<Vec<u8>>>,
    /// Client certificate chain (DER) and private key (DER).
    pub client: Option<(Vec<Vec<u8>>, Vec<u8>)>,
}

/// Loads and checks an upstream's CA bundle and client certificate files (`client_cert` and
/// `client_key` go together).
pub fn load_upstream_material(
    ca: Option<&Path>,
    client_cert: Option<&Path>,
    client_key: Option<&Path>,
) -> Result<UpstreamTlsMaterial, TlsError> {
    let ca = match ca {
        Some(p) => Some(load_certs(p)?.into_iter().map(|c| c.to_vec()).collect()),
        None => None,
    };
    let client = match (client_cert, client_key) {
        (Some(c), Some(k)) => {
            let ck = load_certified_key(c, k)?;
            let key = load_key(k)?;
            Some((
                ck.cert.iter().map(|c| c.to_vec()).collect(),
                key.secret_der().to_vec(),
            ))
        }
        (None, None) => None,
        _ => return Err(TlsError("client_cert and client_key go together".into())),
    };
    Ok(UpstreamTlsMaterial { ca, client })
}
