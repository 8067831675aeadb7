//! Debian's packaged CRS 3.3 (`apt-get install modsecurity-crs`; scripts/test installs it)
//! loads unchanged — the setup from /etc, the rules and data from /usr/share — and detects
//! an SQL injection. Missing files fail the test: it must not pass by skipping.

use rampart_waf::engine::Phase;
use rampart_waf::engine::{Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};
use std::path::Path;

const SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";
const RULES: &str = "/usr/share/modsecurity-crs/rules";

fn debian_crs3() -> Ruleset {
    for p in [SETUP, RULES] {
        assert!(
            Path::new(p).exists(),
            "{p} is missing: install Debian's modsecurity-crs package"
        );
    }
    let mut d = parse_files(&[SETUP]).unwrap_or_else(|e| panic!("{e}"));
    d.extend(parse_str("SecRuleEngine On\n", "<test>").unwrap());
    d.extend(parse_files(&[&format!("{RULES}/*.conf")]).unwrap_or_else(|e| panic!("{e}")));
    Ruleset::compile(&d, Path::new(RULES)).unwrap_or_else(|e| panic!("{e}"))
}

fn run(rs: &Ruleset, uri: &str) -> (Vec<u64>, Option<u16>) {
    let mut t = Transaction::new(rs, "192.0.2.10");
    let h: Vec<(String, Vec<u8>)> = [
        ("Host", "shop.example.test"),
        (
            "User-Agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/120.0",
        ),
        ("Accept", "text/html,application/xhtml+xml"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
    .collect();
    t.request_headers("GET", uri, "HTTP/1.1", h);
    t.run_phase(Phase::RequestHeaders);
    t.request_body(b"");
    t.run_phase(Phase::RequestBody);
    t.response(200, &[], b"");
    for p in Phase::RESPONSE {
        t.run_phase(p);
    }
    (
        t.matched.iter().map(|m| m.id).collect(),
        t.interruption.as_ref().map(|i| i.status),
    )
}

#[test]
fn debian_crs3_loads_and_blocks_sqli() {
    let rs = debian_crs3();
    assert!(rs.rule_count() > 400, "{} rules", rs.rule_count());
    let (ids, status) = run(&rs, "/products?id=42&sort=price");
    assert_eq!((ids.as_slice(), status), (&[][..], None), "clean request");
    let (ids, status) = run(&rs, "/products?id=1%27%20OR%20%271%27%3D%271%27%20--");
    assert!(
        ids.contains(&942100),
        "942100 (libinjection) did not match: {ids:?}"
    );
    assert_eq!(status, Some(403), "matched {ids:?}");
}
