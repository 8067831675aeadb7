//! Differential test of what the collections hold, against ModSecurity v3 itself.
//!
//! Every request of the CRS regression tests (raw requests parsed as CRS's runner sends
//! them) goes through Debian's libmodsecurity 3.0.9 (driven by
//! `modsecurity_request_driver.c`, built by the test) and through Rampart's engine, with
//! the same rules: one per collection, each appending every variable it sees to `TX:acc`
//! as `COLLECTION~NAME~hex(value).` (`setvar` runs once per matched variable in both
//! engines). ModSecurity hands `TX:acc` back in a redirect; Rampart's is read from the
//! transaction. Compared per collection as multisets (ModSecurity v3 keeps arguments in a
//! hash map, so its order is not the request's).
//!
//! A collection that differs on some request fails the test unless
//! `collections-divergences.txt` lists it with the reason; a listed one that agrees
//! everywhere fails too. `COLLECTIONS_DIFF_VERBOSE=NAME` prints that collection's
//! differences.

mod corpus;
mod ftw;

use rampart_waf::engine::{Phase, Ruleset, Transaction};
use rampart_waf::parse_str;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

const COLLECTIONS: &[&str] = &[
    "ARGS",
    "ARGS_NAMES",
    "ARGS_GET",
    "ARGS_GET_NAMES",
    "ARGS_POST",
    "ARGS_POST_NAMES",
    "REQUEST_COOKIES",
    "REQUEST_COOKIES_NAMES",
    "FILES",
    "FILES_NAMES",
    "REQUEST_HEADERS_NAMES",
    "REQUEST_METHOD",
    "REQUEST_PROTOCOL",
    "REQUEST_URI",
    "REQUEST_FILENAME",
    "REQUEST_BASENAME",
    "REQUEST_LINE",
    "QUERY_STRING",
    "REQBODY_ERROR",
    "MULTIPART_STRICT_ERROR",
    "MULTIPART_UNMATCHED_BOUNDARY",
];

/// The rules both engines run.
fn rules() -> String {
    let mut r = String::from(
        "SecRuleEngine On\nSecRequestBodyAccess On\n\
         SecAction \"id:1,phase:1,pass,nolog,setvar:tx.acc=.\"\n",
    );
    for (i, c) in COLLECTIONS.iter().enumerate() {
        r.push_str(&format!(
            "SecRule {c} \"@unconditionalMatch\" \"id:{},phase:2,pass,nolog,t:none,t:hexEncode,setvar:'tx.acc=%{{tx.acc}}{c}~%{{MATCHED_VAR_NAME}}~%{{MATCHED_VAR}}.'\"\n",
            100 + i
        ));
    }
    r
}

/// What ModSecurity needs besides: the body processors its recommended configuration
/// chooses by Content-Type (Rampart chooses them by itself), and the rule that hands the
/// result back.
const MODSEC_BEFORE: &str = "SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^(?:application(?:/soap\\+|/)|text/)xml\" \"id:200000,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=XML\"\n\
SecRule REQUEST_HEADERS:Content-Type \"@rx (?i)^application/(?:.+\\+)?json\" \"id:200001,phase:1,t:none,pass,nolog,ctl:requestBodyProcessor=JSON\"\n";
const MODSEC_AFTER: &str = "SecAction \"id:99999,phase:2,t:none,redirect:'http://r/%{tx.acc}'\"\n";

/// `COLLECTION~NAME~HEX.` entries of an accumulator, by collection.
fn entries(acc: &str) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let acc = acc.strip_prefix('.').unwrap_or(acc);
    // An entry ends at a `.` followed by the end or by the next `COLLECTION~`.
    let starts: Vec<usize> = std::iter::once(0)
        .chain(acc.match_indices('.').filter_map(|(i, _)| {
            let rest = &acc[i + 1..];
            COLLECTIONS
                .iter()
                .any(|c| rest.starts_with(&format!("{c}~")))
                .then_some(i + 1)
        }))
        .collect();
    for (k, &s) in starts.iter().enumerate() {
        let end = starts.get(k + 1).map(|e| e - 1).unwrap_or(acc.len());
        let e = acc[s..end].trim_end_matches('.');
        if e.is_empty() {
            continue;
        }
        let coll = e.split('~').next().unwrap_or("").to_string();
        out.entry(coll).or_default().push(e.to_string());
    }
    for v in out.values_mut() {
        v.sort();
    }
    out
}

fn oracle(rules_file: &Path, reqs: &[ftw::Request]) -> Vec<String> {
    let exe = corpus::build_driver(
        "modsecurity_request_driver.c",
        "modsecurity-request-driver",
        &["-lmodsecurity".into()],
        "is libmodsecurity-dev installed (scripts/test installs it)?",
    );
    let mut data = Vec::new();
    for r in reqs {
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
    let rules = [rules_file.display().to_string()];
    corpus::pipe(&exe, &rules, data, reqs.len())
        .iter()
        .map(|l| {
            if l == "-" {
                return String::new();
            }
            let bytes: Vec<u8> = (0..l.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&l[i..i + 2], 16).unwrap())
                .collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .collect()
}

#[test]
fn collections_agree_with_modsecurity() {
    let mut reqs = Vec::new();
    for (_, file) in ftw::load(BASE) {
        for t in &file.tests {
            for s in &t.stages {
                // The connector API takes the version without `HTTP/` and adds it back:
                // another spelling could not be handed over as sent.
                if let Some(r) = ftw::build(&s.input).filter(|r| r.version.starts_with("HTTP/")) {
                    reqs.push(r);
                }
            }
        }
    }
    let dir = std::env::temp_dir().join(format!("rampart-coll-diff-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rules_file = dir.join("rules.conf");
    std::fs::write(
        &rules_file,
        format!("{MODSEC_BEFORE}{}{MODSEC_AFTER}", rules()),
    )
    .unwrap();
    let theirs = oracle(&rules_file, &reqs);

    let rs = Ruleset::compile(&parse_str(&rules(), "<rules>").unwrap(), Path::new(".")).unwrap();
    let verbose = std::env::var("COLLECTIONS_DIFF_VERBOSE").unwrap_or_default();
    // Collection → (requests where it differs, first example).
    let mut divergent: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut compared = 0usize;
    for (r, their) in reqs.iter().zip(&theirs) {
        let mut tx = Transaction::new(&rs, "127.0.0.1");
        tx.request_headers(&r.method, &r.uri, &r.version, r.headers.clone());
        tx.run_phase(Phase::RequestHeaders);
        tx.request_body(&r.body);
        tx.run_phase(Phase::RequestBody);
        let acc = tx.tx("acc").unwrap_or_default();
        // ModSecurity hands its result back as a C string: a NUL in a name (values are
        // hex) cuts it short, so such a request cannot be compared.
        if acc.contains('\0') {
            continue;
        }
        let ours = entries(&acc);
        let theirs = entries(their);
        for c in COLLECTIONS {
            compared += 1;
            let (o, t) = (ours.get(*c), theirs.get(*c));
            if o != t {
                let show = |v: Option<&Vec<String>>| {
                    v.map(|v| v.join(" "))
                        .unwrap_or_default()
                        .chars()
                        .take(300)
                        .collect::<String>()
                };
                let ct = r
                    .headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default();
                let ex = format!(
                    "{} {} ({ct}, {} body bytes) → ModSecurity [{}] / Rampart [{}]",
                    r.method,
                    r.uri,
                    r.body.len(),
                    show(t),
                    show(o)
                );
                if verbose == *c {
                    eprintln!("{ex}");
                }
                divergent.entry(c.to_string()).or_insert((0, ex)).0 += 1;
            }
        }
    }
    println!(
        "collections: {} requests × {} collections ({compared} comparisons) with ModSecurity 3.0.9",
        reqs.len(),
        COLLECTIONS.len()
    );
    for (k, (n, ex)) in &divergent {
        println!("  {k}: {n} requests differ, e.g. {ex}");
    }
    let found: BTreeSet<String> = divergent.keys().cloned().collect();
    corpus::assert_listed("collections-divergences.txt", found);
}
