//! Rampart's authentication engine, free of any proxy types: it is handed the credentials a
//! request carries and answers who sent it, or why not.
//!
//! Methods: API keys (stored as SHA-256 hashes), Basic (argon2id / bcrypt, htpasswd files),
//! JWT / OpenID Connect (static keys, JWKS, discovery), OAuth 2.0 token introspection
//! (RFC 7662) and mTLS identities. Failed attempts feed a lockout (local or Redis) keyed by
//! identity and client IP; routes may require step-up claims (`amr`, `acr`, RFC 9470).
//! Reasons for refusals are returned for logs and events only; clients get a generic 401.

mod error;
pub mod introspection;
pub mod jwt;
pub mod ldap;
pub mod lockout;
pub mod secrets;

use rampart_config::{AuthMethod, AuthSettings, Consumer, MfaRequirement, MtlsMatch, RouteAuth};
use serde_json::Value;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

pub use error::Error;
pub use lockout::Lockout;

/// Who a request was authenticated as.
#[derive(Debug, Clone)]
pub struct Principal {
    /// The consumer's id (for htpasswd, LDAP users and unknown token subjects: the name given).
    pub consumer_id: String,
    /// Its groups (the consumer's, plus the directory's for LDAP).
    pub groups: Vec<String>,
    /// The method that succeeded.
    pub method: AuthMethod,
    /// Token claims (JWT, introspection), for authorization and claim headers.
    pub claims: Option<Arc<Value>>,
    /// Headers to send upstream from claims (`claims_to_headers`).
    pub claim_headers: Vec<(String, String)>,
}

/// The answer for one request.
#[derive(Debug)]
pub enum Outcome {
    /// Credentials verified: who sent them.
    Authenticated(Principal),
    /// No credentials, on a route where authentication is optional.
    Anonymous,
    /// No or invalid credentials (401).
    Denied {
        /// Why (for logs and events).
        reason: &'static str,
    },
    /// The client or user is locked out after repeated failures.
    Locked {
        /// Why (for logs and events).
        reason: &'static str,
        /// How long the lockout still lasts (`Retry-After`).
        retry_after: Duration,
    },
    /// Valid credentials, insufficient authentication strength (RFC 9470).
    StepUp {
        /// Which requirement the token missed.
        reason: &'static str,
    },
    /// Too many password checks are queued: refused before any hashing (503).
    Busy {
        /// Why (for logs and events).
        reason: &'static str,
    },
}

/// Password hashes (argon2id: ~19 MiB and tens of milliseconds each) run at most one per
/// core, with a short queue and a deadline; beyond that a check is refused, not queued. One
/// set of slots for the process, whatever the config generation.
struct HashSlots {
    slots: tokio::sync::Semaphore,
    waiting: std::sync::atomic::AtomicUsize,
    max_waiting: usize,
}

const HASH_QUEUE_DEADLINE: Duration = Duration::from_secs(2);
const BUSY: &str = "password checks saturated";

fn hash_slots() -> &'static HashSlots {
    static SLOTS: std::sync::OnceLock<HashSlots> = std::sync::OnceLock::new();
    SLOTS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        HashSlots {
            slots: tokio::sync::Semaphore::new(cores),
            waiting: std::sync::atomic::AtomicUsize::new(0),
            max_waiting: cores * 4,
        }
    })
}

/// Verifies a password within the process's hashing slots; None when they are saturated.
async fn verify_bounded(pass: String, hash: String) -> Option<bool> {
    use std::sync::atomic::Ordering;
    let h = hash_slots();
    if h.waiting.fetch_add(1, Ordering::AcqRel) >= h.max_waiting {
        h.waiting.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    let permit = tokio::time::timeout(HASH_QUEUE_DEADLINE, h.slots.acquire()).await;
    h.waiting.fetch_sub(1, Ordering::AcqRel);
    let Ok(Ok(_permit)) = permit else {
        return None;
    };
    // Password hashing is deliberately slow: keep it off the request threads.
    Some(
        tokio::task::spawn_blocking(move || secrets::verify_password(&pass, &hash))
            .await
            .unwrap_or(false),
    )
}

/// The verified client certificate, as the TLS layer saw it.
#[derive(Debug, Clone)]
pub struct CertFacts {
    /// Subject common name.
    pub common_name: Option<String>,
    /// DNS and URI subject alternative names.
    pub sans: Vec<String>,
    /// Lower-case hex SHA-256 of the DER certificate.
    pub fingerprint_sha256: String,
}

/// What a request presents.
#[derive(Default)]
pub struct Credentials<'a> {
    /// The `Authorization` header (Basic or Bearer).
    pub authorization: Option<&'a str>,
    /// The API key, from the configured header or query parameter.
    pub api_key: Option<&'a str>,
    /// The client's address, for lockout counters.
    pub client_ip: Option<IpAddr>,
    /// The verified client certificate, if any.
    pub certificate: Option<&'a CertFacts>,
}

struct KeyEntry {
    consumer: usize,
    expires: Option<SystemTime>,
}

struct ConsumerRt {
    id: String,
    groups: Vec<String>,
}

/// Everything needed to authenticate, built from one config snapshot.
pub struct Authenticator {
    consumers: Vec<ConsumerRt>,
    api_keys: HashMap<[u8; 32], KeyEntry>,
    basic: HashMap<String, (Option<usize>, String)>,
    subjects: HashMap<String, usize>,
    mtls: Vec<(usize, MtlsMatch)>,
    jwt: jwt::Jwt,
    introspection: Option<introspection::Introspector>,
    ldap: Option<ldap::LdapAuth>,
    lockout: Arc<Lockout>,
    realm: String,
    /// Recently verified Basic credentials (hash of user, password and stored hash), so a
    /// client sending the same password does not cost a slow hash per request.
    basic_cache: Mutex<HashMap<[u8; 32], Instant>>,
    dummy_hash: String,
}

const BASIC_CACHE_TTL: Duration = Duration::from_secs(60);

/// A problem in the config: the dotted path it concerns and what is wrong.
pub type Problem = (String, String);

/// Checks of the consumers that need this crate (hash formats, expiry times, matchers).
fn check_consumers(consumers: &[Consumer]) -> Vec<Problem> {
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    for (i, con) in consumers.iter().enumerate() {
        let base = format!("consumers.{i}");
        if con.id.trim().is_empty() {
            out.push((format!("{base}.id"), "consumer id is empty".into()));
        } else if !ids.insert(con.id.as_str()) {
            out.push((
                format!("{base}.id"),
                format!("duplicate consumer id {:?}", con.id),
            ));
        }
        for (j, k) in con.api_keys.iter().enumerate() {
            if secrets::parse_hex32(&k.sha256.to_ascii_lowercase()).is_none() {
                out.push((
                    format!("{base}.api_keys.{j}.sha256"),
                    "must be 64 hex characters (the SHA-256 that `rampart keygen` prints)".into(),
                ));
            }
            if let Some(e) = &k.expires {
                if humantime::parse_rfc3339_weak(e).is_err() {
                    out.push((
                        format!("{base}.api_keys.{j}.expires"),
                        format!("{e:?} is not an RFC 3339 time like 2027-01-31T00:00:00Z"),
                    ));
                }
            }
        }
        if let Some(b) = &con.basic {
            if let Err(e) = secrets::check_hash_format(&b.password_hash) {
                out.push((format!("{base}.basic.password_hash"), e.to_string()));
            }
        }
        for (j, m) in con.mtls.iter().enumerate() {
            if m.subject_cn.is_none() && m.san.is_none() && m.fingerprint_sha256.is_none() {
                out.push((
                    format!("{base}.mtls.{j}"),
                    "give subject_cn, san or fingerprint_sha256".into(),
                ));
            }
        }
    }
    out
}

/// `user:hash` lines; only argon2 and bcrypt hashes are accepted.
pub fn load_htpasswd(path: &str) -> Result<Vec<(String, String)>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_string(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (user, hash) = line.split_once(':').ok_or_else(|| Error::HtpasswdLine {
            path: path.to_string(),
            line: n + 1,
        })?;
        secrets::check_hash_format(hash).map_err(|e| Error::HtpasswdHash {
            path: path.to_string(),
            line: n + 1,
            source: Box::new(e),
        })?;
        out.push((user.to_string(), hash.to_string()));
    }
    Ok(out)
}

/// One random argon2 hash per process, verified for unknown users (timing equality).
fn dummy_hash() -> Result<String, &'static Error> {
    static H: std::sync::OnceLock<Result<String, Error>> = std::sync::OnceLock::new();
    H.get_or_init(|| secrets::hash_password(&secrets::generate_api_key()))
        .as_ref()
        .cloned()
}

fn parse_expiry(s: &Option<String>) -> Option<SystemTime> {
    s.as_deref()
        .and_then(|e| humantime::parse_rfc3339_weak(e).ok())
}

impl Authenticator {
    /// Check and compile the consumers and the `auth` section. Every problem is reported,
    /// each with its config path; the secrets of a failed build are dropped.
    pub fn new(
        all: &[Consumer],
        auth: &AuthSettings,
        lockout: Arc<Lockout>,
    ) -> Result<Authenticator, Vec<Problem>> {
        let mut errs = check_consumers(all);
        let mut consumers = Vec::new();
        let mut api_keys = HashMap::new();
        let mut basic = HashMap::new();
        let mut subjects = HashMap::new();
        let mut mtls = Vec::new();
        for (i, con) in all.iter().enumerate() {
            consumers.push(ConsumerRt {
                id: con.id.clone(),
                groups: con.groups.clone(),
            });
            for k in &con.api_keys {
                // A bad hash was reported by check_consumers.
                let Some(h) = secrets::parse_hex32(&k.sha256.to_ascii_lowercase()) else {
                    continue;
                };
                api_keys.insert(
                    h,
                    KeyEntry {
                        consumer: i,
                        expires: parse_expiry(&k.expires),
                    },
                );
            }
            if let Some(b) = &con.basic {
                basic.insert(b.username.clone(), (Some(i), b.password_hash.clone()));
            }
            for s in &con.subjects {
                subjects.insert(s.clone(), i);
            }
            for m in &con.mtls {
                mtls.push((i, m.clone()));
            }
        }
        if let Some(p) = &auth.basic.htpasswd {
            match load_htpasswd(p) {
                Ok(users) => {
                    for (user, hash) in users {
                        basic.entry(user).or_insert((None, hash));
                    }
                }
                Err(e) => errs.push(("auth.basic.htpasswd".into(), e.to_string())),
            }
        }
        let jwt = jwt::Jwt::new(&auth.jwt).map_err(|e| errs.extend(e)).ok();
        let introspection = auth
            .introspection
            .as_ref()
            .map(introspection::Introspector::new)
            .transpose()
            .map_err(|e| errs.push(("auth.introspection".into(), e.to_string())))
            .ok()
            .flatten();
        let ldap = auth
            .ldap
            .as_ref()
            .map(ldap::LdapAuth::new)
            .transpose()
            .map_err(|e| errs.push(("auth.ldap".into(), e.to_string())))
            .ok()
            .flatten();
        let dummy_hash = dummy_hash()
            .map_err(|e| errs.push(("auth".into(), e.to_string())))
            .ok();
        let (Some(jwt), Some(dummy_hash), true) = (jwt, dummy_hash, errs.is_empty()) else {
            return Err(errs);
        };
        Ok(Authenticator {
            consumers,
            api_keys,
            basic,
            subjects,
            mtls,
            jwt,
            introspection,
            ldap,
            lockout,
            realm: auth.basic.realm.clone(),
            basic_cache: Mutex::new(HashMap::new()),
            dummy_hash,
        })
    }

    /// `WWW-Authenticate` challenges for a route's methods.
    pub fn challenges(&self, route: &RouteAuth) -> Vec<String> {
        let mut out = Vec::new();
        for m in &route.methods {
            let c = match m {
                AuthMethod::Basic | AuthMethod::Ldap => {
                    format!("Basic realm=\"{}\", charset=\"UTF-8\"", self.realm)
                }
                AuthMethod::Jwt | AuthMethod::Introspection => {
                    format!("Bearer realm=\"{}\"", self.realm)
                }
                AuthMethod::ApiKey => format!("ApiKey realm=\"{}\"", self.realm),
                AuthMethod::Mtls => continue,
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    fn principal(&self, idx: usize, method: AuthMethod) -> Principal {
        let c = &self.consumers[idx];
        Principal {
            consumer_id: c.id.clone(),
            groups: c.groups.clone(),
            method,
            claims: None,
            claim_headers: Vec::new(),
        }
    }

    /// Tries the route's methods on what the request presents: a client certificate first,
    /// then API key, Basic, LDAP, JWT and introspection; failures feed the lockout.
    pub async fn authenticate(&self, route: &RouteAuth, cr: &Credentials<'_>) -> Outcome {
        let allows = |m: AuthMethod| route.methods.contains(&m);
        let bearer = cr
            .authorization
            .and_then(|a| strip_scheme(a, "bearer"))
            .filter(|t| !t.is_empty());
        let basic = cr.authorization.and_then(|a| strip_scheme(a, "basic"));
        let ip_key = cr.client_ip.map(|ip| format!("ip:{ip}"));
        let lock = self.lockout.settings().clone();
        let mut first_reason: Option<&'static str> = None;
        let mut tried = false;

        if allows(AuthMethod::Mtls) {
            if let Some(cert) = cr.certificate {
                tried = true;
                match self.by_certificate(cert) {
                    Some(i) => return self.finish(route, self.principal(i, AuthMethod::Mtls)),
                    None => first_reason = first_reason.or(Some("certificate maps to no consumer")),
                }
            }
        }

        // Each secret-based attempt: refuse while locked, count failures, clear on success.
        let attempts: [(AuthMethod, Option<&str>); 5] = [
            (AuthMethod::ApiKey, cr.api_key),
            (AuthMethod::Basic, basic),
            (AuthMethod::Ldap, basic),
            (AuthMethod::Jwt, bearer),
            (AuthMethod::Introspection, bearer),
        ];
        for (method, secret) in attempts {
            let Some(secret) = secret else { continue };
            if !allows(method) {
                continue;
            }
            tried = true;
            // A JWT verified moments ago (clients reuse theirs) is not parsed again.
            let cached = match method {
                AuthMethod::Jwt => self.jwt.cached(secret),
                _ => None,
            };
            let peeked = match method {
                AuthMethod::Jwt | AuthMethod::Introspection if cached.is_none() => {
                    jwt::peek(secret).ok()
                }
                _ => None,
            };
            // Lockout keys come only from what the client cannot use against someone else:
            // its IP, and for passwords the (user, IP) pair. A JWT's `sub` or an API key's
            // prefix is unverified until checked, so failures keyed on them would let
            // anyone lock a victim out.
            let identity = match method {
                AuthMethod::Basic | AuthMethod::Ldap => Some(format!(
                    "user:{}|{}",
                    basic_user(secret).unwrap_or_default(),
                    ip_key.as_deref().unwrap_or("-")
                )),
                _ => None,
            };
            let keys: Vec<String> = identity.iter().chain(ip_key.iter()).cloned().collect();
            if let Some(retry_after) = self.lockout.locked(&keys).await {
                return Outcome::Locked {
                    reason: "locked out after repeated failures",
                    retry_after,
                };
            }
            let mut fails: Vec<(String, u32)> = Vec::new();
            if let Some(k) = &identity {
                fails.push((k.clone(), lock.max_failures));
            }
            if let Some(k) = &ip_key {
                fails.push((k.clone(), lock.max_failures_per_ip));
            }
            // A slow check is counted before it runs: parallel guesses all see the count,
            // and a flood is locked out while its first guesses are still being hashed.
            let precounted = match method {
                AuthMethod::Basic => !self.basic_cached(secret),
                AuthMethod::Ldap => true,
                _ => false,
            };
            if precounted {
                self.lockout.failure(&fails).await;
            }
            let result = match method {
                AuthMethod::ApiKey => self.by_api_key(secret),
                AuthMethod::Basic => self.by_basic(secret).await,
                AuthMethod::Ldap => self.by_ldap(secret).await,
                AuthMethod::Jwt => self.by_jwt(secret, peeked.as_ref(), cached).await,
                _ => self.by_introspection(secret).await,
            };
            match result {
                Ok(p) => {
                    if let Some(k) = &identity {
                        self.lockout.success(k).await;
                    }
                    if precounted {
                        if let Some(k) = &ip_key {
                            self.lockout.forgive(k).await;
                        }
                    }
                    return self.finish(route, p);
                }
                Err(BUSY) => return Outcome::Busy { reason: BUSY },
                Err(reason) => {
                    // A JWT that is not ours may still be an opaque token for introspection.
                    if method == AuthMethod::Jwt
                        && allows(AuthMethod::Introspection)
                        && reason == "malformed token or algorithm"
                    {
                        continue;
                    }
                    if !precounted {
                        self.lockout.failure(&fails).await;
                    }
                    first_reason = first_reason.or(Some(reason));
                }
            }
        }
        if !tried {
            return if route.optional {
                Outcome::Anonymous
            } else {
                Outcome::Denied {
                    reason: "no credentials",
                }
            };
        }
        Outcome::Denied {
            reason: first_reason.unwrap_or("invalid credentials"),
        }
    }

    fn finish(&self, route: &RouteAuth, p: Principal) -> Outcome {
        if let Some(mfa) = &route.mfa {
            if let Err(reason) = check_mfa(mfa, p.claims.as_deref()) {
                return Outcome::StepUp { reason };
            }
        }
        Outcome::Authenticated(p)
    }

    fn by_certificate(&self, cert: &CertFacts) -> Option<usize> {
        self.mtls.iter().find_map(|(i, m)| {
            let hit = m
                .subject_cn
                .as_deref()
                .is_some_and(|cn| cert.common_name.as_deref() == Some(cn))
                || m.san
                    .as_deref()
                    .is_some_and(|s| cert.sans.iter().any(|x| x == s))
                || m.fingerprint_sha256.as_deref().is_some_and(|f| {
                    secrets::ct_eq(
                        f.to_ascii_lowercase().as_bytes(),
                        cert.fingerprint_sha256.as_bytes(),
                    )
                });
            hit.then_some(*i)
        })
    }

    fn by_api_key(&self, key: &str) -> Result<Principal, &'static str> {
        // Hashing first means the map lookup only ever sees a digest, never the key.
        let h = secrets::sha256(key.as_bytes());
        let e = self.api_keys.get(&h).ok_or("unknown api key")?;
        if e.expires.is_some_and(|t| SystemTime::now() > t) {
            return Err("api key expired");
        }
        Ok(self.principal(e.consumer, AuthMethod::ApiKey))
    }

    /// Whether these Basic credentials were verified moments ago (no hash to run).
    fn basic_cached(&self, b64: &str) -> bool {
        use base64::Engine;
        let Some(text) = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .ok()
            .and_then(|r| String::from_utf8(r).ok())
        else {
            return false;
        };
        let Some((user, pass)) = text.split_once(':') else {
            return false;
        };
        let Some((_, hash)) = self.basic.get(user) else {
            return false;
        };
        let key = secrets::sha256(format!("{user}\0{pass}\0{hash}").as_bytes());
        let c = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
        c.get(&key).is_some_and(|t| t.elapsed() < BASIC_CACHE_TTL)
    }

    async fn by_basic(&self, b64: &str) -> Result<Principal, &'static str> {
        use base64::Engine;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "malformed basic credentials")?;
        let text = String::from_utf8(raw).map_err(|_| "malformed basic credentials")?;
        let (user, pass) = text.split_once(':').ok_or("malformed basic credentials")?;
        let (consumer, hash, known) = match self.basic.get(user) {
            Some((c, h)) => (*c, h.clone(), true),
            // Verify against a dummy hash so unknown users cost the same time.
            None => (None, self.dummy_hash.clone(), false),
        };
        let cache_key = secrets::sha256(format!("{user}\0{pass}\0{hash}").as_bytes());
        let cached = {
            let c = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
            c.get(&cache_key)
                .is_some_and(|t| t.elapsed() < BASIC_CACHE_TTL)
        };
        let ok = if cached {
            true
        } else {
            verify_bounded(pass.to_string(), hash.clone())
                .await
                .ok_or(BUSY)?
        };
        if !(ok && known) {
            return Err(if known {
                "wrong password"
            } else {
                "unknown user"
            });
        }
        if !cached {
            let mut c = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
            if c.len() > 10_000 {
                c.retain(|_, t| t.elapsed() < BASIC_CACHE_TTL);
            }
            c.insert(cache_key, Instant::now());
        }
        Ok(match consumer {
            Some(i) => self.principal(i, AuthMethod::Basic),
            None => Principal {
                consumer_id: user.to_string(),
                groups: Vec::new(),
                method: AuthMethod::Basic,
                claims: None,
                claim_headers: Vec::new(),
            },
        })
    }

    fn token_principal(
        &self,
        method: AuthMethod,
        claims: Arc<Value>,
        consumer_claim: &str,
        allow_unknown: bool,
        claims_to_headers: &std::collections::BTreeMap<String, String>,
    ) -> Result<Principal, &'static str> {
        let subject = claim_path(&claims, consumer_claim)
            .and_then(|v| v.as_str())
            .ok_or("token lacks the consumer claim")?
            .to_string();
        let mut p = match self.subjects.get(&subject) {
            Some(i) => self.principal(*i, method),
            None if allow_unknown => Principal {
                consumer_id: subject,
                groups: Vec::new(),
                method,
                claims: None,
                claim_headers: Vec::new(),
            },
            None => return Err("token subject is no known consumer"),
        };
        for (claim, header) in claims_to_headers {
            if let Some(v) = claim_path(&claims, claim) {
                let text = match v {
                    Value::String(s) => s.clone(),
                    Value::Array(a) => a
                        .iter()
                        .map(|x| {
                            x.as_str()
                                .map(str::to_string)
                                .unwrap_or_else(|| x.to_string())
                        })
                        .collect::<Vec<_>>()
                        .join(","),
                    other => other.to_string(),
                };
                // Header injection guard: claims are attacker-influenced text.
                if text.bytes().all(|b| b >= 0x20 && b != 0x7f) {
                    p.claim_headers.push((header.clone(), text));
                }
            }
        }
        p.claims = Some(claims);
        Ok(p)
    }

    async fn by_jwt(
        &self,
        token: &str,
        peeked: Option<&jwt::Peek>,
        cached: Option<(Arc<jwt::IssuerRt>, Arc<serde_json::Value>)>,
    ) -> Result<Principal, &'static str> {
        let (issuer, claims) = match (cached, peeked) {
            (Some(c), _) => c,
            (None, Some(p)) => self.jwt.verify_peeked(token, p).await?,
            (None, None) => self.jwt.verify(token).await?,
        };
        let cfg = &issuer.cfg;
        self.token_principal(
            AuthMethod::Jwt,
            claims,
            &cfg.consumer_claim,
            cfg.allow_unknown_subjects,
            &cfg.claims_to_headers,
        )
    }

    async fn by_ldap(&self, b64: &str) -> Result<Principal, &'static str> {
        use base64::Engine;
        let l = self.ldap.as_ref().ok_or("ldap not configured")?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|_| "malformed basic credentials")?;
        let text = String::from_utf8(raw).map_err(|_| "malformed basic credentials")?;
        let (user, pass) = text.split_once(':').ok_or("malformed basic credentials")?;
        let ldap_groups = l.authenticate(user, pass).await?;
        // A consumer with this user name adds its own groups; the directory's come too.
        let mut p = match self.consumers.iter().position(|c| c.id == user) {
            Some(i) => self.principal(i, AuthMethod::Ldap),
            None => Principal {
                consumer_id: user.to_string(),
                groups: Vec::new(),
                method: AuthMethod::Ldap,
                claims: None,
                claim_headers: Vec::new(),
            },
        };
        for g in ldap_groups {
            if !p.groups.contains(&g) {
                p.groups.push(g);
            }
        }
        Ok(p)
    }

    async fn by_introspection(&self, token: &str) -> Result<Principal, &'static str> {
        let i = self
            .introspection
            .as_ref()
            .ok_or("introspection not configured")?;
        let claims = Arc::new(i.introspect(token).await?);
        self.token_principal(
            AuthMethod::Introspection,
            claims,
            &i.cfg.consumer_claim,
            i.cfg.allow_unknown_subjects,
            &Default::default(),
        )
    }
}

fn strip_scheme<'a>(header: &'a str, scheme: &str) -> Option<&'a str> {
    let (s, rest) = header.split_once(' ')?;
    s.eq_ignore_ascii_case(scheme).then(|| rest.trim())
}

fn basic_user(b64: &str) -> Option<String> {
    use base64::Engine;
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    Some(text.split_once(':')?.0.to_string())
}

/// A claim by dotted path (`realm_access.roles`).
pub fn claim_path<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(claims, |v, seg| v.get(seg))
}

fn check_mfa(m: &MfaRequirement, claims: Option<&Value>) -> Result<(), &'static str> {
    let claims = claims.ok_or("step-up needs a token")?;
    if !m.amr.is_empty() {
        let amr: Vec<&str> = claims["amr"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        if !m.amr.iter().all(|need| amr.contains(&need.as_str())) {
            return Err("amr lacks a required method");
        }
    }
    if let Some(min) = &m.acr_min {
        let acr = claims["acr"].as_str().ok_or("no acr claim")?;
        let ok = if m.acr_order.is_empty() {
            match (acr.parse::<f64>(), min.parse::<f64>()) {
                (Ok(a), Ok(b)) => a >= b,
                _ => acr == min,
            }
        } else {
            let pos = |v: &str| m.acr_order.iter().position(|x| x == v);
            matches!((pos(acr), pos(min)), (Some(a), Some(b)) if a >= b)
        };
        if !ok {
            return Err("acr below the required level");
        }
    }
    Ok(())
}
