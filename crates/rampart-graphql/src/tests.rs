use super::*;

fn limits() -> Limits {
    Limits {
        max_depth: 5,
        max_aliases: 3,
        max_fields: 20,
        max_cost: 200,
        default_page: 10,
        max_batch: 3,
        introspection: false,
        allow_list: None,
    }
}

fn body(q: &str) -> Vec<u8> {
    serde_json::json!({ "query": q }).to_string().into_bytes()
}

fn keywords(r: Result<Analysis, Vec<Violation>>) -> Vec<String> {
    r.unwrap_err().into_iter().map(|v| v.keyword).collect()
}

#[test]
fn measures_and_logs_operations() {
    let q = "query Me { me { name friends(first: 3) { name } } } fragment F on User { id }";
    let a = check(Request::Json(&body(q)), &limits()).unwrap();
    assert_eq!(
        a.operations,
        [Operation {
            kind: "query",
            name: Some("Me".into())
        }]
    );
    assert_eq!((a.depth, a.fields, a.aliases), (3, 4, 0));
    // me: 1 + (name 1 + friends (1 + 3 × name 1)) = 6
    assert_eq!(a.cost, 6);
    let m = check(Request::Text(b"mutation { like(id: 1) { ok } }"), &limits()).unwrap();
    assert_eq!(m.operations[0].kind, "mutation");
}

#[test]
fn each_limit_refuses() {
    let deep = "{ a { b { c { d { e { f } } } } } }";
    assert_eq!(
        keywords(check(Request::Json(&body(deep)), &limits())),
        ["maxDepth"]
    );
    let very_deep = format!("{}x{}", "{ a ".repeat(5000), "}".repeat(5000));
    assert_eq!(
        keywords(check(Request::Json(&body(&very_deep)), &limits())),
        ["maxDepth"]
    );
    let aliases = "{ a: me { id } b: me { id } c: me { id } d: me { id } }";
    assert_eq!(
        keywords(check(Request::Json(&body(aliases)), &limits())),
        ["maxAliases"]
    );
    let cost = "{ users(first: 100) { friends(first: 100) { id } } }";
    assert_eq!(
        keywords(check(Request::Json(&body(cost)), &limits())),
        ["maxCost"]
    );
    let var = "query($n: Int) { users(first: $n) { friends(first: $n) { a b } } }";
    assert!(
        check(Request::Json(&body(var)), &limits()).is_err(),
        "10 × 10 × 2 > 200"
    );
    let intro = "{ __schema { types { name } } }";
    assert_eq!(
        keywords(check(Request::Json(&body(intro)), &limits())),
        ["introspection"]
    );
    let open = Limits {
        introspection: true,
        ..limits()
    };
    assert!(check(Request::Json(&body(intro)), &open).is_ok());
    assert!(check(Request::Json(&body("{ __typename }")), &limits()).is_ok());
    assert_eq!(
        keywords(check(Request::Json(&body("{ a ")), &limits())),
        ["syntax"]
    );
    assert_eq!(
        keywords(check(Request::Json(&body("type Q { a: Int }")), &limits())),
        ["executable", "executable"]
    );
}

/// Fragments are expanded by count, not by copying: a "billion laughs" of spreads is
/// measured in microseconds and refused; cycles and undefined fragments are refused.
#[test]
fn fragment_bombs_cycles_and_batches() {
    let mut q = String::from("{ ...F0 } fragment F0 on Q { a }");
    for i in 1..60 {
        q = format!(
            "{{ ...F{i} }} fragment F{i} on Q {{ ...F{p} ...F{p} }} {}",
            q.split_once(" fragment ")
                .map(|(_, r)| format!("fragment {r}"))
                .unwrap(),
            p = i - 1
        );
    }
    let t = std::time::Instant::now();
    let r = check(Request::Json(&body(&q)), &limits());
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    assert!(keywords(r).contains(&"maxFields".to_string()));
    let cycle = "{ ...A } fragment A on Q { ...B } fragment B on Q { ...A }";
    assert!(
        keywords(check(Request::Json(&body(cycle)), &limits())).contains(&"fragments".to_string())
    );
    let undefined = "{ ...Nope }";
    assert_eq!(
        keywords(check(Request::Json(&body(undefined)), &limits())),
        ["fragments"]
    );
    // Batches are counted in full: three small queries over the field limit together.
    let q7 = "{ a b c d e f g }";
    let batch = serde_json::json!([{ "query": q7 }, { "query": q7 }, { "query": q7 }]).to_string();
    assert_eq!(
        keywords(check(Request::Json(batch.as_bytes()), &limits())),
        ["maxFields"]
    );
    let four = serde_json::json!([{ "query": "{a}" }, { "query": "{a}" }, { "query": "{a}" }, { "query": "{a}" }]).to_string();
    assert_eq!(
        keywords(check(Request::Json(four.as_bytes()), &limits())),
        ["maxBatch"]
    );
    // `query` given twice in one object, or twice as a GET parameter.
    let twice = br#"{"query":"{a}","query":"{ __schema { types { name } } }"}"#;
    assert_eq!(keywords(check(Request::Json(twice), &limits())), ["json"]);
    let nested =
        br#"{"query":"{a}","extensions":{"persistedQuery":{"sha256Hash":"aa","sha256Hash":"bb"}}}"#;
    assert_eq!(keywords(check(Request::Json(nested), &limits())), ["json"]);
    let get = [
        ("query".to_string(), "{a}".to_string()),
        ("query".into(), "{b}".into()),
    ];
    assert_eq!(
        keywords(check(Request::Get(&get), &limits())),
        ["duplicate"]
    );
}

#[test]
fn persisted_queries() {
    let q = "{ me { id } }";
    let h = hex::encode(Sha256::digest(q.as_bytes()));
    let listed = Limits {
        allow_list: Some(HashSet::from([h.clone()])),
        ..limits()
    };
    assert!(check(Request::Json(&body(q)), &listed).is_ok());
    assert_eq!(
        keywords(check(Request::Json(&body("{ me { name } }")), &listed)),
        ["persisted"]
    );
    let by_hash =
        serde_json::json!({"extensions": {"persistedQuery": {"version": 1, "sha256Hash": h}}})
            .to_string();
    assert!(check(Request::Json(by_hash.as_bytes()), &listed).is_ok());
    // A hash alone without a list: the text was never checked here.
    assert_eq!(
        keywords(check(Request::Json(by_hash.as_bytes()), &limits())),
        ["persisted"]
    );
    // A hash that is not the query's.
    let lying = serde_json::json!({"query": "{ me { name } }", "extensions": {"persistedQuery": {"version": 1, "sha256Hash": h}}}).to_string();
    assert_eq!(
        keywords(check(Request::Json(lying.as_bytes()), &listed)),
        ["persisted"]
    );
}
