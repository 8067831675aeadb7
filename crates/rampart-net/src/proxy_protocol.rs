//! The PROXY protocol (HAProxy's, versions 1 and 2): the header a load balancer sends
//! before anything else on a connection, naming the client it accepted. Parsing only: the
//! caller reads bytes, asks [`parse`] whether the header is complete, and hands whatever
//! follows it to TLS or HTTP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Version 2's fixed signature.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest header, CRLF included (the specification's own bound).
const V1_MAX: usize = 107;
/// Version 2 headers larger than this are refused: addresses need 36 bytes, and TLVs
/// (SSL details, unique ids) a few hundred.
const V2_MAX: usize = 16 + 2048;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Bytes the header took; what follows belongs to the connection's protocol.
    pub len: usize,
    /// The client's address; `None` for `UNKNOWN` (v1) and `LOCAL` or unspecified families
    /// (v2: the balancer's own health checks), where the connection's peer is the client.
    pub source: Option<SocketAddr>,
}

/// The outcome of looking at the bytes received so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parse {
    /// A valid header.
    Done(Header),
    /// Valid so far; read more.
    Incomplete,
    /// Not a PROXY header, or a broken one.
    Invalid(&'static str),
}

/// Looks at the start of a connection's bytes.
pub fn parse(buf: &[u8]) -> Parse {
    let sig = buf.len().min(V2_SIGNATURE.len());
    if buf[..sig] == V2_SIGNATURE[..sig] {
        return if buf.len() < 16 {
            Parse::Incomplete
        } else {
            v2(buf)
        };
    }
    let v1 = b"PROXY ";
    let n = buf.len().min(v1.len());
    if buf[..n] == v1[..n] {
        return v1_header(buf);
    }
    Parse::Invalid("no PROXY protocol header")
}

/// A byte that has no place in a v1 header line (it is printable text).
fn control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn v1_header(buf: &[u8]) -> Parse {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        // The same verdict the whole line will get, whatever TCP splits it into: a CR may
        // only be the last byte so far (the start of the CRLF).
        let body = buf.strip_suffix(b"\r").unwrap_or(buf);
        return if buf.len() >= V1_MAX {
            Parse::Invalid("PROXY v1 header too long")
        } else if body.iter().any(|b| control(*b)) {
            Parse::Invalid("PROXY v1 header with a control character")
        } else {
            Parse::Incomplete
        };
    };
    if end + 2 > V1_MAX {
        return Parse::Invalid("PROXY v1 header too long");
    }
    if buf[..end].iter().any(|b| control(*b)) {
        return Parse::Invalid("PROXY v1 header with a control character");
    }
    let Ok(line) = std::str::from_utf8(&buf[..end]) else {
        return Parse::Invalid("PROXY v1 header is not text");
    };
    let parts: Vec<&str> = line.split(' ').collect();
    let len = end + 2;
    match parts.as_slice() {
        ["PROXY", "UNKNOWN", ..] => Parse::Done(Header { len, source: None }),
        ["PROXY", fam @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *fam == "TCP4";
            let addr = |s: &str| -> Option<IpAddr> {
                if v4 {
                    s.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
                } else {
                    s.parse::<Ipv6Addr>().ok().map(IpAddr::V6)
                }
            };
            let port = |p: &str| -> Option<u16> {
                // No sign, no leading zeros beyond "0" itself.
                let digits = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
                (digits && (p == "0" || !p.starts_with('0')))
                    .then(|| p.parse().ok())
                    .flatten()
            };
            match (addr(src), addr(dst), port(sport), port(dport)) {
                (Some(s), Some(_), Some(sp), Some(_)) => Parse::Done(Header {
                    len,
                    source: Some(SocketAddr::new(s, sp)),
                }),
                _ => Parse::Invalid("PROXY v1 header with a bad address or port"),
            }
        }
        _ => Parse::Invalid("PROXY v1 header is malformed"),
    }
}

fn v2(buf: &[u8]) -> Parse {
    let ver_cmd = buf[12];
    if ver_cmd >> 4 != 2 {
        return Parse::Invalid("PROXY v2 header with an unknown version");
    }
    let local = match ver_cmd & 0x0f {
        0 => true,
        1 => false,
        _ => return Parse::Invalid("PROXY v2 header with an unknown command"),
    };
    let fam = buf[13];
    let body = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    let len = 16 + body;
    if len > V2_MAX {
        return Parse::Invalid("PROXY v2 header too long");
    }
    if buf.len() < len {
        return Parse::Incomplete;
    }
    let a = &buf[16..len];
    let source = match (local, fam) {
        (true, _) | (false, 0x00) => None,
        // TCP or UDP over IPv4: source, destination, source port, destination port.
        (false, 0x11 | 0x12) => {
            if a.len() < 12 {
                return Parse::Invalid("PROXY v2 IPv4 addresses are truncated");
            }
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(
                IpAddr::V4(ip),
                u16::from_be_bytes([a[8], a[9]]),
            ))
        }
        (false, 0x21 | 0x22) => {
            if a.len() < 36 {
                return Parse::Invalid("PROXY v2 IPv6 addresses are truncated");
            }
            let mut o = [0u8; 16];
            o.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(o);
            Some(SocketAddr::new(
                IpAddr::V6(ip),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // Unix sockets say nothing about a network client.
        (false, 0x31 | 0x32) => None,
        _ => return Parse::Invalid("PROXY v2 header with an unknown address family"),
    };
    Parse::Done(Header { len, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(p: Parse) -> Option<SocketAddr> {
        match p {
            Parse::Done(h) => h.source,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn version_1() {
        let h = b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\nGET / HTTP/1.1\r\n";
        assert_eq!(
            parse(h),
            Parse::Done(Header {
                len: 45,
                source: Some("192.0.2.1:56324".parse().unwrap())
            })
        );
        assert_eq!(
            src(parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n")),
            Some("[2001:db8::1]:1".parse().unwrap())
        );
        assert_eq!(src(parse(b"PROXY UNKNOWN\r\n")), None);
        assert_eq!(src(parse(b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n")), None);
        for partial in [
            &b"PRO"[..],
            b"PROXY TCP4 192.0.2.1",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\r",
        ] {
            assert_eq!(parse(partial), Parse::Incomplete, "{partial:?}");
        }
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 01 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1\r\n",
            b"PROXY TCP5 192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.2 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.2 1 2\n",
        ] {
            assert!(matches!(parse(bad), Parse::Invalid(_)), "{bad:?}");
        }
        let long = format!("PROXY UNKNOWN {}", "a".repeat(200));
        assert!(matches!(parse(long.as_bytes()), Parse::Invalid(_)));
    }

    fn v2_header(cmd: u8, fam: u8, addrs: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&(addrs.len() as u16).to_be_bytes());
        h.extend_from_slice(addrs);
        h
    }

    #[test]
    fn version_2() {
        let mut v4 = vec![192, 0, 2, 1, 198, 51, 100, 2];
        v4.extend_from_slice(&56324u16.to_be_bytes());
        v4.extend_from_slice(&443u16.to_be_bytes());
        v4.extend_from_slice(&[0x04, 0, 1, 7]); // a TLV (NOOP) after the addresses
        let mut h = v2_header(1, 0x11, &v4);
        let len = h.len();
        h.extend_from_slice(b"\x16\x03\x01");
        assert_eq!(
            parse(&h),
            Parse::Done(Header {
                len,
                source: Some("192.0.2.1:56324".parse().unwrap())
            })
        );
        for cut in [1, 12, 15, 20, len - 1] {
            assert_eq!(parse(&h[..cut]), Parse::Incomplete, "{cut}");
        }
        let mut v6 = vec![0u8; 36];
        v6[0] = 0x20;
        v6[1] = 0x01;
        v6[15] = 1;
        v6[32..34].copy_from_slice(&8080u16.to_be_bytes());
        assert_eq!(
            src(parse(&v2_header(1, 0x21, &v6))),
            Some("[2001::1]:8080".parse().unwrap())
        );
        // LOCAL (health checks) and UNSPEC: the peer is the client.
        assert_eq!(src(parse(&v2_header(0, 0x11, &v4))), None);
        assert_eq!(src(parse(&v2_header(1, 0x00, &[]))), None);
        for bad in [
            v2_header(1, 0x11, &v4[..8]),
            v2_header(1, 0x21, &v6[..20]),
            v2_header(2, 0x11, &v4),
            v2_header(1, 0x41, &v4),
        ] {
            assert!(matches!(parse(&bad), Parse::Invalid(_)), "{bad:?}");
        }
        let mut wrong_version = v2_header(1, 0x11, &v4);
        wrong_version[12] = 0x11;
        assert!(matches!(parse(&wrong_version), Parse::Invalid(_)));
        let huge = v2_header(1, 0x11, &vec![0u8; 4000]);
        assert!(matches!(parse(&huge[..16]), Parse::Invalid(_)));
    }

    /// Any bytes: an answer, never a panic (the connection's first bytes are the client's).
    /// Found by the `proxy_protocol` fuzz target: a NUL inside an UNKNOWN line was refused
    /// while the line was incomplete but accepted once its CRLF arrived, so the verdict
    /// depended on how TCP split the bytes. Now every split gives the same answer.
    #[test]
    fn a_line_gets_one_verdict_however_it_is_split() {
        let mut line = b"PROXY UNKNOWN 8::1 ::00 2 ".to_vec();
        line.extend_from_slice(&[0; 7]);
        line.extend_from_slice(b"0::00 2 44021\r\n");
        let whole = parse(&line);
        assert!(matches!(whole, Parse::Invalid(_)), "{whole:?}");
        for cut in 0..line.len() {
            let p = parse(&line[..cut]);
            assert!(p == whole || p == Parse::Incomplete, "{cut}: {p:?}");
        }
        let ok = b"PROXY UNKNOWN whatever\r\n";
        for cut in 0..ok.len() {
            assert_eq!(parse(&ok[..cut]), Parse::Incomplete, "{cut}");
        }
        assert!(matches!(parse(ok), Parse::Done(_)));
        // A CR that does not start the CRLF is a control character too.
        assert!(matches!(parse(b"PROXY UNKNOWN a\rb"), Parse::Invalid(_)));
        assert!(matches!(
            parse(b"PROXY UNKNOWN a\rb\r\n"),
            Parse::Invalid(_)
        ));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for n in 0..20_000usize {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 64) as usize;
            let mut b: Vec<u8> = (0..len).map(|i| (seed >> (i % 8 * 8)) as u8).collect();
            if n % 3 == 0 {
                let mut h = V2_SIGNATURE.to_vec();
                h.append(&mut b);
                b = h;
            } else if n % 3 == 1 {
                let mut h = b"PROXY ".to_vec();
                h.append(&mut b);
                b = h;
            }
            let _ = parse(&b);
        }
    }
}
