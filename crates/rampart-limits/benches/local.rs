//! Local limiter decision cost with one million keys present (target < 200 ns).
use criterion::{criterion_group, criterion_main, Criterion};
use rampart_limits::local::{hash_key, Gcra};

fn bench(c: &mut Criterion) {
    let g = Gcra::new(2_000_000);
    let keys: Vec<u64> = (0..1_000_000u32)
        .map(|i| hash_key(&std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string()))
        .collect();
    for k in &keys {
        g.step(*k, 0, 1_000_000, 10_000_000, 0);
    }
    let mut i = 0usize;
    c.bench_function("gcra_decision_1m_keys", |b| {
        b.iter(|| {
            i = (i + 7919) % keys.len();
            g.step(keys[i], g.now_ns(), 1_000_000, 10_000_000, 0)
        })
    });
    let ip = "203.0.113.77";
    c.bench_function("gcra_decision_with_key_hash", |b| {
        b.iter(|| g.step(hash_key(ip), g.now_ns(), 1_000_000, 10_000_000, 0))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
