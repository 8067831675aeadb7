//! A benign GET through the whole CRS v4 at paranoia level 1, repeated: a steady workload
//! for profilers. Wall time on a shared VM is noisy, so this prints the best batch and the
//! heap allocations per request; `valgrind --tool=callgrind --toggle-collect='*run_phase*'`
//! on it gives a deterministic instruction count.
//! Run: `cargo run --release -p rampart-waf --example prof [requests per batch]`
//! (`BATCHES=n` sets the number of batches, 30 by default; `JSON=1` sends the benchmark's
//! 2 KiB JSON order as a POST instead).

use rampart_waf::engine::{Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

const CRS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

struct Counting;
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn main() {
    let mut d = parse_files(&[&format!("{CRS}/rules/crs-setup.conf.example")]).unwrap();
    d.extend(
        parse_str(
            "SecRuleEngine On\nSecAction \"id:900000,phase:1,pass,nolog,\
             setvar:tx.blocking_paranoia_level=1\"\n",
            "<prof>",
        )
        .unwrap(),
    );
    d.extend(parse_files(&[&format!("{CRS}/rules/*.conf")]).unwrap());
    let rs = Ruleset::compile(&d, std::path::Path::new(&format!("{CRS}/rules"))).unwrap();
    let json = std::env::var_os("JSON").is_some();
    let body = if json { json_body() } else { Vec::new() };
    let length = body.len().to_string();
    let mut headers: Vec<(String, Vec<u8>)> = [
        ("Host", "shop.example.test"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0",
        ),
        ("Accept", "application/json, text/plain, */*"),
        ("Accept-Language", "en-US,en;q=0.5"),
        ("Accept-Encoding", "gzip, deflate, br"),
        ("Connection", "keep-alive"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    let (method, uri) = if json {
        headers.push(("Content-Type".into(), b"application/json".to_vec()));
        headers.push(("Content-Length".into(), length.into_bytes()));
        ("POST", "/api/orders")
    } else {
        ("GET", "/api/items?page=2&sort=name")
    };
    let n: u32 = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("requests per batch"))
        .unwrap_or(200);
    let batches: u32 = std::env::var("BATCHES")
        .map(|b| b.parse().expect("BATCHES"))
        .unwrap_or(30);
    let mut best = std::time::Duration::MAX;
    let allocs_before = ALLOCS.load(Ordering::Relaxed);
    for _ in 0..batches {
        let t0 = std::time::Instant::now();
        for _ in 0..n {
            let mut t = Transaction::new(&rs, "192.0.2.10");
            t.request_headers(method, uri, "HTTP/1.1", &headers);
            t.run_phase(1);
            t.request_body(&body);
            t.run_phase(2);
            t.response(200, &[], b"");
            for p in 3..=std::env::var("LAST_PHASE").map_or(5, |p| p.parse().unwrap()) {
                t.run_phase(p);
            }
            assert!(t.matched.is_empty(), "a benign request matched");
        }
        best = best.min(t0.elapsed() / n);
    }
    let allocs = (ALLOCS.load(Ordering::Relaxed) - allocs_before) as f64 / f64::from(n * batches);
    println!("best batch: {best:?} per request; {allocs:.0} heap allocations per request");
}

/// The criterion bench's order document, about 2 KiB.
fn json_body() -> Vec<u8> {
    let mut items = Vec::new();
    let mut i = 0;
    loop {
        items.push(format!(
            r#"{{"sku":"SKU-{i:05}","name":"Stainless steel water bottle {i}","quantity":{q},"unit_price":{{"amount":"19.90","currency":"EUR"}},"tags":["kitchen","outdoor"]}}"#,
            q = i % 3 + 1
        ));
        let body = format!(
            r#"{{"order":{{"customer":{{"id":81723,"name":"Jane Doe","email":"jane.doe@example.com","address":{{"street":"12 Rue de la Paix","city":"Paris","zip":"75002","country":"FR"}}}},"items":[{}],"notes":"Please leave the parcel at the front desk.","gift":false}}}}"#,
            items.join(",")
        );
        if body.len() >= 2048 {
            return body.into_bytes();
        }
        i += 1;
    }
}
