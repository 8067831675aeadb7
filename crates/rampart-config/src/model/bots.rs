//! Bots: every request's bot verdict, what routes do with it, and the proof-of-work browser
//! challenge.

use super::RateLimit;
use crate::units::HumanDuration;
use serde::Deserialize;

/// `bots:`, settings shared by the routes that use them.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct BotSettings {
    /// The browser challenge of routes with `challenge: true` and of `challenge` actions.
    pub challenge: ChallengeSettings,
    /// What every route does per verdict unless it says otherwise (`routes[].bots`).
    pub policy: BotPolicy,
    /// A User-Agent signature file read in addition to the shipped list (re-read on
    /// reload): one `verdict text` per line (`bad_bot`, `automated` or `human`; the text
    /// matched in any case), `#` comments.
    pub signatures: Option<String>,
    /// Crawlers whose names are believed only from their own addresses. Default: Google,
    /// Bing, Apple, DuckDuckGo and Yandex by their published reverse-DNS domains.
    pub verify: Vec<VerifiedBot>,
    /// The resolver of the reverse-DNS checks.
    pub dns: BotDns,
    /// TLS fingerprints (JA4) with the verdict they imply.
    pub fingerprints: Vec<BotFingerprint>,
    /// Header checks on clients that name a browser (Accept, Accept-Language,
    /// Accept-Encoding, Host first on HTTP/1, `h2` offered in TLS); off: the name decides.
    pub header_checks: bool,
}

impl Default for BotSettings {
    fn default() -> Self {
        let bot = |name: &str, ua: &str, domains: &[&str]| VerifiedBot {
            name: name.into(),
            user_agent: ua.into(),
            domains: domains.iter().map(|d| d.to_string()).collect(),
            networks: Vec::new(),
        };
        BotSettings {
            challenge: ChallengeSettings::default(),
            policy: BotPolicy::default(),
            signatures: None,
            verify: vec![
                bot(
                    "googlebot",
                    "Googlebot",
                    &["googlebot.com", "google.com", "googleusercontent.com"],
                ),
                bot("bingbot", "bingbot", &["search.msn.com"]),
                bot("applebot", "Applebot", &["applebot.apple.com"]),
                bot("duckduckbot", "DuckDuckBot", &["duckduckgo.com"]),
                bot(
                    "yandexbot",
                    "YandexBot",
                    &["yandex.ru", "yandex.net", "yandex.com"],
                ),
            ],
            dns: BotDns::default(),
            fingerprints: Vec::new(),
            header_checks: true,
        }
    }
}

/// `bots.challenge`: a browser without a valid pass gets a page whose script solves a
/// SHA-256 puzzle and trades the answer for a pass cookie; other clients get 403 (JSON).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct ChallengeSettings {
    /// HMAC keys (at least 32 bytes each; `${ENV}` keeps them out of the file): the first
    /// signs, all verify, so a new key goes first and the old one stays until passes
    /// signed with it expire. The same keys on every node make a pass valid on all. Without
    /// keys, each process draws its own (passes end with it and are not shared).
    pub secrets: Vec<String>,
    /// Leading zero bits the answer's SHA-256 needs, 4 to 24 (default 16: about 65,000
    /// hashes, well under a second in a browser).
    pub difficulty: u8,
    /// How long a pass lets its client through (default 1h).
    pub ttl: HumanDuration,
    /// How long a challenge may take to be answered (default 5m).
    pub max_solve_time: HumanDuration,
}

impl Default for ChallengeSettings {
    fn default() -> Self {
        ChallengeSettings {
            secrets: Vec::new(),
            difficulty: 16,
            ttl: HumanDuration::from_secs(3600),
            max_solve_time: HumanDuration::from_secs(300),
        }
    }
}

/// A bot verdict: what a request's client is taken to be (`rampart-bots` decides it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BotVerdict {
    /// A crawler named in `bots.verify` whose address was confirmed (forward-confirmed
    /// reverse DNS, or one of its networks).
    GoodBot,
    /// A known bad signature (scanners, attack tools), a listed TLS fingerprint, or a client
    /// that claims a verified crawler's name and is refuted by DNS.
    BadBot,
    /// A tool or library (curl, python-requests, headless browsers), or a browser's name
    /// without a browser's headers.
    Automated,
    /// A browser's name and a browser's headers.
    Human,
    /// None of the above, or a check that could not finish (a DNS failure or timeout).
    Unknown,
}

impl BotVerdict {
    /// Every verdict, in the order logs list them.
    pub const ALL: [BotVerdict; 5] = [
        BotVerdict::GoodBot,
        BotVerdict::BadBot,
        BotVerdict::Automated,
        BotVerdict::Human,
        BotVerdict::Unknown,
    ];

    /// The name logs, events and metrics use.
    pub fn name(self) -> &'static str {
        match self {
            BotVerdict::GoodBot => "good_bot",
            BotVerdict::BadBot => "bad_bot",
            BotVerdict::Automated => "automated",
            BotVerdict::Human => "human",
            BotVerdict::Unknown => "unknown",
        }
    }

    /// The verdict [`BotVerdict::name`] names.
    pub fn parse(s: &str) -> Option<BotVerdict> {
        BotVerdict::ALL.into_iter().find(|v| v.name() == s)
    }
}

/// What a route does with a request of some verdict: `allow`, `deny`, `challenge`, or
/// `{rate_limit: {...}}`.
#[derive(Debug, Clone, PartialEq)]
pub enum BotAction {
    /// Through to the next stage.
    Allow,
    /// 403.
    Deny,
    /// The browser challenge (`bots.challenge`): a valid pass lets the request through.
    Challenge,
    /// Allowed within this limit (its own budget, separate from the route's limits).
    RateLimit(RateLimit),
}

/// Actions per verdict; an absent verdict falls back to `bots.policy`, then to the
/// default (`bad_bot: deny`, the rest `allow`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BotPolicy {
    /// For `good_bot`.
    pub good_bot: Option<BotAction>,
    /// For `bad_bot`.
    pub bad_bot: Option<BotAction>,
    /// For `automated`.
    pub automated: Option<BotAction>,
    /// For `human`.
    pub human: Option<BotAction>,
    /// For `unknown`.
    pub unknown: Option<BotAction>,
}

impl BotPolicy {
    /// The action this policy sets for `v`, if any.
    pub fn get(&self, v: BotVerdict) -> Option<&BotAction> {
        match v {
            BotVerdict::GoodBot => self.good_bot.as_ref(),
            BotVerdict::BadBot => self.bad_bot.as_ref(),
            BotVerdict::Automated => self.automated.as_ref(),
            BotVerdict::Human => self.human.as_ref(),
            BotVerdict::Unknown => self.unknown.as_ref(),
        }
    }

    /// The action for `v` under `route` (may be `None`) then `global`, then the default.
    pub fn resolve<'a>(
        route: Option<&'a BotPolicy>,
        global: &'a BotPolicy,
        v: BotVerdict,
    ) -> &'a BotAction {
        static ALLOW: BotAction = BotAction::Allow;
        static DENY: BotAction = BotAction::Deny;
        route
            .and_then(|p| p.get(v))
            .or_else(|| global.get(v))
            .unwrap_or(if v == BotVerdict::BadBot {
                &DENY
            } else {
                &ALLOW
            })
    }

    /// Whether some verdict gets the challenge (the challenge endpoints must exist).
    pub fn uses_challenge(&self) -> bool {
        BotVerdict::ALL
            .into_iter()
            .any(|v| matches!(self.get(v), Some(BotAction::Challenge)))
    }
}

/// `bots.verify`: a crawler whose requests are believed only from its own addresses.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerifiedBot {
    /// A name for logs (`googlebot`).
    pub name: String,
    /// Text its User-Agent contains (any case), e.g. `Googlebot`.
    pub user_agent: String,
    /// Domains its reverse DNS names end in (`googlebot.com`): the PTR name must be one of
    /// them or under one, and resolve back to the client's address.
    #[serde(default)]
    pub domains: Vec<String>,
    /// Networks it publishes (CIDRs): an address in them is verified without DNS.
    #[serde(default)]
    pub networks: Vec<String>,
}

/// `bots.dns`: the resolver of the reverse-DNS checks.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct BotDns {
    /// Name servers (`ip` or `ip:port`, UDP then TCP); empty: the system's (`/etc/resolv.conf`).
    pub servers: Vec<String>,
    /// The whole check (PTR, then A/AAAA) must finish within this, or the verdict is `unknown`.
    pub timeout: HumanDuration,
    /// How long a check's answer is kept per address (failures: a tenth of it, at least 10s).
    pub cache_ttl: HumanDuration,
    /// Addresses whose answers are kept.
    pub cache_size: usize,
    /// Checks under way at once; beyond it a claim is `unknown` without asking (a flood of
    /// fake crawler names must not become a flood of DNS queries).
    pub max_pending: usize,
}

impl Default for BotDns {
    fn default() -> Self {
        BotDns {
            servers: Vec::new(),
            timeout: HumanDuration::from_secs(2),
            cache_ttl: HumanDuration::from_secs(3600),
            cache_size: 100_000,
            max_pending: 64,
        }
    }
}

/// `bots.fingerprints`: a TLS client fingerprint (JA4) and the verdict it implies.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BotFingerprint {
    /// The JA4 fingerprint (`t13d1516h2_8daaf6152771_02713d6af862`).
    pub ja4: String,
    /// The verdict a client with it gets, whatever else it says.
    pub verdict: BotVerdict,
}

impl<'de> Deserialize<'de> for BotAction {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        const EXPECTED: &str = "allow, deny, challenge or {rate_limit: {...}}";
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = BotAction;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(EXPECTED)
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<BotAction, E> {
                match v {
                    "allow" => Ok(BotAction::Allow),
                    "deny" => Ok(BotAction::Deny),
                    "challenge" => Ok(BotAction::Challenge),
                    other => Err(E::custom(format!(
                        "unknown bot action `{other}`, expected {EXPECTED}"
                    ))),
                }
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<BotAction, A::Error> {
                use serde::de::Error;
                let Some(key) = m.next_key::<String>()? else {
                    return Err(A::Error::custom(format!(
                        "empty bot action, expected {EXPECTED}"
                    )));
                };
                if key != "rate_limit" {
                    return Err(A::Error::custom(format!(
                        "unknown bot action `{key}`, expected {EXPECTED}"
                    )));
                }
                let limit: RateLimit = m.next_value()?;
                if let Some(extra) = m.next_key::<String>()? {
                    return Err(A::Error::custom(format!(
                        "`{extra}` beside rate_limit: one action per verdict"
                    )));
                }
                Ok(BotAction::RateLimit(limit))
            }
        }
        d.deserialize_any(V)
    }
}
