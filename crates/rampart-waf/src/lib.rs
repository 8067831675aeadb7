//! Rampart's web application firewall: a SecLang engine meant to run the OWASP Core Rule
//! Set unmodified. No proxy types: the gateway feeds it requests.
//!
//! Compile rule files once ([`engine::Ruleset::compile`], shareable by `Arc`), then run one
//! [`engine::Transaction`] per request through phases 1–5. Of CRS v4's own regression
//! tests, 3,746 pass in process; the 5 that fail and the 17 skipped are listed with their
//! reasons (tests/crs_conformance.rs), and ModSecurity v3 fails those 5 too.
//!
//! # Differential tests
//!
//! A regression suite only measures the payloads it holds, so the parts translated from C
//! are also compared with the C libraries ModSecurity v3 runs, on the CRS tests' payloads
//! (whole and split into argument values), deterministic mutations of them (case, spacing,
//! URL/HTML fragments, high, control and NUL bytes), random bytes and long values:
//!
//! - `tests/pcre_differential.rs`: every CRS `@rx` against libpcre2 with ModSecurity's
//!   options, after each rule's own transformations (see the `pcre` module docs).
//! - `tests/libinjection_differential.rs`: `@detectSQLi` (verdict and fingerprint) and
//!   `@detectXSS` against the C libinjection 3.9.2, built by the test from PyPI's
//!   `libinjection-python` source, as is and after CRS's transformations for 942100/941100.
//! - `tests/transform_differential.rs`: every transformation against ModSecurity v3 itself
//!   (Debian's libmodsecurity 3.0.9, driven from a small C program the test builds): a
//!   rule with `t:NAME,t:hexEncode` hands the transformed header value back in a redirect.
//!   The same driver compares every CRS `@pm`/`@pmFromFile` (a match redirects).
//! - `tests/collections_differential.rs`: what ARGS, ARGS_NAMES, cookies, files, the request
//!   line variables and the body flags hold for every CRS test request, against ModSecurity
//!   (rules that append each variable to `TX:acc`, run by both engines). A second test
//!   there compares every multipart variable (parts, part headers, each `MULTIPART_*`
//!   strictness flag, body errors) on CRS's multipart bodies, bodies written for each flag,
//!   and mutations of both (line endings, quotes, dashes, the boundary, 4 KiB pieces).
//! - `tests/crs_oracle.rs`: the CRS v4 request tests run through ModSecurity itself with
//!   the whole rule set, beside this engine: which tests each engine passes.
//!
//! Each keeps an exact list of the divergences left on purpose, with the reason
//! (`tests/pcre-divergences.txt`, `tests/libinjection-divergences.txt`,
//! `tests/transform-divergences.txt`, `tests/operator-divergences.txt`,
//! `tests/collections-divergences.txt`, `tests/multipart-divergences.txt`,
//! `tests/crs-oracle-divergences.txt`): an unlisted
//! divergence fails, and so does a listed one that has gone. Shared inputs live in
//! `tests/corpus/`.
//!
//! # Collections as ModSecurity v3 fills them
//!
//! Names are bytes as sent (argument, cookie, part and file names: `?x%FD=1` is `x\xFD`,
//! so `@validateUtf8Encoding` on `ARGS_NAMES` sees it), and selectors are read as
//! ModSecurity reads them (PCRE without UTF, case-insensitive). A query or form splits as
//! ModSecurity's `getline` splits it: `a&&b` holds an argument with an empty name between
//! the two. A JSON body is RFC 8259 JSON or a body error (a bare word is refused, as any
//! backend refuses it). Deliberate differences, each listed: JSON arguments are in
//! `ARGS_POST` too, JSON array elements are `json.a.0` (3.0.9: `json.a.array_0`),
//! `REQUEST_URI` is kept as sent.

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
