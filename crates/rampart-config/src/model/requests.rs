//! Request hygiene: what every stage and the upstream agree a request says.

use serde::Deserialize;

/// Request normalisation: what every stage and the upstream agree a request says.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct RequestHygiene {
    /// `%2F` in a path: `reject` (default) or `keep` (routed as part of one segment; only
    /// for backends that do not decode it into a separator).
    pub encoded_slash: KeepOrReject,
    /// `\` or `%5C` in a path.
    pub backslash: KeepOrReject,
    /// `;` path parameters.
    pub path_parameters: KeepOrReject,
    /// Merge runs of `/` (as nginx does by default).
    pub merge_slashes: bool,
    /// Header names with `_`: `drop` (default, as nginx does), `reject` (400) or `keep`.
    /// WSGI/CGI backends fold `_` and `-` alike, so `X_Consumer_Id` would pass as
    /// `X-Consumer-Id`.
    pub underscore_headers: UnderscoreHeaders,
    /// Names with `_` forwarded as sent despite `underscore_headers` (any case).
    pub allow_underscore_headers: Vec<String>,
}

impl Default for RequestHygiene {
    fn default() -> Self {
        RequestHygiene {
            encoded_slash: KeepOrReject::Reject,
            backslash: KeepOrReject::Reject,
            path_parameters: KeepOrReject::Reject,
            merge_slashes: true,
            underscore_headers: UnderscoreHeaders::Drop,
            allow_underscore_headers: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeepOrReject {
    #[default]
    Reject,
    Keep,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoreHeaders {
    #[default]
    Drop,
    Reject,
    Keep,
}
