//! Cedar policies: loaded and validated once per config; evaluated per request.

use crate::{AuthzRequest, Decision};
use cedar_policy::{
    Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid, PolicySet, Request,
    RestrictedExpression, Schema, ValidationMode, Validator,
};
use miette::Diagnostic;
use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::str::FromStr;
use std::time::UNIX_EPOCH;

/// A policy problem with its place in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CedarError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl std::fmt::Display for CedarError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

pub struct CedarPolicies {
    policies: PolicySet,
    entities: Entities,
    schema: Option<Schema>,
    authorizer: Authorizer,
}

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
            entities,
            schema,
            authorizer: Authorizer::new(),
        })
    }

    fn uid(ty: &str, id: &str) -> Option<EntityUid> {
        Some(EntityUid::from_type_name_and_id(
            EntityTypeName::from_str(ty).ok()?,
            EntityId::from_str(id).ok()?,
        ))
    }

    fn policy_name(&self, id: &cedar_policy::PolicyId) -> String {
        self.policies
            .policy(id)
            .and_then(|p| p.annotation("id"))
            .map(str::to_string)
            .unwrap_or_else(|| id.to_string())
    }

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

    fn try_decide(&self, r: &AuthzRequest, action: &str) -> Result<Decision, String> {
        let principal =
            Self::uid("Consumer", r.consumer.unwrap_or("anonymous")).ok_or("bad principal")?;
        let action_uid = Self::uid("Action", action).ok_or("bad action")?;
        let resource = Self::uid("Route", r.route).ok_or("bad resource")?;
        let parents: HashSet<EntityUid> = r
            .groups
            .iter()
            .filter_map(|g| Self::uid("Group", g))
            .collect();
        let mut extra: Vec<Entity> = r
            .groups
            .iter()
            .filter_map(|g| Self::uid("Group", g))
            .map(|u| Entity::new_no_attrs(u, HashSet::new()))
            .collect();
        extra.push(Entity::new_no_attrs(principal.clone(), parents));
        let mut attrs = HashMap::new();
        attrs.insert(
            "path".to_string(),
            RestrictedExpression::new_string(r.path.to_string()),
        );
        attrs.insert(
            "method".to_string(),
            RestrictedExpression::new_string(r.method.to_string()),
        );
        extra
            .push(Entity::new(resource.clone(), attrs, HashSet::new()).map_err(|e| e.to_string())?);
        // The principal, its groups and the resource come from the request; entities from
        // the file with the same ids are replaced by them for this evaluation.
        let ids: HashSet<EntityUid> = extra.iter().map(|e| e.uid()).collect();
        let base = self
            .entities
            .iter()
            .filter(|e| !ids.contains(&e.uid()))
            .cloned();
        let entities =
            Entities::from_entities(base.chain(extra), None).map_err(|e| e.to_string())?;

        let secs = r
            .now
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut ctx = json!({
            "claims": sanitize(r.claims.cloned().unwrap_or(json!({}))),
            "time": {
                "epoch": secs as i64,
                "hour": ((secs / 3600) % 24) as i64,
                "minute": ((secs / 60) % 60) as i64,
                // 1970-01-01 was a Thursday; 0 = Monday.
                "weekday": (((secs / 86400) + 3) % 7) as i64,
            },
            "authenticated": r.consumer.is_some(),
        });
        if let Some(ip) = r.client_ip {
            ctx["client_ip"] = json!({"__extn": {"fn": "ip", "arg": ip.to_string()}});
        }
        if let Some((cn, fp)) = r.mtls {
            ctx["mtls"] = json!({"subject_cn": cn.unwrap_or(""), "fingerprint_sha256": fp});
        }
        let schema_ctx = self.schema.as_ref().map(|s| (s, &action_uid));
        let context = Context::from_json_value(ctx, schema_ctx).map_err(|e| e.to_string())?;
        let request = Request::new(
            principal,
            action_uid,
            resource,
            context,
            self.schema.as_ref(),
        )
        .map_err(|e| e.to_string())?;
        let resp = self
            .authorizer
            .is_authorized(&request, &self.policies, &entities);
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

/// Cedar has no floats or nulls: drop them rather than fail the whole context.
fn sanitize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null() && !v.is_f64())
                .map(|(k, v)| (k, sanitize(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(
            a.into_iter()
                .filter(|v| !v.is_null() && !v.is_f64())
                .map(sanitize)
                .collect(),
        ),
        other => other,
    }
}
