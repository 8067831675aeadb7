//! Why a value of the config cannot be read: the messages that [`crate::ConfigError`]s
//! (located by file, line and key) carry.

/// The errors of `rampart-config`'s value parsers. A whole file's problems are
/// [`crate::ConfigErrors`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Error {
    /// A duration humantime cannot read.
    #[error("invalid duration {text:?} ({source}); write it like \"2s\", \"500ms\" or \"1m\"")]
    Duration {
        /// The text as written.
        text: String,
        /// Why humantime refused it.
        #[source]
        source: humantime::DurationError,
    },
    /// A size that is not a number with a known unit, or too large.
    #[error(
        "invalid size {text:?}; write it like \"1MiB\", \"16KiB\", \"100kB\" or a number of bytes"
    )]
    Size {
        /// The text as written.
        text: String,
    },
    /// A WAF exclusion's rule id (or an end of its range) that is not a whole number.
    #[error("{text:?} is not a rule id")]
    RuleId {
        /// The offending part, as written.
        text: String,
    },
    /// `tag:` without a name.
    #[error("tag: needs a tag name")]
    EmptyTag,
    /// `ID;` without a target.
    #[error("{exclusion:?}: the target after ';' is empty")]
    EmptyTarget {
        /// The exclusion as written.
        exclusion: String,
    },
    /// `B-A` with B above A.
    #[error("{exclusion:?}: the range is reversed")]
    ReversedRange {
        /// The exclusion as written.
        exclusion: String,
    },
    /// A WAF exclusion of none of the known forms.
    #[error("{exclusion:?} is not a rule id, an id range (a-b), tag:NAME or ID;TARGET")]
    Exclusion {
        /// The exclusion as written.
        exclusion: String,
    },
}

#[cfg(test)]
mod tests {
    use crate::units::{parse_duration, parse_size};
    use crate::WafExclusion;

    /// The messages are what `rampart validate` prints: their wording is part of the contract.
    #[test]
    fn messages() {
        assert_eq!(
            parse_duration("2 parsecs").unwrap_err().to_string(),
            "invalid duration \"2 parsecs\" (unknown time unit \"parsecs\", supported units: \
             ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); \
             write it like \"2s\", \"500ms\" or \"1m\""
        );
        assert_eq!(
            parse_size("1XB").unwrap_err().to_string(),
            "invalid size \"1XB\"; write it like \"1MiB\", \"16KiB\", \"100kB\" or a number of bytes"
        );
        let msg = |s: &str| {
            WafExclusion::Text(s.into())
                .parse()
                .unwrap_err()
                .to_string()
        };
        assert_eq!(msg("x;ARGS"), "\"x\" is not a rule id");
        assert_eq!(msg("tag: "), "tag: needs a tag name");
        assert_eq!(msg("1; "), "\"1;\": the target after ';' is empty");
        assert_eq!(msg("9-1"), "\"9-1\": the range is reversed");
        assert_eq!(
            msg("nope"),
            "\"nope\" is not a rule id, an id range (a-b), tag:NAME or ID;TARGET"
        );
    }
}
