//! OpenAPI 3.0 and 3.1 contracts, free of proxy types: a description is loaded once (its
//! `$ref`s followed across files, every schema compiled), then each request is checked
//! against the operation it addresses — path template and parameters, query, headers,
//! cookies, `Content-Type`, body — and refused with every violation found.
//!
//! Violations say where (a JSON pointer: `/query/limit`, `/body/items/0/id`), which keyword
//! and what was expected; never the value sent.

mod body;
mod docs;
mod params;
mod public;
mod response;
mod schema;
mod template;

pub use body::strict_json;
use docs::{Docs, Loc};
use params::{In, Param, Sent, Style};
pub use public::{for_groups, public_document};
pub use response::ResponseHead;
use schema::{Bundler, Compiled, Dialect, Direction};
use serde_json::Value;
use std::path::Path;
use template::Template;

/// Violations reported at most per request (the rest would only cost time).
pub const MAX_VIOLATIONS: usize = 50;

/// Why a description could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file could not be read.
    #[error("{file}: {reason}")]
    Read {
        /// The file.
        file: String,
        /// What the system said.
        reason: String,
    },
    /// A file is neither JSON nor YAML.
    #[error("{file}: not JSON or YAML: {reason}")]
    Parse {
        /// The file.
        file: String,
        /// What the parser said.
        reason: String,
    },
    /// Something in the description is wrong or unsupported.
    #[error("{file}#{pointer}: {message}")]
    Spec {
        /// The file.
        file: String,
        /// Where in it (JSON pointer).
        pointer: String,
        /// What is wrong.
        message: String,
    },
    /// The `$ref`s reach too many files.
    #[error("the description spans more than {limit} files")]
    TooManyFiles {
        /// The limit.
        limit: usize,
    },
}

/// One way a request breaks its contract.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Where: `/path/x`, `/query/x`, `/header/x`, `/cookie/x`, `/body...`.
    pub pointer: String,
    /// The schema keyword (or `required`, `style`, `json`, `media-type`...) that failed.
    pub keyword: String,
    /// What was expected, without the value sent.
    pub message: String,
}

impl Violation {
    fn new(pointer: String, keyword: &str, message: impl Into<String>) -> Violation {
        Violation {
            pointer,
            keyword: keyword.into(),
            message: message.into(),
        }
    }
}

/// A name from the request, safe to put in an answer: printable ASCII letters, digits and
/// `-_.`, others as `?`, at most 64 characters.
pub fn sanitize_name(s: &str) -> String {
    let mut out: String = s
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.".contains(c) {
                c
            } else {
                '?'
            }
        })
        .collect();
    if s.chars().count() > 64 {
        out.push('…');
    }
    out
}

/// A JSON pointer into the request, each segment sanitized (keys come from the client).
fn sanitize_pointer(p: &str) -> String {
    if p.is_empty() {
        return String::new();
    }
    p.split('/')
        .skip(1)
        .map(|seg| format!("/{}", sanitize_name(seg)))
        .collect()
}

/// Per-route choices about what is refused.
#[derive(Debug, Clone, Copy)]
pub struct Options<'a> {
    /// Query parameters the operation does not declare are violations.
    pub refuse_unknown_query: bool,
    /// The API's path prefix, instead of the description's first server's.
    pub base_path: Option<&'a str>,
}

/// The request, as the backend will receive it.
pub struct Request<'a> {
    /// Upper-case method.
    pub method: &'a str,
    /// The path (canonical, percent-encoded), without the query.
    pub path: &'a str,
    /// The query string, without `?`.
    pub query: Option<&'a str>,
    /// Header names and values, as sent.
    pub headers: &'a [(String, Vec<u8>)],
    /// The whole body; `None` or empty when there is none.
    pub body: Option<&'a [u8]>,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400 (a violation), 404 (no such path), 405 (no such method: see `allow`), 415
    /// (a media type the operation does not take).
    pub status: u16,
    /// Every violation found (up to [`MAX_VIOLATIONS`]).
    pub violations: Vec<Violation>,
    /// For 405: the methods the path has.
    pub allow: Vec<String>,
}

/// A declared request body.
#[derive(Debug)]
struct BodySpec {
    required: bool,
    /// Media range → its schema.
    media: Vec<(String, Option<Compiled>)>,
}

/// One operation (a method on a path).
#[derive(Debug)]
pub struct Operation {
    /// Upper-case method.
    pub method: String,
    /// The path template it is declared under.
    pub path: String,
    /// Its `operationId`, if it has one.
    pub id: Option<String>,
    /// Where it is in its description, to find it again ([`Spec::operation`]).
    pub at: OpRef,
    /// Its security requirements: any one of them (each: every scheme named, with these
    /// scopes) lets a request in; none listed: no requirement.
    pub security: Vec<Requirement>,
    params: Vec<Param>,
    body: Option<BodySpec>,
    /// Declared responses (compiled only when loaded with `responses`).
    responses: Vec<response::ResponseSpec>,
}

/// One security requirement: every (scheme, scopes) pair must be met.
pub type Requirement = Vec<(String, Vec<String>)>;

/// An operation's security requirements (`security`), read from its own or the
/// description's default.
fn security(loc: &Loc, v: Option<&Value>) -> Result<Vec<Requirement>, Error> {
    let Some(v) = v else {
        return Ok(Vec::new());
    };
    let list = v
        .as_array()
        .ok_or_else(|| loc.join("security").error("must be a list"))?;
    let mut out = Vec::new();
    for (i, req) in list.iter().enumerate() {
        let req = req.as_object().ok_or_else(|| {
            loc.join("security")
                .join(&i.to_string())
                .error("must be an object")
        })?;
        out.push(
            req.iter()
                .map(|(scheme, scopes)| {
                    let scopes = scopes
                        .as_array()
                        .map(|a| {
                            a.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default();
                    (scheme.clone(), scopes)
                })
                .collect(),
        );
    }
    Ok(out)
}

/// An operation's place in its description: kept across a request's phases instead of a
/// borrow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct OpRef {
    path: u32,
    op: u32,
}

/// What [`Spec::load_with`] compiles beside the requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// The declared responses (status codes, media types, body schemas).
    pub responses: bool,
}

/// How a description is read: its documents, dialect and what to compile.
struct Loader<'d> {
    docs: &'d Docs,
    dialect: Dialect,
    opts: LoadOptions,
    /// The description's default `security`, for operations without their own.
    security: Option<&'d Value>,
}

struct PathItem {
    template: Template,
    rank: Vec<u8>,
    operations: Vec<Operation>,
}

/// A loaded, compiled description.
pub struct Spec {
    /// The path prefix of the first server (`servers[0].url`), without a trailing `/`.
    pub base_path: String,
    paths: Vec<PathItem>,
    /// Path indexes by segment count.
    by_len: std::collections::HashMap<usize, Vec<usize>>,
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

impl Spec {
    /// Loads the description at `path` and every file it references; compiles each request
    /// schema.
    pub fn load(path: &Path) -> Result<Spec, Error> {
        Self::load_with(path, LoadOptions::default())
    }

    /// [`Spec::load`], compiling what `opts` asks for too.
    pub fn load_with(path: &Path, opts: LoadOptions) -> Result<Spec, Error> {
        let docs = Docs::load(path)?;
        let root = docs.root_value();
        let at = docs.root_loc();
        let version = match root.get("openapi") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => {
                return Err(at
                    .join("openapi")
                    .error("missing: not an OpenAPI 3 description"))
            }
        };
        let dialect = if version.starts_with("3.0.") {
            Dialect::V30
        } else if version.starts_with("3.1.") {
            Dialect::V31
        } else {
            return Err(at.join("openapi").error(format!(
                "version {version:?}: only 3.0.x and 3.1.x are supported"
            )));
        };
        let base_path = base_path(root).map_err(|m| at.join("servers").error(m))?;
        let mut paths = Vec::new();
        let empty = serde_json::Map::new();
        let declared = root
            .get("paths")
            .map(|p| {
                p.as_object()
                    .ok_or_else(|| at.join("paths").error("must be an object"))
            })
            .transpose()?
            .unwrap_or(&empty);
        for (p, item) in declared {
            let loc = at.join("paths").join(p);
            let template = Template::parse(p).map_err(|m| loc.error(m))?;
            let (item_loc, item) = docs.resolve(&loc, item)?;
            let shared = item.get("parameters");
            let mut operations = Vec::new();
            for m in METHODS {
                let Some(op) = item.get(m) else { continue };
                let op_loc = item_loc.join(m);
                let load = Loader {
                    docs: &docs,
                    dialect,
                    opts,
                    security: root.get("security"),
                };
                let at = OpRef {
                    path: paths.len() as u32,
                    op: operations.len() as u32,
                };
                operations.push(operation(
                    &load, at, &template, m, &op_loc, op, &item_loc, shared,
                )?);
            }
            paths.push(PathItem {
                rank: template.rank(),
                template,
                operations,
            });
        }
        let mut by_len: std::collections::HashMap<usize, Vec<usize>> = Default::default();
        for (i, p) in paths.iter().enumerate() {
            by_len.entry(p.rank.len()).or_default().push(i);
        }
        Ok(Spec {
            base_path,
            paths,
            by_len,
        })
    }

    /// The operation `at` names (from [`Operation::at`]).
    pub fn operation(&self, at: OpRef) -> Option<&Operation> {
        self.paths
            .get(at.path as usize)?
            .operations
            .get(at.op as usize)
    }

    /// Every security scheme the operations name.
    pub fn security_schemes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self
            .paths
            .iter()
            .flat_map(|p| &p.operations)
            .flat_map(|o| &o.security)
            .flatten()
            .map(|(s, _)| s.as_str())
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    /// How many operations the description declares.
    pub fn operations(&self) -> usize {
        self.paths.iter().map(|p| p.operations.len()).sum()
    }

    /// The operation a request is for, by method and path alone (nothing else checked):
    /// what routing by operation needs before the request is read.
    pub fn find(&self, method: &str, path: &str, base_path: Option<&str>) -> Option<&Operation> {
        let base = base_path.unwrap_or(&self.base_path).trim_end_matches('/');
        let rest = strip_base(path, base)?;
        let segments: Option<Vec<String>> = rest
            .strip_prefix('/')
            .unwrap_or(rest)
            .split('/')
            .map(template::decode)
            .collect();
        let segments = segments?;
        let mut best: Option<&PathItem> = None;
        for &i in self.by_len.get(&segments.len()).into_iter().flatten() {
            let p = &self.paths[i];
            if best.is_some_and(|b| b.rank >= p.rank) {
                continue;
            }
            if p.template.matches(&segments).is_some() {
                best = Some(p);
            }
        }
        best?
            .operations
            .iter()
            .find(|o| o.method.eq_ignore_ascii_case(method))
    }

    /// Every operation, in the description's order.
    pub fn all(&self) -> impl Iterator<Item = &Operation> {
        self.paths.iter().flat_map(|p| &p.operations)
    }

    /// The operation named by `key`: its `operationId`, or `METHOD /path/template`.
    pub fn by_key(&self, key: &str) -> Option<&Operation> {
        let (method, path) = key.split_once(' ').unwrap_or(("", ""));
        self.paths.iter().flat_map(|p| &p.operations).find(|o| {
            o.id.as_deref() == Some(key)
                || (o.method.eq_ignore_ascii_case(method) && o.path == path)
        })
    }

    /// Checks `req` against its operation; the operation when the request keeps to it.
    pub fn check(&self, req: &Request, opts: Options) -> Result<&Operation, Refusal> {
        let base = opts.base_path.unwrap_or(&self.base_path);
        let base = base.trim_end_matches('/');
        let refuse = |status: u16, v: Vec<Violation>| Refusal {
            status,
            violations: v,
            allow: Vec::new(),
        };
        let no_path = || {
            refuse(
                404,
                vec![Violation::new(
                    "/path".into(),
                    "path",
                    "no such path in the API",
                )],
            )
        };
        let Some(rest) = strip_base(req.path, base) else {
            return Err(no_path());
        };
        let mut segments = Vec::new();
        for s in rest.strip_prefix('/').unwrap_or(rest).split('/') {
            match template::decode(s) {
                Some(d) => segments.push(d),
                None => {
                    return Err(refuse(
                        400,
                        vec![Violation::new(
                            "/path".into(),
                            "path",
                            "not UTF-8 once decoded",
                        )],
                    ))
                }
            }
        }
        let mut best: Option<(&PathItem, Vec<(String, String)>)> = None;
        for &i in self.by_len.get(&segments.len()).into_iter().flatten() {
            let p = &self.paths[i];
            if best.as_ref().is_some_and(|(b, _)| b.rank >= p.rank) {
                continue;
            }
            if let Some(params) = p.template.matches(&segments) {
                best = Some((p, params));
            }
        }
        let Some((item, path_params)) = best else {
            return Err(no_path());
        };
        let Some(op) = item
            .operations
            .iter()
            .find(|o| o.method.eq_ignore_ascii_case(req.method))
        else {
            return Err(Refusal {
                status: 405,
                violations: vec![Violation::new(
                    "/method".into(),
                    "method",
                    "method not declared for this path",
                )],
                allow: item.operations.iter().map(|o| o.method.clone()).collect(),
            });
        };
        let mut out = Vec::new();
        let query = match body::form_pairs(req.query.unwrap_or("")) {
            Ok(q) => q,
            Err(m) => {
                out.push(Violation::new("/query".into(), "query", m));
                Vec::new()
            }
        };
        let cookies = cookies(req.headers);
        let sent = Sent {
            path: &path_params,
            query: &query,
            headers: req.headers,
            cookies: &cookies,
        };
        let mut used = Vec::new();
        for p in &op.params {
            used.extend(p.check(&sent, &mut out));
        }
        if opts.refuse_unknown_query {
            for (k, _) in &query {
                if !used.contains(k) {
                    out.push(Violation::new(
                        format!("/query/{}", sanitize_name(k)),
                        "additionalProperties",
                        "query parameter not declared for this operation",
                    ));
                }
            }
        }
        let status = op.check_body(req, &mut out);
        out.truncate(MAX_VIOLATIONS);
        if out.is_empty() {
            Ok(op)
        } else {
            Err(refuse(status, out))
        }
    }
}

impl Operation {
    /// Checks the body; returns the status a refusal should carry (415 for a media type
    /// the operation does not take, else 400).
    fn check_body(&self, req: &Request, out: &mut Vec<Violation>) -> u16 {
        let body = req.body.filter(|b| !b.is_empty());
        let Some(spec) = &self.body else {
            if body.is_some() {
                out.push(Violation::new(
                    "/body".into(),
                    "requestBody",
                    "this operation takes no body",
                ));
            }
            return 400;
        };
        let Some(body) = body else {
            if spec.required {
                out.push(Violation::new(
                    "/body".into(),
                    "required",
                    "a body is required",
                ));
            }
            return 400;
        };
        let ct = content_type(req.headers);
        let media = match ct.as_deref().map(body::MediaType::parse) {
            Some(Some(m)) => m,
            _ => {
                out.push(Violation::new(
                    "/header/content-type".into(),
                    "media-type",
                    "a body needs a valid Content-Type",
                ));
                return 415;
            }
        };
        let Some((_, schema)) = spec
            .media
            .iter()
            .filter_map(|(range, s)| media.matched_by(range).map(|q| (q, s)))
            .max_by_key(|(q, _)| *q)
        else {
            out.push(Violation::new(
                "/header/content-type".into(),
                "media-type",
                format!(
                    "media type not accepted here (expected {})",
                    spec.media
                        .iter()
                        .map(|(r, _)| r.as_str())
                        .take(5)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
            return 415;
        };
        let charset = media.param("charset").map(str::to_ascii_lowercase);
        if charset
            .as_deref()
            .is_some_and(|c| c != "utf-8" && c != "utf8")
        {
            out.push(Violation::new(
                "/header/content-type".into(),
                "media-type",
                "only the utf-8 charset is accepted",
            ));
            return 415;
        }
        let value = if media.is_json() {
            match body::strict_json(body) {
                Ok(v) => v,
                Err(m) => {
                    out.push(Violation::new(
                        "/body".into(),
                        "json",
                        format!("not valid JSON: {m}"),
                    ));
                    return 400;
                }
            }
        } else if media.essence == "application/x-www-form-urlencoded"
            || media.essence == "multipart/form-data"
        {
            let pairs = if media.essence == "multipart/form-data" {
                body::multipart_pairs(body, media.param("boundary").unwrap_or(""))
            } else {
                std::str::from_utf8(body)
                    .map_err(|_| "form body is not UTF-8".to_string())
                    .and_then(body::form_pairs)
            };
            let shape = schema.as_ref().map(|s| s.shape.clone()).unwrap_or_default();
            match pairs.and_then(|p| body::form_object(&p, &shape)) {
                Ok(v) => v,
                Err(m) => {
                    out.push(Violation::new("/body".into(), "form", m));
                    return 400;
                }
            }
        } else {
            // Other media types (text, binary) are taken as declared; only a schema that
            // expects text can say more, and it sees the text.
            match (schema, std::str::from_utf8(body)) {
                (Some(s), Ok(t)) if s.shape.allows("string") => Value::String(t.to_string()),
                _ => return 400,
            }
        };
        if let Some(s) = schema {
            s.check(&value, "/body", out);
        }
        400
    }
}

fn content_type(headers: &[(String, Vec<u8>)]) -> Option<String> {
    let mut it = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("content-type"));
    let first = it.next()?;
    if it.next().is_some() {
        return None;
    }
    String::from_utf8(first.1.clone()).ok()
}

fn cookies(headers: &[(String, Vec<u8>)]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (_, v) in headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("cookie"))
    {
        for c in String::from_utf8_lossy(v).split(';') {
            let c = c.trim();
            if c.is_empty() {
                continue;
            }
            let (k, v) = c.split_once('=').unwrap_or((c, ""));
            out.push((k.trim().to_string(), v.trim().to_string()));
        }
    }
    out
}

fn strip_base<'a>(path: &'a str, base: &str) -> Option<&'a str> {
    if base.is_empty() {
        return Some(path);
    }
    let rest = path.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(if rest.is_empty() { "/" } else { rest })
}

/// The path of `servers[0].url`, its variables replaced by their defaults.
fn base_path(root: &Value) -> Result<String, String> {
    let Some(server) = root
        .get("servers")
        .and_then(Value::as_array)
        .and_then(|s| s.first())
    else {
        return Ok(String::new());
    };
    let mut url = server
        .get("url")
        .and_then(Value::as_str)
        .ok_or("servers[0].url must be a string")?
        .to_string();
    if let Some(vars) = server.get("variables").and_then(Value::as_object) {
        for (k, v) in vars {
            let d = v.get("default").and_then(Value::as_str).unwrap_or("");
            url = url.replace(&format!("{{{k}}}"), d);
        }
    }
    let path = match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map(|i| &rest[i..]).unwrap_or(""),
        None => url.as_str(),
    };
    if path.contains('{') {
        return Err("servers[0].url has a variable without a default".into());
    }
    Ok(path.trim_end_matches('/').to_string())
}

#[allow(clippy::too_many_arguments)]
fn operation(
    load: &Loader,
    at: OpRef,
    template: &Template,
    method: &str,
    loc: &Loc,
    op: &Value,
    item_loc: &Loc,
    shared: Option<&Value>,
) -> Result<Operation, Error> {
    // Operation parameters override the path item's (same name and location).
    let mut declared: Vec<(Loc, &Value)> = Vec::new();
    for (base, list) in [
        (item_loc.join("parameters"), shared),
        (loc.join("parameters"), op.get("parameters")),
    ] {
        let Some(list) = list else { continue };
        let list = list
            .as_array()
            .ok_or_else(|| base.error("must be a list"))?;
        for (i, p) in list.iter().enumerate() {
            let (ploc, p) = load.docs.resolve(&base.join(&i.to_string()), p)?;
            let key = |v: &Value| (v.get("name").cloned(), v.get("in").cloned());
            declared.retain(|(_, q)| key(q) != key(p));
            declared.push((ploc, p));
        }
    }
    let mut params = Vec::new();
    for (ploc, p) in declared {
        let name = p
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| ploc.error("a parameter needs a name"))?;
        let location = p
            .get("in")
            .and_then(Value::as_str)
            .and_then(In::parse)
            .ok_or_else(|| ploc.error("`in` must be path, query, header or cookie"))?;
        // OpenAPI: these headers are described elsewhere and ignored as parameters.
        if location == In::Header
            && ["accept", "content-type", "authorization"]
                .contains(&name.to_ascii_lowercase().as_str())
        {
            continue;
        }
        if location == In::Path && !template.params().any(|n| n == name) {
            return Err(ploc.error(format!("path parameter {name:?} is not in the path")));
        }
        let style = match p.get("style").and_then(Value::as_str) {
            Some(s) => Style::parse(s).ok_or_else(|| ploc.error(format!("unknown style {s:?}")))?,
            None => Style::default_for(location),
        };
        let explode = p
            .get("explode")
            .and_then(Value::as_bool)
            .unwrap_or(style == Style::Form);
        let (schema, json) = match (p.get("schema"), p.get("content")) {
            (Some(s), _) => (
                Some(compile(
                    load.docs,
                    load.dialect,
                    Direction::Request,
                    &ploc.join("schema"),
                    s,
                )?),
                false,
            ),
            (None, Some(Value::Object(c))) => match c.iter().next() {
                Some((mt, m)) => {
                    let sloc = ploc.join("content").join(mt).join("schema");
                    let s = m
                        .get("schema")
                        .map(|s| compile(load.docs, load.dialect, Direction::Request, &sloc, s))
                        .transpose()?;
                    (s, body::MediaType::parse(mt).is_some_and(|m| m.is_json()))
                }
                None => (None, false),
            },
            _ => (None, false),
        };
        params.push(Param {
            name: name.to_string(),
            location,
            required: location == In::Path || p.get("required") == Some(&Value::Bool(true)),
            style,
            explode,
            schema,
            json,
        });
    }
    let body = match op.get("requestBody") {
        None => None,
        Some(b) => {
            let (bloc, b) = load.docs.resolve(&loc.join("requestBody"), b)?;
            let mut media = Vec::new();
            if let Some(c) = b.get("content").and_then(Value::as_object) {
                for (mt, m) in c {
                    let sloc = bloc.join("content").join(mt).join("schema");
                    let s = m
                        .get("schema")
                        .map(|s| compile(load.docs, load.dialect, Direction::Request, &sloc, s))
                        .transpose()?;
                    media.push((mt.clone(), s));
                }
            }
            Some(BodySpec {
                required: b.get("required") == Some(&Value::Bool(true)),
                media,
            })
        }
    };
    Ok(Operation {
        method: method.to_ascii_uppercase(),
        path: template.text.clone(),
        id: op
            .get("operationId")
            .and_then(Value::as_str)
            .map(String::from),
        at,
        params,
        body,
        security: security(loc, op.get("security").or(load.security))?,
        responses: if load.opts.responses {
            response::declared(load, loc, op)?
        } else {
            Vec::new()
        },
    })
}

fn compile(
    docs: &Docs,
    dialect: Dialect,
    direction: Direction,
    loc: &Loc,
    s: &Value,
) -> Result<Compiled, Error> {
    let bundled = Bundler::new(docs, dialect, direction).bundle(loc, s)?;
    schema::compile(loc, bundled)
}
