//! The engine runs the whole CRS v4: a clean request matches nothing, an SQL injection is
//! detected (942100, libinjection) and blocked by the anomaly score (949110).

use rampart_waf::engine::Phase;
use rampart_waf::engine::{Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};

fn crs_ruleset(extra: &str) -> Ruleset {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");
    let mut d = parse_files(&[&format!("{base}/rules/crs-setup.conf.example")]).unwrap();
    d.extend(parse_str(extra, "<test>").unwrap());
    d.extend(parse_files(&[&format!("{base}/rules/*.conf")]).unwrap());
    Ruleset::compile(&d, std::path::Path::new(&format!("{base}/rules"))).unwrap()
}

fn run(
    rs: &Ruleset,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (Vec<u64>, Option<u16>) {
    let mut t = Transaction::new(rs, "192.0.2.10");
    let h: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect();
    t.request_headers(method, uri, "HTTP/1.1", h);
    t.run_phase(Phase::RequestHeaders);
    t.request_body(body);
    t.run_phase(Phase::RequestBody);
    (
        t.matched.iter().map(|m| m.id).collect(),
        t.interruption.as_ref().map(|i| i.status),
    )
}

const BROWSER: &[(&str, &str)] = &[
    ("Host", "shop.example.test"),
    (
        "User-Agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
    ),
    ("Accept", "text/html,application/xhtml+xml"),
    ("Accept-Language", "en-US,en;q=0.5"),
];

#[test]
fn clean_request_matches_nothing_and_sqli_is_blocked() {
    let rs = crs_ruleset("SecRuleEngine On\nSecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=1\"\n");
    assert!(rs.rule_count() > 500, "{}", rs.rule_count());
    let (ids, status) = run(&rs, "GET", "/products?id=42&sort=price", BROWSER, b"");
    assert_eq!(
        (ids.as_slice(), status),
        (&[][..], None),
        "clean request matched"
    );
    let (ids, status) = run(
        &rs,
        "GET",
        "/products?id=1%27%20OR%20%271%27%3D%271",
        BROWSER,
        b"",
    );
    assert!(ids.contains(&942100), "{ids:?}");
    assert!(ids.contains(&949110), "{ids:?}");
    assert_eq!(status, Some(403));
    // Detection only: matched and logged, never interrupted.
    let rs = crs_ruleset("SecRuleEngine DetectionOnly\n");
    let (ids, status) = run(
        &rs,
        "GET",
        "/products?id=1%27%20OR%20%271%27%3D%271",
        BROWSER,
        b"",
    );
    assert!(ids.contains(&942100));
    assert_eq!(status, None);
}
