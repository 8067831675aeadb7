//! The immutable runtime view of one config: what every request reads, swapped whole on reload.

use crate::upstream::UpstreamPool;
use rampart_config::{Config, Route};
use rampart_router::{RouteSpec, Router};
use std::collections::HashMap;
use std::sync::Arc;

pub struct RouteRt {
    pub spec: Route,
    pub pool: Arc<UpstreamPool>,
}

pub struct Snapshot {
    pub generation: u64,
    pub config: Config,
    pub router: Router,
    pub routes: Vec<RouteRt>,
    pub pools: HashMap<String, Arc<UpstreamPool>>,
}

impl Snapshot {
    /// Build from a validated config, reusing the pools (and their health state) of
    /// upstreams whose definition did not change.
    pub fn build(
        config: Config,
        previous: Option<&Snapshot>,
        generation: u64,
        rt: &tokio::runtime::Handle,
    ) -> Result<Snapshot, String> {
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
        let routes = config
            .routes
            .iter()
            .map(|r| RouteRt {
                spec: r.clone(),
                pool: pools[&r.upstream].clone(),
            })
            .collect();
        Ok(Snapshot {
            generation,
            config,
            router,
            routes,
            pools,
        })
    }
}
