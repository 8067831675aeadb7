//! The real client address behind trusted proxies.
//!
//! Only a peer in the trusted set may speak for someone else. From it, the forwarding
//! header is read from the right (the hop nearest to us first); each address that is
//! itself a trusted proxy passes the question one hop further left, and the first address
//! that is not trusted is the client. Everything left of it was written by the client and
//! is never believed. A hop that cannot be read stops the walk: the caller refuses the
//! request, or keeps the nearest address it could verify.

use crate::IpSet;
use std::net::IpAddr;

/// Which header trusted proxies fill in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderSource {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    XForwardedFor,
    /// `Forwarded: for=client, for="[2001:db8::1]:4711"` (RFC 7239).
    Forwarded,
}

impl HeaderSource {
    /// The header's name, lower case.
    pub fn header(self) -> &'static str {
        match self {
            HeaderSource::XForwardedFor => "x-forwarded-for",
            HeaderSource::Forwarded => "forwarded",
        }
    }
}

/// What was learnt about the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// The client's address.
    pub client: IpAddr,
    /// The verified path from the client to the peer, client first, peer excluded: what
    /// the next hop's `X-Forwarded-For` starts with (the peer is appended after it).
    pub chain: Vec<IpAddr>,
}

/// A forwarding header that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIpError {
    /// What was wrong (never the header's text: it is the client's).
    pub reason: &'static str,
    /// The nearest address that was verified, for callers that ignore malformed headers.
    pub fallback: Resolved,
}

/// Client address resolution for one configuration.
#[derive(Debug, Clone, Default)]
pub struct ClientIp {
    trusted: IpSet,
    source: Option<HeaderSource>,
}

/// One hop as written in the header.
enum Hop {
    Addr(IpAddr),
    /// `unknown` or an obfuscated identifier (RFC 7239 §6): a hop with no address.
    Hidden,
}

/// Longest chain walked: proxies in front of a gateway are a handful; a longer trusted
/// chain is refused rather than walked without bound.
const MAX_HOPS: usize = 64;

impl ClientIp {
    /// `trusted`: the proxies allowed to speak for others; `source`: the header they fill.
    pub fn new(trusted: IpSet, source: HeaderSource) -> ClientIp {
        ClientIp {
            trusted,
            source: Some(source),
        }
    }

    /// Whether `peer` is a proxy trusted to speak for others.
    pub fn trusts(&self, peer: std::net::IpAddr) -> bool {
        self.trusted.contains(peer)
    }

    /// The header to read, or `None` when no proxy is trusted (nothing needs reading).
    pub fn header(&self) -> Option<&'static str> {
        match &self.source {
            Some(s) if !self.trusted.is_empty() => Some(s.header()),
            _ => None,
        }
    }

    /// Whether `ip` is one of the trusted proxies.
    pub fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.contains(ip)
    }

    /// The client of a request from `peer` carrying `values`: every value of the
    /// configured header, in the order received (repeated headers are one list).
    pub fn resolve(&self, peer: IpAddr, values: &[&[u8]]) -> Result<Resolved, ClientIpError> {
        let peer = peer.to_canonical();
        let direct = Resolved {
            client: peer,
            chain: Vec::new(),
        };
        let Some(source) = self.source else {
            return Ok(direct);
        };
        if !self.trusted.contains(peer) {
            return Ok(direct);
        }
        let mut chain_rev: Vec<IpAddr> = Vec::new();
        let mut current = peer;
        let elements = values.iter().rev().flat_map(|v| v.rsplit(|b| *b == b','));
        let fail = |reason, chain_rev: &[IpAddr], current| ClientIpError {
            reason,
            fallback: Resolved {
                client: current,
                chain: chain_rev.iter().rev().copied().collect(),
            },
        };
        for element in elements {
            if chain_rev.len() >= MAX_HOPS {
                return Err(fail("too many forwarding hops", &chain_rev, current));
            }
            let hop = match source {
                HeaderSource::XForwardedFor => xff_hop(element),
                HeaderSource::Forwarded => forwarded_hop(element),
            };
            match hop {
                Err(reason) => return Err(fail(reason, &chain_rev, current)),
                Ok(Hop::Hidden) => break,
                Ok(Hop::Addr(ip)) => {
                    let ip = ip.to_canonical();
                    chain_rev.push(ip);
                    current = ip;
                    if !self.trusted.contains(ip) {
                        break;
                    }
                }
            }
        }
        chain_rev.reverse();
        Ok(Resolved {
            client: current,
            chain: chain_rev,
        })
    }
}

fn trim(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

/// An address, optionally with a port: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1`,
/// `[2001:db8::1]`, `[2001:db8::1]:80`.
fn address(b: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(b).ok()?;
    if let Some(rest) = s.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        let ok_port = after.is_empty() || after.strip_prefix(':').is_some_and(port);
        return if ok_port {
            inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6)
        } else {
            None
        };
    }
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    let (host, p) = s.rsplit_once(':')?;
    if !port(p) {
        return None;
    }
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn port(p: &str) -> bool {
    p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
}

fn xff_hop(element: &[u8]) -> Result<Hop, &'static str> {
    let e = trim(element);
    if e.is_empty() {
        return Err("empty X-Forwarded-For element");
    }
    address(e)
        .map(Hop::Addr)
        .ok_or("X-Forwarded-For element is not an IP address")
}

/// One `Forwarded` element: `;`-separated `name=value` pairs, of which `for` names the hop.
fn forwarded_hop(element: &[u8]) -> Result<Hop, &'static str> {
    let e = trim(element);
    if e.is_empty() {
        return Err("empty Forwarded element");
    }
    let mut found: Option<&[u8]> = None;
    for pair in e.split(|b| *b == b';') {
        let pair = trim(pair);
        if pair.is_empty() {
            continue;
        }
        let eq = pair
            .iter()
            .position(|b| *b == b'=')
            .ok_or("Forwarded pair without '='")?;
        let (name, value) = (trim(&pair[..eq]), trim(&pair[eq + 1..]));
        if !name.eq_ignore_ascii_case(b"for") {
            continue;
        }
        if found.is_some() {
            return Err("Forwarded element names two 'for' hops");
        }
        found = Some(value);
    }
    // An element without `for` does not say who sent it.
    let Some(value) = found else {
        return Ok(Hop::Hidden);
    };
    let value = match value {
        [b'"', inner @ .., b'"'] => {
            if inner.contains(&b'"') || inner.contains(&b'\\') {
                return Err("Forwarded value with escapes");
            }
            inner
        }
        [b'"', ..] | [.., b'"'] => return Err("Forwarded value with an unbalanced quote"),
        v => v,
    };
    if value.eq_ignore_ascii_case(b"unknown") || value.first() == Some(&b'_') {
        return Ok(Hop::Hidden);
    }
    // RFC 7239: an IPv6 node is always in brackets (and so quoted).
    if value.first() != Some(&b'[') && value.iter().filter(|b| **b == b':').count() > 1 {
        return Err("Forwarded IPv6 address without brackets");
    }
    address(value)
        .map(Hop::Addr)
        .ok_or("Forwarded 'for' is not an IP address")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn xff(trusted: &[&str]) -> ClientIp {
        ClientIp::new(
            IpSet::parse(trusted.iter().copied()).unwrap(),
            HeaderSource::XForwardedFor,
        )
    }

    fn fwd(trusted: &[&str]) -> ClientIp {
        ClientIp::new(
            IpSet::parse(trusted.iter().copied()).unwrap(),
            HeaderSource::Forwarded,
        )
    }

    #[test]
    fn untrusted_peers_speak_only_for_themselves() {
        let c = xff(&["10.0.0.0/8"]);
        let r = c.resolve(ip("198.51.100.7"), &[b"1.2.3.4"]).unwrap();
        assert_eq!(r.client, ip("198.51.100.7"));
        assert!(r.chain.is_empty());
        // Nothing trusted: the header is not even read.
        assert_eq!(ClientIp::default().header(), None);
        let r = ClientIp::default()
            .resolve(ip("10.0.0.1"), &[b"garbage"])
            .unwrap();
        assert_eq!(r.client, ip("10.0.0.1"));
    }

    #[test]
    fn walks_from_the_right_past_trusted_hops_only() {
        let c = xff(&["10.0.0.0/8"]);
        // The client wrote "6.6.6.6" itself; the load balancer appended what it saw.
        let r = c
            .resolve(ip("10.0.0.2"), &[b"6.6.6.6, 203.0.113.9, 10.0.0.1"])
            .unwrap();
        assert_eq!(r.client, ip("203.0.113.9"));
        assert_eq!(r.chain, vec![ip("203.0.113.9"), ip("10.0.0.1")]);
        // Repeated headers are one list, in order.
        let r = c
            .resolve(ip("10.0.0.2"), &[b"6.6.6.6", b"203.0.113.9", b"10.0.0.1"])
            .unwrap();
        assert_eq!(r.client, ip("203.0.113.9"));
        // Every hop trusted: the leftmost is the client.
        let r = c.resolve(ip("10.0.0.2"), &[b"10.9.9.9,10.0.0.1"]).unwrap();
        assert_eq!(r.client, ip("10.9.9.9"));
        // A trusted peer that sends no header is the client.
        assert_eq!(
            c.resolve(ip("10.0.0.2"), &[]).unwrap().client,
            ip("10.0.0.2")
        );
    }

    #[test]
    fn ports_brackets_and_mapped_addresses() {
        let c = xff(&["10.0.0.0/8", "2001:db8::/32"]);
        for (v, want) in [
            (&b"203.0.113.9:5555"[..], "203.0.113.9"),
            (b"[2001:db9::1]:80", "2001:db9::1"),
            (b"2001:db9::1", "2001:db9::1"),
            (b"::ffff:203.0.113.9", "203.0.113.9"),
        ] {
            assert_eq!(c.resolve(ip("10.0.0.2"), &[v]).unwrap().client, ip(want));
        }
        assert_eq!(
            c.resolve(ip("::ffff:10.0.0.2"), &[b"203.0.113.9"])
                .unwrap()
                .client,
            ip("203.0.113.9")
        );
    }

    #[test]
    fn malformed_hops_stop_at_the_last_verified_address() {
        let c = xff(&["10.0.0.0/8"]);
        for bad in [
            &b"203.0.113.9, nonsense, 10.0.0.1"[..],
            b"203.0.113.9,,10.0.0.1",
            b"203.0.113.9, 10.0.0.1,",
            b"1.2.3.4:99999",
            b"[::1",
            b"010.0.0.1",
            b"\xff\xfe",
        ] {
            let e = c.resolve(ip("10.0.0.2"), &[bad]).unwrap_err();
            assert_ne!(e.fallback.client, ip("203.0.113.9"), "{bad:?}");
            assert!(c.is_trusted(e.fallback.client), "{bad:?}");
        }
        let e = c
            .resolve(ip("10.0.0.2"), &[b"203.0.113.9, x, 10.0.0.1"])
            .unwrap_err();
        assert_eq!(e.fallback.client, ip("10.0.0.1"));
        let long = vec!["10.1.1.1"; 100].join(",");
        assert!(c.resolve(ip("10.0.0.2"), &[long.as_bytes()]).is_err());
    }

    #[test]
    fn forwarded_header_per_rfc_7239() {
        let c = fwd(&["10.0.0.0/8"]);
        let r = c
            .resolve(
                ip("10.0.0.2"),
                &[b"for=6.6.6.6, for=\"[2001:db8:cafe::17]:4711\";proto=https, For=10.0.0.1;by=10.0.0.2"],
            )
            .unwrap();
        assert_eq!(r.client, ip("2001:db8:cafe::17"));
        let r = c
            .resolve(
                ip("10.0.0.2"),
                &[b"for=192.0.2.60;proto=http;by=203.0.113.43"],
            )
            .unwrap();
        assert_eq!(r.client, ip("192.0.2.60"));
        // `unknown` and obfuscated hops: the nearest verified address is the client.
        for hidden in [
            &b"for=unknown, for=10.0.0.1"[..],
            b"for=_hidden, for=10.0.0.1",
            b"proto=https, for=10.0.0.1",
        ] {
            assert_eq!(
                c.resolve(ip("10.0.0.2"), &[hidden]).unwrap().client,
                ip("10.0.0.1")
            );
        }
        for bad in [
            &b"for=2001:db8::1"[..],
            b"for=\"1.2.3.4",
            b"for=1.2.3.4;for=5.6.7.8",
            b"for",
            b"for=\"a\\\"b\"",
            b"for=nonsense",
        ] {
            assert!(c.resolve(ip("10.0.0.2"), &[bad]).is_err(), "{bad:?}");
        }
    }
}
