//! How weak an HMAC secret is, described without its value.

use crate::Severity;

/// Shorter than this, a secret is weak: HS256 needs a key at least as long as its 32-byte
/// output (RFC 7518 §3.2).
pub const MIN_LEN: usize = 32;

/// Fewer distinct bytes than this means a word, a padded placeholder or a pattern, not
/// random bytes (even 32 random hex or decimal digits practically always show 10 or more).
const MIN_DISTINCT: usize = 8;

/// Why `secret` is weak and how badly, or `None` when it looks strong. The reason gives the
/// length or the variety, never the value or any part of it.
pub fn weakness(secret: &[u8]) -> Option<(Severity, String)> {
    let len = secret.len();
    let mut seen = [false; 256];
    for b in secret {
        seen[*b as usize] = true;
    }
    let distinct = seen.iter().filter(|s| **s).count();
    if distinct < MIN_DISTINCT {
        return Some((
            Severity::Critical,
            format!("has only {distinct} distinct characters in {len} bytes"),
        ));
    }
    if let Some(unit) = repeated_unit(secret) {
        return Some((
            Severity::Critical,
            format!("is a {unit}-byte pattern repeated ({len} bytes)"),
        ));
    }
    if len < MIN_LEN {
        // Below 16 bytes an offline dictionary or brute-force search of one captured token
        // is practical; 16 to 31 bytes falls short of the algorithm's strength.
        let severity = if len < 16 {
            Severity::Critical
        } else {
            Severity::High
        };
        return Some((
            severity,
            format!("is {len} bytes long (fewer than {MIN_LEN})"),
        ));
    }
    None
}

/// The length of the shortest unit that `s` repeats whole, when shorter than `s`.
fn repeated_unit(s: &[u8]) -> Option<usize> {
    (1..=s.len() / 2)
        .filter(|u| s.len().is_multiple_of(*u))
        .find(|&u| s.chunks(u).all(|c| c == &s[..u]))
}
