//! The configuration shape. Field names are the YAML contract; extend, never rename.

use crate::units::{ByteSize, HumanDuration};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Config {
    pub listeners: Vec<Listener>,
    #[serde(default)]
    pub admin: Admin,
    #[serde(default)]
    pub upstreams: BTreeMap<String, Upstream>,
    #[serde(default)]
    pub routes: Vec<Route>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub access_log: AccessLog,
    #[serde(default)]
    pub server: ServerSettings,
    /// Who may call: applications or people, with their credentials.
    #[serde(default)]
    pub consumers: Vec<Consumer>,
    /// How credentials are read and checked (shared by all routes).
    #[serde(default)]
    pub auth: AuthSettings,
    /// Routes with `auth` but no `authorize`: `allow` any authenticated consumer, or `deny`.
    #[serde(default)]
    pub default_authorization: DefaultAuthorization,
    /// Cedar policies (and optional entities and schema) that routes use with `cedar: true`.
    #[serde(default)]
    pub cedar: Option<CedarFiles>,
    /// Rate limits for routes that do not set their own.
    #[serde(default)]
    pub rate_limit: Vec<RateLimit>,
    /// Shared limiter state for `backend: redis` (e.g. redis://127.0.0.1:6379).
    #[serde(default)]
    pub redis: Option<String>,
    /// The security event stream (for SIEMs).
    #[serde(default)]
    pub events: EventsConfig,
    /// The web application firewall: SecLang rules (e.g. the OWASP CRS) for every route
    /// unless a route turns it off.
    #[serde(default)]
    pub waf: Option<WafConfig>,
    /// How requests are made unambiguous before any stage decides on them.
    #[serde(default)]
    pub requests: RequestHygiene,
}

/// Request normalisation: what every stage and the upstream agree a request says.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RequestHygiene {
    /// `%2F` in a path: `reject` (default) or `keep` (routed as part of one segment; only
    /// for backends that do not decode it into a separator).
    #[serde(default)]
    pub encoded_slash: KeepOrReject,
    /// `\` or `%5C` in a path.
    #[serde(default)]
    pub backslash: KeepOrReject,
    /// `;` path parameters.
    #[serde(default)]
    pub path_parameters: KeepOrReject,
    /// Merge runs of `/` (as nginx does by default).
    #[serde(default = "yes")]
    pub merge_slashes: bool,
    /// Header names with `_`: `drop` (default, as nginx does), `reject` (400) or `keep`.
    /// WSGI/CGI backends fold `_` and `-` alike, so `X_Consumer_Id` would pass as
    /// `X-Consumer-Id`.
    #[serde(default)]
    pub underscore_headers: UnderscoreHeaders,
    /// Names with `_` forwarded as sent despite `underscore_headers` (any case).
    #[serde(default)]
    pub allow_underscore_headers: Vec<String>,
}

impl Default for RequestHygiene {
    fn default() -> Self {
        RequestHygiene {
            encoded_slash: KeepOrReject::Reject,
            backslash: KeepOrReject::Reject,
            path_parameters: KeepOrReject::Reject,
            merge_slashes: true,
            underscore_headers: UnderscoreHeaders::Drop,
            allow_underscore_headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeepOrReject {
    #[default]
    Reject,
    Keep,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoreHeaders {
    #[default]
    Drop,
    Reject,
    Keep,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WafConfig {
    /// Rule files, loaded in order; each entry may be a glob (matches sorted by name), e.g.
    /// `crs/crs-setup.conf` then `crs/rules/*.conf`.
    #[serde(default)]
    pub rules: Vec<String>,
    /// SecLang rules written inline, loaded after the files.
    #[serde(default)]
    pub custom_rules: Option<String>,
    /// Where `@pmFromFile` / `@ipMatchFromFile` data files are found (default: the directory
    /// of the last rule file).
    #[serde(default)]
    pub data_dir: Option<String>,
    #[serde(default)]
    pub mode: WafMode,
    /// CRS paranoia level 1–4 (the `tx.blocking_paranoia_level` CRS reads).
    #[serde(default = "default_paranoia")]
    pub paranoia: u8,
    #[serde(default)]
    pub anomaly_threshold: AnomalyThreshold,
    /// How much of a request body is buffered and inspected before anything goes upstream.
    #[serde(default = "default_waf_body")]
    pub request_body_limit: ByteSize,
    /// Past the limit: `reject` (413) or `process_partial` (inspect the first part, pass the
    /// rest uninspected), as SecRequestBodyLimitAction.
    #[serde(default)]
    pub request_body_limit_action: BodyLimitAction,
    /// Inspect response bodies (phase 4) of these types, up to `response_body_limit`.
    #[serde(default)]
    pub inspect_response_body: bool,
    #[serde(default = "default_waf_response_body")]
    pub response_body_limit: ByteSize,
    #[serde(default = "default_waf_mime_types")]
    pub response_mime_types: Vec<String>,
    /// The status a blocked request gets.
    #[serde(default = "default_waf_status")]
    pub status: u16,
    /// In block mode, a body the WAF could not parse (invalid JSON, XML or multipart, an
    /// unknown charset: `REQBODY_ERROR`) is refused with 400, as ModSecurity's recommended
    /// rule 200002 does: rules cannot judge what they cannot read, the backend can.
    #[serde(default = "yes")]
    pub reject_unparsable_body: bool,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum WafMode {
    /// Refuse requests the rules block.
    #[default]
    Block,
    /// Report matches as events, block nothing (SecRuleEngine DetectionOnly).
    Detect,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BodyLimitAction {
    #[default]
    Reject,
    ProcessPartial,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AnomalyThreshold {
    #[serde(default = "default_inbound")]
    pub inbound: u32,
    #[serde(default = "default_outbound")]
    pub outbound: u32,
}

impl Default for AnomalyThreshold {
    fn default() -> Self {
        AnomalyThreshold {
            inbound: default_inbound(),
            outbound: default_outbound(),
        }
    }
}

fn default_paranoia() -> u8 {
    1
}
fn default_inbound() -> u32 {
    5
}
fn default_outbound() -> u32 {
    4
}
/// Pingora can hand at most 64 KiB of pre-read body to the upstream (its retry buffer).
pub const WAF_MAX_BODY_LIMIT: u64 = 64 * 1024;
fn default_waf_body() -> ByteSize {
    ByteSize(WAF_MAX_BODY_LIMIT)
}
fn default_waf_response_body() -> ByteSize {
    ByteSize(512 * 1024)
}
fn default_waf_mime_types() -> Vec<String> {
    ["text/plain", "text/html", "text/xml", "application/json"]
        .map(String::from)
        .to_vec()
}
fn default_waf_status() -> u16 {
    403
}

/// A route's WAF settings: on by default when a top-level `waf` exists.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RouteWaf {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default)]
    pub mode: Option<WafMode>,
    #[serde(default)]
    pub paranoia: Option<u8>,
    /// Rules this route does not run: an id (`942100`), an id range (`"942100-942199"`),
    /// a tag (`"tag:attack-sqli"`) or a target of one rule (`"942100;ARGS:q"`).
    #[serde(default)]
    pub exclusions: Vec<WafExclusion>,
}

fn yes() -> bool {
    true
}

/// One exclusion as written (a number or a string); parsed by [`WafExclusion::parse`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum WafExclusion {
    Id(u64),
    Text(String),
}

#[derive(Debug, Clone, PartialEq)]
pub enum ParsedExclusion {
    Ids(u64, u64),
    Tag(String),
    Target(u64, String),
}

impl WafExclusion {
    pub fn parse(&self) -> Result<ParsedExclusion, String> {
        let s = match self {
            WafExclusion::Id(n) => return Ok(ParsedExclusion::Ids(*n, *n)),
            WafExclusion::Text(s) => s.trim(),
        };
        let id = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("{t:?} is not a rule id"))
        };
        if let Some(tag) = s.strip_prefix("tag:") {
            if tag.trim().is_empty() {
                return Err("tag: needs a tag name".into());
            }
            return Ok(ParsedExclusion::Tag(tag.trim().to_string()));
        }
        if let Some((rule, target)) = s.split_once(';') {
            if target.trim().is_empty() {
                return Err(format!("{s:?}: the target after ';' is empty"));
            }
            return Ok(ParsedExclusion::Target(
                id(rule)?,
                target.trim().to_string(),
            ));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (id(a)?, id(b)?);
            if a > b {
                return Err(format!("{s:?}: the range is reversed"));
            }
            return Ok(ParsedExclusion::Ids(a, b));
        }
        id(s).map(|n| ParsedExclusion::Ids(n, n)).map_err(|_| {
            format!("{s:?} is not a rule id, an id range (a-b), tag:NAME or ID;TARGET")
        })
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct EventsConfig {
    /// JSON lines, one per request on which a security stage decided something.
    #[serde(default)]
    pub file: Option<String>,
    #[serde(default)]
    pub stdout: bool,
    #[serde(default)]
    pub syslog: Option<SyslogSink>,
    #[serde(default)]
    pub webhook: Option<WebhookSink>,
    /// Query parameters whose values are replaced by `REDACTED` in events and logs (any case,
    /// also when their names are percent-encoded), beyond the API-key parameter.
    #[serde(default = "default_redact")]
    pub redact_query: Vec<String>,
    /// Headers whose values never appear in events (a WAF match on them is reported
    /// without its data), beyond the API-key header.
    #[serde(default = "default_redact_headers")]
    pub redact_headers: Vec<String>,
}

fn default_redact_headers() -> Vec<String> {
    [
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn default_redact() -> Vec<String> {
    [
        "access_token",
        "id_token",
        "refresh_token",
        "token",
        "api_key",
        "apikey",
        "key",
        "password",
        "passwd",
        "secret",
        "client_secret",
        "code",
        "session",
        "sig",
        "signature",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct SyslogSink {
    pub address: String,
    /// `udp` (default) or `tcp` (RFC 6587 octet counting).
    #[serde(default = "default_udp")]
    pub protocol: String,
    /// `json` (default) or `cef`.
    #[serde(default = "default_json")]
    pub format: String,
}

fn default_udp() -> String {
    "udp".into()
}
fn default_json() -> String {
    "json".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct WebhookSink {
    pub url: String,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_flush")]
    pub flush_interval: HumanDuration,
    /// Events held while the webhook is slow or down; beyond, they are dropped and counted.
    #[serde(default = "default_buffer")]
    pub max_buffer: usize,
    #[serde(default = "default_retries_webhook")]
    pub max_retries: u32,
}

fn default_batch() -> usize {
    100
}
fn default_flush() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_buffer() -> usize {
    10_000
}
fn default_retries_webhook() -> u32 {
    3
}

/// One limit: a rate (GCRA, exact per request) or a long-period quota.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct RateLimit {
    /// `client_ip`, `consumer`, `route`, `header:NAME`, `claim:NAME`, or a list of them.
    #[serde(default = "default_limit_key")]
    pub key: LimitKey,
    /// `100/s`, `5000/min`, `10/h`.
    #[serde(default)]
    pub rate: Option<String>,
    /// Requests allowed at once (default: the rate's count).
    #[serde(default)]
    pub burst: Option<u64>,
    /// `10000/day`, `1M/month` (30 days): fixed windows; survive restarts with redis.
    #[serde(default)]
    pub quota: Option<String>,
    #[serde(default)]
    pub mode: LimitMode,
    /// In `delay` mode, the longest a request is held before it is rejected.
    #[serde(default = "default_max_delay")]
    pub max_delay: HumanDuration,
    #[serde(default)]
    pub backend: LimitBackend,
    #[serde(default)]
    pub on_backend_error: OnBackendError,
}

fn default_limit_key() -> LimitKey {
    LimitKey::One("client_ip".into())
}
fn default_max_delay() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum LimitKey {
    One(String),
    Many(Vec<String>),
}

impl LimitKey {
    pub fn parts(&self) -> Vec<&str> {
        match self {
            LimitKey::One(s) => vec![s.as_str()],
            LimitKey::Many(v) => v.iter().map(|s| s.as_str()).collect(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    #[default]
    Reject,
    Delay,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LimitBackend {
    #[default]
    Local,
    Redis,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnBackendError {
    Allow,
    Deny,
    /// Fall back to this node's local limiter (default).
    #[default]
    Local,
}

/// In-flight request limit.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Concurrency {
    pub limit: u32,
    /// `route` (default) or `consumer` (one budget per consumer on this route).
    #[serde(default = "default_conc_key")]
    pub key: String,
}

fn default_conc_key() -> String {
    "route".into()
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAuthorization {
    #[default]
    Allow,
    Deny,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CedarFiles {
    pub policies: String,
    #[serde(default)]
    pub entities: Option<String>,
    /// A Cedar schema (`.cedarschema`); when given, policies are validated against it.
    #[serde(default)]
    pub schema: Option<String>,
}

/// Per-route authorization: every listed condition must hold; deny lists win.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Authorize {
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub consumers: Vec<String>,
    #[serde(default)]
    pub deny_groups: Vec<String>,
    #[serde(default)]
    pub deny_consumers: Vec<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
    /// Per-operation rules: the first whose method and path match applies (in addition to
    /// the route-level conditions); a request matching none is denied.
    #[serde(default)]
    pub operations: Vec<Operation>,
    /// Also require the Cedar policies to permit.
    #[serde(default)]
    pub cedar: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Operation {
    #[serde(default)]
    pub methods: Vec<String>,
    /// `/orders/{id}`: `{name}` or `*` match one segment, a final `**` the rest.
    pub path: String,
    /// The action name given to Cedar (default: the method).
    #[serde(default)]
    pub operation_id: Option<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub consumers: Vec<String>,
    #[serde(default)]
    pub deny_groups: Vec<String>,
    #[serde(default)]
    pub deny_consumers: Vec<String>,
    #[serde(default)]
    pub scopes: Option<Scopes>,
    #[serde(default)]
    pub claims: Vec<ClaimCondition>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct Scopes {
    #[serde(default)]
    pub all: Vec<String>,
    #[serde(default)]
    pub any: Vec<String>,
}

/// A condition on a claim (dotted path for nested claims); exactly one test.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
pub struct ClaimCondition {
    pub claim: String,
    #[serde(default)]
    pub equals: Option<String>,
    #[serde(default)]
    pub one_of: Vec<String>,
    #[serde(default)]
    pub glob: Option<String>,
    #[serde(default)]
    pub present: Option<bool>,
}

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
pub struct ApiKeySettings {
    #[serde(default = "default_api_key_header")]
    pub header: String,
    /// Also accept the key from this query parameter (off by default: URLs end up in logs).
    #[serde(default)]
    pub query: Option<String>,
}

impl Default for ApiKeySettings {
    fn default() -> Self {
        ApiKeySettings {
            header: default_api_key_header(),
            query: None,
        }
    }
}

fn default_api_key_header() -> String {
    "X-API-Key".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct BasicSettings {
    #[serde(default = "default_realm")]
    pub realm: String,
    /// An htpasswd file (bcrypt or argon2 hashes); its users are consumers named after them.
    #[serde(default)]
    pub htpasswd: Option<String>,
}

impl Default for BasicSettings {
    fn default() -> Self {
        BasicSettings {
            realm: default_realm(),
            htpasswd: None,
        }
    }
}

fn default_realm() -> String {
    "rampart".into()
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

fn default_introspection_ttl() -> HumanDuration {
    HumanDuration::from_secs(300)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct LockoutSettings {
    /// Failures for one identity (user name, key prefix, token subject) within `window`.
    #[serde(default = "default_lock_identity")]
    pub max_failures: u32,
    /// Failures from one client IP within `window`.
    #[serde(default = "default_lock_ip")]
    pub max_failures_per_ip: u32,
    #[serde(default = "default_lock_window")]
    pub window: HumanDuration,
    #[serde(default = "default_lock_duration")]
    pub duration: HumanDuration,
    /// Share counters across gateway nodes through this Redis (e.g. redis://127.0.0.1:6379).
    #[serde(default)]
    pub redis: Option<String>,
}

impl Default for LockoutSettings {
    fn default() -> Self {
        LockoutSettings {
            max_failures: default_lock_identity(),
            max_failures_per_ip: default_lock_ip(),
            window: default_lock_window(),
            duration: default_lock_duration(),
            redis: None,
        }
    }
}

fn default_lock_identity() -> u32 {
    5
}
fn default_lock_ip() -> u32 {
    50
}
fn default_lock_window() -> HumanDuration {
    HumanDuration::from_secs(300)
}
fn default_lock_duration() -> HumanDuration {
    HumanDuration::from_secs(900)
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

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Listener {
    pub name: String,
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
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ListenerTls {
    /// The first certificate is also the default for clients without (or with unknown) SNI.
    pub certificates: Vec<CertificateFiles>,
    #[serde(default)]
    pub client_auth: Option<ClientAuth>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CertificateFiles {
    pub cert: String,
    pub key: String,
    /// Host names served with this certificate; default: the names in the certificate.
    #[serde(default)]
    pub hosts: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ClientAuth {
    pub ca: String,
    #[serde(default)]
    pub mode: ClientAuthMode,
    #[serde(default)]
    pub crl: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientAuthMode {
    #[default]
    Required,
    Optional,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Hsts {
    #[serde(default = "default_hsts_age")]
    pub max_age: HumanDuration,
    #[serde(default)]
    pub include_subdomains: bool,
    #[serde(default)]
    pub preload: bool,
}

fn default_hsts_age() -> HumanDuration {
    HumanDuration::from_secs(365 * 24 * 3600)
}

impl Hsts {
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
    pub sni: String,
    /// CA bundle to verify the upstream; default: the system roots.
    #[serde(default)]
    pub ca: Option<String>,
    #[serde(default = "default_true")]
    pub verify_hostname: bool,
    #[serde(default)]
    pub client_cert: Option<String>,
    #[serde(default)]
    pub client_key: Option<String>,
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Admin {
    /// Serves /metrics, /healthz and /readyz. Loopback by default so metrics never face the internet.
    #[serde(default = "default_admin_address")]
    pub address: String,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            address: default_admin_address(),
        }
    }
}

fn default_admin_address() -> String {
    "127.0.0.1:9901".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Upstream {
    pub targets: Vec<String>,
    #[serde(default)]
    pub balance: Balance,
    /// Key for `consistent_hash`: `client_ip` (default) or `header:NAME`.
    #[serde(default)]
    pub hash_key: Option<String>,
    #[serde(default)]
    pub health_check: Option<HealthCheck>,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// Extra attempts on another target when connecting fails (idempotent requests only).
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default)]
    pub passive: PassiveHealth,
    #[serde(default)]
    pub tls: Option<UpstreamTls>,
}

fn default_retries() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Balance {
    #[default]
    RoundRobin,
    ConsistentHash,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct HealthCheck {
    #[serde(default = "default_hc_path")]
    pub path: String,
    #[serde(default = "default_hc_interval")]
    pub interval: HumanDuration,
    #[serde(default = "default_hc_timeout")]
    pub timeout: HumanDuration,
    #[serde(default = "default_three")]
    pub unhealthy_after: u32,
    #[serde(default = "default_two")]
    pub healthy_after: u32,
}

fn default_hc_path() -> String {
    "/healthz".into()
}
fn default_hc_interval() -> HumanDuration {
    HumanDuration::from_secs(5)
}
fn default_hc_timeout() -> HumanDuration {
    HumanDuration::from_secs(1)
}
fn default_three() -> u32 {
    3
}
fn default_two() -> u32 {
    2
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Timeouts {
    #[serde(default = "default_connect")]
    pub connect: HumanDuration,
    #[serde(default = "default_read")]
    pub read: HumanDuration,
    #[serde(default = "default_read")]
    pub write: HumanDuration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: default_connect(),
            read: default_read(),
            write: default_read(),
        }
    }
}

fn default_connect() -> HumanDuration {
    HumanDuration::from_secs(2)
}
fn default_read() -> HumanDuration {
    HumanDuration::from_secs(30)
}

/// Passive ejection: a target that fails `failures` connections in a row is skipped for `eject_for`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PassiveHealth {
    #[serde(default = "default_three")]
    pub failures: u32,
    #[serde(default = "default_eject")]
    pub eject_for: HumanDuration,
}

impl Default for PassiveHealth {
    fn default() -> Self {
        PassiveHealth {
            failures: default_three(),
            eject_for: default_eject(),
        }
    }
}

fn default_eject() -> HumanDuration {
    HumanDuration::from_secs(10)
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Route {
    pub name: String,
    #[serde(default)]
    pub hosts: Vec<String>,
    pub paths: Vec<String>,
    #[serde(default)]
    pub methods: Vec<String>,
    pub upstream: String,
    #[serde(default)]
    pub strip_prefix: bool,
    /// Only clients that presented a verified certificate (mTLS) may use this route.
    #[serde(default)]
    pub require_client_cert: bool,
    #[serde(default)]
    pub auth: Option<RouteAuth>,
    #[serde(default)]
    pub authorize: Option<Authorize>,
    /// Limits for this route; absent = the top-level `rate_limit`; `[]` = none.
    #[serde(default)]
    pub rate_limit: Option<Vec<RateLimit>>,
    #[serde(default)]
    pub concurrency: Option<Concurrency>,
    #[serde(default)]
    pub waf: Option<RouteWaf>,
    /// Genuine WebSocket handshakes may upgrade on this route; any other `Upgrade` is
    /// removed from requests everywhere.
    #[serde(default)]
    pub websocket: bool,
    /// Replace upstream 5xx bodies (stack traces, internal addresses) with Rampart's JSON.
    #[serde(default)]
    pub hide_upstream_errors: bool,
    /// Response headers removed before the client sees them (any case), beyond `Server`
    /// and `X-Powered-By`, which are always removed.
    #[serde(default)]
    pub response_headers_deny: Vec<String>,
    /// When set, only these response headers (any case) reach the client, plus those
    /// Rampart itself adds.
    #[serde(default)]
    pub response_headers_allow: Option<Vec<String>>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Limits {
    #[serde(default = "default_body")]
    pub max_request_body: ByteSize,
    #[serde(default = "default_header_bytes")]
    pub max_header_bytes: ByteSize,
    #[serde(default = "default_header_timeout")]
    pub request_header_timeout: HumanDuration,
    /// The whole request body must arrive within this time (408 otherwise).
    #[serde(default = "default_body_timeout")]
    pub request_body_timeout: HumanDuration,
    /// After the first 5 s of a body, slower than this many bytes per second is cut (408).
    #[serde(default = "default_body_rate")]
    pub min_request_body_rate: ByteSize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_body: default_body(),
            max_header_bytes: default_header_bytes(),
            request_header_timeout: default_header_timeout(),
            request_body_timeout: default_body_timeout(),
            min_request_body_rate: default_body_rate(),
        }
    }
}

fn default_body() -> ByteSize {
    ByteSize(1 << 20)
}
fn default_header_bytes() -> ByteSize {
    ByteSize(16 << 10)
}
fn default_header_timeout() -> HumanDuration {
    HumanDuration::from_secs(10)
}
fn default_body_timeout() -> HumanDuration {
    HumanDuration::from_secs(30)
}
fn default_body_rate() -> ByteSize {
    ByteSize(1024)
}

/// `stdout` (default), `off`, or a file path.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct AccessLog {
    #[serde(default = "default_log_target")]
    pub target: String,
}

impl Default for AccessLog {
    fn default() -> Self {
        AccessLog {
            target: default_log_target(),
        }
    }
}

fn default_log_target() -> String {
    "stdout".into()
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ServerSettings {
    /// Worker threads of the data plane.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// How often the config file is checked for changes (hot reload); `0s` disables the watch.
    #[serde(default = "default_watch")]
    pub watch_interval: HumanDuration,
    /// Time given to in-flight requests at shutdown.
    #[serde(default = "default_grace")]
    pub grace_period: HumanDuration,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            threads: default_threads(),
            watch_interval: default_watch(),
            grace_period: default_grace(),
        }
    }
}

fn default_threads() -> usize {
    2
}
fn default_watch() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(500))
}
fn default_grace() -> HumanDuration {
    HumanDuration::from_secs(5)
}
