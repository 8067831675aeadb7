//! The PROXY protocol parser (`rampart_net::proxy_protocol::parse`), which reads bytes from
//! anyone who can reach a listener that trusts a balancer. Beyond never panicking: a header
//! it accepts is accepted the same whatever follows it, and every shorter prefix of it is
//! `Incomplete` (never a different header, never a refusal), so how TCP splits the bytes
//! cannot change the outcome.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_net::proxy_protocol::{parse, Parse};

fuzz_target!(|data: &[u8]| {
    let whole = parse(data);
    if let Parse::Done(h) = whole {
        assert!(h.len <= data.len() && h.len > 0);
        let head = &data[..h.len];
        assert_eq!(parse(head), whole);
        let mut more = head.to_vec();
        more.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(parse(&more), whole);
        for cut in 0..h.len {
            assert_eq!(parse(&head[..cut]), Parse::Incomplete, "prefix of {cut} bytes");
        }
    }
});
