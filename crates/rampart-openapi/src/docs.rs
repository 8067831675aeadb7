//! The documents of one API description: the root file and every file its `$ref`s reach,
//! parsed once (JSON or YAML), and reference resolution across them.

use crate::Error;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A place in the documents: a file and a JSON pointer inside it (unescaped form, as
/// `serde_json::Value::pointer` takes it).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Loc {
    pub file: Arc<Path>,
    pub pointer: String,
}

impl Loc {
    /// `self` extended by one key (escaped as JSON pointers require).
    pub fn join(&self, key: &str) -> Loc {
        Loc {
            file: self.file.clone(),
            pointer: format!(
                "{}/{}",
                self.pointer,
                key.replace('~', "~0").replace('/', "~1")
            ),
        }
    }

    pub fn error(&self, message: impl Into<String>) -> Error {
        Error::Spec {
            file: self.file.display().to_string(),
            pointer: if self.pointer.is_empty() {
                "/".into()
            } else {
                self.pointer.clone()
            },
            message: message.into(),
        }
    }
}

/// References followed at most this many times in a row (a cycle of `$ref`s is an error).
const MAX_HOPS: usize = 32;
/// Files one description may span.
const MAX_FILES: usize = 256;

pub(crate) struct Docs {
    files: HashMap<Arc<Path>, Value>,
    pub root: Arc<Path>,
}

impl Docs {
    /// Reads the root file and every file reachable through `$ref`.
    pub fn load(root: &Path) -> Result<Docs, Error> {
        let root: Arc<Path> = canonical(root)?.into();
        let mut docs = Docs {
            files: HashMap::new(),
            root: root.clone(),
        };
        let mut pending = vec![root];
        while let Some(file) = pending.pop() {
            if docs.files.contains_key(&file) {
                continue;
            }
            if docs.files.len() >= MAX_FILES {
                return Err(Error::TooManyFiles { limit: MAX_FILES });
            }
            let value = parse_file(&file)?;
            let mut refs = Vec::new();
            collect_refs(&value, &mut refs);
            for r in refs {
                let (target, _) = split_ref(&file, &r).map_err(|m| {
                    Loc {
                        file: file.clone(),
                        pointer: String::new(),
                    }
                    .error(m)
                })?;
                if !docs.files.contains_key(&target) {
                    pending.push(target);
                }
            }
            docs.files.insert(file, value);
        }
        Ok(docs)
    }

    pub fn root_value(&self) -> &Value {
        &self.files[&self.root]
    }

    pub fn root_loc(&self) -> Loc {
        Loc {
            file: self.root.clone(),
            pointer: String::new(),
        }
    }

    /// The value at `loc`.
    pub fn at(&self, loc: &Loc) -> Option<&Value> {
        self.files.get(&loc.file)?.pointer(&loc.pointer)
    }

    /// Where the `$ref` string `r`, written at `from`, points.
    pub fn target(&self, from: &Loc, r: &str) -> Result<Loc, Error> {
        let (file, pointer) = split_ref(&from.file, r).map_err(|m| from.error(m))?;
        Ok(Loc { file, pointer })
    }

    /// `v` (found at `loc`), or what its `$ref` chain ends at, with the place it was found.
    pub fn resolve<'a>(&'a self, loc: &Loc, v: &'a Value) -> Result<(Loc, &'a Value), Error> {
        let (mut loc, mut v) = (loc.clone(), v);
        for _ in 0..MAX_HOPS {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return Ok((loc, v));
            };
            let target = self.target(&loc, r)?;
            v = self
                .at(&target)
                .ok_or_else(|| loc.error(format!("$ref {r:?} points to nothing")))?;
            loc = target;
        }
        Err(loc.error("$ref chain too long (a cycle?)"))
    }
}

fn canonical(p: &Path) -> Result<PathBuf, Error> {
    std::fs::canonicalize(p).map_err(|e| Error::Read {
        file: p.display().to_string(),
        reason: e.to_string(),
    })
}

fn parse_file(file: &Path) -> Result<Value, Error> {
    let bytes = std::fs::read(file).map_err(|e| Error::Read {
        file: file.display().to_string(),
        reason: e.to_string(),
    })?;
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
    let parsed = if first == Some(&b'{') {
        serde_json::from_slice(&bytes).map_err(|e| e.to_string())
    } else {
        serde_yaml::from_slice(&bytes).map_err(|e| e.to_string())
    };
    parsed.map_err(|reason| Error::Parse {
        file: file.display().to_string(),
        reason,
    })
}

/// Every `$ref` string in `v` (keys named `$ref` whose value is a string).
fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x) {
                    ("$ref", Value::String(s)) => out.push(s.clone()),
                    _ => collect_refs(x, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_refs(x, out)),
        _ => {}
    }
}

/// A `$ref` as (file, unescaped JSON pointer). Only local files: a description that needs
/// the network to load is refused, not fetched.
fn split_ref(from: &Path, r: &str) -> Result<(Arc<Path>, String), String> {
    let (file, fragment) = r.split_once('#').unwrap_or((r, ""));
    if file.contains("://") {
        return Err(format!("$ref {r:?}: remote references are not fetched"));
    }
    let fragment = percent_encoding::percent_decode_str(fragment)
        .decode_utf8()
        .map_err(|_| format!("$ref {r:?}: not UTF-8"))?;
    if !fragment.is_empty() && !fragment.starts_with('/') {
        return Err(format!(
            "$ref {r:?}: only JSON pointer fragments are supported"
        ));
    }
    let target: Arc<Path> = if file.is_empty() {
        from.into()
    } else {
        let base = from.parent().unwrap_or(Path::new("."));
        canonical(&base.join(file))
            .map_err(|e| format!("$ref {r:?}: {e}"))?
            .into()
    };
    Ok((target, fragment.into_owned()))
}
