//! Who calls the admin API: bearer tokens checked against their hashes, and a lockout of
//! addresses that keep sending bad ones.

use rampart_config::{Admin as AdminConfig, AdminRole};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The token's name (what events and the access log show).
    pub name: String,
    pub role: AdminRole,
}

/// Why a token was refused (the reason goes to the event, not to the client).
pub enum Refusal {
    Missing,
    UnknownCertificate,
    Unknown,
    Expired(String),
}

impl Refusal {
    pub fn reason(&self) -> String {
        match self {
            Refusal::Missing => "no bearer token".into(),
            Refusal::UnknownCertificate => {
                "a verified client certificate that names no admin client".into()
            }
            Refusal::Unknown => "unknown token".into(),
            Refusal::Expired(name) => format!("token {name:?} has expired"),
        }
    }
}

/// The caller named by an `Authorization: Bearer` header or, without one, by the verified
/// client certificate.
pub fn authenticate(
    cfg: &AdminConfig,
    authorization: Option<&[u8]>,
    cert: Option<&rampart_tls::ClientIdentity>,
) -> Result<Caller, Refusal> {
    if authorization.is_none() {
        if let Some(id) = cert {
            return by_certificate(cfg, id);
        }
    }
    let token = authorization
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| {
            let (scheme, rest) = h.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty())
        .ok_or(Refusal::Missing)?;
    let presented = rampart_auth::secrets::sha256(token.as_bytes());
    // Every configured hash is compared, in constant time, whichever matches.
    let mut found = None;
    for t in &cfg.tokens {
        let Some(h) = rampart_auth::secrets::parse_hex32(&t.sha256.to_ascii_lowercase()) else {
            continue;
        };
        if rampart_auth::secrets::ct_eq(&h, &presented) && found.is_none() {
            found = Some(t);
        }
    }
    let t = found.ok_or(Refusal::Unknown)?;
    let expired = t
        .expires
        .as_deref()
        .and_then(|e| humantime::parse_rfc3339_weak(e).ok())
        .is_some_and(|e| SystemTime::now() > e);
    if expired {
        return Err(Refusal::Expired(t.name.clone()));
    }
    Ok(Caller {
        name: t.name.clone(),
        role: t.role,
    })
}

fn by_certificate(cfg: &AdminConfig, id: &rampart_tls::ClientIdentity) -> Result<Caller, Refusal> {
    let c = cfg
        .clients
        .iter()
        .find(|c| {
            c.subject_cn
                .as_deref()
                .is_some_and(|cn| id.common_name.as_deref() == Some(cn))
                || c.san
                    .as_deref()
                    .is_some_and(|san| id.dns_sans.iter().chain(&id.uri_sans).any(|s| s == san))
                || c.fingerprint_sha256
                    .as_deref()
                    .is_some_and(|f| f.eq_ignore_ascii_case(&id.fingerprint_sha256))
        })
        .ok_or(Refusal::UnknownCertificate)?;
    Ok(Caller {
        name: c.name.clone(),
        role: c.role,
    })
}

/// Bad tokens counted per address; past the limit the address is refused for a while.
#[derive(Default)]
pub struct Lockout {
    by_ip: Mutex<HashMap<IpAddr, Failures>>,
}

struct Failures {
    count: u32,
    since: Instant,
    locked_until: Option<Instant>,
}

/// Addresses tracked at most; beyond it the stalest entries go first (a flood of spoofed
/// sources cannot grow the map without bound).
const MAX_TRACKED: usize = 10_000;

impl Lockout {
    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.by_ip.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How long `ip` stays locked out, if it is.
    pub fn locked(&self, ip: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        self.map()
            .get(&ip)
            .and_then(|f| f.locked_until)
            .and_then(|u| u.checked_duration_since(now))
            .filter(|d| !d.is_zero())
    }

    /// Count a refused token from `ip`; true when this failure locks it out.
    pub fn fail(&self, cfg: &AdminConfig, ip: IpAddr) -> bool {
        let now = Instant::now();
        let mut m = self.map();
        if m.len() >= MAX_TRACKED && !m.contains_key(&ip) {
            let window = cfg.lockout.window.0;
            m.retain(|_, f| {
                f.locked_until.is_some_and(|u| u > now) || now.duration_since(f.since) < window
            });
            if m.len() >= MAX_TRACKED {
                if let Some(oldest) = m.iter().min_by_key(|(_, f)| f.since).map(|(k, _)| *k) {
                    m.remove(&oldest);
                }
            }
        }
        let f = m.entry(ip).or_insert(Failures {
            count: 0,
            since: now,
            locked_until: None,
        });
        if f.locked_until.is_some_and(|u| u <= now) {
            f.locked_until = None;
            f.count = 0;
            f.since = now;
        }
        if now.duration_since(f.since) > cfg.lockout.window.0 {
            f.count = 0;
            f.since = now;
        }
        f.count += 1;
        if f.count >= cfg.lockout.max_failures && f.locked_until.is_none() {
            f.locked_until = Some(now + cfg.lockout.duration.0);
            return true;
        }
        false
    }

    /// A good token from `ip` clears its count.
    pub fn succeed(&self, ip: IpAddr) {
        let mut m = self.map();
        if m.get(&ip).is_some_and(|f| f.locked_until.is_none()) {
            m.remove(&ip);
        }
    }
}
