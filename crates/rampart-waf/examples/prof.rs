//! A benign GET through the whole CRS v4 at paranoia level 1, repeated: a steady workload
//! for profilers. Wall time on a shared VM is noisy, so this prints the best batch and the
//! heap allocations per request; `valgrind --tool=callgrind --toggle-collect='*run_phase*'`
//! on it gives a deterministic instruction count.
//! Run: `cargo run --release -p rampart-waf --example prof [requests per batch]`
//! (`BATCHES=n` sets the number of batches, 30 by default; `JSON=1` sends the benchmark's
//! 2 KiB JSON order as a POST instead; `UNIQUE=1` gives every request a User-Agent and a
//! query value never seen before, so that nothing remembered across requests helps).

// The only unsafe code in the workspace (denied everywhere else): counting allocations
// needs a `GlobalAlloc`, an unsafe trait; it forwards to mimalloc unchanged.
#![allow(unsafe_code)]

#[path = "../benches/workload/mod.rs"]
mod workload;

use mimalloc::MiMalloc;
use std::alloc::{GlobalAlloc, Layout};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Counts allocations; allocates with mimalloc, as the gateway does (`src/main.rs`).
struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { MiMalloc.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { MiMalloc.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let rs = workload::ruleset(1);
    let json = std::env::var_os("JSON").is_some();
    let body = if json {
        workload::json_body()
    } else {
        Vec::new()
    };
    let length = body.len().to_string();
    let (method, uri, headers) = if json {
        let h = workload::headers(&[
            ("Content-Type", "application/json"),
            ("Content-Length", &length),
        ]);
        ("POST", "/api/orders", h)
    } else {
        ("GET", "/api/items?page=2&sort=name", workload::headers(&[]))
    };
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("requests per batch"))
        .unwrap_or(200);
    let batches: u32 = std::env::var("BATCHES")
        .map(|b| b.parse().expect("BATCHES"))
        .unwrap_or(30);
    let unique = std::env::var_os("UNIQUE").is_some();
    // Made before the clock starts: formatting is not the engine's cost.
    let variants: Vec<_> = (0..if unique { n * batches } else { 0 })
        .map(|k| workload::new_client(uri, &headers, k))
        .collect();
    let mut best = std::time::Duration::MAX;
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    for b in 0..batches {
        let t0 = std::time::Instant::now();
        for k in 0..n {
            let matched = match variants.get((b * n + k) as usize) {
                Some((u, h)) => workload::request(&rs, method, u, h, &body),
                None => workload::request(&rs, method, uri, &headers, &body),
            };
            assert_eq!(matched, 0, "a benign request matched");
        }
        best = best.min(t0.elapsed() / n);
    }
    let allocs = (ALLOCS.load(Ordering::Relaxed) - allocs_before) as f64 / f64::from(n * batches);
    println!("best batch: {best:?} per request; {allocs:.0} heap allocations per request");
}
