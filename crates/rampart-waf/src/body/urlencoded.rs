//! `application/x-www-form-urlencoded` (and query strings): name/value pairs, decoded.

use crate::transform::Transform;

pub(crate) fn parse_urlencoded(q: &[u8], sep: u8) -> Vec<(String, Vec<u8>)> {
    q.split(|c| *c == sep)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = match p.iter().position(|c| *c == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &p[p.len()..]),
            };
            (
                String::from_utf8_lossy(&Transform::UrlDecode.apply(k)).into_owned(),
                Transform::UrlDecode.apply(v),
            )
        })
        .collect()
}
