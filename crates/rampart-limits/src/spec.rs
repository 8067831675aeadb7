//! Parsing of human rates (`100/s`, `5000/min`, `1M/month`).

use std::time::Duration;

/// `count` requests per `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u64,
    pub period: Duration,
}

pub fn parse_rate(text: &str) -> Result<Rate, String> {
    let (n, p) = text
        .split_once('/')
        .ok_or_else(|| format!("rate {text:?}: expected COUNT/PERIOD, e.g. 100/s"))?;
    let n = n.trim();
    let (digits, mult) = match n.chars().last() {
        Some('k') | Some('K') => (&n[..n.len() - 1], 1_000),
        Some('M') => (&n[..n.len() - 1], 1_000_000),
        _ => (n, 1),
    };
    let count: u64 = digits
        .parse::<u64>()
        .map_err(|_| format!("rate {text:?}: {n:?} is not a whole number"))?
        .checked_mul(mult)
        .ok_or_else(|| format!("rate {text:?}: too large"))?;
    if count == 0 {
        return Err(format!("rate {text:?}: count must be above 0"));
    }
    let secs = match p.trim() {
        "s" | "sec" | "second" => 1,
        "m" | "min" | "minute" => 60,
        "h" | "hour" => 3600,
        "d" | "day" => 86_400,
        "month" => 30 * 86_400,
        other => {
            return Err(format!(
                "rate {text:?}: unknown period {other:?}, expected s, min, h, day or month"
            ))
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
        let e = parse_rate("100/x").unwrap_err();
        assert!(e.contains("unknown period \"x\""), "{e}");
        assert!(parse_rate("0/s").is_err());
        assert!(parse_rate("abc/s").is_err());
    }
}
