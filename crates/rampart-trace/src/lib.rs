//! W3C Trace Context (Level 1): the `traceparent` and `tracestate` request headers.
//!
//! A request joins its caller's trace only when the caller may speak for one (the
//! gateway trusts a peer to, as it trusts a proxy to name the client) and the header is
//! exactly what the specification allows: version `00` (or a later one, read as `00`),
//! lower-case hex, a trace id and a parent id that are not all zeros. Anything else starts
//! a new trace, and the client's `tracestate` is dropped with its `traceparent`. Either way
//! the gateway is a hop of its own: the upstream gets the trace id and a new span id.

/// A request's place in a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace every hop of the request shares.
    pub trace_id: [u8; 16],
    /// The gateway's own span: the upstream's parent.
    pub span_id: [u8; 8],
    /// The caller's span, when the trace came from the caller.
    pub parent_id: Option<[u8; 8]>,
    /// `trace-flags`: bit 0 is "sampled"; the others are kept as received.
    pub flags: u8,
    /// The vendors' state, as received (checked, at most 32 members and 512 bytes).
    pub tracestate: Option<String>,
}

/// Why a received `traceparent` was not followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// None was sent.
    Absent,
    /// The peer may not speak for a trace.
    Untrusted,
    /// It does not read as the specification writes it.
    Malformed,
}

impl TraceContext {
    /// A new trace, sampled.
    pub fn new_trace() -> TraceContext {
        TraceContext {
            trace_id: nonzero(|| fastrand::u128(..).to_be_bytes()),
            span_id: new_span_id(),
            parent_id: None,
            flags: 0x01,
            tracestate: None,
        }
    }

    /// The trace a request belongs to: its `traceparent` (and `tracestate` fields) when
    /// `trusted` and well formed, else a new trace with the reason.
    pub fn from_headers<'a>(
        traceparent: &[&[u8]],
        tracestate: impl IntoIterator<Item = &'a [u8]>,
        trusted: bool,
    ) -> (TraceContext, Option<Refused>) {
        let refused = match traceparent {
            [] => Refused::Absent,
            _ if !trusted => Refused::Untrusted,
            // Two traceparent fields: which one a backend reads is anyone's guess.
            [one] => match parse_traceparent(one) {
                Some((trace_id, parent_id, flags)) => {
                    let tc = TraceContext {
                        trace_id,
                        span_id: new_span_id(),
                        parent_id: Some(parent_id),
                        flags,
                        tracestate: parse_tracestate(tracestate),
                    };
                    return (tc, None);
                }
                None => Refused::Malformed,
            },
            _ => Refused::Malformed,
        };
        (TraceContext::new_trace(), Some(refused))
    }

    /// The trace id as 32 lower-case hex digits (the access log's and events' `trace_id`).
    pub fn trace_id_hex(&self) -> String {
        format!("{:032x}", u128::from_be_bytes(self.trace_id))
    }

    /// The gateway's span id as 16 lower-case hex digits.
    pub fn span_id_hex(&self) -> String {
        format!("{:016x}", u64::from_be_bytes(self.span_id))
    }

    /// The `traceparent` the upstream gets: this trace, the gateway's span as parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            self.trace_id_hex(),
            self.span_id_hex(),
            self.flags
        )
    }

    /// Whether the caller (or the gateway, for a new trace) asked for this trace to be
    /// recorded.
    pub fn sampled(&self) -> bool {
        self.flags & 0x01 != 0
    }
}

fn new_span_id() -> [u8; 8] {
    nonzero(|| fastrand::u64(..).to_be_bytes())
}

/// An id that is not all zeros (which the specification reserves as invalid).
fn nonzero<const N: usize>(mut f: impl FnMut() -> [u8; N]) -> [u8; N] {
    loop {
        let v = f();
        if v.iter().any(|b| *b != 0) {
            return v;
        }
    }
}

/// Lower-case hex only: the specification forbids upper case.
fn unhex<const N: usize>(s: &[u8]) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let d = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = d(s[2 * i])? << 4 | d(s[2 * i + 1])?;
    }
    Some(out)
}

/// `version-traceid-parentid-flags` (§3.2): version `00` exactly 55 bytes; a later version
/// (not `ff`) at least 55, with a `-` after the flags when longer, read by its `00` fields.
pub fn parse_traceparent(v: &[u8]) -> Option<([u8; 16], [u8; 8], u8)> {
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let [version] = unhex::<1>(&v[..2])?;
    match version {
        0 if v.len() != 55 => return None,
        0xff => return None,
        0 => {}
        _ if v.len() > 55 && v[55] != b'-' => return None,
        _ => {}
    }
    let trace: [u8; 16] = unhex(&v[3..35])?;
    let parent: [u8; 8] = unhex(&v[36..52])?;
    let [flags] = unhex::<1>(&v[53..55])?;
    if trace.iter().all(|b| *b == 0) || parent.iter().all(|b| *b == 0) {
        return None;
    }
    Some((trace, parent, flags))
}

/// `tracestate` fields joined: `key=value` members, comma separated. Any member that does
/// not read (§3.3) drops the whole state, as does a key given twice or more than 32
/// members; past 512 bytes members are dropped from the end, as §3.3.1.1 allows.
pub fn parse_tracestate<'a>(fields: impl IntoIterator<Item = &'a [u8]>) -> Option<String> {
    let mut members: Vec<&str> = Vec::new();
    for f in fields {
        let f = std::str::from_utf8(f).ok()?;
        for m in f.split(',') {
            let m = m.trim_matches([' ', '\t']);
            if m.is_empty() {
                continue;
            }
            let (k, v) = m.split_once('=')?;
            if !valid_key(k)
                || !valid_value(v)
                || members.iter().any(|x| x.split('=').next() == Some(k))
            {
                return None;
            }
            members.push(m);
            // Stop at once: the duplicate check is quadratic, and a header can hold
            // thousands of members.
            if members.len() > 32 {
                return None;
            }
        }
    }
    if members.is_empty() {
        return None;
    }
    let mut out = members.join(",");
    while out.len() > 512 {
        members.pop();
        out = members.join(",");
    }
    (!out.is_empty()).then_some(out)
}

fn valid_key(k: &str) -> bool {
    let simple = |s: &str, max: usize| {
        !s.is_empty()
            && s.len() <= max
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes().all(|c| {
                c.is_ascii_lowercase()
                    || c.is_ascii_digit()
                    || matches!(c, b'_' | b'-' | b'*' | b'/')
            })
    };
    match k.split_once('@') {
        None => simple(k, 256),
        // `tenant@system`: the tenant may start with a digit.
        Some((t, s)) => {
            !t.is_empty()
                && t.len() <= 241
                && t.bytes().all(|c| {
                    c.is_ascii_lowercase()
                        || c.is_ascii_digit()
                        || matches!(c, b'_' | b'-' | b'*' | b'/')
                })
                && simple(s, 14)
        }
    }
}

fn valid_value(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 256
        && v.bytes()
            .all(|c| (0x20..=0x7e).contains(&c) && c != b',' && c != b'=')
        && !v.ends_with(' ')
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn traceparent_reads_as_the_specification_writes_it() {
        let (t, p, f) = parse_traceparent(GOOD).unwrap();
        assert_eq!(u128::from_be_bytes(t), 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(u64::from_be_bytes(p), 0x00f067aa0ba902b7);
        assert_eq!(f, 1);
        // A later version with more fields is read by its first ones.
        assert!(parse_traceparent(
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra"
        )
        .is_some());
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..],
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",
            b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
            b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            b" 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            b"",
        ] {
            assert_eq!(
                parse_traceparent(bad),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn only_a_trusted_peer_continues_a_trace() {
        let (tc, why) = TraceContext::from_headers(&[GOOD], [&b"vendor=x"[..]], true);
        assert_eq!(why, None);
        assert_eq!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.tracestate.as_deref(), Some("vendor=x"));
        let tp = tc.traceparent();
        assert!(
            tp.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{tp}"
        );
        assert!(
            !tp.contains("00f067aa0ba902b7"),
            "the gateway is a hop of its own: {tp}"
        );
        assert!(tp.ends_with("-01"));

        let (tc, why) = TraceContext::from_headers(&[GOOD], [&b"vendor=x"[..]], false);
        assert_eq!(why, Some(Refused::Untrusted));
        assert_ne!(tc.trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(tc.tracestate, None);
        let (_, why) = TraceContext::from_headers(&[GOOD, GOOD], [], true);
        assert_eq!(why, Some(Refused::Malformed));
        let (tc, why) = TraceContext::from_headers(&[], [], true);
        assert_eq!(why, Some(Refused::Absent));
        assert!(tc.sampled());
        assert_eq!(
            parse_traceparent(tc.traceparent().as_bytes()).unwrap().0,
            tc.trace_id
        );
    }

    #[test]
    fn tracestate_is_checked_and_bounded() {
        assert_eq!(
            parse_tracestate([&b"a=1, b@t=2"[..], b"c=3"]).as_deref(),
            Some("a=1,b@t=2,c=3")
        );
        for bad in [&b"A=1"[..], b"a=", b"a=1,a=2", b"a=x,y", b"a=1\x01", b"=1"] {
            assert_eq!(
                parse_tracestate([bad]),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let many: Vec<String> = (0..33).map(|i| format!("k{i}=v")).collect();
        assert_eq!(parse_tracestate([many.join(",").as_bytes()]), None);
        // A flood of distinct members is refused (after the 33rd, without reading on).
        let flood: Vec<String> = (0..100_000).map(|i| format!("k{i}=1")).collect();
        assert_eq!(parse_tracestate([flood.join(",").as_bytes()]), None);
        let long: Vec<String> = (0..20)
            .map(|i| format!("k{i}={}", "v".repeat(40)))
            .collect();
        let kept = parse_tracestate([long.join(",").as_bytes()]).unwrap();
        assert!(kept.len() <= 512 && kept.starts_with("k0="), "{kept}");
    }
}
