//! Listeners (TLS, mTLS, HSTS) and the admin listener.

use super::NetworkPolicy;
use crate::units::HumanDuration;
use serde::Deserialize;

/// One address clients connect to, plain HTTP or HTTPS.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Listener {
    /// Unique name, used in logs and error messages.
    pub name: String,
    /// `IP:port` to bind, e.g. `0.0.0.0:8080` or `[::]:443`.
    pub address: String,
    /// Present: this listener speaks HTTPS only (TLS 1.2/1.3, ALPN h2 + http/1.1).
    #[serde(default)]
    pub tls: Option<ListenerTls>,
    /// On a plain listener: answer every request with 308 to the https URL.
    #[serde(default)]
    pub redirect_https: bool,
    /// Port in the redirect URL; default: the first TLS listener's port.
    #[serde(default)]
    pub https_port: Option<u16>,
    /// Strict-Transport-Security on responses of this (TLS) listener.
    #[serde(default)]
    pub hsts: Option<Hsts>,
    /// Open connections allowed from one client IP; more are refused at once.
    #[serde(default)]
    pub max_connections_per_ip: Option<u32>,
    /// Open connections on this listener at most; more are refused at once (503 on plain
    /// HTTP, closed on TLS).
    #[serde(default)]
    pub max_connections: Option<u32>,
    /// Connections start with a PROXY protocol header (v1 or v2, as HAProxy's `send-proxy`
    /// and `send-proxy-v2` write it) naming the client; a connection without one is
    /// dropped. Only peers in `server.trusted_proxies` may send it.
    #[serde(default)]
    pub proxy_protocol: bool,
    /// Which client networks this listener admits (`network.lists` names). Without
    /// trusted proxies, refused peers are dropped at accept, before TLS.
    #[serde(default)]
    pub network: Option<NetworkPolicy>,
}

/// A listener's TLS: its certificates and optional client certificate verification.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ListenerTls {
    /// The first certificate is also the default for clients without (or with unknown) SNI.
    /// May be empty when `acme` provides the certificate.
    #[serde(default)]
    pub certificates: Vec<CertificateFiles>,
    /// Verify client certificates (mTLS); routes and `mtls` auth use the verified identity.
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
    /// Obtain and renew a certificate from an ACME server (RFC 8555), e.g. Let's Encrypt.
    #[serde(default)]
    pub acme: Option<Acme>,
}

/// `tls.acme`: a certificate for `domains` from an ACME server, renewed before it expires.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Acme {
    /// The server's directory URL (https), e.g.
    /// `https://acme-v02.api.letsencrypt.org/directory`.
    pub directory: String,
    /// Contact address for the account (expiry notices from the CA).
    #[serde(default)]
    pub email: Option<String>,
    /// The names on the certificate (no wildcards: they need DNS-01).
    pub domains: Vec<String>,
    /// `http-01` (default; needs a plain listener the CA reaches on port 80) or
    /// `tls-alpn-01` (answered on this listener, port 443).
    #[serde(default)]
    pub challenge: AcmeChallenge,
    /// Directory for the account and certificates (created 0700; keys are 0600).
    pub storage: String,
    /// Renew when less than this is left of the certificate's life (default 30d).
    #[serde(default = "thirty_days")]
    pub renew_before: HumanDuration,
    /// PEM bundle of CAs that sign the ACME server's HTTPS certificate (a private ACME
    /// server); default: the system's roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// External account binding, for CAs that require it.
    #[serde(default)]
    pub eab: Option<AcmeEab>,
    /// Redis shared by the nodes: one node orders at a time, all pick up its certificate,
    /// any node answers a challenge.
    #[serde(default)]
    pub redis: Option<String>,
    /// First delay after a failed attempt; doubles (with jitter) up to `retry_max`.
    #[serde(default = "one_minute")]
    pub retry_initial: HumanDuration,
    /// Longest delay between attempts (default 6h).
    #[serde(default = "six_hours")]
    pub retry_max: HumanDuration,
    /// Longest one attempt may take (default 5m).
    #[serde(default = "five_minutes")]
    pub timeout: HumanDuration,
}

fn thirty_days() -> HumanDuration {
    HumanDuration::from_secs(30 * 24 * 3600)
}
fn one_minute() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn six_hours() -> HumanDuration {
    HumanDuration::from_secs(6 * 3600)
}
fn five_minutes() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// `tls.acme.eab`: the key id and MAC key the CA gave for external account binding.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AcmeEab {
    /// The key identifier.
    pub kid: String,
    /// The MAC key, base64url as CAs hand it out (use `${ENV}`).
    pub hmac_key: String,
}

impl std::fmt::Debug for AcmeEab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AcmeEab").field("kid", &self.kid).finish()
    }
}

/// How an ACME server checks that Rampart controls a domain.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
pub enum AcmeChallenge {
    /// `http-01`: a token under `/.well-known/acme-challenge/` on port 80.
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// `tls-alpn-01`: a special certificate for `acme-tls/1` handshakes on port 443.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

/// One certificate of a TLS listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CertificateFiles {
    /// PEM file of the certificate chain, leaf first.
    pub cert: String,
    /// PEM file of its private key (PKCS#8, PKCS#1 RSA or SEC1 EC).
    pub key: String,
    /// Host names served with this certificate; default: the names in the certificate.
    #[serde(default)]
    pub hosts: Vec<String>,
}

/// Client certificate verification (mTLS) on a TLS listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClientAuth {
    /// PEM bundle of the CAs client certificates must chain to.
    pub ca: String,
    /// `required` (default) or `optional`.
    #[serde(default)]
    pub mode: ClientAuthMode,
    /// PEM file of certificate revocation lists; revoked client certificates are refused.
    #[serde(default)]
    pub crl: Option<String>,
}

/// Whether a TLS listener's clients must present a certificate.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    /// The handshake fails without a valid client certificate.
    #[default]
    Required,
    /// Clients without a certificate are admitted (routes decide); one that is presented
    /// must still verify.
    Optional,
}

/// The Strict-Transport-Security header a TLS listener sends.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Hsts {
    /// `max-age` (default one year).
    pub max_age: HumanDuration,
    /// Adds `includeSubDomains`.
    pub include_subdomains: bool,
    /// Adds `preload`.
    pub preload: bool,
}

impl Default for Hsts {
    fn default() -> Self {
        Hsts {
            // One year: the minimum the HSTS preload list accepts.
            max_age: HumanDuration::from_secs(365 * 24 * 3600),
            include_subdomains: false,
            preload: false,
        }
    }
}

impl Hsts {
    /// The header's value, e.g. `max-age=31536000; includeSubDomains`.
    pub fn header_value(&self) -> String {
        let mut v = format!("max-age={}", self.max_age.0.as_secs());
        if self.include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.preload {
            v.push_str("; preload");
        }
        v
    }
}

/// TLS to an upstream. The name is required: without SNI nothing can be verified.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct UpstreamTls {
    /// The server name sent, and verified against the upstream's certificate.
    pub sni: String,
    /// CA bundle to verify the upstream; default: the system roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// Check that the certificate is valid for `sni` (default true); the chain is always verified.
    #[serde(default = "yes")]
    pub verify_hostname: bool,
    /// PEM certificate chain presented to the upstream (mTLS); needs `client_key`.
    #[serde(default)]
    pub client_cert: Option<String>,
    /// PEM private key of `client_cert`.
    #[serde(default)]
    pub client_key: Option<String>,
}

// `sni` is required, so `UpstreamTls` has no `Default`: its defaulted key needs this.
fn yes() -> bool {
    true
}

/// `admin:`, the admin listener: health, metrics and the admin API.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct Admin {
    /// Where it listens. Loopback by default so nothing on it faces the network; a
    /// non-loopback address needs `tokens`.
    pub address: String,
    /// Who may call the admin API, by token (sent as `Authorization: Bearer`). Without
    /// tokens the API answers 401 to everything but `/healthz` and `/readyz`.
    pub tokens: Vec<AdminToken>,
    /// `public` (default) or `authenticated` (any role) for `/metrics`.
    pub metrics: MetricsAccess,
    /// Repeated bad tokens from one address lock that address out.
    pub lockout: AdminLockout,
    /// Write a config changed through the API back to the config file (atomically), so a
    /// restart keeps it. Off, changes live in memory until the next reload of the file.
    pub persist: bool,
    /// How many earlier config versions the API keeps (`GET /config/history`).
    pub history: usize,
    /// The largest request body the API reads (a whole config).
    pub max_body: crate::ByteSize,
    /// HTTPS for the admin listener (certificates, and `client_auth` to verify clients'
    /// certificates), like a listener's `tls`.
    pub tls: Option<ListenerTls>,
    /// Who may call the admin API by client certificate (needs `tls.client_auth`).
    pub clients: Vec<AdminClient>,
    /// The live dashboard at `/dashboard` (default on): its page is public (it holds no
    /// data), its data stream needs a token like the rest of the API.
    pub dashboard: bool,
}

/// An admin API caller known by its verified client certificate.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AdminClient {
    /// Who this is, in events and the access log.
    pub name: String,
    /// What it may do.
    pub role: AdminRole,
    /// The certificate's subject common name, exactly.
    #[serde(default)]
    pub subject_cn: Option<String>,
    /// One of its DNS or URI subject alternative names, exactly.
    #[serde(default)]
    pub san: Option<String>,
    /// Hex SHA-256 of the DER certificate (any case).
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: "127.0.0.1:9901".into(),
            tokens: Vec::new(),
            metrics: MetricsAccess::Public,
            lockout: AdminLockout::default(),
            persist: true,
            history: 20,
            max_body: crate::ByteSize(8 * 1024 * 1024),
            tls: None,
            clients: Vec::new(),
            dashboard: true,
        }
    }
}

/// One admin API token, by hash (`rampart keygen` prints a token and its hash).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AdminToken {
    /// Who this is, in events and the access log (never the token).
    pub name: String,
    /// What the token may do.
    pub role: AdminRole,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// RFC 3339 time after which the token is refused.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Admin API roles, each including the one before.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Reads everything, secrets redacted.
    Viewer,
    /// Also bans and unbans, reloads certificates.
    Operator,
    /// Also changes the config.
    Admin,
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum MetricsAccess {
    /// Anyone who reaches the admin listener.
    #[default]
    Public,
    /// Any admin token.
    Authenticated,
}

/// `admin.lockout`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AdminLockout {
    /// Bad or missing tokens from one address within `window` before it is locked out.
    pub max_failures: u32,
    /// The window the failures are counted in.
    pub window: crate::HumanDuration,
    /// How long the address is refused (429) once locked out.
    pub duration: crate::HumanDuration,
}

impl Default for AdminLockout {
    fn default() -> Self {
        AdminLockout {
            max_failures: 10,
            window: crate::HumanDuration(std::time::Duration::from_secs(60)),
            duration: crate::HumanDuration(std::time::Duration::from_secs(300)),
        }
    }
}
