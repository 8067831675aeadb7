//! Checks that need the whole config: references, formats, duplicates.

use crate::model::*;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;

pub fn validate(c: &Config) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut err = |p: String, m: String| out.push((p, m));

    if c.listeners.is_empty() {
        err(
            "listeners".into(),
            "at least one listener is required".into(),
        );
    }
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for (i, l) in c.listeners.iter().enumerate() {
        if l.name.trim().is_empty() {
            err(
                format!("listeners.{i}.name"),
                "listener name is empty".into(),
            );
        } else if !names.insert(&l.name) {
            err(
                format!("listeners.{i}.name"),
                format!("duplicate listener name {:?}", l.name),
            );
        }
        match l.address.parse::<SocketAddr>() {
            Ok(a) => {
                if !addrs.insert(a) {
                    err(
                        format!("listeners.{i}.address"),
                        format!("address {a} is used twice"),
                    );
                }
            }
            Err(_) => err(
                format!("listeners.{i}.address"),
                format!(
                    "{:?} is not an IP:port address (e.g. 127.0.0.1:8080 or [::]:443)",
                    l.address
                ),
            ),
        }
    }
    check_admin(&c.admin, &mut err);
    let first_tls_port = c
        .listeners
        .iter()
        .find(|l| l.tls.is_some())
        .and_then(|l| l.address.parse::<SocketAddr>().ok())
        .map(|a| a.port());
    for (i, l) in c.listeners.iter().enumerate() {
        let base = format!("listeners.{i}");
        match &l.tls {
            Some(tls) => {
                if l.redirect_https {
                    err(
                        format!("{base}.redirect_https"),
                        "a TLS listener cannot redirect to HTTPS".into(),
                    );
                }
                if tls.certificates.is_empty() && tls.acme.is_none() {
                    err(
                        format!("{base}.tls.certificates"),
                        "at least one certificate is required (or tls.acme)".into(),
                    );
                }
                if let Some(a) = &tls.acme {
                    let has_plain = c.listeners.iter().any(|l| l.tls.is_none());
                    check_acme(a, &format!("{base}.tls.acme"), has_plain, &mut err);
                }
                for (j, cf) in tls.certificates.iter().enumerate() {
                    if let Err(e) =
                        rampart_tls::load_certified_key(Path::new(&cf.cert), Path::new(&cf.key))
                    {
                        err(format!("{base}.tls.certificates.{j}"), e.to_string());
                    }
                }
                if let Some(ca) = &tls.client_auth {
                    if let Err(e) = rampart_tls::client_verifier(
                        Path::new(&ca.ca),
                        ca.crl.as_deref().map(Path::new),
                        ca.mode == ClientAuthMode::Optional,
                    ) {
                        err(format!("{base}.tls.client_auth"), e.to_string());
                    }
                }
            }
            None => {
                if l.hsts.is_some() {
                    err(
                        format!("{base}.hsts"),
                        "hsts applies only to TLS listeners".into(),
                    );
                }
                if l.redirect_https && l.https_port.is_none() && first_tls_port.is_none() {
                    err(
                        format!("{base}.redirect_https"),
                        "no TLS listener to redirect to: add one or set https_port".into(),
                    );
                }
            }
        }
    }
    match c.admin.address.parse::<SocketAddr>() {
        Ok(a) if addrs.contains(&a) => err(
            "admin.address".into(),
            format!("admin address {a} is also a listener address"),
        ),
        Ok(_) => {}
        Err(_) => err(
            "admin.address".into(),
            format!("{:?} is not an IP:port address", c.admin.address),
        ),
    }

    for (name, u) in &c.upstreams {
        let base = format!("upstreams.{name}");
        if u.targets.is_empty() {
            err(
                format!("{base}.targets"),
                "an upstream needs at least one target".into(),
            );
        }
        if let Some(a) = &u.adaptive_concurrency {
            let path = format!("{base}.adaptive_concurrency");
            if a.min == 0 || a.max < a.min {
                err(path.clone(), "needs 1 <= min <= max".into());
            }
            if !(a.tolerance > 1.0 && a.tolerance <= 100.0) {
                err(
                    format!("{path}.tolerance"),
                    "must be above 1 (an answer as fast as the best is never late)".into(),
                );
            }
            if !(0.5..1.0).contains(&a.backoff) {
                err(
                    format!("{path}.backoff"),
                    "must be at least 0.5 and under 1".into(),
                );
            }
            if a.window.0.is_zero() {
                err(format!("{path}.window"), "must be above 0".into());
            }
        }
        for (i, t) in u.targets.iter().enumerate() {
            if t.parse::<SocketAddr>().is_err() {
                err(
                    format!("{base}.targets.{i}"),
                    format!(
                        "{t:?} is not an IP:port address (host names are not resolved at load)"
                    ),
                );
            }
        }
        match (&u.balance, &u.hash_key) {
            (Balance::RoundRobin, Some(_)) => err(
                format!("{base}.hash_key"),
                "hash_key only applies to balance: consistent_hash".into(),
            ),
            (Balance::ConsistentHash, Some(k)) if k != "client_ip" => {
                match k.strip_prefix("header:") {
                    Some(h) if is_token(h) => {}
                    _ => err(
                        format!("{base}.hash_key"),
                        format!("hash_key {k:?} must be client_ip or header:NAME"),
                    ),
                }
            }
            _ => {}
        }
        if let Some(hc) = &u.health_check {
            if !hc.path.starts_with('/') {
                err(
                    format!("{base}.health_check.path"),
                    "health check path must start with /".into(),
                );
            }
            if hc.unhealthy_after == 0 || hc.healthy_after == 0 {
                err(
                    format!("{base}.health_check"),
                    "unhealthy_after and healthy_after must be at least 1".into(),
                );
            }
            if hc.interval.0.is_zero() {
                err(
                    format!("{base}.health_check.interval"),
                    "interval must be above 0s".into(),
                );
            }
        }
        if u.timeouts.connect.0.is_zero() || u.timeouts.read.0.is_zero() {
            err(
                format!("{base}.timeouts"),
                "timeouts must be above 0s".into(),
            );
        }
        if let Some(t) = &u.tls {
            if t.sni.trim().is_empty() {
                err(
                    format!("{base}.tls.sni"),
                    "sni must name the upstream (it is verified against its certificate)".into(),
                );
            }
            if let Err(e) = rampart_tls::load_upstream_material(
                t.ca.as_deref().map(Path::new),
                t.client_cert.as_deref().map(Path::new),
                t.client_key.as_deref().map(Path::new),
            ) {
                err(format!("{base}.tls"), e.to_string());
            }
        }
        if u.passive.failures == 0 {
            err(
                format!("{base}.passive.failures"),
                "failures must be at least 1".into(),
            );
        }
    }

    let mut route_names = HashSet::new();
    for (i, r) in c.routes.iter().enumerate() {
        let base = format!("routes.{i}");
        if r.name.trim().is_empty() {
            err(format!("{base}.name"), "route name is empty".into());
        } else if !route_names.insert(&r.name) {
            err(
                format!("{base}.name"),
                format!("duplicate route name {:?}", r.name),
            );
        }
        let docs_only = r.docs.is_some() && r.upstream.is_empty();
        if !docs_only && !c.upstreams.contains_key(&r.upstream) {
            let known: Vec<&str> = c.upstreams.keys().map(|s| s.as_str()).collect();
            err(
                format!("{base}.upstream"),
                format!(
                    "unknown upstream {:?} (defined: {})",
                    r.upstream,
                    list(&known)
                ),
            );
        }
        for (key, op) in r.openapi.iter().flat_map(|o| &o.operations) {
            let at = format!("{base}.openapi.operations.{key}");
            if let Some(u) = &op.upstream {
                if !c.upstreams.contains_key(u) {
                    let known: Vec<&str> = c.upstreams.keys().map(|s| s.as_str()).collect();
                    err(
                        format!("{at}.upstream"),
                        format!("unknown upstream {u:?} (defined: {})", list(&known)),
                    );
                }
            }
            if op.authorize.is_some() && r.auth.is_none() {
                err(
                    format!("{at}.authorize"),
                    "authorize needs auth on the route (who would be authorized?)".into(),
                );
            }
        }
        if r.paths.is_empty() {
            err(
                format!("{base}.paths"),
                "a route needs at least one path".into(),
            );
        }
        if let Some(g) = &r.graphql {
            if g.max_body.0 == 0 || g.max_body.0 > 64 * 1024 {
                err(
                    format!("{base}.graphql.max_body"),
                    "must be between 1 byte and 64KiB".into(),
                );
            }
            if g.mode == ContractMode::Off {
                err(
                    format!("{base}.graphql.mode"),
                    "enforce or detect (leave graphql out to check nothing)".into(),
                );
            }
            for (j, h) in g.persisted_queries.iter().enumerate() {
                if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                    err(
                        format!("{base}.graphql.persisted_queries.{j}"),
                        "must be a SHA-256 in hex (64 characters)".into(),
                    );
                }
            }
            if g.max_depth == 0 || g.max_depth > 1000 {
                err(
                    format!("{base}.graphql.max_depth"),
                    "must be between 1 and 1000".into(),
                );
            }
        }
        if let Some(o) = &r.openapi {
            // Pingora replays at most its 64 KiB retry buffer to the upstream: a body read
            // whole for checking cannot be larger.
            if o.max_body.0 == 0 || o.max_body.0 > 64 * 1024 {
                err(
                    format!("{base}.openapi.max_body"),
                    "must be between 1 byte and 64KiB".into(),
                );
            }
            if o.base_path.as_ref().is_some_and(|b| !b.starts_with('/')) {
                err(
                    format!("{base}.openapi.base_path"),
                    "must start with /".into(),
                );
            }
        }
        for (j, p) in r.paths.iter().enumerate() {
            let raw = p.strip_prefix('=').unwrap_or(p);
            if !raw.starts_with('/') {
                err(
                    format!("{base}.paths.{j}"),
                    format!("path {p:?} must start with / (or =/ for an exact match)"),
                );
            } else if raw.split('/').any(|s| s == "." || s == "..") || raw.contains(['?', '#']) {
                err(
                    format!("{base}.paths.{j}"),
                    format!("path {p:?} must not contain dot segments, ? or #"),
                );
            }
            if r.strip_prefix && p.starts_with('=') {
                err(
                    format!("{base}.strip_prefix"),
                    "strip_prefix cannot be used with exact (=) paths".into(),
                );
            }
        }
        for (j, m) in r.methods.iter().enumerate() {
            if !is_token(m) || m.chars().any(|c| c.is_ascii_lowercase()) {
                err(
                    format!("{base}.methods.{j}"),
                    format!("method {m:?} must be an upper-case HTTP method such as GET"),
                );
            }
        }
        for (j, h) in r.hosts.iter().enumerate() {
            let name = h.strip_prefix("*.").unwrap_or(h);
            let ok = !name.is_empty()
                && name.split('.').all(|l| {
                    !l.is_empty() && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                });
            if !ok {
                err(
                    format!("{base}.hosts.{j}"),
                    format!("host {h:?} must be a DNS name, optionally starting with *. (no port)"),
                );
            }
        }
    }

    validate_waf(c, &mut err);
    validate_route_security(c, &mut err);
    validate_network(c, &mut err);
    if let Some(s) = &c.events.syslog {
        if s.address.parse::<SocketAddr>().is_err() {
            err(
                "events.syslog.address".into(),
                format!("{:?} is not an IP:port address", s.address),
            );
        }
    }
    if let Some(t) = &c.tracing {
        if !is_http_url(&t.otlp_endpoint) {
            err(
                "tracing.otlp_endpoint".into(),
                "must be an http(s) URL".into(),
            );
        }
        if !(0.0..=1.0).contains(&t.sample_ratio) {
            err(
                "tracing.sample_ratio".into(),
                "must be between 0 and 1".into(),
            );
        }
        if t.max_buffer == 0 || t.service_name.is_empty() {
            err(
                "tracing".into(),
                "max_buffer must be above 0 and service_name not empty".into(),
            );
        }
    }
    if let Some(w) = &c.events.webhook {
        if !(w.url.starts_with("http://") || w.url.starts_with("https://")) {
            err("events.webhook.url".into(), "must be an http(s) URL".into());
        }
        if w.batch_size == 0 || w.max_buffer == 0 {
            err(
                "events.webhook".into(),
                "batch_size and max_buffer must be above 0".into(),
            );
        }
    }
    validate_siem(c, &mut err);
    validate_bots(c, &mut err);
    validate_cors(c, &mut err);
    validate_grpc(c, &mut err);
    validate_cache(c, &mut err);
    let l = &c.limits;
    if l.response_write_timeout.0.is_zero() {
        err(
            "limits.response_write_timeout".into(),
            "must be above 0".into(),
        );
    }
    if l.max_request_body.0 == 0 {
        err("limits.max_request_body".into(), "must be above 0".into());
    }
    if l.max_header_bytes.0 < 1024 {
        err(
            "limits.max_header_bytes".into(),
            "must be at least 1KiB".into(),
        );
    }
    if l.request_header_timeout.0.is_zero() {
        err(
            "limits.request_header_timeout".into(),
            "must be above 0s".into(),
        );
    }
    if l.request_body_timeout.0.is_zero() {
        err(
            "limits.request_body_timeout".into(),
            "must be above 0s".into(),
        );
    }
    for (i, r) in c.routes.iter().enumerate() {
        for (j, p) in r.paths.iter().enumerate() {
            let path = p.strip_prefix('=').unwrap_or(p);
            if !path.starts_with('/') {
                continue; // reported by the shape checks
            }
            let policy = rampart_router::PathPolicy {
                keep_encoded_slash: true,
                keep_backslash: true,
                keep_semicolon: true,
                merge_slashes: false,
            };
            match rampart_router::canonical_path(path, &policy) {
                Ok(c) if c == path => {}
                Ok(c) => err(
                    format!("routes.{i}.paths.{j}"),
                    format!("write the path in its canonical form: {c}"),
                ),
                Err(e) => err(format!("routes.{i}.paths.{j}"), e.reason().into()),
            }
        }
    }
    for (i, h) in c.requests.allow_underscore_headers.iter().enumerate() {
        if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            err(
                format!("requests.allow_underscore_headers.{i}"),
                "not a header name".into(),
            );
        }
    }
    if c.server.threads == 0 {
        err("server.threads".into(), "must be at least 1".into());
    }
    if c.access_log.target.trim().is_empty() {
        err(
            "access_log.target".into(),
            "use stdout, off, or a file path".into(),
        );
    }
    out
}

/// Each route's `auth` and `authorize` against the sections they rely on.
fn validate_route_security(c: &Config, err: &mut impl FnMut(String, String)) {
    if let Some(u) = &c.auth.lockout.redis {
        if !u.starts_with("redis://") && !u.starts_with("rediss://") {
            err("auth.lockout.redis".into(), "must be a redis:// URL".into());
        }
    }
    let client_certs = c
        .listeners
        .iter()
        .any(|l| l.tls.as_ref().is_some_and(|t| t.client_auth.is_some()));
    for (i, r) in c.routes.iter().enumerate() {
        if let Some(a) = &r.auth {
            if a.methods.is_empty() {
                err(
                    format!("routes.{i}.auth.methods"),
                    "list at least one method".into(),
                );
            }
            for m in &a.methods {
                let missing = match m {
                    AuthMethod::Jwt => c.auth.jwt.is_empty().then_some("auth.jwt has no issuer"),
                    AuthMethod::Introspection => c
                        .auth
                        .introspection
                        .is_none()
                        .then_some("auth.introspection is not configured"),
                    AuthMethod::Mtls => {
                        (!client_certs).then_some("no listener verifies client certificates")
                    }
                    _ => None,
                };
                if let Some(msg) = missing {
                    err(
                        format!("routes.{i}.auth.methods"),
                        format!("{}: {msg}", m.as_str()),
                    );
                }
            }
            let token = |m: &AuthMethod| matches!(m, AuthMethod::Jwt | AuthMethod::Introspection);
            if a.mfa.is_some() && !a.methods.iter().any(token) {
                err(
                    format!("routes.{i}.auth.mfa"),
                    "mfa needs a token method (jwt or introspection)".into(),
                );
            }
        }
        // The route's policy and its operations' are checked alike.
        let mut authorizes: Vec<(String, &Authorize)> = Vec::new();
        if let Some(a) = &r.authorize {
            authorizes.push((format!("routes.{i}.authorize"), a));
        }
        for (k, op) in r.openapi.iter().flat_map(|o| &o.operations) {
            if let Some(a) = &op.authorize {
                authorizes.push((format!("routes.{i}.openapi.operations.{k}.authorize"), a));
            }
        }
        for (base, a) in authorizes {
            check_authorize(c, r, &base, a, err);
        }
    }
}

fn check_authorize(
    c: &Config,
    r: &Route,
    base: &str,
    a: &Authorize,
    err: &mut impl FnMut(String, String),
) {
    {
        let base = base.to_string();
        if a.cedar && c.cedar.is_none() {
            err(
                format!("{base}.cedar"),
                "no top-level cedar policies are configured".into(),
            );
        }
        if r.auth.is_none() {
            err(
                base.clone(),
                "authorize needs auth on the same route (who would be authorized?)".into(),
            );
        }
        let mut conds: Vec<(String, &ClaimCondition)> = a
            .claims
            .iter()
            .enumerate()
            .map(|(j, c)| (format!("{base}.claims.{j}"), c))
            .collect();
        for (j, o) in a.operations.iter().enumerate() {
            if !o.path.starts_with('/') {
                err(
                    format!("{base}.operations.{j}.path"),
                    "must start with /".into(),
                );
            }
            conds.extend(
                o.claims
                    .iter()
                    .enumerate()
                    .map(|(k, c)| (format!("{base}.operations.{j}.claims.{k}"), c)),
            );
        }
        for (path, cc) in conds {
            let tests = cc.equals.is_some() as u8
                + !cc.one_of.is_empty() as u8
                + cc.glob.is_some() as u8
                + cc.present.is_some() as u8;
            if tests != 1 {
                err(
                    path,
                    "give exactly one of equals, one_of, glob, present".into(),
                );
            }
        }
    }
}

/// Trusted proxies and list entries are networks; policies name lists that exist. List
/// files are read when the gateway builds the config (their errors name file and line).
fn validate_network(c: &Config, err: &mut impl FnMut(String, String)) {
    let n = &c.network;
    for (i, l) in c.listeners.iter().enumerate() {
        if l.proxy_protocol && c.server.trusted_proxies.is_empty() {
            err(
                format!("listeners.{i}.proxy_protocol"),
                "needs server.trusted_proxies: the balancers allowed to name the client".into(),
            );
        }
    }
    for (i, p) in c.bans.never.iter().enumerate() {
        if let Err(e) = rampart_net::parse_net(p) {
            err(format!("bans.never.{i}"), e.to_string());
        }
    }
    if c.bans.backend == BanBackend::Redis && c.redis.is_none() {
        err(
            "bans.backend".into(),
            "redis needs a top-level redis: URL".into(),
        );
    }
    let mut names = HashSet::new();
    for (i, r) in c.responses.iter().enumerate() {
        let base = format!("responses.{i}");
        if r.name.trim().is_empty() || !names.insert(r.name.as_str()) {
            err(
                format!("{base}.name"),
                format!("playbook name {:?} is empty or used twice", r.name),
            );
        }
        if r.on.is_empty() {
            err(format!("{base}.on"), "list at least one event kind".into());
        }
        if r.count == 0 {
            err(format!("{base}.count"), "must be at least 1".into());
        }
        for (path, d) in [("within", r.within), ("ban", r.ban)] {
            if d.0.is_zero() {
                err(format!("{base}.{path}"), "must be longer than 0s".into());
            }
        }
    }
    for (i, p) in c.server.trusted_proxies.iter().enumerate() {
        if let Err(e) = rampart_net::parse_net(p) {
            err(format!("server.trusted_proxies.{i}"), e.to_string());
        }
    }
    for (name, l) in &n.lists {
        for (i, p) in l.cidrs.iter().enumerate() {
            if let Err(e) = rampart_net::parse_net(p) {
                err(format!("network.lists.{name}.cidrs.{i}"), e.to_string());
            }
        }
        if l.cidrs.is_empty() && l.files.is_empty() && l.countries.is_empty() && l.asns.is_empty() {
            err(
                format!("network.lists.{name}"),
                "give cidrs, files, countries or asns".into(),
            );
        }
        for (i, code) in l.countries.iter().enumerate() {
            if !rampart_net::geo::is_country_code(code) {
                err(
                    format!("network.lists.{name}.countries.{i}"),
                    format!("{code:?} is not an ISO 3166-1 alpha-2 country code (like FR or US)"),
                );
            }
        }
        if !l.countries.is_empty() && n.geoip.country_db.is_none() {
            err(
                format!("network.lists.{name}.countries"),
                "needs network.geoip.country_db".into(),
            );
        }
        if !l.asns.is_empty() && n.geoip.asn_db.is_none() {
            err(
                format!("network.lists.{name}.asns"),
                "needs network.geoip.asn_db".into(),
            );
        }
    }
    let policies = c
        .listeners
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("listeners.{i}.network"), l.network.as_ref()))
        .chain(
            c.routes
                .iter()
                .enumerate()
                .map(|(i, r)| (format!("routes.{i}.network"), r.network.as_ref())),
        );
    if c.server.max_connections == Some(0) {
        err(
            "server.max_connections".into(),
            "must be above 0 (leave it out for no limit)".into(),
        );
    }
    for (i, l) in c.listeners.iter().enumerate() {
        if l.max_connections == Some(0) || l.max_connections_per_ip == Some(0) {
            err(
                format!("listeners.{i}"),
                "max_connections and max_connections_per_ip must be above 0 (leave them out for no limit)".into(),
            );
        }
    }
    let o = &c.server.overload;
    if o.max_in_flight == 0 {
        err(
            "server.overload.max_in_flight".into(),
            "must be above 0".into(),
        );
    }
    if o.max_queue_delay.is_some_and(|d| d.0.is_zero()) {
        err(
            "server.overload.max_queue_delay".into(),
            "must be above 0 (leave it out to shed by count alone)".into(),
        );
    }
    if o.shed_anonymous_at.is_some_and(|a| a > o.max_in_flight) {
        err(
            "server.overload.shed_anonymous_at".into(),
            "must not exceed max_in_flight".into(),
        );
    }
    for (j, name) in o.allowlist.iter().enumerate() {
        if !n.lists.contains_key(name) {
            err(
                format!("server.overload.allowlist.{j}"),
                format!(
                    "no network list named {name:?} (network.lists has: {})",
                    list(&n.lists.keys().map(String::as_str).collect::<Vec<_>>())
                ),
            );
        }
    }
    for (base, p) in policies {
        let Some(p) = p else { continue };
        for (key, names) in [("allow_only", &p.allow_only), ("deny", &p.deny)] {
            for (j, name) in names.iter().enumerate() {
                if !n.lists.contains_key(name) {
                    err(
                        format!("{base}.{key}.{j}"),
                        format!(
                            "no network list named {name:?} (network.lists has: {})",
                            list(&n.lists.keys().map(String::as_str).collect::<Vec<_>>())
                        ),
                    );
                }
            }
        }
    }
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// An HTTP token (RFC 9110): method names and header names.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn validate_waf(c: &Config, err: &mut impl FnMut(String, String)) {
    let paranoia = |p: u8| (1..=4).contains(&p);
    if let Some(w) = &c.waf {
        if w.crs.is_none()
            && w.rules.is_empty()
            && w.custom_rules.as_deref().unwrap_or("").trim().is_empty()
        {
            err(
                "waf.rules".into(),
                "the WAF needs the CRS (crs:), rule files (rules:) or inline rules (custom_rules:)"
                    .into(),
            );
        }
        if let Some(crs) = &w.crs {
            match (&crs.version, &crs.dir) {
                (Some(_), Some(_)) | (None, None) => err(
                    "waf.crs".into(),
                    "give either version (installed by `rampart crs install`) or dir".into(),
                ),
                (Some(v), None) if rampart_crs::check_version(v).is_err() => err(
                    "waf.crs.version".into(),
                    format!("{v:?} is not a CRS version (three numbers, e.g. 4.29.0)"),
                ),
                (Some(_), None) if crs.setup.is_some() => err(
                    "waf.crs.setup".into(),
                    "an installed version brings its own setup file; use dir with setup".into(),
                ),
                _ => {}
            }
        }
        if !paranoia(w.paranoia) {
            err("waf.paranoia".into(), "must be 1, 2, 3 or 4".into());
        }
        if w.request_body_limit.0 == 0 || w.request_body_limit.0 > WAF_MAX_BODY_LIMIT {
            err(
                "waf.request_body_limit".into(),
                format!(
                    "must be between 1 byte and 64KiB: the body is held back until inspected, \
                     and the proxy can forward at most {WAF_MAX_BODY_LIMIT} pre-read bytes"
                ),
            );
        }
        if !(200..=599).contains(&w.status) {
            err(
                "waf.status".into(),
                "must be an HTTP status (200-599)".into(),
            );
        }
        if w.inspect_response_body && w.response_mime_types.is_empty() {
            err(
                "waf.response_mime_types".into(),
                "inspect_response_body needs at least one type".into(),
            );
        }
    }
    for (i, r) in c.routes.iter().enumerate() {
        let Some(rw) = &r.waf else { continue };
        if c.waf.is_none() {
            err(
                format!("routes.{i}.waf"),
                "a route's waf settings need a top-level waf: block with the rules".into(),
            );
        }
        if rw.paranoia.is_some_and(|p| !paranoia(p)) {
            err(
                format!("routes.{i}.waf.paranoia"),
                "must be 1, 2, 3 or 4".into(),
            );
        }
        for (j, e) in rw.exclusions.iter().enumerate() {
            if let Err(m) = e.parse() {
                err(format!("routes.{i}.waf.exclusions.{j}"), m.to_string());
            }
        }
    }
}

fn check_admin(a: &Admin, err: &mut impl FnMut(String, String)) {
    match a.address.parse::<SocketAddr>() {
        Ok(addr) => {
            // An unauthenticated admin listener on the network is an open door to the
            // config and the ban list: refuse rather than warn.
            if !addr.ip().is_loopback() && a.tokens.is_empty() && a.clients.is_empty() {
                err(
                    "admin.address".into(),
                    format!(
                        "{addr} is not a loopback address and neither admin.tokens nor \
                         admin.clients is set: add tokens (rampart keygen) or client \
                         certificates, or bind the admin listener to 127.0.0.1"
                    ),
                );
            }
        }
        Err(_) => err(
            "admin.address".into(),
            format!(
                "{:?} is not an IP:port address (e.g. 127.0.0.1:9901)",
                a.address
            ),
        ),
    }
    let mut names = HashSet::new();
    for (i, t) in a.tokens.iter().enumerate() {
        let base = format!("admin.tokens.{i}");
        if t.name.trim().is_empty() {
            err(format!("{base}.name"), "token name is empty".into());
        } else if !names.insert(t.name.as_str()) {
            err(
                format!("{base}.name"),
                format!("duplicate token name {:?}", t.name),
            );
        }
        if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            err(
                format!("{base}.sha256"),
                "must be 64 hex characters (the SHA-256 that `rampart keygen` prints)".into(),
            );
        }
        if let Some(e) = &t.expires {
            if humantime::parse_rfc3339_weak(e).is_err() {
                err(
                    format!("{base}.expires"),
                    format!("{e:?} is not an RFC 3339 time like 2027-01-31T00:00:00Z"),
                );
            }
        }
    }
    let verifies = a.tls.as_ref().is_some_and(|t| t.client_auth.is_some());
    for (i, c) in a.clients.iter().enumerate() {
        let base = format!("admin.clients.{i}");
        if !verifies {
            err(
                base.clone(),
                "client certificates need admin.tls with client_auth".into(),
            );
        }
        if c.name.trim().is_empty() || !names.insert(c.name.as_str()) {
            err(
                format!("{base}.name"),
                format!("client name {:?} is empty or already used", c.name),
            );
        }
        if c.subject_cn.is_none() && c.san.is_none() && c.fingerprint_sha256.is_none() {
            err(base, "give subject_cn, san or fingerprint_sha256".into());
        }
    }
    if let Some(t) = &a.tls {
        if t.acme.is_some() {
            err(
                "admin.tls.acme".into(),
                "the admin listener takes certificate files only (it should not face the CA)"
                    .into(),
            );
        }
        if t.certificates.is_empty() {
            err(
                "admin.tls.certificates".into(),
                "at least one certificate is required".into(),
            );
        }
        for (j, cf) in t.certificates.iter().enumerate() {
            if let Err(e) = rampart_tls::load_certified_key(Path::new(&cf.cert), Path::new(&cf.key))
            {
                err(format!("admin.tls.certificates.{j}"), e.to_string());
            }
        }
    }
    if a.lockout.max_failures == 0 {
        err(
            "admin.lockout.max_failures".into(),
            "must be at least 1".into(),
        );
    }
    if a.history == 0 || a.history > 1000 {
        err("admin.history".into(), "must be between 1 and 1000".into());
    }
    if a.max_body.0 < 1024 || a.max_body.0 > 256 * 1024 * 1024 {
        err(
            "admin.max_body".into(),
            "must be between 1KiB and 256MiB".into(),
        );
    }
}

/// An `http(s)://` URL with a host and no space or control byte.
fn is_http_url(u: &str) -> bool {
    u.strip_prefix("http://")
        .or_else(|| u.strip_prefix("https://"))
        .is_some_and(|r| {
            !r.is_empty() && !r.starts_with('/') && !r.bytes().any(|b| b <= b' ' || b == 0x7f)
        })
}

/// The SIEM sinks: URLs, credentials, and one buffer directory each.
fn validate_siem(c: &Config, err: &mut impl FnMut(String, String)) {
    let ev = &c.events;
    let http = is_http_url;
    let mut sinks: Vec<(&str, &crate::BufferConfig, usize)> = Vec::new();
    if let Some(s) = &ev.splunk {
        if !http(&s.url) {
            err("events.splunk.url".into(), "must be an http(s) URL".into());
        }
        if s.token.trim().is_empty() {
            err("events.splunk.token".into(), "must not be empty".into());
        }
        sinks.push(("splunk", &s.buffer, s.batch_size));
    }
    if let Some(e) = &ev.elastic {
        if !http(&e.url) {
            err("events.elastic.url".into(), "must be an http(s) URL".into());
        }
        let index_ok = !e.index.is_empty()
            && !e.index.starts_with(['_', '-', '+'])
            && e.index
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
        if !index_ok {
            err(
                "events.elastic.index".into(),
                "must be a lowercase index name (letters, digits, - _ .; not starting with _ - +)"
                    .into(),
            );
        }
        if e.api_key.is_some() && (e.username.is_some() || e.password.is_some()) {
            err(
                "events.elastic".into(),
                "give api_key or username and password, not both".into(),
            );
        }
        if e.username.is_some() != e.password.is_some() {
            err(
                "events.elastic".into(),
                "username and password go together".into(),
            );
        }
        sinks.push(("elastic", &e.buffer, e.batch_size));
    }
    if let Some(n) = &ev.nats {
        let rest = n
            .url
            .strip_prefix("nats://")
            .or_else(|| n.url.strip_prefix("tls://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.bytes().any(|b| b <= b' ' || b == 0x7f)) {
            err(
                "events.nats.url".into(),
                "must be a nats:// or tls:// URL".into(),
            );
        }
        let token_ok = |t: &str| {
            !t.is_empty()
                && t.split('.').all(|p| {
                    !p.is_empty()
                        && p.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                })
        };
        if !token_ok(&n.subject) {
            err(
                "events.nats.subject".into(),
                "must be a subject without wildcards (tokens of letters, digits, _ and - joined by .)"
                    .into(),
            );
        }
        if let Some(st) = &n.stream {
            if st.is_empty() || st.bytes().any(|b| b <= b' ' || b"./*>\\".contains(&b)) {
                err(
                    "events.nats.stream".into(),
                    "must be a stream name without spaces, . / * > or \\".into(),
                );
            }
        }
        sinks.push(("nats", &n.buffer, n.batch_size));
    }
    for (i, (name, b, batch)) in sinks.iter().enumerate() {
        if b.dir.trim().is_empty() {
            err(
                format!("events.{name}.buffer.dir"),
                "must not be empty".into(),
            );
        }
        if b.max_size.0 < 1 << 20 {
            err(
                format!("events.{name}.buffer.max_size"),
                "must be at least 1MiB".into(),
            );
        }
        if !(1..=10_000).contains(batch) {
            err(
                format!("events.{name}.batch_size"),
                "must be between 1 and 10000".into(),
            );
        }
        let same = |a: &str, b: &str| {
            std::path::Path::new(a.trim_end_matches('/'))
                == std::path::Path::new(b.trim_end_matches('/'))
        };
        if let Some((other, _, _)) = sinks[..i].iter().find(|(_, o, _)| same(&o.dir, &b.dir)) {
            err(
                format!("events.{name}.buffer.dir"),
                format!("is also events.{other}.buffer.dir: each sink needs its own"),
            );
        }
    }
}

/// gRPC routes: HTTP/2 end to end, and nothing that reads bodies as HTTP APIs do.
fn validate_grpc(c: &Config, err: &mut impl FnMut(String, String)) {
    for (i, r) in c.routes.iter().enumerate() {
        if !r.grpc {
            continue;
        }
        // The route's upstream, and any a rule may choose instead.
        let chosen = std::iter::once((format!("routes.{i}.grpc"), &r.upstream)).chain(
            r.rules.iter().enumerate().filter_map(|(j, rule)| {
                let u = rule.then.upstream.as_ref()?;
                Some((format!("routes.{i}.rules.{j}.then.upstream"), u))
            }),
        );
        for (place, name) in chosen {
            if let Some(u) = c.upstreams.get(name) {
                if u.protocol != UpstreamProtocol::Http2 {
                    err(
                        place,
                        format!(
                            "gRPC needs HTTP/2 to the upstream: set upstreams.{name}.protocol: http2"
                        ),
                    );
                }
            }
        }
        for (set, what) in [
            (r.openapi.is_some(), "openapi"),
            (r.graphql.is_some(), "graphql"),
            (r.docs.is_some(), "docs"),
            (r.websocket, "websocket"),
        ] {
            if set {
                err(
                    format!("routes.{i}.{what}"),
                    format!("a gRPC route cannot have {what}"),
                );
            }
        }
    }
}

/// The response cache: keys and methods it understands, bodies the store can hold.
fn validate_cache(c: &Config, err: &mut impl FnMut(String, String)) {
    let store = &c.cache;
    if store.max_size.0 < 1 << 20 {
        err(
            "cache.max_size".into(),
            "at least 1MiB: the store holds whole responses".into(),
        );
    }
    if store.lock_timeout.0.is_zero() || store.lock_timeout.0 > std::time::Duration::from_secs(60) {
        err(
            "cache.lock_timeout".into(),
            "between 1ms and 60s: requests wait this long for an entry being fetched".into(),
        );
    }
    for (i, r) in c.routes.iter().enumerate() {
        let Some(cache) = &r.cache else { continue };
        let at = |f: &str| format!("routes.{i}.cache.{f}");
        for (j, k) in cache.key.iter().enumerate() {
            let ok = match k.strip_prefix("header:") {
                Some(h) => is_token(h),
                None => matches!(k.as_str(), "host" | "path" | "query"),
            };
            if !ok {
                err(
                    at(&format!("key.{j}")),
                    format!("unknown key part {k:?}: expected host, path, query or header:<name>"),
                );
            }
        }
        if !cache.key.iter().any(|k| k == "path") {
            err(
                at("key"),
                "must include path: entries for different resources would be mixed".into(),
            );
        }
        let several_hosts = r.hosts.len() > 1 || r.hosts.iter().any(|h| h.contains('*'));
        if several_hosts && !cache.key.iter().any(|k| k == "host") {
            err(
                at("key"),
                "the route serves several hosts: the key must include host, or one host's answers would be served for another's".into(),
            );
        }
        if cache.methods.is_empty() {
            err(at("methods"), "at least one of GET, HEAD".into());
        }
        for (j, m) in cache.methods.iter().enumerate() {
            if m != "GET" && m != "HEAD" {
                err(
                    at(&format!("methods.{j}")),
                    format!("{m:?} is not cached: only GET and HEAD answers are"),
                );
            }
        }
        for (j, h) in cache.vary_on.iter().enumerate() {
            if !is_token(h) {
                err(
                    at(&format!("vary_on.{j}")),
                    format!("{h:?} is not a header name"),
                );
            }
        }
        if cache.vary_on.len() > 8 {
            err(at("vary_on"), "at most 8 headers".into());
        }
        if cache.max_body.0 == 0 || cache.max_body.0 > store.max_size.0 / 4 {
            err(
                at("max_body"),
                format!(
                    "between 1 byte and a quarter of cache.max_size ({}): one body must not empty the store",
                    crate::ByteSize(store.max_size.0 / 4)
                ),
            );
        }
        let year = std::time::Duration::from_secs(365 * 24 * 3600);
        if cache.ttl.0 < std::time::Duration::from_secs(1) || cache.ttl.0 > year {
            err(at("ttl"), "between 1s and 365d".into());
        }
        for (set, what) in [
            (r.websocket, "websocket"),
            (r.grpc, "grpc"),
            (r.docs.is_some(), "docs"),
        ] {
            if set {
                err(
                    format!("routes.{i}.cache"),
                    format!("a route with {what} cannot be cached"),
                );
            }
        }
    }
}

/// Each route's CORS policy: compiled here once so that every mistake has its place.
fn validate_cors(c: &Config, err: &mut impl FnMut(String, String)) {
    for (i, r) in c.routes.iter().enumerate() {
        let Some(cors) = &r.cors else { continue };
        if let Err(es) = rampart_cors::Policy::compile(&cors.settings()) {
            for e in es {
                let place = match e.index {
                    Some(j) => format!("routes.{i}.cors.{}.{j}", e.field),
                    None => format!("routes.{i}.cors.{}", e.field),
                };
                err(place, e.message);
            }
        }
        if cors.max_age.0 > rampart_cors::MAX_AGE_LIMIT {
            err(
                format!("routes.{i}.cors.max_age"),
                "at most 24h: browsers do not keep a preflight's answer longer".into(),
            );
        }
    }
}

/// The browser challenge: a difficulty a browser solves in seconds, keys long enough.
fn validate_bots(c: &Config, err: &mut impl FnMut(String, String)) {
    let ch = &c.bots.challenge;
    if !(4..=24).contains(&ch.difficulty) {
        err(
            "bots.challenge.difficulty".into(),
            "must be between 4 and 24 (leading zero bits)".into(),
        );
    }
    for (i, s) in ch.secrets.iter().enumerate() {
        if s.len() < 32 {
            err(
                format!("bots.challenge.secrets.{i}"),
                "must be at least 32 bytes".into(),
            );
        }
    }
    if ch.ttl.0.is_zero() || ch.max_solve_time.0.is_zero() {
        err(
            "bots.challenge".into(),
            "ttl and max_solve_time must be above 0".into(),
        );
    }
}

/// `tls.acme`: what can be told without the network.
fn check_acme(a: &Acme, base: &str, has_plain: bool, err: &mut impl FnMut(String, String)) {
    match a.directory.split_once("://") {
        Some(("https", rest)) if !rest.is_empty() => {}
        _ => err(
            format!("{base}.directory"),
            format!(
                "{:?} is not an https:// URL (ACME servers speak HTTPS only)",
                a.directory
            ),
        ),
    }
    if a.domains.is_empty() {
        err(
            format!("{base}.domains"),
            "at least one domain is required".into(),
        );
    }
    let mut seen = HashSet::new();
    for (i, d) in a.domains.iter().enumerate() {
        let p = format!("{base}.domains.{i}");
        if d.starts_with("*.") {
            err(p, format!("{d:?}: wildcard certificates need the dns-01 challenge, which Rampart does not answer"));
        } else if !valid_dns_name(d) {
            err(p, format!("{d:?} is not a DNS name"));
        } else if !seen.insert(d.to_ascii_lowercase()) {
            err(p, format!("{d:?} is listed twice"));
        }
    }
    if a.storage.trim().is_empty() {
        err(
            format!("{base}.storage"),
            "a storage directory is required".into(),
        );
    }
    if a.challenge == AcmeChallenge::Http01 && !has_plain {
        err(
            format!("{base}.challenge"),
            "http-01 is answered on a plain HTTP listener (port 80 for the CA): add one, or use tls-alpn-01".into(),
        );
    }
    if let Some(ca) = &a.ca {
        if let Err(e) = rampart_tls::load_certs(Path::new(ca)) {
            err(format!("{base}.ca"), e.to_string());
        }
    }
    if let Some(e) = &a.eab {
        if e.kid.trim().is_empty() {
            err(format!("{base}.eab.kid"), "the key id is empty".into());
        }
        if crate::acme_eab_key(&e.hmac_key).is_none() {
            err(
                format!("{base}.eab.hmac_key"),
                "not a base64url key (as the CA gives it)".into(),
            );
        }
    }
    if let Some(r) = &a.redis {
        if !(r.starts_with("redis://") || r.starts_with("rediss://")) {
            err(
                format!("{base}.redis"),
                format!("{r:?} is not a redis:// URL"),
            );
        }
    }
    if a.retry_initial.0.is_zero() || a.retry_max.0 < a.retry_initial.0 {
        err(
            format!("{base}.retry_initial"),
            "must be above zero and at most retry_max".into(),
        );
    }
    if a.timeout.0 < std::time::Duration::from_secs(1) {
        err(format!("{base}.timeout"), "must be at least 1s".into());
    }
}

/// A host name as certificates carry it: labels of letters, digits and hyphens.
fn valid_dns_name(d: &str) -> bool {
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}
