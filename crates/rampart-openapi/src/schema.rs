//! Schemas made self-contained and compiled once: each schema the contract checks is copied
//! with everything its `$ref`s reach (in any file) under `$defs`, converted to JSON Schema
//! 2020-12 on the way (OpenAPI 3.0's `nullable` and boolean `exclusiveMinimum`), and
//! adjusted for its direction (`readOnly` properties may not be sent, `writeOnly` ones may
//! not be returned). A validator never holds the whole description, however large.

use crate::docs::{Docs, Loc};
use crate::{Error, Violation};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// Which OpenAPI dialect a description's schemas are written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// OpenAPI 3.0: an extended subset of JSON Schema draft 4/5.
    V30,
    /// OpenAPI 3.1: JSON Schema 2020-12.
    V31,
}

/// Which way the data goes: what a request may not carry differs from a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Direction {
    Request,
    Response,
}

/// Keywords whose value is a schema.
const ONE_SCHEMA: &[&str] = &[
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "additionalProperties",
    "unevaluatedProperties",
    "unevaluatedItems",
    "items",
    "additionalItems",
    "contentSchema",
];
/// Keywords whose value is a list of schemas.
const SCHEMA_LISTS: &[&str] = &["allOf", "anyOf", "oneOf", "prefixItems"];
/// Keywords whose value maps names to schemas.
const SCHEMA_MAPS: &[&str] = &[
    "properties",
    "patternProperties",
    "dependentSchemas",
    "$defs",
    "definitions",
];

/// Prefix of the `$defs` entries the bundler adds (never a name a description uses).
const DEF_PREFIX: &str = "rampart~";

/// Copies schemas and what they reference into one self-contained schema.
pub(crate) struct Bundler<'d> {
    docs: &'d Docs,
    dialect: Dialect,
    direction: Direction,
    ids: HashMap<Loc, String>,
    defs: Map<String, Value>,
    pending: Vec<(Loc, String)>,
}

impl<'d> Bundler<'d> {
    pub fn new(docs: &'d Docs, dialect: Dialect, direction: Direction) -> Self {
        Bundler {
            docs,
            dialect,
            direction,
            ids: HashMap::new(),
            defs: Map::new(),
            pending: Vec::new(),
        }
    }

    /// The schema at `loc` (value `v`) as one self-contained 2020-12 schema.
    pub fn bundle(mut self, loc: &Loc, v: &Value) -> Result<Value, Error> {
        let mut root = self.convert(loc, v)?;
        while let Some((at, name)) = self.pending.pop() {
            let target = self
                .docs
                .at(&at)
                .ok_or_else(|| at.error("$ref points to nothing"))?;
            let converted = self.convert(&at, target)?;
            self.defs.insert(name, converted);
        }
        if !self.defs.is_empty() {
            // (A boolean schema references nothing.)
            if let Value::Object(m) = &mut root {
                let defs = m
                    .entry("$defs")
                    .or_insert_with(|| Value::Object(Map::new()));
                if let Value::Object(d) = defs {
                    d.extend(self.defs);
                }
            }
        }
        Ok(root)
    }

    fn reference(&mut self, from: &Loc, r: &str) -> Result<Value, Error> {
        let target = self.docs.target(from, r)?;
        if self.docs.at(&target).is_none() {
            return Err(from.error(format!("$ref {r:?} points to nothing")));
        }
        let name = match self.ids.get(&target) {
            Some(n) => n.clone(),
            None => {
                let n = format!("{DEF_PREFIX}{}", self.ids.len());
                self.ids.insert(target.clone(), n.clone());
                self.pending.push((target, n.clone()));
                n
            }
        };
        Ok(Value::String(format!(
            "#/$defs/{}",
            name.replace('~', "~0").replace('/', "~1")
        )))
    }

    /// A converted copy of the schema `v` found at `loc`.
    fn convert(&mut self, loc: &Loc, v: &Value) -> Result<Value, Error> {
        let Value::Object(m) = v else {
            return match v {
                Value::Bool(_) => Ok(v.clone()),
                _ => Err(loc.error("a schema must be an object")),
            };
        };
        if let Some(r) = m.get("$ref") {
            let r = r
                .as_str()
                .ok_or_else(|| loc.error("$ref must be a string"))?;
            let target = self.reference(loc, r)?;
            // In 3.0 a `$ref` replaces its siblings; 3.1 schemas keep them.
            if self.dialect == Dialect::V30 || m.len() == 1 {
                return Ok(Value::Object(Map::from_iter([("$ref".into(), target)])));
            }
        }
        let mut out = Map::new();
        for (k, x) in m {
            let key = k.as_str();
            let converted = if key == "$ref" {
                self.reference(loc, x.as_str().unwrap_or_default())?
            } else if ONE_SCHEMA.contains(&key) && (x.is_object() || x.is_boolean()) {
                self.convert(&loc.join(key), x)?
            } else if key == "items" && x.is_array() {
                // Draft 4 tuple form (3.0 forbids it, some documents use it).
                let mut list = Vec::new();
                for (i, s) in x.as_array().into_iter().flatten().enumerate() {
                    list.push(self.convert(&loc.join(key).join(&i.to_string()), s)?);
                }
                out.insert("prefixItems".into(), Value::Array(list));
                continue;
            } else if SCHEMA_LISTS.contains(&key) {
                let Value::Array(items) = x else {
                    return Err(loc.join(key).error("must be a list of schemas"));
                };
                let mut list = Vec::new();
                for (i, s) in items.iter().enumerate() {
                    list.push(self.convert(&loc.join(key).join(&i.to_string()), s)?);
                }
                Value::Array(list)
            } else if SCHEMA_MAPS.contains(&key) {
                let Value::Object(entries) = x else {
                    return Err(loc.join(key).error("must map names to schemas"));
                };
                let mut map = Map::new();
                for (name, s) in entries {
                    map.insert(name.clone(), self.convert(&loc.join(key).join(name), s)?);
                }
                Value::Object(map)
            } else {
                x.clone()
            };
            let key = if key == "definitions" { "$defs" } else { key };
            out.insert(key.to_string(), converted);
        }
        if self.dialect == Dialect::V30 {
            from_openapi_30(&mut out);
        }
        self.direction_rules(loc, m, &mut out)?;
        Ok(Value::Object(out))
    }

    /// `readOnly` properties become `false` in requests (and `writeOnly` in responses), and
    /// leave `required`: a client cannot set what only the server writes.
    fn direction_rules(
        &self,
        loc: &Loc,
        original: &Map<String, Value>,
        out: &mut Map<String, Value>,
    ) -> Result<(), Error> {
        let Some(Value::Object(props)) = original.get("properties") else {
            return Ok(());
        };
        let flag = match self.direction {
            Direction::Request => "readOnly",
            Direction::Response => "writeOnly",
        };
        let mut hidden = Vec::new();
        for (name, p) in props {
            let at = loc.join("properties").join(name);
            let (_, target) = self.docs.resolve(&at, p)?;
            if target.get(flag) == Some(&Value::Bool(true)) {
                hidden.push(name.clone());
            }
        }
        if hidden.is_empty() {
            return Ok(());
        }
        if let Some(Value::Object(props)) = out.get_mut("properties") {
            for name in &hidden {
                props.insert(name.clone(), Value::Bool(false));
            }
        }
        if let Some(Value::Array(req)) = out.get_mut("required") {
            req.retain(|r| !r.as_str().is_some_and(|r| hidden.iter().any(|h| h == r)));
        }
        Ok(())
    }
}

/// OpenAPI 3.0's departures from JSON Schema, rewritten in 2020-12 terms.
fn from_openapi_30(m: &mut Map<String, Value>) {
    for (bound, flag) in [
        ("minimum", "exclusiveMinimum"),
        ("maximum", "exclusiveMaximum"),
    ] {
        if let Some(Value::Bool(exclusive)) = m.get(flag).cloned() {
            m.remove(flag);
            if exclusive {
                if let Some(limit) = m.remove(bound) {
                    m.insert(flag.into(), limit);
                }
            }
        }
    }
    if m.remove("nullable") == Some(Value::Bool(true)) {
        match m.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                m.insert("type".into(), Value::Array(vec![t.into(), "null".into()]));
            }
            Some(Value::Array(types)) if !types.iter().any(|t| t == "null") => {
                types.push("null".into());
            }
            _ => {}
        }
        if let Some(Value::Array(options)) = m.get_mut("enum") {
            if !options.contains(&Value::Null) {
                options.push(Value::Null);
            }
        }
    }
}

/// A compiled schema.
pub(crate) struct Compiled {
    validator: jsonschema::Validator,
    /// The JSON types the root schema allows (after following a root `$ref`): how a
    /// parameter's text is read.
    pub shape: Shape,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compiled")
            .field("shape", &self.shape)
            .finish()
    }
}

/// What a parameter's text must be read as.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Shape {
    /// Allowed types of the value (empty: any).
    pub types: Vec<String>,
    /// For arrays: the items' types.
    pub items: Vec<String>,
    /// For objects: each property's types.
    pub properties: Vec<(String, Vec<String>)>,
}

impl Shape {
    pub fn allows(&self, t: &str) -> bool {
        self.types.iter().any(|x| x == t)
    }
}

/// Pattern matching is bounded: a description's regex cannot make one request expensive.
const BACKTRACK_LIMIT: usize = 100_000;

pub(crate) fn compile(loc: &Loc, bundled: Value) -> Result<Compiled, Error> {
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .should_validate_formats(true)
        .with_pattern_options(
            jsonschema::PatternOptions::fancy_regex().backtrack_limit(BACKTRACK_LIMIT),
        )
        .build(&bundled)
        .map_err(|e| loc.error(format!("schema does not compile: {}", e.kind().keyword())))?;
    let shape = shape_of(&bundled);
    Ok(Compiled { validator, shape })
}

fn types_of(root: &Value, s: &Value, depth: usize) -> Vec<String> {
    let s = follow(root, s, depth);
    match s.get("type") {
        Some(Value::String(t)) => vec![t.clone()],
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(|t| t.as_str().map(String::from))
            .collect(),
        _ => {
            // `allOf`/`anyOf`/`oneOf` of typed schemas: the union of their types.
            let mut out = Vec::new();
            for k in ["allOf", "anyOf", "oneOf"] {
                for sub in s.get(k).and_then(Value::as_array).into_iter().flatten() {
                    if depth < 8 {
                        for t in types_of(root, sub, depth + 1) {
                            if !out.contains(&t) {
                                out.push(t);
                            }
                        }
                    }
                }
            }
            out
        }
    }
}

/// `s`, or the `$defs` entry its root `$ref` names.
fn follow<'a>(root: &'a Value, mut s: &'a Value, depth: usize) -> &'a Value {
    for _ in depth..8 {
        let target = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|p| root.pointer(p));
        match target {
            Some(t) => s = t,
            None => break,
        }
    }
    s
}

fn shape_of(root: &Value) -> Shape {
    let s = follow(root, root, 0);
    let types = types_of(root, s, 0);
    let items = s
        .get("items")
        .map(|i| types_of(root, i, 0))
        .unwrap_or_default();
    let properties = s
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| {
            p.iter()
                .map(|(k, v)| (k.clone(), types_of(root, v, 0)))
                .collect()
        })
        .unwrap_or_default();
    Shape {
        types,
        items,
        properties,
    }
}

impl Compiled {
    /// Every way `value` breaks the schema, located under `base` (`/body`, `/query/x`).
    pub fn check(&self, value: &Value, base: &str, out: &mut Vec<Violation>) {
        for e in self
            .validator
            .iter_errors(value)
            .take(crate::MAX_VIOLATIONS)
        {
            out.push(Violation {
                pointer: format!(
                    "{base}{}",
                    crate::sanitize_pointer(e.instance_path().as_str())
                ),
                keyword: e.kind().keyword().to_string(),
                message: message(e.kind()),
            });
        }
    }
}

/// What was wrong, from the schema's side only: never the value sent (it may be an attack,
/// and the answer goes back to whoever sent it).
fn message(kind: &jsonschema::error::ValidationErrorKind) -> String {
    use jsonschema::error::{TypeKind, ValidationErrorKind as K};
    let short = |v: &Value| {
        let s = v.to_string();
        if s.len() > 64 {
            format!("{}…", &s[..s.floor_char_boundary(64)])
        } else {
            s
        }
    };
    match kind {
        K::Type { kind } => {
            let names: Vec<String> = match kind {
                TypeKind::Single(t) => vec![t.to_string()],
                TypeKind::Multiple(set) => set.iter().map(|t| t.to_string()).collect(),
            };
            format!("must be of type {}", names.join(" or "))
        }
        K::Required { property } => format!("required property {} is missing", short(property)),
        K::AdditionalProperties { unexpected } | K::UnevaluatedProperties { unexpected } => {
            let names: Vec<String> = unexpected
                .iter()
                .take(5)
                .map(|n| crate::sanitize_name(n))
                .collect();
            format!("unexpected properties: {}", names.join(", "))
        }
        K::Enum { .. } => "must be one of the allowed values".into(),
        K::Constant { .. } => "must equal the fixed value".into(),
        K::Minimum { limit } => format!("must be >= {}", short(limit)),
        K::Maximum { limit } => format!("must be <= {}", short(limit)),
        K::ExclusiveMinimum { limit } => format!("must be > {}", short(limit)),
        K::ExclusiveMaximum { limit } => format!("must be < {}", short(limit)),
        K::MinLength { limit } => format!("must be at least {limit} characters long"),
        K::MaxLength { limit } => format!("must be at most {limit} characters long"),
        K::MinItems { limit } => format!("must have at least {limit} items"),
        K::MaxItems { limit } => format!("must have at most {limit} items"),
        K::MinProperties { limit } => format!("must have at least {limit} properties"),
        K::MaxProperties { limit } => format!("must have at most {limit} properties"),
        K::Pattern { pattern } => {
            format!(
                "must match the pattern {}",
                short(&Value::String(pattern.clone()))
            )
        }
        K::BacktrackLimitExceeded { .. } | K::RegexEngineFailure { .. } => {
            "could not be matched against its pattern within bounds".into()
        }
        K::Format { format } => format!("must be a valid {format}"),
        K::UniqueItems => "must not repeat items".into(),
        K::FalseSchema => "is not allowed here".into(),
        K::OneOfMultipleValid { .. } => "matches more than one of the allowed forms".into(),
        K::OneOfNotValid { .. } | K::AnyOf { .. } => "matches none of the allowed forms".into(),
        K::Not { .. } => "matches a forbidden form".into(),
        K::MultipleOf { .. } => "is not a multiple of the required step".into(),
        other => format!("fails {}", other.keyword()),
    }
}
