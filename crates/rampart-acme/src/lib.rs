//! Certificates without a person: a listener's certificate obtained and renewed from an ACME
//! server (RFC 8555) with `instant-acme`, its challenges answered by the gateway itself
//! (HTTP-01 on a plain listener, TLS-ALPN-01 on the TLS listener), kept on disk and, with
//! Redis, shared across nodes. No Pingora types: the gateway serves [`Answers`] and
//! installs what an [`Observer`] is handed.
//!
//! The life of one certificate ([`Manager::run`]):
//! - at start, the stored certificate if it is usable, else a self-signed placeholder, so
//!   the listener never runs without a certificate;
//! - due when less than `renew_before` of its life is left (a placeholder is due at once),
//!   with a little jitter so nodes and restarts spread;
//! - an order: account (stored, or created with EAB when configured), authorizations,
//!   answers registered, challenges set ready, finalize with a CSR and a key made here,
//!   the chain checked against the key and the domains, stored (0600), installed;
//! - a failure keeps the certificate in use and retries with doubling, jittered delays;
//!   every issuance, renewal and failure is an event.

mod answers;
pub mod shared;
pub mod store;

pub use answers::{alpn_certificate, Answers, ACME_TLS_ALPN};
pub use shared::Shared;
pub use store::{Issued, Storage};

use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, ExternalAccountKey,
    Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use rustls::sign::CertifiedKey;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Which challenge proves control of the domains.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// A token served over plain HTTP on port 80.
    Http01,
    /// A special certificate served over TLS on port 443 to `acme-tls/1` clients.
    TlsAlpn01,
}

/// One ACME-managed certificate.
#[derive(Clone)]
pub struct Settings {
    /// Who it is for, in events (the listener's name).
    pub name: String,
    /// The ACME server's directory URL.
    pub directory: String,
    /// Contact address for the account.
    pub email: Option<String>,
    /// The names the certificate is for.
    pub domains: Vec<String>,
    /// How control is proven.
    pub challenge: ChallengeKind,
    /// Where the account and certificates are kept.
    pub storage: PathBuf,
    /// Renew when less than this is left of the certificate's life.
    pub renew_before: Duration,
    /// PEM bundle of CAs to trust the ACME server with (a private ACME server); default:
    /// the system's roots.
    pub ca: Option<PathBuf>,
    /// External account binding: key id and MAC key (the decoded bytes).
    pub eab: Option<(String, Vec<u8>)>,
    /// First delay after a failure; doubles up to `retry_max`.
    pub retry_initial: Duration,
    /// Longest delay between attempts.
    pub retry_max: Duration,
    /// Longest an attempt (account, order, validation, issuance) may take.
    pub timeout: Duration,
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the EAB key.
        f.debug_struct("Settings")
            .field("name", &self.name)
            .field("directory", &self.directory)
            .field("domains", &self.domains)
            .finish()
    }
}

/// What the gateway does with what the manager decides.
pub trait Observer: Send + Sync + 'static {
    /// Serve `key` from now on (new handshakes).
    fn install(&self, key: Arc<CertifiedKey>);
    /// A security event: `action` is `issue`, `renew`, `load`, `pickup`, `placeholder` or
    /// `fail`; `detail` says what and why (never a key).
    fn event(&self, action: &str, detail: String);
    /// The certificate in use now expires at this time (`None`: a placeholder).
    fn expires(&self, not_after: Option<SystemTime>);
}

/// Keeps one certificate issued and fresh.
pub struct Manager {
    s: Settings,
    storage: Storage,
    answers: Arc<Answers>,
    shared: Option<Arc<Shared>>,
    observer: Arc<dyn Observer>,
    current: Mutex<Option<Issued>>,
    /// Identifies the certificate across nodes: the directory and the domains.
    id: String,
}

/// How long one node may hold the order lock before another may take over.
const LOCK_TTL: Duration = Duration::from_secs(600);
/// How often a node that waits for another's order looks for its result.
const PICKUP_POLL: Duration = Duration::from_secs(1);
/// The longest single sleep: a long wait is re-measured against the clock.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

impl Manager {
    /// A manager for `s`; opens (creates) its storage directory.
    pub fn new(
        s: Settings,
        answers: Arc<Answers>,
        shared: Option<Arc<Shared>>,
        observer: Arc<dyn Observer>,
    ) -> Result<Manager, String> {
        let storage = Storage::open(&s.storage, &s.domains)?;
        let mut names: Vec<String> = s.domains.iter().map(|d| d.to_ascii_lowercase()).collect();
        names.sort();
        let id = {
            use sha2::Digest;
            let mut h = sha2::Sha256::new();
            h.update(s.directory.as_bytes());
            for n in &names {
                h.update(b"\0");
                h.update(n.as_bytes());
            }
            hex::encode(&h.finalize()[..12])
        };
        Ok(Manager {
            s,
            storage,
            answers,
            shared,
            observer,
            current: Mutex::new(None),
            id,
        })
    }

    /// The certificate to start with: the stored one when usable (an event either way),
    /// else a self-signed placeholder for the domains.
    pub fn initial(&self) -> Result<Arc<CertifiedKey>, String> {
        match self.storage.load(&self.s.domains) {
            Ok(Some(issued)) => {
                self.observer.event(
                    "load",
                    format!(
                        "{}: stored certificate {} for {} loaded",
                        self.s.name,
                        issued.serial,
                        self.s.domains.join(", ")
                    ),
                );
                self.observer.expires(Some(issued.not_after));
                let key = issued.key.clone();
                *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(issued);
                return Ok(key);
            }
            Ok(None) => {}
            Err(why) => self.observer.event(
                "fail",
                format!("{}: {why}; a new certificate will be ordered", self.s.name),
            ),
        }
        self.observer.event(
            "placeholder",
            format!(
                "{}: serving a self-signed certificate for {} until one is issued",
                self.s.name,
                self.s.domains.join(", ")
            ),
        );
        self.observer.expires(None);
        placeholder(&self.s.domains).map(Arc::new)
    }

    /// When the certificate in use is due for renewal (now for a placeholder).
    fn due(&self) -> SystemTime {
        match &*self.current.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(c) => c
                .not_after
                .checked_sub(self.s.renew_before)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            None => SystemTime::UNIX_EPOCH,
        }
    }

    fn current_not_after(&self) -> Option<SystemTime> {
        self.current
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|c| c.not_after)
    }

    /// Keeps the certificate fresh, forever. Call [`Manager::initial`] first.
    pub async fn run(self: Arc<Self>) {
        let mut failures = 0u32;
        loop {
            // Wait until due, plus up to a tenth of `renew_before` (at most ten minutes)
            // so that nodes started together do not all order at once.
            let due = self.due();
            if let Ok(wait) = due.duration_since(SystemTime::now()) {
                let spread = (self.s.renew_before / 10).min(Duration::from_secs(600));
                let wait = wait + spread.mul_f64(rand::random::<f64>());
                tokio::time::sleep(wait.min(MAX_SLEEP)).await;
                continue;
            }
            match self.attempt().await {
                Ok(()) => failures = 0,
                Err(why) => {
                    let delay = retry_delay(&why, self.s.retry_initial, self.s.retry_max, failures);
                    failures = failures.saturating_add(1);
                    self.observer.event(
                        "fail",
                        format!(
                            "{}: certificate for {} not obtained: {why}; next attempt in {:.1}s, the current certificate stays",
                            self.s.name,
                            self.s.domains.join(", "),
                            delay.as_secs_f64()
                        ),
                    );
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// One renewal: pick up what another node published, or take the lock and order.
    async fn attempt(&self) -> Result<(), String> {
        let Some(shared) = &self.shared else {
            return self.order_and_install().await;
        };
        loop {
            if self.pick_up(shared).await {
                return Ok(());
            }
            // Held for as long as an attempt may take, so no other node starts meanwhile.
            let ttl = LOCK_TTL.max(self.s.timeout + Duration::from_secs(60));
            match shared.lock(&self.id, ttl).await {
                shared::Lock::Held(token) => {
                    let r = self.order_and_install().await;
                    let issued = self
                        .current
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone();
                    if let (Ok(()), Some(c)) = (&r, issued) {
                        shared.publish(&self.id, &c.chain_pem, &c.key_pem).await;
                    }
                    shared.unlock(&self.id, &token).await;
                    return r;
                }
                // Another node orders: wait for its result (the lock expires if it died).
                shared::Lock::Busy => tokio::time::sleep(PICKUP_POLL).await,
                shared::Lock::Unavailable => {
                    log::warn!(
                        "{}: ACME lock unavailable (Redis), ordering alone",
                        self.s.name
                    );
                    return self.order_and_install().await;
                }
            }
        }
    }

    /// Installs a certificate another node published, if it is usable and lives longer
    /// than the one in use and is not itself due.
    async fn pick_up(&self, shared: &Shared) -> bool {
        let Some((chain, key)) = shared.published(&self.id).await else {
            return false;
        };
        let Ok(issued) = Issued::parse(&chain, &key, &self.s.domains) else {
            return false;
        };
        let fresher = self
            .current_not_after()
            .is_none_or(|n| issued.not_after > n);
        let not_due = issued
            .not_after
            .checked_sub(self.s.renew_before)
            .is_some_and(|d| d > SystemTime::now());
        if !fresher || !not_due {
            return false;
        }
        if let Err(e) = self.storage.save(&issued) {
            log::warn!("{}: {e}", self.s.name);
        }
        self.observer.event(
            "pickup",
            format!(
                "{}: certificate {} for {} installed from another node's order",
                self.s.name,
                issued.serial,
                self.s.domains.join(", ")
            ),
        );
        self.install(issued);
        true
    }

    fn install(&self, issued: Issued) {
        self.observer.install(issued.key.clone());
        self.observer.expires(Some(issued.not_after));
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(issued);
    }

    async fn order_and_install(&self) -> Result<(), String> {
        let renewing = self.current_not_after().is_some();
        let issued = match tokio::time::timeout(self.s.timeout, self.order()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(format!(
                    "no certificate within {}s",
                    self.s.timeout.as_secs()
                ))
            }
        };
        self.storage.save(&issued)?;
        self.observer.event(
            if renewing { "renew" } else { "issue" },
            format!(
                "{}: certificate {} for {} issued by {}, valid until {}",
                self.s.name,
                issued.serial,
                self.s.domains.join(", "),
                self.s.directory,
                humantime::format_rfc3339_seconds(issued.not_after)
            ),
        );
        self.install(issued);
        Ok(())
    }

    /// The stored account for this directory, or a new one (stored).
    async fn account(&self) -> Result<Account, String> {
        let path = self.storage.account_path();
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(stored) = serde_json::from_str::<StoredAccount>(&text) {
                if stored.directory == self.s.directory {
                    return self
                        .builder()?
                        .from_credentials(stored.credentials)
                        .await
                        .map_err(|e| format!("account: {}", describe(&e)));
                }
            }
        }
        let contact = self.s.email.as_ref().map(|e| format!("mailto:{e}"));
        let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
        let eab = self
            .s
            .eab
            .as_ref()
            .map(|(kid, key)| ExternalAccountKey::new(kid.clone(), key));
        let (account, credentials) = self
            .builder()?
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.s.directory.clone(),
                eab.as_ref(),
            )
            .await
            .map_err(|e| format!("new account: {}", describe(&e)))?;
        let stored = StoredAccount {
            directory: self.s.directory.clone(),
            credentials,
        };
        let text = serde_json::to_string(&stored).map_err(|e| e.to_string())?;
        store::write_private(&path, text.as_bytes())?;
        Ok(account)
    }

    fn builder(&self) -> Result<instant_acme::AccountBuilder, String> {
        match &self.s.ca {
            Some(ca) => Ok(Account::builder_with_http(Box::new(client_trusting(ca)?))),
            None => Account::builder().map_err(|e| format!("HTTP client: {}", describe(&e))),
        }
    }

    async fn order(&self) -> Result<Issued, String> {
        let ids: Vec<Identifier> = self
            .s
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let account = self.account().await?;
        let mut order = match account.new_order(&NewOrder::new(&ids)).await {
            // The server forgot the stored account (a test CA restarted, an account
            // deactivated elsewhere): start over with a new one, once.
            Err(instant_acme::Error::Api(p))
                if p.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:accountDoesNotExist") =>
            {
                let _ = std::fs::remove_file(self.storage.account_path());
                self.account().await?.new_order(&NewOrder::new(&ids)).await
            }
            other => other,
        }
        .map_err(|e| format!("new order: {}", describe(&e)))?;
        let kind = match self.s.challenge {
            ChallengeKind::Http01 => ChallengeType::Http01,
            ChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let (mut tokens, mut names) = (Vec::new(), Vec::new());
        let result = async {
            let mut authzs = order.authorizations();
            while let Some(a) = authzs.next().await {
                let mut a = a.map_err(|e| format!("authorization: {}", describe(&e)))?;
                match a.status {
                    AuthorizationStatus::Valid => continue,
                    AuthorizationStatus::Pending => {}
                    other => return Err(format!("authorization is {other:?}")),
                }
                let mut ch = a
                    .challenge(kind.clone())
                    .ok_or_else(|| format!("the server offers no {kind:?} challenge"))?;
                let ka = ch.key_authorization();
                let domain = ch.identifier().to_string();
                match self.s.challenge {
                    ChallengeKind::Http01 => {
                        self.answers.put_http01(&ch.token, ka.as_str()).await;
                        tokens.push(ch.token.clone());
                    }
                    ChallengeKind::TlsAlpn01 => {
                        self.answers
                            .put_tls_alpn01(&domain, ka.digest().as_ref())
                            .await?;
                        names.push(domain);
                    }
                }
                ch.set_ready()
                    .await
                    .map_err(|e| format!("challenge: {}", describe(&e)))?;
            }
            let poll = RetryPolicy::new()
                .initial_delay(Duration::from_millis(250))
                .backoff(1.5)
                .timeout(self.s.timeout);
            let status = order
                .poll_ready(&poll)
                .await
                .map_err(|e| format!("validation: {}", describe(&e)))?;
            if status != OrderStatus::Ready {
                return Err(format!(
                    "validation failed (order {status:?}){}",
                    order
                        .state()
                        .error
                        .as_ref()
                        .map(|p| format!(": {p}"))
                        .unwrap_or_default()
                ));
            }
            let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
            let mut params =
                rcgen::CertificateParams::new(self.s.domains.clone()).map_err(|e| e.to_string())?;
            params.distinguished_name = rcgen::DistinguishedName::new();
            let csr = params.serialize_request(&key).map_err(|e| e.to_string())?;
            order
                .finalize_csr(csr.der())
                .await
                .map_err(|e| format!("finalize: {}", describe(&e)))?;
            let chain = order
                .poll_certificate(&poll)
                .await
                .map_err(|e| format!("certificate: {}", describe(&e)))?;
            Issued::parse(&chain, &key.serialize_pem(), &self.s.domains)
                .map_err(|e| format!("issued {e}"))
        }
        .await;
        self.answers.forget(&tokens, &names);
        result
    }
}

#[derive(serde::Serialize, serde::Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: AccountCredentials,
}

/// An error of the ACME client as one line (the server's problem document when it sent one).
fn describe(e: &instant_acme::Error) -> String {
    match e {
        instant_acme::Error::Api(p) => {
            let mut s = p.to_string();
            for sp in &p.subproblems {
                s.push_str(&format!("; {sp}"));
            }
            s
        }
        other => other.to_string(),
    }
}

/// The delay after the `n`th consecutive failure: `initial` doubled `n` times, at most
/// `max`, then ±20% jitter.
pub fn backoff(initial: Duration, max: Duration, n: u32) -> Duration {
    let base = initial.saturating_mul(1u32 << n.min(20)).min(max);
    base.mul_f64(0.8 + 0.4 * rand::random::<f64>())
}

/// The delay before the next attempt after failure `why`: [`backoff`], except that a CA
/// that says it rate-limits us (RFC 8555 `rateLimited`) is left alone for `max`.
pub fn retry_delay(why: &str, initial: Duration, max: Duration, n: u32) -> Duration {
    if why.contains("urn:ietf:params:acme:error:rateLimited") {
        return backoff(max, max, 0);
    }
    backoff(initial, max, n)
}

/// A self-signed certificate for `domains`, served until the first is issued.
pub fn placeholder(domains: &[String]) -> Result<CertifiedKey, String> {
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut p = rcgen::CertificateParams::new(domains.to_vec()).map_err(|e| e.to_string())?;
    p.distinguished_name.push(
        rcgen::DnType::CommonName,
        "Rampart placeholder (ACME pending)",
    );
    let cert = p.self_signed(&key).map_err(|e| e.to_string())?;
    rampart_tls::certified_key_from_pem(
        cert.pem().as_bytes(),
        key.serialize_pem().as_bytes(),
        "placeholder certificate",
    )
    .map_err(|e| e.to_string())
}

/// An HTTP client for the ACME server that trusts the CAs in a PEM bundle only.
fn client_trusting(ca: &std::path::Path) -> Result<impl instant_acme::HttpClient, String> {
    let certs = rampart_tls::load_certs(ca).map_err(|e| e.to_string())?;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(c)
            .map_err(|e| format!("{}: unusable CA certificate: {e}", ca.display()))?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Ok(
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, instant_acme::BodyWrapper<bytes::Bytes>>(https),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_ceiling_with_jitter() {
        let (i, m) = (Duration::from_secs(10), Duration::from_secs(300));
        for _ in 0..100 {
            let d0 = backoff(i, m, 0);
            assert!(d0 >= Duration::from_secs(8) && d0 <= Duration::from_secs(12));
            let d2 = backoff(i, m, 2);
            assert!(d2 >= Duration::from_secs(32) && d2 <= Duration::from_secs(48));
            let big = backoff(i, m, 40);
            assert!(big >= Duration::from_secs(240) && big <= Duration::from_secs(360));
        }
    }

    #[test]
    fn a_rate_limited_client_waits_longest() {
        let (i, m) = (Duration::from_secs(60), Duration::from_secs(6 * 3600));
        let limited =
            "new order: API error: too many certificates (urn:ietf:params:acme:error:rateLimited)";
        assert!(retry_delay(limited, i, m, 0) >= m.mul_f64(0.8));
        assert!(retry_delay("new order: connection refused", i, m, 0) <= Duration::from_secs(72));
    }

    #[test]
    fn placeholders_name_the_domains() {
        let ck = placeholder(&["a.test".into(), "b.test".into()]).unwrap();
        assert_eq!(rampart_tls::dns_names(&ck.cert[0]), ["a.test", "b.test"]);
    }
}
