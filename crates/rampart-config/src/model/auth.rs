//! Consumers and their credentials; how credentials are read and checked; lockout; MFA.

use crate::units::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;

/// A caller known to Rampart (an application or a person) and its credentials.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Consumer {
    /// Unique id, the identity seen by authorization, rate limits, logs and the upstream.
    pub id: String,
    /// Groups for authorization (`authorize.groups`, Cedar).
    #[serde(default)]
    pub groups: Vec<String>,
    /// API keys, stored as SHA-256 hashes only (`rampart keygen` prints key and hash).
    #[serde(default)]
    pub api_keys: Vec<ApiKeyHash>,
    /// User name and password for Basic authentication.
    #[serde(default)]
    pub basic: Option<BasicCredential>,
    /// JWT / introspection subjects (the issuer's `consumer_claim` values) of this consumer.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Client certificates of this consumer (any one field must match).
    #[serde(default)]
    pub mtls: Vec<MtlsMatch>,
}

/// One API key of a consumer, by hash.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiKeyHash {
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// RFC 3339 time after which the key is refused (rotation with overlap).
    #[serde(default)]
    pub expires: Option<String>,
}

/// A consumer's user name and password for Basic authentication.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BasicCredential {
    /// The user name sent in Basic credentials.
    pub username: String,
    /// argon2id (`$argon2id$...`, from `rampart hash-password`) or bcrypt (`$2b$...`).
    pub password_hash: String,
}

/// Which client certificates identify a consumer; any one set field that matches is enough.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct MtlsMatch {
    /// The certificate's subject common name, exactly.
    #[serde(default)]
    pub subject_cn: Option<String>,
    /// One of the certificate's DNS or URI subject alternative names, exactly.
    #[serde(default)]
    pub san: Option<String>,
    /// Hex SHA-256 of the DER certificate (any case).
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
}

/// `auth:`, how each method reads and checks credentials (shared by all routes).
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct AuthSettings {
    /// API keys: header and optional query parameter.
    #[serde(default)]
    pub api_key: ApiKeySettings,
    /// Basic: realm and optional htpasswd file.
    #[serde(default)]
    pub basic: BasicSettings,
    /// Trusted JWT issuers; a token is checked against the issuer its `iss` names.
    #[serde(default)]
    pub jwt: Vec<JwtIssuer>,
    /// Token introspection endpoint, for opaque tokens.
    #[serde(default)]
    pub introspection: Option<Introspection>,
    /// LDAP directory for the `ldap` method.
    #[serde(default)]
    pub ldap: Option<Ldap>,
    /// Brute-force lockout after repeated failures.
    #[serde(default)]
    pub lockout: LockoutSettings,
}

/// LDAP: Basic credentials checked by binding as the user; groups looked up in the directory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Ldap {
    /// `ldap://host:389` (use `starttls: true`) or `ldaps://host:636`.
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS.
    #[serde(default)]
    pub starttls: bool,
    /// CA bundle for LDAPS / StartTLS; default: the system roots.
    #[serde(default)]
    pub ca: Option<String>,
    /// The user's DN; `{user}` is replaced by the escaped user name.
    pub bind_dn: String,
    /// Where groups live; empty = no group lookup.
    #[serde(default)]
    pub group_base: Option<String>,
    /// Filter finding the user's groups (default `(member={dn})`): `{dn}` is replaced by the
    /// escaped user DN, `{user}` by the escaped user name.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    /// Attribute of the group entries found whose values are the group names (default `cn`).
    #[serde(default = "default_group_attr")]
    pub group_attr: String,
    /// How long a successful bind (and its groups) is reused (default 60 s).
    #[serde(default = "default_ldap_cache")]
    pub cache_ttl: HumanDuration,
    /// Connect timeout, and limit on the whole bind and group search (default 3 s).
    #[serde(default = "default_ldap_timeout")]
    pub timeout: HumanDuration,
}

// `url` and `bind_dn` are required, so `Ldap` has no `Default`: its defaulted keys need these.
fn default_group_filter() -> String {
    "(member={dn})".into()
}
fn default_group_attr() -> String {
    "cn".into()
}
fn default_ldap_cache() -> HumanDuration {
    HumanDuration::from_secs(60)
}
fn default_ldap_timeout() -> HumanDuration {
    HumanDuration::from_secs(3)
}

/// Where API keys are read from.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ApiKeySettings {
    /// The request header carrying the key (default `X-API-Key`).
    pub header: String,
    /// Also accept the key from this query parameter (off by default: URLs end up in logs).
    pub query: Option<String>,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        ApiKeySettings {
            header: "X-API-Key".into(),
            query: None,
        }
    }
}

/// Basic authentication settings.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct BasicSettings {
    /// The realm of `WWW-Authenticate` challenges (default `rampart`).
    pub realm: String,
    /// An htpasswd file (bcrypt or argon2 hashes); its users are consumers named after them.
    pub htpasswd: Option<String>,
}

impl Default for BasicSettings {
    fn default() -> Self {
        BasicSettings {
            realm: "rampart".into(),
            htpasswd: None,
        }
    }
}

/// One trusted JWT / OpenID Connect issuer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JwtIssuer {
    /// Expected `iss`; with `discovery: true` also the OIDC discovery base URL.
    pub issuer: String,
    /// Accepted `aud` values; empty = `aud` not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Allowed algorithms for this issuer, e.g. [RS256]. `none` is never allowed.
    pub algorithms: Vec<String>,
    /// URL of the issuer's JWKS; takes precedence over discovery.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find `jwks_uri` through `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// Static keys: HMAC secrets (write them as `${ENV}`) or PEM public key files.
    #[serde(default)]
    pub keys: Vec<JwtKey>,
    /// Claim naming the consumer (matched against consumers' `subjects`; default `sub`).
    #[serde(default = "default_sub")]
    pub consumer_claim: String,
    /// Accept valid tokens whose subject is no known consumer (the subject becomes the id).
    #[serde(default)]
    pub allow_unknown_subjects: bool,
    /// Clock skew tolerated on `exp` and `nbf` (default 30 s).
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Periodic JWKS refresh (default 10 min).
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Minimum time between fetches caused by unknown `kid`s (garbage tokens cannot make
    /// Rampart hammer the IdP; default 10 s).
    #[serde(default = "default_jwks_min")]
    pub jwks_min_interval: HumanDuration,
    /// Claims forwarded to the upstream as headers: claim name → header name.
    #[serde(default)]
    pub claims_to_headers: BTreeMap<String, String>,
}

// `issuer` and `algorithms` are required, so `JwtIssuer` has no `Default`: its defaulted keys
// need these (`default_sub` also serves `Introspection`).
fn default_sub() -> String {
    "sub".into()
}
fn default_leeway() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_jwks_refresh() -> HumanDuration {
    HumanDuration::from_secs(600)
}
fn default_jwks_min() -> HumanDuration {
    HumanDuration::from_secs(10)
}

/// A static JWT verification key: exactly one of `secret` and `pem`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JwtKey {
    /// The token header `kid` this key is for; without it, tried for any `kid`.
    #[serde(default)]
    pub kid: Option<String>,
    /// HMAC secret (write it as `${ENV}`).
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM file of an RSA, EC or Ed25519 public key.
    #[serde(default)]
    pub pem: Option<String>,
}

/// OAuth 2.0 token introspection (RFC 7662) for opaque bearer tokens.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Introspection {
    /// The introspection endpoint.
    pub url: String,
    /// Client id Rampart authenticates with to the endpoint (HTTP Basic).
    pub client_id: String,
    /// Its secret (write it as `${ENV}`).
    pub client_secret: String,
    /// Longest an active result is cached, even if the token's `exp` is later (default 5 min).
    #[serde(default = "default_introspection_ttl")]
    pub max_ttl: HumanDuration,
    /// Claim naming the consumer (matched against consumers' `subjects`; default `sub`).
    #[serde(default = "default_sub")]
    pub consumer_claim: String,
    /// Accept active tokens whose subject is no known consumer (the subject becomes the id).
    #[serde(default)]
    pub allow_unknown_subjects: bool,
}

// `url` and the client credentials are required, so `Introspection` has no `Default`.
fn default_introspection_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}

/// Brute-force lockout: too many failures within `window` lock out for `duration`, even
/// with the right secret.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct LockoutSettings {
    /// Failed passwords (Basic, LDAP) for one user name from one client IP within `window`
    /// (default 5). Other methods count per client IP only: an unverified key prefix or token
    /// subject as the key would let anyone lock a victim out.
    pub max_failures: u32,
    /// Failures from one client IP within `window` (default 50).
    pub max_failures_per_ip: u32,
    /// Period over which failures are counted (default 5 min).
    pub window: HumanDuration,
    /// How long a lockout lasts (default 15 min).
    pub duration: HumanDuration,
    /// Share counters across gateway nodes through this Redis (e.g. redis://127.0.0.1:6379).
    pub redis: Option<String>,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            max_failures: 5,
            // Higher than per identity: many users may share one IP (NAT, proxies).
            max_failures_per_ip: 50,
            window: HumanDuration::from_secs(300),
            duration: HumanDuration::from_secs(900),
            redis: None,
        }
    }
}

/// A route's authentication: which methods it accepts.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RouteAuth {
    /// Any listed method may succeed.
    pub methods: Vec<AuthMethod>,
    /// Anonymous requests pass (credentials, when sent, must still be valid).
    #[serde(default)]
    pub optional: bool,
    /// Forward Authorization / the API-key header upstream (off: they are removed).
    #[serde(default)]
    pub forward_credentials: bool,
    /// Step-up requirements on the token's `amr` / `acr` (needs `jwt` or `introspection`).
    #[serde(default)]
    pub mfa: Option<MfaRequirement>,
}

/// An authentication method, as named in `routes[].auth.methods`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    /// An API key, from the header (or query parameter) of `auth.api_key`.
    ApiKey,
    /// Basic credentials checked against consumers' `basic` and `auth.basic.htpasswd`.
    Basic,
    /// A bearer JWT from one of `auth.jwt`.
    Jwt,
    /// A bearer token checked at `auth.introspection`.
    Introspection,
    /// The verified client certificate, matched against consumers' `mtls`.
    Mtls,
    /// Basic credentials checked by binding to `auth.ldap`.
    Ldap,
}

impl AuthMethod {
    /// The name used in the config (`api_key`, `basic`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Basic => "basic",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Introspection => "introspection",
            AuthMethod::Mtls => "mtls",
            AuthMethod::Ldap => "ldap",
        }
    }
}

/// Step-up requirements on token claims (RFC 9470).
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct MfaRequirement {
    /// Every value must be in the token's `amr`.
    #[serde(default)]
    pub amr: Vec<String>,
    /// Minimum `acr`: compared by position in `acr_order` when given, else numerically.
    #[serde(default)]
    pub acr_min: Option<String>,
    /// `acr` values from weakest to strongest, for `acr_min`.
    #[serde(default)]
    pub acr_order: Vec<String>,
}
