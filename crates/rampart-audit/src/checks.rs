//! The checks, one function per config area. Each pushes findings with line and column 0.

use crate::owasp::*;
use crate::{secret, Finding, Severity};
use rampart_config::*;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

const DAY: u64 = 24 * 3600;

struct Out(Vec<Finding>);

impl Out {
    fn add(
        &mut self,
        id: &'static str,
        severity: Severity,
        path: impl Into<String>,
        owasp: &'static str,
        title: impl Into<String>,
        fix: impl Into<String>,
    ) {
        debug_assert!(crate::FINDING_IDS.contains(&id), "{id} is not listed");
        self.0.push(Finding {
            id,
            severity,
            path: path.into(),
            line: 0,
            column: 0,
            owasp,
            title: title.into(),
            fix: fix.into(),
        });
    }
}

pub fn run(c: &Config) -> Vec<Finding> {
    let mut out = Out(Vec::new());
    listeners(c, &mut out);
    admin(c, &mut out);
    routes(c, &mut out);
    waf(c, &mut out);
    jwt(c, &mut out);
    auth_backends(c, &mut out);
    limits(c, &mut out);
    upstreams(c, &mut out);
    trusted_proxies(c, &mut out);
    events(c, &mut out);
    bots(c, &mut out);
    out.0
}

/// Loopback addresses are reachable from this host only. An address that does not parse
/// cannot occur in a loaded config; counting it as exposed errs on the safe side.
fn is_loopback(address: &str) -> bool {
    address
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback())
}

/// A route that sends requests to a backend (docs-only routes answer themselves).
fn proxies(r: &Route) -> bool {
    !r.upstream.is_empty()
}

/// Plain-HTTP listeners that serve requests (not only redirect) to other hosts.
fn exposed_plain_listeners(c: &Config) -> Vec<(usize, &Listener)> {
    c.listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.tls.is_none() && !l.redirect_https && !is_loopback(&l.address))
        .collect()
}

fn listeners(c: &Config, out: &mut Out) {
    // With trusted proxies, a balancer in front may terminate TLS and speak plain HTTP to
    // Rampart on a private network: weaker, but not exposed to clients directly.
    let behind_proxy = !c.server.trusted_proxies.is_empty();
    for (i, l) in exposed_plain_listeners(c) {
        let (severity, note) = if behind_proxy {
            (
                Severity::Low,
                " (if a balancer in server.trusted_proxies terminates TLS in front of it, keep it on a private network)",
            )
        } else {
            (Severity::Medium, "")
        };
        out.add(
            "plain-http-no-redirect",
            severity,
            format!("listeners.{i}.redirect_https"),
            MISCONFIGURATION,
            format!(
                "listener {:?} serves plain HTTP on {} without redirecting to HTTPS",
                l.name, l.address
            ),
            format!(
                "give it tls, or set redirect_https: true and add a TLS listener, or bind it to 127.0.0.1{note}"
            ),
        );
    }
    for (i, l) in c.listeners.iter().enumerate() {
        if l.tls.is_none() {
            continue;
        }
        match &l.hsts {
            None => out.add(
                "hsts-off",
                Severity::Low,
                format!("listeners.{i}.hsts"),
                MISCONFIGURATION,
                format!(
                    "TLS listener {:?} sends no Strict-Transport-Security header",
                    l.name
                ),
                "add hsts: {} (max-age one year) so browsers never fall back to plain HTTP",
            ),
            Some(h) if h.max_age.0 < Duration::from_secs(180 * DAY) => out.add(
                "hsts-short",
                Severity::Low,
                format!("listeners.{i}.hsts.max_age"),
                MISCONFIGURATION,
                format!(
                    "TLS listener {:?} sends HSTS with a max-age of {} only",
                    l.name,
                    span(h.max_age.0)
                ),
                "raise hsts.max_age to at least 180 days (one year, the default, is what the preload list asks)",
            ),
            Some(_) => {}
        }
    }
}

/// A duration in the largest whole unit that fits: `30 days`, `1 hour`, `45 s`.
fn span(d: Duration) -> String {
    let s = d.as_secs();
    let (n, unit) = if s >= DAY {
        (s / DAY, "day")
    } else if s >= 3600 {
        (s / 3600, "hour")
    } else {
        return format!("{s} s");
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

fn admin(c: &Config, out: &mut Out) {
    let a = &c.admin;
    if !is_loopback(&a.address) {
        if a.tls.is_none() {
            out.add(
            "admin-plain-http",
            Severity::High,
            "admin.address",
            BROKEN_AUTHENTICATION,
            format!(
                "the admin listener on {} speaks plain HTTP: admin tokens cross the network in clear text",
                a.address
            ),
            "give the admin listener tls (with client_auth for certificate logins), or bind admin.address to 127.0.0.1 and reach it through an SSH tunnel",
        );
        }
        if a.metrics == MetricsAccess::Public {
            out.add(
                "admin-metrics-public",
                Severity::Medium,
                "admin.metrics",
                MISCONFIGURATION,
                format!(
                    "/metrics on {} answers anyone without a token (route, upstream and consumer names, traffic)",
                    a.address
                ),
                "set admin.metrics: authenticated and give the scraper a viewer token",
            );
        }
    }
    for (i, t) in a.tokens.iter().enumerate() {
        if t.expires.is_none() {
            out.add(
                "admin-token-no-expiry",
                Severity::Low,
                format!("admin.tokens.{i}.expires"),
                BROKEN_AUTHENTICATION,
                format!("admin token {:?} never expires", t.name),
                "set expires (RFC 3339) and rotate the token before then",
            );
        }
    }
}

fn routes(c: &Config, out: &mut Out) {
    let plain = exposed_plain_listeners(c);
    let behind_proxy = !c.server.trusted_proxies.is_empty();
    for (i, r) in c.routes.iter().enumerate() {
        let base = format!("routes.{i}");
        let limited = !r.rate_limit.as_ref().unwrap_or(&c.rate_limit).is_empty();
        match &r.auth {
            None if proxies(r) && !r.require_client_cert => {
                let fenced = r.network.as_ref().is_some_and(|n| !n.allow_only.is_empty());
                let (severity, note) = if fenced {
                    (Severity::Low, " (it admits only listed networks)")
                } else {
                    (Severity::Medium, "")
                };
                out.add(
                    "route-without-auth",
                    severity,
                    format!("{base}.auth"),
                    BROKEN_AUTHENTICATION,
                    format!("route {:?} proxies to {:?} without authentication{note}", r.name, r.upstream),
                    "add auth with at least one method; if the route is public on purpose, say so with auth: { methods: [...], optional: true }",
                );
            }
            None => {}
            Some(a) => {
                if !limited {
                    out.add(
                        "auth-route-no-rate-limit",
                        Severity::Medium,
                        format!("{base}.rate_limit"),
                        BROKEN_AUTHENTICATION,
                        format!(
                            "route {:?} checks credentials but has no rate limit: guessing and credential stuffing are only slowed by the lockout",
                            r.name
                        ),
                        "give the route (or the top-level rate_limit) a limit keyed by client_ip, e.g. rate: 10/s",
                    );
                }
                if !a.optional
                    && r.authorize.is_none()
                    && c.default_authorization == DefaultAuthorization::Allow
                {
                    out.add(
                        "route-without-authorization",
                        Severity::Info,
                        format!("{base}.authorize"),
                        FUNCTION_LEVEL_AUTHORIZATION,
                        format!(
                            "route {:?} admits every authenticated consumer (no authorize, default_authorization: allow)",
                            r.name
                        ),
                        "add authorize (groups, scopes or per-operation rules), or set default_authorization: deny",
                    );
                }
                let passwords: Vec<&str> = a
                    .methods
                    .iter()
                    .filter(|m| matches!(m, AuthMethod::Basic | AuthMethod::Ldap))
                    .map(|m| m.as_str())
                    .collect();
                if !passwords.is_empty() && !plain.is_empty() {
                    let names: Vec<String> =
                        plain.iter().map(|(_, l)| format!("{:?}", l.name)).collect();
                    out.add(
                        "basic-over-plain-http",
                        if behind_proxy { Severity::Medium } else { Severity::High },
                        format!("{base}.auth.methods"),
                        BROKEN_AUTHENTICATION,
                        format!(
                            "route {:?} accepts passwords ({}) and is served over plain HTTP by listener {}",
                            r.name,
                            passwords.join(", "),
                            names.join(", ")
                        ),
                        "serve it over TLS only: give the plain listener tls or redirect_https: true",
                    );
                }
            }
        }
        if r.auth.is_none() && proxies(r) && !limited {
            out.add(
                "route-no-rate-limit",
                Severity::Low,
                format!("{base}.rate_limit"),
                RESOURCE_CONSUMPTION,
                format!("route {:?} has no rate limit", r.name),
                "give the route (or the top-level rate_limit) a limit, e.g. rate: 100/s keyed by client_ip",
            );
        }
    }
}

fn waf(c: &Config, out: &mut Out) {
    let Some(w) = &c.waf else {
        if c.routes.iter().any(proxies) {
            out.add(
                "waf-off",
                Severity::Medium,
                "waf",
                MISCONFIGURATION,
                "no web application firewall: injection and other attack payloads reach the upstreams",
                "add a top-level waf with the OWASP CRS (waf.rules: [crs/crs-setup.conf, crs/rules/*.conf])",
            );
        }
        return;
    };
    if w.mode == WafMode::Detect {
        out.add(
            "waf-detect-only",
            Severity::Medium,
            "waf.mode",
            MISCONFIGURATION,
            "the WAF only reports: attacks it detects still reach the upstreams",
            "set waf.mode: block once the events show no false positives (exclude rules per route instead)",
        );
    }
    if w.request_body_limit_action == BodyLimitAction::ProcessPartial {
        out.add(
            "waf-partial-body",
            Severity::Low,
            "waf.request_body_limit_action",
            MISCONFIGURATION,
            format!(
                "request bodies past {} bytes pass the WAF uninspected",
                w.request_body_limit.0
            ),
            "set waf.request_body_limit_action: reject (larger bodies get 413)",
        );
    }
    for (i, r) in c.routes.iter().enumerate() {
        let Some(rw) = &r.waf else { continue };
        if !rw.enabled {
            if proxies(r) {
                out.add(
                    "waf-off",
                    Severity::Medium,
                    format!("routes.{i}.waf.enabled"),
                    MISCONFIGURATION,
                    format!("the WAF is turned off on route {:?}", r.name),
                    "turn it back on and exclude only the rules that misfire here (waf.exclusions)",
                );
            }
        } else if rw.mode == Some(WafMode::Detect) && w.mode != WafMode::Detect {
            out.add(
                "waf-detect-only",
                Severity::Medium,
                format!("routes.{i}.waf.mode"),
                MISCONFIGURATION,
                format!("the WAF only reports on route {:?}", r.name),
                "remove the route's waf.mode (or set block) and exclude only the rules that misfire here",
            );
        }
    }
}

fn jwt(c: &Config, out: &mut Out) {
    for (i, j) in c.auth.jwt.iter().enumerate() {
        let base = format!("auth.jwt.{i}");
        if j.audiences.is_empty() {
            out.add(
                "jwt-no-audience",
                Severity::Medium,
                format!("{base}.audiences"),
                BROKEN_AUTHENTICATION,
                format!(
                    "tokens of issuer {:?} are accepted whatever their aud: a token minted for another service works here",
                    j.issuer
                ),
                "list this API's audience in audiences",
            );
        }
        if j.leeway.0 > Duration::from_secs(300) {
            out.add(
                "jwt-long-leeway",
                Severity::Low,
                format!("{base}.leeway"),
                BROKEN_AUTHENTICATION,
                format!(
                    "tokens of issuer {:?} stay valid {} s past their exp",
                    j.issuer,
                    j.leeway.0.as_secs()
                ),
                "keep leeway to the clock skew you expect (the default is 30s)",
            );
        }
        for (k, key) in j.keys.iter().enumerate() {
            let Some(s) = &key.secret else { continue };
            if let Some((severity, why)) = secret::weakness(s.as_bytes()) {
                out.add(
                    "jwt-weak-secret",
                    severity,
                    format!("{base}.keys.{k}.secret"),
                    BROKEN_AUTHENTICATION,
                    format!(
                        "the HMAC secret of key {} of issuer {:?} {why}: tokens can be forged once it is guessed",
                        key.kid.as_ref().map_or(k.to_string(), |kid| format!("{kid:?}")),
                        j.issuer
                    ),
                    "use at least 32 random bytes (e.g. `openssl rand -base64 48`) from ${ENV}, or move the issuer to asymmetric keys",
                );
            }
        }
    }
}

/// The services Rampart asks about credentials: a man in the middle there decides who
/// gets in.
fn auth_backends(c: &Config, out: &mut Out) {
    let plain = |url: &str| url.trim().to_ascii_lowercase().starts_with("http://");
    let mut add = |path: String, what: String, fix: &str| {
        out.add(
            "auth-backend-without-tls",
            Severity::High,
            path,
            BROKEN_AUTHENTICATION,
            what,
            fix,
        )
    };
    for (i, j) in c.auth.jwt.iter().enumerate() {
        match &j.jwks_url {
            Some(u) if plain(u) => add(
                format!("auth.jwt.{i}.jwks_url"),
                format!(
                    "the keys of issuer {:?} are fetched over plain HTTP: whoever is on the path can substitute their own",
                    j.issuer
                ),
                "use the https:// JWKS URL",
            ),
            None if j.discovery && plain(&j.issuer) => add(
                format!("auth.jwt.{i}.issuer"),
                format!(
                    "OIDC discovery of issuer {:?} runs over plain HTTP: whoever is on the path can substitute their keys",
                    j.issuer
                ),
                "use the issuer's https:// URL",
            ),
            _ => {}
        }
    }
    if let Some(t) = &c.auth.introspection {
        if plain(&t.url) {
            add(
                "auth.introspection.url".into(),
                "token introspection runs over plain HTTP: the tokens and Rampart's client secret are readable, and answers can be forged".into(),
                "use the endpoint's https:// URL",
            );
        }
    }
    if let Some(l) = &c.auth.ldap {
        if l.url.trim().to_ascii_lowercase().starts_with("ldap://") && !l.starttls {
            add(
                "auth.ldap.url".into(),
                "LDAP binds go over plain LDAP: users' passwords cross the network in clear text"
                    .into(),
                "use ldaps:// or set starttls: true",
            );
        }
    }
    if let Some(q) = &c.auth.api_key.query {
        out.add(
            "api-key-in-query",
            Severity::Low,
            "auth.api_key.query",
            BROKEN_AUTHENTICATION,
            format!(
                "API keys are accepted in the query parameter {q:?}: URLs end up in logs, histories and Referer headers"
            ),
            "remove auth.api_key.query and send keys in the header",
        );
    }
}

fn limits(c: &Config, out: &mut Out) {
    let l = &c.limits;
    if l.max_request_body.0 > 64 << 20 {
        out.add(
            "request-size-limit-high",
            Severity::Medium,
            "limits.max_request_body",
            RESOURCE_CONSUMPTION,
            format!(
                "requests may carry bodies of up to {} MiB",
                l.max_request_body.0 >> 20
            ),
            "lower limits.max_request_body to what the APIs take (default 1MiB)",
        );
    }
    if l.max_header_bytes.0 > 64 << 10 {
        out.add(
            "request-size-limit-high",
            Severity::Low,
            "limits.max_header_bytes",
            RESOURCE_CONSUMPTION,
            format!(
                "request headers may take up to {} KiB",
                l.max_header_bytes.0 >> 10
            ),
            "lower limits.max_header_bytes (default 16KiB)",
        );
    }
    if l.request_header_timeout.0 > Duration::from_secs(60) {
        out.add(
            "slow-client-timeouts",
            Severity::Low,
            "limits.request_header_timeout",
            RESOURCE_CONSUMPTION,
            format!(
                "a client may take {} s to send its headers: slow clients can hold many connections open",
                l.request_header_timeout.0.as_secs()
            ),
            "lower limits.request_header_timeout (default 10s)",
        );
    }
    if l.request_body_timeout.0 > Duration::from_secs(300) {
        out.add(
            "slow-client-timeouts",
            Severity::Low,
            "limits.request_body_timeout",
            RESOURCE_CONSUMPTION,
            format!(
                "a client may take {} s to send a body",
                l.request_body_timeout.0.as_secs()
            ),
            "lower limits.request_body_timeout (default 30s)",
        );
    }
}

/// Globally routed: not loopback, private, link-local, shared (CGNAT) or unspecified.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v) => {
            let [a, b, ..] = v.octets();
            let shared = a == 100 && (64..128).contains(&b);
            !(v.is_loopback()
                || v.is_private()
                || v.is_link_local()
                || v.is_unspecified()
                || shared)
        }
        IpAddr::V6(v) => {
            if let Some(v4) = v.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v.segments()[0];
            let unique_local = s & 0xfe00 == 0xfc00;
            let link_local = s & 0xffc0 == 0xfe80;
            !(v.is_loopback() || v.is_unspecified() || unique_local || link_local)
        }
    }
}

fn upstreams(c: &Config, out: &mut Out) {
    for (name, u) in &c.upstreams {
        let base = format!("upstreams.{name}");
        match &u.tls {
            Some(t) if !t.verify_hostname => {
                let (severity, whose) = match t.ca {
                    None => (Severity::High, "any publicly trusted CA"),
                    Some(_) => (Severity::Medium, "its ca"),
                };
                out.add(
                    "upstream-tls-no-hostname-check",
                    severity,
                    format!("{base}.tls.verify_hostname"),
                    UNSAFE_CONSUMPTION,
                    format!(
                        "upstream {name:?} accepts any certificate from {whose}, whatever name it is for"
                    ),
                    format!(
                        "remove verify_hostname: false and make sni ({:?}) the name in the upstream's certificate",
                        t.sni
                    ),
                );
            }
            Some(_) => {}
            None => {
                let public: Vec<&str> = u
                    .targets
                    .iter()
                    .filter(|t| t.parse::<SocketAddr>().is_ok_and(|a| is_public(a.ip())))
                    .map(String::as_str)
                    .collect();
                if !public.is_empty() {
                    out.add(
                        "upstream-plain-http",
                        Severity::Medium,
                        format!("{base}.targets"),
                        UNSAFE_CONSUMPTION,
                        format!(
                            "upstream {name:?} is reached over plain HTTP at public address {}",
                            public.join(", ")
                        ),
                        "add tls (sni: the upstream's name) to the upstream",
                    );
                }
            }
        }
    }
}

fn proxies_trusted_any(p: &str) -> bool {
    p.trim()
        .rsplit_once('/')
        .is_some_and(|(_, len)| len.trim() == "0")
}

fn trusted_proxies(c: &Config, out: &mut Out) {
    for (i, p) in c.server.trusted_proxies.iter().enumerate() {
        if proxies_trusted_any(p) {
            out.add(
                "trusted-proxies-any",
                Severity::High,
                format!("server.trusted_proxies.{i}"),
                MISCONFIGURATION,
                format!(
                    "{p} trusts every address as a proxy: any client can name its own address and slip past bans, network lists and per-IP limits"
                ),
                "list only the balancers' own addresses or networks",
            );
        }
    }
}

/// SIEM sinks over plain HTTP beyond this host: the credential goes with every batch.
fn events(c: &Config, out: &mut Out) {
    let clear = |url: &str| {
        let Some(rest) = url
            .trim()
            .to_ascii_lowercase()
            .strip_prefix("http://")
            .map(String::from)
        else {
            return false;
        };
        let host = rest.split(['/', '?']).next().unwrap_or("");
        let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
        let name = match host.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(""),
            None => host.split(':').next().unwrap_or(""),
        };
        !(name == "localhost" || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()))
    };
    let mut sinks = Vec::new();
    if let Some(s) = &c.events.splunk {
        sinks.push(("splunk", &s.url, "HEC token"));
    }
    if let Some(e) = &c.events.elastic {
        sinks.push(("elastic", &e.url, "credentials"));
    }
    for (name, url, what) in sinks {
        if clear(url) {
            out.add(
                "siem-sink-plain-http",
                Severity::High,
                format!("events.{name}.url"),
                MISCONFIGURATION,
                format!(
                    "the {name} sink sends its {what} and every security event over plain HTTP"
                ),
                "use the SIEM's https:// endpoint",
            );
        }
    }
}

/// The challenge without shared keys: fine for one node, surprising for a fleet.
fn bots(c: &Config, out: &mut Out) {
    if c.bots.challenge.secrets.is_empty() && c.routes.iter().any(|r| r.challenge) {
        out.add(
            "challenge-keys-per-process",
            Severity::Low,
            "bots.challenge.secrets",
            MISCONFIGURATION,
            "routes use the browser challenge without bots.challenge.secrets: each process signs passes with its own key, so they end with a restart and are refused by other nodes",
            "set bots.challenge.secrets (the same on every node) from the environment",
        );
    }
}
