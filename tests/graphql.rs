//! GraphQL limits through real sockets: queries measured as a whole (every operation, every
//! batch entry, fragments expanded), however they arrive (GET, JSON, `application/graphql`,
//! chunked, HTTP/2 DATA frames), refused with RFC 9457 documents before the upstream sees
//! them; the persisted-query allow-list; the operation in the access log.
mod common;
use common::*;
use std::time::Duration;

fn config(up: std::net::SocketAddr, hash: &str) -> String {
    format!(
        "upstreams:\n{}routes:\n  - name: gql\n    paths: [\"=/graphql\"]\n    upstream: u\n    graphql:\n      max_depth: 4\n      max_aliases: 2\n      max_fields: 20\n      max_cost: 100\n  - name: locked\n    paths: [\"=/locked\"]\n    upstream: u\n    graphql:\n      persisted_queries: [\"{hash}\"]\n",
        upstream_yaml("u", &[up], "")
    )
}

fn sha256(q: &str) -> String {
    sha256_hex(q.as_bytes())
}

async fn post(gw: &Gateway, path: &str, ct: &str, body: impl Into<reqwest::Body>) -> (u16, String) {
    let r = client()
        .post(gw.url(path))
        .header("Content-Type", ct)
        .body(body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn json(q: &str) -> String {
    serde_json::json!({ "query": q }).to_string()
}

fn keywords(doc: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(doc).unwrap_or_default();
    v["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|e| e["keyword"].as_str().unwrap_or("").to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graphql_requests_are_measured_whole_before_the_upstream() {
    let up = Upstream::start("u").await;
    let allowed = "{ me { id } }";
    let gw = Gateway::start(&config(up.addr, &sha256(allowed)));
    let ok = "query Me { me { name friends(first: 5) { name } } }";
    let (s, body) = post(&gw, "/graphql", "application/json", json(ok)).await;
    assert_eq!(s, 200, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["body"], json(ok), "the upstream gets the body as sent");

    let deep = "{ a { b { c { d { e } } } } }";
    let cases: &[(&str, &str)] = &[
        (deep, "maxDepth"),
        ("{ x: me { id } y: me { id } z: me { id } }", "maxAliases"),
        (
            "{ users(first: 50) { friends(first: 50) { id } } }",
            "maxCost",
        ),
        ("{ __schema { types { name } } }", "introspection"),
        ("{ me { ", "syntax"),
        ("{ ...Nope }", "fragments"),
    ];
    for (q, keyword) in cases {
        let (s, doc) = post(&gw, "/graphql", "application/json", json(q)).await;
        assert_eq!(s, 400, "{q}: {doc}");
        assert_eq!(keywords(&doc), [*keyword], "{q}");
        assert!(
            !doc.contains("__schema") && !doc.contains("users"),
            "never the query: {doc}"
        );
    }
    // A batch is counted in full: three queries of 7 fields each are over 20 together.
    let q7 = "{ a b c d e f g }";
    let batch = serde_json::json!([{ "query": q7 }, { "query": q7 }, { "query": q7 }]).to_string();
    let (s, doc) = post(&gw, "/graphql", "application/json", batch).await;
    assert_eq!((s, keywords(&doc)), (400, vec!["maxFields".to_string()]));
    // A fragment "billion laughs" is measured, not expanded.
    let mut q = String::from("fragment F0 on Q { a }");
    for i in 1..40 {
        q = format!("fragment F{i} on Q {{ ...F{p} ...F{p} }} {q}", p = i - 1);
    }
    let q = format!("{{ ...F39 }} {q}");
    let t = std::time::Instant::now();
    let (s, _) = post(&gw, "/graphql", "application/json", json(&q)).await;
    assert_eq!(s, 400);
    assert!(t.elapsed() < Duration::from_secs(2));

    // The same deep query however it is framed or encoded.
    let (s, _) = post(&gw, "/graphql", "application/graphql", deep).await;
    assert_eq!(s, 400, "application/graphql");
    let chunks = || -> Vec<Result<String, std::io::Error>> {
        json(deep)
            .into_bytes()
            .chunks(5)
            .map(|c| Ok(String::from_utf8(c.to_vec()).unwrap()))
            .collect()
    };
    let streamed = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks()));
    let (s, _) = post(&gw, "/graphql", "application/json", streamed).await;
    assert_eq!(s, 400, "chunked");
    let r = h2c()
        .post(gw.url("/graphql"))
        .header("Content-Type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks(),
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "HTTP/2 DATA frames");
    let get = |q: &str| {
        format!(
            "/graphql?query={}",
            q.replace(' ', "%20")
                .replace('{', "%7B")
                .replace('}', "%7D")
        )
    };
    let r = client().get(gw.url(&get(deep))).send().await.unwrap();
    assert_eq!(r.status(), 400, "GET");
    let r = client().get(gw.url(&get(ok))).send().await.unwrap();
    assert_eq!(r.status(), 200, "GET within limits");
    let twice = format!("{}&query=%7Bx%7D", get(ok));
    let r = client().get(gw.url(&twice)).send().await.unwrap();
    assert_eq!(r.status(), 400, "query given twice");
    // `query` twice in one JSON object: refused, not left for the backend to pick.
    let dup = r#"{"query":"{ me { id } }","query":"{ __schema { types { name } } }"}"#;
    assert_eq!(post(&gw, "/graphql", "application/json", dup).await.0, 400);
    assert_eq!(post(&gw, "/graphql", "text/plain", ok).await.0, 415);
    let r = client()
        .put(gw.url("/graphql"))
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(r.headers()["allow"], "GET, POST");

    // The allow-list: the listed query, by text or by hash alone; nothing else.
    assert_eq!(
        post(&gw, "/locked", "application/json", json(allowed))
            .await
            .0,
        200
    );
    let by_hash = serde_json::json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": sha256(allowed)}}}).to_string();
    assert_eq!(
        post(&gw, "/locked", "application/json", by_hash).await.0,
        200
    );
    let (s, doc) = post(&gw, "/locked", "application/json", json("{ me { name } }")).await;
    assert_eq!((s, keywords(&doc)), (400, vec!["persisted".to_string()]));

    let log = gw.access_log_with(&["\"operation\":\"query Me\"", "\"refused_by\":\"graphql\""]);
    assert!(log.contains("\"operation\":\"query Me\""), "{log}");
    assert!(log.contains("\"refused_by\":\"graphql\""), "{log}");
}

#[test]
fn graphql_config_errors_are_located() {
    let dir = temp_dir("gql-cfg");
    let cfg = dir.join("c.yaml");
    std::fs::write(
        &cfg,
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\nupstreams:\n  u:\n    targets: [\"127.0.0.1:2\"]\nroutes:\n  - name: g\n    paths: [\"/\"]\n    upstream: u\n    graphql:\n      max_depth: 0\n      max_body: 1MiB\n      persisted_queries: [\"abc\"]\n",
    )
    .unwrap();
    validate_refuses(
        &cfg,
        &[
            "routes.0.graphql.max_depth",
            "routes.0.graphql.max_body",
            "routes.0.graphql.persisted_queries.0",
        ],
    );
}
