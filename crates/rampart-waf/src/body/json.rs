//! JSON request bodies: decoded to UTF-8 as a backend would (BOM, UTF-16/32) and flattened
//! into ARGS-style `json.a.b` leaves, depth- and size-bounded.

/// A small JSON flattener (`json.a.b`, arrays by index) that needs no parser crate.
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
) -> Result<Vec<(String, Vec<u8>)>, &'static str> {
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
    fn emit(&mut self, out: &mut Vec<(String, Vec<u8>)>, v: Vec<u8>) -> Result<(), &'static str> {
        let cost = self.path.len() + v.len();
        if cost > self.budget {
            return Err("JSON expands beyond the parser's budget");
        }
        self.budget -= cost;
        out.push((self.path.clone(), v));
        Ok(())
    }
    /// Parses a value whose name is `self.path + suffix`.
    fn child(
        &mut self,
        suffix: &str,
        out: &mut Vec<(String, Vec<u8>)>,
    ) -> Result<(), &'static str> {
        let len = self.path.len();
        self.path.push('.');
        self.path.push_str(suffix);
        let r = self.value(out);
        self.path.truncate(len);
        r
    }
    fn value(&mut self, out: &mut Vec<(String, Vec<u8>)>) -> Result<(), &'static str> {
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
                if lit.is_empty() {
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
