//! The HTTP/1 pre-filter's verdict on a raw header block (`rampart_framing::check_head`),
//! checked against httparse — the parser Pingora itself uses — on every head it accepts:
//! the body length the pre-filter's own raw reading found must be the one httparse's
//! headers declare, so the two can never frame a request differently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_framing::{check, check_head, head_complete, raw_framing_headers, BodyLength};

fuzz_target!(|data: &[u8]| {
    // Whatever the split, the end of the head is found iff it is there.
    let has_end = data.windows(4).any(|w| w == b"\r\n\r\n");
    for from in [0, data.len() / 2, data.len()] {
        let seen = head_complete(data, from);
        let tail_end = data[from.saturating_sub(3)..]
            .windows(4)
            .any(|w| w == b"\r\n\r\n");
        assert_eq!(seen, tail_end);
        assert!(!seen || has_end);
    }
    if check_head(data).is_err() || data.starts_with(b"PRI * HTTP/2.0\r\n") {
        return;
    }
    let mut headers = [httparse::EMPTY_HEADER; 128];
    let mut req = httparse::Request::new(&mut headers);
    let Ok(httparse::Status::Complete(_)) = req.parse(data) else {
        panic!("check_head accepted a head httparse does not parse");
    };
    let http10 = req.version == Some(0);
    let (cl, te) = raw_framing_headers(data).expect("accepted, so readable");
    let ours = check(&cl, &te, http10).expect("accepted, so framed");
    // httparse's view of the same head.
    let named = |n: &str| -> Vec<&[u8]> {
        req.headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(n))
            .map(|h| h.value)
            .collect()
    };
    let (hcl, hte) = (named("content-length"), named("transfer-encoding"));
    let trim = |v: &[u8]| -> Vec<u8> {
        let s = String::from_utf8_lossy(v);
        s.trim_matches([' ', '\t']).as_bytes().to_vec()
    };
    match ours {
        BodyLength::None => assert!(hcl.is_empty() && hte.is_empty(), "{hcl:?} {hte:?}"),
        BodyLength::Length(n) => {
            assert!(hte.is_empty() && hcl.len() == 1, "{hcl:?} {hte:?}");
            let parsed: u64 = String::from_utf8_lossy(&trim(hcl[0])).parse().expect("a number");
            assert_eq!(parsed, n);
        }
        BodyLength::Chunked => {
            assert!(hcl.is_empty() && hte.len() == 1, "{hcl:?} {hte:?}");
            assert!(trim(hte[0]).eq_ignore_ascii_case(b"chunked"));
        }
    }
});
