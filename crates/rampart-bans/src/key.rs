//! What a ban applies to, written `ip:192.0.2.1`, `net:10.0.0.0/8` or `consumer:alice`.

use std::fmt;
use std::net::IpAddr;

/// The subject of a ban.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum BanKey {
    /// One client address.
    Ip(IpAddr),
    /// A network: every address in it.
    Net(IpAddr, u8),
    /// An authenticated consumer, whatever its credentials or address.
    Consumer(String),
}

impl BanKey {
    /// Parses `ip:ADDR`, `net:CIDR` or `consumer:ID`; a bare address or CIDR is accepted too.
    pub fn parse(s: &str) -> Result<BanKey, crate::Error> {
        let s = s.trim();
        if let Some(id) = s.strip_prefix("consumer:") {
            if id.is_empty() || id.chars().any(char::is_control) {
                return Err(crate::Error::ConsumerId(s.to_string()));
            }
            return Ok(BanKey::Consumer(id.to_string()));
        }
        let net = s
            .strip_prefix("ip:")
            .or_else(|| s.strip_prefix("net:"))
            .unwrap_or(s);
        let (ip, prefix) = rampart_net::parse_net(net)?;
        // An IPv4-mapped IPv6 address or network is the IPv4 one.
        let (ip, prefix) = match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) if prefix >= 96 => (IpAddr::V4(v4), prefix - 96),
                _ => (ip, prefix),
            },
            v4 => (v4, prefix),
        };
        let full = if ip.is_ipv4() { 32 } else { 128 };
        Ok(if prefix == full {
            BanKey::Ip(ip)
        } else {
            BanKey::Net(ip, prefix)
        })
    }
}

impl fmt::Display for BanKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BanKey::Ip(ip) => write!(f, "ip:{ip}"),
            BanKey::Net(ip, p) => write!(f, "net:{ip}/{p}"),
            BanKey::Consumer(c) => write!(f, "consumer:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        for (text, shown) in [
            ("ip:192.0.2.1", "ip:192.0.2.1"),
            ("192.0.2.1", "ip:192.0.2.1"),
            ("192.0.2.1/32", "ip:192.0.2.1"),
            ("net:10.0.0.0/8", "net:10.0.0.0/8"),
            ("2001:db8::/32", "net:2001:db8::/32"),
            ("::ffff:192.0.2.1", "ip:192.0.2.1"),
            ("consumer:alice", "consumer:alice"),
        ] {
            let k = BanKey::parse(text).unwrap();
            assert_eq!(k.to_string(), shown);
            assert_eq!(BanKey::parse(shown).unwrap(), k);
        }
        for bad in [
            "",
            "ip:",
            "net:10.1.0.0/8",
            "consumer:",
            "host:x",
            "consumer:a\nb",
        ] {
            assert!(BanKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
