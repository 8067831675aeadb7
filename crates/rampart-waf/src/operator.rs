//! SecLang operators (`@rx`, `@pm`, `@eq`, ...). Regexes use the `regex` crate in byte mode
//! (linear time: no catastrophic backtracking); phrase lists use Aho-Corasick.

use crate::literals::{pm_literals, required_literals};
use crate::parser::Operator;
use crate::pcre::{byte_escapes, pcre_to_rust};
use crate::Error;
use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use std::net::IpAddr;
use std::path::Path;

#[derive(Debug)]
enum Kind {
    Rx(Regex),
    /// A pattern needing look-around or back-references (CRS 3 has a few), which the
    /// linear-time engine cannot express: backtracking, bounded by a step limit.
    Fancy(fancy_regex::Regex),
    /// `@rx` with macros (CRS 3.3's `!@rx ^%{tx.allowed_request_content_type_charset}$`):
    /// compiled per expansion at run time, as ModSecurity does, the last few kept. `None`:
    /// the expansion is no pattern, which never matches.
    RxMacro(
        std::sync::Mutex<
            std::collections::HashMap<Vec<u8>, Option<std::sync::Arc<CompiledOperator>>>,
        >,
    ),
    Pm(AhoCorasick),
    /// Operators whose argument may hold macros (`%{tx.x}`): compared at run time.
    Streq,
    Contains,
    ContainsWord,
    BeginsWith,
    EndsWith,
    Within,
    Eq,
    Ge,
    Gt,
    Le,
    Lt,
    IpMatch(Vec<ipnet::IpNet>),
    ValidateByteRange(Box<[bool; 256]>),
    ValidateUrlEncoding,
    ValidateUtf8Encoding,
    DetectSqli,
    DetectXss,
    Unconditional,
    NoMatch,
    /// `@geoLookup`: run by the engine, which holds the database (see `is_geo_lookup`).
    GeoLookup,
}

/// An [`Operator`] ready to test values: regexes and phrase lists built, numbers read.
#[derive(Debug)]
pub struct CompiledOperator {
    kind: Kind,
    /// `!@op`: the rule matches when the operator does not (applied by the caller).
    pub negated: bool,
    /// The raw argument, for run-time macro expansion of string/number operators.
    pub argument: String,
    /// The argument as a number when it holds no macro (`@lt 2`), read once.
    number: Option<i64>,
    /// Lower-case byte strings one of which every match contains (ASCII case aside), when
    /// known: a value holding none of them cannot match. Lets the engine test many rules'
    /// literals in one pass over a value (`engine::groups::GroupFilter`).
    literals: Option<Vec<Vec<u8>>>,
}

/// A numeric operator's comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumCmp {
    /// `@eq`: equal.
    Eq,
    /// `@ge`: greater or equal.
    Ge,
    /// `@gt`: greater.
    Gt,
    /// `@le`: less or equal.
    Le,
    /// `@lt`: less.
    Lt,
}

impl NumCmp {
    /// Whether `value`, read as a number as the operators read it, compares so to `n`.
    pub fn holds(self, value: &[u8], n: i64) -> bool {
        let v = num(value);
        match self {
            NumCmp::Eq => v == n,
            NumCmp::Ge => v >= n,
            NumCmp::Gt => v > n,
            NumCmp::Le => v <= n,
            NumCmp::Lt => v < n,
        }
    }
}

/// The outcome of one test, before negation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OpMatch {
    /// Whether the operator matched.
    pub matched: bool,
    /// What matched (for `MATCHED_VAR`-style logging), bounded.
    pub data: Vec<u8>,
    /// Regex groups 0..=9 for `capture`.
    pub captures: Vec<Vec<u8>>,
}

/// `multi_line`: `^` and `$` also match at line breaks (see [`rx`]).
pub(crate) fn regex(p: &str, multi_line: bool) -> Result<Regex, Error> {
    // Byte mode first (PCRE without UTF: `.` is any byte, classes are ASCII), Unicode mode
    // for the few patterns that need it. `.` matches `\n`: ModSecurity sets PCRE_DOTALL.
    let build = |unicode| {
        RegexBuilder::new(p)
            .unicode(unicode)
            .dot_matches_new_line(true)
            .multi_line(multi_line)
            .size_limit(64 << 20)
            .dfa_size_limit(64 << 20)
            .build()
    };
    build(false).or_else(|_| build(true)).map_err(Error::Regex)
}

/// An `@rx` pattern (PCRE syntax): the linear-time engine when it can express it, as
/// written or after [`pcre_to_rust`], else the backtracking one.
///
/// Line anchors: ModSecurity v3 compiles with PCRE2_MULTILINE (`^`/`$` at every line
/// break), v2 without it and with PCRE_DOLLAR_ENDONLY (`$` at the very end only). Each
/// rule gets the stricter reading: multi-line for a rule that fires on a match (it then
/// matches where either would), whole-value for a negated one (`!@rx ^[allowed]+$`, which
/// under multi-line a line break would satisfy with one clean line: v3's bypass).
fn rx(arg: &str, negated: bool) -> Result<Kind, Error> {
    let multi_line = !negated;
    let arg = &byte_escapes(arg);
    // A possessive quantifier read as a greedy one matches more: for a rule that fires on a
    // match that only widens it, but a negated rule (`!@rx ^allowed$`) would then let more
    // through (CRS 3.3's 920600 accepted `charset=cp1026` by giving `\s*+`'s space back).
    // Those keep the exact meaning, in the backtracking engine.
    if negated && has_possessive(arg) {
        let exact = crate::pcre::pcre_class_syntax(arg);
        if let Ok(re) = fancy_regex::RegexBuilder::new(&format!("(?s){exact}"))
            .backtrack_limit(FANCY_BACKTRACK_LIMIT)
            .build()
        {
            return Ok(Kind::Fancy(re));
        }
    }
    let err = match regex(arg, multi_line) {
        Ok(re) => return Ok(Kind::Rx(re)),
        Err(e) => e,
    };
    let translated = pcre_to_rust(arg);
    if let Ok(re) = regex(&translated, multi_line) {
        return Ok(Kind::Rx(re));
    }
    let flags = if multi_line { "(?sm)" } else { "(?s)" };
    [translated.as_str(), arg]
        .iter()
        .find_map(|p| {
            // The same flags as the linear-time engine (this builder has no option for them).
            fancy_regex::RegexBuilder::new(&format!("{flags}{p}"))
                .backtrack_limit(FANCY_BACKTRACK_LIMIT)
                .build()
                .ok()
        })
        .map(Kind::Fancy)
        .ok_or(err)
}

/// Whether a PCRE pattern has a possessive quantifier (`*+`, `++`, `?+`, `}+`) outside a
/// class and not escaped.
fn has_possessive(p: &str) -> bool {
    let b = p.as_bytes();
    let (mut i, mut in_class) = (0, false);
    while i < b.len() {
        match b[i] {
            b'\\' => i += 1,
            b'[' if !in_class => in_class = true,
            b']' if in_class => in_class = false,
            // `a++` is possessive; `(?+` is not a quantifier.
            b'*' | b'+' | b'?' | b'}'
                if !in_class
                    && b.get(i + 1) == Some(&b'+')
                    && !(b[i] == b'?' && i > 0 && b[i - 1] == b'(') =>
            {
                return true;
            }
            _ => {}
        }
        i += 1;
    }
    false
}

/// How many expansions of one macro `@rx` stay compiled.
const RX_MACRO_CACHE: usize = 16;

/// Backtracking steps per match attempt; beyond it the attempt counts as no match.
const FANCY_BACKTRACK_LIMIT: usize = 100_000;

fn phrases(words: &[String]) -> Result<AhoCorasick, Error> {
    AhoCorasickBuilder::new()
        .ascii_case_insensitive(true)
        .match_kind(MatchKind::LeftmostLongest)
        .build(words)
        .map_err(Error::Phrases)
}

fn data_file(dir: &Path, name: &str) -> Result<Vec<String>, Error> {
    let p = dir.join(name);
    let text = std::fs::read_to_string(&p).map_err(|source| Error::DataFile {
        path: p.display().to_string(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect())
}

fn byte_ranges(arg: &str) -> Result<[bool; 256], Error> {
    let mut ok = [false; 256];
    for part in arg.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let a: u8 = a.parse().map_err(|_| Error::ByteRange {
            range: part.to_string(),
        })?;
        let b: u8 = b.parse().map_err(|_| Error::ByteRange {
            range: part.to_string(),
        })?;
        for x in a..=b {
            ok[x as usize] = true;
        }
    }
    Ok(ok)
}

impl CompiledOperator {
    /// `data_dir`: where `@pmFromFile` / `@ipMatchFromFile` files are (the rule file's folder).
    pub fn compile(op: &Operator, data_dir: &Path) -> Result<CompiledOperator, Error> {
        let arg = op.argument.as_str();
        // `@pm` phrases, kept for the literal filter too.
        let mut words = Vec::new();
        let kind = match op.name.to_ascii_lowercase().as_str() {
            "rx" if arg.contains("%{") => Kind::RxMacro(Default::default()),
            "rx" => rx(arg, op.negated)?,
            "pm" => {
                words = arg.split_whitespace().map(str::to_string).collect();
                Kind::Pm(phrases(&words)?)
            }
            "pmfromfile" | "pmf" => {
                for f in arg.split_whitespace() {
                    words.extend(data_file(data_dir, f)?);
                }
                Kind::Pm(phrases(&words)?)
            }
            "streq" => Kind::Streq,
            "contains" => Kind::Contains,
            "containsword" => Kind::ContainsWord,
            "beginswith" => Kind::BeginsWith,
            "endswith" => Kind::EndsWith,
            "within" => Kind::Within,
            "eq" => Kind::Eq,
            "ge" => Kind::Ge,
            "gt" => Kind::Gt,
            "le" => Kind::Le,
            "lt" => Kind::Lt,
            "ipmatch" | "ipmatchfromfile" | "ipmatchf" => {
                let items: Vec<String> = if op.name.eq_ignore_ascii_case("ipmatch") {
                    arg.split(',').map(|s| s.trim().to_string()).collect()
                } else {
                    data_file(data_dir, arg.trim())?
                };
                let mut nets = Vec::new();
                for i in items.iter().filter(|s| !s.is_empty()) {
                    let net = i
                        .parse::<ipnet::IpNet>()
                        .or_else(|_| i.parse::<IpAddr>().map(ipnet::IpNet::from))
                        .map_err(|_| Error::IpMatch { item: i.clone() })?;
                    nets.push(net);
                }
                Kind::IpMatch(nets)
            }
            "validatebyterange" => Kind::ValidateByteRange(Box::new(byte_ranges(arg)?)),
            "validateurlencoding" => Kind::ValidateUrlEncoding,
            "validateutf8encoding" => Kind::ValidateUtf8Encoding,
            "detectsqli" => Kind::DetectSqli,
            "detectxss" => Kind::DetectXss,
            "unconditionalmatch" => Kind::Unconditional,
            "nomatch" => Kind::NoMatch,
            "geolookup" => Kind::GeoLookup,
            // No DNS from the request path: the lookup fails, which in SecLang is a
            // non-match (CRS 3's reputation rules then simply do not fire).
            "rbl" => Kind::NoMatch,
            _ => {
                return Err(Error::UnknownOperator {
                    name: op.name.clone(),
                })
            }
        };
        let literals = match &kind {
            Kind::Rx(re) => required_literals(re.as_str()),
            Kind::Pm(_) => pm_literals(&words),
            _ => None,
        };
        Ok(CompiledOperator {
            kind,
            literals,
            negated: op.negated,
            number: (!op.argument.contains("%{")).then(|| num(op.argument.as_bytes())),
            argument: op.argument.clone(),
        })
    }

    /// `arg` as a number, read at load time when it is the rule's own literal argument.
    fn arg_number(&self, arg: &[u8]) -> i64 {
        match self.number {
            Some(n) if arg == self.argument.as_bytes() => n,
            _ => num(arg),
        }
    }

    /// `(comparison, constant)` for `@eq`, `@ge`, `@gt`, `@le`, `@lt` with a literal
    /// argument: what the engine needs to decide such a rule without reading it.
    pub fn numeric(&self) -> Option<(NumCmp, i64)> {
        Some((self.comparison()?, self.number?))
    }

    fn comparison(&self) -> Option<NumCmp> {
        Some(match self.kind {
            Kind::Eq => NumCmp::Eq,
            Kind::Ge => NumCmp::Ge,
            Kind::Gt => NumCmp::Gt,
            Kind::Le => NumCmp::Le,
            Kind::Lt => NumCmp::Lt,
            _ => return None,
        })
    }

    /// Lower-case byte strings one of which every match contains (ASCII case aside), when
    /// known: a value holding none of them cannot match.
    pub fn literals(&self) -> Option<&[Vec<u8>]> {
        self.literals.as_deref()
    }

    /// `@geoLookup`, which the engine answers with the database it was lent (and which
    /// fills the `GEO` collection as a side effect).
    pub fn is_geo_lookup(&self) -> bool {
        matches!(self.kind, Kind::GeoLookup)
    }

    /// For libinjection's detectors (pure functions of the value, and the costliest
    /// operators CRS runs): 0 for detectSQLi, 1 for detectXSS, so that the engine can
    /// remember their answers within a request.
    pub fn detector(&self) -> Option<usize> {
        match self.kind {
            Kind::DetectSqli => Some(0),
            Kind::DetectXss => Some(1),
            _ => None,
        }
    }

    /// Test `value`; `arg` is the argument after macro expansion (for string operators).
    /// `data` and `captures` are filled only on a match.
    pub fn test(&self, value: &[u8], arg: &[u8]) -> OpMatch {
        let (matched, captures) = self.eval(value, arg, true);
        if !matched {
            return OpMatch::default();
        }
        let bounded = |d: &[u8]| d[..d.len().min(256)].to_vec();
        let data = match &self.kind {
            Kind::Rx(_) => captures.first().map(|c| bounded(c)).unwrap_or_default(),
            Kind::Pm(ac) => ac
                .find(value)
                .map(|m| bounded(&value[m.start()..m.end()]))
                .unwrap_or_default(),
            Kind::Contains | Kind::ContainsWord | Kind::BeginsWith | Kind::EndsWith => bounded(arg),
            Kind::ValidateByteRange(ok) => value
                .iter()
                .find(|b| !ok[**b as usize])
                .map(|b| vec![*b])
                .unwrap_or_default(),
            Kind::DetectSqli => libinjectionrs::detect_sqli(value)
                .fingerprint
                .as_ref()
                .map(|f| f.as_str().as_bytes().to_vec())
                .unwrap_or_default(),
            _ => bounded(value),
        };
        OpMatch {
            matched,
            data,
            captures,
        }
    }

    /// The match decision alone (before negation), with regex groups 0..=9 only when
    /// `want_captures`: the engine's hot path, which must not allocate for a miss.
    pub fn eval(&self, value: &[u8], arg: &[u8], want_captures: bool) -> (bool, Vec<Vec<u8>>) {
        let matched = match &self.kind {
            Kind::RxMacro(cache) => {
                let compiled = {
                    let mut c = cache.lock().unwrap_or_else(|p| p.into_inner());
                    // Expansions come from TX values, which requests may influence: a
                    // bounded set, rebuilt when full.
                    if c.len() >= RX_MACRO_CACHE && !c.contains_key(arg) {
                        c.clear();
                    }
                    c.entry(arg.to_vec())
                        .or_insert_with(|| {
                            let p = std::str::from_utf8(arg).ok()?;
                            let kind = rx(p, self.negated).ok()?;
                            Some(std::sync::Arc::new(CompiledOperator {
                                kind,
                                negated: self.negated,
                                argument: p.to_string(),
                                number: None,
                                literals: None,
                            }))
                        })
                        .clone()
                };
                return match compiled {
                    Some(op) => op.eval(value, arg, want_captures),
                    None => (false, Vec::new()),
                };
            }
            // The lazy DFA answers most misses; the capturing engine runs only on a hit.
            Kind::Rx(re) => {
                // `is_match` first even when capturing: most values do not match, and it
                // answers that faster than `find` (measured: `find` alone for group-less
                // captures cost 14k more instructions per benign GET through CRS).
                if !re.is_match(value) {
                    return (false, Vec::new());
                }
                if !want_captures {
                    return (true, Vec::new());
                }
                if re.captures_len() == 1 {
                    // No groups: TX.0 is the match, which the DFA finds without the slower
                    // capture engine (920450's `^.*$` runs on every header name).
                    let m = re.find(value).map(|m| m.as_bytes().to_vec());
                    return (true, m.into_iter().collect());
                }
                let caps = re
                    .captures(value)
                    .map(|c| {
                        (0..c.len().min(10))
                            .map(|i| c.get(i).map(|m| m.as_bytes().to_vec()).unwrap_or_default())
                            .collect()
                    })
                    .unwrap_or_default();
                return (true, caps);
            }
            Kind::Fancy(re) => {
                // This engine matches text: invalid UTF-8 is replaced, not skipped.
                let text = String::from_utf8_lossy(value);
                return match re.captures(&text) {
                    Ok(Some(c)) if want_captures => (
                        true,
                        (0..c.len().min(10))
                            .map(|i| {
                                c.get(i)
                                    .map(|m| m.as_str().as_bytes().to_vec())
                                    .unwrap_or_default()
                            })
                            .collect(),
                    ),
                    Ok(Some(_)) => (true, Vec::new()),
                    Ok(None) | Err(_) => (false, Vec::new()),
                };
            }
            Kind::Pm(ac) => ac.is_match(value),
            Kind::Streq => value == arg,
            Kind::Contains => !arg.is_empty() && find(value, arg).is_some(),
            Kind::ContainsWord => contains_word(value, arg),
            Kind::BeginsWith => value.starts_with(arg),
            Kind::EndsWith => value.ends_with(arg),
            // `@within`: the value occurs inside the argument (e.g. an allowed-methods list).
            Kind::Within => !value.is_empty() && find(arg, value).is_some(),
            Kind::Eq | Kind::Ge | Kind::Gt | Kind::Le | Kind::Lt => self
                .comparison()
                .is_some_and(|c| c.holds(value, self.arg_number(arg))),
            Kind::IpMatch(nets) => std::str::from_utf8(value)
                .ok()
                .and_then(|s| s.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| nets.iter().any(|n| n.contains(&ip))),
            Kind::ValidateByteRange(ok) => value.iter().any(|b| !ok[*b as usize]),
            Kind::ValidateUrlEncoding => !valid_url_encoding(value),
            Kind::ValidateUtf8Encoding => std::str::from_utf8(value).is_err(),
            Kind::DetectSqli => {
                !plain_word(value) && libinjectionrs::detect_sqli(value).is_injection()
            }
            Kind::DetectXss => {
                !plain_word(value) && libinjectionrs::detect_xss(value).is_injection()
            }
            Kind::Unconditional => true,
            // The engine answers `@geoLookup` itself; alone, nothing is known.
            Kind::NoMatch | Kind::GeoLookup => false,
        };
        (matched, Vec::new())
    }
}

/// Letters, digits and `_` only (or nothing): a single word or number, which neither of
/// libinjection's detectors can flag (no quote, operator, space, comment or tag to build
/// an injection from; `detectors_never_flag_plain_words` checks the crate agrees). Most
/// argument names and values are such words, and the detectors cost microseconds each.
fn plain_word(v: &[u8]) -> bool {
    v.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || needle.len() > hay.len() {
        return None;
    }
    // Two-way / SIMD search: `@within` scans long CRS lists once per value.
    memchr::memmem::find(hay, needle)
}

fn contains_word(v: &[u8], w: &[u8]) -> bool {
    if w.is_empty() {
        return false;
    }
    let word = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut start = 0;
    while let Some(p) = find(&v[start..], w) {
        let s = start + p;
        let e = s + w.len();
        if (s == 0 || !word(v[s - 1])) && (e == v.len() || !word(v[e])) {
            return true;
        }
        start = s + 1;
    }
    false
}

/// ModSecurity's numeric conversion: leading integer, anything else is 0.
fn num(v: &[u8]) -> i64 {
    // Most of all, one digit: CRS's paranoia levels and most scores and counts.
    if let [d @ b'0'..=b'9'] = v {
        return i64::from(d - b'0');
    }
    // The common case, a short ASCII number (`&ARGS`, scores), without UTF-8 and string work.
    if v.len() <= 18
        && v.first().is_some_and(u8::is_ascii_digit)
        && v.iter().all(u8::is_ascii_digit)
    {
        return v.iter().fold(0, |n, d| n * 10 + i64::from(d - b'0'));
    }
    let s = std::str::from_utf8(v).unwrap_or("").trim();
    let end = s
        .char_indices()
        .find(|(i, c)| !(c.is_ascii_digit() || (*i == 0 && (*c == '-' || *c == '+'))))
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    s[..end].parse().unwrap_or(0)
}

fn valid_url_encoding(v: &[u8]) -> bool {
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'%' {
            if i + 2 >= v.len() || !v[i + 1].is_ascii_hexdigit() || !v[i + 2].is_ascii_hexdigit() {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shortcut in [`plain_word`] must agree with libinjection: every SQL keyword it
    /// knows, alone, prefixed or suffixed by numbers and words, and random words and
    /// numbers.
    #[test]
    fn detectors_never_flag_plain_words() {
        use libinjectionrs::sqli::sqli_data::SQL_KEYWORDS;
        let flagged = |v: &[u8]| {
            assert!(plain_word(v));
            libinjectionrs::detect_sqli(v).is_injection()
                || libinjectionrs::detect_xss(v).is_injection()
        };
        let mut seen = 0;
        for k in SQL_KEYWORDS
            .iter()
            .filter(|k| plain_word(k.word.as_bytes()))
        {
            for p in ["", "1", "0", "123", "0x", "0b", "1e", "1e1", "_", "a", "x1"] {
                let lower = k.word.to_ascii_lowercase();
                for w in [
                    format!("{p}{}", k.word),
                    format!("{}{p}", k.word),
                    format!("{p}{lower}{p}"),
                    format!("1{lower}union"),
                    format!("1{lower}or1"),
                ] {
                    assert!(!flagged(w.as_bytes()), "{w:?}");
                    seen += 1;
                }
            }
        }
        assert!(
            seen > 10_000,
            "the keyword table is smaller than expected: {seen}"
        );
        let alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_";
        let mut next = crate::test_rng(0x1234_5678_9abc_def1u64);
        for i in 0..20_000u64 {
            assert!(!flagged(i.to_string().as_bytes()));
            let len = 1 + (next() % 16) as usize;
            let v: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            assert!(!flagged(&v), "{:?}", String::from_utf8_lossy(&v));
        }
        assert!(!flagged(b""));
    }

    fn op(name: &str, arg: &str) -> CompiledOperator {
        CompiledOperator::compile(
            &Operator {
                name: name.into(),
                argument: arg.into(),
                negated: false,
            },
            Path::new("."),
        )
        .unwrap()
    }

    #[test]
    fn operators() {
        assert!(
            op("rx", "(?i)union\\s+select")
                .test(b"1 UNION  SELECT 2", b"")
                .matched
        );
        assert_eq!(op("rx", "a(b)c").test(b"xabcx", b"").captures[1], b"b");
        assert!(op("pm", "foo Bar").test(b"xxBARxx", b"").matched);
        assert!(op("within", "").test(b"GET", b"GET HEAD POST").matched);
        assert!(!op("within", "").test(b"PUT", b"GET HEAD POST").matched);
        assert!(op("eq", "").test(b"0", b"0").matched);
        assert!(op("ge", "").test(b"5", b"4").matched);
        assert!(op("lt", "").test(b"abc", b"1").matched, "non-numbers are 0");
        assert!(
            op("containsWord", "")
                .test(b"a select b", b"select")
                .matched
        );
        assert!(!op("containsWord", "").test(b"selection", b"select").matched);
        assert!(
            op("ipMatch", "10.0.0.0/8,192.0.2.1")
                .test(b"10.2.3.4", b"")
                .matched
        );
        assert!(!op("ipMatch", "10.0.0.0/8").test(b"11.2.3.4", b"").matched);
        assert!(
            op("validateByteRange", "32-126")
                .test(b"ok\x01", b"")
                .matched
        );
        assert!(!op("validateByteRange", "32-126").test(b"ok", b"").matched);
        assert!(op("validateUrlEncoding", "").test(b"a%zz", b"").matched);
        assert!(!op("validateUrlEncoding", "").test(b"a%20", b"").matched);
        assert!(op("validateUtf8Encoding", "").test(b"\xff", b"").matched);
        assert!(op("detectSQLi", "").test(b"1' OR '1'='1", b"").matched);
        assert!(!op("detectSQLi", "").test(b"hello world", b"").matched);
        assert!(
            op("detectXSS", "")
                .test(b"<script>alert(1)</script>", b"")
                .matched
        );
        assert!(CompiledOperator::compile(
            &Operator {
                name: "bogus".into(),
                argument: String::new(),
                negated: false
            },
            Path::new(".")
        )
        .is_err());
    }
}
