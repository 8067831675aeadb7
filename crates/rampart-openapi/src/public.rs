//! The description as published to API consumers: one self-contained document (references
//! to other files inlined), without what is marked internal (`x-internal: true` on an
//! operation, path, parameter, property, tag or anything else), without examples marked
//! sensitive (`x-sensitive: true`), and with the public base URL as its only server.

use crate::docs::{Docs, Loc};
use crate::Error;
use serde_json::{Map, Value};
use std::path::Path;

/// External references inlined at most this deep (a cycle across files stays a reference).
const MAX_INLINE_DEPTH: usize = 32;

/// The published form of the description at `path`; `server_url` replaces its servers
/// (none are published without it: internal addresses stay inside).
pub fn public_document(path: &Path, server_url: Option<&str>) -> Result<Value, Error> {
    let docs = Docs::load(path)?;
    let root = docs.root_loc();
    let mut v = inline(&docs, &root, docs.root_value(), 0)?;
    strip(&mut v);
    if let Value::Object(m) = &mut v {
        m.remove("servers");
        if let Some(url) = server_url {
            m.insert("servers".into(), serde_json::json!([{ "url": url }]));
        }
        // Operation-level and path-level servers are internal addresses too.
        if let Some(Value::Object(paths)) = m.get_mut("paths") {
            for item in paths.values_mut() {
                if let Value::Object(item) = item {
                    item.remove("servers");
                    for op in item.values_mut() {
                        if let Value::Object(op) = op {
                            op.remove("servers");
                        }
                    }
                }
            }
        }
    }
    Ok(v)
}

/// `v` with every `$ref` to another file replaced by what it points to.
fn inline(docs: &Docs, at: &Loc, v: &Value, depth: usize) -> Result<Value, Error> {
    Ok(match v {
        Value::Object(m) => {
            if let Some(Value::String(r)) = m.get("$ref") {
                let target = docs.target(at, r)?;
                if target.file != at.file && depth < MAX_INLINE_DEPTH {
                    let found = docs
                        .at(&target)
                        .ok_or_else(|| at.error(format!("$ref {r:?} points to nothing")))?;
                    return inline(docs, &target, found, depth + 1);
                }
                if target.file != at.file {
                    return Err(at.error("references across files nest too deep to publish"));
                }
            }
            let mut out = Map::new();
            for (k, x) in m {
                out.insert(k.clone(), inline(docs, &at.join(k), x, depth)?);
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .enumerate()
                .map(|(i, x)| inline(docs, &at.join(&i.to_string()), x, depth))
                .collect::<Result<_, _>>()?,
        ),
        other => other.clone(),
    })
}

fn flagged(v: &Value, flag: &str) -> bool {
    v.get(flag) == Some(&Value::Bool(true))
}

/// Removes internal entries and sensitive examples, everywhere.
fn strip(v: &mut Value) {
    match v {
        Value::Object(m) => {
            // Internal properties leave `required` with them.
            let hidden: Vec<String> = m
                .get("properties")
                .and_then(Value::as_object)
                .map(|p| {
                    p.iter()
                        .filter(|(_, x)| flagged(x, "x-internal"))
                        .map(|(k, _)| k.clone())
                        .collect()
                })
                .unwrap_or_default();
            if let Some(Value::Array(req)) = m.get_mut("required") {
                req.retain(|r| !r.as_str().is_some_and(|r| hidden.iter().any(|h| h == r)));
            }
            m.retain(|_, x| !flagged(x, "x-internal"));
            if m.get("x-sensitive") == Some(&Value::Bool(true)) {
                m.remove("example");
                m.remove("examples");
            }
            if let Some(Value::Object(examples)) = m.get_mut("examples") {
                examples.retain(|_, x| !flagged(x, "x-sensitive"));
            }
            m.values_mut().for_each(strip);
        }
        Value::Array(a) => {
            a.retain(|x| !flagged(x, "x-internal"));
            a.iter_mut().for_each(strip);
        }
        _ => {}
    }
}

/// The operations a caller in `groups` may see: those without `x-groups`, and those whose
/// `x-groups` share a group with the caller. `x-groups` itself is not published.
pub fn for_groups(doc: &Value, groups: &[String]) -> Value {
    let mut out = doc.clone();
    let Some(Value::Object(paths)) = out.get_mut("paths") else {
        return out;
    };
    for item in paths.values_mut() {
        let Value::Object(item) = item else { continue };
        item.retain(|_, op| {
            let Some(Value::Array(allowed)) = op.get("x-groups") else {
                return true;
            };
            allowed
                .iter()
                .filter_map(Value::as_str)
                .any(|g| groups.iter().any(|h| h == g))
        });
        for op in item.values_mut() {
            if let Value::Object(op) = op {
                op.remove("x-groups");
            }
        }
    }
    // A path left without operations is not published either.
    paths.retain(|_, item| {
        item.as_object().is_none_or(|m| {
            m.keys().any(|k| {
                [
                    "get", "put", "post", "delete", "options", "head", "patch", "trace",
                ]
                .contains(&k.as_str())
            })
        })
    });
    out
}
