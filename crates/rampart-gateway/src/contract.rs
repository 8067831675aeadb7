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
