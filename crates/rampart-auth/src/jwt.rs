//! JWT verification per issuer: static keys, JWKS URLs and OIDC discovery, with a JWKS cache
//! refreshed periodically and on unknown `kid` (rate-limited).
//!
//! Algorithm safety is enforced here, not left to the JWT library: the header's `alg` must
//! be in the issuer's allow-list, `none` never parses, and a key is only ever used with an
//! algorithm of its own family (an RSA public key is never an HMAC secret).

use crate::Error;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use rampart_config::JwtIssuer;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Key families: a key is only ever used with algorithms of its own family.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Family {
    /// HS256, HS384, HS512: a shared secret.
    Hmac,
    /// RS* and PS*: an RSA public key.
    Rsa,
    /// ES256, ES384: an EC public key.
    Ec,
    /// EdDSA: an Ed25519 public key.
    Ed,
}

/// The family of keys `alg` verifies with.
pub fn family(alg: Algorithm) -> Family {
    use Algorithm::*;
    match alg {
        HS256 | HS384 | HS512 => Family::Hmac,
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => Family::Rsa,
        ES256 | ES384 => Family::Ec,
        EdDSA => Family::Ed,
    }
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    family: Family,
    key: DecodingKey,
}

struct Jwks {
    keys: Vec<Key>,
    fetched: Option<Instant>,
    /// Last fetch attempt of any kind, to rate-limit refetches on unknown kids.
    attempted: Option<Instant>,
}

/// One issuer, ready to verify: its algorithms, static keys, JWKS cache and verified-token cache.
pub struct IssuerRt {
    /// The issuer's config.
    pub cfg: JwtIssuer,
    algorithms: Vec<Algorithm>,
    static_keys: Vec<Key>,
    jwks: Mutex<Jwks>,
    http: reqwest::Client,
    /// Verified tokens (by SHA-256) → (exp, when verified, claims). RSA verification costs
    /// tens of microseconds; a client reuses its token for many requests. Entries live at
    /// most `VERIFIED_TTL`, never past `exp`, and are dropped when the JWKS changes.
    verified: std::sync::Mutex<HashMap<[u8; 32], Verified>>,
}

/// (exp, when verified, claims)
type Verified = (u64, Instant, Arc<Value>);

const VERIFIED_TTL: Duration = Duration::from_secs(60);
const VERIFIED_MAX: usize = 100_000;

/// A cached verification still stands: young enough, and the token not expired.
fn fresh(exp: u64, at: &Instant, leeway: u64) -> bool {
    at.elapsed() < VERIFIED_TTL && unix_now() < exp.saturating_add(leeway)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a token was refused (for logs and events, never for the client).
pub type Reason = &'static str;

/// The issuer's algorithm names as algorithms; `none` and unknown names are errors.
pub fn parse_algorithms(names: &[String]) -> Result<Vec<Algorithm>, Error> {
    names
        .iter()
        .map(|n| {
            if n.eq_ignore_ascii_case("none") {
                return Err(Error::AlgorithmNone);
            }
            Algorithm::from_str(n).map_err(|_| Error::UnknownAlgorithm { name: n.clone() })
        })
        .collect()
}

fn load_static(cfg: &JwtIssuer) -> Result<Vec<Key>, Error> {
    let mut out = Vec::new();
    for k in &cfg.keys {
        match (&k.secret, &k.pem) {
            (Some(secret), None) => out.push(Key {
                kid: k.kid.clone(),
                family: Family::Hmac,
                key: DecodingKey::from_secret(secret.as_bytes()),
            }),
            (None, Some(path)) => {
                let pem = std::fs::read(path).map_err(|source| Error::Read {
                    path: path.clone(),
                    source,
                })?;
                let (family, key) = if let Ok(k) = DecodingKey::from_rsa_pem(&pem) {
                    (Family::Rsa, k)
                } else if let Ok(k) = DecodingKey::from_ec_pem(&pem) {
                    (Family::Ec, k)
                } else if let Ok(k) = DecodingKey::from_ed_pem(&pem) {
                    (Family::Ed, k)
                } else {
                    return Err(Error::NotAPublicKey { path: path.clone() });
                };
                out.push(Key {
                    kid: k.kid.clone(),
                    family,
                    key,
                });
            }
            _ => return Err(Error::KeySource),
        }
    }
    Ok(out)
}

impl IssuerRt {
    /// Checks the algorithms and loads the static keys; JWKS are fetched on first use.
    pub fn new(cfg: &JwtIssuer, http: reqwest::Client) -> Result<IssuerRt, Error> {
        let algorithms = parse_algorithms(&cfg.algorithms)?;
        if algorithms.is_empty() {
            return Err(Error::NoAlgorithm);
        }
        let static_keys = load_static(cfg)?;
        if static_keys.is_empty() && cfg.jwks_url.is_none() && !cfg.discovery {
            return Err(Error::NoKeys);
        }
        Ok(IssuerRt {
            cfg: cfg.clone(),
            algorithms,
            static_keys,
            jwks: Mutex::new(Jwks {
                keys: Vec::new(),
                fetched: None,
                attempted: None,
            }),
            http,
            verified: std::sync::Mutex::new(HashMap::new()),
        })
    }

    fn remote(&self) -> bool {
        self.cfg.jwks_url.is_some() || self.cfg.discovery
    }

    async fn jwks_uri(&self) -> Result<String, Error> {
        if let Some(u) = &self.cfg.jwks_url {
            return Ok(u.clone());
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            self.cfg.issuer.trim_end_matches('/')
        );
        let doc: Value = self
            .http
            .get(&url)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|source| Error::Discovery {
                url: url.clone(),
                source,
            })?
            .json()
            .await
            .map_err(|source| Error::Discovery {
                url: url.clone(),
                source,
            })?;
        // The discovery document must be about this issuer (OIDC Discovery §4.3).
        if doc["issuer"].as_str() != Some(self.cfg.issuer.as_str()) {
            return Err(Error::DiscoveryIssuer { url });
        }
        doc["jwks_uri"]
            .as_str()
            .map(str::to_string)
            .ok_or(Error::DiscoveryNoJwksUri { url })
    }

    async fn fetch(&self) -> Result<Vec<Key>, Error> {
        let uri = self.jwks_uri().await?;
        let set: JwkSet = self
            .http
            .get(&uri)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(|source| Error::Jwks {
                uri: uri.clone(),
                source,
            })?
            .json()
            .await
            .map_err(|source| Error::Jwks {
                uri: uri.clone(),
                source,
            })?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            let family = match &jwk.algorithm {
                jsonwebtoken::jwk::AlgorithmParameters::RSA(_) => Family::Rsa,
                jsonwebtoken::jwk::AlgorithmParameters::EllipticCurve(_) => Family::Ec,
                jsonwebtoken::jwk::AlgorithmParameters::OctetKeyPair(_) => Family::Ed,
                // Symmetric keys do not belong in a public JWKS; never use them.
                jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_) => continue,
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                family,
                key,
            });
        }
        Ok(keys)
    }

    /// Keys to try for (`kid`, family), refreshing the JWKS when stale, or when the kid is
    /// unknown and the last attempt is older than `jwks_min_interval`.
    async fn keys_for(&self, kid: Option<&str>, fam: Family) -> Vec<Key> {
        let pick = |keys: &[Key]| -> Vec<Key> {
            keys.iter()
                .filter(|k| {
                    k.family == fam && (kid.is_none() || k.kid.is_none() || k.kid.as_deref() == kid)
                })
                .cloned()
                .collect()
        };
        let mut found = pick(&self.static_keys);
        if !self.remote() {
            return found;
        }
        let mut jwks = self.jwks.lock().await;
        let now = Instant::now();
        let stale = jwks
            .fetched
            .is_none_or(|t| now - t > self.cfg.jwks_refresh.0);
        let known = kid.is_some_and(|k| jwks.keys.iter().any(|x| x.kid.as_deref() == Some(k)));
        let may_retry = jwks
            .attempted
            .is_none_or(|t| now - t > self.cfg.jwks_min_interval.0);
        if (stale || (kid.is_some() && !known)) && may_retry {
            jwks.attempted = Some(now);
            match self.fetch().await {
                Ok(keys) => {
                    let kids = |k: &[Key]| k.iter().map(|x| x.kid.clone()).collect::<Vec<_>>();
                    if kids(&keys) != kids(&jwks.keys) {
                        // A key may have been withdrawn: forget what it verified.
                        self.verified
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clear();
                    }
                    jwks.keys = keys;
                    jwks.fetched = Some(now);
                }
                Err(e) => log::warn!("issuer {}: {e}", self.cfg.issuer),
            }
        }
        found.extend(pick(&jwks.keys));
        found
    }

    /// A remote key set older than its refresh interval.
    fn refresh_due(&self) -> bool {
        self.jwks
            .try_lock()
            .map(|j| {
                j.fetched
                    .is_none_or(|t| t.elapsed() > self.cfg.jwks_refresh.0)
            })
            .unwrap_or(false)
    }

    /// The claims of a token (by SHA-256) this issuer verified recently and that has not
    /// expired since.
    fn cached(&self, digest: &[u8; 32]) -> Option<Arc<Value>> {
        let cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(digest)
            .filter(|(exp, at, _)| fresh(*exp, at, self.cfg.leeway.0.as_secs()))
            .map(|(_, _, claims)| claims.clone())
    }

    /// Verify `token` for this issuer; returns its claims.
    pub async fn verify(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Arc<Value>, Reason> {
        if !self.algorithms.contains(&alg) {
            return Err("algorithm not allowed for issuer");
        }
        let digest = crate::secrets::sha256(token.as_bytes());
        if self.remote() && self.refresh_due() {
            // Keep the JWKS current (and the cache honest) even when serving from cache.
            let _ = self.keys_for(kid, family(alg)).await;
        }
        if let Some(claims) = self.cached(&digest) {
            return Ok(claims);
        }
        let claims = Arc::new(self.verify_uncached(token, alg, kid).await?);
        if let Some(exp) = claims["exp"].as_u64() {
            let leeway = self.cfg.leeway.0.as_secs();
            let mut cache = self.verified.lock().unwrap_or_else(|p| p.into_inner());
            if cache.len() >= VERIFIED_MAX {
                cache.retain(|_, (e, at, _)| fresh(*e, at, leeway));
                if cache.len() >= VERIFIED_MAX {
                    cache.clear();
                }
            }
            cache.insert(digest, (exp, Instant::now(), claims.clone()));
        }
        Ok(claims)
    }

    async fn verify_uncached(
        &self,
        token: &str,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Value, Reason> {
        let keys = self.keys_for(kid, family(alg)).await;
        if keys.is_empty() {
            return Err("no key for token");
        }
        let mut v = Validation::new(alg);
        v.algorithms = vec![alg];
        v.leeway = self.cfg.leeway.0.as_secs();
        v.validate_nbf = true;
        v.set_required_spec_claims(&["exp", "iss"]);
        v.set_issuer(&[self.cfg.issuer.as_str()]);
        if self.cfg.audiences.is_empty() {
            v.validate_aud = false;
        } else {
            v.set_audience(&self.cfg.audiences);
        }
        let mut last = "bad signature";
        for k in keys {
            match jsonwebtoken::decode::<Value>(token, &k.key, &v) {
                Ok(data) => return Ok(data.claims),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind::*;
                    last = match e.kind() {
                        ExpiredSignature => "token expired",
                        ImmatureSignature => "token not yet valid",
                        InvalidAudience => "wrong audience",
                        InvalidIssuer => "wrong issuer",
                        MissingRequiredClaim(_) => "missing required claim",
                        InvalidSignature => "bad signature",
                        _ => "invalid token",
                    };
                    // Only a bad signature may mean "another key"; claim errors are final.
                    if last != "bad signature" {
                        return Err(last);
                    }
                }
            }
        }
        Err(last)
    }
}

/// All issuers, chosen by the token's (unverified) `iss`.
pub struct Jwt {
    /// One per `auth.jwt` entry.
    pub issuers: Vec<Arc<IssuerRt>>,
}

/// Header and unverified claims, just enough to choose issuer and key.
pub struct Peek {
    /// The header's algorithm.
    pub alg: Algorithm,
    /// The header's key id.
    pub kid: Option<String>,
    /// The unverified issuer.
    pub iss: Option<String>,
    /// The unverified subject.
    pub sub: Option<String>,
}

/// Reads the header and `iss` / `sub` of a token without verifying it; an unknown
/// `alg` (including `none`) fails here.
pub fn peek(token: &str) -> Result<Peek, Reason> {
    use base64::Engine;
    // `alg: none` (or any unknown alg) fails to parse here and is refused.
    let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token or algorithm")?;
    let payload = token.split('.').nth(1).ok_or("malformed token")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .map_err(|_| "malformed token")?;
    // Only the two claims needed here; the rest is skipped without building a Value.
    #[derive(serde::Deserialize)]
    struct IssSub {
        #[serde(default)]
        iss: Option<serde_json::Value>,
        #[serde(default)]
        sub: Option<serde_json::Value>,
    }
    let c: IssSub = serde_json::from_slice(&bytes).map_err(|_| "malformed token")?;
    let text = |v: Option<serde_json::Value>| v.and_then(|v| v.as_str().map(str::to_string));
    Ok(Peek {
        alg: header.alg,
        kid: header.kid,
        iss: text(c.iss),
        sub: text(c.sub),
    })
}

impl Jwt {
    /// Every issuer, each problem with its config path (`auth.jwt.N`).
    pub fn new(cfgs: &[JwtIssuer]) -> Result<Jwt, Vec<(String, String)>> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| vec![("auth.jwt".to_string(), e.to_string())])?;
        let mut seen = HashSet::new();
        let mut issuers = Vec::new();
        let mut errs = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            if !seen.insert(c.issuer.clone()) {
                errs.push((
                    format!("auth.jwt.{i}.issuer"),
                    format!("issuer {} is configured twice", c.issuer),
                ));
            }
            match IssuerRt::new(c, http.clone()) {
                Ok(rt) => issuers.push(Arc::new(rt)),
                Err(e) => errs.push((format!("auth.jwt.{i}"), e.to_string())),
            }
        }
        if errs.is_empty() {
            Ok(Jwt { issuers })
        } else {
            Err(errs)
        }
    }

    /// A token verified recently by one of the issuers, without parsing it again. `None`
    /// when it is not cached or its issuer's remote keys are due for a refresh (the full
    /// path refreshes them).
    pub fn cached(&self, token: &str) -> Option<(Arc<IssuerRt>, Arc<Value>)> {
        let digest = crate::secrets::sha256(token.as_bytes());
        self.issuers.iter().find_map(|i| {
            if i.remote() && i.refresh_due() {
                return None;
            }
            i.cached(&digest).map(|c| (i.clone(), c))
        })
    }

    /// Verifies `token` with the issuer its `iss` names; returns that issuer and the claims.
    pub async fn verify(&self, token: &str) -> Result<(Arc<IssuerRt>, Arc<Value>), Reason> {
        let p = peek(token)?;
        self.verify_peeked(token, &p).await
    }

    /// As [`Jwt::verify`], reusing a [`peek`] the caller already made.
    pub async fn verify_peeked(
        &self,
        token: &str,
        p: &Peek,
    ) -> Result<(Arc<IssuerRt>, Arc<Value>), Reason> {
        let iss = p.iss.as_deref().ok_or("token has no issuer")?;
        let issuer = self
            .issuers
            .iter()
            .find(|i| i.cfg.issuer == iss)
            .ok_or("unknown issuer")?;
        let claims = issuer.verify(token, p.alg, p.kid.as_deref()).await?;
        Ok((issuer.clone(), claims))
    }
}
