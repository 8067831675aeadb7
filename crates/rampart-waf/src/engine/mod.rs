//! Rule evaluation: a compiled [`Ruleset`] (immutable, shareable) and a per-request
//! [`Transaction`] that walks phases 1–5, following ModSecurity v2 semantics for chains,
//! `skipAfter`, `setvar`, macros and disruptive actions.
//!
//! Load time: `ruleset` compiles the directives, `groups` and `txnames` derive what lets
//! requests skip work. Request time: `transaction` takes the inputs, `eval` runs the rule
//! loop over `vars`, reading through `caches` and keeping TX in `txstore`. `actions`,
//! `macros` and `selectors` are parsed at load and applied per request.

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

pub use ruleset::Ruleset;
pub use transaction::Transaction;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    On,
    Off,
    DetectionOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    Block,
    Deny,
    Drop,
    Allow,
    Redirect(String),
}

/// The deepest JSON the recursive parser accepts, whatever the configuration says.
pub(crate) const MAX_JSON_DEPTH: usize = 1024;

/// One reported match (ModSecurity v2 logging: a chain is reported once, by its first rule).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedRule {
    pub id: u64,
    pub phase: u8,
    pub msg: String,
    pub data: String,
    pub severity: String,
    pub tags: Vec<String>,
    pub matched_var_name: String,
    pub matched_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    pub status: u16,
    pub action: Disruptive,
    pub rule_id: u64,
}
