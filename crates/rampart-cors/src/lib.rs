//! Cross-origin resource sharing for one route, as the Fetch standard has browsers ask for
//! it: which origins may read the route's responses, and Rampart's answer to a preflight.
//!
//! The policy is compiled once at load ([`Policy::compile`]; every mistake reported with the
//! field it concerns) and then only compares bytes. What a browser sends is read strictly:
//! an `Origin` is `scheme://host[:port]` and nothing else, a preflight's method is one token
//! and its header list a comma-separated list of tokens; anything else is refused, never
//! guessed at. An origin is never allowed because it *contains* an allowed one: patterns
//! match whole DNS labels (`https://*.example.com` is `https://a.example.com`, never
//! `https://example.com.evil.test` or `https://evilexample.com`).
//!
//! Rampart's policy replaces the upstream's: the gateway removes `Access-Control-*` headers
//! from upstream responses on a route with CORS, so a backend answering `*` cannot widen it.

use std::time::Duration;

/// A route's CORS settings, as written in the config.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Settings {
    /// `scheme://host[:port]` origins, `scheme://*.domain[:port]` patterns (one or more
    /// labels in place of `*`), or `*` alone (any origin, not with `credentials`).
    pub origins: Vec<String>,
    /// Methods a preflight may ask for (case-sensitive, as HTTP methods are).
    pub methods: Vec<String>,
    /// Request headers a preflight may ask for (any case), or `*` (any; not with
    /// `credentials`).
    pub headers: Vec<String>,
    /// Response headers scripts may read beyond the CORS-safelisted ones.
    pub expose_headers: Vec<String>,
    /// Browsers may send cookies and HTTP authentication, and read the answer.
    pub credentials: bool,
    /// How long browsers may cache a preflight's answer.
    pub max_age: Duration,
}

/// A mistake in [`Settings`]: the field (and item) it concerns, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    /// `origins`, `methods`, `headers`, `expose_headers` or `credentials`.
    pub field: &'static str,
    /// The position in the field's list, when one item is wrong.
    pub index: Option<usize>,
    /// What is wrong, and what would be right.
    pub message: String,
}

/// The most request headers one preflight may ask for.
pub const MAX_REQUEST_HEADERS: usize = 64;

/// Longest preflight cache browsers honour (Firefox: 24 hours; Chromium caps at 2 hours).
pub const MAX_AGE_LIMIT: Duration = Duration::from_secs(24 * 3600);

/// An origin as browsers serialize it: lower-case scheme and host, the port only when it
/// is not the scheme's default.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    https: bool,
    host: String,
    port: Option<u16>,
}

/// `https://*.example.com[:port]`: any host with one or more labels before `.example.com`.
#[derive(Debug, Clone)]
struct Pattern {
    https: bool,
    /// The suffix with its leading dot: `.example.com`.
    suffix: String,
    port: Option<u16>,
}

/// A compiled policy (see the crate docs).
#[derive(Debug, Clone)]
pub struct Policy {
    any_origin: bool,
    exact: Vec<Origin>,
    patterns: Vec<Pattern>,
    methods: Vec<String>,
    any_header: bool,
    /// Lower case.
    headers: Vec<String>,
    credentials: bool,
    allow_methods: String,
    allow_headers: String,
    expose: String,
    max_age: String,
}

/// Why a cross-origin request or preflight is refused (the reason logs and events carry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `Origin` is not allowed (or is not an origin at all, or is sent twice).
    Origin,
    /// The preflight asks for a method the route does not allow cross-origin.
    Method,
    /// The preflight asks for a request header the route does not allow.
    Headers,
}

impl Refusal {
    /// The reason recorded for the refusal.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Origin => "cors origin not allowed",
            Refusal::Method => "cors method not allowed",
            Refusal::Headers => "cors header not allowed",
        }
    }
}

/// Response headers, in the order they are written.
pub type Headers = Vec<(&'static str, String)>;

impl Policy {
    /// Checks and compiles `s`; every mistake is reported, not only the first.
    pub fn compile(s: &Settings) -> Result<Policy, Vec<SettingError>> {
        let mut errs = Vec::new();
        let mut err = |field, index, message: String| {
            errs.push(SettingError {
                field,
                index,
                message,
            })
        };
        let mut p = Policy {
            any_origin: false,
            exact: Vec::new(),
            patterns: Vec::new(),
            methods: Vec::new(),
            any_header: false,
            headers: Vec::new(),
            credentials: s.credentials,
            allow_methods: String::new(),
            allow_headers: String::new(),
            expose: String::new(),
            max_age: s.max_age.min(MAX_AGE_LIMIT).as_secs().to_string(),
        };
        if s.origins.is_empty() {
            err(
                "origins",
                None,
                "at least one origin is needed (`https://app.example.com`)".into(),
            );
        }
        for (i, o) in s.origins.iter().enumerate() {
            match compile_origin(o) {
                Ok(Allowed::Any) if s.credentials => err(
                    "origins",
                    Some(i),
                    "`*` cannot go with `credentials: true`: every site could read answers \
                     sent with its visitors' cookies; list the origins"
                        .into(),
                ),
                Ok(Allowed::Any) => p.any_origin = true,
                Ok(Allowed::Exact(o)) => p.exact.push(o),
                Ok(Allowed::Pattern(pt)) => p.patterns.push(pt),
                Err(m) => err("origins", Some(i), m),
            }
        }
        let default_methods = ["GET", "HEAD", "POST"].map(String::from);
        let methods = if s.methods.is_empty() {
            &default_methods[..]
        } else {
            &s.methods[..]
        };
        for (i, m) in methods.iter().enumerate() {
            if m == "*" {
                err(
                    "methods",
                    Some(i),
                    "list the methods; `*` is not accepted".into(),
                );
            } else if !is_token(m.as_bytes()) {
                err("methods", Some(i), format!("`{m}` is not an HTTP method"));
            } else if !p.methods.contains(m) {
                p.methods.push(m.clone());
            }
        }
        p.allow_methods = p.methods.join(", ");
        for (i, h) in s.headers.iter().enumerate() {
            if h == "*" {
                if s.credentials {
                    err(
                        "headers",
                        Some(i),
                        "`*` cannot go with `credentials: true`; list the headers".into(),
                    );
                }
                p.any_header = true;
            } else if !is_token(h.as_bytes()) {
                err("headers", Some(i), format!("`{h}` is not a header name"));
            } else {
                let h = h.to_ascii_lowercase();
                if !p.headers.contains(&h) {
                    p.headers.push(h);
                }
            }
        }
        p.allow_headers = p.headers.join(", ");
        let mut expose = Vec::new();
        for (i, h) in s.expose_headers.iter().enumerate() {
            if h == "*" && s.credentials {
                err(
                    "expose_headers",
                    Some(i),
                    "`*` cannot go with `credentials: true`; list the headers".into(),
                );
            } else if h != "*" && !is_token(h.as_bytes()) {
                err(
                    "expose_headers",
                    Some(i),
                    format!("`{h}` is not a header name"),
                );
            } else {
                expose.push(h.as_str());
            }
        }
        p.expose = expose.join(", ");
        if errs.is_empty() {
            Ok(p)
        } else {
            Err(errs)
        }
    }

    /// Whether a request carrying `origin` (the `Origin` header's value) may read this
    /// route's responses.
    pub fn allows_origin(&self, origin: &[u8]) -> bool {
        let Some(o) = parse_origin(origin) else {
            return false;
        };
        self.any_origin
            || self.exact.contains(&o)
            || self.patterns.iter().any(|p| {
                p.https == o.https
                    && p.port == o.port
                    && o.host.len() > p.suffix.len()
                    && o.host.ends_with(p.suffix.as_str())
            })
    }

    /// The answer to a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`): the headers of a `204`, or why it is refused.
    /// `request_headers` are the `Access-Control-Request-Headers` values (each a list).
    pub fn preflight(
        &self,
        origin: &[u8],
        method: &[u8],
        request_headers: &[&[u8]],
    ) -> Result<Headers, Refusal> {
        if !self.allows_origin(origin) {
            return Err(Refusal::Origin);
        }
        if !is_token(method) || !self.methods.iter().any(|m| m.as_bytes() == method) {
            return Err(Refusal::Method);
        }
        let mut asked: Vec<String> = Vec::new();
        let mut seen = 0;
        for list in request_headers {
            for name in list.split(|b| *b == b',') {
                let name = name.trim_ascii();
                if name.is_empty() {
                    continue;
                }
                // Browsers ask for a handful; thousands would only be work for nothing
                // (and an echo of all of them with `*`).
                seen += 1;
                if seen > MAX_REQUEST_HEADERS {
                    return Err(Refusal::Headers);
                }
                if !is_token(name) {
                    return Err(Refusal::Headers);
                }
                let name = String::from_utf8_lossy(name).to_ascii_lowercase();
                if !self.any_header && !self.headers.contains(&name) {
                    return Err(Refusal::Headers);
                }
                if !asked.contains(&name) {
                    asked.push(name);
                }
            }
        }
        let mut h = self.origin_headers(origin);
        h.push(("Access-Control-Allow-Methods", self.allow_methods.clone()));
        let allow_headers = if self.any_header {
            // Named back rather than `*`: with credentials browsers read `*` literally.
            asked.join(", ")
        } else {
            self.allow_headers.clone()
        };
        if !allow_headers.is_empty() {
            h.push(("Access-Control-Allow-Headers", allow_headers));
        }
        h.push(("Access-Control-Max-Age", self.max_age.clone()));
        h.push((
            "Vary",
            "Origin, Access-Control-Request-Method, Access-Control-Request-Headers".into(),
        ));
        Ok(h)
    }

    /// The headers added to the response of an allowed cross-origin request.
    pub fn response_headers(&self, origin: &[u8]) -> Headers {
        let mut h = self.origin_headers(origin);
        if !self.expose.is_empty() {
            h.push(("Access-Control-Expose-Headers", self.expose.clone()));
        }
        h
    }

    /// Whether responses differ by `Origin` (then caches must be told: `Vary: Origin`).
    pub fn varies(&self) -> bool {
        !self.any_origin || self.credentials
    }

    fn origin_headers(&self, origin: &[u8]) -> Headers {
        let mut h = Vec::with_capacity(6);
        if self.any_origin && !self.credentials {
            h.push(("Access-Control-Allow-Origin", "*".to_string()));
        } else {
            // Only called for an origin that parsed: ASCII, so this is the bytes sent.
            h.push((
                "Access-Control-Allow-Origin",
                String::from_utf8_lossy(origin).into_owned(),
            ));
        }
        if self.credentials {
            h.push(("Access-Control-Allow-Credentials", "true".to_string()));
        }
        h
    }
}

/// Whether `origin` is the request's own: its host (and port) are the `Host` the request
/// was sent to, and its scheme the connection's (`https` on TLS; on a plain listener,
/// which may sit behind a TLS-terminating balancer, either).
pub fn same_origin(origin: &[u8], host: &str, tls: bool) -> bool {
    let Some(o) = parse_origin(origin) else {
        return false;
    };
    if tls && !o.https {
        return false;
    }
    let Some((h, port)) = split_host_port(host.as_bytes()) else {
        return false;
    };
    let default = if o.https { 443 } else { 80 };
    o.host == h && o.port.unwrap_or(default) == port.unwrap_or(default)
}

enum Allowed {
    Any,
    Exact(Origin),
    Pattern(Pattern),
}

fn compile_origin(o: &str) -> Result<Allowed, String> {
    if o == "*" {
        return Ok(Allowed::Any);
    }
    if o.eq_ignore_ascii_case("null") {
        return Err(
            "`null` is the origin of sandboxed documents, local files and redirects \
                    across sites; any page can make one, so it cannot be allowed"
                .into(),
        );
    }
    let hint = "an origin is `https://host` or `https://host:port` (no path, no trailing \
                slash), or `https://*.domain` for its subdomains";
    if let Some(rest) = o
        .strip_prefix("https://*.")
        .map(|r| (true, r))
        .or_else(|| o.strip_prefix("http://*.").map(|r| (false, r)))
    {
        let (https, rest) = rest;
        let Some((host, port)) = split_host_port(rest.as_bytes()) else {
            return Err(format!("`{o}`: {hint}"));
        };
        if host.starts_with('[') || !host.contains('.') {
            return Err(format!(
                "`{o}`: a pattern needs a domain of two labels or more after `*.`, so it \
                 cannot cover a whole top-level domain"
            ));
        }
        let default = if https { 443 } else { 80 };
        return Ok(Allowed::Pattern(Pattern {
            https,
            suffix: format!(".{host}"),
            port: port.filter(|p| *p != default),
        }));
    }
    if o.contains('*') {
        return Err(format!(
            "`{o}`: `*` is accepted alone or as the whole first label (`https://*.example.com`)"
        ));
    }
    match parse_origin(o.as_bytes()) {
        Some(parsed) => Ok(Allowed::Exact(parsed)),
        None => Err(format!("`{o}`: {hint}")),
    }
}

/// `scheme://host[:port]` exactly (the serialization of RFC 6454 that browsers send);
/// anything else is `None`.
fn parse_origin(v: &[u8]) -> Option<Origin> {
    if v.len() > 512 {
        return None;
    }
    let (https, rest) = if v.len() > 8 && v[..8].eq_ignore_ascii_case(b"https://") {
        (true, &v[8..])
    } else if v.len() > 7 && v[..7].eq_ignore_ascii_case(b"http://") {
        (false, &v[7..])
    } else {
        return None;
    };
    let (host, port) = split_host_port(rest)?;
    let default = if https { 443 } else { 80 };
    Some(Origin {
        https,
        host,
        port: port.filter(|p| *p != default),
    })
}

/// `host[:port]` → lower-case host and port. A host is DNS labels (letters, digits, `-`,
/// `_`), an IPv4 address or a bracketed IPv6 address; nothing else (no path, userinfo,
/// trailing dot or empty label) is accepted.
fn split_host_port(v: &[u8]) -> Option<(String, Option<u16>)> {
    let (host, port) = if v.first() == Some(&b'[') {
        let end = v.iter().position(|b| *b == b']')?;
        let inner = std::str::from_utf8(&v[1..end]).ok()?;
        inner.parse::<std::net::Ipv6Addr>().ok()?;
        (&v[..=end], &v[end + 1..])
    } else {
        match v.iter().position(|b| *b == b':') {
            Some(i) => (&v[..i], &v[i..]),
            None => (v, &v[v.len()..]),
        }
    };
    let port = match port {
        [] => None,
        [b':', digits @ ..] => {
            if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
                return None;
            }
            let n: u32 = std::str::from_utf8(digits).ok()?.parse().ok()?;
            Some(u16::try_from(n).ok().filter(|p| *p > 0)?)
        }
        _ => return None,
    };
    let bracketed = host.first() == Some(&b'[');
    if !bracketed
        && (host.is_empty()
            || host
                .split(|b| *b == b'.')
                .any(|l| l.is_empty() || l.len() > 63)
            || !host
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')))
    {
        return None;
    }
    Some((String::from_utf8_lossy(host).to_ascii_lowercase(), port))
}

/// An RFC 9110 token (a method or a header name).
fn is_token(v: &[u8]) -> bool {
    !v.is_empty()
        && v.iter().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

#[cfg(test)]
mod tests;
