//! Rampart's web application firewall: a SecLang engine meant to run the OWASP Core Rule
//! Set unmodified. No proxy types: the gateway feeds it requests.
//!
//! Compile rule files once ([`engine::Ruleset::compile`], shareable by `Arc`), then run one
//! [`engine::Transaction`] per request through phases 1–5. CRS v4's own regression tests
//! pass at 99.7% (tests/crs_conformance.rs).

mod body;
pub mod engine;
mod error;
pub mod geo;
mod literals;
pub mod operator;
pub mod parser;
mod pcre;
pub mod transform;
mod xml;

/// A small deterministic generator (xorshift) for the unit tests' random inputs.
#[cfg(test)]
pub(crate) fn test_rng(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

pub use error::Error;
pub use geo::{GeoLookup, GeoRecord};
pub use parser::{parse_files, parse_str, Action, Directive, Operator, ParseError, Rule, Variable};
