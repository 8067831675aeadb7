//! Hostile inputs through the whole CRS v4 (PL2, detection only so every phase runs): the
//! engine must stay bounded in time and memory and report what it refused to parse.
//! The time bounds are generous on purpose (debug builds, shared CI machines): they catch
//! quadratic or exponential behaviour, not slowness.

use rampart_waf::engine::Phase;
use rampart_waf::engine::{Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const BOUND: Duration = Duration::from_secs(5);

fn crs() -> &'static Ruleset {
    static RS: OnceLock<Ruleset> = OnceLock::new();
    RS.get_or_init(|| {
        let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");
        let mut d = parse_files(&[&format!("{base}/rules/crs-setup.conf.example")]).unwrap();
        d.extend(
            parse_str(
                "SecRuleEngine DetectionOnly\n\
                 SecAction \"id:900000,phase:1,pass,nolog,setvar:tx.blocking_paranoia_level=2\"\n\
                 SecRule REQBODY_ERROR \"!@eq 0\" \"id:200002,phase:2,t:none,log,pass\"\n",
                "<hostile>",
            )
            .unwrap(),
        );
        d.extend(parse_files(&[&format!("{base}/rules/*.conf")]).unwrap());
        Ruleset::compile(&d, std::path::Path::new(&format!("{base}/rules"))).unwrap()
    })
}

/// Runs all phases; returns the transaction's REQBODY_ERROR and the time taken.
fn run(uri: &str, content_type: Option<&str>, body: &[u8]) -> (Option<String>, Duration) {
    let rs = crs();
    let start = Instant::now();
    let mut t = Transaction::new(rs, "192.0.2.10");
    let mut h = vec![
        ("Host".to_string(), b"api.example.test".to_vec()),
        ("User-Agent".to_string(), b"hostile-test/1.0".to_vec()),
        ("Accept".to_string(), b"*/*".to_vec()),
    ];
    if let Some(ct) = content_type {
        h.push(("Content-Type".into(), ct.as_bytes().to_vec()));
        h.push(("Content-Length".into(), body.len().to_string().into_bytes()));
    }
    let method = if content_type.is_some() {
        "POST"
    } else {
        "GET"
    };
    t.request_headers(method, uri, "HTTP/1.1", h);
    t.run_phase(Phase::RequestHeaders);
    t.request_body(body);
    t.run_phase(Phase::RequestBody);
    t.response(200, &[], b"");
    for p in Phase::RESPONSE {
        t.run_phase(p);
    }
    let elapsed = start.elapsed();
    assert!(
        elapsed < BOUND,
        "{uri:.60} {content_type:?}: took {elapsed:?}"
    );
    // REQBODY_ERROR is not a TX variable: ModSecurity's recommended rule 200002 reports it.
    let err = t
        .matched
        .iter()
        .any(|m| m.id == 200002)
        .then(|| "1".to_string());
    (err, elapsed)
}

const MIB: usize = 1 << 20;

#[test]
fn a_mebibyte_of_parentheses_in_the_query() {
    let uri = format!("/search?q={}", "(".repeat(MIB));
    run(&uri, None, b"");
}

#[test]
fn a_mebibyte_of_parentheses_as_the_body() {
    let body = "(".repeat(MIB).into_bytes();
    run("/submit", Some("application/x-www-form-urlencoded"), &body);
    run("/submit", Some("text/plain"), &body);
    let field = format!("q={}", "(".repeat(MIB));
    run(
        "/submit",
        Some("application/x-www-form-urlencoded"),
        field.as_bytes(),
    );
}

#[test]
fn json_nested_ten_thousand_deep_is_a_body_error_not_a_stack_overflow() {
    let depth = 10_000;
    let body = format!("{}1{}", "[".repeat(depth), "]".repeat(depth));
    let (err, _) = run("/api", Some("application/json"), body.as_bytes());
    assert!(err.is_some(), "rule 200002 (REQBODY_ERROR) did not fire");
    let body = format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let (err, _) = run("/api", Some("application/json"), body.as_bytes());
    assert!(err.is_some(), "rule 200002 (REQBODY_ERROR) did not fire");
}

#[test]
fn json_long_keys_deeply_nested_stay_bounded() {
    // Each leaf's name repeats the whole path: 500 levels of a 2 KiB key.
    let key = "k".repeat(2048);
    let body = format!(
        "{}[1,2,3,4,5,6,7,8,9,10]{}",
        format!("{{\"{key}\":").repeat(500),
        "}".repeat(500)
    );
    let (err, _) = run("/api", Some("application/json"), body.as_bytes());
    assert!(
        err.is_some(),
        "a JSON body that flattens to 10x its size is refused"
    );
}

#[test]
fn ten_thousand_arguments_are_cut_at_the_limit() {
    let args: Vec<String> = (0..10_000).map(|i| format!("a{i}=v{i}")).collect();
    let body = args.join("&");
    let (err, _) = run(
        "/form",
        Some("application/x-www-form-urlencoded"),
        body.as_bytes(),
    );
    assert!(
        err.is_some(),
        "over SecArgumentsLimit must set REQBODY_ERROR"
    );
    run(&format!("/list?{body}"), None, b"");
    let json = format!(
        "[{}]",
        (0..10_000)
            .map(|i| i.to_string())
            .collect::<Vec<_>>()
            .join(",")
    );
    let (err, _) = run("/api", Some("application/json"), json.as_bytes());
    assert!(
        err.is_some(),
        "over SecArgumentsLimit must set REQBODY_ERROR"
    );
}

#[test]
fn hostile_multipart_stays_bounded() {
    // A boundary-like body with a near-miss delimiter everywhere, and a boundary beyond
    // RFC 2046's 70 characters.
    let boundary = "-".repeat(69) + "x";
    let body = "-".repeat(MIB).into_bytes();
    run(
        "/upload",
        Some(&format!("multipart/form-data; boundary={boundary}")),
        &body,
    );
    let (err, _) = run(
        "/upload",
        Some(&format!(
            "multipart/form-data; boundary={}",
            "b".repeat(5000)
        )),
        b"--bbbb\r\n",
    );
    assert!(err.is_some(), "an over-long boundary is a body error");
}

#[test]
fn multipart_boundary_search_stays_linear() {
    // A boundary of 900 dashes and an `x`, and lines of dashes: a search that restarts at
    // every byte compares ~900 bytes each time (about 60 million comparisons here).
    let boundary = format!("{}x", "-".repeat(900));
    let dashes = "-".repeat(4000);
    let mut body = format!("--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n");
    for _ in 0..15 {
        body.push_str(&dashes);
        body.push_str("\r\n");
    }
    body.push_str(&format!("--{boundary}--\r\n"));
    let ct = format!("multipart/form-data; boundary={boundary}");
    let (err, _) = run("/upload", Some(&ct), body.as_bytes());
    assert!(err.is_none(), "{err:?}");
}
