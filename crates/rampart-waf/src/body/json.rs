//! JSON request bodies: decoded to UTF-8 as a backend would (BOM, UTF-16/32) and flattened
//! into ARGS-style `json.a.b` leaves (array elements by index, `json.a.0`), depth- and
//! size-bounded; only RFC 8259 JSON is read (a bare word is an error, as in any backend's
//! parser).

/// A small JSON flattener that needs no parser crate.
/// A JSON body as UTF-8: a UTF-8 BOM is dropped; UTF-16 and UTF-32 (by BOM, by the
/// RFC 4627 §3 zero-byte pattern of the first characters, or by `charset`) are transcoded.
pub(crate) fn json_text<'b>(
    body: &'b [u8],
    content_type: &str,
) -> Result<std::borrow::Cow<'b, [u8]>, &'static str> {
    use std::borrow::Cow;
    #[derive(Clone, Copy)]
    enum Enc {
        U16(bool),
        U32(bool),
    }
    let charset = content_type
        .split(';')
        .skip(1)
        .find_map(|p| p.trim().strip_prefix("charset="))
        .map(|c| c.trim_matches('"').to_ascii_lowercase());
    let (enc, skip) = match body {
        [0xEF, 0xBB, 0xBF, ..] => return Ok(Cow::Borrowed(&body[3..])),
        [0x00, 0x00, 0xFE, 0xFF, ..] => (Some(Enc::U32(true)), 4),
        [0xFF, 0xFE, 0x00, 0x00, ..] => (Some(Enc::U32(false)), 4),
        [0xFE, 0xFF, ..] => (Some(Enc::U16(true)), 2),
        [0xFF, 0xFE, ..] => (Some(Enc::U16(false)), 2),
        [0, 0, 0, a, ..] if *a != 0 => (Some(Enc::U32(true)), 0),
        [a, 0, 0, 0, ..] if *a != 0 => (Some(Enc::U32(false)), 0),
        [0, a, ..] if *a != 0 => (Some(Enc::U16(true)), 0),
        [a, 0, ..] if *a != 0 => (Some(Enc::U16(false)), 0),
        _ => match charset.as_deref() {
            Some("utf-16" | "utf-16be") => (Some(Enc::U16(true)), 0),
            Some("utf-16le") => (Some(Enc::U16(false)), 0),
            Some("utf-32" | "utf-32be") => (Some(Enc::U32(true)), 0),
            Some("utf-32le") => (Some(Enc::U32(false)), 0),
            None | Some("utf-8" | "utf8" | "us-ascii") => (None, 0),
            Some(_) => return Err("JSON in an unsupported charset"),
        },
    };
    let data = &body[skip..];
    let text = match enc {
        None => return Ok(Cow::Borrowed(body)),
        Some(Enc::U16(be)) => {
            if !data.len().is_multiple_of(2) {
                return Err("JSON in UTF-16 with an odd length");
            }
            let units = data.chunks_exact(2).map(|c| {
                if be {
                    u16::from_be_bytes([c[0], c[1]])
                } else {
                    u16::from_le_bytes([c[0], c[1]])
                }
            });
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .map_err(|_| "JSON in invalid UTF-16")?
        }
        Some(Enc::U32(be)) => {
            if !data.len().is_multiple_of(4) {
                return Err("JSON in UTF-32 with a partial character");
            }
            data.chunks_exact(4)
                .map(|c| {
                    let v = if be {
                        u32::from_be_bytes([c[0], c[1], c[2], c[3]])
                    } else {
                        u32::from_le_bytes([c[0], c[1], c[2], c[3]])
                    };
                    char::from_u32(v)
                })
                .collect::<Option<String>>()
                .ok_or("JSON in invalid UTF-32")?
        }
    };
    Ok(Cow::Owned(text.into_bytes()))
}

pub(crate) fn serde_free_json(
    body: &[u8],
    max_depth: usize,
) -> Result<crate::body::Pairs, &'static str> {
    let text = std::str::from_utf8(body).map_err(|_| "JSON is not UTF-8")?;
    let mut p = JsonP {
        s: text.as_bytes(),
        i: 0,
        depth: 0,
        max_depth: max_depth.min(crate::engine::MAX_JSON_DEPTH),
        path: String::from("json"),
        // Every leaf carries its full path: deep documents with long keys could otherwise
        // expand a body many times over.
        budget: body.len().saturating_mul(4).saturating_add(1 << 20),
    };
    let mut out = Vec::new();
    p.ws();
    p.value(&mut out)?;
    p.ws();
    if p.i != p.s.len() {
        return Err("trailing data after JSON");
    }
    Ok(out)
}

pub(crate) struct JsonP<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
    max_depth: usize,
    /// The current key path, extended and truncated as the parser descends and returns.
    path: String,
    /// Bytes of names and values still allowed in the output.
    budget: usize,
}

impl JsonP<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
            self.i += 1;
        }
    }
    fn emit(&mut self, out: &mut crate::body::Pairs, v: Vec<u8>) -> Result<(), &'static str> {
        let cost = self.path.len() + v.len();
        if cost > self.budget {
            return Err("JSON expands beyond the parser's budget");
        }
        self.budget -= cost;
        out.push((self.path.clone().into_bytes(), v));
        Ok(())
    }
    /// Parses a value whose name is `self.path + suffix`.
    fn child(&mut self, suffix: &str, out: &mut crate::body::Pairs) -> Result<(), &'static str> {
        let len = self.path.len();
        self.path.push('.');
        self.path.push_str(suffix);
        let r = self.value(out);
        self.path.truncate(len);
        r
    }
    fn value(&mut self, out: &mut crate::body::Pairs) -> Result<(), &'static str> {
        self.depth += 1;
        if self.depth > self.max_depth {
            return Err("JSON nested too deeply");
        }
        self.ws();
        match self.s.get(self.i) {
            Some(b'{') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b'}') {
                    self.i += 1;
                } else {
                    loop {
                        self.ws();
                        let k = self.string()?;
                        self.ws();
                        if self.s.get(self.i) != Some(&b':') {
                            return Err("expected : in JSON object");
                        }
                        self.i += 1;
                        self.child(&k, out)?;
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b'}') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err("expected , or } in JSON object"),
                        }
                    }
                }
            }
            Some(b'[') => {
                self.i += 1;
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    let mut n = 0;
                    loop {
                        // `json.a.0`, as Coraza names it. ModSecurity v3 says
                        // `json.a.array_0`: longer names that every ARGS_NAMES rule scans
                        // (measured: 5% more instructions on a JSON order with arrays).
                        self.child(&n.to_string(), out)?;
                        n += 1;
                        self.ws();
                        match self.s.get(self.i) {
                            Some(b',') => self.i += 1,
                            Some(b']') => {
                                self.i += 1;
                                break;
                            }
                            _ => return Err("expected , or ] in JSON array"),
                        }
                    }
                }
            }
            Some(b'"') => {
                let v = self.string()?;
                self.emit(out, v.into_bytes())?;
            }
            Some(_) => {
                let start = self.i;
                while self.i < self.s.len()
                    && !matches!(
                        self.s[self.i],
                        b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'
                    )
                {
                    self.i += 1;
                }
                let lit = &self.s[start..self.i];
                // Only what a JSON parser accepts: a backend refuses anything else, and
                // a value read here but not there is a value the rules judged for nothing.
                if !is_json_literal(lit) {
                    return Err("invalid JSON value");
                }
                self.emit(out, lit.to_vec())?;
            }
            None => return Err("unexpected end of JSON"),
        }
        self.depth -= 1;
        Ok(())
    }
    fn string(&mut self) -> Result<String, &'static str> {
        if self.s.get(self.i) != Some(&b'"') {
            return Err("expected a JSON string");
        }
        self.i += 1;
        let mut out = String::new();
        while let Some(&c) = self.s.get(self.i) {
            self.i += 1;
            match c {
                b'"' => return Ok(out),
                b'\\' => {
                    let e = *self.s.get(self.i).ok_or("bad escape")?;
                    self.i += 1;
                    match e {
                        b'n' => out.push('\n'),
                        b't' => out.push('\t'),
                        b'r' => out.push('\r'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'u' => {
                            let h = std::str::from_utf8(
                                self.s.get(self.i..self.i + 4).ok_or("bad \\u escape")?,
                            )
                            .map_err(|_| "bad \\u escape")?;
                            let cp = u32::from_str_radix(h, 16).map_err(|_| "bad \\u escape")?;
                            out.push(char::from_u32(cp).unwrap_or('\u{fffd}'));
                            self.i += 4;
                        }
                        other => out.push(other as char),
                    }
                }
                _ => {
                    // Copy a run of plain bytes (valid UTF-8, checked at entry).
                    let start = self.i - 1;
                    while self.i < self.s.len() && !matches!(self.s[self.i], b'"' | b'\\') {
                        self.i += 1;
                    }
                    out.push_str(std::str::from_utf8(&self.s[start..self.i]).unwrap_or(""));
                }
            }
        }
        Err("unterminated JSON string")
    }
}

/// `true`, `false`, `null` or a number in RFC 8259's grammar (§6):
/// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_json_literal(lit: &[u8]) -> bool {
    if matches!(lit, b"true" | b"false" | b"null") {
        return true;
    }
    let digits = |s: &[u8], i: &mut usize| {
        let start = *i;
        while *i < s.len() && s[*i].is_ascii_digit() {
            *i += 1;
        }
        *i > start
    };
    let mut i = usize::from(lit.first() == Some(&b'-'));
    match lit.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => {
            digits(lit, &mut i);
        }
        _ => return false,
    }
    if lit.get(i) == Some(&b'.') {
        i += 1;
        if !digits(lit, &mut i) {
            return false;
        }
    }
    if matches!(lit.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(lit.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if !digits(lit, &mut i) {
            return false;
        }
    }
    i == lit.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_are_json_ones_only() {
        for ok in [
            "true", "false", "null", "0", "-0", "12", "-3.25", "1e9", "2E-7", "0.5e+3",
        ] {
            assert!(is_json_literal(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            "test",
            "True",
            "nul",
            "01",
            "+1",
            "1.",
            ".5",
            "1e",
            "1e+",
            "-",
            "0x10",
            "NaN",
            "Infinity",
            "1/*x*/",
            "tru\\u0065",
        ] {
            assert!(!is_json_literal(bad.as_bytes()), "{bad}");
        }
        assert!(serde_free_json(b"test", 32).is_err());
        assert!(serde_free_json(b"{\"a\": x/*\"y\"*/}", 32).is_err());
        assert_eq!(
            serde_free_json(b"{\"a\":[1,-2.5e3,true]}", 32).unwrap(),
            vec![
                (b"json.a.0".to_vec(), b"1".to_vec()),
                (b"json.a.1".to_vec(), b"-2.5e3".to_vec()),
                (b"json.a.2".to_vec(), b"true".to_vec()),
            ]
        );
    }
}
