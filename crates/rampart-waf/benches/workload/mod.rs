//! The workload shared by the criterion bench (`benches/crs.rs`) and the profiling loop
//! (`examples/prof.rs`): CRS v4 from `../shared/crs`, a browser's GET headers, a 2 KiB JSON
//! order, and one full request through phases 1–5.

use rampart_waf::engine::Phase;
use rampart_waf::engine::{Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};

pub const CRS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

pub fn ruleset(pl: u8) -> Ruleset {
    let mut d = parse_files(&[&format!("{CRS}/rules/crs-setup.conf.example")]).unwrap();
    let extra = format!(
        "SecRuleEngine On\nSecAction \"id:900000,phase:1,pass,nolog,\
         setvar:tx.blocking_paranoia_level={pl}\"\n"
    );
    d.extend(parse_str(&extra, "<workload>").unwrap());
    d.extend(parse_files(&[&format!("{CRS}/rules/*.conf")]).unwrap());
    Ruleset::compile(&d, std::path::Path::new(&format!("{CRS}/rules"))).unwrap()
}

pub fn headers(extra: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
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

/// Request `k` of a stream where every request comes from a new client: a User-Agent and
/// a last query value never seen before (`uri` must end with a query value), so that no
/// answer remembered from an earlier request applies. Same shape as the original.
#[allow(dead_code)] // Not every user of the workload measures this.
pub fn new_client(
    uri: &str,
    headers: &[(String, Vec<u8>)],
    k: u32,
) -> (String, Vec<(String, Vec<u8>)>) {
    let h = headers
        .iter()
        .map(|(n, v)| {
            let mut v = v.clone();
            if n.eq_ignore_ascii_case("user-agent") {
                v.extend_from_slice(format!(" Build/{k}").as_bytes());
            }
            (n.clone(), v)
        })
        .collect();
    (format!("{uri}{k}"), h)
}

/// A realistic order document, padded with line items to about 2 KiB.
pub fn json_body() -> Vec<u8> {
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

pub fn request(
    rs: &Ruleset,
    method: &str,
    uri: &str,
    h: &[(String, Vec<u8>)],
    body: &[u8],
) -> usize {
    let mut t = Transaction::new(rs, "192.0.2.10");
    t.request_headers(method, uri, "HTTP/1.1", h.to_vec());
    t.run_phase(Phase::RequestHeaders);
    t.request_body(body);
    t.run_phase(Phase::RequestBody);
    t.response(200, &[], b"");
    for p in Phase::RESPONSE {
        t.run_phase(p);
    }
    t.matched.len()
}
