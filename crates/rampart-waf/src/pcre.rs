//! PCRE as CRS writes it, rewritten for the `regex` crate: byte escapes (`\x{e2}`) and the
//! spellings the two read differently. `@rx` compilation (`crate::operator`) tries the
//! pattern as written, then translated, then the backtracking engine.
//!
//! ## Checked against PCRE2
//!
//! `tests/pcre_differential.rs` compiles every CRS v4 `@rx` (chained rules included) both
//! as the engine does and with libpcre2 (the `pcre2` crate, a dev-dependency) under
//! ModSecurity v3's options: PCRE2_DOTALL | PCRE2_MULTILINE, byte mode (no PCRE2_UTF), JIT
//! falling back to the interpreter, default match limit. Both get identical bytes: the CRS
//! regression tests' payloads (whole and as URL-decoded argument values), seeded mutations
//! of them (case, whitespace, URL/HTML fragments, high and NUL bytes), random bytes and
//! 10 KiB values, each through the rule's transformations. It compares match / no match,
//! TX:0..9 for `capture` rules, and that each match holds a required literal of the
//! engine's literal filter. Known differences are listed per rule, with the reason, in
//! `tests/pcre-divergences.txt` (exact: stale entries fail too); PCRE2 errors are counted
//! apart. By design the list holds negated rules (anchored without multi-line, see
//! `operator::rx`) and `^$` after a final newline (the `regex` crate's multi-line `^`
//! matches there, PCRE2's does not).

/// `\x{HH}` is a byte in PCRE without UTF mode (CRS writes UTF-8 sequences as
/// `\x{e2}\x80[\x98\x99]`), but a code point for the `regex` crate even in byte mode, where
/// `\xHH` is the byte: rewrite the braced form of one- and two-digit escapes.
///
/// A character beyond ASCII written as itself is its UTF-8 bytes to PCRE as well: in a
/// class, each byte is a member (CRS 3.3's `[´’‘]` holds the byte 0xE2 that starts `①`),
/// and a quantifier after it repeats its last byte. Each becomes `\xHH` bytes, so the
/// pattern means that in byte mode, instead of needing the `regex` crate's Unicode mode,
/// which would read the whole pattern (classes, `.`, `\w`) by characters.
pub(crate) fn byte_escapes(p: &str) -> String {
    fn push_text(out: &mut String, t: &str) {
        for c in t.chars() {
            if c.is_ascii() {
                out.push(c);
            } else {
                let mut b = [0; 4];
                for byte in c.encode_utf8(&mut b).bytes() {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
            }
        }
    }
    let mut out = String::with_capacity(p.len());
    let mut rest = p;
    while let Some(i) = rest.find('\\') {
        push_text(&mut out, &rest[..i]);
        let esc = &rest[i..];
        let braced = esc
            .strip_prefix("\\x{")
            .and_then(|t| t.split_once('}'))
            .filter(|(h, _)| {
                (1..=2).contains(&h.len()) && h.bytes().all(|b| b.is_ascii_hexdigit())
            });
        match braced {
            Some((h, after)) => {
                out.push_str(&format!("\\x{h:0>2}"));
                rest = after;
            }
            None => {
                // Copy the backslash and the character it escapes (possibly a backslash);
                // an escaped character beyond ASCII is itself, so its bytes.
                let n = esc[1..].chars().next().map_or(0, char::len_utf8);
                if n > 1 {
                    push_text(&mut out, &esc[1..1 + n]);
                } else {
                    out.push_str(&esc[..1 + n]);
                }
                rest = &esc[1 + n..];
            }
        }
    }
    push_text(&mut out, rest);
    out
}

/// PCRE spellings the `regex` crate reads differently: inside a class `[`, `&` and `~` are
/// literal in PCRE but set syntax in Rust (CRS 3 writes `[\x5c\]{}]`-style classes), and
/// possessive quantifiers (`\s*+`) become greedy ones, which match the same or more.
pub(crate) fn pcre_to_rust(p: &str) -> String {
    translate(p, false)
}

/// Only the class spellings of [`pcre_to_rust`], possessive quantifiers kept: for the
/// backtracking engine, which has them.
pub(crate) fn pcre_class_syntax(p: &str) -> String {
    translate(p, true)
}

fn translate(p: &str, keep_possessive: bool) -> String {
    let mut out = String::with_capacity(p.len() + 8);
    let mut chars = p.chars().peekable();
    let mut in_class = false;
    // Position in the class: a `]` right after `[` or `[^` is literal in PCRE.
    let mut class_len = 0;
    let mut quantifiable = false;
    while let Some(c) = chars.next() {
        if c == '\\' {
            out.push(c);
            if let Some(n) = chars.next() {
                out.push(n);
            }
            class_len += 1;
            quantifiable = !in_class;
            continue;
        }
        if in_class {
            match c {
                ']' if class_len > 0 => {
                    in_class = false;
                    quantifiable = true;
                    out.push(c);
                    continue;
                }
                '^' if class_len == 0 && out.ends_with('[') => {
                    out.push(c);
                    continue;
                }
                '[' | '&' | '~' | ']' => {
                    out.push('\\');
                    out.push(c);
                }
                _ => out.push(c),
            }
            class_len += 1;
            continue;
        }
        match c {
            '[' => {
                in_class = true;
                class_len = 0;
                out.push(c);
            }
            '*' | '+' | '?' if quantifiable => {
                out.push(c);
                if chars.peek() == Some(&'+') {
                    chars.next();
                    if keep_possessive {
                        out.push('+');
                        quantifiable = false;
                        continue;
                    }
                }
                // `a*?` is lazy, `a**` an error either way: no second quantifier.
                quantifiable = false;
                if chars.peek() == Some(&'?') {
                    out.push('?');
                    chars.next();
                }
            }
            '(' => {
                out.push(c);
                quantifiable = false;
            }
            _ => {
                out.push(c);
                quantifiable = true;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operator::CompiledOperator;
    use crate::parser::Operator;
    use std::path::Path;

    /// `@rx arg` as a rule compiles it.
    fn rx(arg: &str) -> CompiledOperator {
        CompiledOperator::compile(
            &Operator {
                name: "rx".into(),
                argument: arg.into(),
                negated: false,
            },
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn braced_hex_escapes_are_bytes() {
        assert_eq!(byte_escapes(r"\x{e2}\x80[\x98\x99]"), r"\xe2\x80[\x98\x99]");
        assert_eq!(byte_escapes(r"\\x{e2}"), r"\\x{e2}"); // an escaped backslash, then text
        assert_eq!(byte_escapes(r"\x{9}\x{263a}"), r"\x09\x{263a}");
        // Characters beyond ASCII are their bytes, in a class and out, escaped or not.
        assert_eq!(
            byte_escapes("[´’]é+\\é"),
            r"[\xc2\xb4\xe2\x80\x99]\xc3\xa9+\xc3\xa9"
        );
        assert!(rx("[´’‘]").test("①".as_bytes(), b"").matched);
        // A negated class excludes each byte: 0xC2 alone is out, as in PCRE.
        assert!(!rx("^[^´]+$").test(b"a\xc2", b"").matched);
        assert!(rx("^[^´]+$").test(b"a\xc3", b"").matched);
        assert!(rx("^é+$").test(b"\xc3\xa9\xa9", b"").matched);
        let op = CompiledOperator::compile(
            &crate::parser::Operator {
                name: "rx".into(),
                argument: r"\x{e2}\x80[\x98\x99]".into(),
                negated: false,
            },
            std::path::Path::new("."),
        )
        .unwrap();
        assert!(op.eval("it\u{2019}s".as_bytes(), b"", false).0);
    }

    #[test]
    fn modsecurity_flags() {
        // PCRE_DOTALL.
        assert!(rx("a.b").test(b"a\nb", b"").matched);
        // Multi-line anchors (ModSecurity v3) for a rule that fires on a match...
        assert!(rx("^cat /etc").test(b"x\ncat /etc/passwd", b"").matched);
        assert!(rx("^shutdown$").test(b"shutdown\n", b"").matched);
        // ...whole-value ones (v2) for a negated rule, which one clean line must not satisfy.
        let negated = CompiledOperator::compile(
            &Operator {
                name: "rx".into(),
                argument: r"^\d+$".into(),
                negated: true,
            },
            Path::new("."),
        )
        .unwrap();
        assert!(!negated.test(b"5\n<script>", b"").matched);
        assert!(negated.test(b"55", b"").matched);
    }

    /// A negated rule keeps possessive quantifiers exact: read greedily, `;\s*+[^c]...`
    /// could give the space back and accept what PCRE refuses (CRS 3.3's 920600).
    #[test]
    fn negated_rules_keep_possessive_quantifiers() {
        let negated = |p: &str| {
            CompiledOperator::compile(
                &Operator {
                    name: "rx".into(),
                    argument: p.into(),
                    negated: true,
                },
                Path::new("."),
            )
            .unwrap()
        };
        let op = negated(r"^a(?:;\s*+(?:x=1|[^x][^=]*=\d))*$");
        assert!(op.test(b"a; x=1", b"").matched);
        assert!(op.test(b"a; y=2", b"").matched);
        // `x=2`: greedy `\s*` would give the space to `[^x]` and match.
        assert!(!op.test(b"a; x=2", b"").matched);
        assert!(
            rx(r"^a(?:;\s*(?:x=1|[^x][^=]*=\d))*$")
                .test(b"a; x=2", b"")
                .matched
        );
    }

    #[test]
    fn pcre_only_patterns() {
        // CRS 3.3: a literal `[` inside a class, possessive quantifiers, look-around and
        // back-references.
        assert_eq!(pcre_to_rust(r"[^a[\]]\s*+x"), r"[^a\[\]]\s*x");
        assert_eq!(pcre_to_rust(r"[]a]++"), r"[\]a]+");
        assert!(rx(r"^[^;[\]]+$").test(b"abc", b"").matched);
        assert!(!rx(r"^[^;[\]]+$").test(b"a[c", b"").matched);
        assert!(rx(r"<\?(?!xml)").test(b"<?php", b"").matched);
        assert!(!rx(r"<\?(?!xml)").test(b"<?xml", b"").matched);
        assert!(rx(r"\b(\w+) = \1\b").test(b"x a = a", b"").matched);
        assert!(!rx(r"\b(\w+) = \1\b").test(b"x a = b", b"").matched);
    }
}
