//! Sets of IP networks: each family kept as sorted, merged, non-adjacent ranges, so a
//! lookup is one binary search (about 20 steps for a million networks) and memory is 8
//! (IPv4) or 32 (IPv6) bytes per range, whatever the networks' sizes.

use crate::Error;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One network: an address and a prefix length. A bare address is a /32 or /128.
pub fn parse_net(s: &str) -> Result<(IpAddr, u8), Error> {
    let s = s.trim();
    let (addr, prefix) = match s.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (s, None),
    };
    let ip: IpAddr = addr
        .parse()
        .map_err(|_| Error::NotAnAddress(s.to_string()))?;
    let width = if ip.is_ipv4() { 32 } else { 128 };
    let prefix = match prefix {
        None => width,
        Some(p) => match p.parse::<u8>() {
            Ok(n) if n <= width && !p.starts_with('+') => n,
            _ => return Err(Error::BadPrefix(s.to_string())),
        },
    };
    let (lo, _) = range(ip, prefix);
    let network = from_bits(ip, lo);
    if network != ip {
        return Err(Error::HostBits {
            given: s.to_string(),
            network: format!("{network}/{prefix}"),
        });
    }
    Ok((ip, prefix))
}

fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn from_bits(like: IpAddr, b: u128) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(b as u32)),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(b)),
    }
}

/// First and last address of `ip/prefix`, as integers of the family's width.
fn range(ip: IpAddr, prefix: u8) -> (u128, u128) {
    let width: u32 = if ip.is_ipv4() { 32 } else { 128 };
    let host = width - u32::from(prefix);
    let mask: u128 = if host == 0 {
        0
    } else if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    let b = bits(ip);
    (b & !mask, (b & !mask) | mask)
}

/// Whether `ip` is in `net/prefix` (same family only; IPv4-mapped addresses count as IPv4).
pub fn net_contains(net: IpAddr, prefix: u8, ip: IpAddr) -> bool {
    let (net, ip) = (net.to_canonical(), ip.to_canonical());
    if net.is_ipv4() != ip.is_ipv4() {
        return false;
    }
    let (lo, hi) = range(net, prefix);
    (lo..=hi).contains(&bits(ip))
}

/// An IPv4 address written as IPv6 (`::ffff:a.b.c.d`) is the IPv4 address: clients on
/// dual-stack sockets show up this way and must meet the same lists.
fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Collects networks; [`IpSetBuilder::build`] sorts and merges them.
#[derive(Default)]
pub struct IpSetBuilder {
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

impl IpSetBuilder {
    /// Add one network.
    pub fn add(&mut self, ip: IpAddr, prefix: u8) {
        match ip {
            IpAddr::V4(_) => {
                let (lo, hi) = range(ip, prefix);
                self.v4.push((lo as u32, hi as u32));
            }
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                // A network inside ::ffff:0:0/96 is an IPv4 network.
                Some(v4) if prefix >= 96 => self.add(IpAddr::V4(v4), prefix - 96),
                _ => self.v6.push(range(ip, prefix)),
            },
        }
    }

    /// Parse and add one network.
    pub fn add_str(&mut self, s: &str) -> Result<(), Error> {
        let (ip, prefix) = parse_net(s)?;
        self.add(ip, prefix);
        Ok(())
    }

    /// Add a list file's networks: one per line, `#` starts a comment, blank lines are
    /// skipped. Errors name `file` and the line; at most `max_errors` are collected.
    pub fn add_text(
        &mut self,
        text: &str,
        file: &str,
        max_errors: usize,
    ) -> Result<(), Vec<String>> {
        let mut errs = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            if let Err(e) = self.add_str(entry) {
                if errs.len() < max_errors {
                    errs.push(format!("{file}:{}: {e}", n + 1));
                }
            }
        }
        if errs.is_empty() {
            Ok(())
        } else {
            Err(errs)
        }
    }

    /// The set: ranges sorted, overlapping and adjacent ones merged.
    pub fn build(self) -> IpSet {
        IpSet {
            v4: merge(self.v4, |a| a.checked_add(1)),
            v6: merge(self.v6, |a| a.checked_add(1)),
        }
    }
}

fn merge<T: Ord + Copy>(mut r: Vec<(T, T)>, next: impl Fn(T) -> Option<T>) -> Box<[(T, T)]> {
    r.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(r.len());
    for (lo, hi) in r {
        if let Some(last) = out.last_mut() {
            // Overlapping, or adjacent (the last range ends just before this one).
            if lo <= last.1 || next(last.1) == Some(lo) {
                last.1 = last.1.max(hi);
                continue;
            }
        }
        out.push((lo, hi));
    }
    out.into_boxed_slice()
}

/// An immutable set of IPv4 and IPv6 networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpSet {
    v4: Box<[(u32, u32)]>,
    v6: Box<[(u128, u128)]>,
}

fn find<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && ranges[i - 1].1 >= x
}

impl IpSet {
    /// Parse every entry; all errors are returned, each with the entry.
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<IpSet, Vec<Error>> {
        let mut b = IpSetBuilder::default();
        let errs: Vec<_> = entries
            .into_iter()
            .filter_map(|e| b.add_str(e).err())
            .collect();
        if errs.is_empty() {
            Ok(b.build())
        } else {
            Err(errs)
        }
    }

    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match canonical(ip) {
            IpAddr::V4(a) => find(&self.v4, u32::from(a)),
            IpAddr::V6(a) => find(&self.v6, u128::from(a)),
        }
    }

    /// Whether any address of `net/prefix` is in the set.
    pub fn overlaps_net(&self, net: IpAddr, prefix: u8) -> bool {
        fn any<T: Ord + Copy>(ranges: &[(T, T)], lo: T, hi: T) -> bool {
            let i = ranges.partition_point(|r| r.1 < lo);
            i < ranges.len() && ranges[i].0 <= hi
        }
        let (lo, hi) = range(net, prefix);
        match net {
            IpAddr::V4(_) => any(&self.v4, lo as u32, hi as u32),
            IpAddr::V6(_) => any(&self.v6, lo, hi),
        }
    }

    /// Whether the set holds no network.
    pub fn is_empty(&self) -> bool {
        self.v4.is_empty() && self.v6.is_empty()
    }

    /// Merged ranges held (a measure of memory: 8 or 32 bytes each).
    pub fn ranges(&self) -> usize {
        self.v4.len() + self.v6.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_strictly() {
        assert_eq!(parse_net("10.0.0.0/8"), Ok((ip("10.0.0.0"), 8)));
        assert_eq!(parse_net(" 192.0.2.7 "), Ok((ip("192.0.2.7"), 32)));
        assert_eq!(parse_net("2001:db8::/32"), Ok((ip("2001:db8::"), 32)));
        assert_eq!(parse_net("0.0.0.0/0"), Ok((ip("0.0.0.0"), 0)));
        assert_eq!(parse_net("::/0"), Ok((ip("::"), 0)));
        for bad in [
            "10.0.0.0/33",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "::/129",
            "10.0.0/8",
            "010.0.0.1",
            "x",
            "",
            "10.0.0.0/8/8",
        ] {
            assert!(parse_net(bad).is_err(), "{bad}");
        }
        let e = parse_net("10.1.2.3/8").unwrap_err();
        assert_eq!(
            e.to_string(),
            "10.1.2.3/8 has bits set below its prefix; did you mean 10.0.0.0/8?"
        );
    }

    #[test]
    fn lookups_at_the_edges_of_ranges() {
        let s = IpSet::parse([
            "10.0.0.0/8",
            "192.0.2.0/24",
            "192.0.3.0/24",
            "2001:db8::/32",
            "203.0.113.5",
        ])
        .unwrap();
        for yes in [
            "10.0.0.0",
            "10.255.255.255",
            "192.0.2.0",
            "192.0.3.255",
            "2001:db8::1",
            "2001:db8:ffff:ffff::",
            "203.0.113.5",
            "::ffff:10.1.1.1",
        ] {
            assert!(s.contains(ip(yes)), "{yes}");
        }
        for no in [
            "9.255.255.255",
            "11.0.0.0",
            "192.0.4.0",
            "192.0.1.255",
            "2001:db9::",
            "203.0.113.4",
            "203.0.113.6",
            "::a00:1",
        ] {
            assert!(!s.contains(ip(no)), "{no}");
        }
        // The two adjacent /24s and the /8 merge into fewer ranges.
        assert_eq!(s.ranges(), 4);
    }

    #[test]
    fn whole_families_and_mapped_networks() {
        let all4 = IpSet::parse(["0.0.0.0/0"]).unwrap();
        assert!(all4.contains(ip("255.255.255.255")) && !all4.contains(ip("::1")));
        let all6 = IpSet::parse(["::/0"]).unwrap();
        assert!(all6.contains(ip("ffff::")) && !all6.contains(ip("1.2.3.4")));
        let mapped = IpSet::parse(["::ffff:10.0.0.0/104"]).unwrap();
        assert!(mapped.contains(ip("10.9.9.9")));
    }

    #[test]
    fn overlapping_and_nested_networks_merge() {
        let s = IpSet::parse(["10.0.0.0/16", "10.0.128.0/17", "10.0.0.0/8", "10.0.0.5"]).unwrap();
        assert_eq!(s.ranges(), 1);
        assert!(s.contains(ip("10.200.0.1")));
    }

    #[test]
    fn networks_overlap_and_contain() {
        let s = IpSet::parse(["192.0.2.0/24", "2001:db8::/32"]).unwrap();
        assert!(s.overlaps_net(ip("192.0.0.0"), 16));
        assert!(s.overlaps_net(ip("192.0.2.128"), 25));
        assert!(!s.overlaps_net(ip("192.0.3.0"), 24));
        assert!(s.overlaps_net(ip("2001::"), 16));
        assert!(!s.overlaps_net(ip("2002::"), 16));
        assert!(net_contains(ip("10.0.0.0"), 8, ip("10.9.9.9")));
        assert!(net_contains(ip("10.0.0.0"), 8, ip("::ffff:10.9.9.9")));
        assert!(!net_contains(ip("10.0.0.0"), 8, ip("11.0.0.0")));
        assert!(!net_contains(ip("::"), 0, ip("10.0.0.1")));
    }

    #[test]
    fn list_files_name_the_bad_lines() {
        let mut b = IpSetBuilder::default();
        let text = "# office\n10.0.0.0/8  # hq\n\n  192.0.2.1\nnot-an-ip\n10.1.0.0/8\n";
        let errs = b.add_text(text, "lists/office.txt", 10).unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs[0].starts_with("lists/office.txt:5: "), "{}", errs[0]);
        assert!(errs[1].starts_with("lists/office.txt:6: "), "{}", errs[1]);
        let mut b = IpSetBuilder::default();
        b.add_text("10.0.0.0/8\n192.0.2.1 # one\n", "f", 10)
            .unwrap();
        let s = b.build();
        assert!(s.contains(ip("192.0.2.1")) && s.contains(ip("10.3.3.3")));
    }

    /// Random networks against a naive check of every network.
    #[test]
    fn agrees_with_a_linear_scan() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut nets = Vec::new();
        let mut b = IpSetBuilder::default();
        for _ in 0..2000 {
            let prefix = 8 + (rnd() % 25) as u8;
            let (lo, _) = range(IpAddr::V4(Ipv4Addr::from(rnd() as u32)), prefix);
            let net = IpAddr::V4(Ipv4Addr::from(lo as u32));
            b.add(net, prefix);
            nets.push(range(net, prefix));
        }
        let s = b.build();
        for _ in 0..20_000 {
            let a = rnd() as u32;
            let naive = nets
                .iter()
                .any(|(lo, hi)| (*lo..=*hi).contains(&(a as u128)));
            assert_eq!(s.contains(IpAddr::V4(Ipv4Addr::from(a))), naive, "{a}");
        }
    }
}
