//! A request's bot verdict from what it says about itself: its User-Agent against signature
//! lists, a browser's name against a browser's headers, its TLS fingerprint, and for
//! clients that name a verified crawler, the crawler's addresses (its networks here, its
//! reverse DNS in [`crate::dns`]).

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use rampart_config::{BotSettings, BotVerdict};
use rampart_net::IpSet;
use std::collections::HashMap;
use std::net::IpAddr;

/// The signatures shipped with Rampart.
pub const SHIPPED: &str = include_str!("../data/signatures.txt");

/// What a signature pattern stands for.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Bad,
    Automated,
    /// The name of `verify[i]`.
    Claims(usize),
}

/// A verified crawler: its name and where it may come from.
#[derive(Debug)]
pub struct Crawler {
    /// For logs.
    pub name: String,
    /// Lower case, without a trailing dot.
    pub domains: Vec<String>,
    /// Addresses believed without DNS.
    pub networks: IpSet,
}

/// An error in a signature file or a crawler's networks.
#[derive(Debug, Clone, PartialEq)]
pub struct SignatureError {
    /// 1-based line in the signature file (0: not from a file).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for SignatureError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(f, "line {}: {}", self.line, self.message)
        } else {
            f.write_str(&self.message)
        }
    }
}

/// Parses `verdict text` lines; `#` starts a comment line.
pub fn parse_signatures(text: &str) -> Result<Vec<(BotVerdict, String)>, SignatureError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |message: String| SignatureError {
            line: i + 1,
            message,
        };
        let (verdict, pattern) = line
            .split_once(char::is_whitespace)
            .ok_or_else(|| err("expected `verdict text`".into()))?;
        let verdict = match BotVerdict::parse(verdict) {
            Some(v @ (BotVerdict::BadBot | BotVerdict::Automated)) => v,
            Some(v) => {
                return Err(err(format!(
                    "a signature's verdict is bad_bot or automated, not {} (crawlers go under bots.verify)",
                    v.name()
                )))
            }
            None => {
                return Err(err(format!(
                    "unknown verdict {verdict:?} (bad_bot or automated)"
                )))
            }
        };
        let pattern = pattern.trim();
        if pattern.len() < 3 {
            return Err(err(format!(
                "signature {pattern:?} is shorter than 3 characters"
            )));
        }
        out.push((verdict, pattern.to_ascii_lowercase()));
    }
    Ok(out)
}

/// What a request shows of itself.
#[derive(Debug, Default)]
pub struct Request<'a> {
    /// The User-Agent's bytes (the first one).
    pub user_agent: Option<&'a [u8]>,
    /// `Accept` was sent.
    pub accept: bool,
    /// `Accept-Language` was sent.
    pub accept_language: bool,
    /// `Accept-Encoding` was sent.
    pub accept_encoding: bool,
    /// HTTP/1.1 straight from the client (not through a trusted proxy): whether `Host` was
    /// its first header. `None` when unknown (HTTP/2, or headers rewritten by a proxy).
    pub host_first: Option<bool>,
    /// HTTP/1.0 straight from the client.
    pub http10: bool,
    /// TLS straight from the client: its JA4 and whether it offered `h2`.
    pub tls: Option<Tls<'a>>,
}

/// The TLS facts of the client's connection.
#[derive(Debug, Clone, Copy)]
pub struct Tls<'a> {
    /// Its JA4 fingerprint.
    pub ja4: &'a str,
    /// It offered `h2` in ALPN (every browser does).
    pub offers_h2: bool,
}

/// The verdict, or a crawler's name that only its addresses can confirm.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Assessment {
    /// The verdict and why.
    Verdict(BotVerdict, &'static str),
    /// Claims to be `crawlers()[i]`: ask DNS ([`crate::dns::Verifier`]).
    Claims(usize),
}

/// Signatures, crawlers and fingerprints compiled once per config.
pub struct Classifier {
    matcher: AhoCorasick,
    kinds: Vec<Kind>,
    crawlers: Vec<Crawler>,
    fingerprints: HashMap<String, BotVerdict>,
    header_checks: bool,
}

/// A browser's name: `Mozilla/5.0` plus one of the engines' tokens.
fn names_a_browser(ua: &[u8]) -> bool {
    const ENGINES: [&[u8]; 5] = [
        b"gecko/",
        b"applewebkit/",
        b"chrome/",
        b"firefox/",
        b"safari/",
    ];
    ua.len() >= 8
        && ua[..8].eq_ignore_ascii_case(b"mozilla/")
        && ENGINES
            .iter()
            .any(|e| ua.windows(e.len()).any(|w| w.eq_ignore_ascii_case(e)))
}

impl Classifier {
    /// The shipped signatures, then `extra` (a `bots.signatures` file's text), the
    /// crawlers of `settings.verify` and its fingerprints.
    pub fn new(settings: &BotSettings, extra: Option<&str>) -> Result<Classifier, SignatureError> {
        let mut patterns: Vec<String> = Vec::new();
        let mut kinds = Vec::new();
        let shipped = parse_signatures(SHIPPED).map_err(|e| SignatureError {
            line: e.line,
            message: format!("shipped signatures: {}", e.message),
        })?;
        let extra = match extra {
            Some(t) => parse_signatures(t)?,
            None => Vec::new(),
        };
        for (v, p) in shipped.into_iter().chain(extra) {
            kinds.push(if v == BotVerdict::BadBot {
                Kind::Bad
            } else {
                Kind::Automated
            });
            patterns.push(p);
        }
        let mut crawlers = Vec::new();
        for (i, c) in settings.verify.iter().enumerate() {
            let networks = IpSet::parse(c.networks.iter().map(String::as_str)).map_err(|e| {
                SignatureError {
                    line: 0,
                    message: format!(
                        "bots.verify.{i}.networks: {}",
                        e.iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                }
            })?;
            kinds.push(Kind::Claims(i));
            patterns.push(c.user_agent.to_ascii_lowercase());
            crawlers.push(Crawler {
                name: c.name.clone(),
                domains: c
                    .domains
                    .iter()
                    .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
                    .collect(),
                networks,
            });
        }
        let matcher = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .map_err(|e| SignatureError {
                line: 0,
                message: format!("signatures: {e}"),
            })?;
        Ok(Classifier {
            matcher,
            kinds,
            crawlers,
            fingerprints: settings
                .fingerprints
                .iter()
                .map(|f| (f.ja4.clone(), f.verdict))
                .collect(),
            header_checks: settings.header_checks,
        })
    }

    /// The crawlers of `bots.verify`, in order.
    pub fn crawlers(&self) -> &[Crawler] {
        &self.crawlers
    }

    /// The verdict from the request alone, or the crawler it claims to be.
    pub fn assess(&self, r: &Request) -> Assessment {
        use BotVerdict::*;
        if let Some(v) = r.tls.and_then(|t| self.fingerprints.get(t.ja4)) {
            return Assessment::Verdict(*v, "listed TLS fingerprint");
        }
        let ua = match r.user_agent {
            Some(ua) if !ua.iter().all(u8::is_ascii_whitespace) => ua,
            _ => return Assessment::Verdict(Automated, "no User-Agent"),
        };
        // Strongest signature wins: bad, then a crawler's name, then a tool's.
        let (mut claims, mut automated) = (None, false);
        for m in self.matcher.find_overlapping_iter(ua) {
            match self.kinds[m.pattern().as_usize()] {
                Kind::Bad => return Assessment::Verdict(BadBot, "bad bot signature"),
                Kind::Claims(i) => claims = claims.or(Some(i)),
                Kind::Automated => automated = true,
            }
        }
        if let Some(i) = claims {
            return Assessment::Claims(i);
        }
        if automated {
            return Assessment::Verdict(Automated, "tool signature");
        }
        if !names_a_browser(ua) {
            return Assessment::Verdict(Unknown, "unrecognised User-Agent");
        }
        if self.header_checks {
            if let Some(why) = browser_anomaly(r) {
                return Assessment::Verdict(Automated, why);
            }
        }
        Assessment::Verdict(Human, "browser")
    }

    /// A crawler's claim settled by its networks alone, when they list the address.
    pub fn in_networks(&self, i: usize, ip: IpAddr) -> bool {
        self.crawlers
            .get(i)
            .is_some_and(|c| c.networks.contains(ip))
    }
}

/// What a browser always sends that this request does not.
fn browser_anomaly(r: &Request) -> Option<&'static str> {
    if !r.accept {
        return Some("browser name without Accept");
    }
    if !r.accept_language {
        return Some("browser name without Accept-Language");
    }
    if !r.accept_encoding {
        return Some("browser name without Accept-Encoding");
    }
    if r.http10 {
        return Some("browser name over HTTP/1.0");
    }
    if r.host_first == Some(false) {
        return Some("browser name, Host not the first header");
    }
    if r.tls.is_some_and(|t| !t.offers_h2) {
        return Some("browser name, TLS without h2");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::{BotFingerprint, VerifiedBot};

    const FIREFOX: &[u8] =
        b"Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
    const GOOGLEBOT: &[u8] = b"Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

    fn browser(ua: &[u8]) -> Request<'_> {
        Request {
            user_agent: Some(ua),
            accept: true,
            accept_language: true,
            accept_encoding: true,
            host_first: Some(true),
            http10: false,
            tls: None,
        }
    }

    fn verdict(c: &Classifier, r: &Request) -> BotVerdict {
        match c.assess(r) {
            Assessment::Verdict(v, _) => v,
            Assessment::Claims(_) => panic!("a claim"),
        }
    }

    #[test]
    fn user_agents_and_headers_decide() {
        let c = Classifier::new(&BotSettings::default(), None).unwrap();
        use BotVerdict::*;
        assert_eq!(verdict(&c, &browser(FIREFOX)), Human);
        for (ua, v) in [
            (&b"sqlmap/1.8#stable (https://sqlmap.org)"[..], BadBot),
            (b"Mozilla/5.00 (Nikto/2.5.0) (Evasions:None) (Test:000003)", BadBot),
            (b"curl/8.5.0", Automated),
            (b"python-requests/2.31.0", Automated),
            (b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/120.0.0.0 Safari/537.36", Automated),
            (b"Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", Automated),
            (b"Mozilla/5.0 (Linux; Android 9; CUBOT P30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Mobile Safari/537.36", Human),
            (b"SomethingElse/1.0", Unknown),
            (b"   ", Automated),
            (b"\xff\xfe Mozilla/", Unknown),
        ] {
            assert_eq!(verdict(&c, &browser(ua)), v, "{}", String::from_utf8_lossy(ua));
        }
        let mut r = browser(FIREFOX);
        r.user_agent = None;
        assert_eq!(verdict(&c, &r), Automated);
        // A browser's name without a browser's habits.
        for f in [
            |r: &mut Request| r.accept = false,
            |r: &mut Request| r.accept_language = false,
            |r: &mut Request| r.accept_encoding = false,
            |r: &mut Request| r.http10 = true,
            |r: &mut Request| r.host_first = Some(false),
            |r: &mut Request| {
                r.tls = Some(Tls {
                    ja4: "t13d0000",
                    offers_h2: false,
                })
            },
        ] {
            let mut r = browser(FIREFOX);
            f(&mut r);
            assert_eq!(verdict(&c, &r), Automated, "{:?}", c.assess(&r));
        }
        // Unknown order (HTTP/2, or behind a proxy) is no anomaly.
        let mut r = browser(FIREFOX);
        r.host_first = None;
        assert_eq!(verdict(&c, &r), Human);
        // Header checks off: the name decides.
        let off = Classifier::new(
            &BotSettings {
                header_checks: false,
                ..Default::default()
            },
            None,
        )
        .unwrap();
        let mut r = browser(FIREFOX);
        r.accept_language = false;
        assert_eq!(verdict(&off, &r), Human);
    }

    #[test]
    fn crawlers_names_are_claims_and_bad_signatures_beat_them() {
        let c = Classifier::new(&BotSettings::default(), None).unwrap();
        let Assessment::Claims(i) = c.assess(&browser(GOOGLEBOT)) else {
            panic!("Googlebot is a claim");
        };
        assert_eq!(c.crawlers()[i].name, "googlebot");
        assert_eq!(
            c.assess(&browser(b"Googlebot/2.1 sqlmap/1.0")),
            Assessment::Verdict(BotVerdict::BadBot, "bad bot signature")
        );
        let Assessment::Claims(j) = c.assess(&browser(
            b"Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        )) else {
            panic!("bingbot is a claim");
        };
        assert_eq!(c.crawlers()[j].domains, ["search.msn.com"]);
    }

    #[test]
    fn fingerprints_networks_and_extra_signatures() {
        let settings = BotSettings {
            verify: vec![VerifiedBot {
                name: "ours".into(),
                user_agent: "OurCrawler".into(),
                domains: vec!["Crawl.Example.".into()],
                networks: vec!["192.0.2.0/24".into()],
            }],
            fingerprints: vec![BotFingerprint {
                ja4: "t13d1516h2_8daaf6152771_02713d6af862".into(),
                verdict: BotVerdict::BadBot,
            }],
            ..Default::default()
        };
        let c = Classifier::new(&settings, Some("# ours\nautomated MyBrowserLookalike\n")).unwrap();
        assert_eq!(c.crawlers()[0].domains, ["crawl.example"]);
        assert!(c.in_networks(0, "192.0.2.9".parse().unwrap()));
        assert!(!c.in_networks(0, "198.51.100.9".parse().unwrap()));
        let mut r = browser(FIREFOX);
        r.tls = Some(Tls {
            ja4: "t13d1516h2_8daaf6152771_02713d6af862",
            offers_h2: true,
        });
        assert_eq!(verdict(&c, &r), BotVerdict::BadBot);
        assert_eq!(
            verdict(&c, &browser(b"Mozilla/5.0 MyBrowserLookalike Firefox/1")),
            BotVerdict::Automated
        );
        // Bad files say where.
        for (text, line, what) in [
            (
                "automated ok-one\nhuman Firefox\n",
                2,
                "bad_bot or automated",
            ),
            ("\n\nevil_bot x-y-z\n", 3, "unknown verdict"),
            ("bad_bot\n", 1, "expected"),
            ("bad_bot ab\n", 1, "shorter than 3"),
        ] {
            let e = match Classifier::new(&settings, Some(text)) {
                Err(e) => e,
                Ok(_) => panic!("{text:?} loaded"),
            };
            assert_eq!(e.line, line, "{text:?}");
            assert!(e.message.contains(what), "{e}");
        }
        let bad_net = BotSettings {
            verify: vec![VerifiedBot {
                networks: vec!["not-a-net".into()],
                ..settings.verify[0].clone()
            }],
            ..Default::default()
        };
        assert!(Classifier::new(&bad_net, None)
            .err()
            .unwrap()
            .message
            .contains("bots.verify.0.networks"));
    }

    #[test]
    fn the_shipped_list_loads() {
        let sigs = parse_signatures(SHIPPED).unwrap();
        assert!(sigs.len() > 50);
    }
}
