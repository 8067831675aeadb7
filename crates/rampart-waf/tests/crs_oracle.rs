//! The CRS v4 regression tests (request rules) run through ModSecurity v3 itself (Debian's
//! libmodsecurity 3.0.9, driven by `modsecurity_rules_driver.c`) beside Rampart's engine,
//! both with CRS configured as its CI configures it. A test Rampart fails is a gap only if
//! ModSecurity passes it: this test lists, exactly, the tests where the engines disagree
//! (`crs-oracle-divergences.txt`), so a Rampart failure is either shared with the engine
//! CRS is written for or explained there.

mod corpus;
mod ftw;

use rampart_waf::engine::{Phase, Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};
use std::collections::BTreeSet;

const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

/// The body processors ModSecurity's recommended configuration (which CRS's CI uses)
/// chooses by Content-Type; Rampart's engine chooses them itself.
const BODY_PROCESSORS: &str = "SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^(?:application(?:/soap\\+|/)|text/)xml\" \"id:200000,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=XML\"\n\
SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^application/(?:.+\\+)?json\" \"id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON\"\n";

#[test]
fn crs_verdicts_agree_with_modsecurity() {
    // (test id, stage's expected log, request)
    let mut cases = Vec::new();
    for (path, file) in ftw::load(BASE) {
        if !path.display().to_string().contains("/REQUEST-") {
            continue;
        }
        for t in &file.tests {
            // Single-stage tests the in-process runner runs (see crs_conformance.rs).
            if t.stages.len() != 1 {
                continue;
            }
            let s = &t.stages[0];
            if s.output.expect_error == Some(true)
                || s.output
                    .status
                    .as_ref()
                    .is_some_and(|v| ftw::yaml_text(v) == "400")
            {
                continue;
            }
            if let Some(r) = ftw::build(&s.input).filter(|r| r.version.starts_with("HTTP/")) {
                cases.push((
                    format!("{}-{}", file.rule_id, t.test_id),
                    s.output.log.clone(),
                    r,
                ));
            }
        }
    }

    let dir = std::env::temp_dir().join(format!("rampart-crs-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let main = dir.join("main.conf");
    std::fs::write(
        &main,
        format!(
            "Include {BASE}/rules/crs-setup.conf.example\nInclude {BASE}/crs-test-setup.conf\n\
             SecRuleEngine DetectionOnly\nSecRequestBodyAccess On\n{BODY_PROCESSORS}\
             Include {BASE}/rules/*.conf\n"
        ),
    )
    .unwrap();
    let exe = corpus::build_driver(
        "modsecurity_rules_driver.c",
        "modsecurity-rules-driver",
        &["-lmodsecurity".into()],
        "is libmodsecurity-dev installed (scripts/test installs it)?",
    );
    let mut data = Vec::new();
    for (_, _, r) in &cases {
        corpus::field(&mut data, r.method.as_bytes());
        corpus::field(&mut data, r.uri.as_bytes());
        corpus::field(&mut data, r.version.trim_start_matches("HTTP/").as_bytes());
        corpus::field(&mut data, r.headers.len().to_string().as_bytes());
        for (k, v) in &r.headers {
            corpus::field(&mut data, k.as_bytes());
            corpus::field(&mut data, v);
        }
        corpus::field(&mut data, &r.body);
    }
    let theirs = corpus::pipe(&exe, &[main.display().to_string()], data, cases.len());
    let _ = std::fs::remove_dir_all(&dir);

    let mut d = parse_files(&[
        &format!("{BASE}/rules/crs-setup.conf.example"),
        &format!("{BASE}/crs-test-setup.conf"),
    ])
    .unwrap();
    d.extend(parse_str("SecRuleEngine DetectionOnly\n", "<test>").unwrap());
    d.extend(parse_files(&[&format!("{BASE}/rules/*.conf")]).unwrap());
    let rs = Ruleset::compile(&d, std::path::Path::new(&format!("{BASE}/rules"))).unwrap();

    let (mut both, mut neither) = (0usize, 0usize);
    let mut differ = BTreeSet::new();
    for ((id, log, r), their) in cases.iter().zip(&theirs) {
        let mut tx = Transaction::new(&rs, "127.0.0.1");
        tx.request_headers(&r.method, &r.uri, &r.version, r.headers.clone());
        tx.run_phase(Phase::RequestHeaders);
        tx.request_body(&r.body);
        tx.run_phase(Phase::RequestBody);
        let ours: Vec<u64> = tx.matched.iter().map(|m| m.id).collect();
        let our_log: String = tx
            .matched
            .iter()
            .map(|m| ftw::log_line(m.id, &m.msg, &m.data, &m.severity))
            .collect();
        let their_ids: Vec<u64> = their.split(' ').filter_map(|i| i.parse().ok()).collect();
        let their_log: String = their_ids
            .iter()
            .map(|i| format!("[id \"{i}\"]\n"))
            .collect();
        // A test that also checks the log text is judged on ids only for ModSecurity,
        // whose messages this driver does not keep.
        let ids_only = ftw::Log {
            match_regex: None,
            no_match_regex: None,
            ..log.clone()
        };
        let ok_ours = ftw::log_ok(log, &ours, &our_log);
        let ok_theirs = ftw::log_ok(&ids_only, &their_ids, &their_log);
        match (ok_ours, ok_theirs) {
            (true, true) => both += 1,
            (false, false) => {
                println!("{id} both fail: expected {:?} / not {:?}; ModSecurity {their_ids:?}; Rampart {ours:?}", log.expect_ids, log.no_expect_ids);
                neither += 1
            }
            (o, _) => {
                let who = if o {
                    "modsecurity-fails"
                } else {
                    "rampart-fails"
                };
                println!("{id} {who}: expected {:?} / not {:?}; ModSecurity {their_ids:?}; Rampart {ours:?}", log.expect_ids, log.no_expect_ids);
                differ.insert(id.clone());
            }
        }
    }
    println!(
        "CRS request tests: {} compared with ModSecurity 3.0.9: both pass {both}, both fail {neither}, differ {}",
        cases.len(),
        differ.len()
    );
    corpus::assert_listed("crs-oracle-divergences.txt", differ);
}
