//! One request through a small rule set exercising the decoders, operators and body
//! parsers, and the engine's shortcuts (rules sharing values and a literal filter, TX
//! gates, run-time TX names read through a regex selector). Input layout: `uri \n header-lines \n\n body`; the first byte picks the body
//! type so that JSON, multipart and urlencoded parsers all get coverage.
#![no_main]

use rampart_waf::engine::Phase;
use libfuzzer_sys::fuzz_target;
use rampart_waf::engine::{Ruleset, Transaction};
use std::sync::OnceLock;

const RULES: &str = r#"
SecRuleEngine On
SecRequestBodyAccess On
SecDefaultAction "phase:2,log,pass"
SecRule REQUEST_URI|ARGS|ARGS_NAMES|REQUEST_HEADERS "@rx (?i)(union\s+select|<script)" \
    "id:1,phase:2,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:lowercase,capture,setvar:tx.score=+5,setvar:tx.m=%{tx.0}"
SecRule ARGS|REQUEST_BODY "@detectSQLi" "id:2,phase:2,t:urlDecodeUni,t:removeNulls,setvar:tx.score=+5"
SecRule ARGS|REQUEST_HEADERS:User-Agent "@detectXSS" "id:3,phase:2,t:htmlEntityDecode,t:jsDecode,t:cssDecode,setvar:tx.score=+5"
SecRule ARGS "@pm wget curl /etc/passwd" "id:4,phase:2,t:cmdLine,t:normalizePath,setvar:tx.score=+5"
SecRule ARGS:/^b64/ "@rx ^[a-z]+$" "id:5,phase:2,t:base64Decode,t:lowercase,t:compressWhitespace,t:utf8toUnicode,t:escapeSeqDecode,t:sqlHexDecode"
SecRule REQBODY_ERROR "!@eq 0" "id:6,phase:2,setvar:tx.body_error=1"
SecRule &ARGS "@gt 100" "id:7,phase:2,setvar:tx.too_many=1"
SecRule FILES_NAMES|FILES|MULTIPART_PART_HEADERS "@rx \.php" "id:8,phase:2,t:lowercase,t:replaceComments,t:removeComments"
SecRule REQUEST_COOKIES|REQUEST_COOKIES_NAMES "@validateByteRange 32-126" "id:9,phase:2,t:hexDecode,t:trim"
SecRule REQUEST_FILENAME "@validateUrlEncoding" "id:10,phase:1,t:normalizePathWin"
SecRule ARGS "@validateUtf8Encoding" "id:11,phase:2,t:base64DecodeExt,t:removeWhitespace"
SecRule TX:score "@ge 10" "id:12,phase:2,deny,status:403,msg:'score %{tx.score} %{MATCHED_VAR_NAME}',logdata:'%{MATCHED_VAR}'"
SecRule RESPONSE_BODY "@contains secret" "id:13,phase:4,t:length,t:md5,t:sha1,t:hexEncode,t:base64Encode"
SecRule REQUEST_URI|ARGS|ARGS_NAMES|REQUEST_HEADERS "@rx (?i)(?:etc/passwd|\.\./|javascript:)" \
    "id:14,phase:2,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:lowercase,setvar:tx.score=+1"
SecRule REQUEST_URI|ARGS|ARGS_NAMES|REQUEST_HEADERS "@pm select insert drop" \
    "id:15,phase:2,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:lowercase,setvar:tx.score=+1"
SecRule REQUEST_URI|ARGS|ARGS_NAMES|REQUEST_HEADERS "!@rx (?i)^[a-z0-9/_.=&?-]*x{3}" \
    "id:16,phase:2,t:none,t:urlDecodeUni,t:htmlEntityDecode,t:lowercase,setvar:tx.neg=+1"
SecRule REQUEST_HEADERS_NAMES "@rx ^.*$" \
    "id:17,phase:1,capture,t:lowercase,setvar:'tx.hdr_%{tx.0}=/%{tx.0}/',chain"
    SecRule TX:/^hdr_/ "@within /x-evil/ /proxy/" "setvar:tx.score=+5"
SecRule TX:score "@lt 1" "id:18,phase:2,pass,skipAfter:END"
SecRule ARGS "@rx evil" "id:19,phase:2,setvar:tx.after=1"
SecMarker END
"#;

fn ruleset() -> &'static Ruleset {
    static RS: OnceLock<Ruleset> = OnceLock::new();
    RS.get_or_init(|| {
        let d = rampart_waf::parse_str(RULES, "<fuzz>").expect("fuzz rules parse");
        let mut rs = Ruleset::compile(&d, std::path::Path::new(".")).expect("fuzz rules compile");
        // A literal filter that skips a rule which would have matched panics: the fuzzer
        // looks for that too.
        rs.verify_filters();
        rs
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let (head, body) = match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&rest[..i], &rest[i + 2..]),
        None => (rest, &[][..]),
    };
    let mut lines = head.split(|c| *c == b'\n');
    let uri = String::from_utf8_lossy(lines.next().unwrap_or_default()).into_owned();
    let mut headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| {
            let i = l.iter().position(|c| *c == b':')?;
            Some((String::from_utf8_lossy(&l[..i]).into_owned(), l[i + 1..].to_vec()))
        })
        .collect();
    let ct: &[u8] = match kind % 4 {
        0 => b"application/json",
        1 => b"multipart/form-data; boundary=XyZ",
        2 => b"application/x-www-form-urlencoded",
        _ => b"text/plain",
    };
    headers.push(("Content-Type".into(), ct.to_vec()));
    let mut tx = Transaction::new(ruleset(), "192.0.2.1");
    tx.request_headers("POST", &uri, "HTTP/1.1", headers);
    tx.run_phase(Phase::RequestHeaders);
    tx.request_body(body);
    tx.run_phase(Phase::RequestBody);
    tx.response(200, &[("Content-Type".into(), b"text/html".to_vec())], body);
    for p in Phase::RESPONSE {
        tx.run_phase(p);
    }
});
