//! Differential test of `@detectSQLi` and `@detectXSS` against the C libinjection.
//!
//! The oracle is libinjection 3.9.2 in C — the line ModSecurity v3 bundles — taken from the
//! PyPI source package `libinjection-python` 1.1.6 (`scripts/test` unpacks it into
//! `target/test-fixtures/libinjection`) and built here with the system C compiler around a
//! small driver (`libinjection_driver.c`) that calls it as ModSecurity's operators do
//! (`libinjection_sqli(s, len, fingerprint)`, `libinjection_xss(s, len)`). The engine side
//! is Rampart's operator as the rules run it (`CompiledOperator`, with its plain-word
//! shortcut), built on the `libinjectionrs` port.
//!
//! Inputs: every payload of the CRS regression tests (whole and split into argument
//! values), deterministic mutations and random bytes (`corpus.rs`), a few long values; each
//! as is and after the transformations CRS applies before each detector (942100:
//! `utf8toUnicode, urlDecodeUni, removeNulls`; 941100: `… htmlEntityDecode, jsDecode,
//! cssDecode, removeNulls`). Compared: SQLi yes/no, the fingerprint when both say yes, XSS
//! yes/no. A divergence fails the test unless `libinjection-divergences.txt` lists its kind
//! (`sqli/C=<fingerprint>/rampart=<fingerprint>`, `-` for no); a listed kind that no longer
//! occurs fails it too. `LIBINJECTION_DIFF_VERBOSE=1` prints the divergent inputs.

mod corpus;
mod ftw;

use corpus::{mutate, payloads, random_bytes, Rng};
use rampart_waf::operator::CompiledOperator;
use rampart_waf::transform::{by_name, Transform};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-fixtures/libinjection")
}

/// Builds the driver against the C sources `scripts/test` unpacked.
fn driver() -> PathBuf {
    let src = fixtures().join("src");
    assert!(
        src.join("libinjection_sqli.c").is_file(),
        "{} is missing: run scripts/test (it unpacks libinjection-python 1.1.6 from PyPI)",
        src.display()
    );
    let mut args: Vec<std::ffi::OsString> = [
        "libinjection_sqli.c",
        "libinjection_xss.c",
        "libinjection_html5.c",
    ]
    .iter()
    .map(|f| src.join(f).into())
    .collect();
    args.push("-I".into());
    args.push(src.into());
    corpus::build_driver(
        "libinjection_driver.c",
        "libinjection/driver",
        &args,
        "the C libinjection sources did not build",
    )
}

/// What the C library says of each input: (sqli fingerprint or None, xss).
fn oracle(inputs: &[Vec<u8>]) -> Vec<(Option<String>, bool)> {
    let mut data = Vec::new();
    for r in inputs {
        corpus::field(&mut data, r);
    }
    corpus::pipe(&driver(), &[], data, inputs.len())
        .iter()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            let sqli = (parts[0] == "1").then(|| parts[1].to_string());
            (sqli, parts[2] == "1")
        })
        .collect()
}

fn operator(name: &str) -> CompiledOperator {
    let op = rampart_waf::Operator {
        name: name.into(),
        argument: String::new(),
        negated: false,
    };
    CompiledOperator::compile(&op, Path::new(".")).unwrap()
}

fn chain(names: &[&str]) -> Vec<Transform> {
    names.iter().map(|n| by_name(n).unwrap()).collect()
}

fn apply(ts: &[Transform], v: &[u8]) -> Vec<u8> {
    ts.iter().fold(v.to_vec(), |acc, t| t.apply(&acc))
}

/// The first `on…` attribute-like word in `v` (NULs skipped, as the HTML tokenizer reads
/// through them), lower-cased: the event handler names are where the libinjection
/// versions differ.
fn event_handler(v: &[u8]) -> Option<String> {
    let v: Vec<u8> = v.iter().copied().filter(|b| *b != 0).collect();
    let lower = v.to_ascii_lowercase();
    (0..lower.len().saturating_sub(2)).find_map(|i| {
        let boundary = i == 0 || !lower[i - 1].is_ascii_alphanumeric();
        if !boundary || !lower[i..].starts_with(b"on") {
            return None;
        }
        let word: Vec<u8> = lower[i..]
            .iter()
            .copied()
            .take_while(u8::is_ascii_alphabetic)
            .collect();
        (word.len() > 2).then(|| String::from_utf8_lossy(&word).into_owned())
    })
}

fn show(v: &[u8]) -> String {
    v.escape_ascii().to_string()
}

#[test]
fn detectors_agree_with_c_libinjection() {
    let base = payloads();
    let mut rng = Rng(0x5eed_1b1e_c710_0001);
    let mut raw: Vec<Vec<u8>> = base.clone();
    for _ in 0..20_000 {
        let p = &base[rng.below(base.len())];
        let mut m = mutate(p, &mut rng);
        if rng.below(3) == 0 {
            m = mutate(&m, &mut rng);
        }
        raw.push(m);
    }
    for _ in 0..5_000 {
        raw.push(random_bytes(&mut rng, 64));
    }
    raw.push(b"1' OR '1'='1".repeat(800));
    raw.push(b"<script>alert(1)</script>".repeat(400));
    raw.push(vec![b'('; 10_000]);
    let sqli_t = chain(&["utf8toUnicode", "urlDecodeUni", "removeNulls"]);
    let xss_t = chain(&[
        "utf8toUnicode",
        "urlDecodeUni",
        "htmlEntityDecode",
        "jsDecode",
        "cssDecode",
        "removeNulls",
    ]);
    let mut set = BTreeSet::new();
    for v in &raw {
        set.insert(v.clone());
        set.insert(apply(&sqli_t, v));
        set.insert(apply(&xss_t, v));
    }
    let inputs: Vec<Vec<u8>> = set.into_iter().collect();
    let c = oracle(&inputs);
    let (sqli, xss) = (operator("detectSQLi"), operator("detectXSS"));

    // Kind → (count, first example).
    let mut divergent: BTreeMap<String, (usize, Vec<u8>)> = BTreeMap::new();
    let (mut c_sqli, mut c_xss) = (0, 0);
    for (v, (c_fp, c_x)) in inputs.iter().zip(&c) {
        let s = sqli.test(v, b"");
        let ours = s
            .matched
            .then(|| String::from_utf8_lossy(&s.data).into_owned());
        c_sqli += usize::from(c_fp.is_some());
        c_xss += usize::from(*c_x);
        if ours != *c_fp {
            let key = format!(
                "sqli/C={}/rampart={}",
                c_fp.as_deref().unwrap_or("-"),
                ours.as_deref().unwrap_or("-")
            );
            divergent.entry(key).or_insert((0, v.clone())).0 += 1;
        }
        let x = xss.test(v, b"").matched;
        if x != *c_x {
            let key = format!(
                "xss/C={}/rampart={}/{}",
                u8::from(*c_x),
                u8::from(x),
                event_handler(v).unwrap_or_else(|| "-".into())
            );
            divergent.entry(key).or_insert((0, v.clone())).0 += 1;
        }
        if std::env::var_os("LIBINJECTION_DIFF_VERBOSE").is_some() && (ours != *c_fp || x != *c_x) {
            eprintln!("{c_fp:?}/{ours:?} xss {c_x}/{x}: {}", show(v));
        }
    }
    let found: BTreeSet<String> = divergent.keys().cloned().collect();
    println!(
        "libinjection: {} inputs compared with C libinjection 3.9.2 ({c_sqli} SQLi and {c_xss} XSS by C); {} divergent inputs in {} kinds",
        inputs.len(),
        divergent.values().map(|d| d.0).sum::<usize>(),
        divergent.len()
    );
    for (k, (n, ex)) in &divergent {
        println!("  {k}: {n} inputs, e.g. {}", show(&ex[..ex.len().min(120)]));
    }
    corpus::assert_listed("libinjection-divergences.txt", found);
}
