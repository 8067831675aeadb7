//! SecLang transformations (`t:`), with ModSecurity semantics, over bytes: attack payloads
//! are not always valid UTF-8, and the rules must see them as sent.

use std::borrow::Cow;

/// A transformation by its SecLang name (case-insensitive), or None if unknown.
pub fn by_name(name: &str) -> Option<Transform> {
    use Transform::*;
    Some(match name.to_ascii_lowercase().as_str() {
        "none" => None_,
        "lowercase" => Lowercase,
        "uppercase" => Uppercase,
        "urldecode" => UrlDecode,
        "urldecodeuni" => UrlDecodeUni,
        "htmlentitydecode" => HtmlEntityDecode,
        "jsdecode" => JsDecode,
        "cssdecode" => CssDecode,
        "cmdline" => CmdLine,
        "compresswhitespace" => CompressWhitespace,
        "removewhitespace" => RemoveWhitespace,
        "removenulls" => RemoveNulls,
        "replacenulls" => ReplaceNulls,
        "removecomments" => RemoveComments,
        "removecommentschar" => RemoveCommentsChar,
        "replacecomments" => ReplaceComments,
        "normalisepath" | "normalizepath" => NormalizePath,
        "normalisepathwin" | "normalizepathwin" => NormalizePathWin,
        "base64decode" => Base64Decode,
        "base64decodeext" => Base64DecodeExt,
        "base64encode" => Base64Encode,
        "hexdecode" => HexDecode,
        "hexencode" => HexEncode,
        "sqlhexdecode" => SqlHexDecode,
        "utf8tounicode" => Utf8ToUnicode,
        "escapeseqdecode" => EscapeSeqDecode,
        "length" => Length,
        "sha1" => Sha1,
        "md5" => Md5,
        "trim" => Trim,
        "trimleft" => TrimLeft,
        "trimright" => TrimRight,
        "urlencode" => UrlEncode,
        "parityeven7bit" => ParityEven7bit,
        "parityodd7bit" => ParityOdd7bit,
        "parityzero7bit" => ParityZero7bit,
        _ => return Option::None,
    })
}

/// A SecLang transformation (`t:`), applied to a target's value before the operator sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transform {
    /// `t:none`: clears the transformations inherited so far.
    None_,
    /// `t:lowercase`: ASCII upper-case letters to lower case.
    Lowercase,
    /// `t:uppercase`: ASCII lower-case letters to upper case.
    Uppercase,
    /// `t:urlDecode`: decodes `%HH` and `+` (a space); invalid encodings are kept as they are.
    UrlDecode,
    /// `t:urlDecodeUni`: `urlDecode`, and `%uHHHH` to one byte (the low byte, full-width
    /// ASCII folded to ASCII).
    UrlDecodeUni,
    /// `t:htmlEntityDecode`: decodes `&#NN;`, `&#xHH;` (to the low byte) and `&quot;`, `&amp;`,
    /// `&lt;`, `&gt;`, `&nbsp;`; the `;` is optional.
    HtmlEntityDecode,
    /// `t:jsDecode`: decodes JavaScript escapes (`\uHHHH`, `\xHH`, octal `\NNN`, `\n` and the
    /// other one-character ones).
    JsDecode,
    /// `t:cssDecode`: decodes CSS escapes (`\` and up to six hex digits, with one whitespace
    /// after them; `\` and a newline is dropped; `\c` is `c`).
    CssDecode,
    /// `t:cmdLine`: normalises a shell command line: drops `\ " ' ^`, folds runs of whitespace,
    /// `,` and `;` to one space, drops a space before `/` or `(`, and lower-cases.
    CmdLine,
    /// `t:compressWhitespace`: each run of whitespace (NBSP included) to one space.
    CompressWhitespace,
    /// `t:removeWhitespace`: removes whitespace, NBSP (0xa0) included.
    RemoveWhitespace,
    /// `t:removeNulls`: removes NUL bytes.
    RemoveNulls,
    /// `t:replaceNulls`: NUL bytes to spaces.
    ReplaceNulls,
    /// `t:removeComments`: removes `/* */` comments (an unterminated one to the end) and `--`
    /// and `#` comments to the end of the line.
    RemoveComments,
    /// `t:removeCommentsChar`: removes the comment markers `/*`, `*/`, `--` and `#`, keeping
    /// what they enclose.
    RemoveCommentsChar,
    /// `t:replaceComments`: each `/* */` comment (an unterminated one to the end) to one space.
    ReplaceComments,
    /// `t:normalizePath` (or `normalisePath`): removes empty and `.` segments and resolves `..`.
    NormalizePath,
    /// `t:normalizePathWin` (or `normalisePathWin`): `normalizePath` after turning `\` into `/`.
    NormalizePathWin,
    /// `t:base64Decode`: decodes base64 up to the first byte outside the alphabet; input that is
    /// not base64 at all passes unchanged.
    Base64Decode,
    /// `t:base64DecodeExt`: decodes base64 leniently, skipping bytes outside the alphabet.
    Base64DecodeExt,
    /// `t:base64Encode`: encodes as base64 (standard alphabet, padded).
    Base64Encode,
    /// `t:hexDecode`: each pair of hex digits to one byte; a pair that is not hex, and an odd
    /// last byte, are dropped.
    HexDecode,
    /// `t:hexEncode`: each byte to two lower-case hex digits.
    HexEncode,
    /// `t:sqlHexDecode`: decodes SQL hex literals (`0xHHHH…`) to bytes, leaving the rest as is.
    SqlHexDecode,
    /// `t:utf8toUnicode`: each multi-byte UTF-8 character to `%uHHHH` (the low 16 bits of its
    /// code point).
    Utf8ToUnicode,
    /// `t:escapeSeqDecode`: decodes ANSI C escapes (`\n`, `\xHH`, octal `\NNN`, …); unknown ones
    /// are kept.
    EscapeSeqDecode,
    /// `t:length`: the length of the value in bytes, as decimal digits.
    Length,
    /// `t:sha1`: the SHA-1 digest of the value (20 raw bytes).
    Sha1,
    /// `t:md5`: the MD5 digest of the value (16 raw bytes).
    Md5,
    /// `t:trim`: removes whitespace at both ends.
    Trim,
    /// `t:trimLeft`: removes whitespace at the start.
    TrimLeft,
    /// `t:trimRight`: removes whitespace at the end.
    TrimRight,
    /// `t:urlEncode`: space to `+`; letters, digits and `*` kept; every other byte `%xx`.
    UrlEncode,
    /// `t:parityEven7bit`: the high bit of each byte set or cleared by its parity
    /// (ModSecurity's computation: over all eight bits, odd → set).
    ParityEven7bit,
    /// `t:parityOdd7bit`: as `parityEven7bit`, the other way round (odd → cleared).
    ParityOdd7bit,
    /// `t:parityZero7bit`: the high bit of each byte cleared.
    ParityZero7bit,
}

// Byte classes: what transformations act on ([`classes`], [`Transform::triggers`]).
const UPPER: u16 = 1;
const PERCENT_PLUS: u16 = 1 << 1;
const AMP: u16 = 1 << 2;
const BACKSLASH: u16 = 1 << 3;
/// Bytes over 0x7f other than NBSP (which has its own class).
const HIGH: u16 = 1 << 4;
const NUL: u16 = 1 << 5;
const SPACE: u16 = 1 << 6;
const NBSP: u16 = 1 << 7;
const SLASH: u16 = 1 << 8;
const DOT: u16 = 1 << 9;
const CMD: u16 = 1 << 10;
/// In every value's classes: a transformation that may change any value triggers on it.
const ANY: u16 = 1 << 15;

static CLASS: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = match c {
            b'A'..=b'Z' => UPPER,
            b'%' | b'+' => PERCENT_PLUS,
            b'&' => AMP,
            b'\\' => BACKSLASH,
            0 => NUL,
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => SPACE,
            0xa0 => NBSP,
            0x80..=0xff => HIGH,
            b'/' => SLASH,
            b'.' => DOT,
            b'"' | b'\'' | b'^' | b',' | b';' => CMD,
            _ => 0,
        };
        b += 1;
    }
    t
};

/// The byte classes present in `v`: a chain none of whose [`Transform::triggers`] is
/// among them leaves `v` as it is, which one pass tells instead of one per transformation.
pub fn classes(v: &[u8]) -> u16 {
    v.iter().fold(ANY, |m, b| m | CLASS[usize::from(*b)])
}

fn hexval(c: u8) -> Option<u8> {
    (c as char).to_digit(16).map(|d| d as u8)
}

fn is_space(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// `%uHHHH` / `\uHHHH` to one byte as ModSecurity does without a unicode map: the low
/// byte, with full-width ASCII (U+FF01..U+FF5E) folded to ASCII.
fn unicode_to_byte(cp: u32) -> u8 {
    if (0xff01..=0xff5e).contains(&cp) {
        ((cp & 0xff) + 0x20) as u8
    } else {
        (cp & 0xff) as u8
    }
}

impl Transform {
    /// The byte classes ([`classes`]) without which this transformation returns its input
    /// unchanged (those [`Transform::apply_cow`] looks for); every class when any input may
    /// change.
    pub fn triggers(self) -> u16 {
        use Transform::*;
        match self {
            None_ => 0,
            Lowercase => UPPER,
            UrlDecode | UrlDecodeUni => PERCENT_PLUS,
            HtmlEntityDecode => AMP,
            JsDecode | CssDecode | EscapeSeqDecode => BACKSLASH,
            Utf8ToUnicode => HIGH | NBSP | NUL,
            RemoveNulls | ReplaceNulls => NUL,
            RemoveWhitespace => SPACE | NBSP | HIGH,
            ReplaceComments => SLASH,
            Trim | TrimLeft | TrimRight => SPACE,
            NormalizePath => SLASH | DOT,
            NormalizePathWin => SLASH | DOT | BACKSLASH,
            CmdLine => UPPER | BACKSLASH | CMD | SPACE,
            _ => u16::MAX,
        }
    }

    /// Like [`Transform::apply`], but borrows when the transformation cannot change `v`:
    /// most values in a clean request have nothing to decode, and CRS runs several
    /// transformations on every target of every rule.
    pub fn apply_cow<'a>(self, v: Cow<'a, [u8]>) -> Cow<'a, [u8]> {
        use Transform::*;
        let unchanged = match self {
            None_ => true,
            Lowercase => !v.iter().any(u8::is_ascii_uppercase),
            UrlDecode | UrlDecodeUni => !v.iter().any(|c| matches!(c, b'%' | b'+')),
            HtmlEntityDecode => !v.contains(&b'&'),
            JsDecode | CssDecode | EscapeSeqDecode => !v.contains(&b'\\'),
            // ASCII without NUL is left alone; NULs and high bytes may change.
            Utf8ToUnicode => !v.iter().any(|c| *c == 0 || *c >= 0x80),
            RemoveNulls | ReplaceNulls => !v.contains(&0),
            RemoveWhitespace => !v.iter().any(|c| is_space(*c) || *c == 0xa0 || *c == 0xc2),
            ReplaceComments => !v.windows(2).any(|w| w == b"/*"),
            Trim => {
                !v.first().is_some_and(|c| is_space(*c)) && !v.last().is_some_and(|c| is_space(*c))
            }
            TrimLeft => !v.first().is_some_and(|c| is_space(*c)),
            TrimRight => !v.last().is_some_and(|c| is_space(*c)),
            NormalizePath => path_is_normal(&v),
            NormalizePathWin => !v.contains(&b'\\') && path_is_normal(&v),
            // Nothing to drop, fold or lower-case.
            CmdLine => !v.iter().any(|c| {
                c.is_ascii_uppercase()
                    || matches!(
                        c,
                        b'\\' | b'"' | b'\'' | b'^' | b' ' | b'\t' | b'\n' | b'\r' | b',' | b';'
                    )
            }),
            _ => false,
        };
        if unchanged {
            v
        } else {
            Cow::Owned(self.apply(&v))
        }
    }

    /// The transformed value.
    pub fn apply(self, v: &[u8]) -> Vec<u8> {
        use Transform::*;
        match self {
            None_ => v.to_vec(),
            Lowercase => v.to_ascii_lowercase(),
            Uppercase => v.to_ascii_uppercase(),
            UrlDecode => url_decode(v, false),
            UrlDecodeUni => url_decode(v, true),
            HtmlEntityDecode => html_entity_decode(v),
            JsDecode => js_decode(v),
            CssDecode => css_decode(v),
            CmdLine => cmd_line(v),
            CompressWhitespace => compress_ws(v),
            // ModSecurity drops NBSP (0xa0) and every 0xc2 byte (the lead of NBSP in UTF-8).
            RemoveWhitespace => v
                .iter()
                .copied()
                .filter(|c| !is_space(*c) && *c != 0xa0 && *c != 0xc2)
                .collect(),
            RemoveNulls => v.iter().copied().filter(|c| *c != 0).collect(),
            ReplaceNulls => v.iter().map(|c| if *c == 0 { b' ' } else { *c }).collect(),
            RemoveComments => remove_comments(v),
            RemoveCommentsChar => remove_comment_chars(v),
            ReplaceComments => replace_comments(v),
            NormalizePath => normalize_path(v, false),
            NormalizePathWin => normalize_path(v, true),
            Base64Decode => base64_decode(v, false),
            Base64DecodeExt => base64_decode(v, true),
            Base64Encode => {
                use base64::Engine;
                base64::engine::general_purpose::STANDARD
                    .encode(v)
                    .into_bytes()
            }
            HexDecode => hex_decode(v),
            HexEncode => v
                .iter()
                .flat_map(|b| format!("{b:02x}").into_bytes())
                .collect(),
            SqlHexDecode => sql_hex_decode(v),
            Utf8ToUnicode => utf8_to_unicode(v),
            EscapeSeqDecode => escape_seq_decode(v),
            Length => v.len().to_string().into_bytes(),
            Sha1 => {
                use sha1::Digest;
                sha1::Sha1::digest(v).to_vec()
            }
            Md5 => {
                use md5::Digest;
                md5::Md5::digest(v).to_vec()
            }
            Trim => trim(v, true, true),
            TrimLeft => trim(v, true, false),
            TrimRight => trim(v, false, true),
            UrlEncode => url_encode(v),
            ParityEven7bit => v.iter().map(|c| parity(*c, true)).collect(),
            ParityOdd7bit => v.iter().map(|c| parity(*c, false)).collect(),
            ParityZero7bit => v.iter().map(|c| c & 0x7f).collect(),
        }
    }
}

fn url_encode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 3);
    for &c in v {
        if c == b' ' {
            out.push(b'+');
        } else if c == b'*' || c.is_ascii_alphanumeric() {
            out.push(c);
        } else {
            out.extend_from_slice(format!("%{c:02x}").as_bytes());
        }
    }
    out
}

/// ModSecurity's parity transformations: the parity of all eight bits decides the high bit.
fn parity(c: u8, even: bool) -> u8 {
    let odd = c.count_ones() % 2 == 1;
    if odd == even {
        c | 0x80
    } else {
        c & 0x7f
    }
}

fn url_decode(v: &[u8], uni: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        match v[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                if uni && i + 5 < v.len() && matches!(v.get(i + 1), Some(b'u' | b'U')) {
                    let hex: Option<Vec<u8>> = v[i + 2..(i + 6).min(v.len())]
                        .iter()
                        .map(|c| hexval(*c))
                        .collect();
                    if let Some(h) = hex.filter(|h| h.len() == 4) {
                        let cp = h.iter().fold(0u32, |a, d| a * 16 + u32::from(*d));
                        out.push(unicode_to_byte(cp));
                        i += 6;
                        continue;
                    }
                }
                match (
                    v.get(i + 1).and_then(|c| hexval(*c)),
                    v.get(i + 2).and_then(|c| hexval(*c)),
                ) {
                    (Some(a), Some(b)) => {
                        out.push(a * 16 + b);
                        i += 3;
                    }
                    // Invalid encodings are kept as they are.
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

fn html_entity_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] == b'&' {
            let rest = &v[i + 1..];
            if let Some(r) = rest.strip_prefix(b"#") {
                let (hex, digits) = match r.first() {
                    Some(b'x' | b'X') => (true, &r[1..]),
                    _ => (false, r),
                };
                let n = digits
                    .iter()
                    .take_while(|c| {
                        if hex {
                            c.is_ascii_hexdigit()
                        } else {
                            c.is_ascii_digit()
                        }
                    })
                    .count();
                if n > 0 {
                    let text = std::str::from_utf8(&digits[..n]).unwrap_or("0");
                    let val = u32::from_str_radix(text, if hex { 16 } else { 10 }).unwrap_or(0);
                    out.push((val & 0xff) as u8);
                    let mut used = 1 + usize::from(hex) + n;
                    if digits.get(n) == Some(&b';') {
                        used += 1;
                    }
                    i += 1 + used;
                    continue;
                }
            } else {
                let named: [(&[u8], u8); 5] = [
                    (b"quot", b'"'),
                    (b"amp", b'&'),
                    (b"lt", b'<'),
                    (b"gt", b'>'),
                    (b"nbsp", 0xa0),
                ];
                if let Some((name, ch)) = named
                    .iter()
                    .find(|(n, _)| rest.len() >= n.len() && rest[..n.len()].eq_ignore_ascii_case(n))
                {
                    out.push(*ch);
                    let mut used = name.len();
                    if rest.get(used) == Some(&b';') {
                        used += 1;
                    }
                    i += 1 + used;
                    continue;
                }
            }
        }
        out.push(v[i]);
        i += 1;
    }
    out
}

fn js_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 >= v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let c = v[i + 1];
        let hex_n = |start: usize, n: usize| -> Option<u32> {
            let s = v.get(start..start + n)?;
            s.iter()
                .try_fold(0u32, |a, c| hexval(*c).map(|d| a * 16 + u32::from(d)))
        };
        match c {
            b'u' => {
                if let Some(cp) = hex_n(i + 2, 4) {
                    out.push(unicode_to_byte(cp));
                    i += 6;
                    continue;
                }
                out.push(b'u');
                i += 2;
            }
            b'x' => {
                if let Some(b) = hex_n(i + 2, 2) {
                    out.push(b as u8);
                    i += 4;
                    continue;
                }
                out.push(b'x');
                i += 2;
            }
            b'0'..=b'7' => {
                let n = v[i + 1..]
                    .iter()
                    .take(3)
                    .take_while(|c| (b'0'..=b'7').contains(c))
                    .count();
                let val = v[i + 1..i + 1 + n]
                    .iter()
                    .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
                out.push((val & 0xff) as u8);
                i += 1 + n;
            }
            b'a' => {
                out.push(7);
                i += 2;
            }
            b'b' => {
                out.push(8);
                i += 2;
            }
            b'f' => {
                out.push(12);
                i += 2;
            }
            b'n' => {
                out.push(b'\n');
                i += 2;
            }
            b'r' => {
                out.push(b'\r');
                i += 2;
            }
            b't' => {
                out.push(b'\t');
                i += 2;
            }
            b'v' => {
                out.push(11);
                i += 2;
            }
            other => {
                out.push(other);
                i += 2;
            }
        }
    }
    out
}

fn css_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' {
            out.push(v[i]);
            i += 1;
            continue;
        }
        if i + 1 >= v.len() {
            // A trailing backslash is dropped.
            i += 1;
            continue;
        }
        let n = v[i + 1..]
            .iter()
            .take(6)
            .take_while(|c| c.is_ascii_hexdigit())
            .count();
        if n > 0 {
            let cp = v[i + 1..i + 1 + n]
                .iter()
                .fold(0u32, |a, c| a * 16 + u32::from(hexval(*c).unwrap_or(0)));
            out.push(unicode_to_byte(cp));
            i += 1 + n;
            // One whitespace after a hex escape belongs to it.
            if v.get(i).is_some_and(|c| is_space(*c)) {
                i += 1;
            }
        } else if v[i + 1] == b'\n' {
            i += 2;
        } else {
            out.push(v[i + 1]);
            i += 2;
        }
    }
    out
}

fn cmd_line(v: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(v.len());
    let mut space = false;
    for &c in v {
        match c {
            b'\\' | b'"' | b'\'' | b'^' => {}
            // ModSecurity's set: vertical tab and form feed are ordinary bytes here.
            b' ' | b'\t' | b'\n' | b'\r' | b',' | b';' => {
                if !space {
                    out.push(b' ');
                    space = true;
                }
            }
            b'/' | b'(' => {
                if space {
                    out.pop();
                }
                space = false;
                out.push(c);
            }
            c => {
                space = false;
                out.push(c.to_ascii_lowercase());
            }
        }
    }
    out
}

fn compress_ws(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut in_ws = false;
    for &c in v {
        // ModSecurity's compressWhitespace folds only ASCII whitespace, not NBSP.
        if is_space(c) {
            if !in_ws {
                out.push(b' ');
            }
            in_ws = true;
        } else {
            out.push(c);
            in_ws = false;
        }
    }
    out
}

fn replace_comments(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i..].starts_with(b"/*") {
            match v[i + 2..].windows(2).position(|w| w == b"*/") {
                Some(p) => i += 2 + p + 2,
                None => i = v.len(),
            }
            out.push(b' ');
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// ModSecurity's `removeComments`: `/* */` and `<!-- -->` blocks go (the byte right after a
/// block's end is kept whatever it is; an unterminated block becomes one space), and `--`
/// or `#` ends the value there.
fn remove_comments(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    let mut in_comment = false;
    while i < v.len() {
        let rest = &v[i..];
        if !in_comment {
            if rest.starts_with(b"/*") {
                in_comment = true;
                i += 2;
            } else if rest.starts_with(b"<!--") {
                in_comment = true;
                i += 4;
            } else if rest.starts_with(b"--") || rest[0] == b'#' {
                break;
            } else {
                out.push(v[i]);
                i += 1;
            }
        } else if rest.starts_with(b"*/") || rest.starts_with(b"-->") {
            in_comment = false;
            i += if rest[0] == b'*' { 2 } else { 3 };
            if let Some(&c) = v.get(i) {
                out.push(c);
            }
            i += 1;
        } else {
            i += 1;
        }
    }
    if in_comment {
        out.push(b' ');
    }
    out
}

fn remove_comment_chars(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        // ModSecurity's order: `<!--` and `-->` before a bare `--`.
        let rest = &v[i..];
        if rest.starts_with(b"/*") || rest.starts_with(b"*/") {
            i += 2;
        } else if rest.starts_with(b"<!--") {
            i += 4;
        } else if rest.starts_with(b"-->") {
            i += 3;
        } else if rest.starts_with(b"--") {
            i += 2;
        } else if v[i] == b'#' {
            i += 1;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// `normalizePath` would return the path as it is: no empty (`//`), `.` or `..` segment.
fn path_is_normal(v: &[u8]) -> bool {
    !v.windows(2).any(|w| w == b"//")
        && !v
            .split(|c| *c == b'/')
            .any(|seg| seg == b"." || seg == b"..")
}

fn normalize_path(v: &[u8], win: bool) -> Vec<u8> {
    let v: Vec<u8> = if win {
        v.iter()
            .map(|c| if *c == b'\\' { b'/' } else { *c })
            .collect()
    } else {
        v.to_vec()
    };
    let absolute = v.first() == Some(&b'/');
    let trailing = v.last() == Some(&b'/') && v.len() > 1;
    let mut segs: Vec<&[u8]> = Vec::new();
    for seg in v.split(|c| *c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segs.last().is_some_and(|s| *s != b"..") {
                    segs.pop();
                } else if !absolute {
                    segs.push(seg);
                }
            }
            s => segs.push(s),
        }
    }
    let mut out = Vec::with_capacity(v.len());
    if absolute {
        out.push(b'/');
    }
    out.extend_from_slice(&segs.join(&b'/'));
    if trailing && !out.ends_with(b"/") {
        out.push(b'/');
    }
    out
}

fn base64_decode(v: &[u8], ext: bool) -> Vec<u8> {
    // Input that is not base64 at all is passed through unchanged (rules chain base64Decode
    // after other decoders and still expect to see plain-text payloads).
    if !ext
        && v.iter().any(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'=' | b'\r' | b'\n'))
        })
    {
        return v.to_vec();
    }
    // One pass, as ModSecurity's decoder: `=` is skipped wherever it is; base64Decode stops
    // at the first other byte outside the alphabet (a line break), base64DecodeExt skips
    // it. Whole quads give three bytes; a final two or three characters give one or two
    // (their leftover bits ignored); a single one gives nothing.
    let mut out = Vec::with_capacity(v.len() / 4 * 3 + 2);
    let (mut acc, mut n) = (0u32, 0u8);
    for &c in v {
        let x = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => continue,
            _ if ext => continue,
            _ => break,
        };
        acc = acc << 6 | u32::from(x);
        n += 1;
        if n == 4 {
            out.extend_from_slice(&[(acc >> 16) as u8, (acc >> 8) as u8, acc as u8]);
            (acc, n) = (0, 0);
        }
    }
    match n {
        2 => out.push((acc >> 4) as u8),
        3 => out.extend_from_slice(&[(acc >> 10) as u8, (acc >> 2) as u8]),
        _ => {}
    }
    out
}

fn hex_decode(v: &[u8]) -> Vec<u8> {
    v.chunks(2)
        .filter_map(|p| match p {
            [a, b] => Some(hexval(*a)? * 16 + hexval(*b)?),
            _ => None,
        })
        .collect()
}

fn sql_hex_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if (v[i..].starts_with(b"0x") || v[i..].starts_with(b"0X"))
            && v.get(i + 2).is_some_and(|c| c.is_ascii_hexdigit())
            && v.get(i + 3).is_some_and(|c| c.is_ascii_hexdigit())
        {
            i += 2;
            while i + 1 < v.len() && v[i].is_ascii_hexdigit() && v[i + 1].is_ascii_hexdigit() {
                out.push(hexval(v[i]).unwrap_or(0) * 16 + hexval(v[i + 1]).unwrap_or(0));
                i += 2;
            }
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    out
}

/// ModSecurity's `utf8toUnicode`, quirks included, because CRS rules are written against
/// what it leaves: a well-formed 2-, 3- or 4-byte sequence becomes `%uXXXX` (lower-case
/// hex, at least four digits, five above U+FFFF), followed by its lead byte again when it
/// is overlong or a surrogate; a lead byte whose continuation bytes are missing or wrong is
/// dropped and what follows it is read afresh; NUL bytes are dropped; a lead byte F5–F7 is
/// kept and still decoded; stray continuation bytes and F8–FF are kept.
fn utf8_to_unicode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let cont = |i: usize| v.get(i).is_some_and(|b| b & 0xc0 == 0x80);
    let mut i = 0;
    while i < v.len() {
        let c = v[i];
        let len = match c {
            0 => {
                i += 1;
                continue;
            }
            0x01..=0x7f => {
                out.push(c);
                i += 1;
                continue;
            }
            _ if c & 0xe0 == 0xc0 => 2,
            _ if c & 0xf0 == 0xe0 => 3,
            _ if c & 0xf8 == 0xf0 => 4,
            _ => {
                out.push(c);
                i += 1;
                continue;
            }
        };
        if len == 4 && c >= 0xf5 {
            out.push(c);
        }
        if !(1..len).all(|k| cont(i + k)) {
            i += 1;
            continue;
        }
        let lead_bits = match len {
            2 => c & 0x1f,
            3 => c & 0x0f,
            _ => c & 0x07,
        };
        let d = v[i + 1..i + len]
            .iter()
            .fold(u32::from(lead_bits), |d, b| (d << 6) | u32::from(b & 0x3f));
        // Into the output directly: no string per character.
        let _ = std::io::Write::write_fmt(&mut out, format_args!("%u{d:04x}"));
        let overlong = match len {
            2 => d < 0x80,
            3 => d < 0x800,
            _ => d < 0x10000,
        };
        if (0xd800..=0xdfff).contains(&d) {
            out.push(c);
        }
        if overlong {
            out.push(c);
        }
        i += len;
    }
    out
}

fn escape_seq_decode(v: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        if v[i] != b'\\' || i + 1 >= v.len() {
            out.push(v[i]);
            i += 1;
            continue;
        }
        let c = v[i + 1];
        let simple = match c {
            b'a' => Some(7),
            b'b' => Some(8),
            b'f' => Some(12),
            b'n' => Some(b'\n'),
            b'r' => Some(b'\r'),
            b't' => Some(b'\t'),
            b'v' => Some(11),
            b'\\' | b'?' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            i += 2;
        } else if (c == b'x' || c == b'X')
            && v.get(i + 2).is_some_and(|x| x.is_ascii_hexdigit())
            && v.get(i + 3).is_some_and(|x| x.is_ascii_hexdigit())
        {
            out.push(hexval(v[i + 2]).unwrap_or(0) * 16 + hexval(v[i + 3]).unwrap_or(0));
            i += 4;
        } else if (b'0'..=b'7').contains(&c) {
            let n = v[i + 1..]
                .iter()
                .take(3)
                .take_while(|c| (b'0'..=b'7').contains(c))
                .count();
            let val = v[i + 1..i + 1 + n]
                .iter()
                .fold(0u32, |a, c| a * 8 + u32::from(c - b'0'));
            out.push((val & 0xff) as u8);
            i += 1 + n;
        } else {
            // Not an escape ModSecurity knows: the backslash goes, the byte stays.
            out.push(c);
            i += 2;
        }
    }
    out
}

fn trim(v: &[u8], left: bool, right: bool) -> Vec<u8> {
    let mut s = 0;
    let mut e = v.len();
    if left {
        while s < e && is_space(v[s]) {
            s += 1;
        }
    }
    if right {
        while e > s && is_space(v[e - 1]) {
            e -= 1;
        }
    }
    v[s..e].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A value holding none of a transformation's trigger classes comes out as it went in
    /// (the engine then skips the whole chain): every transformation, on random values
    /// made of the bytes transformations act on and ordinary ones.
    #[test]
    fn values_without_trigger_classes_are_unchanged() {
        let names = [
            "none",
            "lowercase",
            "uppercase",
            "urldecode",
            "urldecodeuni",
            "htmlentitydecode",
            "jsdecode",
            "cssdecode",
            "cmdline",
            "compresswhitespace",
            "removewhitespace",
            "removenulls",
            "replacenulls",
            "removecomments",
            "removecommentschar",
            "replacecomments",
            "normalisepath",
            "normalisepathwin",
            "base64decode",
            "base64decodeext",
            "base64encode",
            "hexdecode",
            "hexencode",
            "sqlhexdecode",
            "utf8tounicode",
            "escapeseqdecode",
            "length",
            "sha1",
            "md5",
            "trim",
            "trimleft",
            "trimright",
        ];
        let bytes = b"aZ09%+&\\\xc3\xa9\x00 \t\n\xa0/.*\"'^,;-_=:<>()#!";
        let mut next = crate::test_rng(0x9e37_79b9_7f4a_7c15u64);
        for name in names {
            let tr = by_name(name).unwrap();
            let mut skipped = 0;
            for _ in 0..5000 {
                let len = (next() % 12) as usize;
                let v: Vec<u8> = (0..len)
                    .map(|_| bytes[(next() % bytes.len() as u64) as usize])
                    .collect();
                if tr.triggers() & classes(&v) == 0 {
                    skipped += 1;
                    let out = tr.apply_cow(Cow::Borrowed(&v));
                    assert_eq!(out.as_ref(), v.as_slice(), "t:{name} changed {v:?}");
                    assert_eq!(tr.apply(&v), v, "t:{name} changed {v:?}");
                }
            }
            // Transformations that may change anything never skip.
            if tr.triggers() == u16::MAX {
                assert_eq!(skipped, 0, "t:{name}");
            }
        }
    }

    fn t(name: &str, input: &str) -> String {
        String::from_utf8_lossy(&by_name(name).unwrap().apply(input.as_bytes())).into_owned()
    }

    #[test]
    fn borrowing_shortcut_agrees_with_apply() {
        let names = [
            "none",
            "lowercase",
            "urlDecode",
            "urlDecodeUni",
            "htmlEntityDecode",
            "jsDecode",
            "cssDecode",
            "escapeSeqDecode",
            "utf8toUnicode",
            "removeNulls",
            "replaceNulls",
            "removeWhitespace",
            "replaceComments",
            "trim",
            "trimLeft",
            "trimRight",
            "cmdLine",
            "normalizePath",
            "normalizePathWin",
        ];
        let inputs: [&[u8]; 22] = [
            b"",
            b"plain text 123",
            b"MiXeD%41+x",
            b" a\tb&amp;\\ ",
            b"a/*c*/b\0",
            b"\xc3\xa9\xff\x80",
            b"\t\n",
            b"x\x00y",
            b"&#x41;\\x41",
            b"/",
            b"/a/b/",
            b"a/b",
            b"/a/./b",
            b"a/../b",
            b"//x",
            b"..",
            b".",
            b"a\\b\\..\\c",
            b"/a.b/c..d/.e/f.",
            b"abc(def)/x",
            b"ls /etc",
            b"cat;id",
        ];
        for n in names {
            let t = by_name(n).unwrap();
            for i in inputs {
                assert_eq!(
                    t.apply_cow(Cow::Borrowed(i)).as_ref(),
                    t.apply(i).as_slice(),
                    "{n} {i:?}"
                );
            }
        }
    }

    #[test]
    fn decoders() {
        assert_eq!(t("urlDecodeUni", "a%27b+c%u0027%uff1c%zz"), "a'b c'<%zz");
        assert_eq!(t("urlDecode", "%3Cscript%3e"), "<script>");
        assert_eq!(
            t("htmlEntityDecode", "&lt;a&#x3c;&#60;&quot&amp;x"),
            "<a<<\"&x"
        );
        assert_eq!(t("jsDecode", r"\x3cscript\u003e\101\n"), "<script>A\n");
        assert_eq!(t("cssDecode", r"\3c script\>x\"), "<script>x");
        // An escape ModSecurity does not know loses its backslash.
        assert_eq!(t("escapeSeqDecode", r"a\x41\101\n\q"), "aAA\nq");
        assert_eq!(t("base64Decode", "aGVsbG8="), "hello");
        assert_eq!(t("base64Decode", "while(!-0);"), "while(!-0);");
        assert_eq!(t("base64DecodeExt", "aGV.sbG8"), "hello");
        assert_eq!(t("hexDecode", "414243"), "ABC");
        assert_eq!(t("sqlHexDecode", "select 0x414243"), "select ABC");
        assert_eq!(t("utf8toUnicode", "aé"), "a%u00e9");
    }

    #[test]
    fn normalizers() {
        assert_eq!(
            t("cmdLine", "C:\\Windows\\  ,cmd /c \"ech^o\" ;(X)"),
            "c:windows cmd/c echo(x)"
        );
        assert_eq!(t("compressWhitespace", "a \t\n b"), "a b");
        assert_eq!(t("removeWhitespace", " a b\tc "), "abc");
        assert_eq!(t("removeNulls", "a\0b"), "ab");
        assert_eq!(t("replaceNulls", "a\0b"), "a b");
        assert_eq!(t("replaceComments", "sel/*x*/ect /* open"), "sel ect  ");
        // ModSecurity's: `--` (or `#`) ends the value, not the line.
        assert_eq!(t("removeComments", "a/*x*/b -- c\nd # e"), "ab ");
        assert_eq!(t("removeCommentsChar", "a/*b*/c--d#e"), "abcde");
        assert_eq!(
            t("normalizePath", "/a/./b/../../../etc//passwd"),
            "/etc/passwd"
        );
        assert_eq!(t("normalizePathWin", "a\\b\\..\\c\\"), "a/c/");
        assert_eq!(t("length", "abcd"), "4");
        assert_eq!(t("trim", " \ta b \n"), "a b");
        assert_eq!(t("lowercase", "AbC"), "abc");
        assert_eq!(by_name("sha1").unwrap().apply(b"abc").len(), 20);
        assert_eq!(t("hexEncode", "AB"), "4142");
        assert!(by_name("nonsense").is_none());
    }
}
