//! The whole OWASP CRS v4.28 (from ../shared/crs) parses without error, in the order CRS's
//! own test setup loads it.

use rampart_waf::{parse_files, Directive};

fn crs() -> String {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");
    assert!(
        std::path::Path::new(p).is_dir(),
        "{p} missing: ../shared/crs beside the checkout"
    );
    p.to_string()
}

#[test]
fn crs_v4_parses_completely() {
    let base = crs();
    let setup = format!("{base}/rules/crs-setup.conf.example");
    let test_setup = format!("{base}/crs-test-setup.conf");
    let rules = format!("{base}/rules/*.conf");
    let d = parse_files(&[&setup, &test_setup, &rules]).unwrap();
    let rules: Vec<_> = d
        .iter()
        .filter_map(|x| match x {
            Directive::Rule(r) => Some(r),
            _ => None,
        })
        .collect();
    let with_ids = rules.iter().filter(|r| r.id().is_some()).count();
    let markers = d
        .iter()
        .filter(|x| matches!(x, Directive::Marker(_)))
        .count();
    println!("CRS v4: {} directives, {} SecRule ({with_ids} with ids, the rest chain links), {markers} markers", d.len(), rules.len());
    // Counted from the files: 623 + 73 indented (chained) SecRule, 30 SecMarker.
    assert_eq!(rules.len(), 696);
    assert_eq!(markers, 30);
    assert!(rules
        .iter()
        .any(|r| r.id() == Some(942100) && r.operator.name == "detectSQLi"));
}

/// Every operator in CRS v4 compiles: all `@rx` patterns with the `regex` crate, all
/// `@pmFromFile` data files, `@ipMatch` lists.
#[test]
fn every_crs_operator_compiles() {
    let base = crs();
    let rules = format!("{base}/rules/*.conf");
    let d = parse_files(&[&rules]).unwrap();
    let dir = std::path::PathBuf::from(format!("{base}/rules"));
    let mut n = 0;
    let mut failures = Vec::new();
    for x in &d {
        if let Directive::Rule(r) = x {
            n += 1;
            if let Err(e) = rampart_waf::operator::CompiledOperator::compile(&r.operator, &dir) {
                failures.push(format!("{}:{}: {e}", r.file, r.line));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {n} operators failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
