//! Issue targets for network lists: a list of 1,000,000 CIDRs loads in ≤ 2 s and takes
//! ≤ 150 MB; a lookup costs ≤ 200 ns. `cargo bench -p rampart-net --bench ipset`.
//! The load group parses the list as text (as from a file); before it, the resident
//! memory of one built set is printed.

// `criterion_group!` expands to a `pub fn` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_net::IpSetBuilder;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

fn rng(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// A million networks: 900k IPv4 (/16 to /32) and 100k IPv6 (/32 to /128), as list text.
fn million_line_list() -> String {
    let mut r = rng(0x2545_f491_4f6c_dd1d);
    let mut out = String::with_capacity(24 << 20);
    for i in 0..1_000_000u32 {
        if i % 10 == 9 {
            let p = 32 + (r() % 97) as u32;
            let bits = (u128::from(r()) << 64 | u128::from(r()))
                & !(u128::MAX.checked_shr(p).unwrap_or(0));
            out.push_str(&format!("{}/{p}\n", Ipv6Addr::from(bits)));
        } else {
            let p = 16 + (r() % 17) as u32;
            let bits = (r() as u32) & !(u32::MAX.checked_shr(p).unwrap_or(0));
            out.push_str(&format!("{}/{p}\n", Ipv4Addr::from(bits)));
        }
    }
    out
}

fn rss_mb() -> f64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = s
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1 << 20) as f64
}

fn bench(c: &mut Criterion) {
    let text = million_line_list();
    let before = rss_mb();
    let mut b = IpSetBuilder::default();
    b.add_text(&text, "bench", 1).unwrap();
    let set = b.build();
    println!(
        "1,000,000 networks → {} merged ranges; resident memory +{:.1} MB (the set, after its builder is freed)",
        set.ranges(),
        rss_mb() - before
    );
    let mut g = c.benchmark_group("ipset");
    g.sample_size(10);
    g.bench_function("load_1m_from_text", |bch| {
        bch.iter(|| {
            let mut b = IpSetBuilder::default();
            b.add_text(black_box(&text), "bench", 1).unwrap();
            black_box(b.build())
        })
    });
    g.finish();
    let mut r = rng(7);
    let probes: Vec<IpAddr> = (0..4096)
        .map(|i| {
            if i % 10 == 9 {
                IpAddr::V6(Ipv6Addr::from(u128::from(r()) << 64 | u128::from(r())))
            } else {
                IpAddr::V4(Ipv4Addr::from(r() as u32))
            }
        })
        .collect();
    let mut i = 0;
    c.bench_function("ipset/lookup_in_1m", |bch| {
        bch.iter(|| {
            i = (i + 1) & 4095;
            black_box(set.contains(black_box(probes[i])))
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
