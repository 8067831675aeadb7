//! Telling browsers from bots. [`challenge`]: the proof-of-work challenge a browser solves
//! to earn a pass cookie; its page and solver script are in `assets/`.

pub mod challenge;

/// The challenge page's solver (SHA-256 in plain JavaScript: no secure context needed).
pub const SOLVER_JS: &str = include_str!("../assets/solver.js");
