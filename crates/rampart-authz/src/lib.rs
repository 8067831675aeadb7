//! Rampart's authorization engine, free of proxy types: may this consumer perform this
//! operation on this route? Least privilege: a route that names a policy allows only what
//! the policy allows, and anything that cannot be evaluated is denied.
//!
//! Conditions, in increasing power: consumer / group allow and deny lists, OAuth scopes,
//! claim conditions (equals, one of, glob, present/absent; nested claims by dotted path),
//! per-operation rules (method + path pattern), and Cedar policies whose principal is the
//! consumer (groups as parents), action the operation, resource the route, and context the
//! claims, client IP, mTLS identity and time.

mod cedar;
mod error;
mod rules;

pub use cedar::{CedarError, CedarPolicies};
pub use error::Error;
pub use rules::{path_matches, scopes_of, Rule};

use rampart_config::{Authorize, DefaultAuthorization};
use serde_json::Value;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// The facts a decision is made on.
pub struct AuthzRequest<'a> {
    /// The authenticated consumer's id; `None` for an anonymous request.
    pub consumer: Option<&'a str>,
    /// The consumer's groups.
    pub groups: &'a [String],
    /// Token claims (JWT, introspection), for scopes and claim conditions.
    pub claims: Option<&'a Value>,
    /// The request method.
    pub method: &'a str,
    /// The canonical request path, matched against operation patterns.
    pub path: &'a str,
    /// The route's name (the Cedar resource).
    pub route: &'a str,
    /// The client's address (in the Cedar context).
    pub client_ip: Option<IpAddr>,
    /// Verified client certificate: (subject CN, SHA-256 fingerprint).
    pub mtls: Option<(Option<&'a str>, &'a str)>,
    /// The time of the request (in the Cedar context).
    pub now: SystemTime,
}

/// The outcome, with what decided it (for logs and events, never for the client).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// What decided, for logs and events.
    pub reason: String,
    /// Cedar policy ids (their `@id` annotation when present) that determined the result.
    pub policies: Vec<String>,
}

impl Decision {
    fn allow(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: true,
            reason: reason.into(),
            policies: Vec::new(),
        }
    }
    fn deny(reason: impl Into<String>) -> Decision {
        Decision {
            allowed: false,
            reason: reason.into(),
            policies: Vec::new(),
        }
    }
}

struct OperationRt {
    methods: Vec<String>,
    path: String,
    action: Option<String>,
    rule: Rule,
}

/// One route's compiled policy.
pub struct RoutePolicy {
    rule: Rule,
    operations: Vec<OperationRt>,
    cedar: Option<Arc<CedarPolicies>>,
}

impl RoutePolicy {
    /// `cedar` must be given when `a.cedar` is set (config validation guarantees it).
    pub fn new(a: &Authorize, cedar: Option<Arc<CedarPolicies>>) -> RoutePolicy {
        RoutePolicy {
            rule: Rule::from_authorize(a),
            operations: a
                .operations
                .iter()
                .map(|o| OperationRt {
                    methods: o.methods.clone(),
                    path: o.path.clone(),
                    action: o.operation_id.clone(),
                    rule: Rule::from_operation(o),
                })
                .collect(),
            cedar: if a.cedar { cedar } else { None },
        }
    }

    /// The route-level conditions, then the first matching operation's, then Cedar when enabled.
    pub fn decide(&self, r: &AuthzRequest) -> Decision {
        if let Err(why) = self.rule.check(r) {
            return Decision::deny(why.to_string());
        }
        let mut action = None;
        if !self.operations.is_empty() {
            let op = self.operations.iter().find(|o| {
                (o.methods.is_empty() || o.methods.iter().any(|m| m == r.method))
                    && path_matches(&o.path, r.path)
            });
            let Some(op) = op else {
                return Decision::deny("no operation rule matches");
            };
            if let Err(why) = op.rule.check(r) {
                return Decision::deny(format!("operation {}: {why}", op.path));
            }
            action = op.action.as_deref();
        }
        match &self.cedar {
            Some(c) => c.decide(r, action.unwrap_or(r.method)),
            None => Decision::allow("conditions met"),
        }
    }
}

/// What a route without `authorize` does with an authenticated request.
pub fn default_decision(d: DefaultAuthorization) -> Decision {
    match d {
        DefaultAuthorization::Allow => Decision::allow("authenticated (default allow)"),
        DefaultAuthorization::Deny => Decision::deny("no authorize policy (default deny)"),
    }
}

/// Every route's policy and its API operations' (`openapi.operations.*.authorize`).
pub struct Policies {
    /// Index `i` is route `i`'s, `None` for a route without `authorize`.
    pub routes: Vec<Option<RoutePolicy>>,
    /// Index `i` holds route `i`'s operations' policies by operation key.
    pub operations: Vec<std::collections::BTreeMap<String, RoutePolicy>>,
}

/// Every policy, compiled once per config (the Cedar files loaded and validated once,
/// shared by the routes and operations that use them). Cedar problems are reported at
/// `cedar.policies`.
pub fn compile_policies(
    cedar: Option<&rampart_config::CedarFiles>,
    routes: &[rampart_config::Route],
) -> Result<Policies, Vec<(String, String)>> {
    let cedar = match cedar {
        Some(cd) => Some(Arc::new(
            CedarPolicies::load(&cd.policies, cd.entities.as_deref(), cd.schema.as_deref())
                .map_err(|errs| {
                    errs.iter()
                        .map(|e| ("cedar.policies".to_string(), e.to_string()))
                        .collect::<Vec<_>>()
                })?,
        )),
        None => None,
    };
    Ok(Policies {
        routes: routes
            .iter()
            .map(|r| {
                r.authorize
                    .as_ref()
                    .map(|a| RoutePolicy::new(a, cedar.clone()))
            })
            .collect(),
        operations: routes
            .iter()
            .map(|r| {
                r.openapi
                    .iter()
                    .flat_map(|o| &o.operations)
                    .filter_map(|(k, op)| {
                        let a = op.authorize.as_ref()?;
                        Some((k.clone(), RoutePolicy::new(a, cedar.clone())))
                    })
                    .collect()
            })
            .collect(),
    })
}
