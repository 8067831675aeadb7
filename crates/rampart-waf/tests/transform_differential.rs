//! Differential test of every transformation against ModSecurity v3 itself.
//!
//! The oracle is libmodsecurity (Debian's `libmodsecurity3`, 3.0.9; `scripts/test`
//! installs `libmodsecurity-dev`), driven by `modsecurity_driver.c`, which the test builds
//! with the system C compiler: for each transformation, a rule
//! `SecRule REQUEST_HEADERS:x-v "@unconditionalMatch" "t:none,t:NAME,t:hexEncode,redirect:…%{MATCHED_VAR}"`
//! hands back the transformed value of the header, hex-encoded, in the intervention's URL.
//! Rampart applies the same transformation (then hex) to the same bytes.
//!
//! Inputs: the CRS tests' payloads and mutations of them (`corpus/`), random bytes, and
//! reference cases written for the odd transformations (`reference_cases`). A value holding
//! CR or LF is not sent (an HTTP header cannot carry it, and the connector API would pass it
//! through unchecked); NUL bytes are. A divergence fails the test unless
//! `transform-divergences.txt` lists the transformation with the reason; a listed one that
//! no longer diverges fails too. `TRANSFORM_DIFF_VERBOSE=name` prints that
//! transformation's divergent inputs.

mod corpus;
mod ftw;

use corpus::{mutate, payloads, random_bytes, Rng};
use rampart_waf::transform::{by_name, Transform};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// ModSecurity's transformations, as its reference names them.
const NAMES: &[&str] = &[
    "lowercase",
    "uppercase",
    "urlDecode",
    "urlDecodeUni",
    "urlEncode",
    "htmlEntityDecode",
    "jsDecode",
    "cssDecode",
    "cmdLine",
    "compressWhitespace",
    "removeWhitespace",
    "removeNulls",
    "replaceNulls",
    "removeComments",
    "removeCommentsChar",
    "replaceComments",
    "normalizePath",
    "normalizePathWin",
    "base64Decode",
    "base64DecodeExt",
    "base64Encode",
    "hexDecode",
    "hexEncode",
    "sqlHexDecode",
    "utf8toUnicode",
    "escapeSeqDecode",
    "length",
    "sha1",
    "md5",
    "trim",
    "trimLeft",
    "trimRight",
    "parityEven7bit",
    "parityOdd7bit",
    "parityZero7bit",
];

/// Cases written for the transformations whose definitions have corners: entities without
/// `;`, overlong and invalid UTF-8, `\u` escapes, CSS escapes with and without the
/// trailing space, shell quoting, unterminated comments, Windows paths.
fn reference_cases() -> Vec<Vec<u8>> {
    let cases: &[&[u8]] = &[
        b"c^m\"d.exe /c 'di'r",
        b"C:\\Windows\\..\\system32\\.\\cmd.exe",
        b"/a/b/../../../../etc/./passwd//x/.",
        b"a\\b\\..\\..\\c",
        b"&lt;&LT;&#60;&#x3c;&#X3C;&#0060&#x003c&amp&quot;&nbsp;&apos;&bogus;&#;&#x;&",
        b"\\u003cscript\\x3e\\074\\u00e9\\uD83D\\uDE00\\z\\",
        b"\\3c script\\3e\\00003c\\3C\\000041 \\g\\\n\\",
        b"/* c */ select /*! 1 */ -- x\n#y\n1/*unterminated",
        b"<!-- x --> a -- b # c /* d",
        b"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xc0\xaf\xe0\x80\xaf\xed\xa0\x80\xff\xc3",
        b"%u0041%U0042%u00e9%uff1c%%41%4%zz+%2B%c0%af",
        b"0x414243 0xzz 0X4 x'41' 0x",
        b"QUJD PT0 QQ== QUJ-_Dw$ Q",
        b"\\a\\b\\f\\n\\r\\t\\v\\\\\\?\\'\\\"\\x41\\101\\0\\8",
        b"  \t a \x0b\x0c b  \xa0 ",
        b"\x00a\x00b\x00",
        b"\x80\x81\xfe\xff\x7f",
    ];
    cases.iter().map(|c| c.to_vec()).collect()
}

fn driver() -> PathBuf {
    corpus::build_driver(
        "modsecurity_driver.c",
        "modsecurity-driver",
        &["-lmodsecurity".into()],
        "is libmodsecurity-dev installed (scripts/test installs it)?",
    )
}

/// ModSecurity's answer per input and argument: with transformation names, the hex of
/// each transformation (`None`: the rule did not run); with `--op` then operators, `1`
/// when the operator matched.
fn oracle(args: &[String], inputs: &[Vec<u8>]) -> Vec<Vec<Option<String>>> {
    let mut data = Vec::new();
    for r in inputs {
        corpus::field(&mut data, r);
    }
    corpus::pipe(&driver(), args, data, inputs.len())
        .iter()
        .map(|l| {
            l.split(' ')
                .map(|f| match f {
                    "-" => None,
                    "=" => Some(String::new()),
                    h => Some(h.to_string()),
                })
                .collect()
        })
        .collect()
}

/// What sort of bytes an input holds: `nul` (any NUL), `high` (bytes over 0x7f), `ascii`.
/// Divergences are listed per transformation and sort: the reasons differ.
fn class(v: &[u8]) -> &'static str {
    if v.contains(&0) {
        "nul"
    } else if !v.is_ascii() {
        "high"
    } else {
        "ascii"
    }
}

fn hex(v: &[u8]) -> String {
    v.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn transformations_agree_with_modsecurity() {
    let base = payloads();
    let mut rng = Rng(0x7a11_5f0e_0000_0003);
    let mut set: BTreeSet<Vec<u8>> = reference_cases().into_iter().collect();
    // Every tenth payload, then mutations and random bytes: ModSecurity runs one
    // transaction per input and transformation, which bounds how many fit in a test.
    for p in base.iter().step_by(10) {
        set.insert(p.clone());
    }
    for _ in 0..3000 {
        let p = &base[rng.below(base.len())];
        set.insert(mutate(p, &mut rng));
    }
    for _ in 0..1000 {
        set.insert(random_bytes(&mut rng, 48));
    }
    let inputs: Vec<Vec<u8>> = set
        .into_iter()
        .filter(|v| !v.contains(&b'\r') && !v.contains(&b'\n') && v.len() < 8192)
        .collect();
    let known: Vec<(&str, Transform)> = NAMES
        .iter()
        .filter_map(|n| by_name(n).map(|t| (*n, t)))
        .collect();
    let missing: Vec<&str> = NAMES
        .iter()
        .filter(|n| by_name(n).is_none())
        .copied()
        .collect();
    let names: Vec<String> = known.iter().map(|(n, _)| n.to_string()).collect();
    let c = oracle(&names, &inputs);
    let verbose = std::env::var("TRANSFORM_DIFF_VERBOSE").unwrap_or_default();
    // Transformation → (divergent inputs, first example: input, ModSecurity, Rampart).
    let mut divergent: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let mut compared = 0usize;
    for (v, row) in inputs.iter().zip(&c) {
        for ((name, t), theirs) in known.iter().zip(row) {
            let Some(theirs) = theirs else {
                // ModSecurity skipped the rule (e.g. an empty value it does not create).
                continue;
            };
            compared += 1;
            let ours = hex(&t.apply(v));
            if ours != *theirs {
                let e = divergent
                    .entry(format!("{name}/{}", class(v)))
                    .or_insert_with(|| {
                        (
                            0,
                            format!(
                                "{} → ModSecurity {theirs} / Rampart {ours}",
                                v.escape_ascii()
                            ),
                        )
                    });
                e.0 += 1;
                if verbose.eq_ignore_ascii_case(name)
                    || verbose.eq_ignore_ascii_case(&format!("{name}/{}", class(v)))
                {
                    eprintln!("{}\n  modsec  {theirs}\n  rampart {ours}", v.escape_ascii());
                }
            }
        }
    }
    println!(
        "transformations: {} inputs × {} transformations, {compared} comparisons with ModSecurity 3.0.9; not in Rampart: {missing:?}",
        inputs.len(),
        known.len()
    );
    for (k, (n, ex)) in &divergent {
        let ex: String = ex.chars().take(300).collect();
        println!("  {k}: {n} divergent, e.g. {ex}");
    }
    let found: BTreeSet<String> = divergent
        .keys()
        .cloned()
        .chain(missing.iter().map(|m| format!("missing:{m}")))
        .collect();
    corpus::assert_listed("transform-divergences.txt", found);
}

/// Every `@pm`, `@pmFromFile` and `@pmf` of CRS (chained rules included), compared with
/// ModSecurity's on the CRS payloads, mutations, and each operator's own phrases (as they
/// are, upper-cased, and inside other text). Keys: the rule id; the list is
/// `operator-divergences.txt`.
#[test]
fn phrase_matching_agrees_with_modsecurity() {
    use rampart_waf::operator::CompiledOperator;
    use rampart_waf::{parse_files, Directive};
    let rules_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs/rules");
    let dirs = parse_files(&[&format!("{rules_dir}/*.conf")]).unwrap();
    // (rule id, operator as Rampart reads it, operator as ModSecurity gets it: absolute paths)
    let mut ops: Vec<(String, rampart_waf::Operator, String)> = Vec::new();
    let mut last_id = 0u64;
    for d in &dirs {
        let Directive::Rule(r) = d else { continue };
        if let Some(id) = r.id() {
            last_id = id;
        }
        let name = r.operator.name.to_ascii_lowercase();
        if !matches!(name.as_str(), "pm" | "pmfromfile" | "pmf") {
            continue;
        }
        let arg = r.operator.argument.clone();
        let theirs = if name == "pm" {
            format!("@pm {arg}")
        } else {
            let files: Vec<String> = arg
                .split_whitespace()
                .map(|f| format!("{rules_dir}/{f}"))
                .collect();
            format!("@pmFromFile {}", files.join(" "))
        };
        ops.push((last_id.to_string(), r.operator.clone(), theirs));
    }
    assert!(ops.len() > 20, "only {} phrase operators found", ops.len());
    // Inputs: payloads and mutations, then every phrase of every operator in three forms.
    let base = payloads();
    let mut rng = Rng(0x9a11_0000_0000_0005);
    let mut set: BTreeSet<Vec<u8>> = base.iter().step_by(5).cloned().collect();
    for _ in 0..2000 {
        let p = &base[rng.below(base.len())];
        set.insert(mutate(p, &mut rng));
    }
    for (_, op, _) in &ops {
        let phrases: Vec<String> = if op.name.eq_ignore_ascii_case("pm") {
            op.argument.split_whitespace().map(str::to_string).collect()
        } else {
            op.argument
                .split_whitespace()
                .flat_map(|f| {
                    std::fs::read_to_string(format!("{rules_dir}/{f}"))
                        .unwrap_or_default()
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(str::to_string)
                        .collect::<Vec<_>>()
                })
                .collect()
        };
        for ph in phrases {
            set.insert(ph.as_bytes().to_vec());
            set.insert(ph.to_uppercase().into_bytes());
            set.insert(format!("x{ph}y").into_bytes());
        }
    }
    let inputs: Vec<Vec<u8>> = set
        .into_iter()
        .filter(|v| !v.contains(&b'\r') && !v.contains(&b'\n') && v.len() < 8192)
        .collect();
    let mut args = vec!["--op".to_string()];
    args.extend(ops.iter().map(|(_, _, t)| t.clone()));
    let c = oracle(&args, &inputs);
    let compiled: Vec<CompiledOperator> = ops
        .iter()
        .map(|(id, op, _)| {
            CompiledOperator::compile(op, std::path::Path::new(rules_dir))
                .unwrap_or_else(|e| panic!("{id}: {e}"))
        })
        .collect();
    let mut divergent: BTreeMap<String, (usize, String)> = BTreeMap::new();
    let (mut compared, mut matched) = (0usize, 0usize);
    for (v, row) in inputs.iter().zip(&c) {
        for (((id, _, _), ours), theirs) in ops.iter().zip(&compiled).zip(row) {
            compared += 1;
            let theirs = theirs.is_some();
            let ours = ours.test(v, b"").matched;
            matched += usize::from(theirs);
            if ours != theirs {
                let e = divergent.entry(id.clone()).or_insert_with(|| {
                    (
                        0,
                        format!(
                            "{} → ModSecurity {theirs} / Rampart {ours}",
                            v.escape_ascii()
                        ),
                    )
                });
                e.0 += 1;
                if std::env::var_os("PM_DIFF_VERBOSE").is_some() {
                    eprintln!("{id}: {} → ModSecurity {theirs}", v.escape_ascii());
                }
            }
        }
    }
    println!(
        "phrase operators: {} operators × {} inputs, {compared} comparisons ({matched} matches by ModSecurity)",
        ops.len(),
        inputs.len()
    );
    for (k, (n, ex)) in &divergent {
        let ex: String = ex.chars().take(200).collect();
        println!("  {k}: {n} divergent, e.g. {ex}");
    }
    let found: BTreeSet<String> = divergent.keys().cloned().collect();
    corpus::assert_listed("operator-divergences.txt", found);
}
