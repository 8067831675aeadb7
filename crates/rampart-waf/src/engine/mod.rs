//! Rule evaluation: a compiled [`Ruleset`] (immutable, shareable) and a per-request
//! [`Transaction`] that walks phases 1–5, following ModSecurity v2 semantics for chains,
//! `skipAfter`, `setvar`, macros and disruptive actions.
//!
//! Load time: `ruleset` compiles the directives, `groups` and `txnames` derive what lets
//! requests skip work. Request time: `transaction` takes the inputs, `eval` runs the rule
//! loop over `vars`, reading through `caches` and keeping TX in `txstore`. `actions`,
//! `macros` and `selectors` are parsed at load and applied per request.
//!
//! ## Speed
//!
//! Work done once at load: macros (`%{tx.x}`) and `setvar` parsed into templates, numeric
//! arguments read, each variable's exclusions and source resolved, each
//! `ctl:ruleRemoveTarget*` turned into a shared bitset of the rules it names (applying it
//! is a few word ORs; a rule tests its bit), every TX name the rules
//! spell out numbered into a slot (setvar, `%{tx.x}` and `TX:name` targets index a vector;
//! names built at run time go to a keyed map), transformation chains numbered, single-
//! valued variables (`REQUEST_URI`...) given fixed indexes, each rule variable reduced to a
//! small plan (source, flags, static name) so the loop reads a `Variable` only for its
//! selector; per phase, a compact array (`Hot`) lets the loop pass over rules with nothing
//! to read (a bitmask of the sources present) and failing `TX:x "@lt N"` gates without
//! touching the rules; rules reading the same request data through the same chain share one
//! group whose transformed values are computed once per phase (at most 1 MiB per phase;
//! beyond it rules read the request themselves), with a literal filter per group (each
//! `@rx`/`@pm`'s required literals, extracted with regex-syntax after folding case; one
//! Aho-Corasick pass per value tells which members can match; tests run the skipped
//! operators anyway and fail on a match); the groups' buffers are reused across
//! transactions (a small per-thread pool: growing new ones for a JSON body cost 2.5%); a
//! one-pass byte-class check tells whether a chain can change a value at all (most benign
//! values go through unchanged, without a lookup; remembered per phase by address for
//! values of 10 bytes and more, which every rule asks again); operators other than the
//! detectors and `@geoLookup` are called straight from each site of the rule loop; a
//! long chain's result is cached by value and chain; TX values live in one per-transaction
//! buffer; `TX:/regex/` selectors scan only the slots they can select (found at load) and
//! run-time names. detectSQLi/detectXSS (libinjection, the costliest operators) answer a
//! single word or number without running (a test checks libinjection agrees), remember
//! answers per request for short values, and share them across requests for User-Agent
//! values only (16 shards of 1,024 per detector, a full shard is emptied, keyed hasher):
//! other values can be secrets, and a shared answer would let a client time whether someone
//! else sent one.

mod actions;
mod caches;
mod eval;
mod groups;
mod macros;
mod ruleset;
mod selectors;
#[cfg(test)]
mod tests;
mod transaction;
mod txnames;
mod txstore;
mod vars;

pub use actions::TargetExclusion;
pub use ruleset::Ruleset;
pub use transaction::Transaction;

/// `SecRuleEngine`: whether rules run, and whether their disruptive actions take effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    /// Rules run, and disruptive actions interrupt the request.
    On,
    /// No rule runs.
    Off,
    /// Rules run and report matches, but never interrupt the request.
    DetectionOnly,
}

/// A rule's disruptive action: what its match does to the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    /// `pass`: go on with the next rule.
    Pass,
    /// `block`: does not interrupt here (the engine treats it as `pass`).
    Block,
    /// `deny`: stop the request with the rule's `status` (403 by default).
    Deny,
    /// `drop`: stop the request; ModSecurity closes the connection, here the caller decides.
    Drop,
    /// `allow`: run no more rules for this transaction, except in phase 5 (logging).
    Allow,
    /// `redirect:URL`: stop the request, answering with a redirect to the URL.
    Redirect(String),
}

/// The five phases of a transaction, in the order they run (SecLang's `phase:1`..`phase:5`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// 1: the request line and headers.
    RequestHeaders = 1,
    /// 2: the request body (`phase:request`; the default for rules).
    RequestBody = 2,
    /// 3: the response status and headers.
    ResponseHeaders = 3,
    /// 4: the response body (`phase:response`).
    ResponseBody = 4,
    /// 5: logging, after the response (`phase:logging`); runs even after a block.
    Logging = 5,
}

impl Phase {
    /// Every phase, in order.
    pub const ALL: [Phase; 5] = [
        Phase::RequestHeaders,
        Phase::RequestBody,
        Phase::ResponseHeaders,
        Phase::ResponseBody,
        Phase::Logging,
    ];

    /// The phases after the request: what runs once the upstream answered.
    pub const RESPONSE: [Phase; 3] = [Phase::ResponseHeaders, Phase::ResponseBody, Phase::Logging];

    /// SecLang's number for it (1 to 5).
    pub fn number(self) -> u8 {
        self as u8
    }

    /// Its position in per-phase arrays (0 to 4).
    pub(crate) fn index(self) -> usize {
        self as usize - 1
    }

    /// A `phase:` action's value: `1` to `5`, `request`, `response` or `logging`.
    pub fn parse(value: &str) -> Option<Phase> {
        Some(match value.trim() {
            "1" => Phase::RequestHeaders,
            "2" | "request" => Phase::RequestBody,
            "3" => Phase::ResponseHeaders,
            "4" | "response" => Phase::ResponseBody,
            "5" | "logging" => Phase::Logging,
            _ => return None,
        })
    }
}

/// The deepest JSON the recursive parser accepts, whatever the configuration says.
pub(crate) const MAX_JSON_DEPTH: usize = 1024;

/// One reported match (ModSecurity v2 logging: a chain is reported once, by its first rule).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedRule {
    /// The rule's id.
    pub id: u64,
    /// The phase the rule is in.
    pub phase: Phase,
    /// Its `msg`, macros expanded; empty without one.
    pub msg: String,
    /// Its `logdata`, macros expanded; empty without one.
    pub data: String,
    /// Its `severity` as written; empty without one.
    pub severity: String,
    /// Its `tag`s.
    pub tags: Vec<String>,
    /// The name of the last target that matched (`MATCHED_VAR_NAME`).
    pub matched_var_name: String,
    /// That target's value (`MATCHED_VAR`), lossily decoded, at most 200 characters.
    pub matched_value: String,
}

/// Why a transaction stopped the request: a disruptive rule in `On` mode, or a request body
/// over `SecRequestBodyLimit` with `SecRequestBodyLimitAction Reject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    /// The HTTP status asked for: the rule's `status` (403 by default), 413 for the body limit.
    pub status: u16,
    /// The disruptive action (`Deny` for the body limit).
    pub action: Disruptive,
    /// The id of the rule; 0 for the body limit.
    pub rule_id: u64,
}
