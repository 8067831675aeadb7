//! Why a rate, a limit or the limiter is refused.

/// The errors of `rampart-limits`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rate without a `/`.
    #[error("rate {text:?}: expected COUNT/PERIOD, e.g. 100/s")]
    RateSyntax {
        /// The rate as written.
        text: String,
    },
    /// The count of a rate is not a whole number.
    #[error("rate {text:?}: {count:?} is not a whole number")]
    RateCount {
        /// The rate as written.
        text: String,
        /// Its count part.
        count: String,
    },
    /// The count of a rate overflows once its multiplier (`k`, `M`) is applied.
    #[error("rate {text:?}: too large")]
    RateTooLarge {
        /// The rate as written.
        text: String,
    },
    /// A rate of zero.
    #[error("rate {text:?}: count must be above 0")]
    RateZero {
        /// The rate as written.
        text: String,
    },
    /// The period of a rate is not one we know.
    #[error("rate {text:?}: unknown period {period:?}, expected s, min, h, day or month")]
    RatePeriod {
        /// The rate as written.
        text: String,
        /// Its period part.
        period: String,
    },
    /// More requests per period than nanoseconds in it.
    #[error("rate {rate:?} is too fine-grained")]
    RateTooFine {
        /// The rate as written.
        rate: String,
    },
    /// A key part that is none of the known ones.
    #[error("key {part:?}: expected client_ip, consumer, route, header:NAME or claim:NAME")]
    KeyPart {
        /// The part as written.
        part: String,
    },
    /// A key without parts.
    #[error("key: give at least one part")]
    EmptyKey,
    /// Both or neither of `rate` and `quota`.
    #[error("give exactly one of rate or quota")]
    RateOrQuota,
    /// A quota in `mode: delay`.
    #[error("a quota cannot use mode: delay")]
    QuotaDelay,
    /// A quota with a `burst`.
    #[error("burst applies to rate, not quota")]
    BurstWithQuota,
    /// The shared backend's Redis URL.
    #[error(transparent)]
    Redis(#[from] rampart_redis::Error),
}
