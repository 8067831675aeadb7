//! Consumers and their credentials; how credentials are read and checked; lockout; MFA.

use crate::units::HumanDuration;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Consumer {
    pub id: String,
    #[serde(default)]
    pub groups: Vec<String>,
    /// API keys, stored as SHA-256 hashes only (`rampart keygen` prints key and hash).
    #[serde(default)]
    pub api_keys: Vec<ApiKeyHash>,
    #[serde(default)]
    pub basic: Option<BasicCredential>,
    /// JWT / introspection subjects (the issuer's `consumer_claim` values) of this consumer.
    #[serde(default)]
    pub subjects: Vec<String>,
    /// Client certificates of this consumer (any one field must match).
    #[serde(default)]
    pub mtls: Vec<MtlsMatch>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ApiKeyHash {
    /// Hex SHA-256 of the key.
    pub sha256: String,
    /// RFC 3339 time after which the key is refused (rotation with overlap).
    #[serde(default)]
    pub expires: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BasicCredential {
    pub username: String,
    /// argon2id (`$argon2id$...`, from `rampart hash-password`) or bcrypt (`$2b$...`).
    pub password_hash: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct MtlsMatch {
    #[serde(default)]
    pub subject_cn: Option<String>,
    #[serde(default)]
    pub san: Option<String>,
    #[serde(default)]
    pub fingerprint_sha256: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct AuthSettings {
    #[serde(default)]
    pub api_key: ApiKeySettings,
    #[serde(default)]
    pub basic: BasicSettings,
    #[serde(default)]
    pub jwt: Vec<JwtIssuer>,
    #[serde(default)]
    pub introspection: Option<Introspection>,
    #[serde(default)]
    pub ldap: Option<Ldap>,
    #[serde(default)]
    pub lockout: LockoutSettings,
}

/// LDAP: Basic credentials checked by binding as the user; groups looked up in the directory.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Ldap {
    /// `ldap://host:389` (use `starttls: true`) or `ldaps://host:636`.
    pub url: String,
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
    /// `{dn}` is replaced by the escaped user DN, `{user}` by the escaped user name.
    #[serde(default = "default_group_filter")]
    pub group_filter: String,
    #[serde(default = "default_group_attr")]
    pub group_attr: String,
    /// How long a successful bind (and its groups) is reused.
    #[serde(default = "default_ldap_cache")]
    pub cache_ttl: HumanDuration,
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ApiKeySettings {
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct BasicSettings {
    /// The realm of `WWW-Authenticate` challenges.
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JwtIssuer {
    /// Expected `iss`; with `discovery: true` also the OIDC discovery base URL.
    pub issuer: String,
    /// Accepted `aud` values; empty = `aud` not checked.
    #[serde(default)]
    pub audiences: Vec<String>,
    /// Allowed algorithms for this issuer, e.g. [RS256]. `none` is never allowed.
    pub algorithms: Vec<String>,
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Find `jwks_uri` through `{issuer}/.well-known/openid-configuration`.
    #[serde(default)]
    pub discovery: bool,
    /// Static keys: HMAC secrets (write them as `${ENV}`) or PEM public key files.
    #[serde(default)]
    pub keys: Vec<JwtKey>,
    /// Claim naming the consumer (matched against consumers' `subjects`).
    #[serde(default = "default_sub")]
    pub consumer_claim: String,
    /// Accept valid tokens whose subject is no known consumer (the subject becomes the id).
    #[serde(default)]
    pub allow_unknown_subjects: bool,
    #[serde(default = "default_leeway")]
    pub leeway: HumanDuration,
    /// Periodic JWKS refresh.
    #[serde(default = "default_jwks_refresh")]
    pub jwks_refresh: HumanDuration,
    /// Minimum time between fetches caused by unknown `kid`s (garbage tokens cannot make
    /// Rampart hammer the IdP).
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct JwtKey {
    #[serde(default)]
    pub kid: Option<String>,
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub pem: Option<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Introspection {
    pub url: String,
    pub client_id: String,
    pub client_secret: String,
    #[serde(default = "default_introspection_ttl")]
    pub max_ttl: HumanDuration,
    #[serde(default = "default_sub")]
    pub consumer_claim: String,
    #[serde(default)]
    pub allow_unknown_subjects: bool,
}

// `url` and the client credentials are required, so `Introspection` has no `Default`.
fn default_introspection_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct LockoutSettings {
    /// Failures for one identity (user name, key prefix, token subject) within `window`.
    pub max_failures: u32,
    /// Failures from one client IP within `window`.
    pub max_failures_per_ip: u32,
    pub window: HumanDuration,
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
    #[serde(default)]
    pub mfa: Option<MfaRequirement>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum AuthMethod {
    ApiKey,
    Basic,
    Jwt,
    Introspection,
    Mtls,
    Ldap,
}

impl AuthMethod {
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
    #[serde(default)]
    pub acr_order: Vec<String>,
}
