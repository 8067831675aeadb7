//! The JA4 fingerprint of a TLS client (FoxIO's JA4, TLS-over-TCP variant `t`), computed from
//! the first bytes a client sends: its ClientHello, in TLS records.
//!
//! Rampart peeks at these bytes before the TLS handshake and hands them back to the TLS
//! library, so [`parse`] works on whatever prefix has arrived and says how much more it
//! needs ([`Hello::Incomplete`]). It never panics, copies nothing but a hello split across
//! records, and never looks at, or asks for, more than [`MAX_HELLO`] bytes.
//!
//! JA4 (<https://github.com/FoxIO-LLC/ja4/blob/main/technical_details/JA4.md>):
//! `t` + version + `d`/`i` (SNI or not) + cipher count + extension count + ALPN's first and
//! last characters, `_`, the first 12 hex digits of SHA-256 over the sorted ciphers, `_`,
//! the same over the sorted extensions (less SNI and ALPN) `_` the signature algorithms in
//! their order. GREASE values (RFC 8701) are left out everywhere.

use ring::digest;
use std::borrow::Cow;
use std::fmt::Write as _;

/// The most bytes [`parse`] reads or asks for: one full-size record (2^14 bytes of payload
/// and its 5-byte header). Browsers' hellos, post-quantum key shares and session tickets
/// included, are about 2 KiB, so a hello that is not complete by then is refused
/// ([`Hello::Invalid`]) rather than buffered: that bounds what a connection can make us hold.
pub const MAX_HELLO: usize = 16 * 1024 + 5;

/// What the first bytes of a connection amount to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// More bytes are needed; the value is the total length known to be needed so far (at
    /// least `buf.len() + 1`, at most [`MAX_HELLO`]).
    Incomplete(usize),
    /// Not a TLS ClientHello (or malformed, or larger than [`MAX_HELLO`]); the reason, for logs.
    Invalid(&'static str),
    /// A whole ClientHello (bytes after it are ignored).
    Done(ClientHello),
}

/// What a ClientHello tells about its client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientHello {
    /// The JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
    pub ja4: String,
    /// The first `host_name` of the server_name extension, if there is one in ASCII.
    pub sni: Option<String>,
    /// The ALPN protocols offered, in order (empty without the extension).
    pub alpn: Vec<Vec<u8>>,
    /// The highest non-GREASE version offered: from supported_versions if it names one, else
    /// the hello's legacy_version.
    pub version: u16,
}

/// Reads a TLS ClientHello from the start of `buf` (record layer: `16 03 xx len len` ...).
pub fn parse(buf: &[u8]) -> Hello {
    match handshake_message(buf) {
        Ok(msg) => match client_hello(&msg) {
            Ok(hello) => Hello::Done(hello),
            Err(why) => Hello::Invalid(why),
        },
        Err(stop) => stop,
    }
}

const RECORD_HEADER: usize = 5;
const HANDSHAKE_HEADER: usize = 4;
/// RFC 8446 5.1: a record's plaintext is at most 2^14 bytes.
const MAX_FRAGMENT: usize = 1 << 14;
const CONTENT_HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;

const EXT_SERVER_NAME: u16 = 0x0000;
const EXT_SIGNATURE_ALGORITHMS: u16 = 0x000d;
const EXT_ALPN: u16 = 0x0010;
const EXT_SUPPORTED_VERSIONS: u16 = 0x002b;

/// The ClientHello handshake message (header included), gathered from as many consecutive
/// handshake records as it spans (RFC 8446 5.1 lets a message be fragmented across records;
/// no other record type may come in between). Borrowed when it fits one record.
fn handshake_message(buf: &[u8]) -> Result<Cow<'_, [u8]>, Hello> {
    // Past the cap nothing counts: a hello not done by then needs more than it, so is refused.
    let buf = buf.get(..MAX_HELLO).unwrap_or(buf);
    let mut msg: Cow<'_, [u8]> = Cow::Borrowed(&[]);
    let mut off = 0; // start of the current record
    loop {
        let header = &buf[off..buf.len().min(off + RECORD_HEADER)];
        if header.first().is_some_and(|&t| t != CONTENT_HANDSHAKE) {
            return Err(Hello::Invalid(if off == 0 {
                "not a TLS handshake record"
            } else {
                "a non-handshake record inside the ClientHello"
            }));
        }
        if header.get(1).is_some_and(|&major| major != 3) {
            return Err(Hello::Invalid("not a TLS record version"));
        }
        let remaining = wanted(&msg)? - msg.len();
        if header.len() < RECORD_HEADER {
            // The rest of the message needs at least this header and its bytes.
            return Err(incomplete(off + RECORD_HEADER + remaining));
        }
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_FRAGMENT {
            return Err(Hello::Invalid("bad TLS record length"));
        }
        let start = off + RECORD_HEADER;
        let end = start + len;
        let have = &buf[start..buf.len().min(end)];
        if msg.is_empty() {
            msg = Cow::Borrowed(have);
        } else {
            // A copy only for a fragmented hello, and only of bytes that have arrived.
            msg.to_mut().extend_from_slice(have);
        }
        let want = wanted(&msg)?;
        if msg.len() >= want {
            return Ok(match msg {
                Cow::Borrowed(b) => Cow::Borrowed(&b[..want]),
                Cow::Owned(mut v) => {
                    v.truncate(want);
                    Cow::Owned(v)
                }
            });
        }
        let remaining = want - msg.len();
        let arrived = start + have.len();
        if arrived < end {
            // The message goes on in this record, and past it in a next one if longer.
            let left = end - arrived;
            let needed = if remaining <= left {
                arrived + remaining
            } else {
                end + RECORD_HEADER + remaining - left
            };
            return Err(incomplete(needed));
        }
        off = end; // this record is all in: on to the next
    }
}

/// How long the handshake message is, header included, as far as `msg` tells: its declared
/// length once its header is in, else just the header's 4 bytes.
fn wanted(msg: &[u8]) -> Result<usize, Hello> {
    if msg.first().is_some_and(|&t| t != CLIENT_HELLO) {
        return Err(Hello::Invalid("not a ClientHello"));
    }
    let Some(h) = msg.get(..HANDSHAKE_HEADER) else {
        return Ok(HANDSHAKE_HEADER);
    };
    let len = HANDSHAKE_HEADER
        + ((usize::from(h[1]) << 16) | (usize::from(h[2]) << 8) | usize::from(h[3]));
    // Even in a single record it could not end within MAX_HELLO: refuse it now, before
    // waiting for (or allocating) any of it.
    if RECORD_HEADER + len > MAX_HELLO {
        return Err(Hello::Invalid("ClientHello larger than MAX_HELLO"));
    }
    Ok(len)
}

fn incomplete(needed: usize) -> Hello {
    if needed > MAX_HELLO {
        Hello::Invalid("ClientHello larger than MAX_HELLO")
    } else {
        Hello::Incomplete(needed)
    }
}

/// GREASE (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa, sent at random to keep peers tolerant of
/// unknown values; JA4 ignores them so that one client keeps one fingerprint.
fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && v >> 8 == v & 0xff
}

/// A cursor over bytes whose every read is bounds-checked (`why` is the error if short).
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn bytes(&mut self, n: usize, why: &'static str) -> Result<&'a [u8], &'static str> {
        if n > self.0.len() {
            return Err(why);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self, why: &'static str) -> Result<u8, &'static str> {
        Ok(self.bytes(1, why)?[0])
    }

    fn u16(&mut self, why: &'static str) -> Result<u16, &'static str> {
        let b = self.bytes(2, why)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector with a one-byte length.
    fn vec8(&mut self, why: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u8(why)?;
        self.bytes(usize::from(n), why)
    }

    /// A vector with a two-byte length.
    fn vec16(&mut self, why: &'static str) -> Result<&'a [u8], &'static str> {
        let n = self.u16(why)?;
        self.bytes(usize::from(n), why)
    }

    /// The whole of `data` as one length-prefixed vector, nothing after it.
    fn only<T>(
        data: &'a [u8],
        why: &'static str,
        read: impl FnOnce(&mut Self, &'static str) -> Result<T, &'static str>,
    ) -> Result<T, &'static str> {
        let mut r = Reader(data);
        let v = read(&mut r, why)?;
        if r.0.is_empty() {
            Ok(v)
        } else {
            Err(why)
        }
    }

    fn u16s(data: &'a [u8], why: &'static str) -> Result<Vec<u16>, &'static str> {
        if !data.len().is_multiple_of(2) {
            return Err(why);
        }
        Ok(data
            .chunks_exact(2)
            .map(|c| u16::from_be_bytes([c[0], c[1]]))
            .collect())
    }
}

/// What JA4 and [`ClientHello`] are made of, as the hello has them (GREASE included).
struct Fields {
    /// The highest non-GREASE supported_versions entry, else legacy_version.
    version: u16,
    ciphers: Vec<u16>,
    /// Extension types in the hello's order.
    exts: Vec<u16>,
    sni: Option<String>,
    alpn: Vec<Vec<u8>>,
    sig_algs: Vec<u16>,
}

/// Parses the ClientHello message and fingerprints it.
fn client_hello(msg: &[u8]) -> Result<ClientHello, &'static str> {
    let f = fields(msg)?;
    Ok(ClientHello {
        ja4: f.ja4(),
        sni: f.sni,
        alpn: f.alpn,
        version: f.version,
    })
}

/// Parses the ClientHello message, header included (RFC 8446 4.1.2, RFC 5246 7.4.1.2).
fn fields(msg: &[u8]) -> Result<Fields, &'static str> {
    const SHORT: &str = "truncated ClientHello";
    let mut r = Reader(msg.get(HANDSHAKE_HEADER..).ok_or(SHORT)?);
    let legacy_version = r.u16(SHORT)?;
    r.bytes(32, SHORT)?; // random
    if r.vec8(SHORT)?.len() > 32 {
        return Err("session id longer than 32 bytes");
    }
    let ciphers = Reader::u16s(r.vec16(SHORT)?, "odd cipher suites length")?;
    r.vec8(SHORT)?; // compression methods

    let mut exts = Vec::new();
    let mut sni = None;
    let mut alpn = None;
    let mut sig_algs = Vec::new();
    let mut versions = Vec::new();
    // TLS 1.2 and older may end here, without extensions.
    if !r.0.is_empty() {
        let block = Reader::only(r.0, "bad extensions length", Reader::vec16)?;
        let mut e = Reader(block);
        while !e.0.is_empty() {
            const BAD: &str = "truncated extension";
            let typ = e.u16(BAD)?;
            let data = e.vec16(BAD)?;
            exts.push(typ);
            // A repeated extension is invalid TLS but still fingerprinted, as FoxIO's
            // Wireshark plugin does: the first SNI and ALPN count, lists add up.
            match typ {
                EXT_SERVER_NAME if sni.is_none() => sni = server_name(data)?,
                EXT_ALPN if alpn.is_none() => alpn = Some(protocols(data)?),
                EXT_SIGNATURE_ALGORITHMS => sig_algs.extend(Reader::u16s(
                    Reader::only(data, "bad signature_algorithms", Reader::vec16)?,
                    "bad signature_algorithms",
                )?),
                EXT_SUPPORTED_VERSIONS => versions.extend(Reader::u16s(
                    Reader::only(data, "bad supported_versions", Reader::vec8)?,
                    "bad supported_versions",
                )?),
                _ => {}
            }
        }
    }
    let version = versions
        .into_iter()
        .filter(|&v| !is_grease(v))
        .max()
        .unwrap_or(legacy_version);
    Ok(Fields {
        version,
        ciphers,
        exts,
        sni,
        alpn: alpn.unwrap_or_default(),
        sig_algs,
    })
}

/// The first host_name of a server_name extension (RFC 6066 3), if it is ASCII.
fn server_name(data: &[u8]) -> Result<Option<String>, &'static str> {
    const BAD: &str = "bad server_name";
    if data.is_empty() {
        return Ok(None); // the server's form; harmless from a client
    }
    let mut list = Reader(Reader::only(data, BAD, Reader::vec16)?);
    let mut host = None;
    while !list.0.is_empty() {
        let typ = list.u8(BAD)?;
        let name = list.vec16(BAD)?;
        if typ == 0 && host.is_none() && name.is_ascii() {
            host = std::str::from_utf8(name).ok().map(str::to_owned);
        }
    }
    Ok(host)
}

/// The protocols of an ALPN extension (RFC 7301 3.1). Empty names are let through: JA4
/// says what to print for them.
fn protocols(data: &[u8]) -> Result<Vec<Vec<u8>>, &'static str> {
    const BAD: &str = "bad ALPN";
    let mut list = Reader(Reader::only(data, BAD, Reader::vec16)?);
    let mut out = Vec::new();
    while !list.0.is_empty() {
        out.push(list.vec8(BAD)?.to_vec());
    }
    Ok(out)
}

impl Fields {
    /// The JA4 string.
    fn ja4(&self) -> String {
        let (a, b, c) = self.ja4_raw();
        format!("{a}_{}_{}", hash12(&b), hash12(&c))
    }

    /// JA4's three parts before hashing (FoxIO's "JA4_r"): the `a` part, the sorted
    /// ciphers, and the sorted extensions `_` the signature algorithms.
    fn ja4_raw(&self) -> (String, String, String) {
        let not_grease = |v: &&u16| !is_grease(**v);
        let mut ciphers: Vec<u16> = self.ciphers.iter().filter(not_grease).copied().collect();
        let mut exts: Vec<u16> = self.exts.iter().filter(not_grease).copied().collect();
        let sig_algs: Vec<u16> = self.sig_algs.iter().filter(not_grease).copied().collect();

        let a = format!(
            "t{}{}{:02}{:02}{}",
            version_code(self.version),
            if exts.contains(&EXT_SERVER_NAME) {
                'd'
            } else {
                'i'
            },
            ciphers.len().min(99),
            exts.len().min(99), // SNI and ALPN counted
            alpn_code(self.alpn.first().map(Vec::as_slice))
        );
        ciphers.sort_unstable();
        // SNI and ALPN are in `a` already; leaving them out gives a client one `c` whether
        // it goes to a name or an address, whatever protocols it asks for.
        exts.retain(|&v| v != EXT_SERVER_NAME && v != EXT_ALPN);
        exts.sort_unstable();
        let mut c = hex_list(&exts);
        // No extensions: `c` stays empty (hashed as zeros), as the spec says. No signature
        // algorithms: no trailing `_`.
        if !exts.is_empty() && !sig_algs.is_empty() {
            c.push('_');
            c.push_str(&hex_list(&sig_algs)); // in the client's order: not sorted
        }
        (a, hex_list(&ciphers), c)
    }
}

/// JA4's two-character version.
fn version_code(v: u16) -> &'static str {
    match v {
        0x0304 => "13",
        0x0303 => "12",
        0x0302 => "11",
        0x0301 => "10",
        0x0300 => "s3",
        0x0002 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

/// The first and last characters of the first ALPN value; "00" without one. If either end
/// is not an ASCII letter or digit, the first hex digit of the first byte and the last hex
/// digit of the last byte instead, so the fingerprint stays printable.
fn alpn_code(first: Option<&[u8]>) -> String {
    let Some((&head, rest)) = first.and_then(<[u8]>::split_first) else {
        return "00".to_owned();
    };
    let tail = rest.last().copied().unwrap_or(head); // one byte is both first and last
    if head.is_ascii_alphanumeric() && tail.is_ascii_alphanumeric() {
        [char::from(head), char::from(tail)].iter().collect()
    } else {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        [HEX[usize::from(head >> 4)], HEX[usize::from(tail & 0xf)]]
            .iter()
            .map(|&b| char::from(b))
            .collect()
    }
}

fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let _ = write!(s, "{v:04x}");
    }
    s
}

/// The first 12 hex digits of SHA-256; twelve zeros for an empty list, so that "none" reads
/// as such rather than as the hash of nothing.
fn hash12(list: &str) -> String {
    if list.is_empty() {
        return "000000000000".to_owned();
    }
    let d = digest::digest(&digest::SHA256, list.as_bytes());
    let mut s = String::with_capacity(12);
    for b in &d.as_ref()[..6] {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real ClientHellos (record header included) cut from the packet captures in FoxIO's
    // repository, github.com/FoxIO-LLC/ja4, pcap/ (snapshot of 2026-06-19, commit 0e54bc83).
    // The expected JA4 and JA4_r values are that repository's own outputs for the same
    // streams: python/test/testdata/<capture>.json and rust/ja4/src/snapshots/, which agree
    // (only the Rust one has https-connect's, and no JA4_r).
    // The bytes are the start of the client's TCP payload in that stream, up to the end of
    // the first record (which holds the whole hello). All 151 TCP ClientHellos in those
    // captures were once checked likewise against the Rust snapshots: 150 equal, the other
    // being NON_ASCII_ALPN below.
    /// tls-sni.pcapng, client port 50114: 517 bytes
    const CHROME: &str = concat!(
        "1603010200010001fc030337780577bb74609f897a5720ee9dfe9dc63ee7287f",
        "2d16ffca3e95d677f57b3e20e292b5a6a27d213143c1008cfe389b509f735e2a",
        "559c09576f4dda6db133282a00206a6a130113021303c02bc02fc02cc030cca9",
        "cca8c013c014009c009d002f003501000193fafa0000001b0003020002000000",
        "1800160000136163636f756e74732e676f6f676c652e636f6d0033002b00298a",
        "8a000100001d0020ccb23a9fd50719f384d17df738cb5939eb3a23fe9654dfae",
        "895fc5120b022e660010000e000c02683208687474702f312e31446900050003",
        "02683200170000002d00020101000d0012001004030804040105030805050108",
        "0606010005000501000000000023000000120000002b000706caca03040303ff",
        "01000100000b00020100000a000a00088a8a001d001700184a4a000100001500",
        "c400000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000",
    );
    /// tls12.pcap, client port 36372: 517 bytes
    const FIREFOX: &str = concat!(
        "1603010200010001fc0303ecb2691addb2bf6c599c7aaae23de5f42561cc04eb",
        "41029acc6fc050a16ac1d22046f8617b580ac9358e2aa44e306d52466bcc989c",
        "87c8ca64309f5faf50ba7b4d0022130113031302c02bc02fcca9cca8c02cc030",
        "c00ac009c013c014009c009d002f00350100019100000021001f00001c636f6e",
        "74696c652e73657276696365732e6d6f7a696c6c612e636f6d00170000ff0100",
        "0100000a000e000c001d00170018001901000101000b00020100002300000010",
        "000e000c02683208687474702f312e310005000501000000000022000a000804",
        "030503060302030033006b0069001d00208909858fbeb6ed2f1248ba5b9e2978",
        "bead0e840110192c61daed0096798b184400170041044d183d91f5eed35791fa",
        "982464e3b0214aaa5f5d1b78616d9b9fbebc22d11f535b2f94c686143136aa79",
        "5e6e5a875d6c08064ad5b76d44caad766e2483012748002b0005040304030300",
        "0d0018001604030503060308040805080604010501060102030201002d000201",
        "01001c000240010015007a000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000",
    );
    /// tls-alpn-h2.pcap, client port 64034: 237 bytes
    const CLOUDFLARE_TLS12: &str = concat!(
        "16030100e8010000e40303858226c04fbaeddef4246093b4cfdab38f9dcfef14",
        "5360e417686575cac49c7000005cc030c02cc028c024c014c00a009f006b0039",
        "cca9cca8ccaaff8500c400880081009d003d003500c00084c02fc02bc027c023",
        "c013c009009e0067003300be0045009c003c002f00ba0041c011c00700050004",
        "c012c0080016000a00ff0100005f0000001700150000127777772e636c6f7564",
        "666c6172652e636f6d000b00020100000a00080006001d00170018000d001c00",
        "1a06010603efef0501050304010403eeeeeded03010303020102030010000e00",
        "0c02683208687474702f312e31",
    );
    /// latest.pcapng, client port 52937: 189 bytes
    const NO_ALPN: &str = concat!(
        "16030300b8010000b4030364960ddb84e92e8d5a9be477e2f7112257269dc742",
        "143793732813c25ec65af0000026c02cc02bc030c02fc024c023c028c027c00a",
        "c009c014c013009d009c003d003c0035002f000a010000650000001b00190000",
        "16646973636f766572792e63656d2e636c6f75642e7573000500050100000000",
        "000a00080006001d00170018000b00020100000d001a00180804080508060401",
        "050102010403050302030202060106030023000000170000ff01000100",
    );
    /// tls-non-ascii-alpn.pcapng, client port 50112: 517 bytes
    const NON_ASCII_ALPN: &str = concat!(
        "1603010200010001fc03030f9e38acb9a54a7c6e00e29a70ac2feee180ff76d7",
        "f25dca84932a66a42d1e5a20bc58b92f865e6b9aa4a6371cadcb0afe1da1c0f7",
        "05209a11d52357f56d5dd9620020aaaa130113021303c02bc02fc02cc030cca9",
        "cca8c013c014009c009d002f0035010001939a9a0000ff010001000033002b00",
        "290a0a000100001d0020cf55af2603e92f59eb321779706a18fa6b96b16c1640",
        "4c2264ed687a59401878002d0002010100050005010000000044690005000302",
        "6832000d00120010040308040401050308050501080606010010000e000c02ba",
        "ad08687474702f312e3100230000001b0003020002002b0007060a0a03040303",
        "00000022002000001d636c69656e7473657276696365732e676f6f676c656170",
        "69732e636f6d00120000000a000a00080a0a001d0017001800170000000b0002",
        "01006a6a000100001500ba000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000",
    );
    /// https-connect.pcap, client port 54723: 289 bytes
    const NO_SNI: &str = concat!(
        "160301011c010001180303a3073873f429ef8ad6c13fa035798a93be55208aec",
        "5ffe09c5736f4f32c15e4b0000acc030c02cc028c024c014c00a00a500a300a1",
        "009f006b006a0069006800390038003700360088008700860085c032c02ec02a",
        "c026c00fc005009d003d00350084c02fc02bc027c023c013c00900a400a200a0",
        "009e00670040003f003e0033003200310030009a009900980097004500440043",
        "0042c031c02dc029c025c00ec004009c003c002f00960041c012c00800160013",
        "0010000dc00dc003000a0007c011c007c00cc0020005000400ff01000043000b",
        "000403000102000a000a0008001700190018001600230000000d0020001e0601",
        "06020603050105020503040104020403030103020303020102020203000f0001",
        "01",
    );
    /// https3-301-get.pcap, client port 62599: 119 bytes
    const OLD_TLS10_SNI_ONLY: &str = concat!(
        "16030100720100006e030152937a55b696cc98ae7b08ec10e765c98aefa82db3",
        "081771f8627617b967980800002e00390038003500160013000a00330032002f",
        "009a00990096000500040015001200090014001100080006000300ff01000017",
        "00000013001100000e7777772e6769746875622e636f6d",
    );

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn done(buf: &[u8]) -> ClientHello {
        match parse(buf) {
            Hello::Done(h) => h,
            other => panic!("expected a ClientHello, got {other:?}"),
        }
    }

    /// The raw (unhashed) JA4 of a one-record hello.
    fn raw(buf: &[u8]) -> String {
        let (a, b, c) = fields(&buf[5..]).unwrap().ja4_raw();
        format!("{a}_{b}_{c}")
    }

    struct Fixture {
        bytes: Vec<u8>,
        ja4: &'static str,
        ja4_r: Option<&'static str>,
        sni: Option<&'static str>,
        first_alpn: Option<&'static [u8]>,
        version: u16,
    }

    fn fixtures() -> Vec<Fixture> {
        let f = |bytes: &str, ja4, ja4_r, sni, first_alpn, version| Fixture {
            bytes: hex(bytes),
            ja4,
            ja4_r,
            sni,
            first_alpn,
            version,
        };
        vec![
            f(
                CHROME,
                "t13d1516h2_8daaf6152771_e5627efa2ab1",
                Some("t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"),
                Some("accounts.google.com"),
                Some(&b"h2"[..]),
                0x0304,
            ),
            f(
                FIREFOX,
                "t13d1715h2_5b57614c22b0_3d5424432f57",
                Some("t13d1715h2_002f,0035,009c,009d,1301,1302,1303,c009,c00a,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0015,0017,001c,0022,0023,002b,002d,0033,ff01_0403,0503,0603,0804,0805,0806,0401,0501,0601,0203,0201"),
                Some("contile.services.mozilla.com"),
                Some(&b"h2"[..]),
                0x0304,
            ),
            f(
                CLOUDFLARE_TLS12,
                "t12d4605h2_85626a9a5f7f_aaf95bb78ec9",
                Some("t12d4605h2_0004,0005,000a,0016,002f,0033,0035,0039,003c,003d,0041,0045,0067,006b,0081,0084,0088,009c,009d,009e,009f,00ba,00be,00c0,00c4,00ff,c007,c008,c009,c00a,c011,c012,c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa,ff85_000a,000b,000d_0601,0603,efef,0501,0503,0401,0403,eeee,eded,0301,0303,0201,0203"),
                Some("www.cloudflare.com"),
                Some(&b"h2"[..]),
                0x0303,
            ),
            f(
                NO_ALPN,
                "t12d190800_d83cc789557e_7af1ed941c26",
                Some("t12d190800_000a,002f,0035,003c,003d,009c,009d,c009,c00a,c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030_0005,000a,000b,000d,0017,0023,ff01_0804,0805,0806,0401,0501,0201,0403,0503,0203,0202,0601,0603"),
                Some("discovery.cem.cloud.us"),
                None,
                0x0303,
            ),
                // FoxIO's tools print "99" here, from an older rule for non-alphanumeric ALPN
                // (this capture's first ALPN is 0xba 0xad); the spec now says the first hex
                // digit of the first byte and the last of the last: "bd". The rest of the
                // fingerprint is theirs.
            f(
                NON_ASCII_ALPN,
                "t13d1516bd_8daaf6152771_e5627efa2ab1",
                Some("t13d1516bd_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"),
                Some("clientservices.googleapis.com"),
                Some(&[0xba, 0xad][..]),
                0x0304,
            ),
            // TLS 1.0, SNI its only extension: nothing left to hash, and no "_" before the
            // (absent) signature algorithms.
            f(
                OLD_TLS10_SNI_ONLY,
                "t10d230100_6a57a6f57151_000000000000",
                Some("t10d230100_0003,0004,0005,0006,0008,0009,000a,0011,0012,0013,0014,0015,0016,002f,0032,0033,0035,0038,0039,0096,0099,009a,00ff_"),
                Some("www.github.com"),
                None,
                0x0301,
            ),
            // No SNI: "i".
            f(NO_SNI, "t12i860500_e18388e7f3a3_a1e935682795", None, None, None, 0x0303),
        ]
    }

    #[test]
    fn real_hellos_give_foxio_fingerprints() {
        for f in fixtures() {
            let h = done(&f.bytes);
            assert_eq!(h.ja4, f.ja4);
            if let Some(ja4_r) = f.ja4_r {
                assert_eq!(raw(&f.bytes), ja4_r);
            }
            assert_eq!(h.sni.as_deref(), f.sni);
            assert_eq!(h.alpn.first().map(Vec::as_slice), f.first_alpn);
            assert_eq!(h.version, f.version);
        }
        assert_eq!(
            done(&hex(CHROME)).alpn,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
        // Bytes after the hello (the client's next records) change nothing.
        let mut more = hex(FIREFOX);
        more.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01, 0x17, 0x03, 0x03]);
        assert_eq!(done(&more).ja4, "t13d1715h2_5b57614c22b0_3d5424432f57");
    }

    /// A hello of the given version, ciphers and extensions (none: no extensions block).
    fn build(legacy: u16, ciphers: &[u16], exts: Option<&[(u16, Vec<u8>)]>) -> Vec<u8> {
        let mut body = legacy.to_be_bytes().to_vec();
        body.extend_from_slice(&[7; 32]); // random
        body.push(0); // session id
        body.extend_from_slice(&(ciphers.len() as u16 * 2).to_be_bytes());
        for c in ciphers {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]); // compression: null
        if let Some(exts) = exts {
            let mut block = Vec::new();
            for (typ, data) in exts {
                block.extend_from_slice(&typ.to_be_bytes());
                block.extend_from_slice(&(data.len() as u16).to_be_bytes());
                block.extend_from_slice(data);
            }
            body.extend_from_slice(&(block.len() as u16).to_be_bytes());
            body.extend_from_slice(&block);
        }
        let mut msg = vec![CLIENT_HELLO];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        records(&msg, &[])
    }

    /// Handshake bytes in records, a new one at each of `cuts` (offsets into `msg`).
    fn records(msg: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(msg.len());
        for w in bounds.windows(2) {
            let frag = &msg[w[0]..w[1]];
            out.extend_from_slice(&[0x16, 0x03, 0x01]);
            out.extend_from_slice(&(frag.len() as u16).to_be_bytes());
            out.extend_from_slice(frag);
        }
        out
    }

    fn u16_list(len_bytes: usize, values: &[u16]) -> Vec<u8> {
        let n = values.len() * 2;
        let mut v = n.to_be_bytes()[8 - len_bytes..].to_vec();
        for x in values {
            v.extend_from_slice(&x.to_be_bytes());
        }
        v
    }

    fn sni_ext(host: &str) -> Vec<u8> {
        let mut v = ((host.len() + 3) as u16).to_be_bytes().to_vec();
        v.push(0);
        v.extend_from_slice(&(host.len() as u16).to_be_bytes());
        v.extend_from_slice(host.as_bytes());
        v
    }

    fn alpn_ext(protos: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for p in protos {
            list.push(p.len() as u8);
            list.extend_from_slice(p);
        }
        let mut v = (list.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(&list);
        v
    }

    // The example in FoxIO's technical_details/JA4.md, ciphers and extensions in its order.
    const SPEC_CIPHERS: [u16; 15] = [
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];
    const SPEC_EXTS: [u16; 16] = [
        0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
        0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
    ];
    const SPEC_SIG_ALGS: [u16; 8] = [
        0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
    ];

    fn spec_exts(sig_algs: &[u16]) -> Vec<(u16, Vec<u8>)> {
        SPEC_EXTS
            .iter()
            .map(|&t| {
                let data = match t {
                    EXT_SERVER_NAME => sni_ext("example.com"),
                    EXT_ALPN => alpn_ext(&[b"h2", b"http/1.1"]),
                    EXT_SIGNATURE_ALGORITHMS => u16_list(2, sig_algs),
                    EXT_SUPPORTED_VERSIONS => u16_list(1, &[0x0304, 0x0303])[..].to_vec(),
                    _ => vec![],
                };
                (t, data)
            })
            .collect()
    }

    #[test]
    fn the_spec_example() {
        let buf = build(0x0303, &SPEC_CIPHERS, Some(&spec_exts(&SPEC_SIG_ALGS)));
        assert_eq!(done(&buf).ja4, "t13d1516h2_8daaf6152771_e5627efa2ab1");
        assert_eq!(
            raw(&buf),
            "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
        );
        // No signature algorithms: the list ends without "_" (the spec's 6d807ffa2a79).
        let buf = build(0x0303, &SPEC_CIPHERS, Some(&spec_exts(&[])));
        assert_eq!(done(&buf).ja4, "t13d1516h2_8daaf6152771_6d807ffa2a79");
    }

    #[test]
    fn grease_is_ignored_everywhere() {
        let plain = done(&build(
            0x0303,
            &SPEC_CIPHERS,
            Some(&spec_exts(&SPEC_SIG_ALGS)),
        ));
        let mut ciphers = vec![0x5a5a];
        ciphers.extend_from_slice(&SPEC_CIPHERS);
        ciphers.push(0xfafa);
        let mut sigs = vec![0x0a0a];
        sigs.extend_from_slice(&SPEC_SIG_ALGS);
        let mut exts = vec![(0x1a1a, vec![])];
        for (t, d) in spec_exts(&sigs) {
            let d = if t == EXT_SUPPORTED_VERSIONS {
                u16_list(1, &[0xeaea, 0x0304, 0x0303]) // GREASE above 0x0304
            } else {
                d
            };
            exts.push((t, d));
        }
        exts.push((0xdada, vec![0]));
        let greased = done(&build(0x0303, &ciphers, Some(&exts)));
        assert_eq!(greased, plain);
        assert_eq!(greased.version, 0x0304);
        // Near-GREASE values are not GREASE.
        assert!(is_grease(0x0a0a) && is_grease(0xfafa));
        assert!(!is_grease(0x0a1a) && !is_grease(0xefef) && !is_grease(0x0b0b));
    }

    #[test]
    fn counts_stop_at_99() {
        let ciphers: Vec<u16> = (1..=150).collect();
        let exts: Vec<(u16, Vec<u8>)> = (0x0100..0x0100 + 120).map(|t| (t, vec![])).collect();
        let h = done(&build(0x0303, &ciphers, Some(&exts)));
        assert!(h.ja4.starts_with("t12i999900_"), "{}", h.ja4);
    }

    #[test]
    fn empty_lists_hash_to_zeros() {
        // An old-style hello: no extensions at all, nor any cipher.
        let h = done(&build(0x0301, &[], None));
        assert_eq!(h.ja4, "t10i000000_000000000000_000000000000");
        assert_eq!((h.version, h.sni, h.alpn.len()), (0x0301, None, 0));
        // Only SNI and ALPN: both counted, neither hashed.
        let exts = [
            (EXT_SERVER_NAME, sni_ext("a.example")),
            (EXT_ALPN, alpn_ext(&[b"http/1.1"])),
        ];
        let h = done(&build(0x0303, &[0x002f], Some(&exts)));
        assert_eq!(h.ja4, format!("t12d0102h1_{}_000000000000", hash12("002f")));
        assert_eq!(h.sni.as_deref(), Some("a.example"));
        // An empty extensions block is no extension either.
        let h = done(&build(0x0300, &[0x002f], Some(&[])));
        assert!(h.ja4.starts_with("ts3i0100"), "{}", h.ja4);
    }

    #[test]
    fn alpn_characters() {
        // The spec's examples, and its rules for none, empty and one character.
        for (first, code) in [
            (&b"h2"[..], "h2"),
            (b"http/1.1", "h1"),
            (b"a", "aa"),
            (b"", "00"),
            (&[0xab], "ab"),
            (&[0x20], "20"),
            (&[0xab, 0xcd], "ad"),
            (&[0x20, 0x61], "21"),
            (&[0x30, 0xab], "3b"),
            (&[0x61, 0x20], "60"),
            (&[0x30, 0x31, 0xab, 0xcd], "3d"),
            (&[0x30, 0xab, 0xcd, 0x31], "01"),
        ] {
            assert_eq!(alpn_code(Some(first)), code, "{first:x?}");
        }
        assert_eq!(alpn_code(None), "00");
        // Through a whole hello: only the first value counts; an empty list is "00".
        for (protos, code) in [
            (&[&b"spdy/3"[..], b"h2"][..], "s3"),
            (&[], "00"),
            (&[&b""[..], b"h2"], "00"),
        ] {
            let h = done(&build(0x0303, &[1], Some(&[(EXT_ALPN, alpn_ext(protos))])));
            assert!(h.ja4.starts_with(&format!("t12i0101{code}_")), "{}", h.ja4);
        }
    }

    #[test]
    fn version_codes() {
        for (v, code) in [
            (0x0304, "13"),
            (0x0303, "12"),
            (0x0302, "11"),
            (0x0301, "10"),
            (0x0300, "s3"),
            (0x0002, "s2"),
            (0xfeff, "d1"),
            (0xfefd, "d2"),
            (0xfefc, "d3"),
            (0x0305, "00"),
            (0x7f1c, "00"),
        ] {
            assert_eq!(version_code(v), code);
        }
        // supported_versions wins over legacy_version, even when lower.
        let exts = [(EXT_SUPPORTED_VERSIONS, u16_list(1, &[0x0302]))];
        let h = done(&build(0x0303, &[1], Some(&exts)));
        assert!(h.ja4.starts_with("t11i0101"), "{}", h.ja4);
        // Only GREASE in it: legacy_version.
        let exts = [(EXT_SUPPORTED_VERSIONS, u16_list(1, &[0x3a3a]))];
        assert_eq!(done(&build(0x0303, &[1], Some(&exts))).version, 0x0303);
    }

    /// Every strict prefix asks for more, never more than the whole, and never for what it
    /// already has.
    fn assert_prefixes_incomplete(buf: &[u8], hello_len: usize) {
        for n in 0..hello_len {
            match parse(&buf[..n]) {
                Hello::Incomplete(need) => {
                    assert!(need > n && need <= hello_len, "prefix {n}: asks {need}")
                }
                other => panic!("prefix {n} of {hello_len}: {other:?}"),
            }
        }
    }

    #[test]
    fn every_strict_prefix_is_incomplete() {
        for f in fixtures() {
            assert_prefixes_incomplete(&f.bytes, f.bytes.len());
        }
        let buf = build(0x0301, &[], None);
        assert_prefixes_incomplete(&buf, buf.len());
    }

    /// A tiny deterministic generator (xorshift64*): no dependency for tests.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn a_hello_across_records() {
        for Fixture {
            bytes: buf, ja4, ..
        } in fixtures()
        {
            let msg = &buf[5..];
            // Two records, split at every point.
            for cut in 1..msg.len() {
                let split = records(msg, &[cut]);
                assert_eq!(done(&split).ja4, ja4, "cut at {cut}");
            }
            // Several records at random boundaries, one-byte ones included; and every
            // prefix of such a stream is incomplete.
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ buf.len() as u64);
            for round in 0..40 {
                let mut cuts: Vec<usize> = (0..1 + rng.below(12))
                    .map(|_| 1 + rng.below(msg.len() - 1))
                    .collect();
                if round % 4 == 0 {
                    cuts.extend([1, 2, 3, 4, 5]); // the handshake header in pieces
                }
                cuts.sort_unstable();
                cuts.dedup();
                let split = records(msg, &cuts);
                assert_eq!(done(&split).ja4, ja4, "cuts {cuts:?}");
                if round < 5 {
                    assert_prefixes_incomplete(&split, split.len());
                }
            }
        }
    }

    #[test]
    fn a_hello_read_in_chunks() {
        // As a server would: read what arrives, ask again, until done.
        for Fixture {
            bytes: buf, ja4, ..
        } in fixtures()
        {
            let n = buf.len() - 5;
            let split = records(&buf[5..], &[n / 3, n / 3 + 1, n - 2]);
            let mut rng = Rng(42 + buf.len() as u64);
            for _ in 0..50 {
                let mut have = 0;
                let h = loop {
                    match parse(&split[..have]) {
                        Hello::Done(h) => break h,
                        Hello::Incomplete(need) => {
                            assert!(need > have && need <= split.len());
                            // A read brings anything from 1 byte to more than asked for.
                            have = (have + 1 + rng.below(200)).min(split.len());
                        }
                        Hello::Invalid(why) => panic!("{why} at {have}"),
                    }
                };
                assert_eq!(h.ja4, ja4);
            }
        }
    }

    #[test]
    fn not_a_client_hello() {
        for (buf, why) in [
            (&b"GET / HTTP/1.1\r\n"[..], "not a TLS handshake record"),
            (b"\x80\x2e\x01\x03\x01", "not a TLS handshake record"), // SSLv2-style hello
            (
                b"\x15\x03\x03\x00\x02\x02\x28",
                "not a TLS handshake record",
            ), // an alert
            (b"\x16\x02\x00", "not a TLS record version"),
            (b"\x16\x03\x01\x00\x00", "bad TLS record length"),
            (b"\x16\x03\x01\x40\x01", "bad TLS record length"),
            (b"\x16\x03\x03\x00\x04\x02", "not a ClientHello"), // a ServerHello
        ] {
            assert_eq!(parse(buf), Hello::Invalid(why), "{buf:x?}");
        }
        // Another record type between the fragments.
        let msg = &hex(CHROME)[5..];
        let mut buf = records(&msg[..50], &[]);
        buf.extend_from_slice(&[0x14, 0x03, 0x03, 0x00, 0x01, 0x01]);
        buf.extend_from_slice(&records(&msg[50..], &[]));
        assert_eq!(
            parse(&buf),
            Hello::Invalid("a non-handshake record inside the ClientHello")
        );
        // Malformed inside.
        let mut buf = hex(CHROME);
        buf[5 + 4 + 34] = 33; // session id length
        assert_eq!(
            parse(&buf),
            Hello::Invalid("session id longer than 32 bytes")
        );
        let exts = [(EXT_ALPN, vec![0, 3, 5, b'h', b'2'])];
        assert_eq!(
            parse(&build(0x0303, &[1], Some(&exts))),
            Hello::Invalid("bad ALPN")
        );
    }

    #[test]
    fn the_size_cap() {
        // A declared length past the cap is refused from the first 9 bytes.
        assert_eq!(
            parse(b"\x16\x03\x01\x40\x00\x01\x00\x40\x00"),
            Hello::Invalid("ClientHello larger than MAX_HELLO")
        );
        assert_eq!(
            parse(b"\x16\x03\x01\x40\x00\x01\xff\xff\xff"),
            Hello::Invalid("ClientHello larger than MAX_HELLO")
        );
        // The largest hello that fits: one full record, exactly MAX_HELLO bytes.
        let base = build(0x0303, &[1], Some(&[(0x0015, vec![])])).len();
        let pad = vec![0; MAX_HELLO - base];
        let big = build(0x0303, &[1], Some(&[(0x0015, pad)]));
        assert_eq!(big.len(), MAX_HELLO);
        assert!(matches!(parse(&big), Hello::Done(_)));
        assert_prefixes_incomplete(&big, big.len());
        // The same in two records no longer fits.
        let two = records(&big[5..], &[1000]);
        assert_eq!(
            parse(&two),
            Hello::Invalid("ClientHello larger than MAX_HELLO")
        );
        // Nor does a small hello in tiny records once they add up past the cap.
        let msg = &build(0x0303, &[1], Some(&[(0x0015, vec![0; 3000])]))[5..];
        let cuts: Vec<usize> = (1..msg.len()).collect();
        let tiny = records(msg, &cuts);
        assert!(tiny.len() > MAX_HELLO);
        assert_eq!(
            parse(&tiny),
            Hello::Invalid("ClientHello larger than MAX_HELLO")
        );
        // It is refused before the cap is reached, and from then on.
        let mut refused_from = None;
        for n in (0..tiny.len()).step_by(7) {
            match parse(&tiny[..n]) {
                Hello::Incomplete(need) => {
                    assert!(refused_from.is_none() && need > n && need <= MAX_HELLO)
                }
                Hello::Invalid(_) => _ = refused_from.get_or_insert(n),
                Hello::Done(_) => panic!("done at {n}"),
            }
        }
        assert!(refused_from.is_some_and(|n| n <= MAX_HELLO));
    }

    /// `parse` on anything: no panic, and an Incomplete that asks for more but within the cap.
    fn check_any(buf: &[u8]) {
        if let Hello::Incomplete(need) = parse(buf) {
            assert!(
                need > buf.len() && need <= MAX_HELLO,
                "{need} for {}",
                buf.len()
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = Rng(0xdead_beef_cafe_f00d);
        // Random bytes, bare and behind a plausible record and handshake header.
        for _ in 0..3000 {
            let len = rng.below(600);
            let mut buf: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            check_any(&buf);
            let head = [0x16, 0x03, 0x01, (len >> 8) as u8, len as u8, 0x01, 0x00];
            for (i, b) in head.iter().enumerate().take(len) {
                buf[i] = *b;
            }
            check_any(&buf);
        }
        for Fixture { bytes: buf, .. } in fixtures() {
            // Every truncation, with the record and handshake lengths made to agree, so
            // that parsing goes all the way to the cut.
            for n in 0..buf.len() - 9 {
                let mut t = buf[..9 + n].to_vec();
                t[3..5].copy_from_slice(&((4 + n) as u16).to_be_bytes());
                t[6..9].copy_from_slice(&(n as u32).to_be_bytes()[1..]);
                check_any(&t);
                check_any(&records(&t[5..], &[(4 + n) / 2]));
            }
            // Every bit flipped, each on its own.
            let mut b = buf.clone();
            for i in 0..b.len() * 8 {
                b[i / 8] ^= 1 << (i % 8);
                check_any(&b);
                b[i / 8] ^= 1 << (i % 8);
            }
            // Random bytes overwritten, a few at a time, and random prefixes of the result.
            for _ in 0..2000 {
                let mut b = buf.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(b.len());
                    b[i] = rng.next() as u8;
                }
                check_any(&b);
                check_any(&b[..rng.below(b.len())]);
            }
        }
    }
}
