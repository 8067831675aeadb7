//! Why an address, network or database could not be read.

/// The network layer's errors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not an IP address (with or without a prefix length).
    #[error("{0:?} is not an IP address or CIDR (like 10.0.0.0/8 or 2001:db8::/32)")]
    NotAnAddress(String),
    /// The prefix length is not a number within the family's width.
    #[error("{0:?} has an invalid prefix length")]
    BadPrefix(String),
    /// Bits below the prefix are set: a typo or a misunderstanding, never silently masked.
    #[error("{given} has bits set below its prefix; did you mean {network}?")]
    HostBits {
        /// The network as written.
        given: String,
        /// The network its prefix describes.
        network: String,
    },
    /// A geolocation database could not be opened or is not a MaxMind DB.
    #[error("{path}: not a readable MaxMind DB: {reason}")]
    GeoDb {
        /// The file.
        path: String,
        /// What the reader said.
        reason: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        assert_eq!(
            Error::HostBits {
                given: "10.1.2.3/8".into(),
                network: "10.0.0.0/8".into()
            }
            .to_string(),
            "10.1.2.3/8 has bits set below its prefix; did you mean 10.0.0.0/8?"
        );
        assert_eq!(
            Error::BadPrefix("10.0.0.0/33".into()).to_string(),
            "\"10.0.0.0/33\" has an invalid prefix length"
        );
    }
}
