//! Request hygiene: what every stage and the upstream agree a request says.

use serde::Deserialize;

/// Request normalisation: what every stage and the upstream agree a request says.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(default)]
pub struct RequestHygiene {
    /// `%2F` in a path: `reject` (default) or `keep` (routed as part of one segment; only
    /// for backends that do not decode it into a separator).
    pub encoded_slash: KeepOrReject,
    /// `\` or `%5C` in a path: `reject` (default) or `keep`.
    pub backslash: KeepOrReject,
    /// `;` path parameters: `reject` (default) or `keep`.
    pub path_parameters: KeepOrReject,
    /// Merge runs of `/` (default true, as nginx does).
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

/// What to do with a path construct backends read differently.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeepOrReject {
    /// Refuse the request (400).
    #[default]
    Reject,
    /// Route and forward the path as sent.
    Keep,
}

/// What to do with request header names containing `_`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum UnderscoreHeaders {
    /// Remove such headers before the request goes upstream.
    #[default]
    Drop,
    /// Refuse the request (400).
    Reject,
    /// Forward them unchanged.
    Keep,
}
