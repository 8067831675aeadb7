//! GraphQL request limits, free of proxy types. A request (GET parameters, a JSON body, a
//! batch of them, or an `application/graphql` body) is parsed (`apollo-parser`, with
//! recursion and token limits) and measured over everything it holds — every operation,
//! every batch entry, fragments expanded once each — then refused when it is too deep, has
//! too many aliases or fields, costs too much, asks for introspection, or is not on the
//! persisted-query allow-list.

use apollo_parser::cst::{self, CstNode};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet};

/// The limits of one route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Deepest selection nesting (fragments count at the depth they are spread).
    pub max_depth: u32,
    /// Aliases in the whole request.
    pub max_aliases: u64,
    /// Fields in the whole request, fragments expanded.
    pub max_fields: u64,
    /// Cost: each field 1, plus its selections times its page size (`first`, `last`,
    /// `limit`: the number asked, or `default_page` when it is a variable).
    pub max_cost: u64,
    /// Page size assumed when a list's size is given by a variable.
    pub default_page: u64,
    /// Entries in a batched request.
    pub max_batch: usize,
    /// `__schema` / `__type` allowed.
    pub introspection: bool,
    /// SHA-256 (hex) of the only queries allowed, if set.
    pub allow_list: Option<HashSet<String>>,
}

/// One way a request breaks the limits.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Violation {
    /// Where: `/query`, `/1/query` for a batch entry, `/extensions`...
    pub pointer: String,
    /// Which limit (`maxDepth`, `maxAliases`, `introspection`, `syntax`...).
    pub keyword: String,
    /// What is allowed, never the query text.
    pub message: String,
}

fn violation(pointer: &str, keyword: &str, message: impl Into<String>) -> Violation {
    Violation {
        pointer: pointer.into(),
        keyword: keyword.into(),
        message: message.into(),
    }
}

/// One operation of the request, for the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `query`, `mutation` or `subscription`.
    pub kind: &'static str,
    /// Its name, if it has one.
    pub name: Option<String>,
}

/// What the request holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Analysis {
    /// Every operation, in order (the one a client named first when it named one).
    pub operations: Vec<Operation>,
    /// Deepest nesting.
    pub depth: u32,
    /// Aliases, fields and cost, summed over the request.
    pub aliases: u64,
    /// See [`Analysis::aliases`].
    pub fields: u64,
    /// See [`Analysis::aliases`].
    pub cost: u64,
}

/// How the request came.
pub enum Request<'a> {
    /// `GET ?query=...&operationName=...&extensions=...` (pairs already decoded).
    Get(&'a [(String, String)]),
    /// A JSON body: one request object, or a batch (array) of them.
    Json(&'a [u8]),
    /// An `application/graphql` body: the query text.
    Text(&'a [u8]),
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Body {
    query: Option<String>,
    operation_name: Option<String>,
    #[serde(default)]
    extensions: Option<serde_json::Value>,
    // Variables are the backend's to type-check against its schema.
    #[serde(default)]
    #[allow(dead_code)]
    variables: Option<serde_json::Value>,
}

/// Checks a request; its analysis when it keeps to the limits.
pub fn check(req: Request, limits: &Limits) -> Result<Analysis, Vec<Violation>> {
    let entries: Vec<Body> = match req {
        Request::Text(b) => vec![Body {
            query: Some(
                String::from_utf8(b.to_vec())
                    .map_err(|_| vec![violation("/query", "syntax", "not UTF-8")])?,
            ),
            operation_name: None,
            extensions: None,
            variables: None,
        }],
        Request::Get(pairs) => {
            let one = |name: &str| -> Result<Option<String>, Vec<Violation>> {
                let mut it = pairs.iter().filter(|(k, _)| k == name);
                let first = it.next().map(|(_, v)| v.clone());
                if it.next().is_some() {
                    return Err(vec![violation(
                        &format!("/{name}"),
                        "duplicate",
                        "given more than once",
                    )]);
                }
                Ok(first)
            };
            let extensions = match one("extensions")? {
                Some(e) => Some(
                    rampart_openapi::strict_json(e.as_bytes())
                        .map_err(|_| vec![violation("/extensions", "json", "not valid JSON")])?,
                ),
                None => None,
            };
            vec![Body {
                query: one("query")?,
                operation_name: one("operationName")?,
                extensions,
                variables: None,
            }]
        }
        Request::Json(b) => {
            // Strict: a key given twice anywhere (`query`, a persisted query's hash) would
            // leave the backend to pick another than the one checked here.
            let v = rampart_openapi::strict_json(b)
                .map_err(|m| vec![violation("", "json", format!("not valid JSON: {m}"))])?;
            let list = match v {
                serde_json::Value::Array(items) => {
                    if items.is_empty() || items.len() > limits.max_batch {
                        return Err(vec![violation(
                            "",
                            "maxBatch",
                            format!("a batch holds 1 to {} requests", limits.max_batch),
                        )]);
                    }
                    items
                }
                one => vec![one],
            };
            let mut out = Vec::new();
            for (i, item) in list.into_iter().enumerate() {
                // serde refuses a field given twice (`query` twice would leave the backend
                // to pick one).
                out.push(serde_json::from_value(item).map_err(|_| {
                    vec![violation(
                        &format!("/{i}"),
                        "json",
                        "not a GraphQL request object (query, operationName, variables, extensions)",
                    )]
                })?);
            }
            out
        }
    };
    let batched = entries.len() > 1;
    let mut total = Analysis::default();
    let mut errs = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        let at = if batched {
            format!("/{i}")
        } else {
            String::new()
        };
        if let Err(mut v) = persisted(e, limits, &at) {
            errs.append(&mut v);
            continue;
        }
        let Some(query) = &e.query else {
            continue; // an allow-listed hash: the backend holds the text
        };
        match analyze(query, limits, &at) {
            Ok(mut a) => {
                if let Some(name) = &e.operation_name {
                    // The operation the client asked for is the one to log first.
                    if let Some(i) = a
                        .operations
                        .iter()
                        .position(|o| o.name.as_deref() == Some(name.as_str()))
                    {
                        let op = a.operations.remove(i);
                        a.operations.insert(0, op);
                    }
                }
                total.operations.append(&mut a.operations);
                total.depth = total.depth.max(a.depth);
                total.aliases = total.aliases.saturating_add(a.aliases);
                total.fields = total.fields.saturating_add(a.fields);
                total.cost = total.cost.saturating_add(a.cost);
            }
            Err(mut v) => errs.append(&mut v),
        }
    }
    if !errs.is_empty() {
        return Err(errs);
    }
    let mut over = Vec::new();
    let checks = [
        (total.aliases, limits.max_aliases, "maxAliases", "aliases"),
        (total.fields, limits.max_fields, "maxFields", "fields"),
        (total.cost, limits.max_cost, "maxCost", "cost"),
    ];
    for (n, max, keyword, what) in checks {
        if n > max {
            over.push(violation(
                "",
                keyword,
                format!("{what} {} over the limit of {max}", shown(n)),
            ));
        }
    }
    if over.is_empty() {
        Ok(total)
    } else {
        Err(over)
    }
}

/// A count as shown: saturated sums say "more than".
fn shown(n: u64) -> String {
    if n == u64::MAX {
        "beyond counting".into()
    } else {
        n.to_string()
    }
}

/// The allow-list: the query's hash (or the one an Automatic Persisted Query names, which
/// must then be the query's) must be on it. Without a list, a hash alone is refused: the
/// text it stands for was never checked here.
fn persisted(e: &Body, limits: &Limits, at: &str) -> Result<(), Vec<Violation>> {
    let named = e
        .extensions
        .as_ref()
        .and_then(|x| x.get("persistedQuery"))
        .and_then(|p| p.get("sha256Hash"))
        .and_then(|h| h.as_str())
        .map(str::to_ascii_lowercase);
    let actual = e
        .query
        .as_ref()
        .map(|q| hex::encode(Sha256::digest(q.as_bytes())));
    let refuse = |m: &str| Err(vec![violation(&format!("{at}/query"), "persisted", m)]);
    if let (Some(n), Some(a)) = (&named, &actual) {
        if n != a {
            return refuse("the persisted query hash is not the query's");
        }
    }
    let hash = actual.or(named);
    match (&limits.allow_list, hash) {
        (_, None) => refuse("a query is required"),
        (None, Some(_)) if e.query.is_none() => {
            refuse("a query text is required (no allow-list of persisted queries)")
        }
        (Some(list), Some(h)) if !list.contains(&h) => refuse("the query is not on the allow-list"),
        _ => Ok(()),
    }
}

/// Parsing stops past this many tokens (a 64 KiB body holds far fewer useful ones).
const TOKEN_LIMIT: usize = 50_000;

#[derive(Debug, Clone, Copy, Default)]
struct Stats {
    depth: u32,
    aliases: u64,
    fields: u64,
    cost: u64,
}

impl Stats {
    fn add(&mut self, o: Stats) {
        self.depth = self.depth.max(o.depth);
        self.aliases = self.aliases.saturating_add(o.aliases);
        self.fields = self.fields.saturating_add(o.fields);
        self.cost = self.cost.saturating_add(o.cost);
    }
}

struct Walk<'a> {
    fragments: HashMap<String, cst::FragmentDefinition>,
    memo: HashMap<String, Stats>,
    visiting: Vec<String>,
    limits: &'a Limits,
    errs: Vec<Violation>,
    at: &'a str,
}

fn analyze(query: &str, limits: &Limits, at: &str) -> Result<Analysis, Vec<Violation>> {
    let pointer = format!("{at}/query");
    // The parser's own recursion bound keeps a hostile nesting off the stack; anything
    // nested deeper than the limit is refused anyway.
    let tree = apollo_parser::Parser::new(query)
        .recursion_limit(limits.max_depth as usize * 2 + 8)
        .token_limit(TOKEN_LIMIT)
        .parse();
    if let Some(e) = tree.errors().find(|e| e.is_limit()) {
        let (keyword, message) = if e.message().contains("token") {
            ("maxTokens", format!("more than {TOKEN_LIMIT} tokens"))
        } else {
            (
                "maxDepth",
                format!("nested deeper than the limit of {}", limits.max_depth),
            )
        };
        return Err(vec![violation(&pointer, keyword, message)]);
    }
    if tree.errors().next().is_some() {
        return Err(vec![violation(
            &pointer,
            "syntax",
            "not a valid GraphQL document",
        )]);
    }
    let doc = tree.document();
    let mut w = Walk {
        fragments: HashMap::new(),
        memo: HashMap::new(),
        visiting: Vec::new(),
        limits,
        errs: Vec::new(),
        at: &pointer,
    };
    let mut ops = Vec::new();
    for d in doc.definitions() {
        match d {
            cst::Definition::FragmentDefinition(f) => {
                let name = f
                    .fragment_name()
                    .and_then(|n| n.name())
                    .map(|n| n.text().to_string())
                    .unwrap_or_default();
                if w.fragments.insert(name, f).is_some() {
                    w.errs.push(violation(
                        &pointer,
                        "fragments",
                        "a fragment is defined twice",
                    ));
                }
            }
            cst::Definition::OperationDefinition(o) => ops.push(o),
            _ => w.errs.push(violation(
                &pointer,
                "executable",
                "only operations and fragments may be sent",
            )),
        }
    }
    if ops.is_empty() {
        w.errs
            .push(violation(&pointer, "executable", "no operation"));
    }
    let mut analysis = Analysis::default();
    let mut total = Stats::default();
    for o in &ops {
        let kind = match o.operation_type() {
            Some(t) if t.mutation_token().is_some() => "mutation",
            Some(t) if t.subscription_token().is_some() => "subscription",
            _ => "query",
        };
        analysis.operations.push(Operation {
            kind,
            name: o.name().map(|n| n.text().to_string()),
        });
        if let Some(set) = o.selection_set() {
            let s = w.selections(&set);
            total.add(s);
        }
    }
    // Fragments no operation spreads are measured too: the request holds them.
    let names: Vec<String> = w.fragments.keys().cloned().collect();
    for n in names {
        if !w.memo.contains_key(&n) {
            let s = w.fragment(&n);
            total.depth = total.depth.max(s.depth);
        }
    }
    if total.depth > limits.max_depth {
        w.errs.push(violation(
            &pointer,
            "maxDepth",
            format!(
                "depth {} over the limit of {}",
                total.depth, limits.max_depth
            ),
        ));
    }
    if !w.errs.is_empty() {
        w.errs.dedup();
        return Err(w.errs);
    }
    analysis.depth = total.depth;
    analysis.aliases = total.aliases;
    analysis.fields = total.fields;
    analysis.cost = total.cost;
    Ok(analysis)
}

/// Page-size arguments: a list field's selections cost this many times over.
const PAGE_ARGS: [&str; 4] = ["first", "last", "limit", "pageSize"];

impl Walk<'_> {
    fn selections(&mut self, set: &cst::SelectionSet) -> Stats {
        let mut s = Stats::default();
        for sel in set.selections() {
            match sel {
                cst::Selection::Field(f) => {
                    let name = f.name().map(|n| n.text().to_string()).unwrap_or_default();
                    if !self.limits.introspection && (name == "__schema" || name == "__type") {
                        self.errs.push(violation(
                            self.at,
                            "introspection",
                            "introspection is disabled",
                        ));
                    }
                    let child = f
                        .selection_set()
                        .map(|c| self.selections(&c))
                        .unwrap_or_default();
                    let page = self.page_size(&f);
                    s.add(Stats {
                        depth: child.depth.saturating_add(1),
                        aliases: child.aliases.saturating_add(u64::from(f.alias().is_some())),
                        fields: child.fields.saturating_add(1),
                        cost: child.cost.saturating_mul(page).saturating_add(1),
                    });
                }
                cst::Selection::FragmentSpread(sp) => {
                    let name = sp
                        .fragment_name()
                        .and_then(|n| n.name())
                        .map(|n| n.text().to_string())
                        .unwrap_or_default();
                    let f = self.fragment(&name);
                    s.add(f);
                }
                cst::Selection::InlineFragment(i) => {
                    if let Some(c) = i.selection_set() {
                        let c = self.selections(&c);
                        s.add(c);
                    }
                }
            }
        }
        s
    }

    /// A fragment's measure, computed once (a fragment spread many times is counted each
    /// time, cheaply: the sums saturate instead of growing without bound).
    fn fragment(&mut self, name: &str) -> Stats {
        if let Some(s) = self.memo.get(name) {
            return *s;
        }
        if self.visiting.iter().any(|v| v == name) {
            self.errs.push(violation(
                self.at,
                "fragments",
                "fragments spread themselves in a cycle",
            ));
            return Stats::default();
        }
        let Some(f) = self.fragments.get(name).cloned() else {
            self.errs.push(violation(
                self.at,
                "fragments",
                "a spread fragment is not defined",
            ));
            return Stats::default();
        };
        self.visiting.push(name.to_string());
        let s = f
            .selection_set()
            .map(|set| self.selections(&set))
            .unwrap_or_default();
        self.visiting.pop();
        self.memo.insert(name.to_string(), s);
        s
    }

    fn page_size(&self, f: &cst::Field) -> u64 {
        let Some(args) = f.arguments() else { return 1 };
        let mut page = 1;
        for a in args.arguments() {
            let is_page = a
                .name()
                .is_some_and(|n| PAGE_ARGS.contains(&n.text().as_ref()));
            if !is_page {
                continue;
            }
            page = match a.value() {
                Some(cst::Value::IntValue(i)) => i
                    .syntax()
                    .text()
                    .to_string()
                    .parse::<u64>()
                    .unwrap_or(u64::MAX),
                _ => self.limits.default_page,
            };
        }
        page.max(1)
    }
}

#[cfg(test)]
mod tests;

/// A query string's parameters, percent-decoded (`+` is a space).
pub fn query_pairs(q: &str) -> Result<Vec<(String, String)>, Violation> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8()
            .map(|c| c.into_owned())
            .map_err(|_| violation("", "query", "not UTF-8 once decoded"))
    };
    let mut out = Vec::new();
    for pair in q.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((decode(k)?, decode(v)?));
    }
    Ok(out)
}
