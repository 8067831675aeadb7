//! Cost of one full request (phases 1–5, empty 200 response) through the whole CRS v4, at
//! paranoia levels 1 and 2. Run: `cargo bench -p rampart-waf --bench crs`.

// `criterion_group!` expands to a `pub fn` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

mod workload;

// The allocator the gateway runs the engine with (`src/main.rs`), so the figures are the
// ones a request pays there.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use workload::{headers, json_body, new_client, request, ruleset};

fn bench(c: &mut Criterion) {
    let pl1 = ruleset(1);
    let pl2 = ruleset(2);
    let get = headers(&[]);
    let body = json_body();
    let post = headers(&[
        ("Content-Type", "application/json"),
        ("Content-Length", &body.len().to_string()),
    ]);
    let benign = "/api/items?page=2&sort=name";
    let sqli = "/api/items?id=1'%20OR%20'1'='1'%20--";
    assert_eq!(
        request(&pl1, "GET", benign, &get, b""),
        0,
        "benign GET matched"
    );
    assert_eq!(
        request(&pl1, "POST", "/api/orders", &post, &body),
        0,
        "JSON matched"
    );
    assert!(
        request(&pl1, "GET", sqli, &get, b"") > 0,
        "SQLi not detected"
    );

    let mut g = c.benchmark_group("crs");
    g.bench_function("pl1_benign_get", |b| {
        b.iter(|| request(&pl1, "GET", black_box(benign), &get, b""))
    });
    // Every request from a new client (a User-Agent and a query value never seen): what
    // the shared detector answers cannot help with.
    let mut k = 0;
    g.bench_function("pl1_benign_get_new_client", |b| {
        b.iter_batched(
            || {
                k += 1;
                new_client(benign, &get, k)
            },
            |(u, h)| request(&pl1, "GET", &u, &h, b""),
            criterion::BatchSize::SmallInput,
        )
    });
    g.bench_function("pl1_json_post_2k", |b| {
        b.iter(|| request(&pl1, "POST", "/api/orders", &post, black_box(&body)))
    });
    g.bench_function("pl1_sqli_get", |b| {
        b.iter(|| request(&pl1, "GET", black_box(sqli), &get, b""))
    });
    g.bench_function("pl2_benign_get", |b| {
        b.iter(|| request(&pl2, "GET", black_box(benign), &get, b""))
    });
    g.bench_function("pl2_sqli_get", |b| {
        b.iter(|| request(&pl2, "GET", black_box(sqli), &get, b""))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
