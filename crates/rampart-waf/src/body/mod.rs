//! Request body processors, one per content type (XML lives in `xml.rs`): what the rules
//! read as `ARGS_POST`, `FILES` and friends.

pub(crate) mod json;
pub(crate) mod multipart;
pub(crate) mod urlencoded;
