//! Upstream pools: Pingora's load balancers (round robin, Ketama consistent hashing) with
//! active HTTP health checks, plus passive ejection of targets that keep failing.

use crate::metrics::metrics;
use pingora::lb::health_check::HttpHealthCheck;
use pingora::lb::selection::{Consistent, RoundRobin};
use pingora::lb::{Backend, LoadBalancer};
use pingora::prelude::RequestHeader;
use pingora::protocols::tls::CaType;
use pingora::upstreams::peer::HttpPeer;
use pingora::utils::tls::{parse_x509, CertKey, WrappedX509};
use rampart_config::{Balance, Upstream};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

enum Selector {
    RoundRobin(LoadBalancer<RoundRobin>),
    Hash(LoadBalancer<Consistent>),
}

/// Per-target passive state; atomics so the request path takes no lock.
struct Passive {
    addr: SocketAddr,
    label: String,
    consecutive_failures: AtomicU32,
    /// Milliseconds since `UpstreamPool::epoch` until which the target is skipped; 0 = never.
    ejected_until_ms: AtomicU64,
}

/// Verified TLS to the targets: SNI, roots, optional client certificate (mTLS both ways).
pub struct UpstreamTlsRt {
    pub sni: String,
    pub verify_hostname: bool,
    pub ca: Option<Arc<CaType>>,
    pub client: Option<Arc<CertKey>>,
}

impl UpstreamTlsRt {
    fn load(t: &rampart_config::UpstreamTls) -> Result<UpstreamTlsRt, crate::Error> {
        let m = rampart_tls::load_upstream_material(
            t.ca.as_deref().map(Path::new),
            t.client_cert.as_deref().map(Path::new),
            t.client_key.as_deref().map(Path::new),
        )
        .map_err(crate::Error::UpstreamTls)?;
        // DER was parsed by rampart-tls already, so Pingora's parser will not panic here.
        let ca = m.ca.map(|certs| {
            let v: Vec<WrappedX509> = certs
                .into_iter()
                .map(|der| WrappedX509::new(der, parse_x509))
                .collect();
            Arc::<CaType>::from(v)
        });
        let client = m
            .client
            .map(|(chain, key)| Arc::new(CertKey::new(chain, key)));
        Ok(UpstreamTlsRt {
            sni: t.sni.clone(),
            verify_hostname: t.verify_hostname,
            ca,
            client,
        })
    }

    pub fn peer(&self, addr: SocketAddr) -> HttpPeer {
        let mut p = HttpPeer::new(addr, true, self.sni.clone());
        p.options.verify_cert = true;
        p.options.verify_hostname = self.verify_hostname;
        p.options.ca = self.ca.clone();
        p.client_cert_key = self.client.clone();
        p
    }
}

pub struct UpstreamPool {
    pub name: String,
    pub spec: Upstream,
    pub tls: Option<UpstreamTlsRt>,
    selector: Selector,
    passive: Vec<Passive>,
    epoch: Instant,
    /// The adaptive concurrency limit, when the upstream has one.
    pub adaptive: Option<Arc<rampart_limits::adaptive::AdaptiveLimit>>,
}

impl UpstreamPool {
    pub fn new(name: &str, spec: &Upstream) -> Result<Arc<UpstreamPool>, crate::Error> {
        let addrs: Vec<SocketAddr> = spec
            .targets
            .iter()
            .map(|t| {
                t.parse()
                    .map_err(|_| crate::Error::UpstreamTarget { target: t.clone() })
            })
            .collect::<Result<_, _>>()?;
        let tls = spec.tls.as_ref().map(UpstreamTlsRt::load).transpose()?;
        let check = spec.health_check.as_ref().map(|hc| {
            let mut c = match &tls {
                Some(t) => {
                    let mut c = HttpHealthCheck::new(&t.sni, true);
                    c.peer_template = t.peer("0.0.0.0:1".parse().expect("static address"));
                    c
                }
                None => HttpHealthCheck::new("rampart-health-check", false),
            };
            let mut req = RequestHeader::build("GET", hc.path.as_bytes(), None)
                .expect("validated health check path");
            let host = tls
                .as_ref()
                .map_or("rampart-health-check", |t| t.sni.as_str());
            let _ = req.insert_header("Host", host);
            let _ = req.insert_header("User-Agent", "rampart-health-check");
            c.req = req;
            c.consecutive_failure = hc.unhealthy_after as usize;
            c.consecutive_success = hc.healthy_after as usize;
            c.peer_template.options.connection_timeout = Some(hc.timeout.0);
            c.peer_template.options.read_timeout = Some(hc.timeout.0);
            if spec.protocol == rampart_config::UpstreamProtocol::Http2 {
                c.peer_template.options.set_http_version(2, 2);
            }
            Box::new(c)
        });
        let targets = spec.targets.iter().map(|s| s.as_str());
        let selector = match spec.balance {
            Balance::RoundRobin => {
                let mut lb =
                    LoadBalancer::<RoundRobin>::try_from_iter(targets).map_err(|source| {
                        crate::Error::Balancer {
                            upstream: name.to_string(),
                            source,
                        }
                    })?;
                if let Some(c) = check {
                    lb.set_health_check(c);
                }
                Selector::RoundRobin(lb)
            }
            Balance::ConsistentHash => {
                let mut lb =
                    LoadBalancer::<Consistent>::try_from_iter(targets).map_err(|source| {
                        crate::Error::Balancer {
                            upstream: name.to_string(),
                            source,
                        }
                    })?;
                if let Some(c) = check {
                    lb.set_health_check(c);
                }
                Selector::Hash(lb)
            }
        };
        let passive = addrs
            .iter()
            .map(|a| Passive {
                addr: *a,
                label: a.to_string(),
                consecutive_failures: AtomicU32::new(0),
                ejected_until_ms: AtomicU64::new(0),
            })
            .collect();
        let pool = Arc::new(UpstreamPool {
            name: name.to_string(),
            spec: spec.clone(),
            tls,
            selector,
            passive,
            epoch: Instant::now(),
            adaptive: spec.adaptive_concurrency.as_ref().map(|a| {
                Arc::new(rampart_limits::adaptive::AdaptiveLimit::new(
                    rampart_limits::adaptive::AdaptiveSettings {
                        min: a.min,
                        max: a.max,
                        tolerance: a.tolerance,
                        backoff: a.backoff,
                        window: a.window.0,
                    },
                ))
            }),
        });
        pool.publish_health();
        Ok(pool)
    }

    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64 + 1
    }

    fn passive_for(&self, addr: &SocketAddr) -> Option<&Passive> {
        self.passive.iter().find(|p| p.addr == *addr)
    }

    fn ejected(&self, addr: &SocketAddr, now_ms: u64) -> bool {
        self.passive_for(addr)
            .map(|p| p.ejected_until_ms.load(Ordering::Relaxed) > now_ms)
            .unwrap_or(false)
    }

    /// Pick a healthy, not ejected target that was not tried yet for this request.
    pub fn select(&self, key: &[u8], tried: &[SocketAddr]) -> Option<SocketAddr> {
        let now = self.now_ms();
        let accept = |b: &Backend, healthy: bool| {
            let Some(a) = b.addr.as_inet() else {
                return false;
            };
            healthy && !tried.contains(a) && !self.ejected(a, now)
        };
        let max = 256;
        let b = match &self.selector {
            Selector::RoundRobin(lb) => lb.select_with(key, max, accept),
            Selector::Hash(lb) => lb.select_with(key, max, accept),
        }?;
        b.addr.as_inet().copied()
    }

    /// A connection to `addr` failed; after `passive.failures` in a row it is ejected.
    pub fn report_failure(&self, addr: &SocketAddr, kind: &str) {
        let Some(p) = self.passive_for(addr) else {
            return;
        };
        metrics()
            .upstream_failures
            .with_label_values(&[&self.name, &p.label, kind])
            .inc();
        let n = p.consecutive_failures.fetch_add(1, Ordering::Relaxed) + 1;
        if n >= self.spec.passive.failures {
            let until = self.now_ms() + self.spec.passive.eject_for.0.as_millis() as u64;
            p.ejected_until_ms.store(until, Ordering::Relaxed);
            p.consecutive_failures.store(0, Ordering::Relaxed);
            log::warn!(
                "upstream {} target {} ejected for {:?} after {} failures",
                self.name,
                p.label,
                self.spec.passive.eject_for.0,
                n
            );
            self.publish_health();
        }
    }

    pub fn report_success(&self, addr: &SocketAddr) {
        if let Some(p) = self.passive_for(addr) {
            if p.consecutive_failures.load(Ordering::Relaxed) != 0 {
                p.consecutive_failures.store(0, Ordering::Relaxed);
            }
        }
    }

    fn backend_ready(&self, addr: &SocketAddr) -> bool {
        let Ok(b) = Backend::new(&addr.to_string()) else {
            return false;
        };
        match &self.selector {
            Selector::RoundRobin(lb) => lb.backends().ready(&b),
            Selector::Hash(lb) => lb.backends().ready(&b),
        }
    }

    /// Each target: its address, whether active checks pass, whether it is ejected.
    pub fn health(&self) -> Vec<(String, bool, bool)> {
        let now = self.now_ms();
        self.passive
            .iter()
            .map(|p| {
                (
                    p.label.clone(),
                    self.backend_ready(&p.addr),
                    self.ejected(&p.addr, now),
                )
            })
            .collect()
    }

    /// Export each target's state as a gauge: 1 = healthy and not ejected.
    pub fn publish_health(&self) {
        let now = self.now_ms();
        for p in &self.passive {
            let up = self.backend_ready(&p.addr) && !self.ejected(&p.addr, now);
            metrics()
                .upstream_healthy
                .with_label_values(&[&self.name, &p.label])
                .set(up as i64);
        }
    }

    async fn run_health_check(&self) {
        match &self.selector {
            Selector::RoundRobin(lb) => lb.backends().run_health_check(true).await,
            Selector::Hash(lb) => lb.backends().run_health_check(true).await,
        }
        self.publish_health();
    }

    /// Run active checks until the pool is dropped by a config reload.
    pub fn spawn_health_checks(pool: &Arc<UpstreamPool>, rt: &tokio::runtime::Handle) {
        let Some(hc) = &pool.spec.health_check else {
            return;
        };
        let interval = hc.interval.0;
        let weak: Weak<UpstreamPool> = Arc::downgrade(pool);
        rt.spawn(async move {
            loop {
                let Some(pool) = weak.upgrade() else { break };
                pool.run_health_check().await;
                drop(pool);
                tokio::time::sleep(interval).await;
            }
        });
        // Ejections expire silently; refresh the gauges so they come back.
        let weak: Weak<UpstreamPool> = Arc::downgrade(pool);
        rt.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(pool) = weak.upgrade() else { break };
                pool.publish_health();
            }
        });
    }
}
