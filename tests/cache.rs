//! The response cache through real sockets: RFC 9111 behaviour against an origin whose
//! answers the test dictates, entries per consumer, every check before the cache, one
//! upstream fetch per entry, stale answers, purges through the admin API, and attacks
//! (bodies cut short, unkeyed headers, huge `Vary`, bodies on GETs).
mod common;
use common::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const KEY_A: &str = "cache-test-key-alice-0123456789";
const KEY_B: &str = "cache-test-key-bob-0123456789ab";
const OPERATOR: &str = "cache-operator-token-0123456789";

/// An origin that answers as each request's query says, over raw HTTP/1.1 (so it can also
/// misbehave), and remembers what it received.
///
/// Query parameters: `cc` and `cc2` (Cache-Control lines), `expires`, `vary`, `etag` (answers 304 to a matching
/// `If-None-Match`), `tag` (Cache-Tag), `cookie=1` (Set-Cookie), `status`, `delay` (ms),
/// `size` (body bytes), `short=1` (declares more body than it sends, then closes).
struct Origin {
    addr: std::net::SocketAddr,
    /// Requests received, per path.
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Every request head received, in order.
    heads: Arc<Mutex<Vec<String>>>,
    /// Answer 503 to everything.
    down: Arc<AtomicBool>,
    total: Arc<AtomicUsize>,
}

fn query_map(q: &str) -> HashMap<String, String> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%20", " ").replace("%2C", ",")))
        .collect()
}

impl Origin {
    async fn start() -> Origin {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let o = Origin {
            addr: l.local_addr().unwrap(),
            hits: Default::default(),
            heads: Default::default(),
            down: Default::default(),
            total: Default::default(),
        };
        let (hits, heads, down, total) = (
            o.hits.clone(),
            o.heads.clone(),
            o.down.clone(),
            o.total.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                let (hits, heads, down, total) =
                    (hits.clone(), heads.clone(), down.clone(), total.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = String::from_utf8_lossy(&buf).to_string();
                    let target = head.split(' ').nth(1).unwrap_or("/").to_string();
                    let (path, q) = target.split_once('?').unwrap_or((&target, ""));
                    if path == "/healthz" {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                            .await;
                        return;
                    }
                    let n = {
                        let mut h = hits.lock().unwrap();
                        let e = h.entry(path.to_string()).or_default();
                        *e += 1;
                        *e
                    };
                    total.fetch_add(1, Ordering::SeqCst);
                    heads.lock().unwrap().push(head.clone());
                    let q = query_map(q);
                    if let Some(ms) = q.get("delay").and_then(|d| d.parse().ok()) {
                        tokio::time::sleep(Duration::from_millis(ms)).await;
                    }
                    // Names folded as WSGI/CGI backends fold them (`X_Lang` is `X-Lang`).
                    let header = |name: &str| {
                        head.lines()
                            .find(|l| {
                                l.split_once(':').is_some_and(|(k, _)| {
                                    k.replace('_', "-").eq_ignore_ascii_case(name)
                                })
                            })
                            .map(|l| l.split_once(':').unwrap().1.trim().to_string())
                    };
                    let mut extra = String::new();
                    let mut status = q.get("status").cloned().unwrap_or("200".into());
                    if down.load(Ordering::SeqCst) {
                        status = "503".into();
                    }
                    for (param, name) in [
                        ("cc", "Cache-Control"),
                        ("cc2", "Cache-Control"),
                        ("vary", "Vary"),
                        ("tag", "Cache-Tag"),
                        ("expires", "Expires"),
                    ] {
                        if let Some(v) = q.get(param) {
                            extra.push_str(&format!("{name}: {v}\r\n"));
                        }
                    }
                    if q.contains_key("cookie") {
                        extra.push_str("Set-Cookie: session=secret-of-the-first-caller\r\n");
                    }
                    if let Some(e) = q.get("etag") {
                        extra.push_str(&format!("ETag: \"{e}\"\r\n"));
                        if header("if-none-match").as_deref() == Some(&format!("\"{e}\"")) {
                            let _ = s
                                .write_all(format!("HTTP/1.1 304 Not Modified\r\n{extra}Connection: close\r\n\r\n").as_bytes())
                                .await;
                            return;
                        }
                    }
                    let body = match q.get("size").and_then(|n| n.parse::<usize>().ok()) {
                        Some(size) => "x".repeat(size),
                        None => format!(
                            "{{\"path\":\"{path}\",\"n\":{n},\"consumer\":\"{}\",\"lang\":\"{}\"}}",
                            header("x-consumer-id").unwrap_or_default(),
                            header("x-lang").unwrap_or_default()
                        ),
                    };
                    let declared = if q.contains_key("short") {
                        body.len() + 100
                    } else {
                        body.len()
                    };
                    let resp = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {declared}\r\n{extra}Connection: close\r\n\r\n{body}"
                    );
                    let _ = s.write_all(resp.as_bytes()).await;
                });
            }
        });
        o
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }
}

fn config(o: &Origin, cache_extra: &str) -> String {
    format!(
        r#"cache: {{ max_size: 4MiB }}
requests: {{ underscore_headers: keep }}
consumers:
  - id: alice
    api_keys: [{{ sha256: {a} }}]
  - id: bob
    api_keys: [{{ sha256: {b} }}]
auth:
  api_key: {{ header: X-API-Key }}
upstreams:
  o:
    targets: ["{addr}"]
routes:
  - name: c
    paths: ["/c"]
    upstream: o
    cache: {{ ttl: 30s{cache_extra} }}
  - name: private
    paths: ["/p"]
    upstream: o
    auth: {{ methods: [api_key] }}
    cache: {{ authenticated: true }}
  - name: keyed-no-cache
    paths: ["/k"]
    upstream: o
    auth: {{ methods: [api_key] }}
    cache: {{}}
  - name: limited
    paths: ["/l"]
    upstream: o
    auth: {{ methods: [api_key] }}
    rate_limit: [{{ key: consumer, rate: 3/m, burst: 3 }}]
    cache: {{ authenticated: true }}
  - name: small
    paths: ["/s"]
    upstream: o
    cache: {{ max_body: 1KiB }}
"#,
        a = sha256_hex(KEY_A.as_bytes()),
        b = sha256_hex(KEY_B.as_bytes()),
        addr = o.addr,
    )
}

fn admin() -> String {
    format!(
        "  tokens:\n    - {{name: otto, role: operator, sha256: {}}}\n",
        sha256_hex(OPERATOR.as_bytes())
    )
}

/// GET over a fresh connection: (status, headers, body) as raw text.
fn get(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> String {
    request(gw, "GET", path, headers)
}

fn request(gw: &Gateway, method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: api.test\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    raw_request(gw.port, req.as_bytes()).unwrap()
}

fn cache_status(r: &str) -> String {
    header_of(r, "cache-status").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_follow_rfc_9111() {
    let o = Origin::start().await;
    let gw = Gateway::start(&config(&o, ""));

    // Fresh for 60 s: the second answer is the first one, with Age and Cache-Status.
    let p = "/c/fresh?cc=max-age=60";
    let a = get(&gw, p, &[]);
    assert_eq!(status_of(&a), 200, "{a}");
    assert_eq!(cache_status(&a), "rampart; fwd=miss; stored");
    let b = get(&gw, p, &[]);
    assert_eq!(body_of(&a), body_of(&b));
    assert!(cache_status(&b).starts_with("rampart; hit"), "{b}");
    assert!(header_of(&b, "age").is_some(), "{b}");
    assert_eq!(o.hits("/c/fresh"), 1);
    // HEAD is answered from the GET's entry, without a body.
    let h = request(&gw, "HEAD", p, &[]);
    assert_eq!(status_of(&h), 200, "{h}");
    assert!(body_of(&h).is_empty());
    assert_eq!(o.hits("/c/fresh"), 1);
    // Another query is another entry; the same query in another order is too (no guess
    // about what the origin treats alike).
    get(&gw, "/c/fresh?cc=max-age=60&x=1", &[]);
    assert_eq!(o.hits("/c/fresh"), 2);

    // Nothing the origin forbids is stored.
    for (path, q) in [
        ("/c/nostore", "cc=no-store"),
        ("/c/private", "cc=private,%20max-age=60"),
        ("/c/cookie", "cc=max-age=60&cookie=1"),
        ("/c/star", "cc=max-age=60&vary=*"),
        ("/c/error", "status=500&cc=max-age=60"),
        ("/c/partial", "status=206&cc=max-age=60"),
        // About one caller: never replayed to others, whatever the origin says.
        ("/c/limited", "status=429&cc=max-age=60"),
        ("/c/denied", "status=403&cc=max-age=60"),
        // An unreadable max-age is the origin's choice, not a reason for the route's ttl.
        ("/c/badage", "cc=max-age=abc"),
        // Conflicting directives, in one line or two: the forbidding one wins.
        ("/c/conflict", "cc=max-age=60,%20no-store"),
        ("/c/conflict2", "cc=max-age=60&cc2=private"),
        // An Expires that is not a date means already expired (RFC 9111 §5.3).
        ("/c/baddate", "expires=tomorrow"),
    ] {
        for _ in 0..2 {
            let r = get(&gw, &format!("{path}?{q}"), &[]);
            assert!(!cache_status(&r).contains("hit"), "{path}: {r}");
        }
        assert_eq!(o.hits(path), 2, "{path} was served from the cache");
    }
    // The first caller's cookie never reaches the second.
    let r = get(&gw, "/c/cookie?cc=max-age=60&cookie=1", &[]);
    assert_eq!(o.hits("/c/cookie"), 3, "{r}");

    // No freshness from the origin: the route's ttl, for a 200 and a 404, not for a 403.
    for (path, status, stored) in [
        ("/c/plain", 200, true),
        ("/c/gone", 404, true),
        ("/c/no", 403, false),
    ] {
        get(&gw, &format!("{path}?status={status}"), &[]);
        get(&gw, &format!("{path}?status={status}"), &[]);
        assert_eq!(o.hits(path), if stored { 1 } else { 2 }, "{path}");
    }

    // Vary: one entry per value of the header the origin names.
    let v = "/c/vary?cc=max-age=60&vary=X-Lang";
    let en = get(&gw, v, &[("X-Lang", "en")]);
    let fr = get(&gw, v, &[("X-Lang", "fr")]);
    let none = get(&gw, v, &[]);
    assert!(body_of(&en).contains("\"lang\":\"en\""), "{en}");
    assert!(body_of(&fr).contains("\"lang\":\"fr\""), "{fr}");
    assert!(body_of(&none).contains("\"lang\":\"\""), "{none}");
    let en2 = get(&gw, v, &[("X-Lang", "en")]);
    assert_eq!(body_of(&en2), body_of(&en));
    assert!(cache_status(&en2).contains("hit"), "{en2}");
    assert_eq!(o.hits("/c/vary"), 3);
    // Vary naming more headers than the cache hashes: passed through, not stored.
    let many: Vec<String> = (0..40).map(|i| format!("X-H{i}")).collect();
    let huge = format!("/c/hugevary?cc=max-age=60&vary={}", many.join("%2C"));
    get(&gw, &huge, &[]);
    get(&gw, &huge, &[]);
    assert_eq!(o.hits("/c/hugevary"), 2);

    // Validators: the client's own condition is answered from the entry…
    let e = "/c/etag?cc=max-age=1&etag=v1";
    get(&gw, e, &[]);
    let nm = get(&gw, e, &[("If-None-Match", "\"v1\"")]);
    assert_eq!(status_of(&nm), 304, "{nm}");
    assert_eq!(o.hits("/c/etag"), 1);
    // …and once stale, the entry is revalidated with the origin (304: the body stays).
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&gw, e, &[]);
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(body_of(&r).contains("\"n\":1"), "the stored body: {r}");
    assert!(cache_status(&r).contains("fwd-status=304"), "{r}");
    assert_eq!(o.hits("/c/etag"), 2);
    let last = o.heads.lock().unwrap().last().cloned().unwrap();
    assert!(
        last.to_ascii_lowercase().contains("if-none-match: \"v1\""),
        "{last}"
    );

    // Not GET or HEAD: never from the cache.
    request(&gw, "DELETE", "/c/fresh?cc=max-age=60", &[]);
    assert_eq!(o.hits("/c/fresh"), 3);

    // A body larger than max_body is passed on and not stored.
    for _ in 0..2 {
        let r = get(&gw, "/s/big?size=2048&cc=max-age=60", &[]);
        assert_eq!(body_of(&r).len(), 2048, "{r}");
    }
    assert_eq!(o.hits("/s/big"), 2);
    let m = gw.metrics();
    assert!(
        m.contains("rampart_cache_requests_total{result=\"hit\",route=\"c\"}"),
        "{m}"
    );
    assert!(
        gw.metric("rampart_cache_store{stat=\"bytes\"}") > 0.0,
        "{m}"
    );
    let log = gw.access_log_with(&["\"cache\":\"hit\""]);
    assert!(log.contains("\"cache\":\"miss\""), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn authenticated_answers_are_kept_per_consumer_and_every_check_runs_first() {
    let o = Origin::start().await;
    let gw = Gateway::start(&config(&o, ""));
    let p = "/p/me?cc=max-age=60";
    let alice = get(&gw, p, &[("X-API-Key", KEY_A)]);
    let bob = get(&gw, p, &[("X-API-Key", KEY_B)]);
    assert!(
        body_of(&alice).contains("\"consumer\":\"alice\""),
        "{alice}"
    );
    assert!(body_of(&bob).contains("\"consumer\":\"bob\""), "{bob}");
    let alice2 = get(&gw, p, &[("X-API-Key", KEY_A)]);
    let bob2 = get(&gw, p, &[("X-API-Key", KEY_B)]);
    assert!(
        body_of(&alice2).contains("\"consumer\":\"alice\""),
        "{alice2}"
    );
    assert!(body_of(&bob2).contains("\"consumer\":\"bob\""), "{bob2}");
    assert_eq!(o.hits("/p/me"), 2, "one entry per consumer");
    // An entry exists, but without credentials the request never reaches it.
    let anon = get(&gw, p, &[]);
    assert_eq!(status_of(&anon), 401, "{anon}");
    let bad = get(&gw, p, &[("X-API-Key", "wrong-key-0123456789")]);
    assert_eq!(status_of(&bad), 401, "{bad}");
    // `public` from the origin: one entry for everyone.
    let pubp = "/p/catalog?cc=public,%20max-age=60";
    get(&gw, pubp, &[("X-API-Key", KEY_A)]);
    let b = get(&gw, pubp, &[("X-API-Key", KEY_B)]);
    assert!(cache_status(&b).contains("hit"), "{b}");
    assert_eq!(o.hits("/p/catalog"), 1);
    // A route that did not opt in never stores authenticated answers.
    for _ in 0..2 {
        get(&gw, "/k/x?cc=public,%20max-age=60", &[("X-API-Key", KEY_A)]);
    }
    assert_eq!(o.hits("/k/x"), 2);
    // Rate limits count cached answers too: 3 per minute, the 4th is refused.
    let codes: Vec<u16> = (0..5)
        .map(|_| status_of(&get(&gw, "/l/x?cc=max-age=60", &[("X-API-Key", KEY_A)])))
        .collect();
    assert_eq!(codes[..3], [200, 200, 200], "{codes:?}");
    assert!(codes[3..].iter().all(|c| *c == 429), "{codes:?}");
    assert_eq!(o.hits("/l/x"), 1);
    // A client's Authorization on an unauthenticated route: stored only when the origin
    // allows it (RFC 9111 §3.5).
    for _ in 0..2 {
        get(
            &gw,
            "/c/authz?cc=max-age=60",
            &[("Authorization", "Bearer someone")],
        );
    }
    assert_eq!(o.hits("/c/authz"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_fetch_per_entry_and_stale_answers_when_allowed() {
    let o = Origin::start().await;
    let gw = Gateway::start(&config(&o, ", stale_if_error: 1m"));
    // 20 clients at once for an entry that takes 400 ms to fetch: one upstream request.
    let port = gw.port;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                let req = "GET /c/slow?delay=400&cc=max-age=60 HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n";
                raw_request(port, req.as_bytes()).unwrap()
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(status_of(&r), 200, "{r}");
        assert!(body_of(&r).contains("\"n\":1"), "{r}");
    }
    assert_eq!(o.hits("/c/slow"), 1, "requests were not coalesced");

    // stale-if-error (the route's default): the origin fails after the entry expired.
    get(&gw, "/c/sie?cc=max-age=1", &[]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    o.down.store(true, Ordering::SeqCst);
    let r = get(&gw, "/c/sie?cc=max-age=1", &[]);
    assert_eq!(status_of(&r), 200, "{r}");
    assert!(body_of(&r).contains("\"n\":1"), "{r}");
    // Without a stale-if-error window the failure is the client's.
    get(&gw, "/c/nosie?cc=max-age=1,%20stale-if-error=0", &[]);
    o.down.store(false, Ordering::SeqCst);
    get(&gw, "/c/nosie2?cc=max-age=1,%20stale-if-error=0", &[]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    o.down.store(true, Ordering::SeqCst);
    let r = get(&gw, "/c/nosie2?cc=max-age=1,%20stale-if-error=0", &[]);
    assert_eq!(status_of(&r), 503, "{r}");
    o.down.store(false, Ordering::SeqCst);

    // stale-while-revalidate: the stale answer at once, the origin asked in the background.
    let swr = "/c/swr?cc=max-age=1,%20stale-while-revalidate=60";
    get(&gw, swr, &[]);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&gw, swr, &[]);
    assert!(body_of(&r).contains("\"n\":1"), "{r}");
    assert!(cache_status(&r).contains("fwd=stale"), "{r}");
    let mut refreshed = false;
    for _ in 0..50 {
        if o.hits("/c/swr") == 2 {
            refreshed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(refreshed, "no background revalidation");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = get(&gw, swr, &[]);
    assert!(body_of(&r).contains("\"n\":2"), "{r}");
    // An HTTP/2 client on a stale entry: revalidated in the foreground (Pingora cannot
    // replay an HTTP/2 request as a background one), answered fresh, nothing left locked.
    let h2 = h2c();
    let url = gw.url("/c/swr2?cc=max-age=1,%20stale-while-revalidate=60");
    h2.get(&url).send().await.unwrap();
    tokio::time::sleep(Duration::from_millis(2100)).await;
    for n in 2..=3 {
        let r = h2.get(&url).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let body = r.text().await.unwrap();
        assert!(body.contains(&format!("\"n\":{}", 2)), "{n}: {body}");
    }
    assert_eq!(o.hits("/c/swr2"), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn attacks_on_the_cache_fail() {
    let o = Origin::start().await;
    let gw = Gateway::start(&config(&o, ""));
    // A body cut short by the origin is never stored: the next client gets a new fetch.
    let _ = get(&gw, "/c/short?cc=max-age=60&short=1", &[]);
    let _ = get(&gw, "/c/short?cc=max-age=60&short=1", &[]);
    assert_eq!(o.hits("/c/short"), 2, "a truncated body was stored");

    // Headers the client sends that the upstream never sees (replaced by Rampart) cannot
    // poison an entry, and the Host is part of the key.
    let p = "/c/poison?cc=max-age=60";
    let a = get(
        &gw,
        p,
        &[
            ("X-Forwarded-Host", "evil.test"),
            ("X-Consumer-Id", "alice"),
        ],
    );
    assert!(body_of(&a).contains("\"consumer\":\"\""), "{a}");
    let other_host = raw_request(
        gw.port,
        b"GET /c/poison?cc=max-age=60 HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n",
    )
    .unwrap();
    assert!(!cache_status(&other_host).contains("hit"), "{other_host}");
    assert_eq!(o.hits("/c/poison"), 2);

    // A header name spelled with `_`, which the backend folds into the one it varies on,
    // selects its own variant: the next client does not get the first one's answer.
    let v = "/c/folded?cc=max-age=60&vary=X-Lang";
    let a = get(&gw, v, &[("X_Lang", "evil")]);
    assert!(body_of(&a).contains("\"lang\":\"evil\""), "{a}");
    let b = get(&gw, v, &[]);
    assert!(body_of(&b).contains("\"lang\":\"\""), "{b}");
    let c = get(&gw, v, &[("x-lang", "evil")]);
    assert!(
        cache_status(&c).contains("hit"),
        "the same value, however spelled: {c}"
    );
    assert_eq!(o.hits("/c/folded"), 2);

    // A GET with a body is passed on, never answered from (or stored in) the cache.
    for framing in [
        "Content-Length: 5\r\n\r\nhello",
        "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let req = format!(
            "GET /c/withbody?cc=max-age=60 HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n{framing}"
        );
        let r = raw_request(gw.port, req.as_bytes()).unwrap();
        assert!(!cache_status(&r).contains("hit"), "{r}");
    }
    assert_eq!(o.hits("/c/withbody"), 2);
    // The same over HTTP/2: an entry is served to a GET without a body, and a GET whose
    // DATA frames carry one (no length) is passed on.
    let h2 = h2c();
    let url = gw.url("/c/h2?cc=max-age=60");
    for _ in 0..2 {
        let r = h2.get(&url).send().await.unwrap();
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        assert_eq!(r.status(), 200);
    }
    assert_eq!(o.hits("/c/h2"), 1);
    let chunks: Vec<Result<&'static str, std::io::Error>> = vec![Ok("hel"), Ok("lo")];
    let r = h2
        .get(&url)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    let status = r
        .headers()
        .get("cache-status")
        .map(|v| v.to_str().unwrap().to_string());
    assert!(!status.unwrap_or_default().contains("hit"));
    assert_eq!(
        o.hits("/c/h2"),
        2,
        "a GET with a body was answered from the cache"
    );

    // Path spellings reach the entry of the canonical path only, never another one.
    get(&gw, "/c/canon?cc=max-age=60", &[]);
    let enc = get(&gw, "/c/%63anon?cc=max-age=60", &[]);
    let dots = get(&gw, "/c/x/../canon?cc=max-age=60", &[]);
    for r in [&enc, &dots] {
        if status_of(r) == 200 {
            assert!(body_of(r).contains("\"path\":\"/c/canon\""), "{r}");
        }
    }
    assert_eq!(o.hits("/c/canon"), 1);

    // A flood of distinct keys stays within the store's bound and evicts, it does not grow.
    let port = gw.port;
    tokio::task::spawn_blocking(move || {
        for i in 0..300 {
            let req = format!(
                "GET /c/flood?size=40000&cc=max-age=60&i={i} HTTP/1.1\r\nHost: api.test\r\nConnection: close\r\n\r\n"
            );
            raw_request(port, req.as_bytes()).unwrap();
        }
    })
    .await
    .unwrap();
    let bytes = gw.metric("rampart_cache_store{stat=\"bytes\"}");
    assert!(
        bytes <= (4u64 << 20) as f64,
        "store over its bound: {bytes}"
    );
    assert!(gw.metric("rampart_cache_store{stat=\"evicted\"}") > 0.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn purges_through_the_admin_api() {
    let o = Origin::start().await;
    let gw = Gateway::start_full(&config(&o, ""), "", &admin());
    let admin = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{}", gw.admin_port);
    let purge = |body: serde_json::Value| {
        let admin = admin.clone();
        let base = base.clone();
        async move {
            let r = admin
                .post(format!("{base}/cache/purge"))
                .bearer_auth(OPERATOR)
                .json(&body)
                .send()
                .await
                .unwrap();
            let s = r.status().as_u16();
            (s, r.json::<serde_json::Value>().await.unwrap_or_default())
        }
    };
    let paths = [
        "/c/items/1?cc=max-age=60&tag=item-1,list",
        "/c/items/2?cc=max-age=60&tag=list",
        "/c/other?cc=max-age=60",
    ];
    let warm = |gw: &Gateway| {
        for p in paths {
            get(gw, p, &[]);
        }
    };
    warm(&gw);
    assert_eq!(o.total.load(Ordering::SeqCst), 3);
    let tagged = get(&gw, paths[0], &[]);
    assert!(
        header_of(&tagged, "cache-tag").is_none(),
        "tags are not for clients: {tagged}"
    );

    let (s, v) = purge(serde_json::json!({"path": "/c/items/1"})).await;
    assert_eq!((s, v["purged"].as_u64()), (200, Some(1)), "{v}");
    warm(&gw);
    assert_eq!(o.total.load(Ordering::SeqCst), 4);
    let (_, v) = purge(serde_json::json!({"tag": "list"})).await;
    assert_eq!(v["purged"].as_u64(), Some(2), "{v}");
    let (_, v) = purge(serde_json::json!({"prefix": "/c/"})).await;
    assert_eq!(v["purged"].as_u64(), Some(1), "{v}");
    warm(&gw);
    assert_eq!(o.total.load(Ordering::SeqCst), 7);
    let (_, v) = purge(serde_json::json!({"all": true})).await;
    assert_eq!(v["purged"].as_u64(), Some(3), "{v}");

    // Bad purges are refused with a reason; a viewer or no token cannot purge.
    for bad in [
        serde_json::json!({}),
        serde_json::json!({"path": "/a", "tag": "b"}),
        serde_json::json!({"query": "a=1"}),
        serde_json::json!({"prefix": "no-slash"}),
        serde_json::json!({"everything": true}),
        serde_json::json!({"tag": 5}),
    ] {
        let (s, v) = purge(bad.clone()).await;
        assert_eq!(s, 422, "{bad}: {v}");
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
    }
    let r = admin
        .post(format!("{base}/cache/purge"))
        .json(&serde_json::json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    let stats: serde_json::Value = admin
        .get(format!("{base}/cache"))
        .bearer_auth(OPERATOR)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["enabled"], true, "{stats}");
    assert_eq!(stats["entries"], 0, "{stats}");
}

#[test]
fn cache_mistakes_are_located() {
    let base = "upstreams:\n  o:\n    targets: [\"127.0.0.1:9\"]\nroutes:\n  - name: r\n    paths: [\"/\"]\n    upstream: o\n";
    refused_config(
        "cache-key",
        &format!("{base}    cache: {{ key: [path, cookie] }}\n"),
        &["routes.0.cache.key.1", "unknown key part"],
    );
    refused_config(
        "cache-nopath",
        &format!("{base}    cache: {{ key: [host] }}\n"),
        &["routes.0.cache.key", "must include path"],
    );
    refused_config(
        "cache-method",
        &format!("{base}    cache: {{ methods: [GET, POST] }}\n"),
        &["routes.0.cache.methods.1", "only GET and HEAD"],
    );
    refused_config(
        "cache-body",
        &format!("cache: {{ max_size: 8MiB }}\n{base}    cache: {{ max_body: 4MiB }}\n"),
        &["routes.0.cache.max_body", "quarter"],
    );
    refused_config(
        "cache-ws",
        &format!("{base}    websocket: true\n    cache: {{}}\n"),
        &["routes.0.cache", "websocket"],
    );
    refused_config(
        "cache-hosts",
        &base
            .replace("paths:", "hosts: [a.test, \"*.b.test\"]\n    paths:")
            .replace(
                "upstream: o\n",
                "upstream: o\n    cache: { key: [path, query] }\n",
            ),
        &["routes.0.cache.key", "several hosts"],
    );
    refused_config(
        "cache-ttl",
        &format!("{base}    cache: {{ ttl: 10ms }}\n"),
        &["routes.0.cache.ttl", "between 1s and 365d"],
    );
    refused_config(
        "cache-field",
        &format!("{base}    cache: {{ tll: 1m }}\n"),
        &["tll"],
    );
}
