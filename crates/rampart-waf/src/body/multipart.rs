//! `multipart/form-data` (RFC 7578), read the way ModSecurity v3 reads it: line by line
//! through a 4 KiB buffer, with the same strictness flags (`MULTIPART_*`), because CRS and
//! ModSecurity's recommended rules (200003, 200004) are written against those flags.
//! Multipart is where WAFs and backends most often disagree on what a body holds (preamble,
//! LF-only lines, quoted or spaced boundaries, folded part headers); each such irregularity
//! is a flag, and `MULTIPART_STRICT_ERROR` is their sum.
//!
//! Three places differ from ModSecurity 3.0.9 on purpose (tests/multipart-divergences.txt):
//! an empty boundary is an error (3.0.9 skips the body without one, leaving it uninspected);
//! a field's value keeps the line breaks inside it (3.0.9 drops them); and a quoted
//! Content-Disposition parameter that never closes is an error (3.0.9 reads past the end of
//! the header).

/// ModSecurity's `MULTIPART_BUF_SIZE`: a part header line must be shorter; data lines are
/// handled in pieces of this size, and only a piece that starts a line can be a boundary.
const BUF_SIZE: usize = 4096;

pub(crate) struct Part {
    /// The `name` parameter's bytes, as sent (not necessarily UTF-8).
    pub(crate) name: Vec<u8>,
    /// Set for a file part (a non-empty `filename`); `filename=""` is a plain field, as in
    /// ModSecurity.
    pub(crate) filename: Option<Vec<u8>>,
    pub(crate) value: Vec<u8>,
}

/// The strictness flags, named as the variables they set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Flags {
    /// A processing error (ModSecurity's `flag_error`): counts in `MULTIPART_STRICT_ERROR`.
    pub(crate) error: bool,
    pub(crate) data_before: bool,
    pub(crate) data_after: bool,
    pub(crate) header_folding: bool,
    pub(crate) boundary_quoted: bool,
    pub(crate) boundary_whitespace: bool,
    pub(crate) lf_line: bool,
    pub(crate) crlf_line: bool,
    /// 1: something like the boundary that is not it; 2: the boundary closed a part.
    pub(crate) unmatched_boundary: u8,
    pub(crate) missing_semicolon: bool,
    pub(crate) invalid_quoting: bool,
    pub(crate) invalid_part: bool,
    pub(crate) invalid_header_folding: bool,
}

impl Flags {
    pub(crate) fn strict_error(&self) -> bool {
        self.error
            || self.boundary_quoted
            || self.boundary_whitespace
            || self.data_before
            || self.data_after
            || self.header_folding
            || self.lf_line
            || self.missing_semicolon
            || self.invalid_quoting
            || self.invalid_part
            || self.invalid_header_folding
    }
}

pub(crate) struct Multipart {
    /// Complete parts, in order (those read before an error too, as in ModSecurity).
    pub(crate) parts: Vec<Part>,
    /// `MULTIPART_PART_HEADERS`: (part name, header line).
    pub(crate) part_headers: crate::body::Pairs,
    pub(crate) flags: Flags,
    /// Why the body could not be read (`REQBODY_ERROR_MSG` without its prefix).
    pub(crate) error: Option<String>,
}

/// Reads a multipart body; `content_type` is the header as sent (the boundary is
/// case-sensitive).
pub(crate) fn multipart(content_type: &[u8], body: &[u8]) -> Multipart {
    let mut flags = Flags::default();
    let mut r = match boundary(content_type, &mut flags) {
        Ok(b) => Reader::new(b, flags),
        Err(msg) => {
            flags.error = true;
            return Multipart {
                parts: Vec::new(),
                part_headers: Vec::new(),
                flags,
                error: Some(format!("Multipart: {msg}")),
            };
        }
    };
    if let Err(msg) = r.process(body) {
        r.flags.error = true;
        r.error = msg;
    }
    r.complete();
    Multipart {
        parts: r.parts,
        part_headers: r.part_headers,
        flags: r.flags,
        error: r.error,
    }
}

fn is_space(c: u8) -> bool {
    // C's isspace.
    matches!(c, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Linear in the haystack whatever the needle: the body and the boundary (up to ~1,000
/// bytes) both come from the client, and a naive search is their product per line.
fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, needle)
}

/// How many times `boundary` occurs (any case) with an `=` somewhere after it.
fn count_boundary_params(s: &[u8]) -> usize {
    let lower = s.to_ascii_lowercase();
    let mut count = 0;
    let mut from = 0;
    while let Some(i) = find(&lower[from..], b"boundary") {
        from += i + 8;
        if lower[from..].contains(&b'=') {
            count += 1;
        }
    }
    count
}

/// RFC 2046's boundary characters (a space, but not last).
fn boundary_characters_valid(b: &[u8]) -> bool {
    b.iter().enumerate().all(|(i, &c)| {
        c.is_ascii_alphanumeric() || (c == b' ' && i + 1 < b.len()) || b"'()+_,-./:=?".contains(&c)
    })
}

/// The boundary from the Content-Type, checked as ModSecurity's `Multipart::init` does.
fn boundary(ct: &[u8], flags: &mut Flags) -> Result<Vec<u8>, &'static str> {
    // A C string: the header ends at a NUL.
    let ct = &ct[..ct.iter().position(|c| *c == 0).unwrap_or(ct.len())];
    if ct.is_empty() {
        return Err("Content-Type header not available.");
    }
    if ct.len() > 1024 {
        return Err("Invalid boundary in C-T (length).");
    }
    if ct.len() < 19 || !ct[..19].eq_ignore_ascii_case(b"multipart/form-data") {
        return Err("Invalid MIME type.");
    }
    if count_boundary_params(ct) > 1 {
        return Err("Multiple boundary parameters in C-T.");
    }
    let Some(at) = find(ct, b"boundary") else {
        if count_boundary_params(ct) > 0 {
            return Err("Invalid boundary in C-T (case sensitivity).");
        }
        return Err("Boundary not found in C-T.");
    };
    // Only whitespace and one `;` may come between the type and `boundary`.
    let mut semicolon = false;
    for &c in ct.get(19..at).unwrap_or_default() {
        if is_space(c) {
            continue;
        }
        if c == b';' && !semicolon {
            semicolon = true;
        } else {
            return Err("Invalid boundary in C-T (malformed).");
        }
    }
    if !semicolon {
        flags.missing_semicolon = true;
    }
    let Some(eq) = ct[at + 8..]
        .iter()
        .position(|c| *c == b'=')
        .map(|i| at + 8 + i)
    else {
        return Err("Invalid boundary in C-T (malformed).");
    };
    for &c in &ct[at + 8..eq] {
        if is_space(c) {
            flags.boundary_whitespace = true;
        } else {
            return Err("Invalid boundary in C-T (parameter name).");
        }
    }
    let v = &ct[eq + 1..];
    if v.first().is_some_and(|c| is_space(*c)) {
        flags.boundary_whitespace = true;
    }
    let mut b = if v.len() >= 2 && v[0] == b'"' && v[v.len() - 1] == b'"' {
        // Flagged only when not empty, as ModSecurity does.
        flags.boundary_quoted = v.len() > 2;
        v[1..v.len() - 1].to_vec()
    } else {
        if v.first() == Some(&b'"') || (v.len() >= 2 && v[v.len() - 1] == b'"') {
            return Err("Invalid boundary in C-T (quote).");
        }
        v.to_vec()
    };
    // ModSecurity 3.0.9 returns here without an error, and then reads no part of the body:
    // a body nothing inspects is an error here.
    if b.is_empty() {
        return Err("Invalid boundary in C-T (empty).");
    }
    if count_boundary_params(&b) != 0 {
        return Err("Invalid boundary in C-T (content).");
    }
    // Tolerated, as ModSecurity does: a parameter (`; charset=...`) after the boundary.
    if !boundary_characters_valid(&b) {
        if let Some(i) = b.iter().position(|c| *c == b';') {
            b.truncate(i);
        }
    }
    if !boundary_characters_valid(&b) {
        return Err("Invalid boundary in C-T (characters).");
    }
    if b.is_empty() {
        return Err("Invalid boundary in C-T (empty).");
    }
    Ok(b)
}

/// The part being read.
#[derive(Default)]
struct Building {
    name: Vec<u8>,
    filename: Vec<u8>,
    is_file: bool,
    /// Header name → value; names compare without case, as ModSecurity's map does.
    headers: crate::body::Pairs,
    header_lines: Vec<Vec<u8>>,
    last_header_name: Vec<u8>,
    last_header_line: Vec<u8>,
    value: Vec<u8>,
}

impl Building {
    fn header(&mut self, name: &[u8]) -> Option<&mut Vec<u8>> {
        self.headers
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }
}

struct Reader {
    boundary: Vec<u8>,
    flags: Flags,
    error: Option<String>,
    buf: Vec<u8>,
    buf_contains_line: bool,
    crlf_state: u8,
    crlf_state_buf_end: u8,
    part: Option<Building>,
    /// 0: reading a part's headers; 1: its data.
    state: u8,
    data_read: bool,
    boundary_count: usize,
    complete: bool,
    seen_data: bool,
    /// The line ending held back from the last data line: it belongs to the value only
    /// when more data follows, not when the boundary does.
    reserve: Vec<u8>,
    parts: Vec<Part>,
    part_headers: crate::body::Pairs,
}

fn chomp(v: &mut Vec<u8>) {
    // ModSecurity's chomp: trailing CRs and LFs, unless there is nothing else.
    if let Some(i) = v.iter().rposition(|c| *c != b'\n' && *c != b'\r') {
        v.truncate(i + 1);
    }
}

fn text(v: &[u8]) -> String {
    String::from_utf8_lossy(v).into_owned()
}

impl Reader {
    fn new(boundary: Vec<u8>, flags: Flags) -> Reader {
        Reader {
            boundary,
            flags,
            error: None,
            buf: Vec::with_capacity(BUF_SIZE),
            buf_contains_line: true,
            crlf_state: 0,
            crlf_state_buf_end: 0,
            part: None,
            state: 0,
            data_read: false,
            boundary_count: 0,
            complete: false,
            seen_data: false,
            reserve: Vec::new(),
            parts: Vec::new(),
            part_headers: Vec::new(),
        }
    }

    /// The whole body, a piece (a line, or 4 KiB of a longer one) at a time. `Err` stops
    /// reading, with the message when there is one.
    fn process(&mut self, body: &[u8]) -> Result<(), Option<String>> {
        if body.is_empty() {
            return Ok(());
        }
        self.seen_data = true;
        let mut i = 0;
        while i < body.len() {
            let c = body[i];
            // A CR is never the last byte of a piece: it may start the CRLF ending a line.
            let cut_before_cr = c == b'\r' && self.buf.len() == BUF_SIZE - 1;
            if !cut_before_cr {
                self.buf.push(c);
                i += 1;
            }
            if c == b'\n' || self.buf.len() == BUF_SIZE || cut_before_cr {
                self.piece(cut_before_cr)?;
                self.buf.clear();
                self.buf_contains_line = c == b'\n';
                if c == b'\n' {
                    self.crlf_state = if self.crlf_state == 1 { 3 } else { 2 };
                }
                self.crlf_state_buf_end = self.crlf_state;
            }
            if c == b'\r' {
                self.crlf_state = 1;
            } else if c != b'\n' {
                self.crlf_state = 0;
            }
            if self.complete && i < body.len() {
                self.flags.data_after = true;
                return Ok(());
            }
        }
        Ok(())
    }

    fn piece(&mut self, cut_before_cr: bool) -> Result<(), Option<String>> {
        // Lent out while the piece is read; kept after an error for `complete`.
        let buf = std::mem::take(&mut self.buf);
        let result = self.read_piece(&buf, cut_before_cr);
        self.buf = buf;
        result
    }

    fn read_piece(&mut self, buf: &[u8], cut_before_cr: bool) -> Result<(), Option<String>> {
        let full = buf.len() == BUF_SIZE;
        let blen = self.boundary.len();
        let mut as_boundary = false;
        // The buffer as C sees it: up to its first NUL.
        let s = &buf[..buf.iter().position(|c| *c == 0).unwrap_or(buf.len())];
        if self.buf_contains_line && s.len() > 3 && s.starts_with(b"--") {
            if s.len() >= blen + 2 && s[2..2 + blen] == self.boundary[..] {
                if self.crlf_state_buf_end == 2 {
                    self.flags.lf_line = true;
                }
                if !self.data_read && self.boundary_count > 0 {
                    // The boundary where a part's data should begin.
                    self.flags.invalid_part = true;
                } else {
                    if self.boundary_count > 0 {
                        self.flags.unmatched_boundary = 2;
                    }
                    let mut end = &s[2 + blen..];
                    let is_final = end.starts_with(b"--");
                    if is_final {
                        end = &end[2..];
                        if self.complete {
                            return Err(Some(
                                "Multipart: Invalid boundary (final duplicate).".into(),
                            ));
                        }
                    }
                    match end {
                        b"\r\n" => self.flags.crlf_line = true,
                        b"\n" => self.flags.lf_line = true,
                        _ => return Err(Some(format!("Multipart: Invalid boundary: {}", text(s)))),
                    }
                    self.process_boundary(is_final);
                    if is_final {
                        self.complete = true;
                    }
                    as_boundary = true;
                    self.boundary_count += 1;
                }
            } else {
                if self.flags.boundary_quoted
                    && s.len() > blen + 2
                    && s[2] == b'"'
                    && s[3..3 + blen] == self.boundary[..]
                {
                    return Err(Some("Multipart: Invalid boundary (quotes).".into()));
                }
                let ws = s[2..].iter().take_while(|c| is_space(**c)).count();
                if ws > 0 && s[2 + ws..].starts_with(&self.boundary) {
                    return Err(Some("Multipart: Invalid boundary (whitespace).".into()));
                }
                self.flags.unmatched_boundary = 1;
            }
        } else if self.buf_contains_line {
            // Something like the boundary inside a line.
            let mut needle = b"--".to_vec();
            needle.extend_from_slice(&self.boundary);
            if find(buf, &needle).is_some() {
                self.flags.unmatched_boundary = 1;
            }
        }
        if !as_boundary {
            if self.part.is_none() {
                self.flags.data_before = true;
            } else if self.state == 0 {
                if full || cut_before_cr {
                    return Err(Some(format!(
                        "Multipart: Part header line over {BUF_SIZE} bytes long"
                    )));
                }
                // ModSecurity's header errors do not stop the reading (its check is `< 0`
                // and they return `false`): the message is kept, the part stays in its
                // headers, and what follows is read as more headers.
                if let Err(Some(msg)) = self.part_header_line(buf) {
                    self.error = Some(msg);
                }
            } else {
                self.part_data(buf);
            }
        }
        Ok(())
    }

    fn part_header_line(&mut self, line: &[u8]) -> Result<(), Option<String>> {
        if line.contains(&0) {
            return Err(Some("Multipart: Nul byte in part headers.".into()));
        }
        let len = line.len();
        let mut content_len = len - 1;
        if len > 1 && line[len - 2] == b'\r' {
            self.flags.crlf_line = true;
            content_len -= 1;
        } else {
            self.flags.lf_line = true;
        }
        let part = self.part.as_mut().expect("a part is being read");
        if line == b"\r\n" || line == b"\n" {
            if !part.last_header_line.is_empty() {
                let l = std::mem::take(&mut part.last_header_line);
                part.header_lines.push(l);
            }
            let Some(cd) = part.header(b"Content-Disposition").cloned() else {
                return Err(Some(
                    "Multipart: Part missing Content-Disposition header.".into(),
                ));
            };
            if let Err(rc) = content_disposition(&cd, part, &mut self.flags) {
                return Err(Some(format!(
                    "Multipart: Invalid Content-Disposition header ({rc}): {}",
                    text(&cd)
                )));
            }
            if part.name.is_empty() {
                return Err(Some(
                    "Multipart: Content-Disposition header missing name field.".into(),
                ));
            }
            if !part.filename.is_empty() {
                // A crude parser that misses the filename would see a plain field.
                if find(&cd, b"filename=").is_none() {
                    return Err(Some(
                        "Multipart: Invalid Content-Disposition header (filename).".into(),
                    ));
                }
                part.is_file = true;
            }
            self.state = 1;
            self.data_read = false;
            part.last_header_name.clear();
        } else if is_space(line[0]) {
            // A folded header line: accepted (PHP takes any whitespace), flagged.
            self.flags.header_folding = true;
            if line[0] != b'\t' && line[0] != b' ' {
                self.flags.invalid_header_folding = true;
            }
            if part.last_header_name.is_empty() {
                return Err(Some(
                    "Multipart: Invalid part header (folding error).".into(),
                ));
            }
            let ws = line.iter().take_while(|c| is_space(**c)).count();
            if line[..ws].iter().any(|c| *c != b'\t' && *c != b' ') {
                self.flags.invalid_header_folding = true;
            }
            let mut more = line[ws..].to_vec();
            chomp(&mut more);
            let name = part.last_header_name.clone();
            let value = part.header(&name).expect("the header being built");
            value.push(b' ');
            value.extend_from_slice(&more);
            if value.len() > BUF_SIZE {
                return Err(Some("Multipart: Part header too long.".into()));
            }
            let mut l = name;
            l.extend_from_slice(b": ");
            l.extend_from_slice(value);
            part.last_header_line = l;
        } else {
            if !part.last_header_line.is_empty() {
                let l = std::mem::take(&mut part.last_header_line);
                part.header_lines.push(l);
            }
            let Some(colon) = line.iter().position(|c| *c == b':') else {
                return Err(Some(format!(
                    "Multipart: Invalid part header (colon missing): {}",
                    text(line)
                )));
            };
            if colon == 0 {
                return Err(Some(
                    "Multipart: Invalid part header (header name missing).".into(),
                ));
            }
            let name = line[..colon].to_vec();
            let ws = line[colon + 1..]
                .iter()
                .take_while(|c| **c == b' ' || **c == b'\t')
                .count();
            let mut value = line[colon + 1 + ws..].to_vec();
            chomp(&mut value);
            if part.header(&name).is_some() {
                // A duplicate part header is dropped, without an error.
                return Err(None);
            }
            part.last_header_name = name.clone();
            part.headers.push((name, value));
            part.last_header_line = if content_len > 0 {
                line.to_vec()
            } else {
                Vec::new()
            };
        }
        Ok(())
    }

    fn part_data(&mut self, buf: &[u8]) {
        self.data_read = true;
        let mut data = buf;
        let held = if data.ends_with(b"\r\n") {
            2
        } else if data.ends_with(b"\n") {
            1
        } else {
            0
        };
        data = &data[..data.len() - held];
        let part = self.part.as_mut().expect("a part is being read");
        part.value.extend_from_slice(&self.reserve);
        part.value.extend_from_slice(data);
        self.reserve = buf[buf.len() - held..].to_vec();
    }

    fn process_boundary(&mut self, last: bool) {
        if let Some(p) = self.part.take() {
            let name = p.name;
            // Without their line ending: ModSecurity 3.0.9 keeps it, and CRS's 922110 then
            // relies on a multi-line `$` to ignore it, which Rampart's negated rules do not
            // use (a value must match to its end, not to its first line break).
            for mut l in p.header_lines {
                chomp(&mut l);
                self.part_headers.push((name.clone(), l));
            }
            if name.is_empty() {
                self.flags.invalid_part = true;
            } else {
                self.parts.push(Part {
                    name,
                    filename: p.is_file.then_some(p.filename),
                    value: p.value,
                });
            }
        }
        if !last {
            self.part = Some(Building::default());
            self.state = 0;
            self.data_read = false;
            self.reserve.clear();
        }
    }

    /// The end of the body: a final boundary without its line ending is still one.
    fn complete(&mut self) {
        if !self.seen_data || self.complete {
            return;
        }
        // Without its end, the body yields no part at all (ModSecurity returns before
        // adding them): what a backend would make of it is anyone's guess.
        if self.boundary_count == 0 {
            self.error = Some("Multipart: No boundaries found in payload.".into());
            self.parts.clear();
            return;
        }
        let mut last = b"--".to_vec();
        last.extend_from_slice(&self.boundary);
        last.extend_from_slice(b"--");
        if self.buf_contains_line && self.buf == last {
            if self.crlf_state_buf_end == 2 {
                self.flags.lf_line = true;
            }
            if !self.data_read {
                self.flags.invalid_part = true;
            }
            self.process_boundary(true);
            self.complete = true;
        } else {
            self.error = Some("Multipart: Final boundary missing.".into());
            self.parts.clear();
        }
    }
}

/// `form-data; name="a"; filename="b"`, as ModSecurity's `parse_content_disposition`:
/// `Err` carries its (negative) result code.
fn content_disposition(v: &[u8], part: &mut Building, flags: &mut Flags) -> Result<(), i32> {
    let v = &v[..v.iter().position(|c| *c == 0).unwrap_or(v.len())];
    let at = |p: usize| v.get(p).copied().unwrap_or(0);
    if !v.starts_with(b"form-data") {
        return Err(-1);
    }
    let mut p = 9;
    while matches!(at(p), b'\t' | b' ') {
        p += 1;
    }
    if at(p) == 0 {
        return Ok(());
    }
    if at(p) != b';' {
        return Err(-2);
    }
    p += 1;
    let mut filename_star: Vec<u8> = Vec::new();
    while at(p) != 0 {
        while matches!(at(p), b'\t' | b' ') {
            p += 1;
        }
        if at(p) == 0 {
            return Err(-3);
        }
        let start = p;
        while !matches!(at(p), 0 | b'=' | b'\t' | b' ') {
            p += 1;
        }
        if at(p) == 0 {
            return Err(-4);
        }
        let name = &v[start..p];
        while matches!(at(p), b'\t' | b' ') {
            p += 1;
        }
        if at(p) == 0 {
            return Err(-5);
        }
        if at(p) != b'=' {
            return Err(-13);
        }
        p += 1;
        while matches!(at(p), b'\t' | b' ') {
            p += 1;
        }
        if at(p) == 0 {
            return Err(-6);
        }
        let mut quote = 0u8;
        let mut value = Vec::new();
        if name == b"filename*" {
            // charset'[language]'percent-encoded-name
            let cs = p;
            while at(p) != 0 && (at(p).is_ascii_alphanumeric() || b"!#$%&+-^_`{}~".contains(&at(p)))
            {
                p += 1;
            }
            if at(p) != b'\'' || p == cs {
                return Err(-16);
            }
            p += 1;
            while at(p) != 0 && at(p) != b'\'' {
                p += 1;
            }
            if at(p) != b'\'' {
                return Err(-17);
            }
            p += 1;
            let start = p;
            while at(p) != 0 && at(p) != b';' {
                if at(p) == b'%' {
                    if !at(p + 1).is_ascii_hexdigit() || !at(p + 2).is_ascii_hexdigit() {
                        return Err(-18);
                    }
                    p += 3;
                } else if at(p).is_ascii_alphanumeric() || b"!#$&+-.^_`~".contains(&at(p)) {
                    p += 1;
                } else {
                    return Err(-19);
                }
            }
            value.extend_from_slice(&v[start..p]);
        } else if at(p) == b'"' || at(p) == b'\'' {
            // Single quotes are accepted (some backends take them) but flagged.
            quote = at(p);
            if quote == b'\'' {
                flags.invalid_quoting = true;
            }
            p += 1;
            if at(p) == 0 {
                return Err(-7);
            }
            while at(p) != 0 {
                if at(p) == b'\\' {
                    if at(p + 1) == 0 {
                        return Err(-8);
                    }
                    // Only the quote and the backslash are escaped; any other backslash
                    // stays (browsers send unescaped ones).
                    if at(p + 1) == quote || at(p + 1) == b'\\' {
                        p += 1;
                    }
                } else if at(p) == quote {
                    break;
                }
                value.push(at(p));
                p += 1;
            }
            // ModSecurity reads past the end of an unterminated value (undefined
            // behaviour: garbage decides whether it errs). A value that never ends is an
            // error here: where it ends is a guess every parser makes differently.
            if at(p) != quote {
                return Err(-12);
            }
            p += 1;
        } else {
            let start = p;
            while is_token_char(at(p)) {
                p += 1;
            }
            value.extend_from_slice(&v[start..p]);
        }
        match name {
            b"name" | b"filename" => {
                if quote != b'"' && value.contains(&b'\'') {
                    flags.invalid_quoting = true;
                }
                let slot = if name == b"name" {
                    &mut part.name
                } else {
                    &mut part.filename
                };
                if !slot.is_empty() {
                    return Err(if name == b"name" { -14 } else { -15 });
                }
                *slot = value;
            }
            b"filename*" => {
                if !filename_star.is_empty() {
                    return Err(-20);
                }
                filename_star = value;
            }
            _ => return Err(-11),
        }
        if at(p) != 0 {
            while matches!(at(p), b'\t' | b' ') {
                p += 1;
            }
            if at(p) != 0 {
                if at(p) != b';' {
                    if matches!(v.get(p.wrapping_sub(1)), Some(b'\'' | b'"')) {
                        flags.invalid_quoting = true;
                    }
                    return Err(-12);
                }
                p += 1;
            }
        }
    }
    if !filename_star.is_empty() && part.filename.is_empty() {
        return Err(-21);
    }
    Ok(())
}

fn is_token_char(c: u8) -> bool {
    c > 32 && c < 127 && !b"()<>@,;:\\\"/[]?=".contains(&c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(ct: &str, body: &str) -> Multipart {
        multipart(ct.as_bytes(), body.as_bytes())
    }

    #[test]
    fn a_regular_body_has_no_flags() {
        let m = read(
            "multipart/form-data; boundary=b",
            "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\ny\r\n--b\r\n\
             Content-Disposition: form-data; name=\"f\"; filename=\"t.txt\"\r\n\
             Content-Type: text/plain\r\n\r\nfile\r\n--b--\r\n",
        );
        assert!(m.error.is_none(), "{:?}", m.error);
        assert!(!m.flags.strict_error(), "{:?}", m.flags);
        assert_eq!(m.flags.unmatched_boundary, 2);
        assert_eq!(m.parts.len(), 2);
        assert_eq!(m.parts[0].value, b"x\r\ny");
        assert_eq!(m.parts[1].filename.as_deref(), Some(&b"t.txt"[..]));
        assert_eq!(m.parts[1].value, b"file");
        assert_eq!(m.part_headers.len(), 3);
    }

    #[test]
    fn irregularities_are_flagged() {
        let body = "--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--b--\r\n";
        let m = read("multipart/form-data boundary=b", body);
        assert!(m.flags.missing_semicolon && m.flags.strict_error());
        let m = read("multipart/form-data; boundary=\"b\"", body);
        assert!(m.flags.boundary_quoted && m.error.is_none());
        let m = read("multipart/form-data; boundary= b", body);
        assert!(m.flags.boundary_whitespace);
        let m = read(
            "multipart/form-data; boundary=b",
            &format!("junk\r\n{body}"),
        );
        assert!(m.flags.data_before && m.error.is_none());
        let m = read("multipart/form-data; boundary=b", &format!("{body}junk"));
        assert!(m.flags.data_after && m.error.is_none());
        let m = read(
            "multipart/form-data; boundary=b",
            &body.replace("\r\n", "\n"),
        );
        assert!(m.flags.lf_line && !m.flags.crlf_line && m.error.is_none());
        let folded = body.replace("; name", ";\r\n\tname");
        let m = read("multipart/form-data; boundary=b", &folded);
        assert!(m.flags.header_folding && !m.flags.invalid_header_folding);
        let m = read(
            "multipart/form-data; boundary=b",
            &body.replace("\"a\"", "'a'"),
        );
        assert!(m.flags.invalid_quoting);
        let m = read(
            "multipart/form-data; boundary=b",
            &body.replace("--b--\r\n", ""),
        );
        assert_eq!(
            m.error.as_deref(),
            Some("Multipart: Final boundary missing.")
        );
        assert_eq!(m.parts.len(), 0);
    }

    #[test]
    fn an_empty_boundary_is_an_error() {
        for ct in [
            "multipart/form-data; boundary=",
            "multipart/form-data; boundary=\"\"",
        ] {
            let m = read(ct, "--\r\n");
            assert!(m.error.is_some() && m.flags.strict_error(), "{ct}");
        }
    }

    #[test]
    fn a_part_header_line_of_4_kib_is_an_error() {
        let body = format!(
            "--b\r\nContent-Disposition: form-data; name=\"{}\"\r\n\r\nx\r\n--b--\r\n",
            "a".repeat(5000)
        );
        let m = read("multipart/form-data; boundary=b", &body);
        // Reading stops there; the message is the last error, as in ModSecurity.
        assert!(m.flags.error && m.flags.strict_error());
        assert_eq!(
            m.error.as_deref(),
            Some("Multipart: Final boundary missing.")
        );
        assert!(m.parts.is_empty());
    }
}
