//! Parsing of human rates (`100/s`, `5000/min`, `1M/month`).

use crate::Error;
use std::time::Duration;

/// `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Requests allowed per period (at least 1).
    pub count: u64,
    /// The period.
    pub period: Duration,
}

/// Parses `COUNT/PERIOD`: a count with an optional `k` or `M` multiplier, and `s`, `min`, `h`,
/// `day` or `month` (30 days), e.g. `100/s`, `1M/month`.
pub fn parse_rate(text: &str) -> Result<Rate, Error> {
    let (n, p) = text
        .split_once('/')
        .ok_or_else(|| Error::RateSyntax { text: text.into() })?;
    let n = n.trim();
    let (digits, mult) = match n.chars().last() {
        Some('k') | Some('K') => (&n[..n.len() - 1], 1_000),
        Some('M') => (&n[..n.len() - 1], 1_000_000),
        _ => (n, 1),
    };
    let count: u64 = digits
        .parse::<u64>()
        .map_err(|_| Error::RateCount {
            text: text.into(),
            count: n.into(),
        })?
        .checked_mul(mult)
        .ok_or_else(|| Error::RateTooLarge { text: text.into() })?;
    if count == 0 {
        return Err(Error::RateZero { text: text.into() });
    }
    let secs = match p.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        "month" => 30 * 86_400,
        other => {
            return Err(Error::RatePeriod {
                text: text.into(),
                period: other.into(),
            })
        }
    };
    Ok(Rate {
        count,
        period: Duration::from_secs(secs),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates() {
        assert_eq!(parse_rate("100/s").unwrap().count, 100);
        assert_eq!(parse_rate("10k/day").unwrap().count, 10_000);
        assert_eq!(
            parse_rate("1M/month").unwrap().period,
            Duration::from_secs(2_592_000)
        );
        let e = parse_rate("100/x").unwrap_err().to_string();
        assert_eq!(
            e,
            "rate \"100/x\": unknown period \"x\", expected s, min, h, day or month"
        );
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("abc/s").is_err());
    }
}
