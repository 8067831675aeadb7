//! Literal extraction for the engine's prefilters: the lower-case strings one of which every
//! match of an operator contains (`@rx` through `regex-syntax`, `@pm` phrase lists), so a
//! value holding none of them need not run the operator.

use crate::operator::find;

/// The phrases of a `@pm` / `@pmFromFile` (matched ASCII case-insensitively), lower-case.
pub(crate) fn pm_literals(words: &[String]) -> Option<Vec<Vec<u8>>> {
    let lits: Vec<Vec<u8>> = words
        .iter()
        .map(|w| w.as_bytes().to_ascii_lowercase())
        .collect();
    (!lits.is_empty() && lits.iter().all(|l| !l.is_empty())).then(|| minimal(lits))
}

/// For a byte-mode regex (as [`regex`](crate::operator::regex) builds it first), lower-case
/// literals one of which every match contains, ASCII case aside; `None` when there is no
/// such finite set (or the pattern needed Unicode mode). Case is folded before extraction so
/// that `(?i)select` gives one literal, not 64.
pub(crate) fn required_literals(pattern: &str) -> Option<Vec<Vec<u8>>> {
    use regex_syntax::hir::literal::{ExtractKind, Extractor};
    let hir = regex_syntax::ParserBuilder::new()
        .unicode(false)
        .utf8(false)
        .build()
        .parse(pattern)
        .ok()?;
    let folded = fold_case(&hir)?;
    let mut best: Option<Vec<Vec<u8>>> = None;
    for kind in [ExtractKind::Prefix, ExtractKind::Suffix] {
        let seq = Extractor::new().kind(kind).extract(&folded);
        let Some(lits) = seq.literals() else { continue };
        // An empty set (a regex that never matches) or an empty literal filters nothing
        // worth the risk.
        if lits.is_empty() || lits.iter().any(|l| l.is_empty()) {
            continue;
        }
        let lits = minimal(lits.iter().map(|l| l.as_bytes().to_vec()).collect());
        let shortest = |v: &Vec<Vec<u8>>| v.iter().map(Vec::len).min().unwrap_or(0);
        if best
            .as_ref()
            .is_none_or(|b| (shortest(&lits), b.len()) > (shortest(b), lits.len()))
        {
            best = Some(lits);
        }
    }
    best
}

/// Drops literals that contain another: a value holding the longer holds the shorter.
/// (Quadratic: long phrase lists, which rarely nest, are only deduplicated.)
fn minimal(mut lits: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    lits.sort();
    lits.dedup();
    if lits.len() > 256 {
        return lits;
    }
    lits.sort_by_key(Vec::len);
    let mut out: Vec<Vec<u8>> = Vec::new();
    for l in lits {
        if !out.iter().any(|o| find(&l, o).is_some()) {
            out.push(l);
        }
    }
    out
}

/// `hir` with ASCII upper-case letters mapped to lower-case everywhere (literals and
/// classes): lower-casing a string the regex matches gives one this regex matches.
fn fold_case(hir: &regex_syntax::hir::Hir) -> Option<regex_syntax::hir::Hir> {
    use regex_syntax::hir::{
        Capture, Class, ClassBytes, ClassBytesRange, Hir, HirKind, Repetition,
    };
    Some(match hir.kind() {
        HirKind::Empty => Hir::empty(),
        HirKind::Literal(l) => Hir::literal(l.0.to_ascii_lowercase()),
        HirKind::Class(Class::Bytes(c)) => {
            let mut ranges = Vec::new();
            for r in c.iter() {
                let (a, b) = (r.start(), r.end());
                if a < b'A' {
                    ranges.push(ClassBytesRange::new(a, b.min(b'A' - 1)));
                }
                let (ua, ub) = (a.max(b'A'), b.min(b'Z'));
                if ua <= ub {
                    ranges.push(ClassBytesRange::new(ua + 32, ub + 32));
                }
                if b > b'Z' {
                    ranges.push(ClassBytesRange::new(a.max(b'Z' + 1), b));
                }
            }
            Hir::class(Class::Bytes(ClassBytes::new(ranges)))
        }
        // Byte mode gives byte classes; anything else is left unfiltered.
        HirKind::Class(Class::Unicode(_)) => return None,
        HirKind::Look(l) => Hir::look(*l),
        HirKind::Repetition(r) => Hir::repetition(Repetition {
            min: r.min,
            max: r.max,
            greedy: r.greedy,
            sub: Box::new(fold_case(&r.sub)?),
        }),
        HirKind::Capture(c) => Hir::capture(Capture {
            index: c.index,
            name: c.name.clone(),
            sub: Box::new(fold_case(&c.sub)?),
        }),
        HirKind::Concat(v) => Hir::concat(v.iter().map(fold_case).collect::<Option<_>>()?),
        HirKind::Alternation(v) => {
            Hir::alternation(v.iter().map(fold_case).collect::<Option<_>>()?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::regex;

    fn lits(pattern: &str) -> Option<Vec<String>> {
        required_literals(pattern).map(|v| {
            let mut v: Vec<String> = v
                .into_iter()
                .map(|l| String::from_utf8(l).unwrap())
                .collect();
            v.sort();
            v
        })
    }

    #[test]
    fn required_literals_fold_case_and_drop_longer_ones() {
        assert_eq!(lits("(?i)SeLeCt"), Some(vec!["select".into()]));
        assert_eq!(lits("abc|XYZ"), Some(vec!["abc".into(), "xyz".into()]));
        // The suffixes are longer than the prefix `..`, so they filter better.
        assert_eq!(
            lits(r"(?:^|[/;\x5c])\.{2,3}[/;\x5c]"),
            Some(vec!["../".into(), "..;".into(), "..\\".into()])
        );
        // `ab` is in every match: the longer literals holding it are redundant.
        assert_eq!(lits("xab|abc|ab"), Some(vec!["ab".into()]));
        // A match can be empty, or start with anything: nothing to require.
        assert_eq!(lits(".*"), None);
        assert_eq!(lits("a?"), None);
        assert_eq!(lits("[a-z]+x?"), None);
    }

    /// Every string a regex matches holds one of its literals (ASCII case aside): checked
    /// on random strings made of the patterns' own pieces, in random case.
    #[test]
    fn required_literals_are_in_every_match() {
        let patterns = [
            "(?i)union[\\s\\x0b]+select",
            "(?i)(?:on(?:load|error)|javascript:)",
            "abc|b[cd]e|(?i:XyZ)",
            "(?:^|[/;\\x5c])\\.{2,3}[/;\\x5c]",
            "(?i)<script[^>]*>",
            "[0-9]{2}ab|cd[e-g]+",
        ];
        let pieces: [&[u8]; 24] = [
            b"union",
            b" ",
            b"\t",
            b"select",
            b"on",
            b"load",
            b"error",
            b"javascript:",
            b"ab",
            b"c",
            b"bde",
            b"xyz",
            b"/",
            b";",
            b"\\",
            b".",
            b"..",
            b"<script",
            b">",
            b"12",
            b"cd",
            b"ef",
            b"g",
            b"x",
        ];
        let mut next = crate::test_rng(0x2545_f491_4f6c_dd1du64);
        for p in patterns {
            let re = regex(p, true).unwrap();
            let lits = required_literals(re.as_str()).unwrap_or_else(|| panic!("{p}: none"));
            let mut matched = 0;
            for _ in 0..20_000 {
                let mut s = Vec::new();
                for _ in 0..next() % 6 {
                    s.extend_from_slice(pieces[(next() % pieces.len() as u64) as usize]);
                }
                for b in s.iter_mut() {
                    if next().is_multiple_of(3) {
                        b.make_ascii_uppercase();
                    }
                }
                if re.is_match(&s) {
                    matched += 1;
                    let low = s.to_ascii_lowercase();
                    assert!(
                        lits.iter().any(|l| find(&low, l).is_some()),
                        "{p} matches {:?} without a literal of {lits:?}",
                        String::from_utf8_lossy(&s)
                    );
                }
            }
            assert!(
                matched > 0,
                "{p}: no random string matched; the check proved nothing"
            );
        }
    }
}
