//! Telling browsers from bots. [`classify`]: a request's bot verdict from its User-Agent,
//! headers and TLS fingerprint; [`dns`]: forward-confirmed reverse DNS for clients that name
//! a verified crawler; [`tls`]: the JA4 fingerprint of a raw ClientHello; [`challenge`]: the
//! proof-of-work challenge a browser solves to earn a pass cookie (its page and solver
//! script are in `assets/`).

pub mod challenge;
pub mod classify;
pub mod dns;
pub mod tls;

/// The challenge page's solver (SHA-256 in plain JavaScript: no secure context needed).
pub const SOLVER_JS: &str = include_str!("../assets/solver.js");
