//! CRS run through ModSecurity v3 itself (Debian's libmodsecurity 3.0.9, driven by
//! `modsecurity_rules_driver.c`) beside Rampart's engine, on the same requests: the
//! single-stage request tests of CRS v4's regression suite.
//!
//! - CRS v4, configured as its CI configures it: which tests each engine passes. A test
//!   Rampart fails is a gap only if ModSecurity passes it; the tests where the engines
//!   disagree are listed exactly in `crs-oracle-divergences.txt`.
//! - Debian's CRS 3.3 (many deployments still run it; no package ships its regression
//!   tests): the v4 tests' requests stand in, and ModSecurity's rule ids are the
//!   expectation. The rules that differ on some request are listed exactly in
//!   `crs3-oracle-divergences.txt`.

mod corpus;
mod ftw;

use rampart_waf::engine::{Phase, Ruleset, Transaction};
use rampart_waf::{parse_files, parse_str};
use std::collections::{BTreeMap, BTreeSet};

const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");
const CRS3_SETUP: &str = "/etc/modsecurity/crs/crs-setup.conf";
const CRS3_RULES: &str = "/usr/share/modsecurity-crs/rules";

/// The body processors ModSecurity's recommended configuration (which CRS's CI uses)
/// chooses by Content-Type; Rampart's engine chooses them itself.
const BODY_PROCESSORS: &str = "SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^(?:application(?:/soap\\+|/)|text/)xml\" \"id:200000,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=XML\"\n\
SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^application/(?:.+\\+)?json\" \"id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON\"\n";

type Case = (String, ftw::Log, ftw::Request);

/// The single-stage request tests the in-process runner runs (see crs_conformance.rs).
fn cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for (path, file) in ftw::load(BASE) {
        if !path.display().to_string().contains("/REQUEST-") {
            continue;
        }
        for t in &file.tests {
            if t.stages.len() != 1 {
                continue;
            }
            let s = &t.stages[0];
            let server_refuses = s.output.expect_error == Some(true)
                || s.output
                    .status
                    .as_ref()
                    .is_some_and(|v| ftw::yaml_text(v) == "400");
            if server_refuses {
                continue;
            }
            // The connector API takes the version without `HTTP/`.
            if let Some(r) = ftw::build(&s.input).filter(|r| r.version.starts_with("HTTP/")) {
                let id = format!("{}-{}", file.rule_id, t.test_id);
                cases.push((id, s.output.log.clone(), r));
            }
        }
    }
    cases
}

/// The rule ids ModSecurity logs for each case, with `config` (SecLang) as its rules.
fn modsecurity(config: &str, cases: &[Case]) -> Vec<Vec<u64>> {
    let dir = std::env::temp_dir().join(format!(
        "rampart-crs-oracle-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let main = dir.join("main.conf");
    std::fs::write(&main, config).unwrap();
    let exe = corpus::build_driver(
        "modsecurity_rules_driver.c",
        "modsecurity-rules-driver",
        &["-lmodsecurity".into()],
        "is libmodsecurity-dev installed (scripts/test installs it)?",
    );
    let mut data = Vec::new();
    for (_, _, r) in cases {
        corpus::request_record(
            &mut data, &r.method, &r.uri, &r.version, &r.headers, &r.body,
        );
    }
    let lines = corpus::pipe(&exe, &[main.display().to_string()], data, cases.len());
    let _ = std::fs::remove_dir_all(&dir);
    lines
        .iter()
        .map(|l| l.split(' ').filter_map(|i| i.parse().ok()).collect())
        .collect()
}

/// What Rampart's engine matches for `r` (request phases): the transaction.
fn rampart<'a>(rs: &'a Ruleset, r: &ftw::Request) -> Transaction<'a> {
    let mut tx = Transaction::new(rs, "127.0.0.1");
    tx.request_headers(&r.method, &r.uri, &r.version, r.headers.clone());
    tx.run_phase(Phase::RequestHeaders);
    tx.request_body(&r.body);
    tx.run_phase(Phase::RequestBody);
    tx
}

#[test]
fn crs_verdicts_agree_with_modsecurity() {
    let cases = cases();
    let theirs = modsecurity(
        &format!(
            "Include {BASE}/rules/crs-setup.conf.example\nInclude {BASE}/crs-test-setup.conf\n\
             SecRuleEngine DetectionOnly\nSecRequestBodyAccess On\n{BODY_PROCESSORS}\
             Include {BASE}/rules/*.conf\n"
        ),
        &cases,
    );
    let rs = corpus::crs_v4_ruleset();

    let (mut both, mut neither) = (0usize, 0usize);
    let mut differ = BTreeSet::new();
    for ((id, log, r), their) in cases.iter().zip(&theirs) {
        let tx = rampart(&rs, r);
        let ours: Vec<u64> = tx.matched.iter().map(|m| m.id).collect();
        let our_log: String = tx
            .matched
            .iter()
            .map(|m| ftw::log_line(m.id, &m.msg, &m.data, &m.severity))
            .collect();
        let their_log: String = their.iter().map(|i| format!("[id \"{i}\"]\n")).collect();
        // A test that also checks the log text is judged on ids only for ModSecurity,
        // whose messages this driver does not keep.
        let ids_only = ftw::Log {
            match_regex: None,
            no_match_regex: None,
            ..log.clone()
        };
        let ok_ours = ftw::log_ok(log, &ours, &our_log);
        let ok_theirs = ftw::log_ok(&ids_only, their, &their_log);
        let who = match (ok_ours, ok_theirs) {
            (true, true) => {
                both += 1;
                continue;
            }
            (false, false) => {
                neither += 1;
                "both fail"
            }
            (true, false) => "only ModSecurity fails",
            (false, true) => "only Rampart fails",
        };
        println!(
            "{id} {who}: expected {:?}, not {:?}; ModSecurity {their:?}; Rampart {ours:?}",
            log.expect_ids, log.no_expect_ids
        );
        if ok_ours != ok_theirs {
            differ.insert(id.clone());
        }
    }
    println!(
        "CRS v4 request tests: {} through ModSecurity 3.0.9 and Rampart: both pass {both}, both fail {neither}, differ {}",
        cases.len(),
        differ.len()
    );
    corpus::assert_listed("crs-oracle-divergences.txt", differ);
}

#[test]
fn crs3_detections_agree_with_modsecurity() {
    for p in [CRS3_SETUP, CRS3_RULES] {
        assert!(
            std::path::Path::new(p).exists(),
            "{p} is missing: install Debian's modsecurity-crs package"
        );
    }
    // Paranoia level 4: every rule runs.
    const PL4: &str =
        "SecAction \"id:900000,phase:1,pass,nolog,t:none,setvar:tx.paranoia_level=4\"\n";
    let cases = cases();
    let theirs = modsecurity(
        &format!(
            "Include {CRS3_SETUP}\nSecRuleEngine DetectionOnly\nSecRequestBodyAccess On\n\
             {BODY_PROCESSORS}{PL4}Include {CRS3_RULES}/*.conf\n"
        ),
        &cases,
    );
    let mut d = parse_files(&[CRS3_SETUP]).unwrap();
    d.extend(parse_str(&format!("SecRuleEngine DetectionOnly\n{PL4}"), "<test>").unwrap());
    d.extend(parse_files(&[&format!("{CRS3_RULES}/*.conf")]).unwrap());
    let rs = Ruleset::compile(&d, std::path::Path::new(CRS3_RULES)).unwrap();
    let verbose = std::env::var("CRS3_ORACLE_VERBOSE").unwrap_or_default();
    // Rule id → (requests only ModSecurity matched it on, only Rampart, first example).
    let mut differ: BTreeMap<u64, (usize, usize, String)> = BTreeMap::new();
    let mut same = 0usize;
    for ((id, _, r), their) in cases.iter().zip(&theirs) {
        let ours: BTreeSet<u64> = rampart(&rs, r).matched.iter().map(|m| m.id).collect();
        let their: BTreeSet<u64> = their.iter().copied().collect();
        if ours == their {
            same += 1;
            continue;
        }
        for rule in their.symmetric_difference(&ours) {
            let e = differ
                .entry(*rule)
                .or_insert_with(|| (0, 0, format!("{id}: {} {}", r.method, r.uri)));
            if their.contains(rule) {
                e.0 += 1;
            } else {
                e.1 += 1;
            }
            if verbose == rule.to_string() {
                println!(
                    "{id}: {} {} ModSecurity {their:?} Rampart {ours:?}",
                    r.method, r.uri
                );
            }
        }
    }
    println!(
        "CRS 3.3: {} requests through ModSecurity 3.0.9 and Rampart: the same rule ids on {same}; rules that differ somewhere: {}",
        cases.len(),
        differ.len()
    );
    for (rule, (m, o, ex)) in &differ {
        println!("  {rule}: only ModSecurity on {m}, only Rampart on {o}, e.g. {ex}");
    }
    corpus::assert_listed(
        "crs3-oracle-divergences.txt",
        differ.keys().map(u64::to_string).collect(),
    );
}
