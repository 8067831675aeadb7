//! Forward-confirmed reverse DNS: a client that names a verified crawler is believed when
//! its address's PTR name lies in the crawler's domains and that name resolves back to the
//! address. Answers are cached per address; checks under way are bounded, so a flood of
//! fake crawler names cannot become a flood of DNS queries.

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use hickory_resolver::TokioResolver;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A check's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The address belongs to the crawler.
    Confirmed,
    /// DNS answered, and the answer says no: the client is not the crawler it names.
    Refuted(&'static str),
    /// DNS did not answer (timeout, server failure, too many checks): nothing is known.
    Failed(&'static str),
}

/// PTR names looked at per address (a host may have several; crawlers have one).
const MAX_NAMES: usize = 4;

/// How the checks are made (from `bots.dns`).
pub struct Settings {
    /// Name servers; empty: the system's.
    pub servers: Vec<SocketAddr>,
    /// The whole check's limit.
    pub timeout: Duration,
    /// How long an answer is kept (a failure: a tenth, at least 10 s).
    pub cache_ttl: Duration,
    /// Answers kept.
    pub cache_size: usize,
    /// Checks under way at once.
    pub max_pending: usize,
}

struct Cached {
    outcome: Outcome,
    until: Instant,
}

/// The checker, one per config (kept across reloads while `bots.dns` is the same).
pub struct Verifier {
    resolver: TokioResolver,
    settings: Settings,
    /// Per (address, crawler name).
    cache: Mutex<HashMap<(IpAddr, String), Cached>>,
    pending: AtomicUsize,
}

/// Releases a pending slot however the check ends (a dropped future included).
struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Verifier {
    /// A resolver for `settings.servers` (or the system's); no query is made yet.
    pub fn new(settings: Settings) -> Result<Verifier, String> {
        let mut opts = ResolverOpts::default();
        opts.timeout = settings.timeout;
        opts.attempts = 1;
        // The verdict cache below keeps answers; the resolver's own cache would keep
        // records past the verdict's life without a bound we choose.
        opts.cache_size = 0;
        let builder = if settings.servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("system DNS settings: {e}"))?
        } else {
            let mut config = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
            for s in &settings.servers {
                let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                for c in &mut ns.connections {
                    c.port = s.port();
                }
                config.add_name_server(ns);
            }
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        };
        let resolver = builder
            .with_options(opts)
            .build()
            .map_err(|e| format!("DNS resolver: {e}"))?;
        Ok(Verifier {
            resolver,
            settings,
            cache: Mutex::new(HashMap::new()),
            pending: AtomicUsize::new(0),
        })
    }

    /// Checks under way now.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Acquire)
    }

    /// Whether `ip` belongs to the crawler `name` whose reverse DNS lies in `domains`
    /// (lower case, no trailing dot).
    pub async fn verify(&self, ip: IpAddr, name: &str, domains: &[String]) -> Outcome {
        let key = (ip, name.to_string());
        let now = Instant::now();
        if let Some(c) = self.cache.lock().unwrap().get(&key) {
            if c.until > now {
                return c.outcome;
            }
        }
        if domains.is_empty() {
            return Outcome::Refuted("no domains to verify against");
        }
        if self.pending.fetch_add(1, Ordering::AcqRel) >= self.settings.max_pending {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return Outcome::Failed("too many DNS checks under way");
        }
        let _slot = Slot(&self.pending);
        let outcome =
            match tokio::time::timeout(self.settings.timeout, self.check(ip, domains)).await {
                Ok(o) => o,
                Err(_) => Outcome::Failed("DNS timed out"),
            };
        let ttl = match outcome {
            Outcome::Failed(_) => (self.settings.cache_ttl / 10).max(Duration::from_secs(10)),
            _ => self.settings.cache_ttl,
        };
        let mut cache = self.cache.lock().unwrap();
        if cache.len() >= self.settings.cache_size {
            cache.retain(|_, c| c.until > now);
            // Still full of live answers: start over rather than grow.
            if cache.len() >= self.settings.cache_size {
                cache.clear();
            }
        }
        cache.insert(
            key,
            Cached {
                outcome,
                until: Instant::now() + ttl,
            },
        );
        outcome
    }

    async fn check(&self, ip: IpAddr, domains: &[String]) -> Outcome {
        let names: Vec<String> = match self.resolver.reverse_lookup(ip).await {
            Ok(l) => l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::PTR(p) => Some(p.0.to_ascii().to_ascii_lowercase()),
                    _ => None,
                })
                .take(MAX_NAMES)
                .collect(),
            Err(e) if e.is_no_records_found() || e.is_nx_domain() => Vec::new(),
            Err(_) => return Outcome::Failed("reverse DNS failed"),
        };
        if names.is_empty() {
            return Outcome::Refuted("no reverse DNS name");
        }
        let ours: Vec<&String> = names
            .iter()
            .filter(|n| {
                let n = n.trim_end_matches('.');
                domains.iter().any(|d| {
                    n == d
                        || n.strip_suffix(d.as_str())
                            .is_some_and(|head| head.ends_with('.'))
                })
            })
            .collect();
        if ours.is_empty() {
            return Outcome::Refuted("reverse DNS name outside the crawler's domains");
        }
        let mut failed = false;
        for name in ours {
            let fqdn = if name.ends_with('.') {
                name.clone()
            } else {
                format!("{name}.")
            };
            let answer = match ip {
                IpAddr::V4(_) => self.resolver.ipv4_lookup(fqdn.as_str()).await,
                IpAddr::V6(_) => self.resolver.ipv6_lookup(fqdn.as_str()).await,
            };
            match answer {
                Ok(l) => {
                    let back = l.answers().iter().any(|r| match &r.data {
                        RData::A(a) => IpAddr::V4(a.0) == ip,
                        RData::AAAA(a) => IpAddr::V6(a.0) == ip,
                        _ => false,
                    });
                    if back {
                        return Outcome::Confirmed;
                    }
                }
                Err(e) if e.is_no_records_found() || e.is_nx_domain() => {}
                Err(_) => failed = true,
            }
        }
        if failed {
            Outcome::Failed("forward DNS failed")
        } else {
            Outcome::Refuted("reverse DNS name does not resolve back")
        }
    }
}
