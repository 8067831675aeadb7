//! Why a rate, a limit or the limiter is refused.

/// The errors of `rampart-limits`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rate without a `/`.
    #[error("rate {text:?}: expected COUNT/PERIOD, e.g. 100/s")]
    RateSyntax { text: String },
    /// The count of a rate is not a whole number.
    #[error("rate {text:?}: {count:?} is not a whole number")]
    RateCount { text: String, count: String },
    /// The count of a rate overflows once its multiplier (`k`, `M`) is applied.
    #[error("rate {text:?}: too large")]
    RateTooLarge { text: String },
    /// A rate of zero.
    #[error("rate {text:?}: count must be above 0")]
    RateZero { text: String },
    /// The period of a rate is not one we know.
    #[error("rate {text:?}: unknown period {period:?}, expected s, min, h, day or month")]
    RatePeriod { text: String, period: String },
    /// More requests per period than nanoseconds in it.
    #[error("rate {rate:?} is too fine-grained")]
    RateTooFine { rate: String },
    /// A key part that is none of the known ones.
    #[error("key {part:?}: expected client_ip, consumer, route, header:NAME or claim:NAME")]
    KeyPart { part: String },
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
