//! Rampart's web application firewall: a SecLang engine meant to run the OWASP Core Rule
//! Set unmodified. No proxy types: the gateway feeds it requests.
//!
//! Status: the parser is complete for CRS v4 (directives, includes, continuations, quoting,
//! variables with selectors/exclusions/counting, operators, actions); evaluation comes next.

pub mod engine;
pub mod operator;
pub mod parser;
pub mod transform;
mod xml;

pub use parser::{parse_files, parse_str, Action, Directive, Operator, ParseError, Rule, Variable};
