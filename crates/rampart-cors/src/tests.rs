use super::*;

fn policy(origins: &[&str], credentials: bool) -> Policy {
    Policy::compile(&Settings {
        origins: origins.iter().map(|s| s.to_string()).collect(),
        methods: vec!["GET".into(), "PUT".into()],
        headers: vec!["Content-Type".into(), "X-Api-Key".into()],
        expose_headers: vec!["X-Request-Id".into()],
        credentials,
        max_age: Duration::from_secs(600),
    })
    .unwrap()
}

fn errors(s: Settings) -> Vec<(&'static str, Option<usize>)> {
    Policy::compile(&s)
        .unwrap_err()
        .into_iter()
        .map(|e| (e.field, e.index))
        .collect()
}

#[test]
fn exact_origins_match_as_browsers_serialize_them() {
    let p = policy(&["https://app.example.com", "http://localhost:8080"], true);
    for ok in [
        &b"https://app.example.com"[..],
        b"HTTPS://App.Example.com",
        b"https://app.example.com:443",
        b"http://localhost:8080",
    ] {
        assert!(p.allows_origin(ok), "{}", String::from_utf8_lossy(ok));
    }
    for bad in [
        &b"https://app.example.com/"[..],
        b"https://app.example.com.evil.test",
        b"https://evilapp.example.com",
        b"http://app.example.com",
        b"https://app.example.com:8443",
        b"https://user@app.example.com",
        b"https://app.example.com/path",
        b"https://app.example.com.",
        b"http://localhost",
        b"http://localhost:08080x",
        b"null",
        b"",
        b"https://",
        b"https://app.example.com\0",
        b"https://app.example.com, https://evil.test",
        b"https://app\xc3\xa9.example.com",
    ] {
        assert!(!p.allows_origin(bad), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn patterns_match_whole_labels_only() {
    let p = policy(&["https://*.example.com"], true);
    assert!(p.allows_origin(b"https://a.example.com"));
    assert!(p.allows_origin(b"https://a.b.example.com"));
    for bad in [
        &b"https://example.com"[..],
        b"https://.example.com",
        b"https://evilexample.com",
        b"https://a.example.com.evil.test",
        b"http://a.example.com",
        b"https://a.example.com:444",
        b"https://a.example.co",
    ] {
        assert!(!p.allows_origin(bad), "{}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn preflights_are_answered_only_within_the_policy() {
    let p = policy(&["https://app.example.com"], true);
    let h = p
        .preflight(
            b"https://app.example.com",
            b"PUT",
            &[b"content-type, x-api-key"],
        )
        .unwrap();
    let get = |n: &str| h.iter().find(|(k, _)| *k == n).map(|(_, v)| v.as_str());
    assert_eq!(
        get("Access-Control-Allow-Origin"),
        Some("https://app.example.com")
    );
    assert_eq!(get("Access-Control-Allow-Credentials"), Some("true"));
    assert_eq!(get("Access-Control-Allow-Methods"), Some("GET, PUT"));
    assert_eq!(
        get("Access-Control-Allow-Headers"),
        Some("content-type, x-api-key")
    );
    assert_eq!(get("Access-Control-Max-Age"), Some("600"));
    assert!(get("Vary").unwrap().contains("Origin"));
    let refused = |o: &[u8], m: &[u8], hs: &[&[u8]]| p.preflight(o, m, hs).unwrap_err();
    assert_eq!(refused(b"https://evil.test", b"PUT", &[]), Refusal::Origin);
    assert_eq!(
        refused(b"https://app.example.com", b"DELETE", &[]),
        Refusal::Method
    );
    // Methods are case-sensitive: `put` is not `PUT`.
    assert_eq!(
        refused(b"https://app.example.com", b"put", &[]),
        Refusal::Method
    );
    assert_eq!(
        refused(b"https://app.example.com", b"PUT PUT", &[]),
        Refusal::Method
    );
    assert_eq!(
        refused(
            b"https://app.example.com",
            b"PUT",
            &[b"x-api-key, authorization"]
        ),
        Refusal::Headers
    );
    assert_eq!(
        refused(
            b"https://app.example.com",
            b"PUT",
            &[b"x-api-key", b"cookie"]
        ),
        Refusal::Headers
    );
    assert_eq!(
        refused(b"https://app.example.com", b"PUT", &[b"x api key"]),
        Refusal::Headers
    );
    // At most 64 names: a flood of names is refused, not compared one by one.
    let many: Vec<String> = (0..65).map(|i| format!("x-{i}")).collect();
    let star = Policy::compile(&Settings {
        origins: vec!["https://app.example.com".into()],
        headers: vec!["*".into()],
        ..Settings::default()
    })
    .unwrap();
    assert_eq!(
        star.preflight(
            b"https://app.example.com",
            b"GET",
            &[many.join(",").as_bytes()]
        )
        .unwrap_err(),
        Refusal::Headers
    );
    assert!(star
        .preflight(
            b"https://app.example.com",
            b"GET",
            &[many[..64].join(",").as_bytes()]
        )
        .is_ok());
    // Empty list members are allowed by the list syntax.
    assert!(p
        .preflight(b"https://app.example.com", b"GET", &[b" , X-API-KEY ,"])
        .is_ok());
}

#[test]
fn any_origin_without_credentials_is_a_star() {
    let mut s = Settings {
        origins: vec!["*".into()],
        headers: vec!["*".into()],
        ..Settings::default()
    };
    let p = Policy::compile(&s).unwrap();
    assert!(p.allows_origin(b"https://anyone.test"));
    assert!(!p.allows_origin(b"not an origin"));
    assert!(!p.varies());
    let h = p.response_headers(b"https://anyone.test");
    assert_eq!(h, vec![("Access-Control-Allow-Origin", "*".to_string())]);
    let pre = p
        .preflight(b"https://anyone.test", b"POST", &[b"X-Custom"])
        .unwrap();
    assert!(pre.contains(&("Access-Control-Allow-Headers", "x-custom".to_string())));
    // The default methods are the CORS-safelisted ones.
    assert!(pre.contains(&(
        "Access-Control-Allow-Methods",
        "GET, HEAD, POST".to_string()
    )));
    s.credentials = true;
    assert_eq!(errors(s), vec![("origins", Some(0)), ("headers", Some(0))]);
}

#[test]
fn mistakes_are_reported_with_their_place() {
    let e = errors(Settings {
        origins: vec![
            "https://ok.example.com".into(),
            "https://app.example.com/".into(),
            "null".into(),
            "https://*.com".into(),
            "https://a*.example.com".into(),
            "ftp://example.com".into(),
            "example.com".into(),
        ],
        methods: vec!["GET".into(), "G ET".into(), "*".into()],
        headers: vec!["X-Ok".into(), "X Bad".into()],
        expose_headers: vec!["X:Bad".into()],
        credentials: false,
        max_age: Duration::ZERO,
    });
    assert_eq!(
        e,
        vec![
            ("origins", Some(1)),
            ("origins", Some(2)),
            ("origins", Some(3)),
            ("origins", Some(4)),
            ("origins", Some(5)),
            ("origins", Some(6)),
            ("methods", Some(1)),
            ("methods", Some(2)),
            ("headers", Some(1)),
            ("expose_headers", Some(0)),
        ]
    );
    assert_eq!(errors(Settings::default()), vec![("origins", None)]);
}

#[test]
fn same_origin_is_the_host_and_scheme_the_request_was_sent_to() {
    assert!(same_origin(
        b"https://api.example.com",
        "api.example.com",
        true
    ));
    assert!(same_origin(
        b"https://api.example.com",
        "API.example.com:443",
        true
    ));
    assert!(same_origin(
        b"https://api.example.com:8443",
        "api.example.com:8443",
        true
    ));
    assert!(!same_origin(
        b"http://api.example.com",
        "api.example.com",
        true
    ));
    // A plain listener may sit behind a balancer that terminates TLS.
    assert!(same_origin(
        b"https://api.example.com",
        "api.example.com",
        false
    ));
    assert!(!same_origin(
        b"https://api.example.com",
        "api.example.com:8443",
        true
    ));
    assert!(!same_origin(b"https://evil.test", "api.example.com", true));
    assert!(!same_origin(b"https://api.example.com", "", true));
    assert!(!same_origin(b"null", "api.example.com", true));
}

#[test]
fn random_bytes_never_panic() {
    let p = policy(&["https://*.example.com", "https://[::1]:8443"], true);
    assert!(p.allows_origin(b"https://[::1]:8443"));
    assert!(!p.allows_origin(b"https://[::1"));
    let alphabet = b"htps:/[]*.,: -_ae0189\x00\xff";
    for _ in 0..20_000 {
        let n = fastrand::usize(0..40);
        let v: Vec<u8> = (0..n)
            .map(|_| alphabet[fastrand::usize(0..alphabet.len())])
            .collect();
        let _ = p.allows_origin(&v);
        let _ = p.preflight(&v, &v, &[&v]);
        let _ = same_origin(&v, &String::from_utf8_lossy(&v), true);
        let _ = compile_origin(&String::from_utf8_lossy(&v));
    }
}
