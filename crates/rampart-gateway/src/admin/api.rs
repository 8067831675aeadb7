//! The admin API's endpoints: what each path and method does, and the role it needs.

use super::{Admin, Caller, Reply, Req};
use crate::reload::ApplyError;
use crate::snapshot::Snapshot;
use http::Method;
use rampart_config::document::{self, Collection};
use rampart_config::AdminRole;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The admin API's description, served at `/openapi.json` (kept true by the tests).
const OPENAPI: &str = include_str!("openapi.json");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    OpenApi,
    WhoAmI,
    GetConfig,
    PutConfig,
    DiffConfig,
    History,
    HistoryVersion,
    Restore,
    ListItems,
    GetItem,
    PutItem,
    DeleteItem,
    AddKey,
    Health,
    ListBans,
    AddBan,
    RemoveBan,
    ReloadCerts,
    Audit,
    CacheStats,
    PurgeCache,
}

/// A matched endpoint.
pub struct Endpoint {
    pub op: Op,
    pub role: AdminRole,
    /// Reads a request body.
    pub body: bool,
    /// Path parameters, percent-decoded.
    pub params: Vec<String>,
}

/// The endpoint for `method` and `path`, or the 404 / 405 to answer.
pub fn route(method: &Method, path: &str) -> Result<Endpoint, Reply> {
    let segs: Vec<String> = path
        .strip_prefix('/')
        .unwrap_or(path)
        .split('/')
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    use AdminRole::*;
    use Op::*;
    // Each path: its methods, each with (operation, role, reads a body).
    let methods: &[(Method, Op, AdminRole, bool)] = match s.as_slice() {
        ["openapi.json"] => &[(Method::GET, OpenApi, Viewer, false)],
        ["whoami"] => &[(Method::GET, WhoAmI, Viewer, false)],
        ["config"] => &[
            (Method::GET, GetConfig, Viewer, false),
            (Method::PUT, PutConfig, Admin, true),
        ],
        ["config", "history"] => &[(Method::GET, History, Viewer, false)],
        // Admin only: a diff against guessed secrets would tell whether the guess is right.
        ["config", "diff"] => &[(Method::POST, DiffConfig, Admin, true)],
        ["config", "history", g] if g.parse::<u64>().is_ok() => {
            &[(Method::GET, HistoryVersion, Viewer, false)]
        }
        ["config", "history", g, "restore"] if g.parse::<u64>().is_ok() => {
            &[(Method::POST, Restore, Admin, false)]
        }
        ["bans"] => &[
            (Method::GET, ListBans, Viewer, false),
            (Method::POST, AddBan, Operator, true),
            (Method::DELETE, RemoveBan, Operator, false),
        ],
        ["audit"] => &[(Method::GET, Audit, Viewer, false)],
        ["cache"] => &[(Method::GET, CacheStats, Viewer, false)],
        ["cache", "purge"] => &[(Method::POST, PurgeCache, Operator, true)],
        ["certificates", "reload"] => &[(Method::POST, ReloadCerts, Operator, false)],
        ["consumers", n, "api-keys"] if !n.is_empty() => &[(Method::POST, AddKey, Admin, true)],
        ["upstreams", n, "health"] if !n.is_empty() => &[(Method::GET, Health, Viewer, false)],
        [c] if Collection::named(c).is_some() => &[(Method::GET, ListItems, Viewer, false)],
        [c, n] if Collection::named(c).is_some() && !n.is_empty() => &[
            (Method::GET, GetItem, Viewer, false),
            (Method::PUT, PutItem, Admin, true),
            (Method::DELETE, DeleteItem, Admin, false),
        ],
        _ => {
            return Err(Reply::error(
                404,
                "no such admin endpoint (see /openapi.json)",
            ))
        }
    };
    match methods.iter().find(|(m, ..)| m == method) {
        Some((_, op, role, body)) => Ok(Endpoint {
            op: *op,
            role: *role,
            body: *body,
            params: segs,
        }),
        None => {
            let mut allow: Vec<&str> = methods.iter().map(|(m, ..)| m.as_str()).collect();
            if allow.contains(&"GET") {
                allow.push("HEAD");
            }
            Err(Reply::error(405, "method not allowed").with_header("Allow", allow.join(", ")))
        }
    }
}

fn etag(generation: u64) -> String {
    format!("\"{generation}\"")
}

/// The generation `If-Match` names: `Ok(None)` for `*`; 428 when absent, 412 when
/// malformed (it can match nothing).
fn if_match(req: &Req) -> Result<Option<u64>, Reply> {
    let Some(v) = req.header("if-match") else {
        return Err(Reply::error(
            428,
            "config changes need If-Match with the ETag of the config they change",
        ));
    };
    let v = v.trim();
    if v == "*" {
        return Ok(None);
    }
    v.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<u64>()
        .map(Some)
        .map_err(|_| Reply::error(412, "If-Match does not name a config generation"))
}

/// The request body as a document: JSON or YAML by `Content-Type`.
fn body_value(req: &Req) -> Result<Value, Reply> {
    let ct = req
        .header("content-type")
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let text =
        std::str::from_utf8(&req.body).map_err(|_| Reply::error(400, "the body is not UTF-8"))?;
    match ct.as_str() {
        // Strict: a key given twice would leave which one counts to the parser.
        "application/json" => rampart_openapi::strict_json(text.as_bytes())
            .map_err(|e| Reply::error(400, format!("the body is not JSON: {e}"))),
        "application/yaml" | "application/x-yaml" | "text/yaml" => document::from_text(text)
            .map_err(|e| Reply::error(400, format!("the body is not a YAML mapping: {e}"))),
        _ => Err(Reply::error(
            415,
            "send application/json or application/yaml",
        )),
    }
}

fn dotted(pointer: &str) -> String {
    pointer
        .trim_start_matches('/')
        .split('/')
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect::<Vec<_>>()
        .join(".")
}

/// The answer to a refused change: every error with its JSON pointer.
fn refused(e: ApplyError) -> Reply {
    match e {
        ApplyError::Stale { current } => Reply::error(
            412,
            format!("the config changed since (now generation {current}); read it again"),
        )
        .with_header("ETag", etag(current)),
        ApplyError::Invalid(errs) => {
            let list: Vec<Value> = errs
                .0
                .iter()
                .map(|e| json!({"pointer": document::pointer(&e.path), "message": e.message}))
                .collect();
            Reply::json(
                422,
                json!({"error": "the config was refused; nothing changed", "errors": list}),
            )
        }
        ApplyError::Restart(paths) => {
            let list: Vec<Value> = paths
                .iter()
                .map(|p| json!({"pointer": document::pointer(p), "message": "can only change with a restart"}))
                .collect();
            Reply::json(
                409,
                json!({"error": "the change needs a restart; nothing changed", "errors": list}),
            )
        }
        ApplyError::NodeSections(keys) => {
            let list: Vec<Value> = keys
                .iter()
                .map(|k| json!({"pointer": format!("/{k}"), "message": "set in each node's config file when a config store is used"}))
                .collect();
            Reply::json(
                409,
                json!({"error": "node sections cannot change through the API; nothing changed", "errors": list}),
            )
        }
        ApplyError::Store(e) => Reply::error(
            503,
            format!("the config store did not take the change ({e}); nothing changed"),
        )
        .with_header("Retry-After", "1"),
        ApplyError::Persist(e) => Reply::error(
            500,
            format!("the config file could not be written ({e}); nothing changed"),
        ),
    }
}

/// A placeholder the document could not fill is an error at its place.
fn unfilled(missing: Vec<String>) -> Result<(), Vec<(String, String)>> {
    if missing.is_empty() {
        return Ok(());
    }
    Err(missing
        .into_iter()
        .map(|p| {
            (
                dotted(&p),
                format!(
                    "{} stands for a secret only where one is in force; give the value",
                    document::REDACTED
                ),
            )
        })
        .collect())
}

fn applied(v: crate::reload::Version, status: u16, persisted: bool, reason: String) -> Reply {
    let changes: Vec<String> = v.changes.iter().map(ToString::to_string).collect();
    let mut r = Reply::json(
        status,
        json!({"generation": v.generation, "changes": changes, "persisted": persisted}),
    )
    .with_header("ETag", etag(v.generation));
    r.change = Some(Box::new(("config_change", reason, changes)));
    r
}

pub async fn handle(
    admin: &Admin,
    snap: &Snapshot,
    caller: &Caller,
    req: &Req,
    ep: Endpoint,
) -> Reply {
    let reloader = &admin.reloader;
    let current = || reloader.current();
    let doc_of = |text: &str| document::from_text(text).unwrap_or_else(|_| json!({}));
    let reason = format!("{} {}", req.method, req.path);
    match ep.op {
        Op::OpenApi => Reply {
            status: 200,
            content_type: "application/json",
            body: OPENAPI.as_bytes().to_vec(),
            headers: Vec::new(),
            change: None,
        },
        Op::WhoAmI => Reply::json(
            200,
            json!({"name": caller.name, "role": format!("{:?}", caller.role).to_lowercase()}),
        ),
        Op::GetConfig => {
            let v = current();
            let doc = document::redact(&doc_of(&v.text));
            let yaml = match req.param("format").as_deref() {
                None | Some("json") => false,
                Some("yaml") => true,
                Some(_) => return Reply::error(400, "format is json or yaml"),
            };
            let r = if yaml {
                Reply {
                    status: 200,
                    content_type: "application/yaml",
                    body: document::to_text(&doc).into_bytes(),
                    headers: Vec::new(),
                    change: None,
                }
            } else {
                Reply::json(200, doc)
            };
            r.with_header("ETag", etag(v.generation))
        }
        Op::PutConfig => {
            let expected = match if_match(req) {
                Ok(g) => g,
                Err(r) => return r,
            };
            let mut new = match body_value(req) {
                Ok(v) if v.is_object() => v,
                Ok(_) => return Reply::error(400, "a config document is an object"),
                Err(r) => return r,
            };
            let edit = move |cur: &Value| {
                unfilled(document::restore(&mut new, cur))?;
                Ok(document::to_text(&new))
            };
            let result = apply_off_thread(reloader, &caller.name, expected, Box::new(edit)).await;
            match result {
                Ok(v) => applied(v, 200, reloader.persists(), reason),
                Err(e) => refusal(e, reason),
            }
        }
        Op::DiffConfig => {
            let mut new = match body_value(req) {
                Ok(v) if v.is_object() => v,
                Ok(_) => return Reply::error(400, "a config document is an object"),
                Err(r) => return r,
            };
            let v = current();
            let cur = doc_of(&v.text);
            let missing = document::restore(&mut new, &cur);
            let changes: Vec<String> = document::diff(&cur, &new)
                .iter()
                .map(ToString::to_string)
                .collect();
            let missing: Vec<Value> = missing
                .iter()
                .map(|p| json!({"pointer": p, "message": "a redacted value with no secret in force"}))
                .collect();
            Reply::json(
                200,
                json!({"generation": v.generation, "changes": changes, "errors": missing}),
            )
            .with_header("ETag", etag(v.generation))
        }
        Op::History => {
            let versions: Vec<Value> = reloader
                .history()
                .iter()
                .map(|v| {
                    json!({
                        "generation": v.generation,
                        "at": v.at,
                        "by": v.by,
                        "store_version": v.store_version,
                        "changes": v.changes.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    })
                })
                .collect();
            Reply::json(200, json!({ "versions": versions }))
        }
        Op::HistoryVersion | Op::Restore => {
            let g: u64 = ep.params[2].parse().unwrap_or(0);
            let Some(v) = reloader.history().into_iter().find(|v| v.generation == g) else {
                return Reply::error(404, format!("no version {g} is kept"));
            };
            if ep.op == Op::HistoryVersion {
                return Reply::json(200, document::redact(&doc_of(&v.text)));
            }
            let expected = match if_match(req) {
                Ok(g) => g,
                Err(r) => return r,
            };
            let text = v.text.to_string();
            let edit = move |_: &Value| Ok(text);
            match apply_off_thread(reloader, &caller.name, expected, Box::new(edit)).await {
                Ok(nv) => applied(
                    nv,
                    200,
                    reloader.persists(),
                    format!("{reason} (version {g})"),
                ),
                Err(e) => refusal(e, reason),
            }
        }
        Op::ListItems => {
            let c = Collection::named(&ep.params[0]).expect("routed on a collection");
            let v = current();
            let doc = document::redact(&doc_of(&v.text));
            let items: Vec<Value> = c
                .items(&doc)
                .into_iter()
                .map(|(name, value)| json!({"name": name, "value": value}))
                .collect();
            Reply::json(200, json!({"generation": v.generation, "items": items}))
                .with_header("ETag", etag(v.generation))
        }
        Op::GetItem => {
            let c = Collection::named(&ep.params[0]).expect("routed on a collection");
            let v = current();
            match c.get(&doc_of(&v.text), &ep.params[1]) {
                Some(item) => {
                    Reply::json(200, document::redact(item)).with_header("ETag", etag(v.generation))
                }
                None => Reply::error(404, format!("no {} named {:?}", c.name, ep.params[1])),
            }
        }
        Op::PutItem => {
            let c = Collection::named(&ep.params[0]).expect("routed on a collection");
            let name = ep.params[1].clone();
            let expected = match if_match(req) {
                Ok(g) => g,
                Err(r) => return r,
            };
            let mut value = match body_value(req) {
                Ok(v) if v.is_object() => v,
                Ok(_) => return Reply::error(400, format!("a {} entry is an object", c.name)),
                Err(r) => return r,
            };
            let created = Arc::new(AtomicBool::new(false));
            let made = created.clone();
            let edit = move |cur: &Value| {
                let old = c.get(cur, &name).cloned().unwrap_or(Value::Null);
                unfilled(document::restore(&mut value, &old)).map_err(|errs| {
                    errs.into_iter()
                        .map(|(p, m)| (format!("{}.{name}.{p}", c.path.join(".")), m))
                        .collect::<Vec<_>>()
                })?;
                let mut new = cur.clone();
                made.store(
                    c.put(&mut new, &name, value.clone())
                        .map_err(|m| vec![(c.path.join("."), m)])?,
                    Ordering::Relaxed,
                );
                Ok(document::to_text(&new))
            };
            let result = apply_off_thread(reloader, &caller.name, expected, Box::new(edit)).await;
            match result {
                Ok(v) => {
                    let status = if created.load(Ordering::Relaxed) {
                        201
                    } else {
                        200
                    };
                    applied(v, status, reloader.persists(), reason)
                }
                Err(e) => refusal(e, reason),
            }
        }
        Op::DeleteItem => {
            let c = Collection::named(&ep.params[0]).expect("routed on a collection");
            let name = ep.params[1].clone();
            let expected = match if_match(req) {
                Ok(g) => g,
                Err(r) => return r,
            };
            if c.get(&doc_of(&current().text), &name).is_none() {
                return Reply::error(404, format!("no {} named {name:?}", c.name));
            }
            let edit = move |cur: &Value| {
                let mut new = cur.clone();
                c.delete(&mut new, &name);
                Ok(document::to_text(&new))
            };
            let result = apply_off_thread(reloader, &caller.name, expected, Box::new(edit)).await;
            match result {
                Ok(v) => applied(v, 200, reloader.persists(), reason),
                Err(e) => refusal(e, reason),
            }
        }
        Op::AddKey => add_key(reloader, caller, req, &ep.params[1], reason).await,
        Op::Health => {
            let name = &ep.params[1];
            let Some(pool) = snap.pools.get(name) else {
                return Reply::error(404, format!("no upstream named {name:?}"));
            };
            let targets: Vec<Value> = pool
                .health()
                .into_iter()
                .map(|(target, healthy, ejected)| {
                    json!({"target": target, "healthy": healthy && !ejected, "checks_pass": healthy, "ejected": ejected})
                })
                .collect();
            Reply::json(200, json!({"upstream": name, "targets": targets}))
        }
        Op::ListBans => {
            let bans: Vec<Value> = snap.bans.list().iter().map(ban_json).collect();
            Reply::json(200, json!({ "bans": bans }))
        }
        Op::AddBan => add_ban(snap, req, reason).await,
        Op::RemoveBan => {
            let Some(target) = req.param("target") else {
                return Reply::error(
                    400,
                    "give the ban to lift as ?target=ip:ADDR|net:CIDR|consumer:ID",
                );
            };
            let key = match rampart_bans::BanKey::parse(&target) {
                Ok(k) => k.to_string(),
                Err(e) => return Reply::error(422, e.to_string()),
            };
            if !snap.bans.list().iter().any(|b| b.key == key) {
                return Reply::error(404, format!("{key} is not banned"));
            }
            match snap.bans.remove(&key).await {
                Ok(shared) => {
                    let mut r = Reply::json(200, json!({"removed": key, "shared": shared}));
                    r.change = Some(Box::new(("unban", reason, vec![format!("- bans/{key}")])));
                    r
                }
                Err(e) => Reply::error(422, e.to_string()),
            }
        }
        Op::Audit => {
            let v = current();
            let mut findings = rampart_audit::audit(&snap.config);
            rampart_audit::locate(&mut findings, &v.text);
            let file = format!("generation {}", v.generation);
            Reply {
                status: 200,
                content_type: "application/json",
                body: rampart_audit::render_json(&findings, &file).into_bytes(),
                headers: Vec::new(),
                change: None,
            }
        }
        Op::CacheStats => {
            let Some(store) = crate::cache::store() else {
                return Reply::json(200, json!({"enabled": false}));
            };
            let s = &store.stats;
            Reply::json(
                200,
                json!({
                    "enabled": true,
                    "bytes": store.bytes(),
                    "entries": store.len(),
                    "stored": s.stored.load(Ordering::Relaxed),
                    "evicted": s.evicted.load(Ordering::Relaxed),
                    "purged": s.purged.load(Ordering::Relaxed),
                }),
            )
        }
        Op::PurgeCache => purge_cache(req, reason),
        Op::ReloadCerts => {
            let errors = reloader.reload_certificates();
            let ok = errors.is_empty();
            let mut r = Reply::json(
                if ok { 200 } else { 422 },
                json!({"reloaded": ok, "errors": errors}),
            );
            r.change = Some(Box::new((
                if ok {
                    "certificates_reloaded"
                } else {
                    "certificates_refused"
                },
                reason,
                Vec::new(),
            )));
            r
        }
    }
}

/// A change to the config, as the reloader takes it.
type Edit = Box<dyn FnOnce(&Value) -> Result<String, Vec<(String, String)>> + Send>;

/// Apply a change off the admin listener's thread: building compiles rules and a store
/// write waits for the database, and `/healthz` and `/metrics` keep answering meanwhile.
async fn apply_off_thread(
    reloader: &Arc<crate::reload::Reloader>,
    by: &str,
    expected: Option<u64>,
    edit: Edit,
) -> Result<crate::reload::Version, ApplyError> {
    let (r, by) = (reloader.clone(), by.to_string());
    tokio::task::spawn_blocking(move || r.apply(&by, expected, edit))
        .await
        .unwrap_or_else(|e| {
            Err(ApplyError::Store(format!(
                "the change was interrupted: {e}"
            )))
        })
}

/// A refused change is an event too (who tried what), and answers with every error.
fn refusal(e: ApplyError, reason: String) -> Reply {
    let mut r = refused(e);
    r.change = Some(Box::new(("config_refused", reason, Vec::new())));
    r
}

fn ban_json(b: &rampart_bans::Ban) -> Value {
    let until = std::time::UNIX_EPOCH + std::time::Duration::from_millis(b.until_ms);
    json!({
        "target": b.key,
        "until": humantime::format_rfc3339_seconds(until).to_string(),
        "reason": b.reason,
        "playbook": b.playbook,
        "limit": b.limit,
    })
}

/// `POST /cache/purge`: one selector — `{path, query?}`, `{prefix}`, `{tag}`, `{route}` or
/// `{all: true}`.
fn purge_cache(req: &Req, reason: String) -> Reply {
    use rampart_cache::Selector;
    let body = match body_value(req) {
        Ok(Value::Object(m)) => m,
        Ok(_) => {
            return Reply::error(
                400,
                "a purge is an object: {path}, {prefix}, {tag}, {route} or {all: true}",
            )
        }
        Err(r) => return r,
    };
    let known = ["path", "query", "prefix", "tag", "route", "all"];
    if let Some(k) = body.keys().find(|k| !known.contains(&k.as_str())) {
        return Reply::error(
            422,
            format!("unknown field {k:?} (known: {})", known.join(", ")),
        );
    }
    let text = |k: &str| -> Result<Option<String>, Reply> {
        match body.get(k) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(s.clone())),
            Some(_) => Err(Reply::error(422, format!("{k} is a non-empty string"))),
        }
    };
    let fields = (|| {
        Ok::<_, Reply>((
            text("path")?,
            text("query")?,
            text("prefix")?,
            text("tag")?,
            text("route")?,
        ))
    })();
    let (path, query, prefix, tag, route) = match fields {
        Ok(f) => f,
        Err(r) => return r,
    };
    let all = match body.get("all") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Reply::error(422, "all is true or false"),
    };
    let given = [
        path.is_some(),
        prefix.is_some(),
        tag.is_some(),
        route.is_some(),
        all,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 || (query.is_some() && path.is_none()) {
        return Reply::error(
            422,
            "give exactly one of path (with an optional query), prefix, tag, route or all: true",
        );
    }
    for p in [&path, &prefix].into_iter().flatten() {
        if !p.starts_with('/') {
            return Reply::error(422, "path and prefix start with /");
        }
    }
    let sel = if let Some(path) = path {
        Selector::Resource { path, query }
    } else if let Some(p) = prefix {
        Selector::Prefix(p)
    } else if let Some(t) = tag {
        Selector::Tag(t)
    } else if let Some(r) = route {
        Selector::Route(r)
    } else {
        Selector::All
    };
    let purged = crate::cache::store().map_or(0, |s| s.purge(&sel));
    let mut r = Reply::json(200, json!({"purged": purged}));
    r.change = Some(Box::new(("cache_purged", reason, vec![format!("{sel:?}")])));
    r
}

async fn add_ban(snap: &Snapshot, req: &Req, reason: String) -> Reply {
    let body = match body_value(req) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Reply::error(400, "a ban is an object: {target, duration, reason}"),
        Err(r) => return r,
    };
    let field = |k: &str| body.get(k).and_then(Value::as_str).map(str::to_string);
    let known = ["target", "duration", "reason", "limit"];
    if let Some(k) = body.keys().find(|k| !known.contains(&k.as_str())) {
        return Reply::error(
            422,
            format!("unknown field {k:?} (known: {})", known.join(", ")),
        );
    }
    let Some(target) = field("target") else {
        return Reply::error(422, "target is required: ip:ADDR, net:CIDR or consumer:ID");
    };
    let key = match rampart_bans::BanKey::parse(&target) {
        Ok(k) => k.to_string(),
        Err(e) => return Reply::error(422, e.to_string()),
    };
    let duration = match field("duration").map(|d| rampart_config::units::parse_duration(&d)) {
        Some(Ok(d)) if !d.is_zero() && d <= std::time::Duration::from_secs(10 * 365 * 86400) => d,
        Some(_) => {
            return Reply::error(
                422,
                "duration is a positive time like 30m, 12h or 7d (at most ten years)",
            )
        }
        None => return Reply::error(422, "duration is required (e.g. 1h)"),
    };
    if let Some(l) = field("limit") {
        if rampart_limits::parse_rate(&l).is_err() {
            return Reply::error(422, format!("limit {l:?} is not a rate like 10/minute"));
        }
    }
    let ban = rampart_bans::Ban {
        key: key.clone(),
        until_ms: rampart_bans::now_ms() + duration.as_millis() as u64,
        reason: field("reason").unwrap_or_else(|| "set through the admin API".into()),
        playbook: None,
        limit: field("limit"),
    };
    match snap.bans.add(ban.clone()).await {
        Ok(shared) => {
            let mut r = Reply::json(201, json!({"ban": ban_json(&ban), "shared": shared}));
            r.change = Some(Box::new(("ban", reason, vec![format!("+ bans/{key}")])));
            r
        }
        Err(e) => Reply::error(409, e.to_string()),
    }
}

/// A new API key for a consumer, made here: the key is in this answer only; the config
/// keeps its SHA-256.
async fn add_key(
    reloader: &Arc<crate::reload::Reloader>,
    caller: &Caller,
    req: &Req,
    id: &str,
    reason: String,
) -> Reply {
    let expected = match if_match(req) {
        Ok(g) => g,
        Err(r) => return r,
    };
    let opts = if req.body.is_empty() {
        serde_json::Map::new()
    } else {
        match body_value(req) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Reply::error(400, "the body is an object: {expires}"),
            Err(r) => return r,
        }
    };
    if let Some(k) = opts.keys().find(|k| k.as_str() != "expires") {
        return Reply::error(422, format!("unknown field {k:?} (known: expires)"));
    }
    let expires = match opts.get("expires") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if humantime::parse_rfc3339_weak(e).is_ok() => Some(e.clone()),
        Some(_) => {
            return Reply::error(422, "expires is an RFC 3339 time like 2027-01-31T00:00:00Z")
        }
    };
    let consumers = Collection::named("consumers").expect("a known collection");
    let current = document::from_text(&reloader.current().text).unwrap_or_default();
    if consumers.get(&current, id).is_none() {
        return Reply::error(404, format!("no consumer named {id:?}"));
    }
    let key = rampart_auth::secrets::generate_api_key();
    let hash = rampart_auth::secrets::sha256_hex(key.as_bytes());
    let (id_owned, entry_hash) = (id.to_string(), hash.clone());
    let edit = move |cur: &Value| {
        let mut new = cur.clone();
        let mut consumer = consumers.get(&new, &id_owned).cloned().ok_or_else(|| {
            vec![(
                "consumers".to_string(),
                format!("no consumer named {id_owned:?}"),
            )]
        })?;
        let mut entry = json!({ "sha256": entry_hash });
        if let Some(e) = expires {
            entry["expires"] = Value::String(e);
        }
        match consumer.get_mut("api_keys").and_then(Value::as_array_mut) {
            Some(keys) => keys.push(entry),
            None => consumer["api_keys"] = json!([entry]),
        }
        consumers
            .put(&mut new, &id_owned, consumer)
            .map_err(|m| vec![("consumers".to_string(), m)])?;
        Ok(document::to_text(&new))
    };
    match apply_off_thread(reloader, &caller.name, expected, Box::new(edit)).await {
        Ok(v) => {
            let mut r = Reply::json(
                201,
                json!({"consumer": id, "key": key, "sha256": hash, "generation": v.generation}),
            )
            .with_header("ETag", etag(v.generation));
            r.change = Some(Box::new((
                "api_key_added",
                reason,
                vec![format!("~ consumers/{id}")],
            )));
            r
        }
        Err(e) => refusal(e, reason),
    }
}
