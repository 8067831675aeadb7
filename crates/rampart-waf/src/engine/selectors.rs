//! Key selectors (`ARGS:/^id_/`, `!VAR:key`): how a variable's selector and its exclusions
//! test collection keys, with CRS's `^prefix` regexes reduced to a prefix compare.

use super::transaction::Transaction;

/// Keys are bytes (an argument name need not be UTF-8), so a selector is read as
/// ModSecurity reads it: PCRE without UTF, case-insensitive, so `\xfd` is the byte 0xFD and
/// `.` any byte. Unicode mode only for a pattern byte mode cannot express.
pub(super) fn selector_regex(p: &str) -> Result<regex::bytes::Regex, crate::Error> {
    let bytes = crate::pcre::byte_escapes(p);
    let build = |unicode| {
        regex::bytes::RegexBuilder::new(&bytes)
            .case_insensitive(true)
            .unicode(unicode)
            .build()
    };
    build(false)
        .or_else(|_| build(true))
        .map_err(|source| crate::Error::Selector {
            pattern: p.to_string(),
            source,
        })
}

/// A compiled key selector. CRS's TX selectors are mostly `^literal_prefix` (e.g.
/// `/^header_name_920450_/`), tested against every TX variable: a prefix compare instead
/// of a regex search there is the difference that matters.
pub(super) enum KeyMatcher<'a> {
    Prefix(&'a str),
    Re(&'a regex::bytes::Regex),
    Owned(Option<regex::bytes::Regex>),
}

impl KeyMatcher<'_> {
    #[inline]
    pub(super) fn is_match(&self, key: &[u8]) -> bool {
        match self {
            // Selectors are case-insensitive.
            KeyMatcher::Prefix(p) => {
                key.len() >= p.len() && key[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            KeyMatcher::Re(re) => re.is_match(key),
            KeyMatcher::Owned(re) => re.as_ref().is_some_and(|re| re.is_match(key)),
        }
    }
}

/// `^` followed by plain name characters only: the regex is a prefix test.
pub(super) fn literal_prefix(pattern: &str) -> Option<&str> {
    let rest = pattern.strip_prefix('^')?;
    (!rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(rest)
}

pub(super) fn same_collection(a: &str, b: &str) -> bool {
    a == b
        || (a == "ARGS" && (b == "ARGS_GET" || b == "ARGS_POST"))
        || (b == "ARGS" && (a == "ARGS_GET" || a == "ARGS_POST"))
}

impl Transaction<'_> {
    pub(super) fn selector_matches(&self, pattern: &str, key: &[u8]) -> bool {
        self.key_matcher(pattern).is_match(key)
    }

    /// How a `/regex/` selector tests keys, found once per variable rather than per key.
    pub(super) fn key_matcher<'s>(&'s self, pattern: &'s str) -> KeyMatcher<'s> {
        if let Some(prefix) = literal_prefix(pattern) {
            return KeyMatcher::Prefix(prefix);
        }
        match self.rs.selectors.get(pattern) {
            Some(re) => KeyMatcher::Re(re),
            // Targets added at run time (ctl) are rare: compile on use.
            None => KeyMatcher::Owned(selector_regex(pattern).ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefixes_match_like_their_regex() {
        assert_eq!(
            literal_prefix("^header_name_920450_"),
            Some("header_name_920450_")
        );
        assert_eq!(literal_prefix("^a.b"), None);
        assert_eq!(literal_prefix("x_"), None);
        assert_eq!(literal_prefix("^"), None);
        let m = KeyMatcher::Prefix("header_name_");
        let re = selector_regex("^header_name_").unwrap();
        for key in [
            "header_name_host",
            "HEADER_NAME_x",
            "header_nam",
            "xheader_name_a",
            "",
        ] {
            assert_eq!(
                m.is_match(key.as_bytes()),
                re.is_match(key.as_bytes()),
                "{key}"
            );
        }
    }
}
