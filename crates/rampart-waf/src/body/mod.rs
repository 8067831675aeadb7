//! Request body processors, one per content type (XML lives in `xml.rs`): what the rules
//! read as `ARGS_POST`, `FILES` and friends.

pub(crate) mod json;
pub(crate) mod multipart;
pub(crate) mod urlencoded;

/// Name/value pairs as a body processor yields them: bytes both, as sent (a name need
/// not be UTF-8).
pub(crate) type Pairs = Vec<(Vec<u8>, Vec<u8>)>;
