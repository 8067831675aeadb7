//! The web application firewall: rules, modes, limits, per-route settings and exclusions.

use crate::units::ByteSize;
use serde::Deserialize;

/// `waf:`, the web application firewall's rules and settings, for every route unless a
/// route turns it off.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct WafConfig {
    /// The OWASP Core Rule Set, loaded first (setup, then `rules/*.conf`): an installed
    /// version (`{version: 4.29.0}`, see `rampart crs install`) or a CRS tree (`{dir: ...}`,
    /// e.g. Debian's `/usr/share/modsecurity-crs`). Paranoia and thresholds come from this
    /// section's `paranoia` and `anomaly_threshold`.
    pub crs: Option<CrsRef>,
    /// Rule files, loaded in order; each entry may be a glob (matches sorted by name), e.g.
    /// `crs/crs-setup.conf` then `crs/rules/*.conf`.
    pub rules: Vec<String>,
    /// SecLang rules written inline, loaded after the files.
    pub custom_rules: Option<String>,
    /// Where `@pmFromFile` / `@ipMatchFromFile` data files are found (default: the directory
    /// of the last rule file).
    pub data_dir: Option<String>,
    /// `block` (default) or `detect`.
    pub mode: WafMode,
    /// CRS paranoia level 1–4 (the `tx.blocking_paranoia_level` CRS reads; default 1).
    pub paranoia: u8,
    /// CRS anomaly score thresholds (default 5 inbound, 4 outbound).
    pub anomaly_threshold: AnomalyThreshold,
    /// How much of a request body is buffered and inspected before anything goes upstream
    /// (default and maximum 64 KiB).
    pub request_body_limit: ByteSize,
    /// Past the limit: `reject` (413) or `process_partial` (inspect the first part, pass the
    /// rest uninspected), as SecRequestBodyLimitAction.
    pub request_body_limit_action: BodyLimitAction,
    /// Inspect response bodies (phase 4) of `response_mime_types`, up to `response_body_limit`
    /// (default false).
    pub inspect_response_body: bool,
    /// How much of a response body phase 4 inspects (default 512 KiB).
    pub response_body_limit: ByteSize,
    /// Response `Content-Type`s whose bodies are inspected (default text/plain, text/html,
    /// text/xml, application/json).
    pub response_mime_types: Vec<String>,
    /// The status a blocked request gets (default 403).
    pub status: u16,
    /// In block mode, a body the WAF could not parse (invalid JSON, XML or multipart, an
    /// unknown charset: `REQBODY_ERROR`) is refused with 400, as ModSecurity's recommended
    /// rule 200002 does: rules cannot judge what they cannot read, the backend can. So is a
    /// multipart body that fails strict validation (`MULTIPART_STRICT_ERROR`, or an
    /// unmatched boundary: rules 200003 and 200004), where parsers may disagree on the parts.
    pub reject_unparsable_body: bool,
}

impl Default for WafConfig {
    fn default() -> Self {
        WafConfig {
            crs: None,
            rules: Vec::new(),
            custom_rules: None,
            data_dir: None,
            mode: WafMode::Block,
            paranoia: 1,
            anomaly_threshold: AnomalyThreshold::default(),
            request_body_limit: ByteSize(WAF_MAX_BODY_LIMIT),
            request_body_limit_action: BodyLimitAction::Reject,
            inspect_response_body: false,
            response_body_limit: ByteSize(512 * 1024),
            response_mime_types: ["text/plain", "text/html", "text/xml", "application/json"]
                .map(String::from)
                .to_vec(),
            status: 403,
            reject_unparsable_body: true,
        }
    }
}

/// `waf.crs`: which Core Rule Set to load.
#[derive(Debug, Clone, Deserialize, PartialEq, Default)]
#[serde(default)]
pub struct CrsRef {
    /// A version installed by `rampart crs install` in Rampart's data directory
    /// (`RAMPART_DATA_DIR`, else the XDG data directory).
    pub version: Option<String>,
    /// A CRS tree: a directory with `rules/*.conf` and a setup file.
    pub dir: Option<String>,
    /// The setup file, when not `crs-setup.conf` or `crs-setup.conf.example` in `dir`.
    pub setup: Option<String>,
}

/// Whether the WAF blocks or only reports.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum WafMode {
    /// Refuse requests the rules block.
    #[default]
    Block,
    /// Report matches as events, block nothing (SecRuleEngine DetectionOnly).
    Detect,
}

/// What happens to a request body longer than `request_body_limit`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum BodyLimitAction {
    /// Refuse the request (413).
    #[default]
    Reject,
    /// Inspect the first `request_body_limit` bytes, pass the rest uninspected.
    ProcessPartial,
}

/// CRS anomaly score thresholds (`tx.inbound_anomaly_score_threshold` and outbound).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct AnomalyThreshold {
    /// Request score at which the CRS blocks (default 5).
    pub inbound: u32,
    /// Response score at which the CRS blocks (default 4).
    pub outbound: u32,
}

impl Default for AnomalyThreshold {
    fn default() -> Self {
        // The CRS's own defaults.
        AnomalyThreshold {
            inbound: 5,
            outbound: 4,
        }
    }
}

/// Pingora can hand at most 64 KiB of pre-read body to the upstream (its retry buffer).
pub const WAF_MAX_BODY_LIMIT: u64 = 64 * 1024;

/// A route's WAF settings: on by default when a top-level `waf` exists.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct RouteWaf {
    /// `false` turns the WAF off on this route (default true).
    pub enabled: bool,
    /// Overrides the top-level `mode`.
    pub mode: Option<WafMode>,
    /// Overrides the top-level `paranoia` (1–4).
    pub paranoia: Option<u8>,
    /// Rules this route does not run: an id (`942100`), an id range (`"942100-942199"`),
    /// a tag (`"tag:attack-sqli"`) or a target of one rule (`"942100;ARGS:q"`).
    pub exclusions: Vec<WafExclusion>,
}

impl Default for RouteWaf {
    fn default() -> Self {
        RouteWaf {
            enabled: true,
            mode: None,
            paranoia: None,
            exclusions: Vec::new(),
        }
    }
}

/// One exclusion as written (a number or a string); parsed by [`WafExclusion::parse`].
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum WafExclusion {
    /// A rule id written as a number.
    Id(u64),
    /// Any form written as a string.
    Text(String),
}

/// An exclusion in its parsed form.
#[derive(Debug, Clone, PartialEq)]
pub enum ParsedExclusion {
    /// Rule ids from the first to the second, inclusive (one id: both equal).
    Ids(u64, u64),
    /// Rules carrying this tag.
    Tag(String),
    /// One variable (e.g. `ARGS:q`) removed from one rule's targets.
    Target(u64, String),
}

impl WafExclusion {
    /// Parses the written form, or says why it is not one.
    pub fn parse(&self) -> Result<ParsedExclusion, crate::Error> {
        let s = match self {
            WafExclusion::Id(n) => return Ok(ParsedExclusion::Ids(*n, *n)),
            WafExclusion::Text(s) => s.trim(),
        };
        let id = |t: &str| {
            t.trim().parse::<u64>().map_err(|_| crate::Error::RuleId {
                text: t.to_string(),
            })
        };
        if let Some(tag) = s.strip_prefix("tag:") {
            if tag.trim().is_empty() {
                return Err(crate::Error::EmptyTag);
            }
            return Ok(ParsedExclusion::Tag(tag.trim().to_string()));
        }
        if let Some((rule, target)) = s.split_once(';') {
            if target.trim().is_empty() {
                return Err(crate::Error::EmptyTarget {
                    exclusion: s.to_string(),
                });
            }
            return Ok(ParsedExclusion::Target(
                id(rule)?,
                target.trim().to_string(),
            ));
        }
        if let Some((a, b)) = s.split_once('-') {
            let (a, b) = (id(a)?, id(b)?);
            if a > b {
                return Err(crate::Error::ReversedRange {
                    exclusion: s.to_string(),
                });
            }
            return Ok(ParsedExclusion::Ids(a, b));
        }
        id(s)
            .map(|n| ParsedExclusion::Ids(n, n))
            .map_err(|_| crate::Error::Exclusion {
                exclusion: s.to_string(),
            })
    }
}
