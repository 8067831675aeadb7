//! The immutable runtime view of one config: what every request reads, swapped whole on reload.

use crate::upstream::UpstreamPool;
use rampart_config::{Config, Route};
use rampart_router::{RouteSpec, Router};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct RouteRt {
    pub spec: Route,
    pub pool: Arc<UpstreamPool>,
    pub policy: Option<rampart_authz::RoutePolicy>,
}

/// What a request needs to know about the listener it arrived on.
pub struct ListenerRt {
    pub addr: SocketAddr,
    pub redirect_https: bool,
    pub https_port: u16,
    pub hsts: Option<String>,
}

pub struct Snapshot {
    pub generation: u64,
    pub auth: Arc<rampart_auth::Authenticator>,
    pub lockout: Arc<rampart_auth::Lockout>,
    pub listeners: Vec<ListenerRt>,
    pub config: Config,
    pub router: Router,
    pub routes: Vec<RouteRt>,
    pub pools: HashMap<String, Arc<UpstreamPool>>,
}

impl Snapshot {
    /// Build from a validated config, reusing the pools (and their health state) of
    /// upstreams whose definition did not change.
    /// The listener a connection arrived on: exact address, else the same port (wildcard binds).
    pub fn listener_for(&self, local: SocketAddr) -> Option<usize> {
        self.listeners
            .iter()
            .position(|l| l.addr == local)
            .or_else(|| {
                self.listeners
                    .iter()
                    .position(|l| l.addr.port() == local.port())
            })
    }

    pub fn build(
        config: Config,
        previous: Option<&Snapshot>,
        generation: u64,
        rt: &tokio::runtime::Handle,
    ) -> Result<Snapshot, String> {
        // Lockout counters outlive reloads unless their settings change.
        let lockout = match previous {
            Some(p) if p.lockout.settings() == &config.auth.lockout => p.lockout.clone(),
            _ => {
                let settings = config.auth.lockout.clone();
                let (tx, rx) = std::sync::mpsc::channel();
                rt.spawn(async move {
                    let _ = tx.send(rampart_auth::Lockout::new(settings).await);
                });
                Arc::new(
                    rx.recv()
                        .map_err(|_| "lockout setup was interrupted".to_string())??,
                )
            }
        };
        let auth = Arc::new(rampart_auth::Authenticator::new(&config, lockout.clone())?);
        let mut pools = HashMap::new();
        for (name, spec) in &config.upstreams {
            let reused = previous
                .and_then(|p| p.pools.get(name))
                .filter(|p| p.spec == *spec)
                .cloned();
            let pool = match reused {
                Some(p) => p,
                None => {
                    let p = UpstreamPool::new(name, spec)?;
                    UpstreamPool::spawn_health_checks(&p, rt);
                    p
                }
            };
            pools.insert(name.clone(), pool);
        }
        let router = Router::new(
            &config
                .routes
                .iter()
                .map(|r| RouteSpec {
                    hosts: r.hosts.clone(),
                    paths: r.paths.clone(),
                    methods: r.methods.clone(),
                })
                .collect::<Vec<_>>(),
        );
        let cedar = match &config.cedar {
            Some(c) => Some(Arc::new(
                rampart_authz::CedarPolicies::load(
                    &c.policies,
                    c.entities.as_deref(),
                    c.schema.as_deref(),
                )
                .map_err(|errs| {
                    errs.iter()
                        .map(|e| e.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                })?,
            )),
            None => None,
        };
        let routes = config
            .routes
            .iter()
            .map(|r| RouteRt {
                spec: r.clone(),
                pool: pools[&r.upstream].clone(),
                policy: r
                    .authorize
                    .as_ref()
                    .map(|a| rampart_authz::RoutePolicy::new(a, cedar.clone())),
            })
            .collect();
        let first_tls_port = config
            .listeners
            .iter()
            .find(|l| l.tls.is_some())
            .and_then(|l| l.address.parse::<SocketAddr>().ok())
            .map(|a| a.port())
            .unwrap_or(443);
        let listeners = config
            .listeners
            .iter()
            .filter_map(|l| {
                Some(ListenerRt {
                    addr: l.address.parse().ok()?,
                    redirect_https: l.redirect_https,
                    https_port: l.https_port.unwrap_or(first_tls_port),
                    hsts: l.hsts.as_ref().map(|h| h.header_value()),
                })
            })
            .collect();
        Ok(Snapshot {
            generation,
            auth,
            lockout,
            listeners,
            config,
            router,
            routes,
            pools,
        })
    }
}
