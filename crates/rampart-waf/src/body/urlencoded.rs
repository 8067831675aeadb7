//! `application/x-www-form-urlencoded` (and query strings): name/value pairs, decoded.

use crate::transform::Transform;

pub(crate) fn parse_urlencoded(q: &[u8], sep: u8) -> crate::body::Pairs {
    // Split as ModSecurity v3 splits (`getline`): an empty piece between two separators
    // or before the first is an argument with an empty name, one after a final separator
    // is not there. Rules counting or reading ARGS see what ModSecurity's would.
    if q.is_empty() {
        return Vec::new();
    }
    let q = q.strip_suffix(&[sep]).unwrap_or(q);
    q.split(|c| *c == sep)
        .map(|p| {
            let (k, v) = match p.iter().position(|c| *c == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &p[p.len()..]),
            };
            // Names keep every byte, as values do (`%FD` stays 0xFD).
            (Transform::UrlDecode.apply(k), Transform::UrlDecode.apply(v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_as_modsecurity_splits_them() {
        let names = |q: &str| -> Vec<String> {
            parse_urlencoded(q.as_bytes(), b'&')
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}={}",
                        String::from_utf8_lossy(&k),
                        String::from_utf8_lossy(&v)
                    )
                })
                .collect()
        };
        assert_eq!(names(""), Vec::<String>::new());
        assert_eq!(names("&"), vec!["="]);
        assert_eq!(names("a=1&"), vec!["a=1"]);
        assert_eq!(names("a=1&&"), vec!["a=1", "="]);
        assert_eq!(names("&a&&b=%41+"), vec!["=", "a=", "=", "b=A "]);
        assert_eq!(parse_urlencoded(b"x%FD=1", b'&')[0].0, b"x\xfd");
    }
}
