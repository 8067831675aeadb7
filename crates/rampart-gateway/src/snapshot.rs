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
    pub limits: Vec<rampart_limits::LimitRt>,
    pub waf: Option<crate::waf::RouteWaf>,
}

/// Compile every limit of a config: each route's own limits, or the global ones.
fn compile_limits(c: &Config) -> Result<Vec<Vec<rampart_limits::LimitRt>>, Vec<(String, String)>> {
    let mut errs = Vec::new();
    let mut compile = |path: String, name: String, l: &rampart_config::RateLimit| {
        match rampart_limits::LimitRt::compile(&name, l) {
            Ok(rt) => {
                if rt.uses_redis() && c.redis.is_none() {
                    errs.push((
                        format!("{path}.backend"),
                        "backend: redis needs a top-level redis: URL".into(),
                    ));
                }
                Some(rt)
            }
            Err(e) => {
                errs.push((path, e));
                None
            }
        }
    };
    let global: Vec<_> = c
        .rate_limit
        .iter()
        .enumerate()
        .filter_map(|(i, l)| compile(format!("rate_limit.{i}"), format!("global-{i}"), l))
        .collect();
    let per_route: Vec<Vec<_>> = c
        .routes
        .iter()
        .enumerate()
        .map(|(ri, r)| match &r.rate_limit {
            Some(ls) => ls
                .iter()
                .enumerate()
                .filter_map(|(i, l)| {
                    compile(
                        format!("routes.{ri}.rate_limit.{i}"),
                        format!("{}-{i}", r.name),
                        l,
                    )
                })
                .collect(),
            None => global.clone(),
        })
        .collect();
    for (i, r) in c.routes.iter().enumerate() {
        if let Some(cc) = &r.concurrency {
            if cc.limit == 0 {
                errs.push((
                    format!("routes.{i}.concurrency.limit"),
                    "must be at least 1".into(),
                ));
            }
            if cc.key != "route" && cc.key != "consumer" {
                errs.push((
                    format!("routes.{i}.concurrency.key"),
                    "must be route or consumer".into(),
                ));
            }
        }
    }
    if let Some(u) = &c.redis {
        if let Err(e) = rampart_limits::Limiter::new(Some(u), 16) {
            errs.push(("redis".into(), e));
        }
    }
    if errs.is_empty() {
        Ok(per_route)
    } else {
        Err(errs)
    }
}

pub fn check_limits(c: &Config) -> Vec<(String, String)> {
    compile_limits(c).err().unwrap_or_default()
}

/// What a request needs to know about the listener it arrived on.
pub struct ListenerRt {
    pub addr: SocketAddr,
    pub redirect_https: bool,
    pub https_port: u16,
    pub hsts: Option<String>,
    pub max_connections_per_ip: Option<u32>,
}

pub struct Snapshot {
    pub generation: u64,
    pub limiter: Arc<rampart_limits::Limiter>,
    pub inflight: Arc<rampart_limits::InFlight>,
    pub auth: Arc<rampart_auth::Authenticator>,
    pub lockout: Arc<rampart_auth::Lockout>,
    pub listeners: Vec<ListenerRt>,
    pub config: Config,
    pub router: Router,
    pub routes: Vec<RouteRt>,
    pub pools: HashMap<String, Arc<UpstreamPool>>,
    /// The compiled WAF rules (one set, shared by every route that runs the WAF).
    pub waf: Option<Arc<crate::waf::WafRt>>,
    /// How request paths are made canonical (from `requests`).
    pub path_policy: rampart_router::PathPolicy,
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
        // Limiter state (buckets, quotas, in-flight counts) outlives reloads.
        let limiter = match previous {
            Some(p) if p.config.redis == config.redis => p.limiter.clone(),
            _ => Arc::new(rampart_limits::Limiter::new(
                config.redis.as_deref(),
                2_000_000,
            )?),
        };
        let inflight = previous.map(|p| p.inflight.clone()).unwrap_or_default();
        let mut route_limits = compile_limits(&config).map_err(|errs| {
            errs.into_iter()
                .map(|(p, m)| format!("{p}: {m}"))
                .collect::<Vec<_>>()
                .join("\n")
        })?;
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
        let waf = match &config.waf {
            Some(w) => Some(crate::waf::WafRt::build(
                w,
                previous.and_then(|p| p.waf.as_ref()),
            )?),
            None => None,
        };
        let routes = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| RouteRt {
                spec: r.clone(),
                pool: pools[&r.upstream].clone(),
                policy: r
                    .authorize
                    .as_ref()
                    .map(|a| rampart_authz::RoutePolicy::new(a, cedar.clone())),
                limits: std::mem::take(&mut route_limits[i]),
                waf: crate::waf::RouteWaf::for_route(waf.as_ref(), r),
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
                    max_connections_per_ip: l.max_connections_per_ip,
                })
            })
            .collect();
        Ok(Snapshot {
            generation,
            limiter,
            inflight,
            auth,
            lockout,
            listeners,
            router,
            routes,
            pools,
            waf,
            path_policy: path_policy(&config.requests),
            config,
        })
    }
}

fn path_policy(r: &rampart_config::RequestHygiene) -> rampart_router::PathPolicy {
    use rampart_config::KeepOrReject::Keep;
    rampart_router::PathPolicy {
        keep_encoded_slash: r.encoded_slash == Keep,
        keep_backslash: r.backslash == Keep,
        keep_semicolon: r.path_parameters == Keep,
        merge_slashes: r.merge_slashes,
    }
}
