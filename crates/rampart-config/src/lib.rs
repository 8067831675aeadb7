//! Rampart configuration: YAML in, an immutable validated [`Config`] out.
//!
//! Loading reports *every* problem it can find at once (unknown keys, bad values, dangling
//! references), each with file, line and column, so an operator fixes a file in one pass.
//! Strings may reference secrets as `${ENV_NAME}`; those are substituted after parsing so
//! that a secret never shows up in a parse error.

pub mod document;
mod error;
mod locate;
pub mod model;
pub mod units;
mod validate;

pub use error::Error;
pub use model::*;
pub use units::{ByteSize, HumanDuration};

use std::fmt;
use std::path::Path;

/// One problem in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file (or the name given for config text).
    pub file: String,
    /// The 1-based line of the key, or of its nearest ancestor in the file; 0 when the file
    /// cannot be read.
    pub line: usize,
    /// The 1-based column, like `line`.
    pub column: usize,
    /// Dotted path of the offending key, e.g. `routes.0.upstream`; empty for the whole file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

/// All problems found in a config file, in file order.
#[derive(Debug, Clone)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// A problem found after parsing: the dotted config path it concerns and what is wrong.
pub type Problem = (String, String);

/// An ACME external account binding key as CAs hand it out (base64url, padded or not).
pub fn acme_eab_key(text: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    let t = text.trim().trim_end_matches('=');
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .ok()?;
    (!key.is_empty()).then_some(key)
}

/// Read and validate a config file.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    build_file(path, Ok)
}

/// Read and validate a config file, then `build` it into what runs (the gateway's
/// snapshot). The builder reports its problems by config path; they come back with file,
/// line and column like the parser's own. `build` only runs on a config without problems.
pub fn build_file<T>(
    path: &Path,
    build: impl FnOnce(Config) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigErrors> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigErrors(vec![ConfigError {
            file: name.clone(),
            line: 0,
            column: 0,
            path: String::new(),
            message: format!("cannot read config file: {e}"),
        }])
    })?;
    let base = path.parent().map(|p| p.to_path_buf()).unwrap_or_default();
    load_inner(
        &text,
        &name,
        Some(&base),
        &|name| std::env::var(name).ok(),
        build,
    )
}

/// As [`load_str_with_env`], resolving relative file paths (certificates, keys, CAs) against
/// `base`, normally the config file's directory.
pub fn load_str_in(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_inner(text, file, Some(base), env, Ok)
}

/// Parse and validate config text; `file` names it in errors.
pub fn load_str(text: &str, file: &str) -> Result<Config, ConfigErrors> {
    load_str_with_env(text, file, &|name| std::env::var(name).ok())
}

/// As [`load_str`], with an explicit environment lookup (tests, embedding).
pub fn load_str_with_env(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    load_inner(text, file, None, env, Ok)
}

/// As [`build_file`], for config text (the embedded demo).
pub fn build_str<T>(
    text: &str,
    file: &str,
    env: &dyn Fn(&str) -> Option<String>,
    build: impl FnOnce(Config) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigErrors> {
    load_inner(text, file, None, env, build)
}

/// As [`build_str`], resolving relative file paths against `base` (a config that came
/// from somewhere other than its file, e.g. the admin API, keeps the file's directory).
pub fn build_str_in<T>(
    text: &str,
    file: &str,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    build: impl FnOnce(Config) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigErrors> {
    load_inner(text, file, Some(base), env, build)
}

/// Where dotted config paths (`routes.0.auth`) are in a config text: for reports about a
/// config that loaded (e.g. `rampart audit`).
pub struct Positions(locate::Index);

impl Positions {
    /// Index `text`; `None` when it is not YAML.
    pub fn new(text: &str) -> Option<Positions> {
        locate::Index::build(text).ok().map(Positions)
    }

    /// The 1-based line and column of `path`, or of its nearest ancestor present in the
    /// text (defaults are not in the text).
    pub fn of(&self, path: &str) -> (usize, usize) {
        self.0.position(path)
    }
}

fn load_inner<T>(
    text: &str,
    file: &str,
    base: Option<&Path>,
    env: &dyn Fn(&str) -> Option<String>,
    build: impl FnOnce(Config) -> Result<T, Vec<Problem>>,
) -> Result<T, ConfigErrors> {
    let index = match locate::Index::build(text) {
        Ok(i) => i,
        Err((line, column, msg)) => {
            return Err(ConfigErrors(vec![ConfigError {
                file: file.into(),
                line,
                column,
                path: String::new(),
                message: format!("YAML syntax error: {msg}"),
            }]))
        }
    };
    let mut problems: Vec<(String, String)> = Vec::new();

    let mut value: serde_yaml::Value = match serde_yaml::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((1, 1));
            return Err(ConfigErrors(vec![ConfigError {
                file: file.into(),
                line,
                column,
                path: String::new(),
                message: format!("YAML syntax error: {e}"),
            }]));
        }
    };
    if value.is_null() {
        problems.push((String::new(), "the config file is empty".into()));
    }
    substitute_env(&mut value, &mut Vec::new(), env, &mut problems);

    let mut unknown = Vec::new();
    let mut on_unknown = |p: serde_ignored::Path<'_>| {
        unknown.push(ignored_path(&p));
    };
    let de = serde_ignored::Deserializer::new(value, &mut on_unknown);
    let parsed: Result<Config, _> = serde_path_to_error::deserialize(de);
    for path in unknown {
        problems.push((
            path,
            "unknown key (check its spelling and where it is placed)".into(),
        ));
    }
    let config = match parsed {
        Ok(mut c) => {
            if let Some(base) = base {
                resolve_paths(&mut c, base);
            }
            Some(c)
        }
        Err(e) => {
            let path = error_path(e.path());
            problems.push((path, clean_serde_message(&e.inner().to_string())));
            None
        }
    };
    if let Some(c) = &config {
        problems.extend(validate::validate(c));
    }
    if problems.is_empty() {
        if let Some(c) = config {
            match build(c) {
                Ok(t) => return Ok(t),
                Err(found) if found.is_empty() => {
                    problems.push((String::new(), "the config could not be built".into()))
                }
                Err(found) => problems = found,
            }
        }
    }
    let mut errors: Vec<ConfigError> = problems
        .into_iter()
        .map(|(path, message)| {
            let (line, column) = index.position(&path);
            ConfigError {
                file: file.into(),
                line,
                column,
                path,
                message,
            }
        })
        .collect();
    errors.sort_by_key(|e| (e.line, e.column));
    errors.dedup();
    Err(ConfigErrors(errors))
}

fn resolve_paths(c: &mut Config, base: &Path) {
    let fix = |p: &mut String| {
        if !p.is_empty() && Path::new(p.as_str()).is_relative() {
            *p = base.join(p.as_str()).display().to_string();
        }
    };
    let admin_tls = c.admin.tls.as_mut();
    for t in c
        .listeners
        .iter_mut()
        .filter_map(|l| l.tls.as_mut())
        .chain(admin_tls)
    {
        {
            for cf in &mut t.certificates {
                fix(&mut cf.cert);
                fix(&mut cf.key);
            }
            if let Some(ca) = &mut t.client_auth {
                fix(&mut ca.ca);
                if let Some(crl) = &mut ca.crl {
                    fix(crl);
                }
            }
            if let Some(a) = &mut t.acme {
                fix(&mut a.storage);
                if let Some(ca) = &mut a.ca {
                    fix(ca);
                }
            }
        }
    }
    if let Some(h) = &mut c.auth.basic.htpasswd {
        fix(h);
    }
    // Log files too: relative to the config, not to wherever the process was started.
    if !matches!(c.access_log.target.as_str(), "stdout" | "off") {
        fix(&mut c.access_log.target);
    }
    if let Some(f) = &mut c.events.file {
        fix(f);
    }
    for l in c.network.lists.values_mut() {
        l.files.iter_mut().for_each(fix);
    }
    for db in [&mut c.network.geoip.country_db, &mut c.network.geoip.asn_db] {
        db.iter_mut().for_each(fix);
    }
    if let Some(w) = &mut c.waf {
        for r in &mut w.rules {
            fix(r);
        }
        if let Some(d) = &mut w.data_dir {
            fix(d);
        }
    }
    if let Some(ca) = c.auth.ldap.as_mut().and_then(|l| l.ca.as_mut()) {
        fix(ca);
    }
    if let Some(cd) = &mut c.cedar {
        fix(&mut cd.policies);
        for p in [&mut cd.entities, &mut cd.schema].into_iter().flatten() {
            fix(p);
        }
    }
    for j in &mut c.auth.jwt {
        for k in &mut j.keys {
            if let Some(p) = &mut k.pem {
                fix(p);
            }
        }
    }
    if let Some(cache) = c.store.as_mut().and_then(|s| s.postgres.cache.as_mut()) {
        fix(cache);
    }
    for r in &mut c.routes {
        if let Some(o) = &mut r.openapi {
            fix(&mut o.spec);
        }
        if let Some(d) = &mut r.docs {
            fix(&mut d.spec);
        }
    }
    for u in c.upstreams.values_mut() {
        if let Some(t) = &mut u.tls {
            for p in [&mut t.ca, &mut t.client_cert, &mut t.client_key]
                .into_iter()
                .flatten()
            {
                fix(p);
            }
        }
    }
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> String {
    use serde_ignored::Path as P;
    match p {
        P::Root => String::new(),
        P::Seq { parent, index } => join(&ignored_path(parent), &index.to_string()),
        P::Map { parent, key } => join(&ignored_path(parent), key),
        P::Some { parent } | P::NewtypeStruct { parent } | P::NewtypeVariant { parent } => {
            ignored_path(parent)
        }
    }
}

fn error_path(p: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in p.iter() {
        let s = match seg {
            Segment::Seq { index } => index.to_string(),
            Segment::Map { key } => key.clone(),
            Segment::Enum { variant } => variant.clone(),
            Segment::Unknown => continue,
        };
        out = join(&out, &s);
    }
    out
}

fn join(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_string()
    } else {
        format!("{a}.{b}")
    }
}

/// serde's messages are precise but terse; make the common ones read as plain advice.
fn clean_serde_message(m: &str) -> String {
    if let Some(rest) = m.strip_prefix("missing field ") {
        return format!("required key {rest} is missing");
    }
    if m.contains("did not match any variant of untagged enum") {
        return "expected a number or a string".into();
    }
    m.to_string()
}

fn substitute_env(
    v: &mut serde_yaml::Value,
    path: &mut Vec<String>,
    env: &dyn Fn(&str) -> Option<String>,
    problems: &mut Vec<(String, String)>,
) {
    match v {
        serde_yaml::Value::String(s) if s.contains("${") => {
            let mut out = String::with_capacity(s.len());
            let mut rest = s.as_str();
            while let Some(start) = rest.find("${") {
                out.push_str(&rest[..start]);
                let after = &rest[start + 2..];
                match after.find('}') {
                    Some(end) => {
                        let name = &after[..end];
                        match env(name) {
                            Some(val) => out.push_str(&val),
                            None => problems.push((
                                path.join("."),
                                format!("environment variable {name} is not set"),
                            )),
                        }
                        rest = &after[end + 1..];
                    }
                    None => {
                        problems.push((path.join("."), "unterminated ${ in value".into()));
                        rest = "";
                    }
                }
            }
            out.push_str(rest);
            *s = out;
        }
        serde_yaml::Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                path.push(i.to_string());
                substitute_env(item, path, env, problems);
                path.pop();
            }
        }
        serde_yaml::Value::Mapping(map) => {
            for (k, item) in map.iter_mut() {
                path.push(k.as_str().unwrap_or("?").to_string());
                substitute_env(item, path, env, problems);
                path.pop();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests;
