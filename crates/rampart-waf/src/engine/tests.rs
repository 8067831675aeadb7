//! The engine end to end: target groups, detector caches, setvar arithmetic, `skipAfter`
//! over removed rules.

use super::caches::GROUP_BYTES_MAX;
use super::Phase;
use super::{Ruleset, Transaction};
use std::path::Path;

fn ruleset(rules: &str) -> Ruleset {
    Ruleset::compile(&crate::parse_str(rules, "<test>").unwrap(), Path::new(".")).unwrap()
}

/// Rules sharing a group see the same values whether the group keeps them or, past
/// its size limit, each rule reads the request itself.
#[test]
fn group_members_match_alike_below_and_above_the_size_limit() {
    let rs = ruleset(
        "SecRule ARGS \"@rx evil\" \"id:1,phase:2,pass,t:lowercase,setvar:tx.a=+1\"\n\
         SecRule ARGS \"@pm evil\" \"id:2,phase:2,pass,t:lowercase,setvar:tx.b=+1\"\n\
         SecRule ARGS \"!@rx good\" \"id:3,phase:2,pass,t:lowercase,setvar:tx.c=+1\"\n",
    );
    for len in [10, GROUP_BYTES_MAX + 10] {
        let mut t = Transaction::new(&rs, "192.0.2.1");
        let h = [(
            "Content-Type".to_string(),
            b"application/x-www-form-urlencoded".to_vec(),
        )];
        t.request_headers("POST", "/?q=EVIL&n=good", "HTTP/1.1", h.to_vec());
        t.run_phase(Phase::RequestHeaders);
        let body = format!("big={}EVIL", "a".repeat(len));
        t.request_body(body.as_bytes());
        t.run_phase(Phase::RequestBody);
        assert_eq!(t.tx("a").as_deref(), Some("2"), "len {len}");
        assert_eq!(t.tx("b").as_deref(), Some("2"), "len {len}");
        assert_eq!(t.tx("c").as_deref(), Some("2"), "len {len}");
    }
}

/// Detector answers outlive the request for User-Agent values only: other values may
/// be secrets whose presence a client could otherwise time.
#[test]
fn only_user_agent_answers_outlive_the_request() {
    let rs = ruleset(
        "SecRule REQUEST_HEADERS|ARGS \"@detectSQLi\" \"id:1,phase:1,pass,setvar:tx.n=+1\"\n",
    );
    let h = [
        ("User-Agent".to_string(), b"1' or '1'='1".to_vec()),
        ("X-Other".to_string(), b"2' or '2'='2".to_vec()),
    ];
    for _ in 0..2 {
        let mut t = Transaction::new(&rs, "192.0.2.1");
        t.request_headers("GET", "/?a=3'%20or%20'3'='3", "HTTP/1.1", h.to_vec());
        t.run_phase(Phase::RequestHeaders);
        assert_eq!(t.tx("n").as_deref(), Some("3"));
    }
    let cached = |v: &[u8]| {
        rs.detect_cache
            .shards
            .iter()
            .any(|s| s.lock().unwrap().contains_key(v))
    };
    assert!(cached(b"1' or '1'='1"));
    assert!(!cached(b"2' or '2'='2"));
    assert!(!cached(b"3' or '3'='3"));
}

/// Scores near i64::MAX used to overflow (a panic in debug builds).
#[test]
fn setvar_arithmetic_wraps_instead_of_panicking() {
    let rs = ruleset(
        "SecAction \"id:1,phase:1,pass,setvar:tx.a=9223372036854775807,setvar:tx.a=+1,\
         setvar:tx.b=-9223372036854775807,setvar:tx.b=-2\"\n",
    );
    let mut t = Transaction::new(&rs, "192.0.2.1");
    t.request_headers("GET", "/", "HTTP/1.1", Vec::new());
    t.run_phase(Phase::RequestHeaders);
    assert_eq!(t.tx("a").as_deref(), Some("-9223372036854775808"));
    assert_eq!(t.tx("b").as_deref(), Some("9223372036854775807"));
}

/// A marker's position must not count rules removed by SecRuleRemoveById.
#[test]
fn skip_after_lands_on_the_marker_when_earlier_rules_are_removed() {
    let rs = ruleset(
        "SecAction \"id:1,phase:1,pass,nolog\"\n\
         SecAction \"id:2,phase:1,pass,nolog\"\n\
         SecAction \"id:3,phase:1,pass,nolog,skipAfter:END\"\n\
         SecAction \"id:4,phase:1,pass,setvar:tx.skipped=1\"\n\
         SecMarker END\n\
         SecAction \"id:5,phase:1,pass,setvar:tx.after=1\"\n\
         SecRuleRemoveById 1 2\n",
    );
    let mut t = Transaction::new(&rs, "192.0.2.1");
    t.request_headers("GET", "/", "HTTP/1.1", Vec::new());
    t.run_phase(Phase::RequestHeaders);
    assert_eq!(t.tx("skipped"), None);
    assert_eq!(t.tx("after").as_deref(), Some("1"));
}

/// The detectors' per-request memo answers repeated values as libinjection does: each
/// repeat of an injection is a hit, a repeated benign value never is, and the two
/// detectors do not share answers.
#[test]
fn remembered_detector_answers_match_libinjection() {
    let rs = ruleset(
        "SecRule ARGS \"@detectSQLi\" \"id:1,phase:1,pass,setvar:tx.sqli=+1\"\n\
         SecRule ARGS \"@detectXSS\" \"id:2,phase:1,pass,setvar:tx.xss=+1\"\n\
         SecRule ARGS \"@detectSQLi\" \"id:3,phase:1,pass,setvar:tx.again=+1\"\n",
    );
    let mut t = Transaction::new(&rs, "192.0.2.1");
    let q = "/?a=1'%20OR%20'1'='1&b=EUR&c=1'%20OR%20'1'='1&d=EUR&e=<script>alert(1)</script>";
    t.request_headers("GET", q, "HTTP/1.1", Vec::new());
    t.run_phase(Phase::RequestHeaders);
    assert_eq!(t.tx("sqli").as_deref(), Some("2"));
    assert_eq!(t.tx("again").as_deref(), Some("2"));
    assert_eq!(t.tx("xss").as_deref(), Some("1"));
}

#[test]
fn phases_by_number_and_name() {
    for (v, p) in [
        ("1", Phase::RequestHeaders),
        ("request", Phase::RequestBody),
        ("2", Phase::RequestBody),
        ("3", Phase::ResponseHeaders),
        ("response", Phase::ResponseBody),
        ("logging", Phase::Logging),
    ] {
        assert_eq!(Phase::parse(v), Some(p), "{v}");
    }
    assert_eq!(Phase::parse("6"), None);
    assert_eq!(Phase::ALL.map(Phase::number), [1, 2, 3, 4, 5]);
    let out_of_range =
        crate::parse_str("SecRule ARGS \"@rx a\" \"id:1,phase:7,deny\"", "t").unwrap();
    let e = Ruleset::compile(&out_of_range, std::path::Path::new("."))
        .err()
        .unwrap();
    assert!(e.to_string().contains("phase"), "{e}");
}

/// `@geoLookup` asks the database the host lent and fills `GEO` for the rest of the chain;
/// without a database, or for an address it does not know, the lookup fails (no match).
#[test]
fn geo_lookup_fills_the_geo_collection() {
    struct TwoNets;
    impl crate::GeoLookup for TwoNets {
        fn lookup(&self, ip: std::net::IpAddr) -> Option<crate::GeoRecord> {
            let code = match ip.to_string().as_str() {
                "203.0.113.9" => "FR",
                "198.51.100.9" => "DE",
                _ => return None,
            };
            Some(crate::GeoRecord {
                country_code: code.into(),
                country_name: None,
                continent: Some("EU".into()),
            })
        }
    }
    let rs = ruleset(
        "SecRule REMOTE_ADDR \"@geoLookup\" \"id:1,phase:1,pass,chain,setvar:tx.looked=1\"\n\
           SecRule GEO:COUNTRY_CODE \"@streq FR\" \"setvar:tx.fr=1\"\n\
         SecRule GEO:country_continent \"@streq EU\" \"id:2,phase:1,pass,setvar:tx.eu=1\"\n\
         SecRule &GEO \"@eq 0\" \"id:3,phase:1,pass,setvar:tx.nowhere=1\"\n",
    );
    let run = |ip: &str, geo: bool| {
        let mut t = Transaction::new(&rs, ip);
        if geo {
            t.set_geo(std::sync::Arc::new(TwoNets));
        }
        t.request_headers("GET", "/", "HTTP/1.1", Vec::new());
        t.run_phase(Phase::RequestHeaders);
        ["looked", "fr", "eu", "nowhere"].map(|n| t.tx(n).is_some())
    };
    assert_eq!(run("203.0.113.9", true), [true, true, true, false]);
    assert_eq!(run("198.51.100.9", true), [true, false, true, false]);
    assert_eq!(run("192.0.2.1", true), [false, false, false, true]);
    assert_eq!(run("203.0.113.9", false), [false, false, false, true]);
}

/// `multiMatch` tests the value before the transformations and after each one that
/// changes it, every match counting (ModSecurity v3); without it only the final value.
/// CRS's 942500 depends on it: `/*+hint*/` loses its `+` to t:urlDecodeUni.
#[test]
fn multi_match_tests_every_intermediate_value() {
    let rs = ruleset(
        "SecRule ARGS \"@rx /\\*\\+\" \"id:1,phase:2,pass,t:none,t:urlDecodeUni,multiMatch,setvar:tx.a=+1\"\n\
         SecRule ARGS \"@rx /\\*\\+\" \"id:2,phase:2,pass,t:none,t:urlDecodeUni,setvar:tx.b=+1\"\n\
         SecRule ARGS \"@rx hint\" \"id:3,phase:2,pass,t:none,t:urlDecodeUni,t:lowercase,multiMatch,setvar:tx.c=+1\"\n",
    );
    let mut t = Transaction::new(&rs, "192.0.2.1");
    t.request_headers("GET", "/?q=1+or+%2F*%2BHint+*%2F", "HTTP/1.1", Vec::new());
    t.run_phase(Phase::RequestHeaders);
    t.request_body(b"");
    t.run_phase(Phase::RequestBody);
    assert_eq!(t.tx("a").as_deref(), Some("1"));
    assert_eq!(t.tx("b"), None);
    // `Hint` matches only once lowercased: the last value.
    assert_eq!(t.tx("c").as_deref(), Some("1"));
}

/// `ctl:ruleRemoveTargetByTag` drops a target from the tagged rules for this request only
/// (CRS's 941010 drops REQUEST_FILENAME from its XSS rules when the path is plain); a ctl
/// this engine does not know is refused at load, not ignored.
#[test]
fn ctl_removes_targets_by_tag_and_unknown_ctls_are_refused() {
    let rs = ruleset(
        "SecRule REQUEST_FILENAME \"@rx ^/plain\" \"id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetByTag=perf;REQUEST_FILENAME\"\n\
         SecRule REQUEST_FILENAME|ARGS \"@contains cookie\" \"id:2,phase:2,pass,tag:'perf',setvar:tx.a=+1\"\n\
         SecRule REQUEST_FILENAME \"@contains cookie\" \"id:3,phase:2,pass,tag:'other',setvar:tx.b=+1\"\n",
    );
    for (uri, a, b) in [
        ("/plain/document.cookie", None, Some("1")),
        ("/plain/x?q=document.cookie", Some("1"), None),
        ("/other/document.cookie", Some("1"), Some("1")),
    ] {
        let mut t = Transaction::new(&rs, "192.0.2.1");
        t.request_headers("GET", uri, "HTTP/1.1", Vec::new());
        t.run_phase(Phase::RequestHeaders);
        t.request_body(b"");
        t.run_phase(Phase::RequestBody);
        assert_eq!(t.tx("a").as_deref(), a, "{uri}");
        assert_eq!(t.tx("b").as_deref(), b, "{uri}");
    }
    let Err(err) = Ruleset::compile(
        &crate::parse_str(
            "SecAction \"id:1,phase:1,pass,ctl:ruleRemoveTargetByColour=x;ARGS\"\n",
            "<test>",
        )
        .unwrap(),
        Path::new("."),
    ) else {
        panic!("an unknown ctl is an error");
    };
    assert!(
        err.to_string()
            .contains("unknown ctl:ruleRemoveTargetByColour"),
        "{err}"
    );
}

/// An `@rx` whose pattern holds macros is compiled from their expansion (CRS 3.3's 920480
/// checks the charset against `^%{tx.allowed_request_content_type_charset}$`); before,
/// the macro text itself was the pattern and every charset was refused.
#[test]
fn rx_patterns_expand_their_macros() {
    let rs = ruleset(
        "SecAction \"id:1,phase:1,pass,nolog,setvar:'tx.allowed=utf-8|iso-8859-1'\"\n\
         SecRule REQUEST_HEADERS:Content-Type \"@rx charset=([^;\\s]+)\" \"id:2,phase:1,pass,capture,t:lowercase,chain\"\n\
         SecRule TX:1 \"!@rx ^(?:%{tx.allowed})$\" \"setvar:tx.refused=+1\"\n",
    );
    for (ct, refused) in [
        ("text/plain; charset=UTF-8", None),
        ("text/plain; charset=iso-8859-1", None),
        ("text/plain; charset=utf-7", Some("1")),
    ] {
        let mut t = Transaction::new(&rs, "192.0.2.1");
        let h = vec![("Content-Type".to_string(), ct.as_bytes().to_vec())];
        t.request_headers("GET", "/", "HTTP/1.1", h);
        t.run_phase(Phase::RequestHeaders);
        assert_eq!(t.tx("refused").as_deref(), refused, "{ct}");
    }
}

/// Argument, cookie and part names keep their bytes: CRS's 920250 checks ARGS_NAMES for
/// invalid UTF-8, which a name turned into U+FFFD would hide. Selectors still find them.
#[test]
fn names_keep_bytes_that_are_not_utf8() {
    let rs = ruleset(
        "SecRule ARGS_NAMES|REQUEST_COOKIES_NAMES \"@validateUtf8Encoding\" \"id:1,phase:2,pass,setvar:tx.bad=+1\"\n\
         SecRule ARGS:/^x\\xfd/ \"@streq v\" \"id:2,phase:2,pass,setvar:tx.sel=+1\"\n\
         SecRule ARGS_NAMES \"@rx \\xfd\" \"id:3,phase:2,pass,setvar:tx.raw=+1\"\n\
         SecRule FILES_NAMES \"@validateUtf8Encoding\" \"id:4,phase:2,pass,setvar:tx.file=+1\"\n",
    );
    let mut t = Transaction::new(&rs, "192.0.2.1");
    let h = vec![
        ("Cookie".to_string(), b"c\xfe=1; ok=2".to_vec()),
        (
            "Content-Type".to_string(),
            b"multipart/form-data; boundary=b".to_vec(),
        ),
    ];
    t.request_headers("POST", "/?x%FD=v&fine=1", "HTTP/1.1", h);
    t.run_phase(Phase::RequestHeaders);
    t.request_body(
        b"--b\r\nContent-Disposition: form-data; name=\"f\xff\"; filename=\"a\"\r\n\r\ndata\r\n--b--\r\n",
    );
    t.run_phase(Phase::RequestBody);
    // x\xFD (query), c\xFE (cookie), and f\xFF as a file's name.
    assert_eq!(t.tx("bad").as_deref(), Some("2"));
    assert_eq!(t.tx("file").as_deref(), Some("1"));
    assert_eq!(t.tx("sel").as_deref(), Some("1"));
    assert_eq!(t.tx("raw").as_deref(), Some("1"));
}

/// A `ctl:ruleRemoveTarget*` is resolved at load: one that names no readable rule or
/// target is refused there, instead of silently excluding nothing; one that reads applies
/// to the rules it names only, however often its rule matches.
#[test]
fn target_removals_resolve_at_load() {
    for bad in [
        "ctl:ruleRemoveTargetById=abc;ARGS:a",
        "ctl:ruleRemoveTargetById=2",
        "ctl:ruleRemoveTargetByTag=t;",
    ] {
        let rules = format!(
            "SecAction \"id:1,phase:1,pass,nolog,{bad}\"\n\
             SecRule ARGS \"@rx x\" \"id:2,phase:2,pass,tag:t\"\n"
        );
        let err = Ruleset::compile(&crate::parse_str(&rules, "<test>").unwrap(), Path::new("."))
            .err()
            .unwrap_or_else(|| panic!("{bad} was accepted"));
        assert!(err.to_string().contains("rule 1: ctl:"), "{bad}: {err}");
    }
    let rs = ruleset(
        "SecRule ARGS \"@rx .\" \"id:1,phase:1,pass,nolog,ctl:ruleRemoveTargetById=2;ARGS:a,ctl:ruleRemoveTargetByTag=t3;ARGS\"\n\
         SecRule ARGS \"@rx x\" \"id:2,phase:2,pass,setvar:tx.two=+1\"\n\
         SecRule ARGS \"@rx x\" \"id:3,phase:2,pass,tag:t3,setvar:tx.three=+1\"\n\
         SecRule ARGS \"@rx x\" \"id:4,phase:2,pass,setvar:tx.four=+1\"\n",
    );
    let mut t = Transaction::new(&rs, "192.0.2.1");
    t.request_headers("GET", "/?a=x&b=x&c=x", "HTTP/1.1", Vec::new());
    t.run_phase(Phase::RequestHeaders);
    t.run_phase(Phase::RequestBody);
    assert_eq!(t.tx("two").as_deref(), Some("2"));
    assert_eq!(t.tx("three"), None);
    assert_eq!(t.tx("four").as_deref(), Some("3"));
}
