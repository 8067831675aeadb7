//! Where rule variables read from: the request's collections and scalars, and each
//! variable's [`Source`] and [`Plan`], resolved at load so evaluation indexes arrays instead
//! of hashing names.

use crate::parser::Variable;

pub(super) const COLLECTIONS: [&str; 11] = [
    "MULTIPART_PART_HEADERS",
    "ARGS_GET",
    "ARGS_POST",
    "REQUEST_HEADERS",
    "REQUEST_COOKIES",
    "RESPONSE_HEADERS",
    "FILES",
    "FILES_NAMES",
    "FILES_SIZES",
    "XML",
    "GEO",
];

/// A collection's (key, value) pairs in order. Keys are bytes, as sent: an argument name
/// need not be UTF-8, and the rules on `ARGS_NAMES` must see what the backend receives.
pub(super) type Items = crate::body::Pairs;

/// Indexes of the argument collections in [`COLLECTIONS`].
pub(super) const ARGS_GET: usize = 1;
pub(super) const ARGS_POST: usize = 2;
/// Index of `GEO`, which `@geoLookup` fills while a phase runs.
pub(super) const GEO: usize = 10;

/// The request's collections, one slot per name in [`COLLECTIONS`]: rules find theirs by
/// an index resolved at load time rather than by hashing the name on every evaluation.
#[derive(Default)]
pub(super) struct Collections(pub(super) [Items; COLLECTIONS.len()]);

impl Collections {
    fn index_of(name: &str) -> Option<usize> {
        COLLECTIONS.iter().position(|c| *c == name)
    }
    pub(super) fn get(&self, name: &str) -> Option<&Items> {
        Self::index_of(name).map(|i| &self.0[i])
    }
    pub(super) fn get_mut(&mut self, name: &str) -> Option<&mut Items> {
        Self::index_of(name).map(|i| &mut self.0[i])
    }
    pub(super) fn insert(&mut self, name: &str, items: Items) {
        if let Some(slot) = self.get_mut(name) {
            *slot = items;
        }
    }
}

impl std::ops::Index<&str> for Collections {
    type Output = Items;
    fn index(&self, name: &str) -> &Items {
        self.get(name).expect("known collection")
    }
}

/// Where a rule variable's values come from, resolved from its name at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Coll {
    Fixed(usize),
    Args,
    Tx,
    MatchedVars,
}

/// The single-valued variables the engine sets. Each has a fixed index, so a rule reading
/// one (`REQUEST_FILENAME`, `QUERY_STRING`...) indexes an array instead of hashing the name.
macro_rules! scalars {
    ($($name:ident),* $(,)?) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy)]
        pub(super) enum Sc { $($name),* }
        pub(super) const SCALAR_NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}
scalars!(
    FILES_COMBINED_SIZE,
    FULL_REQUEST_LENGTH,
    INBOUND_DATA_ERROR,
    MULTIPART_BOUNDARY_QUOTED,
    MULTIPART_BOUNDARY_WHITESPACE,
    MULTIPART_CRLF_LF_LINES,
    MULTIPART_DATA_AFTER,
    MULTIPART_DATA_BEFORE,
    MULTIPART_FILE_LIMIT_EXCEEDED,
    MULTIPART_HEADER_FOLDING,
    MULTIPART_INVALID_HEADER_FOLDING,
    MULTIPART_INVALID_PART,
    MULTIPART_INVALID_QUOTING,
    MULTIPART_LF_LINE,
    MULTIPART_MISSING_SEMICOLON,
    MULTIPART_STRICT_ERROR,
    MULTIPART_UNMATCHED_BOUNDARY,
    QUERY_STRING,
    REMOTE_ADDR,
    REQBODY_ERROR,
    REQBODY_ERROR_MSG,
    REQBODY_PROCESSOR,
    REQBODY_PROCESSOR_ERROR,
    REQBODY_PROCESSOR_ERROR_MSG,
    REQUEST_BASENAME,
    REQUEST_BODY,
    REQUEST_BODY_LENGTH,
    REQUEST_FILENAME,
    REQUEST_LINE,
    REQUEST_METHOD,
    REQUEST_PROTOCOL,
    REQUEST_URI,
    REQUEST_URI_RAW,
    RESPONSE_BODY,
    RESPONSE_CONTENT_LENGTH,
    RESPONSE_CONTENT_TYPE,
    RESPONSE_PROTOCOL,
    RESPONSE_STATUS,
    STATUS,
);

pub(super) struct Scalars(pub(super) [Option<Vec<u8>>; SCALAR_NAMES.len()]);

impl Default for Scalars {
    fn default() -> Self {
        // More than 32 slots: arrays that long have no derived Default.
        Scalars(std::array::from_fn(|_| None))
    }
}

impl Scalars {
    pub(super) fn insert(&mut self, name: Sc, value: Vec<u8>) {
        self.0[name as usize] = Some(value);
    }

    pub(super) fn get(&self, i: u8) -> Option<&Vec<u8>> {
        self.0.get(usize::from(i)).and_then(Option::as_ref)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    /// A collection; `true` for its `_NAMES` (the keys as values).
    Coll(Coll, bool),
    MatchedVar,
    MatchedVarName,
    ArgsCombinedSize,
    /// A single-valued variable: its index in [`SCALAR_NAMES`] (`u8::MAX`: one this engine
    /// never sets).
    Scalar(u8),
    /// `TX:name` with the name's slot.
    TxSlot(u32),
}

/// What the rule loop needs of a variable, resolved at load and kept in one small array per
/// rule.
#[derive(Debug, Clone, Copy)]
pub(super) struct Plan {
    pub(super) src: Source,
    pub(super) exclude: bool,
    pub(super) count: bool,
    /// Has a selector (`:key`, `:/regex/`) to apply.
    pub(super) keyed: bool,
}

impl Plan {
    pub(super) fn of(v: &Variable) -> Plan {
        Plan::with(v, Source::of(&v.name))
    }

    pub(super) fn with(v: &Variable, src: Source) -> Plan {
        Plan {
            src,
            exclude: v.exclude,
            count: v.count,
            keyed: v.selector.is_some(),
        }
    }
}

impl Source {
    /// The variable's name as reported, from the binary's own strings: no read of the
    /// rule's data. None for a `_NAMES` collection, reported under its own name as written
    /// in the rule (`ARGS_NAMES:id`, as ModSecurity v3 does).
    pub(super) fn static_name(self) -> Option<&'static str> {
        Some(match self {
            Source::Coll(_, true) => return None,
            Source::Coll(Coll::Fixed(i), _) => COLLECTIONS[i],
            Source::Coll(Coll::Args, _) => "ARGS",
            Source::Coll(Coll::Tx, _) | Source::TxSlot(_) => "TX",
            Source::Coll(Coll::MatchedVars, _) => "MATCHED_VARS",
            Source::MatchedVar => "MATCHED_VAR",
            Source::MatchedVarName => "MATCHED_VAR_NAME",
            Source::ArgsCombinedSize => "ARGS_COMBINED_SIZE",
            Source::Scalar(i) => return SCALAR_NAMES.get(usize::from(i)).copied(),
        })
    }

    pub(super) fn of(name: &str) -> Source {
        let coll = |n: &str| match n {
            "ARGS" => Some(Coll::Args),
            "TX" => Some(Coll::Tx),
            "MATCHED_VARS" => Some(Coll::MatchedVars),
            n => Collections::index_of(n).map(Coll::Fixed),
        };
        if let Some(c) = coll(name) {
            return Source::Coll(c, false);
        }
        if let Some(c) = name.strip_suffix("_NAMES").and_then(coll) {
            return Source::Coll(c, true);
        }
        match name {
            "MATCHED_VAR" => Source::MatchedVar,
            "MATCHED_VAR_NAME" => Source::MatchedVarName,
            "ARGS_COMBINED_SIZE" => Source::ArgsCombinedSize,
            _ => Source::Scalar(
                SCALAR_NAMES
                    .iter()
                    .position(|n| *n == name)
                    .map_or(u8::MAX, |i| i as u8),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argument_collection_indexes_name_them() {
        assert_eq!(COLLECTIONS[ARGS_GET], "ARGS_GET");
        assert_eq!(COLLECTIONS[ARGS_POST], "ARGS_POST");
        assert_eq!(COLLECTIONS[GEO], "GEO");
    }
}
