//! A route's rules engine: ordered `if` conditions on the request and what to do when they
//! hold (compiled and checked by `rampart-rules` when the config loads).

use serde::Deserialize;
use std::collections::BTreeMap;

/// One rule: when every condition of `if` holds and none of `unless` does, `then` is done.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// For logs and errors.
    #[serde(default)]
    pub name: String,
    /// Every condition given must hold; none given: always.
    #[serde(rename = "if", default)]
    pub when: RuleConditions,
    /// The rule does not apply when all of these hold.
    #[serde(default)]
    pub unless: Option<RuleConditions>,
    /// What to do.
    pub then: RuleActions,
}

/// RuleConditions on the request, all of which must hold.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleConditions {
    /// The canonical path (what the upstream receives before `strip_prefix`).
    #[serde(default)]
    pub path: Option<TextMatch>,
    /// One of these methods.
    #[serde(default)]
    pub methods: Vec<String>,
    /// Request headers (names in any case); a header a condition reads must not be sent
    /// twice (such a request is refused: which value would the backend read?).
    #[serde(default)]
    pub headers: Vec<FieldMatch>,
    /// Query parameters (percent-decoded names and values; `+` is a space); a parameter a
    /// condition reads must not be given twice.
    #[serde(default)]
    pub query: Vec<FieldMatch>,
    /// The client's address is in one of these networks (`10.0.0.0/8`, `2001:db8::/32`).
    #[serde(default)]
    pub client_ip: Vec<String>,
    /// The client's address is in one of these `network.lists`.
    #[serde(default)]
    pub networks: Vec<String>,
    /// The client's country (ISO 3166 alpha-2, from `network.geoip`).
    #[serde(default)]
    pub countries: Vec<String>,
    /// The authenticated consumer is one of these.
    #[serde(default)]
    pub consumers: Vec<String>,
    /// The authenticated consumer is in one of these groups.
    #[serde(default)]
    pub groups: Vec<String>,
    /// The bot verdict is one of these (`good_bot`, `bad_bot`, `automated`, `human`,
    /// `unknown`).
    #[serde(default)]
    pub bots: Vec<String>,
}

/// How a text (the path) is matched: exactly one of the keys.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TextMatch {
    /// Equal to this.
    #[serde(default)]
    pub exact: Option<String>,
    /// Starts with this, on a segment boundary for paths (`/a` is `/a` and `/a/b`, not
    /// `/ab`).
    #[serde(default)]
    pub prefix: Option<String>,
    /// A regular expression (Rust `regex` syntax, linear time), anchored by you.
    #[serde(default)]
    pub regex: Option<String>,
}

/// A named header or query parameter and how its value is matched: exactly one of
/// `present`, `equals`, `one_of` or `regex`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FieldMatch {
    /// The header or parameter name.
    pub name: String,
    /// `true`: it is sent (any value); `false`: it is not.
    #[serde(default)]
    pub present: Option<bool>,
    /// Its value is exactly this.
    #[serde(default)]
    pub equals: Option<String>,
    /// Its value is one of these.
    #[serde(default)]
    pub one_of: Option<Vec<String>>,
    /// Its value matches this regular expression.
    #[serde(default)]
    pub regex: Option<String>,
}

/// What a rule does. `redirect` and `respond` answer the request themselves and end the
/// rules; the others change the request or its answer and go on to the next rule.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RuleActions {
    /// Headers of the request the upstream (and the WAF) will see.
    #[serde(default)]
    pub request_headers: Option<HeaderOps>,
    /// Headers of the answer the client will see.
    #[serde(default)]
    pub response_headers: Option<HeaderOps>,
    /// The path the upstream receives (`strip_prefix` no longer applies).
    #[serde(default)]
    pub rewrite: Option<Rewrite>,
    /// Another upstream (under `upstreams`) for this request.
    #[serde(default)]
    pub upstream: Option<String>,
    /// Answer with a redirect.
    #[serde(default)]
    pub redirect: Option<Redirect>,
    /// Answer with a fixed response.
    #[serde(default)]
    pub respond: Option<FixedResponse>,
}

/// Header changes, in this order: `remove`, `set` (replaces every value), `add`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct HeaderOps {
    /// Names to remove (all values).
    #[serde(default)]
    pub remove: Vec<String>,
    /// Name → value, replacing any value.
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    /// Name → value, added beside any value.
    #[serde(default)]
    pub add: BTreeMap<String, String>,
}

/// A new path: `to` replaces the whole path, or only `prefix` (on a segment boundary) when
/// given; the query string is kept.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rewrite {
    /// The part of the path replaced; absent: all of it.
    #[serde(default)]
    pub prefix: Option<String>,
    /// What replaces it.
    pub to: String,
}

/// A redirect to a fixed place (nothing from the request is copied into it, so it cannot
/// be turned into an open redirect).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Redirect {
    /// An absolute `https://`/`http://` URL, or a path starting with `/`.
    pub location: String,
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// A fixed answer.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FixedResponse {
    /// 200–599.
    pub status: u16,
    /// At most 64 KiB.
    #[serde(default)]
    pub body: String,
    /// The body's media type.
    #[serde(default = "default_content_type")]
    pub content_type: String,
}

fn default_content_type() -> String {
    "text/plain; charset=utf-8".into()
}
