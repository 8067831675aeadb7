//! CRS regression tests (go-ftw YAML, ../shared/crs/tests) run in-process against the engine,
//! configured as CRS's own CI does (crs-setup.conf.example, crs-test-setup.conf, rules;
//! detection only). Prints `passed N, failed M, skipped K`; every skip and every failure
//! must be listed, with its reason (crs-skips.txt, crs-failures.txt).
//! `WAF_FTW_VERBOSE=1` lists failing test ids.

mod corpus;
mod ftw;

use ftw::{build, yaml_text, Request};
use rampart_waf::engine::Phase;
use rampart_waf::engine::Transaction;

/// The albedo backend: 200 with an empty body, except POST /reflect.
/// (status, headers, body)
type Response = (u16, Vec<(String, Vec<u8>)>, Vec<u8>);

fn albedo(req: &Request) -> Response {
    use base64::Engine;
    if req.method == "POST" && req.uri.starts_with("/reflect") {
        if let Ok(v) = serde_json::from_slice::<serde_json::Value>(&req.body) {
            let status = v["status"].as_u64().unwrap_or(200) as u16;
            let mut headers: Vec<(String, Vec<u8>)> = v["headers"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec()))
                        .collect()
                })
                .unwrap_or_default();
            let body = match (v["body"].as_str(), v["encodedBody"].as_str()) {
                (Some(b), _) => b.as_bytes().to_vec(),
                (None, Some(e)) => base64::engine::general_purpose::STANDARD
                    .decode(e)
                    .unwrap_or_default(),
                _ => Vec::new(),
            };
            if !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            {
                let html = body.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html"));
                let ct = if html {
                    "text/html; charset=utf-8"
                } else {
                    "text/plain; charset=utf-8"
                };
                headers.push(("Content-Type".into(), ct.as_bytes().to_vec()));
            }
            return (status, headers, body);
        }
    }
    (200, Vec::new(), Vec::new())
}

#[test]
fn crs_regression_suite() {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");
    let mut rs = corpus::crs_v4_ruleset();
    // Every rule a literal filter skips runs anyway, and a match fails the test: CRS's
    // attack payloads check that the filters never hide one.
    rs.verify_filters();

    let (mut passed, mut failed, mut skipped) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    let mut skips = Vec::new();
    for (_, file) in ftw::load(base) {
        for t in &file.tests {
            let mut ok = true;
            let mut skip = false;
            for s in &t.stages {
                // Malformed request lines and expected errors are the HTTP server's business
                // (Pingora answers 400 before the WAF): tested through the gateway instead.
                if s.output.expect_error == Some(true)
                    || s.output
                        .status
                        .as_ref()
                        .is_some_and(|v| yaml_text(v) == "400")
                {
                    skip = true;
                    continue;
                }
                let Some(req) = build(&s.input) else {
                    skip = true;
                    continue;
                };
                let mut tx = Transaction::new(&rs, "127.0.0.1");
                tx.request_headers(&req.method, &req.uri, &req.version, req.headers.clone());
                tx.run_phase(Phase::RequestHeaders);
                tx.request_body(&req.body);
                tx.run_phase(Phase::RequestBody);
                let (st, h, b) = albedo(&req);
                tx.response(st, &h, &b);
                tx.run_phase(Phase::ResponseHeaders);
                tx.run_phase(Phase::ResponseBody);
                tx.run_phase(Phase::Logging);
                let ids: Vec<u64> = tx.matched.iter().map(|m| m.id).collect();
                let log: String = tx
                    .matched
                    .iter()
                    .map(|m| ftw::log_line(m.id, &m.msg, &m.data, &m.severity))
                    .collect();
                let stage_ok = ftw::log_ok(&s.output.log, &ids, &log);
                ok &= stage_ok;
            }
            if skip && t.stages.len() == 1 {
                skipped += 1;
                skips.push(format!("{}-{}", file.rule_id, t.test_id));
            } else if ok {
                passed += 1;
            } else {
                failed += 1;
                failures.push(format!("{}-{}", file.rule_id, t.test_id));
            }
        }
    }
    println!("passed {passed}, failed {failed}, skipped {skipped}");
    if std::env::var("WAF_FTW_VERBOSE").is_ok() {
        println!("failing: {}", failures.join(" "));
    }
    // Every skip is listed, with its reason, in crs-skips.txt; the list must stay exact.
    let listed = ftw::listed_skips(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/crs-skips.txt"));
    assert_eq!(listed, skips, "crs-skips.txt is out of date");
    // Every failure is listed too, with its reason, in crs-failures.txt: exact as well.
    let listed = ftw::listed_skips(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/crs-failures.txt"
    ));
    assert_eq!(listed, failures, "crs-failures.txt is out of date");
}
