//! Differential test of every CRS `@rx` against PCRE2, the library ModSecurity v3 runs.
//!
//! Each `@rx` of CRS v4 (chained rules included, parsed by the crate's own parser) is
//! compiled twice: by Rampart (`CompiledOperator::compile`, what the engine runs) and by
//! libpcre2 (the `pcre2` crate) with ModSecurity v3's options (`src/utils/regex.cc`:
//! `PCRE2_DOTALL | PCRE2_MULTILINE`, no `PCRE2_UTF`, JIT with a fallback to the interpreter
//! on a JIT stack overflow, the default match limit). Both see the same bytes: every
//! payload of the CRS regression tests (URI, header values, body, raw requests; whole and
//! split into URL-decoded argument values), deterministic mutations of them (case flips,
//! whitespace variants, URL/HTML fragments, high and NUL bytes), random bytes and a few
//! 10 KiB inputs, each put through the rule's own transformations. Match / no match is
//! compared, and TX:0..9 for rules with `capture`; every Rampart match must also hold one of
//! the pattern's required literals (the engine's literal filter skips values without).
//!
//! A divergence fails the test unless `tests/pcre-divergences.txt` lists its rule with a
//! reason; a listed rule that no longer diverges fails it too. PCRE2 errors (match limit)
//! are counted apart. `PCRE_DIFF_VERBOSE=1` prints every divergent input;
//! `PCRE_DIFF_RULES=930110,934160` prints each listed rule's counts.

mod corpus;
mod ftw;

use corpus::{mutate, payloads, random_bytes, Rng};

use rampart_waf::operator::CompiledOperator;
use rampart_waf::transform::{by_name, Transform};
use rampart_waf::{parse_files, Directive};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::Instant;

const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

/// One `@rx` as the engine compiles it.
struct Pattern {
    /// The rule id; `<id>.<n>` for the n-th rule of a chain after its head.
    key: String,
    pattern: String,
    /// `!@rx`: compiled as the engine compiles a negated pattern; compared before negation.
    negated: bool,
    transforms: Vec<Transform>,
    capture: bool,
}

fn patterns() -> Vec<Pattern> {
    let dirs = parse_files(&[&format!("{BASE}/rules/*.conf")]).unwrap();
    let mut out = Vec::new();
    // The chain being read: its head's id and how many rules followed it.
    let mut chain: Option<(u64, usize)> = None;
    for d in &dirs {
        let Directive::Rule(r) = d else {
            continue;
        };
        let key = match (r.id(), chain) {
            (Some(id), _) => {
                chain = Some((id, 0));
                id.to_string()
            }
            (None, Some((id, n))) => {
                chain = Some((id, n + 1));
                format!("{id}.{}", n + 1)
            }
            (None, None) => "?".into(),
        };
        let chained = r.actions.iter().any(|a| a.name == "chain");
        if !chained && r.id().is_none() {
            chain = None;
        }
        if !r.operator.name.eq_ignore_ascii_case("rx") {
            continue;
        }
        // The engine's order: `t:none` clears what came before.
        let mut transforms = Vec::new();
        for a in r.actions.iter().filter(|a| a.name == "t") {
            let v = a.value.as_deref().unwrap_or("");
            if v.eq_ignore_ascii_case("none") {
                transforms.clear();
            } else {
                transforms.push(by_name(v).unwrap());
            }
        }
        out.push(Pattern {
            key,
            pattern: r.operator.argument.clone(),
            negated: r.operator.negated,
            transforms,
            capture: r.actions.iter().any(|a| a.name == "capture"),
        });
    }
    out
}

/// PCRE2 as ModSecurity v3 compiles an `@rx` (`src/utils/regex.cc`).
struct Oracle {
    jit: pcre2::bytes::Regex,
    /// The interpreter, which ModSecurity falls back to when the JIT stack overflows.
    interp: pcre2::bytes::Regex,
}

impl Oracle {
    fn new(p: &str) -> Result<Oracle, pcre2::Error> {
        let build = |jit| {
            pcre2::bytes::RegexBuilder::new()
                .dotall(true)
                .multi_line(true)
                .jit_if_available(jit)
                .build(if p.is_empty() { ".*" } else { p })
        };
        Ok(Oracle {
            jit: build(true)?,
            interp: build(false)?,
        })
    }

    /// Match or not, TX:0..9 when asked; Err for a PCRE2 error (match limit).
    fn test(&self, v: &[u8], captures: bool) -> Result<(bool, Vec<Vec<u8>>), pcre2::Error> {
        let run = |re: &pcre2::bytes::Regex| -> Result<_, pcre2::Error> {
            if !captures {
                return re.is_match(v).map(|m| (m, Vec::new()));
            }
            Ok(match re.captures(v)? {
                None => (false, Vec::new()),
                Some(c) => (
                    true,
                    (0..c.len().min(10))
                        .map(|i| c.get(i).map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                        .collect(),
                ),
            })
        };
        run(&self.jit).or_else(|_| run(&self.interp))
    }
}

#[derive(Default)]
struct Tally {
    patterns: usize,
    skipped: Vec<String>,
    inputs: BTreeSet<Vec<u8>>,
    comparisons: usize,
    capture_comparisons: usize,
    pcre_errors: BTreeMap<String, usize>,
    /// Rule → (divergent inputs, an example, what each side said).
    divergences: BTreeMap<String, (usize, Vec<u8>, String)>,
    /// Patterns the engine runs on fancy-regex.
    backtracking: Vec<String>,
    /// Matches whose value holds none of the pattern's required literals.
    filter_misses: Vec<String>,
    /// Rule → its pattern as written, `!` first when negated.
    written: BTreeMap<String, String>,
}

/// Whether `v` holds one of the operator's required literals (ASCII case aside), or it has
/// none.
fn has_literal(op: &CompiledOperator, v: &[u8]) -> bool {
    let Some(lits) = op.literals() else {
        return true;
    };
    let lower = v.to_ascii_lowercase();
    lits.iter()
        .any(|l| l.is_empty() || lower.windows(l.len()).any(|w| w == l.as_slice()))
}

fn listed(path: &str) -> BTreeSet<String> {
    ftw::listed_skips(path).into_iter().collect()
}

#[test]
fn every_rx_agrees_with_pcre2() {
    let start = Instant::now();
    let pats = patterns();
    let base = payloads();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    // Inputs every pattern sees besides the payloads: mutations, random bytes, long values.
    let mut generated: Vec<Vec<u8>> = Vec::new();
    for _ in 0..4000 {
        let p = &base[rng.below(base.len())];
        generated.push(mutate(p, &mut rng));
    }
    for _ in 0..1000 {
        generated.push(random_bytes(&mut rng, 64));
    }
    let mut long_rng = Rng(7);
    generated.push(vec![b'a'; 10 << 10]);
    generated.push(vec![b' '; 10 << 10]);
    generated.push(b"a\n".repeat(5 << 10));
    generated.push((0..10 << 10).map(|_| long_rng.next() as u8).collect());
    generated.push(b"<script>alert(1)</script> UNION SELECT ".repeat(256));
    let mut padded = vec![b'x'; 10 << 10];
    padded.extend_from_slice(b"' or 1=1-- ;cat /etc/passwd <svg onload=x>");
    generated.push(padded);

    // Transformed values, once per distinct chain.
    let mut by_chain: HashMap<Vec<Transform>, Vec<Vec<u8>>> = HashMap::new();
    let chain_of = |ts: &[Transform], v: &[u8]| ts.iter().fold(v.to_vec(), |v, t| t.apply(&v));

    let mut t = Tally::default();
    let data_dir = format!("{BASE}/rules");
    let verbose = std::env::var("PCRE_DIFF_VERBOSE").is_ok();
    let watched = std::env::var("PCRE_DIFF_RULES").unwrap_or_default();
    let watched: Vec<&str> = watched.split(',').collect();
    for p in &pats {
        if p.pattern.contains("%{") {
            // A macro: expanded per request by the engine, not a fixed pattern.
            t.skipped.push(p.key.clone());
            continue;
        }
        let op = rampart_waf::Operator {
            name: "rx".into(),
            argument: p.pattern.clone(),
            negated: p.negated,
        };
        let ours = CompiledOperator::compile(&op, Path::new(&data_dir))
            .unwrap_or_else(|e| panic!("{}: {e}", p.key));
        let oracle = Oracle::new(&p.pattern).unwrap_or_else(|e| panic!("{}: PCRE2: {e}", p.key));
        t.patterns += 1;
        // The backtracking engine (look-around, back-references): where translation is riskiest.
        if format!("{ours:?}").contains("kind: Fancy(") {
            t.backtracking.push(p.key.clone());
        }
        let values = by_chain
            .entry(p.transforms.clone())
            .or_insert_with(|| {
                let set: BTreeSet<Vec<u8>> = base
                    .iter()
                    .chain(&generated)
                    .map(|v| chain_of(&p.transforms, v))
                    .collect();
                set.into_iter().collect()
            })
            .clone();
        // Near misses of this pattern: mutations of the payloads PCRE2 matches.
        let mut extra = Vec::new();
        let hits: Vec<&Vec<u8>> = base
            .iter()
            .filter(|v| {
                matches!(
                    oracle.test(&chain_of(&p.transforms, v), false),
                    Ok((true, _))
                )
            })
            .collect();
        for _ in 0..100.min(hits.len() * 8) {
            let v = hits[rng.below(hits.len())];
            extra.push(chain_of(&p.transforms, &mutate(v, &mut rng)));
        }
        // Per-rule counts for `PCRE_DIFF_RULES=id,id`: (inputs, PCRE2 hits, Rampart hits).
        let mut counts = (0usize, 0usize, 0usize);
        for v in values.iter().chain(&extra) {
            t.comparisons += 1;
            let theirs = match oracle.test(v, p.capture) {
                Ok(r) => r,
                Err(e) => {
                    *t.pcre_errors.entry(format!("{}: {e}", p.key)).or_default() += 1;
                    continue;
                }
            };
            let (m, caps) = ours.eval(v, b"", p.capture);
            // The engine skips a rule whose required literals a value lacks (its literal
            // filter): a match without one would be hidden in a request.
            if m && !has_literal(&ours, v) {
                t.filter_misses.push(format!(
                    "{}: {:?}",
                    p.key,
                    String::from_utf8_lossy(&v[..v.len().min(100)])
                ));
            }
            counts.0 += 1;
            counts.1 += usize::from(theirs.0);
            counts.2 += usize::from(m);
            let differs = if m != theirs.0 {
                true
            } else if p.capture && m {
                t.capture_comparisons += 1;
                caps != theirs.1
            } else {
                false
            };
            if differs {
                let e = t
                    .divergences
                    .entry(p.key.clone())
                    .or_insert_with(|| (0, v.clone(), String::new()));
                e.0 += 1;
                let bang = if p.negated { "!" } else { "" };
                t.written
                    .insert(p.key.clone(), format!("{bang}@rx {}", p.pattern));
                if verbose {
                    println!(
                        "{} rampart {m} pcre2 {}: {:?}",
                        p.key,
                        theirs.0,
                        String::from_utf8_lossy(&v[..v.len().min(300)])
                    );
                }
                // The shortest example is the one to read.
                if e.2.is_empty() || v.len() < e.1.len() {
                    e.1 = v.clone();
                    e.2 = if m == theirs.0 {
                        format!("captures: rampart {caps:?}, pcre2 {:?}", theirs.1)
                    } else {
                        format!("rampart {m}, pcre2 {}", theirs.0)
                    };
                }
            }
        }
        if watched.contains(&p.key.as_str()) {
            println!(
                "rule {}: {} inputs, PCRE2 matches {}, Rampart matches {}, divergent {}",
                p.key,
                counts.0,
                counts.1,
                counts.2,
                t.divergences.get(&p.key).map_or(0, |d| d.0)
            );
        }
        t.inputs.extend(values.iter().chain(&extra).cloned());
    }

    let allow = listed(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/pcre-divergences.txt"
    ));
    let found: BTreeSet<String> = t.divergences.keys().cloned().collect();
    println!(
        "patterns compared {} ({} backtracking: {:?}), skipped (macros) {:?}; distinct inputs {} ({} payloads, {} generated before transformation); comparisons {} ({} of captures); divergent rules {} ({} listed); literal-filter misses {}; PCRE2 errors {} ({:?}); {:.1}s",
        t.patterns,
        t.backtracking.len(),
        t.backtracking,
        t.skipped,
        t.inputs.len(),
        base.len(),
        generated.len(),
        t.comparisons,
        t.capture_comparisons,
        found.len(),
        found.intersection(&allow).count(),
        t.filter_misses.len(),
        t.pcre_errors.values().sum::<usize>(),
        t.pcre_errors,
        start.elapsed().as_secs_f64(),
    );
    for (k, (n, ex, what)) in &t.divergences {
        let w = &t.written[k];
        println!(
            "divergence {k} `{}` ({n} inputs, {what}): {:?}",
            &w[..w.len().min(120)],
            String::from_utf8_lossy(&ex[..ex.len().min(200)])
        );
    }
    assert!(
        t.filter_misses.is_empty(),
        "matches the literal filter would skip: {:?}",
        t.filter_misses
    );
    let unlisted: Vec<_> = found.difference(&allow).collect();
    let stale: Vec<_> = allow.difference(&found).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "pcre-divergences.txt is out of date: unlisted {unlisted:?}, no longer divergent {stale:?}"
    );
}
