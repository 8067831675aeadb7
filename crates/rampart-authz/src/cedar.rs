//! Cedar policies: loaded and validated once per config; evaluated per request.

use crate::{AuthzRequest, Decision, Error};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::UNIX_EPOCH;

/// A policy problem with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}:{column}: {message}")]
pub struct CedarError {
    /// The file concerned.
    pub file: String,
    /// 1-based line (1 when unknown).
    pub line: usize,
    /// 1-based column (1 when unknown).
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

/// The `cedar:` files, parsed (and validated against the schema, when given) once per config.
pub struct CedarPolicies {
    policies: PolicySet,
    /// Per route, only the policies that can apply to it: a policy scoped to
    /// `resource == Route::"other"` can neither permit nor forbid here, so skipping it
    /// leaves every decision unchanged and saves evaluating it.
    by_route: std::sync::RwLock<HashMap<String, std::sync::Arc<PolicySet>>>,
    entities: Entities,
    schema: Option<Schema>,
    authorizer: Authorizer,
    /// Parsed once: parsing type names per request showed up in profiles.
    types: [EntityTypeName; 4],
}

const CONSUMER: usize = 0;
const GROUP: usize = 1;
const ACTION: usize = 2;
const ROUTE: usize = 3;

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

fn located(file: &str, text: &str, d: &dyn Diagnostic, fallback: String) -> CedarError {
    let offset = d
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .unwrap_or(0);
    let (line, column) = line_col(text, offset);
    let mut message = fallback;
    if let Some(help) = d.help() {
        message.push_str(&format!(" ({help})"));
    }
    CedarError {
        file: file.into(),
        line,
        column,
        message,
    }
}

fn plain(file: &str, message: String) -> CedarError {
    CedarError {
        file: file.into(),
        line: 1,
        column: 1,
        message,
    }
}

impl CedarPolicies {
    /// Reads and checks the files; every problem is reported, with file, line and column.
    pub fn load(
        policies: &str,
        entities: Option<&str>,
        schema: Option<&str>,
    ) -> Result<CedarPolicies, Vec<CedarError>> {
        let text = std::fs::read_to_string(policies)
            .map_err(|e| vec![plain(policies, format!("cannot read: {e}"))])?;
        let set = PolicySet::from_str(&text).map_err(|errs| {
            errs.iter()
                .map(|e| located(policies, &text, e, e.to_string()))
                .collect::<Vec<_>>()
        })?;
        let schema = match schema {
            Some(path) => {
                let s = std::fs::read_to_string(path)
                    .map_err(|e| vec![plain(path, format!("cannot read: {e}"))])?;
                let (schema, _warnings) = Schema::from_cedarschema_str(&s)
                    .map_err(|e| vec![located(path, &s, &e, e.to_string())])?;
                let result = Validator::new(schema.clone()).validate(&set, ValidationMode::Strict);
                let errs: Vec<CedarError> = result
                    .validation_errors()
                    .map(|e| located(policies, &text, e, e.to_string()))
                    .collect();
                if !errs.is_empty() {
                    return Err(errs);
                }
                Some(schema)
            }
            None => None,
        };
        let entities = match entities {
            Some(path) => {
                let s = std::fs::read_to_string(path)
                    .map_err(|e| vec![plain(path, format!("cannot read: {e}"))])?;
                Entities::from_json_str(&s, schema.as_ref())
                    .map_err(|e| vec![plain(path, format!("invalid entities: {e}"))])?
            }
            None => Entities::empty(),
        };
        Ok(CedarPolicies {
            policies: set,
            by_route: Default::default(),
            entities,
            schema,
            authorizer: Authorizer::new(),
            types: ["Consumer", "Group", "Action", "Route"]
                .map(|t| EntityTypeName::from_str(t).expect("static type name")),
        })
    }

    fn uid(&self, ty: usize, id: &str) -> Option<EntityUid> {
        Some(EntityUid::from_type_name_and_id(
            self.types[ty].clone(),
            EntityId::from_str(id).ok()?,
        ))
    }

    fn policies_for(&self, name: &str, route: &EntityUid) -> std::sync::Arc<PolicySet> {
        if let Some(p) = self
            .by_route
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
        {
            return p.clone();
        }
        let key = name.to_string();
        let mut subset = PolicySet::new();
        let mut complete = self.policies.templates().next().is_none();
        for p in self.policies.policies() {
            let applies = match p.resource_constraint() {
                cedar_policy::ResourceConstraint::Eq(uid) => &uid == route,
                _ => true,
            };
            if applies && subset.add(p.clone()).is_err() {
                complete = false;
            }
        }
        // Templates or anything unexpected: evaluate the whole set.
        let chosen = if complete {
            std::sync::Arc::new(subset)
        } else {
            std::sync::Arc::new(self.policies.clone())
        };
        let mut map = self.by_route.write().unwrap_or_else(|e| e.into_inner());
        if map.len() < 10_000 {
            map.insert(key, chosen.clone());
        }
        chosen
    }

    fn policy_name(&self, id: &cedar_policy::PolicyId) -> String {
        self.policies
            .policy(id)
            .and_then(|p| p.annotation("id"))
            .map(str::to_string)
            .unwrap_or_else(|| id.to_string())
    }

    /// Cedar's decision for `r` and `action`; anything that cannot be evaluated is a deny.
    pub fn decide(&self, r: &AuthzRequest, action: &str) -> Decision {
        match self.try_decide(r, action) {
            Ok(d) => d,
            // Anything that cannot be evaluated is a deny, with the reason logged.
            Err(e) => Decision {
                allowed: false,
                reason: format!("cedar: {e}"),
                policies: Vec::new(),
            },
        }
    }

    fn try_decide(&self, r: &AuthzRequest, action: &str) -> Result<Decision, Error> {
        let principal = self
            .uid(CONSUMER, r.consumer.unwrap_or("anonymous"))
            .ok_or(Error::CedarId { kind: "principal" })?;
        let action_uid = self
            .uid(ACTION, action)
            .ok_or(Error::CedarId { kind: "action" })?;
        let resource = self
            .uid(ROUTE, r.route)
            .ok_or(Error::CedarId { kind: "resource" })?;
        let parents: HashSet<EntityUid> =
            r.groups.iter().filter_map(|g| self.uid(GROUP, g)).collect();
        let mut extra: Vec<Entity> = r
            .groups
            .iter()
            .filter_map(|g| self.uid(GROUP, g))
            .map(|u| Entity::new_no_attrs(u, HashSet::new()))
            .collect();
        extra.push(Entity::new_no_attrs(principal.clone(), parents));
        // The principal and its groups come from the request; entities from the file with
        // the same ids are replaced by them for this evaluation. The route is a plain id:
        // request details (path, method) are in the context, which costs less to build.
        let ids: HashSet<EntityUid> = extra.iter().map(|e| e.uid()).collect();
        let base = self
            .entities
            .iter()
            .filter(|e| !ids.contains(&e.uid()))
            .cloned();
        let entities = Entities::from_entities(base.chain(extra), None)
            .map_err(|e| Error::CedarEntities(Box::new(e)))?;

        let secs = r
            .now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Built as Cedar values directly: going through JSON costs more than the policies.
        let long = |v: u64| RestrictedExpression::new_long(v as i64);
        let time = RestrictedExpression::new_record([
            ("epoch".to_string(), long(secs)),
            ("hour".to_string(), long((secs / 3600) % 24)),
            ("minute".to_string(), long((secs / 60) % 60)),
            // 1970-01-01 was a Thursday; 0 = Monday.
            ("weekday".to_string(), long(((secs / 86400) + 3) % 7)),
        ])
        .map_err(|e| Error::CedarExpression(Box::new(e)))?;
        let claims = match r.claims {
            Some(c) => to_cedar(c),
            None => RestrictedExpression::new_record(Vec::<(String, RestrictedExpression)>::new())
                .map_err(|e| Error::CedarExpression(Box::new(e)))?,
        };
        let mut pairs = vec![
            ("claims".to_string(), claims),
            (
                "path".to_string(),
                RestrictedExpression::new_string(r.path.to_string()),
            ),
            (
                "method".to_string(),
                RestrictedExpression::new_string(r.method.to_string()),
            ),
            ("time".to_string(), time),
            (
                "authenticated".to_string(),
                RestrictedExpression::new_bool(r.consumer.is_some()),
            ),
        ];
        if let Some(ip) = r.client_ip {
            pairs.push((
                "client_ip".to_string(),
                RestrictedExpression::new_ip(ip.to_string()),
            ));
        }
        if let Some((cn, fp)) = r.mtls {
            let rec = RestrictedExpression::new_record([
                (
                    "subject_cn".to_string(),
                    RestrictedExpression::new_string(cn.unwrap_or("").to_string()),
                ),
                (
                    "fingerprint_sha256".to_string(),
                    RestrictedExpression::new_string(fp.to_string()),
                ),
            ])
            .map_err(|e| Error::CedarExpression(Box::new(e)))?;
            pairs.push(("mtls".to_string(), rec));
        }
        // With a schema, Request::new below checks the context against it.
        let context = Context::from_pairs(pairs).map_err(|e| Error::CedarContext(Box::new(e)))?;
        let resource_uid = resource.clone();
        let request = Request::new(
            principal,
            action_uid,
            resource,
            context,
            self.schema.as_ref(),
        )
        .map_err(|e| Error::CedarRequest(Box::new(e)))?;
        let set = self.policies_for(r.route, &resource_uid);
        let resp = self.authorizer.is_authorized(&request, &set, &entities);
        let policies: Vec<String> = resp
            .diagnostics()
            .reason()
            .map(|id| self.policy_name(id))
            .collect();
        let errors: Vec<String> = resp.diagnostics().errors().map(|e| e.to_string()).collect();
        let allowed = resp.decision() == cedar_policy::Decision::Allow;
        let reason = if allowed {
            "cedar permit".to_string()
        } else if policies.is_empty() {
            if errors.is_empty() {
                "cedar: no policy permits".to_string()
            } else {
                format!("cedar: evaluation errors: {}", errors.join("; "))
            }
        } else {
            "cedar forbid".to_string()
        };
        Ok(Decision {
            allowed,
            reason,
            policies,
        })
    }
}

/// JSON claims as a Cedar value. Cedar has no floats or nulls: those are left out rather
/// than failing the whole request.
fn to_cedar(v: &Value) -> RestrictedExpression {
    match v {
        Value::String(s) => RestrictedExpression::new_string(s.clone()),
        Value::Bool(b) => RestrictedExpression::new_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => RestrictedExpression::new_long(i),
            None => RestrictedExpression::new_string(n.to_string()),
        },
        Value::Array(a) => RestrictedExpression::new_set(
            a.iter()
                .filter(|v| !v.is_null() && !v.is_f64())
                .map(to_cedar),
        ),
        Value::Object(m) => RestrictedExpression::new_record(
            m.iter()
                .filter(|(_, v)| !v.is_null() && !v.is_f64())
                .map(|(k, v)| (k.clone(), to_cedar(v))),
        )
        .unwrap_or_else(|_| RestrictedExpression::new_string(String::new())),
        Value::Null => RestrictedExpression::new_string(String::new()),
    }
}
