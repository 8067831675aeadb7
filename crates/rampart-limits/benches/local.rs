//! Local limiter decision cost with one million keys present (target < 200 ns).

// `criterion_group!` expands to a `pub fn` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_limits::local::{hash_key, Gcra};

fn bench(c: &mut Criterion) {
    // Keys are 64-bit hashes in the limiter; derive them arithmetically so the benchmark
    // loop itself does not add a cache miss (a 1M-entry key array would).
    let mix = |i: u64| {
        let x = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 31)
    };
    let g = Gcra::new(2_000_000);
    for i in 0..1_000_000u64 {
        g.step(mix(i), 0, 1_000_000, 10_000_000, 0);
    }
    let mut i = 0u64;
    c.bench_function("gcra_decision_1m_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % 1_000_000;
            g.step(mix(i), g.now_ns(), 1_000_000, 10_000_000, 0)
        })
    });
    let ip = "203.0.113.77";
    c.bench_function("gcra_decision_with_key_hash", |b| {
        b.iter(|| g.step(hash_key(ip), g.now_ns(), 1_000_000, 10_000_000, 0))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
