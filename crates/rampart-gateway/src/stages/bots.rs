//! `bots` and `bot_policy`: every request's bot verdict (`rampart-bots`), then what its
//! route does with it. The verdict comes right after the network stages (signatures,
//! header habits, the TLS fingerprint, and for a crawler's name its addresses: its networks
//! or forward-confirmed reverse DNS); the policy needs the route, so it runs after routing:
//! allow, deny (403), the browser challenge (the `challenge` stage), or a rate limit of its
//! own.

use super::{reject, Decision, Req};
use crate::ctx::Ctx;
use crate::metrics::metrics;
use crate::snapshot::{Problem, Snapshot};
use rampart_bots::classify::{Assessment, Classifier, Request, Tls};
use rampart_bots::dns::{Outcome, Verifier};
use rampart_config::{BotAction, BotPolicy, BotVerdict, Config};
use std::net::SocketAddr;
use std::sync::Arc;

/// A request's verdict, for the policy, the access log and events.
pub(crate) struct BotFacts {
    pub(crate) verdict: BotVerdict,
    pub(crate) reason: &'static str,
    /// The verified crawler it named, if any.
    pub(crate) crawler: Option<String>,
}

/// The classifier and the DNS checker of one config.
pub(crate) struct BotsRt {
    classifier: Classifier,
    /// Kept across reloads while `bots.dns` is unchanged (its answers are cached).
    verifier: Option<Arc<Verifier>>,
    dns: rampart_config::BotDns,
    /// DNS checks run on the background runtime: a client that hangs up does not cancel
    /// an answer others will want.
    runtime: Option<tokio::runtime::Handle>,
}

/// What a route does with one verdict.
pub(crate) enum RouteAction {
    Allow,
    Deny,
    Challenge,
    /// Its own budget: named `label` in metrics.
    Limit(Arc<rampart_limits::LimitRt>, String),
}

/// A route's actions, by verdict (in [`BotVerdict::ALL`] order).
pub(crate) type RouteActions = [RouteAction; 5];

fn index(v: BotVerdict) -> usize {
    BotVerdict::ALL.iter().position(|x| *x == v).unwrap_or(0)
}

fn dns_servers(c: &rampart_config::BotDns) -> Result<Vec<SocketAddr>, Vec<Problem>> {
    let mut errs = Vec::new();
    let servers = c
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            s.parse::<SocketAddr>()
                .or_else(|_| {
                    s.parse::<std::net::IpAddr>()
                        .map(|ip| SocketAddr::new(ip, 53))
                })
                .map_err(|_| {
                    errs.push((
                        format!("bots.dns.servers.{i}"),
                        format!("{s:?} is not an address (ip or ip:port)"),
                    ))
                })
                .ok()
        })
        .collect();
    if errs.is_empty() {
        Ok(servers)
    } else {
        Err(errs)
    }
}

/// The classifier (shipped signatures plus `bots.signatures`, read now) and the checker.
pub(crate) fn build(
    config: &Config,
    previous: Option<&Snapshot>,
    runtime: Option<&tokio::runtime::Handle>,
) -> Result<BotsRt, Vec<Problem>> {
    let b = &config.bots;
    let mut errs = Vec::new();
    let extra = match &b.signatures {
        Some(path) => match std::fs::read_to_string(path) {
            Ok(t) => Some(t),
            Err(e) => {
                errs.push(("bots.signatures".into(), format!("{path}: {e}")));
                None
            }
        },
        None => None,
    };
    let d = &b.dns;
    if d.timeout.0.is_zero() || d.cache_ttl.0.is_zero() || d.cache_size == 0 || d.max_pending == 0 {
        errs.push((
            "bots.dns".into(),
            "timeout, cache_ttl, cache_size and max_pending must be above 0".into(),
        ));
    }
    for (i, f) in b.fingerprints.iter().enumerate() {
        if !looks_like_ja4(&f.ja4) {
            errs.push((
                format!("bots.fingerprints.{i}.ja4"),
                format!(
                    "{:?} is not a JA4 fingerprint (like t13d1516h2_8daaf6152771_02713d6af862)",
                    f.ja4
                ),
            ));
        }
    }
    for (i, c) in b.verify.iter().enumerate() {
        if c.user_agent.trim().len() < 3 {
            errs.push((
                format!("bots.verify.{i}.user_agent"),
                "must be at least 3 characters".into(),
            ));
        }
        if c.domains.is_empty() && c.networks.is_empty() {
            errs.push((
                format!("bots.verify.{i}"),
                "needs domains or networks to verify against".into(),
            ));
        }
    }
    let servers = dns_servers(d).map_err(|e| errs.extend(e)).ok();
    let classifier = match Classifier::new(b, extra.as_deref()) {
        Ok(c) => Some(c),
        Err(e) if e.line > 0 => {
            let path = b.signatures.as_deref().unwrap_or("");
            errs.push((
                "bots.signatures".into(),
                format!("{path}:{}: {}", e.line, e.message),
            ));
            None
        }
        Err(e) => {
            errs.push(("bots".into(), e.message));
            None
        }
    };
    let needs_dns = b.verify.iter().any(|c| !c.domains.is_empty());
    let verifier = match (needs_dns, servers) {
        (false, _) | (_, None) => None,
        (true, Some(servers)) => match previous.and_then(|p| p.bots.as_ref()) {
            Some(old) if old.dns == *d && old.verifier.is_some() => old.verifier.clone(),
            _ => rampart_bots::dns::Verifier::new(rampart_bots::dns::Settings {
                servers,
                timeout: d.timeout.0,
                cache_ttl: d.cache_ttl.0,
                cache_size: d.cache_size,
                max_pending: d.max_pending,
            })
            .map(Arc::new)
            .map_err(|e| errs.push(("bots.dns".into(), e)))
            .ok(),
        },
    };
    match classifier {
        Some(classifier) if errs.is_empty() => Ok(BotsRt {
            classifier,
            verifier,
            dns: d.clone(),
            runtime: runtime.cloned(),
        }),
        _ => Err(errs),
    }
}

/// `t13d1516h2_8daaf6152771_02713d6af862`: the shape, not the meaning.
fn looks_like_ja4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('_').collect();
    let hex12 = |p: &str| p.len() == 12 && p.bytes().all(|b| b.is_ascii_hexdigit());
    parts.len() == 3
        && parts[0].len() == 10
        && parts[0].is_ascii()
        && matches!(parts[0].as_bytes()[0], b't' | b'q' | b'd')
        && hex12(parts[1])
        && hex12(parts[2])
}

/// Every route's actions: its own `bots`, then `bots.policy`, then the default. A rate
/// limit from `bots.policy` is one budget for all the routes that inherit it.
pub(crate) fn route_actions(config: &Config) -> Result<Vec<RouteActions>, Vec<Problem>> {
    let mut errs = Vec::new();
    let mut compile = |path: String, name: String, l: &rampart_config::RateLimit| {
        match rampart_limits::LimitRt::compile(&name, l) {
            Ok(rt) if rt.uses_redis() && config.redis.is_none() => {
                errs.push((
                    format!("{path}.backend"),
                    "backend: redis needs a top-level redis: URL".into(),
                ));
                None
            }
            Ok(rt) => Some((Arc::new(rt), name)),
            Err(e) => {
                errs.push((path, e.to_string()));
                None
            }
        }
    };
    let global = &config.bots.policy;
    let shared: Vec<Option<(Arc<rampart_limits::LimitRt>, String)>> = BotVerdict::ALL
        .iter()
        .map(|v| match global.get(*v) {
            Some(BotAction::RateLimit(l)) => compile(
                format!("bots.policy.{}.rate_limit", v.name()),
                format!("bots-{}", v.name()),
                l,
            ),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for (ri, route) in config.routes.iter().enumerate() {
        let own = route.bots.as_ref();
        let actions: Vec<RouteAction> = BotVerdict::ALL
            .iter()
            .enumerate()
            .map(|(vi, v)| match BotPolicy::resolve(own, global, *v) {
                BotAction::Allow => RouteAction::Allow,
                BotAction::Deny => RouteAction::Deny,
                BotAction::Challenge => RouteAction::Challenge,
                BotAction::RateLimit(l) => {
                    let mine = own.and_then(|p| p.get(*v)).is_some();
                    let compiled = if mine {
                        compile(
                            format!("routes.{ri}.bots.{}.rate_limit", v.name()),
                            format!("{}-bots-{}", route.name, v.name()),
                            l,
                        )
                    } else {
                        shared[vi].clone()
                    };
                    match compiled {
                        Some((l, label)) => RouteAction::Limit(l, label),
                        // Reported above; the snapshot is refused.
                        None => RouteAction::Deny,
                    }
                }
            })
            .collect();
        if let Ok(a) = <[RouteAction; 5]>::try_from(actions) {
            out.push(a);
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// Whether any route can answer with the challenge (its endpoints must then exist).
pub(crate) fn uses_challenge(config: &Config) -> bool {
    config.bots.policy.uses_challenge()
        || config
            .routes
            .iter()
            .any(|r| r.challenge || r.bots.as_ref().is_some_and(|p| p.uses_challenge()))
}

/// On HTTP/1, whether `Host` is the first header line (browsers put it there).
fn host_first(raw: &[u8]) -> Option<bool> {
    let start = raw.iter().position(|b| *b == b'\n')? + 1;
    let line = &raw[start..];
    let colon = line.iter().position(|b| *b == b':')?;
    Some(line[..colon].eq_ignore_ascii_case(b"host"))
}

/// `bots`: the verdict.
pub(super) async fn classify(r: &Req<'_>, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let Some(rt) = snap.bots.as_ref() else {
        return Decision::Continue;
    };
    // Connection facts (header order, TLS) describe the client only when it is the peer.
    let direct = ctx.peer_ip.is_some_and(|p| !snap.client_ip.trusts(p));
    let h = &r.head.headers;
    let version = r.head.version;
    let tls = match (&ctx.hello, direct) {
        (Some(hello), true) => Some(Tls {
            ja4: hello.ja4.as_str(),
            offers_h2: hello.alpn.iter().any(|p| p == b"h2"),
        }),
        _ => None,
    };
    let request = Request {
        user_agent: h.get(http::header::USER_AGENT).map(|v| v.as_bytes()),
        accept: h.contains_key(http::header::ACCEPT),
        accept_language: h.contains_key(http::header::ACCEPT_LANGUAGE),
        accept_encoding: h.contains_key(http::header::ACCEPT_ENCODING),
        host_first: match (direct, version, r.raw) {
            (true, http::Version::HTTP_11, Some(raw)) => host_first(raw),
            _ => None,
        },
        http10: direct && version == http::Version::HTTP_10,
        tls,
    };
    let facts = match rt.classifier.assess(&request) {
        Assessment::Verdict(verdict, reason) => BotFacts {
            verdict,
            reason,
            crawler: None,
        },
        Assessment::Claims(i) => {
            let crawler = &rt.classifier.crawlers()[i];
            let (verdict, reason) = match ctx.client_ip {
                None => (BotVerdict::Unknown, "no client address"),
                Some(ip) if rt.classifier.in_networks(i, ip) => {
                    (BotVerdict::GoodBot, "crawler's network")
                }
                // Under load a DNS check costs more than the verdict is worth.
                Some(_) if super::overload::under_pressure(&snap.config.server.overload) => {
                    (BotVerdict::Unknown, "crawler not verified under load")
                }
                Some(ip) => match verify(rt, ip, i).await {
                    Outcome::Confirmed => (BotVerdict::GoodBot, "forward-confirmed reverse DNS"),
                    Outcome::Refuted(why) => (BotVerdict::BadBot, why),
                    Outcome::Failed(why) => (BotVerdict::Unknown, why),
                },
            };
            BotFacts {
                verdict,
                reason,
                crawler: Some(crawler.name.clone()),
            }
        }
    };
    metrics().bot_verdicts[index(facts.verdict)].inc();
    ctx.bot = Some(facts);
    ctx.pass = super::challenge::pass_valid(r, snap, ctx);
    Decision::Continue
}

async fn verify(rt: &BotsRt, ip: std::net::IpAddr, i: usize) -> Outcome {
    let Some(v) = rt.verifier.clone() else {
        return Outcome::Refuted("no domains to verify against");
    };
    let c = &rt.classifier.crawlers()[i];
    let (name, domains) = (c.name.clone(), c.domains.clone());
    match &rt.runtime {
        Some(bg) => bg
            .spawn(async move { v.verify(ip, &name, &domains).await })
            .await
            .unwrap_or(Outcome::Failed("DNS check stopped")),
        None => v.verify(ip, &name, &domains).await,
    }
}

/// `bot_policy`: the route's action for the verdict.
pub(super) async fn policy(r: &Req<'_>, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    let (Some(route), Some(verdict)) = (ctx.route.clone(), ctx.bot.as_ref().map(|b| b.verdict))
    else {
        return Decision::Continue;
    };
    match &route.bots[index(verdict)] {
        RouteAction::Allow => Decision::Continue,
        RouteAction::Deny => reject(403, "forbidden", denied(verdict)),
        RouteAction::Challenge => {
            ctx.bot_challenge = true;
            Decision::Continue
        }
        RouteAction::Limit(limit, label) => {
            super::rate_limit::check(r, snap, ctx, std::slice::from_ref(&**limit), label).await
        }
    }
}

fn denied(v: BotVerdict) -> &'static str {
    match v {
        BotVerdict::GoodBot => "bot policy denies good_bot",
        BotVerdict::BadBot => "bot policy denies bad_bot",
        BotVerdict::Automated => "bot policy denies automated",
        BotVerdict::Human => "bot policy denies human",
        BotVerdict::Unknown => "bot policy denies unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_order_and_fingerprint_shapes() {
        assert_eq!(
            host_first(b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n"),
            Some(true)
        );
        assert_eq!(host_first(b"GET / HTTP/1.1\r\nhOsT: a\r\n\r\n"), Some(true));
        assert_eq!(
            host_first(b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: a\r\n\r\n"),
            Some(false)
        );
        assert_eq!(
            host_first(b"GET / HTTP/1.1\r\nHost-X: a\r\n\r\n"),
            Some(false)
        );
        assert_eq!(host_first(b"GET / HTTP/1.1"), None);
        assert!(looks_like_ja4("t13d1516h2_8daaf6152771_02713d6af862"));
        for bad in [
            "",
            "t13d1516h2_8daaf6152771",
            "x13d1516h2_8daaf6152771_02713d6af862",
            "t13d1516h2_8daaf615277g_02713d6af862",
        ] {
            assert!(!looks_like_ja4(bad), "{bad}");
        }
    }
}
