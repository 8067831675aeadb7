//! Authentication through real sockets: API keys, Basic, JWT with a live JWKS/OIDC server,
//! introspection, lockout (local and shared through Redis), MFA step-up, header hygiene.
mod common;
use base64::Engine;
use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// An EC P-256 signing key with its JWK.
struct EcKey {
    kid: String,
    pem: String,
    jwk: Value,
}

fn ec_key(kid: &str) -> EcKey {
    let kp = rcgen::KeyPair::generate().unwrap();
    let raw = kp.public_key_raw(); // 0x04 || x || y
    EcKey {
        kid: kid.into(),
        pem: kp.serialize_pem(),
        jwk: json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig", "alg": "ES256",
                    "x": b64(&raw[1..33]), "y": b64(&raw[33..65])}),
    }
}

fn sign(k: &EcKey, claims: Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(k.kid.clone());
    encode(
        &h,
        &claims,
        &EncodingKey::from_ec_pem(k.pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// A tiny IdP: OIDC discovery, a JWKS whose keys the test changes, and RFC 7662
/// introspection answering for tokens it was told about.
struct Idp {
    addr: std::net::SocketAddr,
    jwks: Arc<Mutex<Vec<Value>>>,
    jwks_hits: Arc<AtomicUsize>,
    introspect_hits: Arc<AtomicUsize>,
    active: Arc<Mutex<Vec<(String, Value)>>>,
}

impl Idp {
    fn issuer(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn idp() -> Idp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let jwks: Arc<Mutex<Vec<Value>>> = Arc::default();
    let jwks_hits = Arc::new(AtomicUsize::new(0));
    let introspect_hits = Arc::new(AtomicUsize::new(0));
    let active: Arc<Mutex<Vec<(String, Value)>>> = Arc::default();
    let (j, jh, ih, act) = (
        jwks.clone(),
        jwks_hits.clone(),
        introspect_hits.clone(),
        active.clone(),
    );
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let (j, jh, ih, act) = (j.clone(), jh.clone(), ih.clone(), act.clone());
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let (j, jh, ih, act) = (j.clone(), jh.clone(), ih.clone(), act.clone());
                        async move {
                            let path = req.uri().path().to_string();
                            let auth = req
                                .headers()
                                .get("authorization")
                                .map(|v| v.to_str().unwrap().to_string());
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let out = match path.as_str() {
                                "/.well-known/openid-configuration" => json!({
                                    "issuer": format!("http://{addr}"),
                                    "jwks_uri": format!("http://{addr}/jwks"),
                                }),
                                "/jwks" => {
                                    jh.fetch_add(1, Ordering::SeqCst);
                                    json!({"keys": *j.lock().unwrap()})
                                }
                                "/introspect" => {
                                    ih.fetch_add(1, Ordering::SeqCst);
                                    let expected = format!(
                                        "Basic {}",
                                        base64::engine::general_purpose::STANDARD
                                            .encode("rampart:client-secret")
                                    );
                                    if auth.as_deref() != Some(expected.as_str()) {
                                        return Ok::<_, hyper::Error>(
                                            hyper::Response::builder()
                                                .status(401)
                                                .body(Full::new(Bytes::new()))
                                                .unwrap(),
                                        );
                                    }
                                    let form = String::from_utf8_lossy(&body).to_string();
                                    let token = form
                                        .split('&')
                                        .find_map(|kv| kv.strip_prefix("token="))
                                        .unwrap_or("")
                                        .to_string();
                                    let found = act
                                        .lock()
                                        .unwrap()
                                        .iter()
                                        .find(|(t, _)| *t == token)
                                        .map(|(_, v)| v.clone());
                                    found.unwrap_or_else(|| json!({"active": false}))
                                }
                                _ => json!({}),
                            };
                            Ok(hyper::Response::builder()
                                .header("content-type", "application/json")
                                .body(Full::new(Bytes::from(out.to_string())))
                                .unwrap())
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    Idp {
        addr,
        jwks,
        jwks_hits,
        introspect_hits,
        active,
    }
}

fn bcrypt_hash(pw: &str) -> String {
    // Low cost: the test is about behaviour, not hash strength.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_rampart"))
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{pw}\n").as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn config(up: &Upstream, idp: &Idp, lockout: &str) -> String {
    let pw = bcrypt_hash("correct horse");
    format!(
        r#"consumers:
  - id: alice
    groups: [admins, staff]
    api_keys:
      - sha256: {key}
      - sha256: {old}
        expires: 2020-01-01T00:00:00Z
    basic: {{ username: alice, password_hash: "{pw}" }}
    subjects: [alice-sub]
  - id: bob
    groups: [staff]
    subjects: [bob-sub]
auth:
  api_key: {{ header: X-API-Key, query: api_key }}
  jwt:
    - issuer: {iss}
      audiences: [orders-api]
      algorithms: [ES256]
      discovery: true
      jwks_min_interval: 200ms
      jwks_refresh: 1s
      claims_to_headers: {{ email: X-User-Email }}
  introspection:
    url: {iss}/introspect
    client_id: rampart
    client_secret: client-secret
    max_ttl: 1m
  lockout:
    max_failures: 3
    window: 1m
    duration: 30s
{lockout}upstreams:
{up}routes:
  - name: keys
    paths: ["/keys"]
    upstream: u
    auth: {{ methods: [api_key] }}
  - name: basic
    paths: ["/basic"]
    upstream: u
    auth: {{ methods: [basic] }}
  - name: tokens
    paths: ["/tokens"]
    upstream: u
    auth: {{ methods: [jwt, introspection] }}
  - name: forward
    paths: ["/forward"]
    upstream: u
    auth: {{ methods: [api_key], forward_credentials: true }}
  - name: stepup
    paths: ["/admin"]
    upstream: u
    auth: {{ methods: [jwt], mfa: {{ amr: [mfa], acr_min: "2" }} }}
  - name: maybe
    paths: ["/maybe"]
    upstream: u
    auth: {{ methods: [api_key, jwt], optional: true }}
  - name: open
    paths: ["/open"]
    upstream: u
"#,
        key = sha256_hex(b"rk_alice_key"),
        old = sha256_hex(b"rk_alice_old"),
        iss = idp.issuer(),
        up = upstream_yaml("u", &[up.addr], ""),
    )
}

async fn call(
    c: &reqwest::Client,
    url: String,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut rb = c.get(url);
    for (k, v) in headers {
        rb = rb.header(*k, *v);
    }
    let r = rb.send().await.unwrap();
    let (s, h) = (r.status().as_u16(), r.headers().clone());
    (s, h, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn api_keys_basic_and_header_hygiene() {
    let up = Upstream::start("a").await;
    let idp = idp().await;
    let gw = Gateway::start(&config(&up, &idp, ""));
    let c = client();

    let (s, h, v) = call(&c, gw.url("/keys"), &[]).await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("ApiKey realm=\"rampart\""));
    assert_eq!(v["error"], "authentication required");

    let spoof = [
        ("X-API-Key", "rk_alice_key"),
        ("X-Consumer-Id", "root"),
        ("X-Auth-Method", "magic"),
        ("X-User-Email", "x@evil"),
    ];
    let (s, _, v) = call(&c, gw.url("/keys"), &spoof).await;
    assert_eq!(s, 200);
    let hd = &v["headers"];
    assert_eq!(hd["x-consumer-id"], "alice");
    assert_eq!(hd["x-consumer-groups"], "admins,staff");
    assert_eq!(hd["x-auth-method"], "api_key");
    assert!(hd.get("x-api-key").is_none(), "credential forwarded: {hd}");
    assert!(
        hd.get("x-user-email").is_none(),
        "spoofed claim header kept: {hd}"
    );

    // Query parameter, removed before forwarding.
    let (s, _, v) = call(&c, gw.url("/keys?a=1&api_key=rk_alice_key&b=2"), &[]).await;
    assert_eq!(s, 200);
    assert_eq!(v["query"], "a=1&b=2");
    // Expired and unknown keys.
    assert_eq!(
        call(&c, gw.url("/keys"), &[("X-API-Key", "rk_alice_old")])
            .await
            .0,
        401
    );
    assert_eq!(
        call(&c, gw.url("/keys"), &[("X-API-Key", "rk_nobody")])
            .await
            .0,
        401
    );
    // forward_credentials keeps the key.
    let (_, _, v) = call(&c, gw.url("/forward"), &[("X-API-Key", "rk_alice_key")]).await;
    assert_eq!(v["headers"]["x-api-key"], "rk_alice_key");

    // Basic.
    let good = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice:correct horse")
    );
    let (s, _, v) = call(&c, gw.url("/basic"), &[("Authorization", &good)]).await;
    assert_eq!(s, 200);
    assert_eq!(v["headers"]["x-consumer-id"], "alice");
    assert!(v["headers"].get("authorization").is_none());
    let (s, h, _) = call(
        &c,
        gw.url("/basic"),
        &[("Authorization", "Basic bm9ib2R5Om5v")],
    )
    .await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .starts_with("Basic realm=\"rampart\""));

    // Optional: anonymous passes without identity; bad credentials still fail.
    let (s, _, v) = call(&c, gw.url("/maybe"), &[("X-Consumer-Id", "root")]).await;
    assert_eq!(s, 200);
    assert!(v["headers"].get("x-consumer-id").is_none());
    assert_eq!(
        call(&c, gw.url("/maybe"), &[("X-API-Key", "wrong")])
            .await
            .0,
        401
    );
    // Routes without auth strip identity headers too.
    let (_, _, v) = call(&c, gw.url("/open"), &[("X-Consumer-Id", "root")]).await;
    assert!(v["headers"].get("x-consumer-id").is_none());

    // The access log says why; it never holds the key.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = gw.access_log();
    assert!(log.contains("\"reason\":\"api key expired\""), "{log}");
    assert!(log.contains("\"consumer\":\"alice\""));
    assert!(!log.contains("rk_alice"), "credential in the access log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jwt_rotation_and_refusals() {
    let up = Upstream::start("a").await;
    let idp = idp().await;
    let k1 = ec_key("k1");
    let k2 = ec_key("k2");
    idp.jwks.lock().unwrap().push(k1.jwk.clone());
    // Many deliberate failures below: keep lockout out of the way (it has its own tests).
    let cfg = config(&up, &idp, "").replace(
        "max_failures: 3",
        "max_failures: 1000\n    max_failures_per_ip: 1000",
    );
    let gw = Gateway::start(&cfg);
    let c = client();
    let iss = idp.issuer();
    let claims = |sub: &str| json!({"iss": iss, "aud": "orders-api", "sub": sub, "exp": now() + 300, "email": "alice@example.test"});
    let bearer = |t: &str| format!("Bearer {t}");

    let t1 = sign(&k1, claims("alice-sub"));
    let (s, _, v) = call(&c, gw.url("/tokens"), &[("Authorization", &bearer(&t1))]).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["headers"]["x-consumer-id"], "alice");
    assert_eq!(v["headers"]["x-auth-method"], "jwt");
    assert_eq!(v["headers"]["x-user-email"], "alice@example.test");
    assert!(v["headers"].get("authorization").is_none());

    // New kid: refused while unknown, accepted once the IdP publishes it (no restart).
    let t2 = sign(&k2, claims("bob-sub"));
    assert_eq!(
        call(&c, gw.url("/tokens"), &[("Authorization", &bearer(&t2))])
            .await
            .0,
        401
    );
    idp.jwks.lock().unwrap().push(k2.jwk.clone());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, _, v) = call(&c, gw.url("/tokens"), &[("Authorization", &bearer(&t2))]).await;
    assert_eq!(s, 200);
    assert_eq!(v["headers"]["x-consumer-id"], "bob");
    // Old key removed at the IdP: refused after the periodic refresh.
    idp.jwks.lock().unwrap().retain(|k| k["kid"] != "k1");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(
        call(&c, gw.url("/tokens"), &[("Authorization", &bearer(&t1))])
            .await
            .0,
        401
    );

    // Garbage kids cannot make Rampart hammer the IdP.
    let before = idp.jwks_hits.load(Ordering::SeqCst);
    for i in 0..30 {
        let mut h = Header::new(Algorithm::ES256);
        h.kid = Some(format!("junk-{i}"));
        let t = encode(
            &h,
            &claims("alice-sub"),
            &EncodingKey::from_ec_pem(k2.pem.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(
            call(&c, gw.url("/tokens"), &[("Authorization", &bearer(&t))])
                .await
                .0,
            401
        );
    }
    let fetched = idp.jwks_hits.load(Ordering::SeqCst) - before;
    assert!(fetched <= 3, "{fetched} JWKS fetches for 30 junk tokens");

    // Expired, wrong audience, wrong issuer, alg none.
    let mut bad = Vec::new();
    let mut e = claims("bob-sub");
    e["exp"] = json!(now() - 3600);
    bad.push(("expired", sign(&k2, e)));
    let mut a = claims("bob-sub");
    a["aud"] = json!("other-api");
    bad.push(("audience", sign(&k2, a)));
    let mut i = claims("bob-sub");
    i["iss"] = json!("http://evil.test");
    bad.push(("issuer", sign(&k2, i)));
    let none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims("bob-sub").to_string().as_bytes())
    );
    bad.push(("none", none));
    // HS256 signed with the public key as secret (key-type confusion).
    let pub_pem = {
        let kp = rcgen::KeyPair::from_pem(&k2.pem).unwrap();
        kp.public_key_pem()
    };
    let mut h = Header::new(Algorithm::HS256);
    h.kid = Some("k2".into());
    bad.push((
        "hs-confusion",
        encode(
            &h,
            &claims("bob-sub"),
            &EncodingKey::from_secret(pub_pem.as_bytes()),
        )
        .unwrap(),
    ));
    // An unknown subject.
    bad.push(("unknown subject", sign(&k2, claims("mallory"))));
    for (what, t) in &bad {
        let (s, _, _) = call(&c, gw.url("/tokens"), &[("Authorization", &bearer(t))]).await;
        assert_eq!(s, 401, "{what} accepted");
    }

    // Step-up: a valid token without mfa in amr gets the RFC 9470 challenge.
    let (s, h, _) = call(
        &c,
        gw.url("/admin"),
        &[("Authorization", &bearer(&sign(&k2, claims("bob-sub"))))],
    )
    .await;
    assert_eq!(s, 401);
    assert!(h["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_user_authentication"));
    let mut strong = claims("bob-sub");
    strong["amr"] = json!(["pwd", "mfa"]);
    strong["acr"] = json!("1");
    assert_eq!(
        call(
            &c,
            gw.url("/admin"),
            &[("Authorization", &bearer(&sign(&k2, strong.clone())))]
        )
        .await
        .0,
        401,
        "acr 1 < 2"
    );
    strong["acr"] = json!("2");
    assert_eq!(
        call(
            &c,
            gw.url("/admin"),
            &[("Authorization", &bearer(&sign(&k2, strong)))]
        )
        .await
        .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn opaque_tokens_by_introspection_are_cached() {
    let up = Upstream::start("a").await;
    let idp = idp().await;
    idp.active.lock().unwrap().push((
        "opaque-good".into(),
        json!({"active": true, "sub": "alice-sub", "exp": now() + 120, "scope": "orders:read"}),
    ));
    let gw = Gateway::start(&config(&up, &idp, ""));
    let c = client();
    for _ in 0..5 {
        let (s, _, v) = call(
            &c,
            gw.url("/tokens"),
            &[("Authorization", "Bearer opaque-good")],
        )
        .await;
        assert_eq!(s, 200);
        assert_eq!(v["headers"]["x-auth-method"], "introspection");
        assert_eq!(v["headers"]["x-consumer-id"], "alice");
    }
    assert_eq!(
        idp.introspect_hits.load(Ordering::SeqCst),
        1,
        "active result not cached"
    );
    assert_eq!(
        call(
            &c,
            gw.url("/tokens"),
            &[("Authorization", "Bearer opaque-revoked")]
        )
        .await
        .0,
        401
    );
}

fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockout_locally_even_with_the_right_password() {
    let up = Upstream::start("a").await;
    let idp = idp().await;
    let gw = Gateway::start(&config(&up, &idp, ""));
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            call(
                &c,
                gw.url("/basic"),
                &[("Authorization", &basic("alice", "guess"))]
            )
            .await
            .0,
            401
        );
    }
    let (s, h, v) = call(
        &c,
        gw.url("/basic"),
        &[("Authorization", &basic("alice", "correct horse"))],
    )
    .await;
    assert_eq!(s, 429, "{v}");
    let retry: u64 = h["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    // Other identities are not locked.
    assert_eq!(
        call(&c, gw.url("/keys"), &[("X-API-Key", "rk_alice_key")])
            .await
            .0,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn lockout_is_shared_between_nodes_through_redis() {
    let up = Upstream::start("a").await;
    let idp = idp().await;
    // A unique user per run: Redis keeps state between test runs.
    let user = format!("carol{}", std::process::id());
    let cfg = config(&up, &idp, "    redis: redis://127.0.0.1:6379\n").replace(
        "  - id: bob\n",
        &format!("  - id: {user}\n    basic: {{ username: {user}, password_hash: \"{}\" }}\n  - id: bob\n", bcrypt_hash("pw")),
    );
    let a = Gateway::start(&cfg);
    let b = Gateway::start(&cfg);
    let c = client();
    assert_eq!(
        call(
            &c,
            b.url("/basic"),
            &[("Authorization", &basic(&user, "pw"))]
        )
        .await
        .0,
        200
    );
    for _ in 0..3 {
        assert_eq!(
            call(
                &c,
                a.url("/basic"),
                &[("Authorization", &basic(&user, "wrong"))]
            )
            .await
            .0,
            401
        );
    }
    let (s, h, _) = call(
        &c,
        b.url("/basic"),
        &[("Authorization", &basic(&user, "pw"))],
    )
    .await;
    assert_eq!(s, 429, "node B did not see node A's failures");
    assert!(h.get("retry-after").is_some());
}
