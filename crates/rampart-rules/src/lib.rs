//! A route's rules engine (in the spirit of Azion's Rules Engine): ordered rules, each
//! typed conditions on the request (`if`, `unless`) and actions (`then`).
//!
//! Everything is compiled and checked when the config loads ([`RuleSet::compile`]): regular
//! expressions (the `regex` crate: linear time, size-limited), networks, countries, bot
//! verdicts, consumers, groups, upstream names, header names, redirect targets. A request
//! then only compares.
//!
//! Conditions see the request as it reached the rules (after authorization): earlier
//! rules' actions do not change what later rules' conditions read. Actions accumulate in
//! rule order; `redirect` and `respond` answer the request and end the rules.
//!
//! What could be read two ways is refused, not guessed: a header or query parameter that a
//! condition compares is sent twice ([`Ambiguous`]). Nothing from the request is copied into
//! a redirect or a header the engine writes, so a rule cannot be made into an open redirect
//! or a header injection.

use rampart_config::{BotVerdict, FieldMatch, HeaderOps, Rule, RuleActions, RuleConditions};
use rampart_net::IpSet;
use regex::Regex;
use std::net::IpAddr;

#[cfg(test)]
mod tests;

/// A compiled rule list.
#[derive(Debug, Default)]
pub struct RuleSet {
    rules: Vec<Compiled>,
    needs_country: bool,
    rewrites: bool,
}

#[derive(Debug)]
struct Compiled {
    name: String,
    when: Conds,
    unless: Option<Conds>,
    then: Then,
}

#[derive(Debug, Default)]
struct Conds {
    path: Option<Text>,
    methods: Vec<String>,
    headers: Vec<FieldRt>,
    query: Vec<FieldRt>,
    client_ip: Option<IpSet>,
    networks: Vec<String>,
    countries: Vec<[u8; 2]>,
    consumers: Vec<String>,
    groups: Vec<String>,
    bots: Vec<BotVerdict>,
}

#[derive(Debug)]
enum Text {
    Exact(String),
    Prefix(String),
    Regex(Regex),
}

#[derive(Debug)]
struct FieldRt {
    /// Lower case for headers, as written for query parameters.
    name: String,
    test: Test,
}

#[derive(Debug)]
enum Test {
    Present(bool),
    Equals(String),
    OneOf(Vec<String>),
    Regex(Regex),
}

/// Header changes: `remove`, then `set`, then `add`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ops {
    /// Lower-case names.
    pub remove: Vec<String>,
    /// (name, value): replaces every value.
    pub set: Vec<(String, String)>,
    /// (name, value): beside any value.
    pub add: Vec<(String, String)>,
}

/// A rule's answer to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// `Location` and status.
    Redirect {
        /// Where to.
        location: String,
        /// 301, 302, 303, 307 or 308.
        status: u16,
    },
    /// A fixed response.
    Respond {
        /// 200–599.
        status: u16,
        /// The body.
        body: String,
        /// Its media type.
        content_type: String,
    },
}

#[derive(Debug)]
struct Then {
    request_headers: Option<Ops>,
    response_headers: Option<Ops>,
    rewrite: Option<(Option<String>, String)>,
    upstream: Option<String>,
    answer: Option<Answer>,
}

/// What the request looks like to the conditions.
pub struct Request<'a> {
    /// The method.
    pub method: &'a str,
    /// The canonical path.
    pub path: &'a str,
    /// The raw query string (without `?`).
    pub query: Option<&'a str>,
    /// Every value of a header (name in lower case).
    pub header: &'a dyn Fn(&str) -> Vec<&'a [u8]>,
    /// The client's address.
    pub client_ip: Option<IpAddr>,
    /// Whether the client's address is in a `network.lists` list.
    pub in_list: &'a dyn Fn(&str) -> bool,
    /// The client's country, when [`RuleSet::needs_country`].
    pub country: Option<[u8; 2]>,
    /// The authenticated consumer.
    pub consumer: Option<&'a str>,
    /// Its groups.
    pub groups: &'a [String],
    /// The bot verdict.
    pub bot: Option<BotVerdict>,
}

/// What the rules decided for one request.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome<'r> {
    /// The rules that applied, in order (names, or `#index` for unnamed ones).
    pub applied: Vec<String>,
    /// Changes to the request's headers, in order.
    pub request_headers: Vec<&'r Ops>,
    /// Changes to the answer's headers, in order.
    pub response_headers: Vec<&'r Ops>,
    /// The path the upstream receives instead of the canonical one.
    pub path: Option<String>,
    /// The upstream instead of the route's.
    pub upstream: Option<&'r str>,
    /// The request is answered by a rule.
    pub answer: Option<&'r Answer>,
}

/// A header or query parameter a condition compares was sent more than once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ambiguous {
    /// `header` or `query parameter`.
    pub what: &'static str,
}

/// What a config gives the compiler to check names against.
pub struct Known<'a> {
    /// Upstream names.
    pub upstreams: &'a dyn Fn(&str) -> bool,
    /// `network.lists` names.
    pub lists: &'a dyn Fn(&str) -> bool,
    /// Consumer ids.
    pub consumers: &'a dyn Fn(&str) -> bool,
    /// A country database is configured.
    pub countries: bool,
}

/// Headers Rampart itself writes or frames requests with: a rule may not change them
/// (nor those of [`VERIFIED`]).
const MANAGED_REQUEST: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "te",
    "trailer",
    "upgrade",
    "proxy-connection",
    "x-request-id",
    "traceparent",
    "tracestate",
];

/// Headers Rampart replaces after the rules with what it verified: a rule may not set
/// them, and a condition on them (or on `X-Real-IP`, which is dropped) would read the
/// client's claim.
const VERIFIED: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    IDENTITY[0],
    IDENTITY[1],
    IDENTITY[2],
    IDENTITY[3],
    IDENTITY[4],
    IDENTITY[5],
];

/// The identity headers Rampart sends upstream (besides JWT claim headers): who calls, as
/// authentication and the TLS layer verified it.
pub const IDENTITY: [&str; 6] = [
    "x-consumer-id",
    "x-consumer-groups",
    "x-auth-method",
    "x-client-cert-subject",
    "x-client-cert-fingerprint",
    "x-client-cert-san",
];

const MANAGED_RESPONSE: &[&str] = &[
    "vary",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "trailer",
    "upgrade",
    "x-request-id",
    "strict-transport-security",
];

/// Regular expressions are compiled within this size (bytes of the compiled program).
const REGEX_SIZE_LIMIT: usize = 1 << 20;
/// A fixed body is at most this long.
pub const MAX_BODY: usize = 64 * 1024;

impl RuleSet {
    /// Compiles `rules`; every mistake is reported as (path below the rule list, e.g.
    /// `2.if.headers.0.regex`, message).
    pub fn compile(rules: &[Rule], known: &Known) -> Result<RuleSet, Vec<(String, String)>> {
        let mut errs = Vec::new();
        let mut set = RuleSet::default();
        for (i, r) in rules.iter().enumerate() {
            let mut err = |p: String, m: String| errs.push((format!("{i}.{p}"), m));
            let when = conds(&r.when, "if", known, &mut err);
            let unless = r
                .unless
                .as_ref()
                .map(|u| conds(u, "unless", known, &mut err));
            let then = then(&r.then, known, &mut err);
            for c in std::iter::once(&when).chain(unless.as_ref()) {
                set.needs_country |= !c.countries.is_empty();
            }
            set.rewrites |= then.rewrite.is_some();
            set.rules.push(Compiled {
                name: if r.name.is_empty() {
                    format!("#{i}")
                } else {
                    r.name.clone()
                },
                when,
                unless,
                then,
            });
        }
        if errs.is_empty() {
            Ok(set)
        } else {
            Err(errs)
        }
    }

    /// No rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// A condition reads the client's country (look it up only then).
    pub fn needs_country(&self) -> bool {
        self.needs_country
    }

    /// A rule may rewrite the path.
    pub fn rewrites(&self) -> bool {
        self.rewrites
    }

    /// Runs the rules over `req`.
    pub fn evaluate(&self, req: &Request) -> Result<Outcome<'_>, Ambiguous> {
        let mut out = Outcome::default();
        // Decoded once, by the first condition that reads it.
        let params = std::cell::OnceCell::new();
        for r in &self.rules {
            if !r.when.hold(req, &params)? {
                continue;
            }
            if let Some(u) = &r.unless {
                if u.hold(req, &params)? {
                    continue;
                }
            }
            out.applied.push(r.name.clone());
            let t = &r.then;
            if let Some(a) = &t.answer {
                if let Some(o) = &t.response_headers {
                    out.response_headers.push(o);
                }
                out.answer = Some(a);
                return Ok(out);
            }
            if let Some(o) = &t.request_headers {
                out.request_headers.push(o);
            }
            if let Some(o) = &t.response_headers {
                out.response_headers.push(o);
            }
            if let Some((prefix, to)) = &t.rewrite {
                let current = out.path.as_deref().unwrap_or(req.path);
                out.path = Some(rewrite(current, prefix.as_deref(), to));
            }
            if let Some(u) = &t.upstream {
                out.upstream = Some(u);
            }
        }
        Ok(out)
    }
}

impl Conds {
    fn hold(
        &self,
        req: &Request,
        params: &std::cell::OnceCell<Vec<(String, String)>>,
    ) -> Result<bool, Ambiguous> {
        if let Some(p) = &self.path {
            let ok = match p {
                Text::Exact(e) => req.path == e,
                Text::Prefix(pre) => under(req.path, pre),
                Text::Regex(r) => r.is_match(req.path),
            };
            if !ok {
                return Ok(false);
            }
        }
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == req.method) {
            return Ok(false);
        }
        if let Some(set) = &self.client_ip {
            if !req.client_ip.is_some_and(|ip| set.contains(ip)) {
                return Ok(false);
            }
        }
        if !self.networks.is_empty() && !self.networks.iter().any(|n| (req.in_list)(n)) {
            return Ok(false);
        }
        if !self.countries.is_empty() && !req.country.is_some_and(|c| self.countries.contains(&c)) {
            return Ok(false);
        }
        if !self.consumers.is_empty()
            && !req
                .consumer
                .is_some_and(|c| self.consumers.iter().any(|x| x == c))
        {
            return Ok(false);
        }
        if !self.groups.is_empty() && !req.groups.iter().any(|g| self.groups.contains(g)) {
            return Ok(false);
        }
        if !self.bots.is_empty() && !req.bot.is_some_and(|b| self.bots.contains(&b)) {
            return Ok(false);
        }
        for f in &self.headers {
            let values = (req.header)(&f.name);
            if !f.holds(&values, "header")? {
                return Ok(false);
            }
        }
        if !self.query.is_empty() {
            let params = params.get_or_init(|| {
                req.query
                    .map(|q| {
                        form_urlencoded::parse(q.as_bytes())
                            .map(|(k, v)| (k.into_owned(), v.into_owned()))
                            .collect()
                    })
                    .unwrap_or_default()
            });
            for f in &self.query {
                let values: Vec<&[u8]> = params
                    .iter()
                    .filter(|(k, _)| *k == f.name)
                    .map(|(_, v)| v.as_bytes())
                    .collect();
                if !f.holds(&values, "query parameter")? {
                    return Ok(false);
                }
            }
        }
        Ok(true)
    }
}

impl FieldRt {
    fn holds(&self, values: &[&[u8]], what: &'static str) -> Result<bool, Ambiguous> {
        if let Test::Present(p) = self.test {
            return Ok(values.is_empty() != p);
        }
        let v = match values {
            [] => return Ok(false),
            [v] => *v,
            _ => return Err(Ambiguous { what }),
        };
        // Values are compared as text; bytes that are not UTF-8 match no text.
        let Ok(v) = std::str::from_utf8(v) else {
            return Ok(false);
        };
        Ok(match &self.test {
            Test::Present(_) => unreachable!("answered above"),
            Test::Equals(e) => v == e,
            Test::OneOf(list) => list.iter().any(|e| e == v),
            Test::Regex(r) => r.is_match(v),
        })
    }
}

/// `path` is `prefix` or below it (segment boundary).
fn under(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || prefix.ends_with('/') || rest.starts_with('/'))
}

fn rewrite(path: &str, prefix: Option<&str>, to: &str) -> String {
    let rest = match prefix {
        Some(p) if under(path, p) => &path[p.len()..],
        Some(_) => return path.to_string(),
        None => "",
    };
    if rest.is_empty() {
        to.to_string()
    } else if to.ends_with('/') {
        format!("{to}{}", rest.trim_start_matches('/'))
    } else if rest.starts_with('/') {
        format!("{to}{rest}")
    } else {
        format!("{to}/{rest}")
    }
}

fn conds(
    c: &RuleConditions,
    at: &str,
    known: &Known,
    err: &mut impl FnMut(String, String),
) -> Conds {
    let mut out = Conds::default();
    if let Some(p) = &c.path {
        let given = [p.exact.is_some(), p.prefix.is_some(), p.regex.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            err(
                format!("{at}.path"),
                "give exactly one of exact, prefix or regex".into(),
            );
        } else if let Some(e) = p.exact.as_ref().or(p.prefix.as_ref()) {
            match canonical(e) {
                Ok(()) => {
                    out.path = Some(if p.exact.is_some() {
                        Text::Exact(e.clone())
                    } else {
                        Text::Prefix(e.clone())
                    })
                }
                Err(m) => err(format!("{at}.path"), m),
            }
        } else if let Some(r) = &p.regex {
            match regex(r) {
                Ok(r) => out.path = Some(Text::Regex(r)),
                Err(m) => err(format!("{at}.path.regex"), m),
            }
        }
    }
    for (j, m) in c.methods.iter().enumerate() {
        if !is_token(m) || m.bytes().any(|b| b.is_ascii_lowercase()) {
            err(
                format!("{at}.methods.{j}"),
                format!("`{m}` is not an upper-case HTTP method"),
            );
        }
    }
    out.methods = c.methods.clone();
    for (j, f) in c.headers.iter().enumerate() {
        let place = format!("{at}.headers.{j}");
        if !is_token(&f.name) || f.name.contains('_') {
            err(
                format!("{place}.name"),
                format!(
                    "`{}` is not a header name Rampart lets through (letters, digits and `-`)",
                    f.name
                ),
            );
        } else if matches!(f.name.to_ascii_lowercase().as_str(), n if VERIFIED.contains(&n) || n == "x-real-ip")
        {
            err(
                format!("{place}.name"),
                format!(
                    "`{}` is what the client claims here; Rampart sets it from what it verified \
                     (use client_ip, networks, consumers or groups)",
                    f.name
                ),
            );
        }
        if let Some(t) = test(f, &place, err) {
            out.headers.push(FieldRt {
                name: f.name.to_ascii_lowercase(),
                test: t,
            });
        }
    }
    for (j, f) in c.query.iter().enumerate() {
        let place = format!("{at}.query.{j}");
        if f.name.is_empty() {
            err(format!("{place}.name"), "a parameter name is needed".into());
        }
        if let Some(t) = test(f, &place, err) {
            out.query.push(FieldRt {
                name: f.name.clone(),
                test: t,
            });
        }
    }
    if !c.client_ip.is_empty() {
        match IpSet::parse(c.client_ip.iter().map(String::as_str)) {
            Ok(s) => out.client_ip = Some(s),
            Err(es) => {
                for e in es {
                    err(format!("{at}.client_ip"), e.to_string());
                }
            }
        }
    }
    let mut names = |list: &[String], field: &str, exists: &dyn Fn(&str) -> bool, what: &str| {
        for (j, n) in list.iter().enumerate() {
            if !exists(n) {
                err(format!("{at}.{field}.{j}"), format!("no {what} {n:?}"));
            }
        }
    };
    names(
        &c.networks,
        "networks",
        known.lists,
        "network.lists entry is named",
    );
    names(
        &c.consumers,
        "consumers",
        known.consumers,
        "consumer has the id",
    );
    out.networks = c.networks.clone();
    for (j, cc) in c.countries.iter().enumerate() {
        match cc.as_bytes() {
            [a, b] if a.is_ascii_uppercase() && b.is_ascii_uppercase() => {
                out.countries.push([*a, *b])
            }
            _ => err(
                format!("{at}.countries.{j}"),
                format!("`{cc}` is not an ISO 3166 alpha-2 code (`DE`, `US`)"),
            ),
        }
    }
    if !c.countries.is_empty() && !known.countries {
        err(
            format!("{at}.countries"),
            "needs a country database (network.geoip.country_db)".into(),
        );
    }
    out.consumers = c.consumers.clone();
    out.groups = c.groups.clone();
    for (j, b) in c.bots.iter().enumerate() {
        match BotVerdict::parse(b) {
            Some(v) => out.bots.push(v),
            None => err(
                format!("{at}.bots.{j}"),
                format!("`{b}` is not a verdict (good_bot, bad_bot, automated, human, unknown)"),
            ),
        }
    }
    out
}

fn test(f: &FieldMatch, place: &str, err: &mut impl FnMut(String, String)) -> Option<Test> {
    let given = [
        f.present.is_some(),
        f.equals.is_some(),
        f.one_of.is_some(),
        f.regex.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        err(
            place.to_string(),
            "give exactly one of present, equals, one_of or regex".into(),
        );
        return None;
    }
    if let Some(p) = f.present {
        return Some(Test::Present(p));
    }
    if let Some(e) = &f.equals {
        return Some(Test::Equals(e.clone()));
    }
    if let Some(l) = &f.one_of {
        return Some(Test::OneOf(l.clone()));
    }
    match regex(f.regex.as_deref().unwrap_or_default()) {
        Ok(r) => Some(Test::Regex(r)),
        Err(m) => {
            err(format!("{place}.regex"), m);
            None
        }
    }
}

fn then(a: &RuleActions, known: &Known, err: &mut impl FnMut(String, String)) -> Then {
    let answers = a.redirect.is_some() as u8 + a.respond.is_some() as u8;
    if answers > 1 {
        err(
            "then".into(),
            "redirect and respond both answer the request: give one".into(),
        );
    }
    if answers > 0 && (a.request_headers.is_some() || a.rewrite.is_some() || a.upstream.is_some()) {
        err(
            "then".into(),
            "a rule that answers the request (redirect, respond) cannot also change what goes \
             upstream (request_headers, rewrite, upstream)"
                .into(),
        );
    }
    if answers == 0
        && a.request_headers.is_none()
        && a.response_headers.is_none()
        && a.rewrite.is_none()
        && a.upstream.is_none()
    {
        err("then".into(), "the rule does nothing".into());
    }
    let mut t = Then {
        request_headers: a
            .request_headers
            .as_ref()
            .map(|o| ops(o, "then.request_headers", &[MANAGED_REQUEST, VERIFIED], err)),
        response_headers: a
            .response_headers
            .as_ref()
            .map(|o| ops(o, "then.response_headers", &[MANAGED_RESPONSE], err)),
        rewrite: None,
        upstream: None,
        answer: None,
    };
    if let Some(r) = &a.rewrite {
        for (k, p) in [("prefix", r.prefix.as_ref()), ("to", Some(&r.to))] {
            if let Some(p) = p {
                if let Err(m) = canonical(p) {
                    err(format!("then.rewrite.{k}"), m);
                }
            }
        }
        t.rewrite = Some((r.prefix.clone(), r.to.clone()));
    }
    if let Some(u) = &a.upstream {
        if !(known.upstreams)(u) {
            err(
                "then.upstream".into(),
                format!("no upstream is named {u:?}"),
            );
        }
        t.upstream = Some(u.clone());
    }
    if let Some(r) = &a.redirect {
        if ![301, 302, 303, 307, 308].contains(&r.status) {
            err(
                "then.redirect.status".into(),
                "a redirect is 301, 302, 303, 307 or 308".into(),
            );
        }
        if !valid_location(&r.location) {
            err(
                "then.redirect.location".into(),
                "an absolute http(s) URL or a path starting with a single `/`, in visible \
                 ASCII"
                    .into(),
            );
        }
        t.answer = Some(Answer::Redirect {
            location: r.location.clone(),
            status: r.status,
        });
    }
    if let Some(r) = &a.respond {
        if !(200..=599).contains(&r.status) {
            err(
                "then.respond.status".into(),
                "a status from 200 to 599".into(),
            );
        }
        if matches!(r.status, 204 | 304) && !r.body.is_empty() {
            err(
                "then.respond.body".into(),
                format!("a {} answer has no body", r.status),
            );
        }
        if r.body.len() > MAX_BODY {
            err(
                "then.respond.body".into(),
                format!("at most {} KiB", MAX_BODY / 1024),
            );
        }
        let printable = r.content_type.bytes().all(|b| (b' '..=b'~').contains(&b));
        if !printable || !r.content_type.contains('/') {
            err(
                "then.respond.content_type".into(),
                "a media type (`application/json`)".into(),
            );
        }
        t.answer = Some(Answer::Respond {
            status: r.status,
            body: r.body.clone(),
            content_type: r.content_type.clone(),
        });
    }
    t
}

fn ops(o: &HeaderOps, at: &str, managed: &[&[&str]], err: &mut impl FnMut(String, String)) -> Ops {
    let mut check = |place: String, name: &str| {
        let lower = name.to_ascii_lowercase();
        if !is_token(name) || name.contains('_') {
            err(
                place,
                format!("`{name}` is not a header name (letters, digits and `-`)"),
            );
        } else if managed.iter().any(|m| m.contains(&lower.as_str()))
            || lower.starts_with("access-control-")
            || lower.starts_with("proxy-")
        {
            err(
                place,
                format!("`{name}` is Rampart's to write; a rule cannot change it"),
            );
        }
        lower
    };
    let mut out = Ops::default();
    for (j, n) in o.remove.iter().enumerate() {
        out.remove.push(check(format!("{at}.remove.{j}"), n));
    }
    for (n, v) in &o.set {
        let name = check(format!("{at}.set.{n}"), n);
        out.set.push((name, v.clone()));
    }
    for (n, v) in &o.add {
        let name = check(format!("{at}.add.{n}"), n);
        out.add.push((name, v.clone()));
    }
    for (n, v) in o.set.iter().chain(&o.add) {
        if !v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) {
            err(
                format!("{at}.{n}"),
                "a header value is visible ASCII, spaces and tabs".into(),
            );
        }
    }
    out
}

fn canonical(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("`{p}` is not a path (it starts with `/`)"));
    }
    let policy = rampart_router::PathPolicy {
        keep_encoded_slash: true,
        keep_backslash: true,
        keep_semicolon: true,
        merge_slashes: false,
    };
    match rampart_router::canonical_path(p, &policy) {
        Ok(c) if c == p => Ok(()),
        Ok(c) => Err(format!("write the path in its canonical form: {c}")),
        Err(e) => Err(e.reason().into()),
    }
}

fn regex(r: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(r)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("not a regular expression Rampart can run: {e}"))
}

fn valid_location(l: &str) -> bool {
    if !visible(l) {
        return false;
    }
    if let Some(rest) = l
        .strip_prefix("https://")
        .or_else(|| l.strip_prefix("http://"))
    {
        let host = rest.split(['/', '?', '#']).next().unwrap_or("");
        return !host.is_empty() && !host.contains('@') && !host.contains('\\');
    }
    // `//host` and `/\host` are read by browsers as another site.
    l.starts_with('/') && !l.starts_with("//") && !l.starts_with("/\\")
}

fn visible(v: &str) -> bool {
    !v.is_empty() && v.bytes().all(|b| (b'!'..=b'~').contains(&b))
}

fn is_token(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
