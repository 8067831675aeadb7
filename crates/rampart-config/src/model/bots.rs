//! Bots: the proof-of-work browser challenge routes can require.

use crate::units::HumanDuration;
use serde::Deserialize;

/// `bots:`, settings shared by the routes that use them.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(default)]
pub struct BotSettings {
    /// The browser challenge of routes with `challenge: true`.
    pub challenge: ChallengeSettings,
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
