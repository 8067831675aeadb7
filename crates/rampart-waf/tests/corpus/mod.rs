//! Inputs for the differential tests (PCRE2, libinjection): every payload of the CRS
//! regression tests, and deterministic mutations and random bytes around them.
#![allow(dead_code)]

use rampart_waf::transform::Transform;
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const BASE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");

/// `%HH` and `+` decoded, as the argument parsers do.
fn url_decode(v: &[u8]) -> Vec<u8> {
    Transform::UrlDecode.apply(v)
}

/// Every payload of the regression tests: whole, and split into argument values.
pub fn payloads() -> Vec<Vec<u8>> {
    let mut set = BTreeSet::new();
    let add_args = |set: &mut BTreeSet<Vec<u8>>, v: &[u8]| {
        set.insert(v.to_vec());
        set.insert(url_decode(v));
        for pair in v.split(|b| *b == b'&') {
            set.insert(url_decode(pair));
            if let Some(eq) = pair.iter().position(|b| *b == b'=') {
                set.insert(url_decode(&pair[eq + 1..]));
                set.insert(url_decode(&pair[..eq]));
            }
        }
    };
    for (_, file) in crate::ftw::load(BASE) {
        for t in &file.tests {
            for s in &t.stages {
                let i = &s.input;
                if let Some(uri) = &i.uri {
                    add_args(&mut set, uri.as_bytes());
                    if let Some((path, q)) = uri.split_once('?') {
                        set.insert(path.as_bytes().to_vec());
                        add_args(&mut set, q.as_bytes());
                    }
                }
                for (_, v) in i.header_list() {
                    set.insert(v);
                }
                add_args(&mut set, &i.body());
                if let Some(raw) = i.raw_request() {
                    set.insert(raw.clone());
                    for line in raw.split(|b| *b == b'\n') {
                        add_args(&mut set, line.strip_suffix(b"\r").unwrap_or(line));
                    }
                }
            }
        }
    }
    set.into_iter().collect()
}

/// A deterministic generator (xorshift).
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// One small change to `v`, of a kind evasions use.
pub fn mutate(v: &[u8], rng: &mut Rng) -> Vec<u8> {
    const SPACES: &[&[u8]] = &[b" ", b"\t", b"\n", b"\x0b", b"\x0c", b"\r", b"\r\n", b"  "];
    const FRAGMENTS: &[&[u8]] = &[
        b"%20", b"%0a", b"%00", b"+", b"&#x3c;", b"&lt;", b"<!--", b"-->", b"/**/", b"'", b"\"",
        b"\\", b"/", b"../", b";", b"|", b"`", b"$(", b"${", b"<", b">", b"=", b"(", b")",
    ];
    let mut out = v.to_vec();
    let at = rng.below(out.len() + 1);
    match rng.below(8) {
        // Flip the case of every letter, or of some.
        0 => {
            let all = rng.below(2) == 0;
            for b in out.iter_mut() {
                if b.is_ascii_alphabetic() && (all || rng.below(2) == 0) {
                    *b ^= 0x20;
                }
            }
        }
        // Every space becomes another whitespace.
        1 => {
            let w = SPACES[rng.below(SPACES.len())];
            out = out.split(|b| *b == b' ').collect::<Vec<_>>().join(w);
        }
        2 => {
            let w = SPACES[rng.below(SPACES.len())];
            out.splice(at..at, w.iter().copied());
        }
        3 => {
            let f = FRAGMENTS[rng.below(FRAGMENTS.len())];
            out.splice(at..at, f.iter().copied());
        }
        // A high, control or NUL byte.
        4 => {
            let b = [0x00, 0x80, 0xa0, 0xc0, 0xe2, 0xff, 0x01, 0x7f][rng.below(8)];
            out.insert(at, b);
        }
        5 if !out.is_empty() => {
            out.remove(at.min(out.len() - 1));
        }
        6 => out.truncate(at),
        _ => out.extend_from_within(..at),
    }
    out
}

pub fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    let len = rng.below(n + 1);
    match rng.below(3) {
        0 => (0..len).map(|_| rng.next() as u8).collect(),
        // Printable ASCII and punctuation, where most patterns' alphabets are.
        1 => (0..len).map(|_| 0x20 + rng.below(0x5f) as u8).collect(),
        _ => (0..len)
            .map(|_| b"<>'\"();=&|/\\ \n\t%$`{}[]*-#"[rng.below(25)])
            .collect(),
    }
}

/// Builds an oracle's C driver `tests/SOURCE` into `target/test-fixtures/OUT` with the
/// system C compiler (`args` after the sources: include paths, libraries); `what` says what
/// is missing when it fails.
pub fn build_driver(source: &str, out: &str, args: &[std::ffi::OsString], what: &str) -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("../../target/test-fixtures");
    let exe = dir.join(out);
    // Built under a name of its own and renamed into place: tests of one binary run in
    // parallel, and one may be running the driver while another builds it.
    let tmp = dir.join(format!(
        "{out}.{}.{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let status = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&tmp)
        .arg(root.join("tests").join(source))
        .args(args)
        .status()
        .expect("a C compiler (cc)");
    assert!(status.success(), "building {source} failed: {what}");
    std::fs::rename(&tmp, &exe).unwrap();
    exe
}

/// Appends one length-prefixed field (4-byte little-endian length, then the bytes): the
/// record format every driver reads on stdin.
pub fn field(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one request as the ModSecurity drivers read it: method, URI, protocol version
/// without `HTTP/`, header count, each header's name and value, body.
pub fn request_record(
    out: &mut Vec<u8>,
    method: &str,
    uri: &str,
    version: &str,
    headers: &[(String, Vec<u8>)],
    body: &[u8],
) {
    field(out, method.as_bytes());
    field(out, uri.as_bytes());
    field(out, version.trim_start_matches("HTTP/").as_bytes());
    field(out, headers.len().to_string().as_bytes());
    for (k, v) in headers {
        field(out, k.as_bytes());
        field(out, v);
    }
    field(out, body);
}

/// Runs a driver with `args`, feeding it `data` from another thread (it answers as it
/// reads), and returns its output lines; there must be `expect` of them.
pub fn pipe(exe: &Path, args: &[String], data: Vec<u8>, expect: usize) -> Vec<String> {
    let mut child = Command::new(exe)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
    let lines: Vec<String> = BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    writer.join().unwrap();
    assert!(child.wait().unwrap().success(), "{} failed", exe.display());
    assert_eq!(lines.len(), expect, "{} answered short", exe.display());
    lines
}

/// The divergences found must be exactly those `list` (a file under `tests/`) names: an
/// unlisted one fails, and so does a listed one that has gone.
pub fn assert_listed(list: &str, found: BTreeSet<String>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(list);
    let listed: BTreeSet<String> = std::fs::read_to_string(&path)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect();
    let unlisted: Vec<&String> = found.difference(&listed).collect();
    let stale: Vec<&String> = listed.difference(&found).collect();
    assert!(
        unlisted.is_empty() && stale.is_empty(),
        "divergences not in {}: {unlisted:?}; listed but gone: {stale:?}",
        path.display()
    );
}

/// CRS v4 from `../shared/crs`, as CRS's CI configures it (setup, test setup, rules;
/// detection only).
pub fn crs_v4_ruleset() -> rampart_waf::engine::Ruleset {
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/crs");
    let mut d = rampart_waf::parse_files(&[
        &format!("{base}/rules/crs-setup.conf.example"),
        &format!("{base}/crs-test-setup.conf"),
    ])
    .unwrap();
    d.extend(rampart_waf::parse_str("SecRuleEngine DetectionOnly\n", "<test>").unwrap());
    d.extend(rampart_waf::parse_files(&[&format!("{base}/rules/*.conf")]).unwrap());
    rampart_waf::engine::Ruleset::compile(&d, Path::new(&format!("{base}/rules"))).unwrap()
}
