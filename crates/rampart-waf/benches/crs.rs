//! Cost of one full request (phases 1–5, empty 200 response) through the whole CRS v4, at
//! paranoia levels 1 and 2. Run: `cargo bench -p rampart-waf --bench crs`.

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_waf::engine::{Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};
use std::hint::black_box;

const CRS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

fn ruleset(pl: u8) -> Ruleset {
    let mut d = parse_files(&[&format!("{CRS}/rules/crs-setup.conf.example")]).unwrap();
    let extra = format!(
        "SecRuleEngine On\nSecAction \"id:900000,phase:1,pass,nolog,\
         setvar:tx.blocking_paranoia_level={pl}\"\n"
    );
    d.extend(parse_str(&extra, "<bench>").unwrap());
    d.extend(parse_files(&[&format!("{CRS}/rules/*.conf")]).unwrap());
    Ruleset::compile(&d, std::path::Path::new(&format!("{CRS}/rules"))).unwrap()
}

fn headers(extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    [
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
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect()
}

/// A realistic order document, padded with line items to about 2 KiB.
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

fn request(rs: &Ruleset, method: &str, uri: &str, h: &[(String, Vec<u8>)], body: &[u8]) -> usize {
    let mut t = Transaction::new(rs, "192.0.2.10");
    t.request_headers(method, uri, "HTTP/1.1", h);
    t.run_phase(1);
    t.request_body(body);
    t.run_phase(2);
    t.response(200, &[], b"");
    for p in 3..=5 {
        t.run_phase(p);
    }
    t.matched.len()
}

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
