//! Declarative conditions: allow/deny lists, scopes, claims.

use crate::{AuthzRequest, Error};
use rampart_config::{Authorize, ClaimCondition, Operation, Scopes};
use serde_json::Value;

/// Compiled declarative conditions of a route or an operation (allow and deny lists, scopes,
/// claims).
#[derive(Debug, Clone, Default)]
pub struct Rule {
    groups: Vec<String>,
    consumers: Vec<String>,
    deny_groups: Vec<String>,
    deny_consumers: Vec<String>,
    scopes: Option<Scopes>,
    claims: Vec<ClaimCondition>,
}

impl Rule {
    /// The route-level conditions of `authorize`.
    pub fn from_authorize(a: &Authorize) -> Rule {
        Rule {
            groups: a.groups.clone(),
            consumers: a.consumers.clone(),
            deny_groups: a.deny_groups.clone(),
            deny_consumers: a.deny_consumers.clone(),
            scopes: a.scopes.clone(),
            claims: a.claims.clone(),
        }
    }

    /// An operation's own conditions.
    pub fn from_operation(o: &Operation) -> Rule {
        Rule {
            groups: o.groups.clone(),
            consumers: o.consumers.clone(),
            deny_groups: o.deny_groups.clone(),
            deny_consumers: o.deny_consumers.clone(),
            scopes: o.scopes.clone(),
            claims: o.claims.clone(),
        }
    }

    /// Ok when every condition holds; else why not.
    pub fn check(&self, r: &AuthzRequest) -> Result<(), Error> {
        let consumer = r.consumer.unwrap_or("");
        if r.consumer.is_some() && self.deny_consumers.iter().any(|c| c == consumer) {
            return Err(Error::ConsumerDenied {
                consumer: consumer.to_string(),
            });
        }
        if let Some(g) = r.groups.iter().find(|g| self.deny_groups.contains(g)) {
            return Err(Error::GroupDenied { group: g.clone() });
        }
        let lists = !self.groups.is_empty() || !self.consumers.is_empty();
        if lists {
            let by_consumer = r.consumer.is_some() && self.consumers.iter().any(|c| c == consumer);
            let by_group = r.groups.iter().any(|g| self.groups.contains(g));
            if !(by_consumer || by_group) {
                return Err(Error::NotAllowed);
            }
        }
        if let Some(s) = &self.scopes {
            let granted = scopes_of(r.claims);
            if let Some(missing) = s.all.iter().find(|x| !granted.contains(&x.as_str())) {
                return Err(Error::MissingScope {
                    scope: missing.clone(),
                });
            }
            if !s.any.is_empty() && !s.any.iter().any(|x| granted.contains(&x.as_str())) {
                return Err(Error::NoAcceptedScope);
            }
        }
        for c in &self.claims {
            check_claim(c, r.claims)?;
        }
        Ok(())
    }
}

/// Scopes from `scope` (space-separated string, RFC 8693) or `scp` (string or array).
pub fn scopes_of(claims: Option<&Value>) -> Vec<&str> {
    let Some(c) = claims else { return Vec::new() };
    let mut out = Vec::new();
    for key in ["scope", "scp"] {
        match c.get(key) {
            Some(Value::String(s)) => out.extend(s.split_whitespace()),
            Some(Value::Array(a)) => out.extend(a.iter().filter_map(|v| v.as_str())),
            _ => {}
        }
    }
    out
}

fn claim<'a>(claims: Option<&'a Value>, path: &str) -> Option<&'a Value> {
    let c = claims?;
    if let Some(v) = c.get(path) {
        return Some(v);
    }
    path.split('.').try_fold(c, |v, seg| v.get(seg))
}

fn text_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(text_of).collect(),
        Value::Null => Vec::new(),
        other => vec![other.to_string()],
    }
}

fn check_claim(c: &ClaimCondition, claims: Option<&Value>) -> Result<(), Error> {
    let v = claim(claims, &c.claim);
    if let Some(present) = c.present {
        if present != v.is_some() {
            let claim = c.claim.clone();
            return Err(if present {
                Error::ClaimAbsent { claim }
            } else {
                Error::ClaimPresent { claim }
            });
        }
    }
    // For arrays, a test passes when any element passes.
    let values = v.map(text_of).unwrap_or_default();
    if let Some(want) = &c.equals {
        if !values.iter().any(|x| x == want) {
            return Err(Error::ClaimNotEqual {
                claim: c.claim.clone(),
            });
        }
    }
    if !c.one_of.is_empty() && !values.iter().any(|x| c.one_of.contains(x)) {
        return Err(Error::ClaimNotOneOf {
            claim: c.claim.clone(),
        });
    }
    if let Some(g) = &c.glob {
        if !values.iter().any(|x| glob(g, x)) {
            return Err(Error::ClaimNoMatch {
                claim: c.claim.clone(),
                glob: g.clone(),
            });
        }
    }
    Ok(())
}

/// `*` any run, `?` one character. Iterative, so hostile patterns stay linear-ish.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `/orders/{id}`: `{x}` and `*` match one segment; a final `**` matches the rest.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let mut p = pattern.trim_end_matches('/').split('/');
    let mut s = path.trim_end_matches('/').split('/');
    loop {
        match (p.next(), s.next()) {
            (Some("**"), _) => return true,
            (Some(a), Some(b)) => {
                let wild = a == "*" || (a.starts_with('{') && a.ends_with('}'));
                if !(wild && !b.is_empty() || a == b) {
                    return false;
                }
            }
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_and_paths() {
        assert!(glob("*@example.test", "a@example.test"));
        assert!(!glob("*@example.test", "a@example.test.evil"));
        assert!(glob("a?c*", "abcdef"));
        assert!(path_matches("/orders/{id}", "/orders/7"));
        assert!(!path_matches("/orders/{id}", "/orders/7/items"));
        assert!(!path_matches("/orders/{id}", "/orders/"));
        assert!(path_matches("/orders/**", "/orders/7/items"));
        assert!(path_matches("/orders", "/orders/"));
    }

    /// The reasons are logged and put in events: their wording is part of the contract.
    #[test]
    fn deny_reasons() {
        let claims = serde_json::json!({"scope": "read", "email": "a@example.test"});
        let groups = vec!["ops".to_string()];
        let req = AuthzRequest {
            consumer: Some("bob"),
            groups: &groups,
            claims: Some(&claims),
            method: "GET",
            path: "/",
            route: "r",
            client_ip: None,
            mtls: None,
            now: std::time::SystemTime::now(),
        };
        let why = |rule: Rule| rule.check(&req).unwrap_err().to_string();
        let claim = |c: ClaimCondition| Rule {
            claims: vec![c],
            ..Rule::default()
        };
        let cases = [
            (
                Rule {
                    deny_consumers: vec!["bob".into()],
                    ..Rule::default()
                },
                "consumer bob is denied",
            ),
            (
                Rule {
                    deny_groups: vec!["ops".into()],
                    ..Rule::default()
                },
                "group ops is denied",
            ),
            (
                Rule {
                    groups: vec!["admins".into()],
                    ..Rule::default()
                },
                "consumer not in an allowed group or list",
            ),
            (
                Rule {
                    scopes: Some(Scopes {
                        all: vec!["write".into()],
                        any: Vec::new(),
                    }),
                    ..Rule::default()
                },
                "missing scope write",
            ),
            (
                Rule {
                    scopes: Some(Scopes {
                        all: Vec::new(),
                        any: vec!["write".into(), "admin".into()],
                    }),
                    ..Rule::default()
                },
                "none of the accepted scopes",
            ),
            (
                claim(ClaimCondition {
                    claim: "tenant".into(),
                    present: Some(true),
                    ..Default::default()
                }),
                "claim tenant must be present",
            ),
            (
                claim(ClaimCondition {
                    claim: "email".into(),
                    present: Some(false),
                    ..Default::default()
                }),
                "claim email must be absent",
            ),
            (
                claim(ClaimCondition {
                    claim: "email".into(),
                    equals: Some("b@example.test".into()),
                    ..Default::default()
                }),
                "claim email does not equal the required value",
            ),
            (
                claim(ClaimCondition {
                    claim: "email".into(),
                    one_of: vec!["b@example.test".into()],
                    ..Default::default()
                }),
                "claim email is not one of the allowed values",
            ),
            (
                claim(ClaimCondition {
                    claim: "email".into(),
                    glob: Some("*@corp.test".into()),
                    ..Default::default()
                }),
                "claim email does not match *@corp.test",
            ),
        ];
        for (rule, want) in cases {
            assert_eq!(why(rule), want);
        }
    }
}
