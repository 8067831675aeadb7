//! Request header hygiene: what two HTTP parsers could read differently is made single-
//! meaning (or refused) before any stage decides on it. Plain functions over names and
//! values, unit-tested here and attacked through real sockets in `tests/hardening.rs`.

/// A header name as WSGI/CGI backends see it (`HTTP_X_CONSUMER_ID`): `_` and `-` are one
/// character to them, and case does not matter.
pub fn folded_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes().zip(b.bytes()).all(|(x, y)| {
            let f = |c: u8| {
                if c == b'_' {
                    b'-'
                } else {
                    c.to_ascii_lowercase()
                }
            };
            f(x) == f(y)
        })
}

/// Whether a header with this name is removed before the upstream (nginx drops them too:
/// `X_Consumer_Id` would reach a WSGI app as `X-Consumer-Id`), unless allow-listed.
pub fn underscore_dropped(name: &str, allow: &[String]) -> bool {
    name.contains('_') && !allow.iter().any(|a| a.eq_ignore_ascii_case(name))
}

/// `Content-Type` parameters must be unambiguous: one `boundary`, one `charset` (Werkzeug
/// takes the last duplicate, a WAF may take the first), and a multipart type needs its
/// boundary.
pub fn check_content_type(value: &[u8]) -> Result<(), &'static str> {
    let Ok(v) = std::str::from_utf8(value) else {
        return Err("Content-Type is not text");
    };
    let mut parts = v.split(';');
    let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let (mut boundary, mut charset) = (0, 0);
    for p in parts {
        let name = p.split('=').next().unwrap_or("").trim();
        if name.eq_ignore_ascii_case("boundary") {
            boundary += 1;
        } else if name.eq_ignore_ascii_case("charset") {
            charset += 1;
        }
    }
    if boundary > 1 {
        return Err("duplicate boundary in Content-Type");
    }
    if charset > 1 {
        return Err("duplicate charset in Content-Type");
    }
    if media.starts_with("multipart/") && boundary == 0 {
        return Err("multipart Content-Type without boundary");
    }
    Ok(())
}

/// A genuine WebSocket opening handshake (RFC 6455 §4.2.1): GET over HTTP/1.1,
/// `Connection: upgrade`, `Upgrade: websocket`, a `Sec-WebSocket-Key` that is 16 bytes in
/// base64, and version 13. `get` returns every value of a header.
pub fn is_websocket_handshake<'a>(
    method: &str,
    http11: bool,
    get: impl Fn(&str) -> Vec<&'a [u8]>,
) -> bool {
    let one = |name: &str| match get(name).as_slice() {
        [v] => Some(*v),
        _ => None,
    };
    let connection_upgrade = get("connection").iter().any(|v| {
        v.split(|b| *b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"upgrade"))
    });
    let key_ok = one("sec-websocket-key").is_some_and(|k| {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(k.trim_ascii())
            .is_ok_and(|d| d.len() == 16)
    });
    method == "GET"
        && http11
        && connection_upgrade
        && one("upgrade").is_some_and(|u| u.trim_ascii().eq_ignore_ascii_case(b"websocket"))
        && one("sec-websocket-version").is_some_and(|v| v.trim_ascii() == b"13")
        && key_ok
}

/// A query parameter's value as a form decoder reads it (`+` a space, then
/// percent-escapes), the first one named `name`; `None` when absent.
pub(crate) fn query_param(query: &str, name: &str) -> Option<String> {
    query.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        (k == name).then(|| {
            percent_encoding::percent_decode_str(&v.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fold_like_cgi() {
        assert!(folded_eq("X_Consumer_Id", "x-consumer-id"));
        assert!(folded_eq("x-real_ip", "X-Real-IP"));
        assert!(!folded_eq("x-consumer-idx", "x-consumer-id"));
        assert!(underscore_dropped("X_Forwarded_For", &[]));
        assert!(!underscore_dropped("X-Forwarded-For", &[]));
        assert!(!underscore_dropped("X_Legacy", &["x_legacy".into()]));
    }

    #[test]
    fn content_type_parameters() {
        assert!(check_content_type(b"multipart/form-data; boundary=a").is_ok());
        assert!(check_content_type(b"application/json; charset=utf-8").is_ok());
        assert!(check_content_type(b"multipart/form-data; boundary=a; boundary=b").is_err());
        assert!(check_content_type(b"multipart/form-data; BOUNDARY=a;boundary=b").is_err());
        assert!(check_content_type(b"text/plain; charset=utf-8; charset=utf-16").is_err());
        assert!(check_content_type(b"multipart/form-data").is_err());
        assert!(check_content_type(b"\xff").is_err());
    }

    #[test]
    fn websocket_handshakes() {
        let ok: Vec<(&str, &[u8])> = vec![
            ("connection", b"keep-alive, Upgrade"),
            ("upgrade", b"websocket"),
            ("sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", b"13"),
        ];
        let get = |h: &[(&'static str, &'static [u8])]| {
            let h = h.to_vec();
            move |n: &str| h.iter().filter(|(k, _)| *k == n).map(|(_, v)| *v).collect()
        };
        assert!(is_websocket_handshake("GET", true, get(&ok)));
        assert!(!is_websocket_handshake("POST", true, get(&ok)));
        assert!(!is_websocket_handshake("GET", false, get(&ok)));
        let mut bad = ok.clone();
        bad[1] = ("upgrade", b"h2c");
        assert!(!is_websocket_handshake("GET", true, get(&bad)));
        let mut bad = ok.clone();
        bad[2] = ("sec-websocket-key", b"short");
        assert!(!is_websocket_handshake("GET", true, get(&bad)));
        let mut bad = ok.clone();
        bad[0] = ("connection", b"close");
        assert!(!is_websocket_handshake("GET", true, get(&bad)));
    }
}
