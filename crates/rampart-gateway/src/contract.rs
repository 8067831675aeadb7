//! Routes' API contracts: their OpenAPI descriptions loaded at snapshot build (once per
//! file, and kept across reloads while the file is unchanged).

use crate::snapshot::Problem;
use rampart_config::{Config, RouteOpenApi};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// One route's contract.
pub struct ContractRt {
    pub spec: Arc<rampart_openapi::Spec>,
    pub cfg: RouteOpenApi,
    /// The description file when it was read, to notice a change.
    pub stamp: (PathBuf, Option<SystemTime>, u64),
    /// Loaded with its responses compiled.
    pub responses: bool,
}

/// An API operation that is a route of its own (`openapi.operations`).
pub struct OpRt {
    /// `route:key`, in metrics, limits and authorization.
    pub label: String,
    /// Who may call it, in addition to the route's policy.
    pub policy: Option<rampart_authz::RoutePolicy>,
    /// Its limits, in addition to the route's.
    pub limits: Vec<rampart_limits::LimitRt>,
    /// Its upstream, instead of the route's.
    pub pool: Option<Arc<crate::upstream::UpstreamPool>>,
}

/// Each route's operations with settings of their own, by their place in the description.
pub fn operations(
    c: &Config,
    contracts: &[Option<Arc<ContractRt>>],
    policies: &mut [std::collections::BTreeMap<String, rampart_authz::RoutePolicy>],
    pools: &HashMap<String, Arc<crate::upstream::UpstreamPool>>,
) -> Result<Vec<HashMap<rampart_openapi::OpRef, Arc<OpRt>>>, Vec<Problem>> {
    let mut errs = Vec::new();
    let mut out = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        let mut ops = HashMap::new();
        let settings = r.openapi.iter().flat_map(|o| &o.operations);
        for (key, s) in settings {
            let at = format!("routes.{i}.openapi.operations.{key}");
            let Some(contract) = contracts.get(i).and_then(|c| c.as_ref()) else {
                continue;
            };
            let Some(op) = contract.spec.by_key(key) else {
                errs.push((
                    at,
                    format!(
                        "no operation {key:?} in {} (name it by operationId or as METHOD /path/template)",
                        contract.cfg.spec
                    ),
                ));
                continue;
            };
            let label = format!("{}:{key}", r.name);
            let mut limits = Vec::new();
            for (j, l) in s.rate_limit.iter().flatten().enumerate() {
                match rampart_limits::LimitRt::compile(&format!("{label}-{j}"), l) {
                    Ok(rt) if rt.uses_redis() && c.redis.is_none() => errs.push((
                        format!("{at}.rate_limit.{j}.backend"),
                        "backend: redis needs a top-level redis: URL".into(),
                    )),
                    Ok(rt) => limits.push(rt),
                    Err(e) => errs.push((format!("{at}.rate_limit.{j}"), e.to_string())),
                }
            }
            let policy = policies.get_mut(i).and_then(|p| p.remove(key));
            let pool = s.upstream.as_ref().and_then(|u| pools.get(u).cloned());
            if ops.contains_key(&op.at) {
                errs.push((at, "names an operation another key already names".into()));
                continue;
            }
            ops.insert(
                op.at,
                Arc::new(OpRt {
                    label,
                    policy,
                    limits,
                    pool,
                }),
            );
        }
        out.push(ops);
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Each route's contract (`None` for routes without one).
pub fn build(
    c: &Config,
    previous: Option<&crate::snapshot::Snapshot>,
) -> Result<Vec<Option<Arc<ContractRt>>>, Vec<Problem>> {
    let mut loaded: HashMap<(&str, bool), Arc<rampart_openapi::Spec>> = HashMap::new();
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        let Some(o) = &r.openapi else {
            out.push(None);
            continue;
        };
        let stamp = crate::network::stamp(&o.spec);
        // Response schemas are compiled only for routes that check responses.
        let responses = o.response != rampart_config::ContractMode::Off;
        let key = (o.spec.as_str(), responses);
        let reused = loaded.get(&key).cloned().or_else(|| {
            previous?
                .routes
                .iter()
                .filter_map(|r| r.contract.as_ref())
                .find(|k| k.stamp == stamp && k.responses == responses)
                .map(|k| k.spec.clone())
        });
        let opts = rampart_openapi::LoadOptions { responses };
        let spec = match reused {
            Some(s) => s,
            None => match rampart_openapi::Spec::load_with(std::path::Path::new(&o.spec), opts) {
                Ok(s) => Arc::new(s),
                Err(e) => {
                    errs.push((format!("routes.{i}.openapi.spec"), e.to_string()));
                    out.push(None);
                    continue;
                }
            },
        };
        if !o.security.is_empty() {
            // Every scheme an operation names must say which authenticator meets it: an
            // unmapped one could never be met (or, worse, be skipped).
            let missing: Vec<&str> = spec
                .security_schemes()
                .into_iter()
                .filter(|s| !o.security.contains_key(*s))
                .collect();
            if !missing.is_empty() {
                errs.push((
                    format!("routes.{i}.openapi.security"),
                    format!(
                        "the description's operations use security schemes not mapped here: {}",
                        missing.join(", ")
                    ),
                ));
            }
            if r.auth.as_ref().is_none_or(|a| !a.optional) {
                errs.push((
                    format!("routes.{i}.openapi.security"),
                    "needs `auth: {methods: [...], optional: true}` on the route: operations \
                     without security must stay reachable without credentials"
                        .into(),
                ));
            }
        }
        loaded.insert(key, spec.clone());
        out.push(Some(Arc::new(ContractRt {
            spec,
            cfg: o.clone(),
            stamp,
            responses,
        })));
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// The description files in force, watched like list files: an edited description is
/// re-read (and refused, keeping the old one, if it no longer loads).
pub fn file_stamps(snap: &crate::snapshot::Snapshot) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let contracts = snap
        .routes
        .iter()
        .filter_map(|r| r.contract.as_ref())
        .map(|c| crate::network::stamp(&c.cfg.spec));
    let docs = snap
        .routes
        .iter()
        .filter_map(|r| r.docs.as_ref())
        .map(|d| crate::network::stamp(&d.cfg.spec));
    contracts.chain(docs).collect()
}

/// A route's published documentation, rendered once per description.
pub struct DocsRt {
    pub cfg: rampart_config::RouteDocs,
    /// The published description, as served.
    pub json: bytes::Bytes,
    /// The same, to filter by the caller's groups (`by_groups`).
    pub value: serde_json::Value,
}

/// Each route's documentation (`None` for routes without `docs`).
pub fn build_docs(
    c: &Config,
    previous: Option<&crate::snapshot::Snapshot>,
) -> Result<Vec<Option<Arc<DocsRt>>>, Vec<Problem>> {
    let _ = previous; // published documents are small: rebuilt on every reload
    let mut out = Vec::new();
    let mut errs = Vec::new();
    for (i, r) in c.routes.iter().enumerate() {
        let Some(d) = &r.docs else {
            out.push(None);
            continue;
        };
        match rampart_openapi::public_document(
            std::path::Path::new(&d.spec),
            d.server_url.as_deref(),
        ) {
            Ok(v) => {
                out.push(Some(Arc::new(DocsRt {
                    cfg: d.clone(),
                    json: bytes::Bytes::from(v.to_string()),
                    value: v,
                })));
            }
            Err(e) => {
                errs.push((format!("routes.{i}.docs.spec"), e.to_string()));
                out.push(None);
            }
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// An RFC 9457 problem document for a refused request: the violations unless the route
/// hides them.
pub fn problem(refusal: &rampart_openapi::Refusal, show: bool, request_id: &str) -> bytes::Bytes {
    let title = match refusal.status {
        404 => "No such operation in the API",
        405 => "Method not allowed by the API",
        415 => "Unsupported media type",
        _ => "Request does not match the API contract",
    };
    let errors = show.then(|| serde_json::to_value(&refusal.violations).unwrap_or_default());
    problem_doc(refusal.status, title, errors, request_id)
}

/// An RFC 9457 document: `errors` (each with pointer, keyword, message) when given.
pub fn problem_doc(
    status: u16,
    title: &str,
    errors: Option<serde_json::Value>,
    request_id: &str,
) -> bytes::Bytes {
    let mut doc = serde_json::json!({
        "type": "about:blank",
        "title": title,
        "status": status,
        "request_id": request_id,
    });
    if let Some(e) = errors {
        doc["errors"] = e;
    }
    bytes::Bytes::from(doc.to_string())
}

/// A GraphQL route's limits, ready for `rampart-graphql`.
pub struct GraphqlRt {
    pub cfg: rampart_config::RouteGraphql,
    pub limits: rampart_graphql::Limits,
}

impl GraphqlRt {
    pub fn new(cfg: &rampart_config::RouteGraphql) -> GraphqlRt {
        GraphqlRt {
            limits: rampart_graphql::Limits {
                max_depth: cfg.max_depth,
                max_aliases: cfg.max_aliases,
                max_fields: cfg.max_fields,
                max_cost: cfg.max_cost,
                default_page: cfg.default_page,
                max_batch: cfg.max_batch,
                introspection: cfg.introspection,
                allow_list: (!cfg.persisted_queries.is_empty()).then(|| {
                    cfg.persisted_queries
                        .iter()
                        .map(|h| h.to_ascii_lowercase())
                        .collect()
                }),
            },
            cfg: cfg.clone(),
        }
    }
}

/// Documentation with `by_groups` shows each caller the operations its groups may call:
/// where a route serves the same description, the groups of its `authorize` (and of an
/// operation's own `authorize`) become the operations' `x-groups`, unless the description
/// already says.
pub fn docs_with_route_groups(
    c: &Config,
    contracts: &[Option<Arc<ContractRt>>],
    docs: Vec<Option<Arc<DocsRt>>>,
) -> Vec<Option<Arc<DocsRt>>> {
    docs.into_iter()
        .map(|d| {
            let d = d?;
            if !d.cfg.by_groups {
                return Some(d);
            }
            let mut groups: HashMap<(String, String), Vec<String>> = HashMap::new();
            for (i, r) in c.routes.iter().enumerate() {
                let (Some(o), Some(Some(k))) = (&r.openapi, contracts.get(i)) else {
                    continue;
                };
                if o.spec != d.cfg.spec {
                    continue;
                }
                let route_groups = r.authorize.as_ref().map(|a| a.groups.clone());
                for op in k.spec.all() {
                    let own = o.operations.iter().find_map(|(key, s)| {
                        let a = s.authorize.as_ref().filter(|a| !a.groups.is_empty())?;
                        (k.spec.by_key(key).map(|x| x.at) == Some(op.at)).then(|| a.groups.clone())
                    });
                    let g = own.or_else(|| route_groups.clone().filter(|g| !g.is_empty()));
                    if let Some(g) = g {
                        groups.insert((op.method.to_ascii_lowercase(), op.path.clone()), g);
                    }
                }
            }
            if groups.is_empty() {
                return Some(d);
            }
            let mut value = d.value.clone();
            for ((method, path), g) in groups {
                let op = value
                    .get_mut("paths")
                    .and_then(|p| p.get_mut(&path))
                    .and_then(|i| i.get_mut(&method))
                    .and_then(|o| o.as_object_mut());
                if let Some(op) = op {
                    op.entry("x-groups").or_insert_with(|| serde_json::json!(g));
                }
            }
            Some(Arc::new(DocsRt {
                cfg: d.cfg.clone(),
                json: d.json.clone(),
                value,
            }))
        })
        .collect()
}
