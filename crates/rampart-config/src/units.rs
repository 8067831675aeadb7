//! Human-readable durations (`2s`, `500ms`) and sizes (`1MiB`, `16KiB`).

use crate::Error;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::time::Duration;

/// A duration written in human form, e.g. `2s`, `500ms`, `1m 30s`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// A duration of `s` seconds.
    pub fn from_secs(s: u64) -> Self {
        HumanDuration(Duration::from_secs(s))
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = StringOrNumber::deserialize(d)?;
        let text = match s {
            // A bare number is ambiguous (seconds? ms?), so it is refused with a hint.
            StringOrNumber::Number(n) => {
                return Err(serde::de::Error::custom(format!(
                    "duration {n} has no unit: write it like \"{n}s\" or \"{n}ms\""
                )))
            }
            StringOrNumber::String(s) => s,
        };
        parse_duration(&text)
            .map(HumanDuration)
            .map_err(serde::de::Error::custom)
    }
}

/// A duration as humantime reads it (`2s`, `1m 30s`), surrounding whitespace ignored.
pub fn parse_duration(text: &str) -> Result<Duration, Error> {
    humantime::parse_duration(text.trim()).map_err(|source| Error::Duration {
        text: text.to_string(),
        source,
    })
}

/// A size in bytes written in human form, e.g. `1MiB`, `16KiB`, `100kB`, `512`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match StringOrNumber::deserialize(d)? {
            StringOrNumber::Number(n) if n >= 0 => Ok(ByteSize(n as u64)),
            StringOrNumber::Number(n) => {
                Err(serde::de::Error::custom(format!("size {n} is negative")))
            }
            StringOrNumber::String(s) => parse_size(&s)
                .map(ByteSize)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} bytes", self.0)
    }
}

/// A size in bytes: a number (decimals allowed, the result rounded down) and an optional
/// unit, decimal (`k`/`kB`, `MB`, `GB`) or binary (`KiB`, `MiB`, `GiB`).
pub fn parse_size(text: &str) -> Result<u64, Error> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || Error::Size {
        text: text.to_string(),
    };
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: u64 = match unit {
        "" | "B" => 1,
        "k" | "kB" | "KB" => 1_000,
        "KiB" | "Ki" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" | "Mi" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" | "Gi" => 1 << 30,
        _ => return Err(bad()),
    };
    let bytes = value * mult as f64;
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes as u64)
}

#[derive(Deserialize)]
#[serde(untagged)]
enum StringOrNumber {
    Number(i64),
    String(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB").unwrap(), 1 << 20);
        assert_eq!(parse_size("16KiB").unwrap(), 16384);
        assert_eq!(parse_size("100kB").unwrap(), 100_000);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert_eq!(parse_size("1.5KiB").unwrap(), 1536);
        assert!(parse_size("1XB").is_err());
        assert!(parse_size("MiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("2 parsecs").is_err());
    }
}
