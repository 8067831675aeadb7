//! The canonical request path: the one form routing, authorization, the WAF and the upstream
//! all see. A gateway that routes on the raw path while the backend decodes it can be walked
//! around: `/flask/%61dmin` is `/flask/admin` to Flask but not to a prefix match.
//!
//! Percent-encoded unreserved characters (RFC 3986 §2.3: `A-Z a-z 0-9 - . _ ~`) are decoded,
//! every other escape is kept with upper-case hex, and what backends disagree on is refused
//! by default: an encoded `/` (`%2F`: one segment to the router, two to a decoding backend),
//! a backslash (a separator on Windows and for some frameworks), `;` path parameters
//! (Tomcat/Spring drop `;...` from a segment), NUL and control characters, malformed escapes
//! and escapes that do not decode to UTF-8, and dot segments (`.`/`..`, also encoded).
//! Runs of `/` are merged unless told otherwise (nginx's `merge_slashes`), so `//admin` is
//! not a way past a `/admin` route either.

use std::borrow::Cow;

/// What to do with the constructs backends read differently. `false` = refuse (the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathPolicy {
    /// Keep `%2F` as sent (routed as part of one segment). Only for backends that do not
    /// decode it into a separator.
    pub keep_encoded_slash: bool,
    /// Keep `\` and `%5C`.
    pub keep_backslash: bool,
    /// Keep `;` (matrix/path parameters).
    pub keep_semicolon: bool,
    /// Merge runs of `/` into one.
    pub merge_slashes: bool,
}

impl Default for PathPolicy {
    fn default() -> Self {
        PathPolicy {
            keep_encoded_slash: false,
            keep_backslash: false,
            keep_semicolon: false,
            merge_slashes: true,
        }
    }
}

/// Why a path was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// A `%` not followed by two hex digits.
    InvalidEscape,
    /// `%2F`, refused by the policy.
    EncodedSlash,
    /// `\` or `%5C`, refused by the policy.
    Backslash,
    /// NUL or another control character (raw or encoded), or a raw space.
    ControlCharacter,
    /// Escapes that do not decode to UTF-8.
    NotUtf8,
    /// A raw `;`, refused by the policy.
    PathParameter,
    /// A `.` or `..` segment, also encoded.
    DotSegment,
    /// The path does not start with `/`.
    NotAbsolute,
}

impl PathError {
    /// A short description, for logs, events and config errors.
    pub fn reason(self) -> &'static str {
        match self {
            PathError::InvalidEscape => "invalid percent-encoding in path",
            PathError::EncodedSlash => "encoded slash in path",
            PathError::Backslash => "backslash in path",
            PathError::ControlCharacter => "NUL or control character in path",
            PathError::NotUtf8 => "path does not decode to UTF-8",
            PathError::PathParameter => "path parameter (;) in path",
            PathError::DotSegment => "dot segment in path",
            PathError::NotAbsolute => "path does not start with /",
        }
    }
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

const HEX: &[u8; 16] = b"0123456789ABCDEF";

/// The canonical form of `raw` (a path without its query), borrowed when it already is.
pub fn canonical_path<'a>(raw: &'a str, policy: &PathPolicy) -> Result<Cow<'a, str>, PathError> {
    if raw == "*" {
        return Ok(Cow::Borrowed(raw)); // OPTIONS * (asterisk-form)
    }
    let bytes = raw.as_bytes();
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    let mut out: Vec<u8> = Vec::with_capacity(bytes.len());
    // Every byte the path stands for once decoded, to check it is UTF-8 as a whole.
    let mut decoded_high = false;
    let mut decoded: Vec<u8> = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b'%' => {
                let (Some(h), Some(l)) = (
                    bytes.get(i + 1).copied().and_then(hex),
                    bytes.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(PathError::InvalidEscape);
                };
                let v = h << 4 | l;
                i += 3;
                match v {
                    _ if is_unreserved(v) => out.push(v),
                    0..=0x1f | 0x7f => return Err(PathError::ControlCharacter),
                    b'/' if !policy.keep_encoded_slash => return Err(PathError::EncodedSlash),
                    b'\\' if !policy.keep_backslash => return Err(PathError::Backslash),
                    _ => out.extend_from_slice(&[
                        b'%',
                        HEX[(v >> 4) as usize],
                        HEX[(v & 15) as usize],
                    ]),
                }
                decoded_high |= v >= 0x80;
                decoded.push(v);
                continue;
            }
            0..=0x20 | 0x7f => return Err(PathError::ControlCharacter),
            b'\\' if !policy.keep_backslash => return Err(PathError::Backslash),
            b';' if !policy.keep_semicolon => return Err(PathError::PathParameter),
            b'/' if policy.merge_slashes && out.last() == Some(&b'/') => {}
            0x80.. => {
                // Raw non-ASCII (an HTTP/2 client may send it): carried percent-encoded.
                decoded_high = true;
                out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
            _ => out.push(b),
        }
        decoded.push(b);
        i += 1;
    }
    if decoded_high && std::str::from_utf8(&decoded).is_err() {
        return Err(PathError::NotUtf8);
    }
    if out
        .split(|b| *b == b'/')
        .any(|seg| seg == b"." || seg == b"..")
    {
        return Err(PathError::DotSegment);
    }
    if out == bytes {
        return Ok(Cow::Borrowed(raw));
    }
    // Only ASCII was pushed: every byte ≥ 0x80 went out percent-encoded.
    Ok(Cow::Owned(String::from_utf8(out).expect("ASCII")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(p: &str) -> Result<String, PathError> {
        canonical_path(p, &PathPolicy::default()).map(|c| c.into_owned())
    }

    #[test]
    fn unreserved_escapes_are_decoded_others_kept_upper_case() {
        assert_eq!(canon("/flask/%61dmin").unwrap(), "/flask/admin");
        assert_eq!(canon("/flask/adm%69n").unwrap(), "/flask/admin");
        assert_eq!(canon("/a%7E%2d%5f%2E").unwrap(), "/a~-_.");
        assert_eq!(canon("/a%20b%3f%25%3b").unwrap(), "/a%20b%3F%25%3B");
        assert_eq!(canon("/caf%C3%A9").unwrap(), "/caf%C3%A9");
        // Double encoding stays encoded once: the backend decodes it to "%61", not "a".
        assert_eq!(canon("/%2561dmin").unwrap(), "/%2561dmin");
        assert!(matches!(
            canonical_path("/plain/path", &PathPolicy::default()),
            Ok(Cow::Borrowed(_))
        ));
    }

    #[test]
    fn ambiguous_constructs_are_refused_by_default() {
        assert_eq!(canon("/flask/admin%2fusers"), Err(PathError::EncodedSlash));
        assert_eq!(canon("/a%5Cb"), Err(PathError::Backslash));
        assert_eq!(canon("/a\\b"), Err(PathError::Backslash));
        assert_eq!(canon("/a%00b"), Err(PathError::ControlCharacter));
        assert_eq!(canon("/a%0d%0a"), Err(PathError::ControlCharacter));
        assert_eq!(canon("/a%zz"), Err(PathError::InvalidEscape));
        assert_eq!(canon("/a%4"), Err(PathError::InvalidEscape));
        assert_eq!(canon("/a%ff%fe"), Err(PathError::NotUtf8));
        assert_eq!(canon("/%C0%AE%C0%AE/x"), Err(PathError::NotUtf8));
        assert_eq!(canon("/admin;jsessionid=1"), Err(PathError::PathParameter));
        assert_eq!(canon("/a/%2e%2E/admin"), Err(PathError::DotSegment));
        assert_eq!(canon("/a/./b"), Err(PathError::DotSegment));
        assert_eq!(canon("/a/.%2e"), Err(PathError::DotSegment));
        assert_eq!(canon("admin"), Err(PathError::NotAbsolute));
        assert_eq!(canon("/v1.2/x..y").unwrap(), "/v1.2/x..y");
    }

    #[test]
    fn slashes_merge_and_policies_keep_what_they_allow() {
        assert_eq!(canon("//flask///admin/").unwrap(), "/flask/admin/");
        let keep = PathPolicy {
            keep_encoded_slash: true,
            keep_backslash: true,
            keep_semicolon: true,
            merge_slashes: false,
        };
        let c = |p| canonical_path(p, &keep).map(|c| c.into_owned());
        assert_eq!(c("/a%2fb").unwrap(), "/a%2Fb");
        assert_eq!(c("/a%5cb").unwrap(), "/a%5Cb");
        assert_eq!(c("/a;b=1").unwrap(), "/a;b=1");
        assert_eq!(c("//a").unwrap(), "//a");
        // Never negotiable.
        assert_eq!(c("/a%00"), Err(PathError::ControlCharacter));
        assert_eq!(c("/a/../b"), Err(PathError::DotSegment));
    }
}
