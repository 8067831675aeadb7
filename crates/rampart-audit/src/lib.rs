//! `rampart audit`: the weaknesses of a configuration that loaded, each with a severity, its
//! place in the file, the OWASP API Security Top 10 (2023) item it maps to, and a fix.
//!
//! A config that loads is valid; this crate says where a valid config is still weak. It
//! reads only the typed [`Config`], so it reports only what the model can express, and it
//! judges effective values: a default that is safe is not flagged, a setting that turns it
//! off is.
//!
//! # The checks
//!
//! | id | severity | rule |
//! |---|---|---|
//! | `route-without-auth` | medium (low if the route admits only listed networks) | a route that proxies (has an `upstream`) with no `auth` and no `require_client_cert`. A route meant to be public says so with `auth.optional: true` and is not flagged; a docs-only route is not flagged |
//! | `route-without-authorization` | info | a route with mandatory `auth`, no `authorize`, and `default_authorization: allow`: any authenticated consumer may call it |
//! | `admin-plain-http` | high | the admin listener on a non-loopback address: it has no TLS, so admin tokens cross the network in clear text |
//! | `admin-metrics-public` | medium | `admin.metrics: public` on a non-loopback admin address |
//! | `admin-token-no-expiry` | low | an admin token without `expires` |
//! | `plain-http-no-redirect` | medium (low with `server.trusted_proxies`, where a balancer may terminate TLS) | a plain-HTTP listener on a non-loopback address without `redirect_https` |
//! | `basic-over-plain-http` | high (medium with trusted proxies) | a route accepting passwords (`basic`, `ldap`) while such a listener exists (routes are served on every listener) |
//! | `hsts-off` | low | a TLS listener without `hsts` |
//! | `hsts-short` | low | `hsts.max_age` under 180 days |
//! | `waf-off` | medium | no top-level `waf` while a route proxies, or a route with `waf.enabled: false` |
//! | `waf-detect-only` | medium | `waf.mode: detect`, or a route overriding to `detect` |
//! | `waf-partial-body` | low | `waf.request_body_limit_action: process_partial` (the rest of a body passes uninspected) |
//! | `auth-route-no-rate-limit` | medium | a route with `auth` and no effective rate limit (its own `rate_limit`, else the top-level one) |
//! | `route-no-rate-limit` | low | a proxying route without `auth` and no effective rate limit |
//! | `jwt-no-audience` | medium | a JWT issuer with no `audiences`: tokens minted for other services pass |
//! | `jwt-long-leeway` | low | a JWT issuer whose `leeway` exceeds 5 minutes (expired tokens stay valid that long); `exp` itself is always required by the verifier, so its absence cannot be configured |
//! | `jwt-weak-secret` | critical (under 16 bytes, or low variety), high (16 to 31 bytes) | an HMAC secret shorter than 32 bytes, with fewer than 8 distinct bytes, or made of one short pattern repeated; the value is never printed |
//! | `auth-backend-without-tls` | high | a JWKS URL, a discovery issuer, an introspection endpoint over `http://`, or an `ldap://` directory without `starttls` |
//! | `api-key-in-query` | low | `auth.api_key.query` set: keys in URLs end up in logs and histories |
//! | `request-size-limit-high` | medium (body over 64 MiB), low (headers over 64 KiB) | limits so high they are effectively off (a limit of 0 is refused when loading) |
//! | `slow-client-timeouts` | low | `limits.request_header_timeout` over 60 s or `request_body_timeout` over 5 min |
//! | `upstream-tls-no-hostname-check` | high (system roots), medium (own `ca`) | `verify_hostname: false`: any certificate of a trusted CA is accepted |
//! | `upstream-plain-http` | medium | an upstream without `tls` with a target on a public (globally routed) address |
//! | `trusted-proxies-any` | high | `server.trusted_proxies` with a `/0` network: every client may name its own address |
//! | `siem-sink-plain-http` | high | a Splunk or Elastic sink over `http://` to a host other than loopback: its token and the events travel in clear |
//! | `challenge-keys-per-process` | low | routes with `challenge: true` and no `bots.challenge.secrets`: passes end with the process and are not valid on other nodes |
//!
//! Not checkable, because the model cannot express them: TLS 1.2 cipher suites (listeners
//! use rustls' defaults, all with forward secrecy; there is no cipher setting), CORS (no
//! such section), JWT without `exp` (always required), request size limits turned off
//! (refused when loading), and an admin listener without tokens on a non-loopback address
//! (refused when loading).

use rampart_config::Config;
use serde::Serialize;
use std::cmp::Ordering;

mod checks;
mod secret;

/// How bad a finding is. Ordered from [`Severity::Info`] to [`Severity::Critical`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; not a weakness by itself. Does not change the exit code.
    Info,
    /// Hardening that is missing.
    Low,
    /// A weakness an attacker can use with some effort or luck.
    Medium,
    /// A weakness that exposes credentials or lets attacks through.
    High,
    /// Authentication can be bypassed outright.
    Critical,
}

impl Severity {
    /// Every severity, most severe first (the order of reports and summaries).
    pub const ALL: [Severity; 5] = [
        Severity::Critical,
        Severity::High,
        Severity::Medium,
        Severity::Low,
        Severity::Info,
    ];

    /// The lowercase name (`high`), as in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// 0 for info up to 4 for critical.
    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// The OWASP API Security Top 10 (2023) items findings map to.
pub mod owasp {
    /// API2:2023.
    pub const BROKEN_AUTHENTICATION: &str = "API2:2023 Broken Authentication";
    /// API4:2023.
    pub const RESOURCE_CONSUMPTION: &str = "API4:2023 Unrestricted Resource Consumption";
    /// API5:2023.
    pub const FUNCTION_LEVEL_AUTHORIZATION: &str = "API5:2023 Broken Function Level Authorization";
    /// API8:2023.
    pub const MISCONFIGURATION: &str = "API8:2023 Security Misconfiguration";
    /// API10:2023.
    pub const UNSAFE_CONSUMPTION: &str = "API10:2023 Unsafe Consumption of APIs";
}

/// Every finding id this crate reports.
pub const FINDING_IDS: &[&str] = &[
    "route-without-auth",
    "route-without-authorization",
    "admin-plain-http",
    "admin-metrics-public",
    "admin-token-no-expiry",
    "plain-http-no-redirect",
    "basic-over-plain-http",
    "hsts-off",
    "hsts-short",
    "waf-off",
    "waf-detect-only",
    "waf-partial-body",
    "auth-route-no-rate-limit",
    "route-no-rate-limit",
    "jwt-no-audience",
    "jwt-long-leeway",
    "jwt-weak-secret",
    "auth-backend-without-tls",
    "api-key-in-query",
    "request-size-limit-high",
    "slow-client-timeouts",
    "upstream-tls-no-hostname-check",
    "upstream-plain-http",
    "trusted-proxies-any",
    "siem-sink-plain-http",
    "challenge-keys-per-process",
];

/// One weakness of a configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// Stable identifier of the check, e.g. `route-without-auth` (see [`FINDING_IDS`]).
    pub id: &'static str,
    /// How bad it is.
    pub severity: Severity,
    /// Dotted config path of the setting to change, e.g. `routes.2.auth` (the convention of
    /// `rampart_config::ConfigError::path`); it may name a key the file leaves out.
    pub path: String,
    /// 1-based line of `path` (or of its nearest ancestor in the file); 0 until [`locate`].
    pub line: usize,
    /// 1-based column, like `line`.
    pub column: usize,
    /// The OWASP API Security Top 10 (2023) item, e.g. `API2:2023 Broken Authentication`.
    pub owasp: &'static str,
    /// What is weak, naming the route, listener or upstream concerned (never a secret).
    pub title: String,
    /// What to change.
    pub fix: String,
}

/// Audits `config`. Findings come sorted by severity (most severe first), then by path;
/// their line and column are 0 until [`locate`] fills them in.
pub fn audit(config: &Config) -> Vec<Finding> {
    let mut findings = checks::run(config);
    findings.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then_with(|| path_order(&a.path, &b.path))
            .then_with(|| a.id.cmp(b.id))
    });
    findings
}

/// Fills in line and column of each finding from the config text it was loaded from. Text
/// that is not YAML leaves them at 0.
pub fn locate(findings: &mut [Finding], text: &str) {
    let Some(positions) = rampart_config::Positions::new(text) else {
        return;
    };
    for f in findings {
        (f.line, f.column) = positions.of(&f.path);
    }
}

/// Compares dotted paths with numeric segments as numbers, so `routes.2` sorts before
/// `routes.10`.
fn path_order(a: &str, b: &str) -> Ordering {
    let mut sa = a.split('.');
    let mut sb = b.split('.');
    loop {
        match (sa.next(), sb.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => {
                let o = match (x.parse::<u64>(), y.parse::<u64>()) {
                    (Ok(n), Ok(m)) => n.cmp(&m),
                    _ => x.cmp(y),
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
        }
    }
}

/// How many findings of each severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Summary {
    /// Critical findings.
    pub critical: usize,
    /// High findings.
    pub high: usize,
    /// Medium findings.
    pub medium: usize,
    /// Low findings.
    pub low: usize,
    /// Informational findings.
    pub info: usize,
    /// All findings.
    pub total: usize,
    /// What [`exit_code`] returns for these findings.
    pub exit_code: u8,
}

impl Summary {
    /// Counts `findings`.
    pub fn of(findings: &[Finding]) -> Summary {
        let mut s = Summary {
            total: findings.len(),
            exit_code: exit_code(findings),
            ..Summary::default()
        };
        for f in findings {
            *s.count_mut(f.severity) += 1;
        }
        s
    }

    /// The count for one severity.
    pub fn count(&self, severity: Severity) -> usize {
        match severity {
            Severity::Critical => self.critical,
            Severity::High => self.high,
            Severity::Medium => self.medium,
            Severity::Low => self.low,
            Severity::Info => self.info,
        }
    }

    fn count_mut(&mut self, severity: Severity) -> &mut usize {
        match severity {
            Severity::Critical => &mut self.critical,
            Severity::High => &mut self.high,
            Severity::Medium => &mut self.medium,
            Severity::Low => &mut self.low,
            Severity::Info => &mut self.info,
        }
    }
}

/// The exit code of `rampart audit`, so CI can fail on a threshold:
///
/// | code | meaning |
/// |---|---|
/// | 0 | no finding, or only info findings |
/// | 11 | the most severe finding is low |
/// | 12 | medium |
/// | 13 | high |
/// | 14 | critical |
///
/// That is 10 plus [`Severity::rank`] of the most severe finding. Codes 1 (the config could
/// not be loaded) and 2 (command-line usage) keep their meaning; e.g. `[ $? -lt 13 ]` lets
/// CI pass with medium findings and fail from high up.
pub fn exit_code(findings: &[Finding]) -> u8 {
    match findings.iter().map(|f| f.severity).max() {
        None | Some(Severity::Info) => 0,
        Some(s) => 10 + s.rank(),
    }
}

/// The report as text: per finding, `file:line:col: SEVERITY id: title (OWASP item)` and an
/// indented `fix:` line; then a summary line.
pub fn render_text(findings: &[Finding], file: &str) -> String {
    let mut out = String::new();
    for f in findings {
        out.push_str(&format!(
            "{file}:{}:{}: {} {}: {} ({})\n    fix: {}\n",
            f.line,
            f.column,
            f.severity.as_str().to_uppercase(),
            f.id,
            f.title,
            f.owasp,
            f.fix
        ));
    }
    let s = Summary::of(findings);
    if s.total == 0 {
        out.push_str(&format!("{file}: no findings\n"));
    } else {
        let counts: Vec<String> = Severity::ALL
            .iter()
            .filter(|sev| s.count(**sev) > 0)
            .map(|sev| format!("{} {}", s.count(*sev), sev.as_str()))
            .collect();
        let noun = if s.total == 1 { "finding" } else { "findings" };
        out.push_str(&format!(
            "{file}: {} {noun} ({})\n",
            s.total,
            counts.join(", ")
        ));
    }
    out
}

/// The JSON report: `{"file": ..., "findings": [...], "summary": {...}}`.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    /// The config file audited.
    pub file: &'a str,
    /// The findings, most severe first.
    pub findings: &'a [Finding],
    /// Counts per severity and the exit code.
    pub summary: Summary,
}

/// The report as pretty-printed JSON (see [`Report`]).
pub fn render_json(findings: &[Finding], file: &str) -> String {
    let report = Report {
        file,
        findings,
        summary: Summary::of(findings),
    };
    // Plain data with string keys: serialization cannot fail.
    serde_json::to_string_pretty(&report).expect("a report serializes")
}

#[cfg(test)]
mod tests;
