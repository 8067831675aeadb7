//! The immutable runtime view of one config: what every request reads, swapped whole on reload.

use crate::upstream::UpstreamPool;
use rampart_config::{Config, Route};
use rampart_router::{RouteSpec, Router};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct RouteRt {
    pub spec: Route,
    /// `None` only for a route that serves `docs` alone.
    pub pool: Option<Arc<UpstreamPool>>,
    pub policy: Option<rampart_authz::RoutePolicy>,
    pub limits: Vec<rampart_limits::LimitRt>,
    pub waf: Option<crate::waf::RouteWaf>,
    /// Which client networks may use the route.
    pub network: Option<crate::network::PolicyRt>,
    /// The API contract requests must keep to.
    pub contract: Option<Arc<crate::contract::ContractRt>>,
    /// GraphQL limits.
    pub graphql: Option<crate::contract::GraphqlRt>,
    /// Documentation the route serves.
    pub docs: Option<Arc<crate::contract::DocsRt>>,
    /// What the route does per bot verdict.
    pub(crate) bots: crate::stages::bots::RouteActions,
    /// API operations with settings of their own (`openapi.operations`).
    pub operations: HashMap<rampart_openapi::OpRef, Arc<crate::contract::OpRt>>,
    /// Which other sites' pages may call the route.
    pub(crate) cors: Option<Arc<crate::stages::CorsRt>>,
    /// The route's rules engine (`None`: no rules).
    pub rules: Option<rampart_rules::RuleSet>,
}

/// A problem in the config: the dotted path it concerns (located in the file by
/// `rampart-config`) and what is wrong.
pub type Problem = (String, String);

/// Compile each route's rules engine; a route with an API contract may not rewrite paths
/// (the contract describes the paths its backend serves, and was matched on the path sent).
fn compile_rules(c: &Config, errs: &mut Vec<Problem>) -> Vec<Option<rampart_rules::RuleSet>> {
    let known = rampart_rules::Known {
        upstreams: &|u| c.upstreams.contains_key(u),
        lists: &|l| c.network.lists.contains_key(l),
        consumers: &|id| c.consumers.iter().any(|k| k.id == id),
        countries: c.network.geoip.country_db.is_some(),
    };
    c.routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            if r.rules.is_empty() {
                return None;
            }
            match rampart_rules::RuleSet::compile(&r.rules, &known) {
                Ok(set) => {
                    if set.rewrites() && r.openapi.is_some() {
                        errs.push((
                            format!("routes.{i}.rules"),
                            "a route with an API contract (openapi) cannot rewrite paths: the \
                             contract was matched on the path the client sent"
                                .into(),
                        ));
                    }
                    Some(set)
                }
                Err(es) => {
                    errs.extend(
                        es.into_iter()
                            .map(|(p, m)| (format!("routes.{i}.rules.{p}"), m)),
                    );
                    None
                }
            }
        })
        .collect()
}

/// Compile every limit of a config: each route's own limits, or the global ones.
fn compile_limits(c: &Config) -> Result<Vec<Vec<rampart_limits::LimitRt>>, Vec<Problem>> {
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
                errs.push((path, e.to_string()));
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
        if r.concurrency.as_ref().is_some_and(|cc| cc.limit == 0) {
            errs.push((
                format!("routes.{i}.concurrency.limit"),
                "must be at least 1".into(),
            ));
        }
    }
    if errs.is_empty() {
        Ok(per_route)
    } else {
        Err(errs)
    }
}

/// What a request needs to know about the listener it arrived on.
pub struct ListenerRt {
    pub addr: SocketAddr,
    pub redirect_https: bool,
    pub https_port: u16,
    pub hsts: Option<String>,
    pub max_connections_per_ip: Option<u32>,
    pub max_connections: Option<u32>,
    /// Which client networks the listener admits.
    pub network: Option<crate::network::PolicyRt>,
    /// Connections start with a PROXY protocol header.
    pub proxy_protocol: bool,
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
    pub routes: Vec<Arc<RouteRt>>,
    pub pools: HashMap<String, Arc<UpstreamPool>>,
    /// The compiled WAF rules (one set, shared by every route that runs the WAF).
    pub waf: Option<Arc<crate::waf::WafRt>>,
    /// How request paths are made canonical (from `requests`).
    pub path_policy: rampart_router::PathPolicy,
    /// The named network lists.
    pub lists: std::collections::BTreeMap<String, crate::network::ListRt>,
    /// How the client address is found behind trusted proxies.
    pub client_ip: rampart_net::ClientIp,
    /// The geolocation databases (countries, autonomous systems).
    pub geo: Arc<crate::network::GeoRt>,
    /// Who is banned (this node's list, or the one shared through Redis).
    pub bans: Arc<rampart_bans::BanList>,
    /// The automatic response playbooks.
    pub responses: Arc<rampart_bans::Responses>,
    /// The bot classifier and its DNS checker.
    pub(crate) bots: Option<Arc<crate::stages::bots::BotsRt>>,
    /// The browser challenge's signing keys, when a route requires the challenge.
    pub challenge: Option<Arc<rampart_bots::challenge::Keys>>,
    /// `server.overload.allowlist` as a policy (clients it allows are shed last).
    pub overload_allow: Option<crate::network::PolicyRt>,
}

impl Snapshot {
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

    /// The one build of a config, for `rampart validate`, startup and every reload: each
    /// part is checked and compiled once (rules, limits, policies, credentials), and every
    /// problem is returned with its config path. State that must outlive a reload (pools
    /// and their health, limiter buckets, in-flight counts, lockout counters, rules whose
    /// files did not change) is taken from `env.previous` when its settings are the same.
    pub fn build(config: Config, env: &BuildEnv) -> Result<Snapshot, Vec<Problem>> {
        let previous = env.previous;
        let mut errs = Vec::new();
        // Lockout counters outlive reloads unless their settings change.
        let lockout = match previous {
            Some(p) if p.lockout.settings() == &config.auth.lockout => Some(p.lockout.clone()),
            _ => rampart_auth::Lockout::new(config.auth.lockout.clone())
                .map(Arc::new)
                .map_err(|e| errs.push(("auth.lockout".into(), e.to_string())))
                .ok(),
        };
        let auth = lockout.clone().and_then(|lockout| {
            rampart_auth::Authenticator::new(&config.consumers, &config.auth, lockout)
                .map(Arc::new)
                .map_err(|e| errs.extend(e))
                .ok()
        });
        // Limiter state (buckets, quotas) outlives reloads while Redis stays the same.
        let limiter = match previous {
            Some(p) if p.config.redis == config.redis => Some(p.limiter.clone()),
            _ => rampart_limits::Limiter::new(config.redis.as_deref(), 2_000_000)
                .map(Arc::new)
                .map_err(|e| errs.push(("redis".into(), e.to_string())))
                .ok(),
        };
        let route_limits = compile_limits(&config).map_err(|e| errs.extend(e)).ok();
        let bots = crate::stages::bots::build(&config, previous, env.runtime)
            .map(Arc::new)
            .map_err(|e| errs.extend(e))
            .ok();
        let bot_actions = crate::stages::bots::route_actions(&config)
            .map_err(|e| errs.extend(e))
            .ok();
        let policies = rampart_authz::compile_policies(config.cedar.as_ref(), &config.routes)
            .map_err(|e| errs.extend(e))
            .ok();
        let waf = match &config.waf {
            Some(w) => crate::waf::WafRt::build(w, previous.and_then(|p| p.waf.as_ref()))
                .map_err(|e| errs.extend(e))
                .ok(),
            None => None,
        };
        let route_wafs: Vec<_> = config
            .routes
            .iter()
            .enumerate()
            .map(|(i, r)| {
                crate::waf::RouteWaf::for_route(waf.as_ref(), r, i)
                    .map_err(|e| errs.extend(e))
                    .ok()
                    .flatten()
            })
            .collect();
        let lists = crate::network::build_lists(&config.network, previous.map(|p| &p.lists))
            .map_err(|e| errs.extend(e))
            .ok();
        let geo = crate::network::GeoRt::build(&config.network.geoip, previous.map(|p| &p.geo))
            .map_err(|e| errs.extend(e))
            .ok();
        let bans = crate::network::ban_list(&config, previous, env.runtime)
            .map_err(|e| errs.extend(e))
            .ok();
        let responses = bans.as_ref().and_then(|b| {
            crate::network::responses(&config, b, previous)
                .map_err(|e| errs.extend(e))
                .ok()
        });
        let contracts = crate::contract::build(&config, previous)
            .map_err(|e| errs.extend(e))
            .ok();
        let docs = crate::contract::build_docs(&config, previous)
            .map_err(|e| errs.extend(e))
            .ok();
        let mut pools = HashMap::new();
        for (name, spec) in &config.upstreams {
            let reused = previous
                .and_then(|p| p.pools.get(name))
                .filter(|p| p.spec == *spec)
                .cloned();
            match reused
                .map(Ok)
                .unwrap_or_else(|| UpstreamPool::new(name, spec))
            {
                Ok(pool) => {
                    pools.insert(name.clone(), pool);
                }
                Err(e) => errs.push((format!("upstreams.{name}"), e.to_string())),
            }
        }
        let mut rules = compile_rules(&config, &mut errs);
        let mut cors = Vec::with_capacity(config.routes.len());
        for (i, r) in config.routes.iter().enumerate() {
            cors.push(r.cors.as_ref().and_then(|c| {
                match rampart_cors::Policy::compile(&c.settings()) {
                    Ok(policy) => Some(Arc::new(crate::stages::CorsRt {
                        policy,
                        refuse_other_origins: c.refuse_other_origins,
                    })),
                    Err(es) => {
                        let place = |f| format!("routes.{i}.cors.{f}");
                        errs.extend(es.into_iter().map(|e| (place(e.field), e.message)));
                        None
                    }
                }
            }));
        }
        let (
            Some(lockout),
            Some(auth),
            Some(limiter),
            Some(mut route_limits),
            Some(mut policies),
            Some(lists),
            Some(bans),
            Some(responses),
            Some(geo),
            Some(contracts),
            Some(docs),
            Some(bots),
            Some(bot_actions),
        ) = (
            lockout,
            auth,
            limiter,
            route_limits,
            policies,
            lists,
            bans,
            responses,
            geo,
            contracts,
            docs,
            bots,
            bot_actions,
        )
        else {
            return Err(errs);
        };
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut operations =
            crate::contract::operations(&config, &contracts, &mut policies.operations, &pools)?;
        let docs = crate::contract::docs_with_route_groups(&config, &contracts, docs);
        // Only a snapshot that will serve starts health checks (not `rampart validate`).
        if let Some(rt) = env.runtime {
            for (name, pool) in &pools {
                let fresh = previous
                    .and_then(|p| p.pools.get(name))
                    .is_none_or(|old| !Arc::ptr_eq(old, pool));
                if fresh {
                    UpstreamPool::spawn_health_checks(pool, rt);
                }
            }
        }
        let inflight = previous.map(|p| p.inflight.clone()).unwrap_or_default();
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
        let routes = config
            .routes
            .iter()
            .zip(route_wafs)
            .zip(contracts)
            .zip(docs)
            .zip(bot_actions)
            .enumerate()
            .map(|(i, ((((r, waf), contract), docs), bots))| {
                Arc::new(RouteRt {
                    spec: r.clone(),
                    pool: pools.get(&r.upstream).cloned(),
                    policy: policies.routes[i].take(),
                    limits: std::mem::take(&mut route_limits[i]),
                    waf,
                    network: r
                        .network
                        .as_ref()
                        .map(|p| crate::network::PolicyRt::new(p, &lists, &geo)),
                    contract,
                    graphql: r.graphql.as_ref().map(crate::contract::GraphqlRt::new),
                    docs,
                    operations: std::mem::take(&mut operations[i]),
                    bots,
                    cors: cors[i].take(),
                    rules: rules[i].take(),
                })
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
                    max_connections: l.max_connections,
                    network: l
                        .network
                        .as_ref()
                        .map(|p| crate::network::PolicyRt::new(p, &lists, &geo)),
                    proxy_protocol: l.proxy_protocol,
                })
            })
            .collect();
        let overload_allow = (!config.server.overload.allowlist.is_empty()).then(|| {
            crate::network::PolicyRt::new(
                &rampart_config::NetworkPolicy {
                    allow_only: config.server.overload.allowlist.clone(),
                    ..Default::default()
                },
                &lists,
                &geo,
            )
        });
        if env.runtime.is_some() && config.routes.iter().any(|r| r.cache.is_some()) {
            crate::cache::init(&config.cache);
        }
        Ok(Snapshot {
            overload_allow,
            generation: env.generation,
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
            client_ip: crate::network::client_ip(&config.server),
            responses,
            geo,
            bans,
            lists,
            bots: Some(bots),
            challenge: crate::stages::challenge_keys(&config),
            config,
        })
    }
}

/// What a build may reuse and start.
pub struct BuildEnv<'a> {
    /// The snapshot in force, whose state is kept where the settings did not change.
    pub previous: Option<&'a Snapshot>,
    pub generation: u64,
    /// Where health checks run; `None` only checks the config (`rampart validate`):
    /// nothing is started and nothing connects.
    pub runtime: Option<&'a tokio::runtime::Handle>,
}

impl BuildEnv<'static> {
    /// For `rampart validate`.
    pub fn check_only() -> BuildEnv<'static> {
        BuildEnv {
            previous: None,
            generation: 0,
            runtime: None,
        }
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
