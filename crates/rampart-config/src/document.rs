//! The config as a document: what the admin API and `rampart diff/apply/export` read and
//! write. A document is the YAML as written (`${ENV}` references unexpanded) as JSON.
//!
//! Secrets are redacted on the way out (a placeholder, or the password of a URL), and a
//! document sent back with a redacted value keeps the value in force at the same place, so
//! an exported config can be edited and applied without ever holding a secret.

use serde_json::{Map, Value};

/// What a secret reads as in a document that left Rampart.
pub const REDACTED: &str = "<redacted>";

/// Keys whose string values are secrets wherever they appear.
const SECRET_KEYS: &[&str] = &[
    "secret",
    "client_secret",
    "password",
    "password_hash",
    "bind_password",
    "token",
    "api_key",
    // ACME external account binding.
    "hmac_key",
];

/// Parse YAML (or JSON) config text into a document.
pub fn from_text(text: &str) -> Result<Value, String> {
    let v: Value = serde_yaml::from_str(text).map_err(|e| match e.location() {
        Some(l) => format!("line {}, column {}: {e}", l.line(), l.column()),
        None => e.to_string(),
    })?;
    if !v.is_object() {
        return Err("a config document is a mapping (an object)".into());
    }
    Ok(v)
}

/// A document as YAML text.
pub fn to_text(doc: &Value) -> String {
    serde_yaml::to_string(doc).unwrap_or_default()
}

/// A dotted config path (`routes.0.auth`, the paths of [`crate::ConfigError`]) as a JSON
/// pointer (`/routes/0/auth`, RFC 6901).
pub fn pointer(dotted: &str) -> String {
    if dotted.is_empty() {
        return String::new();
    }
    dotted
        .split('.')
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn is_reference(s: &str) -> bool {
    s.starts_with("${") && s.ends_with('}') && !s[2..s.len() - 1].contains(['{', '}'])
}

/// Whether the string at `key` (under `parent`) is a secret.
fn secret_key(parent: &str, key: &str) -> bool {
    SECRET_KEYS.contains(&key)
        // Items of a `secrets` list (`bots.challenge.secrets`).
        || (key == "secrets" && parent == "secrets")
        // Hashes of keys and tokens: not the secret itself, but a viewer has no use for them.
        || (key == "sha256" && matches!(parent, "api_keys" | "tokens"))
}

/// Query parameters of URLs that carry credentials (webhook tokens, signed URLs).
fn secret_param(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "token", "key", "secret", "password", "passwd", "sig", "auth",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// A URL with the password of its userinfo and credential-like query values redacted;
/// `None` when it has neither.
fn redact_url(s: &str) -> Option<String> {
    let (scheme, rest) = s.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let mut changed = false;
    let authority = match rest[..authority_end].rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, pass)) if !pass.is_empty() && !is_reference(pass) && pass != REDACTED => {
                changed = true;
                format!("{user}:{REDACTED}@{host}")
            }
            _ => rest[..authority_end].to_string(),
        },
        None => rest[..authority_end].to_string(),
    };
    let tail = &rest[authority_end..];
    let (before_query, query_and_fragment) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out_tail = before_query.to_string();
    if let Some(qf) = query_and_fragment {
        let (query, fragment) = match qf.split_once('#') {
            Some((q, f)) => (q, Some(f)),
            None => (qf, None),
        };
        let params: Vec<String> = query
            .split('&')
            .map(|kv| match kv.split_once('=') {
                Some((k, v))
                    if secret_param(k) && !v.is_empty() && !is_reference(v) && v != REDACTED =>
                {
                    changed = true;
                    format!("{k}={REDACTED}")
                }
                _ => kv.to_string(),
            })
            .collect();
        out_tail.push('?');
        out_tail.push_str(&params.join("&"));
        if let Some(f) = fragment {
            out_tail.push('#');
            out_tail.push_str(f);
        }
    }
    changed.then(|| format!("{scheme}://{authority}{out_tail}"))
}

fn redact_value(v: &mut Value, parent: &str, key: &str) {
    match v {
        Value::String(s) => {
            if secret_key(parent, key) && !is_reference(s) && !s.is_empty() {
                *s = REDACTED.into();
            } else if let Some(r) = redact_url(s) {
                *s = r;
            }
        }
        Value::Array(items) => {
            for i in items {
                redact_value(i, key, key);
            }
        }
        Value::Object(m) => {
            for (k, i) in m.iter_mut() {
                redact_value(i, key, k);
            }
        }
        _ => {}
    }
}

/// The document with every secret replaced (`${ENV}` references are not secrets and stay).
pub fn redact(doc: &Value) -> Value {
    let mut out = doc.clone();
    redact_value(&mut out, "", "");
    out
}

/// The identity of an element of a list, when the list holds named things.
fn element_id(v: &Value) -> Option<&str> {
    let m = v.as_object()?;
    ["name", "id", "username"]
        .iter()
        .find_map(|k| m.get(*k).and_then(Value::as_str))
}

/// Puts back the secrets a redacted document stands for: wherever `new` holds exactly what
/// [`redact`] makes of the value at the same place in `old` (list elements matched by
/// `name`/`id` first, then by position), the old value is kept. Returns the JSON pointers
/// of placeholders with nothing to stand for (a new secret given as `<redacted>`).
pub fn restore(new: &mut Value, old: &Value) -> Vec<String> {
    let mut missing = Vec::new();
    restore_at(new, Some(old), "", "", "", &mut missing);
    missing
}

fn restore_at(
    new: &mut Value,
    old: Option<&Value>,
    parent: &str,
    key: &str,
    at: &str,
    missing: &mut Vec<String>,
) {
    match new {
        Value::String(s) => {
            let redacted_old = old.map(|o| {
                let mut r = o.clone();
                redact_value(&mut r, parent, key);
                r
            });
            match (old, redacted_old) {
                (Some(o), Some(r)) if r.as_str() == Some(s.as_str()) && o != &r => {
                    *new = o.clone();
                }
                _ if s.contains(REDACTED) => missing.push(at.to_string()),
                _ => {}
            }
        }
        Value::Array(items) => {
            let olds = old.and_then(Value::as_array);
            for (i, item) in items.iter_mut().enumerate() {
                let matched = olds.and_then(|os| match element_id(item) {
                    Some(id) => os.iter().find(|o| element_id(o) == Some(id)),
                    None => os.get(i),
                });
                restore_at(item, matched, key, key, &format!("{at}/{i}"), missing);
            }
        }
        Value::Object(m) => {
            let olds = old.and_then(Value::as_object);
            for (k, item) in m.iter_mut() {
                let o = olds.and_then(|om| om.get(k));
                let esc = k.replace('~', "~0").replace('/', "~1");
                restore_at(item, o, key, k, &format!("{at}/{esc}"), missing);
            }
        }
        _ => {}
    }
}

/// The part of a document that describes this node ([`crate::NODE_KEYS`]).
pub fn node_part(doc: &Value) -> Value {
    let m = doc.as_object().cloned().unwrap_or_default();
    Value::Object(
        m.into_iter()
            .filter(|(k, _)| crate::NODE_KEYS.contains(&k.as_str()))
            .collect(),
    )
}

/// The part of a document a fleet shares (everything but [`crate::NODE_KEYS`]).
pub fn shared_part(doc: &Value) -> Value {
    let m = doc.as_object().cloned().unwrap_or_default();
    Value::Object(
        m.into_iter()
            .filter(|(k, _)| !crate::NODE_KEYS.contains(&k.as_str()))
            .collect(),
    )
}

/// A node's whole config: the shared sections of `shared`, the node sections of `node`.
pub fn combine(shared: &Value, node: &Value) -> Value {
    let mut out = shared_part(shared);
    if let (Some(o), Some(n)) = (out.as_object_mut(), node_part(node).as_object()) {
        for (k, v) in n {
            o.insert(k.clone(), v.clone());
        }
    }
    out
}

/// How a collection's elements are named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Naming {
    /// A list whose elements carry their name in this field.
    Field(&'static str),
    /// A mapping from name to element.
    Key,
}

/// A kind of named resource inside the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Collection {
    /// Its name in the API (`routes`) and in diffs.
    pub name: &'static str,
    /// Where it is in the document.
    pub path: &'static [&'static str],
    /// How its elements are named.
    pub naming: Naming,
}

/// The named resources of a config.
pub const COLLECTIONS: &[Collection] = &[
    Collection {
        name: "routes",
        path: &["routes"],
        naming: Naming::Field("name"),
    },
    Collection {
        name: "upstreams",
        path: &["upstreams"],
        naming: Naming::Key,
    },
    Collection {
        name: "consumers",
        path: &["consumers"],
        naming: Naming::Field("id"),
    },
    Collection {
        name: "network-lists",
        path: &["network", "lists"],
        naming: Naming::Key,
    },
    Collection {
        name: "listeners",
        path: &["listeners"],
        naming: Naming::Field("name"),
    },
];

impl Collection {
    /// The collection's API name → its description.
    pub fn named(name: &str) -> Option<&'static Collection> {
        COLLECTIONS.iter().find(|c| c.name == name)
    }

    fn container<'a>(&self, doc: &'a Value) -> Option<&'a Value> {
        self.path.iter().try_fold(doc, |v, k| v.get(*k))
    }

    /// Every element by name, in document order.
    pub fn items<'a>(&self, doc: &'a Value) -> Vec<(String, &'a Value)> {
        match (self.container(doc), self.naming) {
            (Some(Value::Array(a)), Naming::Field(f)) => a
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    let name = v.get(f).and_then(Value::as_str);
                    (
                        name.map(str::to_string).unwrap_or_else(|| format!("#{i}")),
                        v,
                    )
                })
                .collect(),
            (Some(Value::Object(m)), Naming::Key) => {
                m.iter().map(|(k, v)| (k.clone(), v)).collect()
            }
            _ => Vec::new(),
        }
    }

    /// One element.
    pub fn get<'a>(&self, doc: &'a Value, name: &str) -> Option<&'a Value> {
        self.items(doc)
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
    }

    fn container_mut<'a>(&self, doc: &'a mut Value) -> &'a mut Value {
        let mut v = doc;
        for (i, k) in self.path.iter().enumerate() {
            let last = i + 1 == self.path.len();
            if !v.is_object() {
                *v = Value::Object(Map::new());
            }
            let empty = match (last, self.naming) {
                (true, Naming::Field(_)) => Value::Array(Vec::new()),
                _ => Value::Object(Map::new()),
            };
            let m = v.as_object_mut().expect("made an object above");
            let slot = m.entry(k.to_string()).or_insert(empty.clone());
            if slot.is_null() {
                *slot = empty;
            }
            v = slot;
        }
        v
    }

    /// Sets an element (replacing one of the same name, or adding it at the end); returns
    /// whether it is new. A list element gets `name` in its naming field.
    pub fn put(&self, doc: &mut Value, name: &str, mut value: Value) -> Result<bool, String> {
        let c = self.container_mut(doc);
        match (c, self.naming) {
            (Value::Array(a), Naming::Field(f)) => {
                if let Some(m) = value.as_object_mut() {
                    match m.get(f).and_then(Value::as_str) {
                        Some(n) if n != name => {
                            return Err(format!(
                                "the body's {f} {n:?} is not the {f} in the path ({name:?})"
                            ))
                        }
                        _ => {
                            m.insert(f.to_string(), Value::String(name.to_string()));
                        }
                    }
                }
                let pos = a
                    .iter()
                    .position(|v| v.get(f).and_then(Value::as_str) == Some(name));
                match pos {
                    Some(i) => {
                        a[i] = value;
                        Ok(false)
                    }
                    None => {
                        a.push(value);
                        Ok(true)
                    }
                }
            }
            (Value::Object(m), Naming::Key) => Ok(m.insert(name.to_string(), value).is_none()),
            _ => Err(format!(
                "{} in the running config is not a {}",
                self.path.join("."),
                match self.naming {
                    Naming::Field(_) => "list",
                    Naming::Key => "mapping",
                }
            )),
        }
    }

    /// Removes an element; returns whether it was there.
    pub fn delete(&self, doc: &mut Value, name: &str) -> bool {
        if self.container(doc).is_none() {
            return false;
        }
        match (self.container_mut(doc), self.naming) {
            (Value::Array(a), Naming::Field(f)) => {
                let before = a.len();
                a.retain(|v| v.get(f).and_then(Value::as_str) != Some(name));
                a.len() != before
            }
            (Value::Object(m), Naming::Key) => m.remove(name).is_some(),
            _ => false,
        }
    }
}

/// One difference between two documents, by resource; never a value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// `added`, `removed` or `modified`.
    pub kind: &'static str,
    /// `routes/api`, `upstreams/backend`, or a top-level section (`waf`).
    pub resource: String,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.kind {
            "added" => '+',
            "removed" => '-',
            _ => '~',
        };
        write!(f, "{sign} {}", self.resource)
    }
}

/// What changes from `old` to `new`: named resources one by one, other sections whole.
/// Secrets are compared but never shown.
pub fn diff(old: &Value, new: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    let mut push = |kind, resource: String| out.push(Change { kind, resource });
    for c in COLLECTIONS {
        let (o, n) = (c.items(old), c.items(new));
        for (name, v) in &o {
            match n.iter().find(|(m, _)| m == name) {
                None => push("removed", format!("{}/{name}", c.name)),
                Some((_, w)) if w != v => push("modified", format!("{}/{name}", c.name)),
                _ => {}
            }
        }
        for (name, _) in &n {
            if !o.iter().any(|(m, _)| m == name) {
                push("added", format!("{}/{name}", c.name));
            }
        }
    }
    // Everything outside the collections, by top-level key (`network` less its lists).
    let strip = |d: &Value| -> Map<String, Value> {
        let mut m = d.as_object().cloned().unwrap_or_default();
        for c in COLLECTIONS {
            match c.path {
                [top] => {
                    m.remove(*top);
                }
                [top, sub] => {
                    if let Some(Value::Object(inner)) = m.get_mut(*top) {
                        inner.remove(*sub);
                        if inner.is_empty() {
                            m.remove(*top);
                        }
                    }
                }
                _ => {}
            }
        }
        m
    };
    let (o, n) = (strip(old), strip(new));
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        match (o.get(k), n.get(k)) {
            (Some(_), None) => push("removed", k.clone()),
            (None, Some(_)) => push("added", k.clone()),
            (Some(a), Some(b)) if a != b => push("modified", k.clone()),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secrets_are_redacted_and_come_back() {
        let doc = json!({
            "consumers": [
                {"id": "a", "api_keys": [{"sha256": "ab"}], "basic": {"username": "u", "password_hash": "$argon2id$x"}},
                {"id": "b", "api_keys": [{"sha256": "cd"}]}
            ],
            "auth": {"jwt": [{"issuer": "i", "keys": [{"secret": "${JWT_SECRET}"}, {"secret": "literal"}]}]},
            "redis": "redis://:hunter2@127.0.0.1:6379/0",
            "routes": [{"name": "r", "path": "/", "upstream": "u"}]
        });
        let r = redact(&doc);
        let text = r.to_string();
        for secret in ["hunter2", "$argon2id$x", "literal", "\"ab\"", "\"cd\""] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert!(text.contains("${JWT_SECRET}"), "references are not secrets");
        assert_eq!(r["redis"], "redis://:<redacted>@127.0.0.1:6379/0");
        let hook = json!({"events": {"webhook": {"url": "https://siem.example/hook?channel=a&token=abc123&sig=zz#x"}}});
        let rh = redact(&hook);
        assert_eq!(
            rh["events"]["webhook"]["url"],
            "https://siem.example/hook?channel=a&token=<redacted>&sig=<redacted>#x"
        );
        let mut back = rh.clone();
        assert!(restore(&mut back, &hook).is_empty());
        assert_eq!(back, hook);
        let siem = json!({"events": {
            "splunk": {"url": "https://s:8088/services/collector/event", "token": "hec-abc"},
            "elastic": {"url": "https://es:9200", "api_key": "ZXM6a2V5", "password": "pw"},
            "nats": {"url": "nats://n:4222", "token": "${NATS_TOKEN}"}}});
        let rs = redact(&siem);
        assert_eq!(rs["events"]["splunk"]["token"], REDACTED);
        assert_eq!(rs["events"]["elastic"]["api_key"], REDACTED);
        assert_eq!(rs["events"]["elastic"]["password"], REDACTED);
        assert_eq!(rs["events"]["nats"]["token"], "${NATS_TOKEN}");
        let bots = json!({"bots": {"challenge": {"secrets": ["k-0123456789abcdef0123456789abcdef", "${OLD}"]}}});
        let rb = redact(&bots);
        assert_eq!(rb["bots"]["challenge"]["secrets"][0], REDACTED);
        assert_eq!(rb["bots"]["challenge"]["secrets"][1], "${OLD}");
        let acme = json!({"listeners": [{"tls": {"acme": {"eab": {"kid": "k1", "hmac_key": "zWNDZM6e"}}}}]});
        let ra = redact(&acme);
        assert_eq!(
            ra["listeners"][0]["tls"]["acme"]["eab"]["hmac_key"],
            REDACTED
        );
        assert_eq!(ra["listeners"][0]["tls"]["acme"]["eab"]["kid"], "k1");

        // Reordered consumers still get their own secrets back.
        let mut back = r.clone();
        back["consumers"].as_array_mut().unwrap().reverse();
        assert!(restore(&mut back, &doc).is_empty());
        assert_eq!(back["consumers"][0]["api_keys"][0]["sha256"], "cd");
        assert_eq!(back["consumers"][1]["api_keys"][0]["sha256"], "ab");
        assert_eq!(back["redis"], doc["redis"]);

        // A placeholder for a secret that does not exist is reported.
        let mut new = r.clone();
        new["consumers"][0]["basic"]["password_hash"] = json!("<redacted>");
        new["consumers"][1]["basic"] = json!({"username": "v", "password_hash": "<redacted>"});
        let missing = restore(&mut new, &doc);
        assert_eq!(
            missing,
            vec!["/consumers/1/basic/password_hash".to_string()]
        );
    }

    #[test]
    fn collections_and_diff() {
        let old = json!({"routes": [{"name": "a", "path": "/a"}], "upstreams": {"u": {"targets": ["x"]}}, "waf": {"mode": "block"}});
        let mut new = old.clone();
        let routes = Collection::named("routes").unwrap();
        assert!(routes.put(&mut new, "b", json!({"path": "/b"})).unwrap());
        assert!(!routes.put(&mut new, "a", json!({"path": "/a2"})).unwrap());
        assert!(routes.put(&mut new, "c", json!({"name": "x"})).is_err());
        let lists = Collection::named("network-lists").unwrap();
        assert!(lists
            .put(&mut new, "office", json!({"cidrs": ["10.0.0.0/8"]}))
            .unwrap());
        assert!(Collection::named("upstreams")
            .unwrap()
            .delete(&mut new, "u"));
        new["waf"]["mode"] = json!("detect");
        let d: Vec<String> = diff(&old, &new).iter().map(|c| c.to_string()).collect();
        assert_eq!(
            d,
            [
                "~ routes/a",
                "+ routes/b",
                "- upstreams/u",
                "+ network-lists/office",
                "~ waf"
            ]
        );
        assert_eq!(pointer("routes.0.auth"), "/routes/0/auth");
    }
}
