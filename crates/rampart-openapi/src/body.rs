//! Request bodies: which declared media type a `Content-Type` is, and the body read as the
//! backend will read it. JSON is parsed strictly: UTF-8 only, no duplicate keys (parsers
//! disagree on which one wins), bounded nesting, numbers in range.

use crate::params::coerce;
use crate::schema::Shape;
use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A media type's essence (`type/subtype`, lower case) and its parameters.
pub(crate) struct MediaType {
    pub essence: String,
    pub params: Vec<(String, String)>,
}

impl MediaType {
    pub fn parse(s: &str) -> Option<MediaType> {
        let mut parts = s.split(';');
        let essence = parts.next()?.trim().to_ascii_lowercase();
        let (t, sub) = essence.split_once('/')?;
        if t.is_empty() || sub.is_empty() || essence.contains(char::is_whitespace) {
            return None;
        }
        let mut params = Vec::new();
        for p in parts {
            let p = p.trim();
            if p.is_empty() {
                continue;
            }
            let (k, v) = p.split_once('=')?;
            params.push((
                k.trim().to_ascii_lowercase(),
                v.trim().trim_matches('"').to_string(),
            ));
        }
        Some(MediaType { essence, params })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn is_json(&self) -> bool {
        self.essence == "application/json" || self.essence.ends_with("+json")
    }

    /// How well a declared media range (`application/json`, `text/*`, `*/*`) covers this
    /// type: `None` when it does not.
    pub fn matched_by(&self, range: &str) -> Option<u8> {
        let range = range.split(';').next()?.trim().to_ascii_lowercase();
        if range == self.essence {
            return Some(3);
        }
        let (rt, rs) = range.split_once('/')?;
        let (t, _) = self.essence.split_once('/')?;
        match (rt, rs) {
            ("*", "*") => Some(1),
            (rt, "*") if rt == t => Some(2),
            _ => None,
        }
    }
}

/// JSON text as a value, refusing what backends would read differently: a byte order mark,
/// text that is not UTF-8, a key given twice in one object (parsers disagree on which one
/// wins), nesting past 128 levels, numbers out of range, trailing data. The error never
/// quotes the input.
pub fn strict_json(bytes: &[u8]) -> Result<Value, String> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        return Err("a byte order mark is not allowed".into());
    }
    std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = StrictValue
        .deserialize(&mut de)
        .map_err(|e| short_error(&e))?;
    de.end().map_err(|e| short_error(&e))?;
    Ok(v)
}

/// serde_json's message without the echo of any input.
fn short_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    // "duplicate key" and friends are ours; serde_json's own say what and where.
    let what = text.split(" at line ").next().unwrap_or(&text);
    format!("{what} (line {}, column {})", e.line(), e.column())
}

struct StrictValue;

impl<'de> DeserializeSeed<'de> for StrictValue {
    type Value = Value;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Value, E> {
        Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom("number out of range"))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(StrictValue)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(StrictValue)?;
            if out.insert(k, v).is_some() {
                return Err(serde::de::Error::custom("duplicate key"));
            }
        }
        Ok(Value::Object(out))
    }
}

/// `application/x-www-form-urlencoded` pairs, percent-decoded (`+` is a space).
pub(crate) fn form_pairs(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((form_decode(k)?, form_decode(v)?));
    }
    Ok(out)
}

fn form_decode(s: &str) -> Result<String, String> {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| "not UTF-8 once decoded".to_string())
}

/// Form fields as an object of the schema's types; a field given twice must be an array.
pub(crate) fn form_object(pairs: &[(String, String)], shape: &Shape) -> Result<Value, String> {
    let mut m = Map::new();
    for (k, v) in pairs {
        let types = shape
            .properties
            .iter()
            .find(|(p, _)| p == k)
            .map(|(_, t)| t.clone())
            .unwrap_or_default();
        if types.iter().any(|t| t == "array") {
            let e = m
                .entry(k.clone())
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(a) = e {
                a.push(Value::String(v.clone()));
            }
            continue;
        }
        if m.insert(k.clone(), coerce(v, &types)).is_some() {
            return Err(format!(
                "field {} given more than once",
                crate::sanitize_name(k)
            ));
        }
    }
    Ok(Value::Object(m))
}

/// `multipart/form-data` text fields (a file part's content as text when it is UTF-8).
/// Strict: the boundary must delimit every part, each part must name itself, and the
/// closing delimiter must end the body.
pub(crate) fn multipart_pairs(
    body: &[u8],
    boundary: &str,
) -> Result<Vec<(String, String)>, String> {
    if boundary.is_empty() || boundary.len() > 70 {
        return Err("multipart boundary missing or too long".into());
    }
    let delim = format!("--{boundary}");
    let d = delim.as_bytes();
    let mut rest = body;
    // Preamble up to the first delimiter.
    let start = find(rest, d).ok_or("no multipart delimiter")?;
    rest = &rest[start + d.len()..];
    let mut out = Vec::new();
    loop {
        if rest.starts_with(b"--") {
            return Ok(out);
        }
        rest = rest
            .strip_prefix(b"\r\n")
            .ok_or("multipart delimiter not followed by CRLF")?;
        let head_end = find(rest, b"\r\n\r\n").ok_or("multipart part without headers")?;
        let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| "part headers not UTF-8")?;
        let body_start = head_end + 4;
        let next = find(&rest[body_start..], format!("\r\n{delim}").as_bytes())
            .ok_or("multipart body not closed")?;
        let content = &rest[body_start..body_start + next];
        let mut name = None;
        for line in head.split("\r\n") {
            let (k, v) = line.split_once(':').ok_or("malformed part header")?;
            if k.trim().eq_ignore_ascii_case("content-disposition") {
                for p in v.split(';').skip(1) {
                    if let Some((pk, pv)) = p.trim().split_once('=') {
                        if pk.trim().eq_ignore_ascii_case("name") {
                            if name.is_some() {
                                return Err("part named twice".into());
                            }
                            name = Some(pv.trim().trim_matches('"').to_string());
                        }
                    }
                }
            }
        }
        let name = name.ok_or("multipart part without a name")?;
        let text = String::from_utf8_lossy(content).into_owned();
        out.push((name, text));
        rest = &rest[body_start + next + 2 + d.len()..];
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_json_refuses_what_parsers_read_differently() {
        assert!(strict_json(br#"{"a":1,"b":[true,null,"x"]}"#).is_ok());
        assert!(strict_json(br#"{"a":1,"a":2}"#)
            .unwrap_err()
            .contains("duplicate key"));
        assert!(strict_json(b"\xEF\xBB\xBF{}").is_err());
        assert!(strict_json(b"{\"a\":\"\xFF\"}").is_err());
        assert!(strict_json(b"1e400").is_err());
        assert!(strict_json(b"{} {}").is_err());
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        assert!(strict_json(deep.as_bytes()).is_err());
        // serde_json's messages never quote the input.
        let e = strict_json(b"{\"a\": <script>}").unwrap_err();
        assert!(!e.contains("script"), "{e}");
    }

    #[test]
    fn media_types_and_ranges() {
        let m = MediaType::parse("Application/JSON; charset=UTF-8").unwrap();
        assert_eq!(m.essence, "application/json");
        assert_eq!(m.param("charset"), Some("UTF-8"));
        assert_eq!(m.matched_by("application/json"), Some(3));
        assert_eq!(m.matched_by("application/*"), Some(2));
        assert_eq!(m.matched_by("*/*"), Some(1));
        assert_eq!(m.matched_by("text/plain"), None);
        assert!(MediaType::parse("json").is_none());
        assert!(MediaType::parse("application/vnd.x+json")
            .unwrap()
            .is_json());
    }

    #[test]
    fn multipart_fields() {
        let body = b"--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"x.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\r\n--b--\r\n";
        assert_eq!(
            multipart_pairs(body, "b").unwrap(),
            [
                ("a".to_string(), "1".to_string()),
                ("f".into(), "hello".into())
            ]
        );
        assert!(multipart_pairs(b"--b\r\nX: y\r\n\r\n1\r\n--b--", "b").is_err());
        assert!(multipart_pairs(
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1",
            "b"
        )
        .is_err());
        assert!(multipart_pairs(body, "").is_err());
    }
}
