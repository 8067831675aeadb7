//! Request framing checks against smuggling (RFC 9112 §6): the upstream must never see a
//! request whose length two parsers could read differently. Plain functions over raw bytes
//! and header values, so they are unit-tested and fuzzed without a server: the gateway's
//! HTTP/1 pre-filter calls [`check_head`] on each raw header block before Pingora parses
//! it, and its framing stage calls [`check`] on every request.

/// Why a request's framing was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FramingError {
    /// Both Content-Length and Transfer-Encoding are present.
    BothLengthAndChunked,
    /// More than one Content-Length, as headers or as a comma-separated list.
    DuplicateContentLength,
    /// A Content-Length that is not a plain decimal number of at most 18 digits.
    InvalidContentLength,
    /// Transfer-Encoding other than one plain `chunked`, or any on HTTP/1.0.
    UnsupportedTransferEncoding,
    /// A header line continued on the next (obs-fold), which parsers disagree on.
    ObsoleteLineFolding,
}

impl FramingError {
    /// A short description, given as the reason when the request is refused.
    pub fn reason(self) -> &'static str {
        match self {
            FramingError::BothLengthAndChunked => "both Content-Length and Transfer-Encoding",
            FramingError::DuplicateContentLength => "duplicate Content-Length",
            FramingError::InvalidContentLength => "invalid Content-Length",
            FramingError::UnsupportedTransferEncoding => "unsupported Transfer-Encoding",
            FramingError::ObsoleteLineFolding => "obsolete header line folding",
        }
    }
}

/// The body length the request declares, once framing is known to be unambiguous.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BodyLength {
    /// No body: neither Content-Length nor Transfer-Encoding.
    #[default]
    None,
    /// `Content-Length`: this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`: the length is known only at the last chunk.
    Chunked,
}

/// The body length the headers declare, or why they could be read two ways.
/// `content_length` and `transfer_encoding` are every value of those headers, in order.
pub fn check(
    content_length: &[&[u8]],
    transfer_encoding: &[&[u8]],
    http10: bool,
) -> Result<BodyLength, FramingError> {
    if !transfer_encoding.is_empty() {
        if !content_length.is_empty() {
            return Err(FramingError::BothLengthAndChunked);
        }
        // Only a single, plain "chunked" is accepted: any list or other coding is a
        // classic desync vector (e.g. "chunked, identity", "xchunked", "chunked\x0b").
        if http10 || transfer_encoding.len() != 1 {
            return Err(FramingError::UnsupportedTransferEncoding);
        }
        let v = transfer_encoding[0];
        if !v.eq_ignore_ascii_case(b"chunked") {
            return Err(FramingError::UnsupportedTransferEncoding);
        }
        return Ok(BodyLength::Chunked);
    }
    match content_length {
        [] => Ok(BodyLength::None),
        [one] => parse_length(one).map(BodyLength::Length),
        _ => Err(FramingError::DuplicateContentLength),
    }
}

fn parse_length(v: &[u8]) -> Result<u64, FramingError> {
    if v.is_empty() || v.len() > 18 || !v.iter().all(u8::is_ascii_digit) {
        // Covers "1,1", "+5", " 5" leftovers, hex and overflow.
        return Err(if v.contains(&b',') {
            FramingError::DuplicateContentLength
        } else {
            FramingError::InvalidContentLength
        });
    }
    Ok(v.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0')))
}

/// Content-Length values, then Transfer-Encoding values.
pub type FramingHeaders<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

/// Every Content-Length and Transfer-Encoding value in a raw HTTP/1 header block, in order.
/// Also refuses obsolete line folding, which parsers disagree on.
pub fn raw_framing_headers(raw: &[u8]) -> Result<FramingHeaders<'_>, FramingError> {
    let mut cl = Vec::new();
    let mut te = Vec::new();
    for line in raw.split(|b| *b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(FramingError::ObsoleteLineFolding);
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") {
            cl.push(value);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            te.push(value);
        }
    }
    Ok((cl, te))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |e| e + 1);
    &v[start..end]
}

/// A valid incoming request id is kept so a trace spans systems; anything else is replaced.
pub fn valid_request_id(v: &[u8]) -> bool {
    (1..=128).contains(&v.len())
        && v.iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'))
}

/// A random UUIDv4-formatted id. Not a secret, so a fast PRNG is enough.
pub fn new_request_id() -> String {
    let v = fastrand::u128(..);
    let v = (v & !(0xF000 << 64) | (0x4000 << 64)) & !(0xC000 << 48) | (0x8000 << 48);
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Refuse, with Rampart's own response, what Pingora would refuse with its own page or,
/// worse, repair: malformed request lines and headers, and ambiguous framing.
pub fn check_head(buf: &[u8]) -> Result<(), (u16, &'static str)> {
    if buf.starts_with(b"PRI * HTTP/2.0\r\n") {
        return Ok(()); // h2c prior knowledge; HTTP/2 frames its own messages.
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) => return Err((400, "malformed request")),
        Err(httparse::Error::TooManyHeaders) => return Err((431, "too many headers")),
        Err(_) => return Err((400, "malformed request")),
    }
    check_target(buf).map_err(|r| (400, r))?;
    let http10 = req.version == Some(0);
    // What Pingora would refuse with its own page (no event, no log line), refused here
    // with Rampart's: the Host must be one, without userinfo, and agree with an
    // absolute-form target; HTTP/1.1 must send it (RFC 9112 §3.2).
    let mut hosts = req
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"));
    let host = hosts.next().map(|h| h.value);
    if hosts.next().is_some() {
        return Err((400, "multiple Host headers"));
    }
    if host.is_none() && !http10 {
        return Err((400, "missing Host header"));
    }
    if host.is_some_and(|h| h.contains(&b'@')) {
        return Err((400, "userinfo in Host header"));
    }
    if let Some(authority) = absolute_form_authority(req.path.unwrap_or("")) {
        if authority.is_empty() || authority.contains('@') {
            return Err((400, "invalid authority in request target"));
        }
        if host.is_some_and(|h| h != authority.as_bytes()) {
            return Err((400, "Host differs from the request target"));
        }
    }
    let (cl, te) = raw_framing_headers(buf).map_err(|e| (400, e.reason()))?;
    check(&cl, &te, http10).map_err(|e| (400, e.reason()))?;
    Ok(())
}

/// Whether the header block's end (`\r\n\r\n`) is in `buf`, looking only at what
/// arrived from `from` on (and the three bytes before it).
pub fn head_complete(buf: &[u8], from: usize) -> bool {
    let start = from.saturating_sub(3);
    buf[start..].windows(4).any(|w| w == b"\r\n\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn framing() {
        assert_eq!(check(&[], &[], false), Ok(BodyLength::None));
        assert_eq!(check(&[b"12"], &[], false), Ok(BodyLength::Length(12)));
        assert_eq!(check(&[], &[b"Chunked"], false), Ok(BodyLength::Chunked));
        assert_eq!(
            check(&[b"5"], &[b"chunked"], false),
            Err(FramingError::BothLengthAndChunked)
        );
        assert_eq!(
            check(&[b"5", b"5"], &[], false),
            Err(FramingError::DuplicateContentLength)
        );
        assert_eq!(
            check(&[b"5, 5"], &[], false),
            Err(FramingError::DuplicateContentLength)
        );
        assert_eq!(
            check(&[b"-1"], &[], false),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            check(&[b"0x10"], &[], false),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            check(&[b"99999999999999999999"], &[], false),
            Err(FramingError::InvalidContentLength)
        );
        assert_eq!(
            check(&[], &[b"gzip, chunked"], false),
            Err(FramingError::UnsupportedTransferEncoding)
        );
        assert_eq!(
            check(&[], &[b"chunked", b"chunked"], false),
            Err(FramingError::UnsupportedTransferEncoding)
        );
        assert_eq!(
            check(&[], &[b"chunked"], true),
            Err(FramingError::UnsupportedTransferEncoding)
        );
    }

    #[test]
    fn raw_headers() {
        let raw = b"POST / HTTP/1.1\r\nHost: h\r\ncontent-length:  4 \r\nTransfer-Encoding: chunked\r\n\r\n";
        let (cl, te) = raw_framing_headers(raw).unwrap();
        assert_eq!(cl, vec![&b"4"[..]]);
        assert_eq!(te, vec![&b"chunked"[..]]);
        let folded = b"GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n";
        assert_eq!(
            raw_framing_headers(folded),
            Err(FramingError::ObsoleteLineFolding)
        );
    }

    #[test]
    fn request_ids() {
        assert!(valid_request_id(b"abc-123_x.y:z"));
        assert!(!valid_request_id(b""));
        assert!(!valid_request_id(b"a b"));
        assert!(!valid_request_id(&[b'a'; 129]));
        let id = new_request_id();
        assert_eq!(id.len(), 36);
        assert!(valid_request_id(id.as_bytes()));
        assert_eq!(&id[14..15], "4");
        assert_ne!(new_request_id(), id);
    }
}

/// The request target must be origin-form (`/path`), absolute-form (`http://...`) or, for
/// OPTIONS, `*`; a fragment is never part of it (RFC 9112 §3.2). A gateway for APIs does
/// not tunnel, so CONNECT's authority-form is refused too.
pub fn check_target(raw_head: &[u8]) -> Result<(), &'static str> {
    let line = raw_head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let mut parts = line.split(|b| *b == b' ');
    let method = parts.next().unwrap_or(&[]);
    let target = parts.next().unwrap_or(&[]);
    if target.contains(&b'#') {
        return Err("fragment in request target");
    }
    let lower: Vec<u8> = target.iter().take(8).map(u8::to_ascii_lowercase).collect();
    let form_ok = target.starts_with(b"/")
        || lower.starts_with(b"http://")
        || lower.starts_with(b"https://")
        || (target == b"*" && method == b"OPTIONS");
    if !form_ok {
        return Err("unsupported request target form");
    }
    // Pingora turns the target into an `http::Uri` and answers 400 itself when that fails
    // (a raw `<` or `>`, a control byte...), before any of Rampart's phases: no access-log line,
    // no event. Refusing the same targets here makes the refusal Rampart's, recorded.
    if target != b"*" && http::Uri::try_from(target).is_err() {
        return Err("request target is not a valid URI");
    }
    Ok(())
}

/// The authority of an absolute-form target (`http://host:port/path`), if it is one.
pub fn absolute_form_authority(target: &str) -> Option<&str> {
    let lower = target.get(..8).unwrap_or(target).to_ascii_lowercase();
    let rest = if lower.starts_with("http://") {
        &target[7..]
    } else if lower.starts_with("https://") {
        &target[8..]
    } else {
        return None;
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    Some(&rest[..end])
}

/// Host must name a host: reg-name or IP-literal characters and an optional port. Empty,
/// percent-encoded or control characters are refused (they cannot name a route).
pub fn check_host(host: &[u8]) -> Result<(), &'static str> {
    if host.is_empty() {
        return Err("empty Host header");
    }
    let ok = host
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || b"-._~:[]".contains(b));
    if ok {
        Ok(())
    } else {
        Err("invalid Host header")
    }
}

#[cfg(test)]
mod target_tests {
    use super::*;

    #[test]
    fn request_targets_and_hosts() {
        assert!(check_target(b"GET /a?b=c HTTP/1.1\r\n").is_ok());
        assert!(check_target(b"GET http://x/a HTTP/1.1\r\n").is_ok());
        assert!(check_target(b"OPTIONS * HTTP/1.1\r\n").is_ok());
        assert!(check_target(b"GET * HTTP/1.1\r\n").is_err());
        assert!(check_target(b"CONNECT example.org:443 HTTP/1.1\r\n").is_err());
        assert!(check_target(b"GET /a#frag HTTP/1.1\r\n").is_err());
        // What Pingora's URI parser refuses is refused (and recorded) here first.
        for bad in [
            &b"GET /s?q=<img/src=x> HTTP/1.1\r\n"[..],
            b"GET /a>b HTTP/1.1\r\n",
            b"GET /a\x7f HTTP/1.1\r\n",
        ] {
            assert_eq!(
                check_target(bad),
                Err("request target is not a valid URI"),
                "{}",
                String::from_utf8_lossy(bad)
            );
            assert!(http::Uri::try_from(bad.split(|b| *b == b' ').nth(1).unwrap()).is_err());
        }
        assert!(check_target(b"GET /a%3Cb%3E?x=%22 HTTP/1.1\r\n").is_ok());
        assert!(check_host(b"api.example.test:8443").is_ok());
        assert!(check_host(b"[::1]:80").is_ok());
        assert!(check_host(b"").is_err());
        assert!(check_host(b"localhost%1F").is_err());
        assert!(check_host(b"a b").is_err());
        assert_eq!(
            absolute_form_authority("http://a.test:80/x?y"),
            Some("a.test:80")
        );
        assert_eq!(absolute_form_authority("HTTPS://b?q"), Some("b"));
        assert_eq!(absolute_form_authority("/x"), None);
    }
}
