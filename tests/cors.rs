//! CORS per route, through real sockets: preflights answered by Rampart before
//! authentication, the upstream's own CORS headers replaced by the route's policy, other
//! sites' requests refused, and configuration mistakes located.
mod common;
use common::*;
use std::sync::atomic::Ordering;

const KEY: &str = "cors-test-key-0123456789";

fn config(up: &Upstream) -> String {
    format!(
        r#"consumers:
  - id: app
    api_keys:
      - sha256: {key}
auth:
  api_key: {{ header: X-API-Key }}
upstreams:
{up}routes:
  - name: api
    paths: ["/api"]
    methods: [GET, PUT, POST]
    upstream: u
    auth: {{ methods: [api_key] }}
    cors:
      origins: ["https://app.example.test", "https://*.partner.test"]
      methods: [GET, PUT]
      headers: [Content-Type, X-API-Key]
      expose_headers: [X-Request-Id]
      credentials: true
      max_age: 10m
  - name: public
    paths: ["/public"]
    upstream: u
    cors: {{ origins: ["*"] }}
  - name: lenient
    paths: ["/lenient"]
    upstream: u
    cors: {{ origins: ["https://app.example.test"], refuse_other_origins: false }}
  - name: plain
    paths: ["/plain"]
    methods: [GET]
    upstream: u
"#,
        key = sha256_hex(KEY.as_bytes()),
        up = upstream_yaml("u", &[up.addr], "")
    )
}

/// One HTTP/1.1 request with `headers` (name, value), over a raw socket.
fn send(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
        gw.port
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    raw_request(gw.port, req.as_bytes()).unwrap()
}

const APP: &str = "https://app.example.test";

#[tokio::test(flavor = "multi_thread")]
async fn preflights_are_answered_before_authentication_and_only_within_the_policy() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&config(&up));
    let preflight = |origin: &str, method: &str, headers: &str| {
        let mut h = vec![
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
        ];
        if !headers.is_empty() {
            h.push(("Access-Control-Request-Headers", headers));
        }
        send(&gw, "OPTIONS", "/api/items/7", &h)
    };
    let r = preflight(APP, "PUT", "content-type,x-api-key");
    assert_eq!(status_of(&r), 204, "{r}");
    let h = |name: &str| header_of(&r, name);
    assert_eq!(h("access-control-allow-origin").as_deref(), Some(APP));
    assert_eq!(
        h("access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(
        h("access-control-allow-methods").as_deref(),
        Some("GET, PUT")
    );
    assert_eq!(
        h("access-control-allow-headers").as_deref(),
        Some("content-type, x-api-key")
    );
    assert_eq!(h("access-control-max-age").as_deref(), Some("600"));
    assert!(h("vary").unwrap().contains("Origin"));
    assert_eq!(h("content-length"), None, "a 204 has no length: {r}");
    assert_eq!(body_of(&r), "");
    // A subdomain of the pattern.
    assert_eq!(
        status_of(&preflight("https://x.partner.test", "GET", "")),
        204
    );
    // The route is found on the canonical path, as for any request: an encoded spelling
    // is the same route and the same policy.
    for (origin, want) in [("https://evil.test", 403), (APP, 204)] {
        let r = send(
            &gw,
            "OPTIONS",
            "/%61pi/items",
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
        );
        assert_eq!(status_of(&r), want, "{r}");
    }
    // Never reached the upstream, no credentials needed.
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);

    // Other sites, other methods, other headers: 403 without any CORS header.
    for (origin, method, headers, reason) in [
        ("https://evil.test", "PUT", "", "cors origin not allowed"),
        (
            "https://a.partner.test.evil.test",
            "GET",
            "",
            "cors origin not allowed",
        ),
        (
            "https://evilpartner.test",
            "GET",
            "",
            "cors origin not allowed",
        ),
        (
            "http://app.example.test",
            "GET",
            "",
            "cors origin not allowed",
        ),
        (
            "https://app.example.test/",
            "GET",
            "",
            "cors origin not allowed",
        ),
        ("null", "GET", "", "cors origin not allowed"),
        (APP, "POST", "", "cors method not allowed"),
        (APP, "PUT", "x-api-key, cookie", "cors header not allowed"),
        (APP, "PUT", "x-api-key;", "cors header not allowed"),
    ] {
        let r = preflight(origin, method, headers);
        assert_eq!(status_of(&r), 403, "{origin} {method} {headers}: {r}");
        assert_eq!(header_of(&r, "access-control-allow-origin"), None, "{r}");
        let log = gw.access_log_with(&[reason]);
        assert!(log.contains(reason), "{reason}: {log}");
    }
    // A method the route does not take at all (methods are case-sensitive: `put` is not
    // `PUT`): the preflight is an OPTIONS like any other.
    assert_eq!(status_of(&preflight(APP, "DELETE", "")), 405);
    assert_eq!(status_of(&preflight(APP, "put", "")), 405);
    // Two Origin headers: neither is trusted.
    let r = send(
        &gw,
        "OPTIONS",
        "/api/items",
        &[
            ("Origin", APP),
            ("Origin", "https://evil.test"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert_eq!(status_of(&r), 403, "{r}");
    // Two request methods: not a preflight, so an OPTIONS the route does not allow.
    let r = send(
        &gw,
        "OPTIONS",
        "/api/items",
        &[
            ("Origin", APP),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Method", "PUT"),
        ],
    );
    assert_eq!(status_of(&r), 405, "{r}");
    // A route without a policy does not get preflights answered by Rampart.
    let r = send(
        &gw,
        "OPTIONS",
        "/plain",
        &[("Origin", APP), ("Access-Control-Request-Method", "GET")],
    );
    assert_eq!(status_of(&r), 405, "{r}");
    assert_eq!(up.hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_route_policy_replaces_the_upstream_s_and_other_sites_are_refused() {
    let up = Upstream::start("u").await;
    let gw = Gateway::start(&config(&up));
    let key = ("X-API-Key", KEY);

    // The backend says `*` with credentials; the route's policy is what the browser sees.
    let r = send(&gw, "GET", "/api/cors-open", &[("Origin", APP), key]);
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    assert_eq!(
        header_of(&r, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert_eq!(header_of(&r, "access-control-allow-methods"), None, "{r}");
    assert_eq!(
        header_of(&r, "access-control-expose-headers").as_deref(),
        Some("X-Request-Id")
    );
    let vary: Vec<String> = r
        .split("\r\n\r\n")
        .next()
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.eq_ignore_ascii_case("vary"))
        .map(|(_, v)| v.trim().to_string())
        .collect();
    assert!(vary.iter().any(|v| v.contains("Origin")), "{r}");
    assert!(vary.iter().any(|v| v.contains("Accept-Encoding")), "{r}");

    // Rampart's own refusal of an allowed origin can be read by its page.
    let r = send(&gw, "GET", "/api/items", &[("Origin", APP)]);
    assert_eq!(status_of(&r), 401, "{r}");
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some(APP)
    );

    // Another site's page, even with a valid key (the browser would send the cookies):
    // refused before the upstream.
    let before = up.hits.load(Ordering::SeqCst);
    for origins in [
        &[("Origin", "https://evil.test")][..],
        &[("Origin", "null")],
        &[("Origin", "https://app.example.test.evil.test")],
        &[("Origin", APP), ("Origin", "https://evil.test")],
        &[("Origin", "https://evil.test"), ("Origin", APP)],
    ] {
        let mut h = origins.to_vec();
        h.push(key);
        let r = send(&gw, "POST", "/api/items", &h);
        assert_eq!(status_of(&r), 403, "{origins:?}: {r}");
        assert_eq!(header_of(&r, "access-control-allow-origin"), None);
    }
    assert_eq!(up.hits.load(Ordering::SeqCst), before);

    // The request's own origin, and no origin at all, pass without CORS headers.
    let own = format!("http://127.0.0.1:{}", gw.port);
    for h in [vec![("Origin", own.as_str()), key], vec![key]] {
        let r = send(&gw, "POST", "/api/items", &h);
        assert_eq!(status_of(&r), 200, "{r}");
        assert_eq!(header_of(&r, "access-control-allow-origin"), None, "{r}");
        assert!(header_of(&r, "vary").unwrap_or_default().contains("Origin"));
    }

    // HTTP/2 (h2c): the same decisions.
    let c = h2c();
    let r = c
        .get(gw.url("/api/items"))
        .header("Origin", "https://evil.test")
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .get(gw.url("/api/cors-open"))
        .header("Origin", "https://b.partner.test")
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://b.partner.test"
    );
    let r = c
        .request(reqwest::Method::OPTIONS, gw.url("/api/items"))
        .header("Origin", APP)
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(r.headers()["access-control-allow-methods"], "GET, PUT");

    // `*` without credentials: anyone may read, and the answer does not vary.
    let r = send(&gw, "GET", "/public/x", &[("Origin", "https://evil.test")]);
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(header_of(&r, "access-control-allow-credentials"), None);
    // A route that lets other sites through leaves them without CORS headers.
    let r = send(&gw, "GET", "/lenient/x", &[("Origin", "https://evil.test")]);
    assert_eq!(status_of(&r), 200, "{r}");
    assert_eq!(header_of(&r, "access-control-allow-origin"), None);
    let r = send(&gw, "GET", "/lenient/x", &[("Origin", APP)]);
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some(APP)
    );
    // Routes without a policy keep the upstream's headers: Rampart manages only its own.
    let r = send(
        &gw,
        "GET",
        "/plain/cors-open",
        &[("Origin", "https://evil.test")],
    );
    assert_eq!(
        header_of(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );
}

#[test]
fn cors_mistakes_are_refused_with_their_place() {
    refused_config(
        "cors-config",
        r#"upstreams:
  u:
    targets: ["127.0.0.1:9"]
routes:
  - name: a
    paths: ["/a"]
    upstream: u
    cors:
      origins: ["*", "https://app.example.test/", "null", "https://*.com"]
      headers: ["*"]
      credentials: true
      max_age: 48h
  - name: b
    paths: ["/b"]
    upstream: u
    cors:
      origins: []
      methods: ["G T"]
"#,
        &[
            "routes.0.cors.origins.0",
            "cannot go with `credentials: true`",
            "routes.0.cors.origins.1",
            "no trailing slash",
            "routes.0.cors.origins.2",
            "`null` is the origin",
            "routes.0.cors.origins.3",
            "top-level domain",
            "routes.0.cors.headers.0",
            "routes.0.cors.max_age",
            "at most 24h",
            "routes.1.cors.origins",
            "at least one origin",
            "routes.1.cors.methods.0",
        ],
    );
}
