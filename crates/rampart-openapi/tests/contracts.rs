//! Contracts from small descriptions written here (one per feature) and GitHub's REST API
//! description (fetched from npm by `scripts/test`).

use rampart_openapi::{Options, Refusal, Request, Spec};
use std::path::{Path, PathBuf};

fn dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rampart-oas-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const PETS: &str = r#"
openapi: 3.0.3
info: { title: pets, version: "1" }
servers: [{ url: "https://api.example.com/v1" }]
paths:
  /pets:
    get:
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1, maximum: 100 } }
        - { name: tags, in: query, schema: { type: array, items: { type: string } } }
        - { name: ids, in: query, style: form, explode: false, schema: { type: array, items: { type: integer } } }
        - { name: filter, in: query, style: deepObject, schema: { type: object, properties: { kind: { type: string } }, additionalProperties: false } }
        - { name: X-Trace, in: header, required: true, schema: { type: string, pattern: "^[a-f0-9]{8}$" } }
        - { name: session, in: cookie, schema: { type: string, minLength: 4 } }
    post:
      requestBody:
        required: true
        content:
          application/json:
            schema: { $ref: "common.yaml#/Pet" }
          application/x-www-form-urlencoded:
            schema: { $ref: "common.yaml#/Pet" }
  /pets/{id}:
    parameters:
      - { name: id, in: path, required: true, schema: { type: integer, format: int64 } }
    get: {}
    delete: {}
  /pets/mine:
    get: {}
"#;

const COMMON: &str = r##"
Pet:
  type: object
  required: [name, id]
  additionalProperties: false
  properties:
    id: { type: integer, readOnly: true }
    name: { type: string, maxLength: 20 }
    tag: { type: string, nullable: true }
    age: { type: number, minimum: 0, exclusiveMinimum: true }
    owner: { $ref: "#/Owner" }
Owner:
  type: object
  properties:
    email: { type: string, format: email }
"##;

fn pets() -> Spec {
    let d = dir("pets");
    std::fs::write(d.join("pets.yaml"), PETS).unwrap();
    std::fs::write(d.join("common.yaml"), COMMON).unwrap();
    Spec::load(&d.join("pets.yaml")).unwrap()
}

const STRICT: Options = Options {
    refuse_unknown_query: true,
    base_path: None,
};

fn req<'a>(
    method: &'a str,
    target: &'a str,
    headers: &'a [(String, Vec<u8>)],
    body: Option<&'a [u8]>,
) -> Request<'a> {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    Request {
        method,
        path,
        query,
        headers,
        body,
    }
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn refused(spec: &Spec, r: &Request) -> Refusal {
    spec.check(r, STRICT).expect_err("should be refused")
}

fn pointers(r: &Refusal) -> Vec<&str> {
    r.violations.iter().map(|v| v.pointer.as_str()).collect()
}

#[test]
fn parameters_by_location_style_and_type() {
    let spec = pets();
    let trace = h(&[("X-Trace", "0badc0de"), ("Cookie", "session=abcdef")]);
    let ok = [
        "/v1/pets",
        "/v1/pets?limit=10",
        "/v1/pets?tags=a&tags=b",
        "/v1/pets?ids=1,2,3",
        "/v1/pets?filter[kind]=cat",
    ];
    for t in ok {
        let r = spec.check(&req("GET", t, &trace, None), STRICT);
        assert!(r.is_ok(), "{t}: {r:?}");
    }
    let cases: &[(&str, &str)] = &[
        ("/v1/pets?limit=0", "/query/limit"),
        ("/v1/pets?limit=ten", "/query/limit"),
        ("/v1/pets?limit=1&limit=2", "/query/limit"),
        ("/v1/pets?ids=1,x", "/query/ids/1"),
        ("/v1/pets?filter[size]=big", "/query/filter"),
        ("/v1/pets?debug=1", "/query/debug"),
        ("/v1/pets?limit=%FF", "/query"),
    ];
    for (t, pointer) in cases {
        let r = refused(&spec, &req("GET", t, &trace, None));
        assert_eq!(r.status, 400, "{t}");
        assert!(pointers(&r).contains(pointer), "{t}: {r:?}");
    }
    // A missing required header, a bad one, a short cookie.
    let r = refused(&spec, &req("GET", "/v1/pets", &[], None));
    assert_eq!(pointers(&r), ["/header/X-Trace"]);
    let bad = h(&[("x-trace", "<script>"), ("Cookie", "session=ab")]);
    let r = refused(&spec, &req("GET", "/v1/pets", &bad, None));
    assert_eq!(pointers(&r), ["/header/X-Trace", "/cookie/session"]);
    assert!(
        r.violations.iter().all(|v| !v.message.contains("script")),
        "never the value sent: {r:?}"
    );
    // Unknown query parameters pass when the route allows them.
    let lax = Options {
        refuse_unknown_query: false,
        base_path: None,
    };
    assert!(spec
        .check(&req("GET", "/v1/pets?debug=1", &trace, None), lax)
        .is_ok());
}

#[test]
fn paths_methods_and_the_server_base() {
    let spec = pets();
    assert_eq!(spec.base_path, "/v1");
    assert_eq!(spec.operations(), 5);
    let op = spec
        .check(&req("GET", "/v1/pets/mine", &[], None), STRICT)
        .unwrap();
    assert_eq!(
        op.path, "/pets/mine",
        "a concrete path wins over a template"
    );
    let op = spec
        .check(&req("DELETE", "/v1/pets/42", &[], None), STRICT)
        .unwrap();
    assert_eq!(op.path, "/pets/{id}");
    let r = refused(&spec, &req("GET", "/v1/pets/x", &[], None));
    assert_eq!(pointers(&r), ["/path/id"]);
    let r = refused(&spec, &req("PUT", "/v1/pets/42", &[], None));
    assert_eq!(
        (r.status, r.allow.clone()),
        (405, vec!["GET".to_string(), "DELETE".into()])
    );
    for t in ["/pets", "/v1/dogs", "/v1/pets/1/2", "/v10/pets"] {
        assert_eq!(refused(&spec, &req("GET", t, &[], None)).status, 404, "{t}");
    }
}

#[test]
fn bodies_by_media_type_with_refs_across_files() {
    let spec = pets();
    let json = h(&[("Content-Type", "application/json")]);
    let post = |headers: &[(String, Vec<u8>)], body: &str| {
        spec.check(
            &req("POST", "/v1/pets", headers, Some(body.as_bytes())),
            STRICT,
        )
    };
    assert!(post(
        &json,
        r#"{"name":"rex","tag":null,"age":2,"owner":{"email":"a@b.example"}}"#
    )
    .is_ok());
    let bad: &[(&str, &str)] = &[
        (r#"{"name":"rex","id":7}"#, "/body/id"),
        (r#"{"tag":"x"}"#, "/body"),
        (r#"{"name":"rex","age":0}"#, "/body/age"),
        (
            r#"{"name":"rex","owner":{"email":"nope"}}"#,
            "/body/owner/email",
        ),
        (r#"{"name":"rex","extra":1}"#, "/body"),
        (r#"{"name":"rex","name":"max"}"#, "/body"),
        (r#"{"name":"#, "/body"),
    ];
    for (body, pointer) in bad {
        let r = post(&json, body).expect_err(body);
        assert_eq!(r.status, 400, "{body}");
        assert!(pointers(&r).contains(pointer), "{body}: {r:?}");
    }
    // Media types: none, undeclared, another charset.
    assert_eq!(post(&[], "{}").unwrap_err().status, 415);
    let xml = h(&[("Content-Type", "application/xml")]);
    assert_eq!(post(&xml, "<a/>").unwrap_err().status, 415);
    let latin = h(&[("Content-Type", "application/json; charset=iso-8859-1")]);
    assert_eq!(post(&latin, r#"{"name":"rex"}"#).unwrap_err().status, 415);
    let twice = h(&[
        ("Content-Type", "application/json"),
        ("Content-Type", "text/plain"),
    ]);
    assert_eq!(post(&twice, r#"{"name":"rex"}"#).unwrap_err().status, 415);
    // A required body.
    let r = spec
        .check(&req("POST", "/v1/pets", &json, None), STRICT)
        .unwrap_err();
    assert_eq!(pointers(&r), ["/body"]);
    // Forms read fields as their schema's types; a field given twice is ambiguous.
    let form = h(&[("Content-Type", "application/x-www-form-urlencoded")]);
    assert!(post(&form, "name=rex&age=3").is_ok());
    assert!(post(&form, "name=rex&age=old").is_err());
    assert!(post(&form, "name=rex&name=max").is_err());
    // A body where none is declared.
    let r = spec
        .check(&req("DELETE", "/v1/pets/1", &json, Some(b"{}")), STRICT)
        .unwrap_err();
    assert_eq!(pointers(&r), ["/body"]);
}

#[test]
fn openapi_31_schemas_are_json_schema_2020_12() {
    let d = dir("v31");
    std::fs::write(
        d.join("api.json"),
        r##"{"openapi":"3.1.0","info":{"title":"t","version":"1"},
            "paths":{"/items":{"post":{"requestBody":{"required":true,"content":{
              "application/json":{"schema":{"$ref":"#/components/schemas/Item"}}}}}}},
            "components":{"schemas":{"Item":{"type":"object","required":["n"],
              "properties":{"n":{"type":["integer","null"],"exclusiveMinimum":0},
                            "kids":{"type":"array","items":{"$ref":"#/components/schemas/Item"}}}}}}}"##,
    )
    .unwrap();
    let spec = Spec::load(&d.join("api.json")).unwrap();
    let json = h(&[("Content-Type", "application/json")]);
    let post = |b: &str| spec.check(&req("POST", "/items", &json, Some(b.as_bytes())), STRICT);
    assert!(post(r#"{"n":null,"kids":[{"n":1,"kids":[{"n":2}]}]}"#).is_ok());
    let r = post(r#"{"n":1,"kids":[{"n":0}]}"#).unwrap_err();
    assert_eq!(pointers(&r), ["/body/kids/0/n"]);
}

#[test]
fn broken_descriptions_are_located() {
    let d = dir("broken");
    let load = |text: &str| {
        std::fs::write(d.join("api.yaml"), text).unwrap();
        Spec::load(&d.join("api.yaml")).err().unwrap().to_string()
    };
    let e = load("openapi: 2.0\n");
    assert!(
        e.contains("api.yaml#/openapi") && e.contains("only 3.0.x and 3.1.x"),
        "{e}"
    );
    let e = load(
        "openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - $ref: '#/nope'\n",
    );
    assert!(
        e.contains("#/paths/~1a/get/parameters/0") && e.contains("points to nothing"),
        "{e}"
    );
    let e = load("openapi: 3.0.0\npaths:\n  /a:\n    post:\n      requestBody:\n        content:\n          application/json:\n            schema: { $ref: 'missing.yaml#/X' }\n");
    assert!(e.contains("missing.yaml"), "{e}");
    let e = load("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - { name: b, in: path, schema: { type: string } }\n");
    assert!(e.contains("not in the path"), "{e}");
    let e = load("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - { name: b, in: query, schema: { type: string, pattern: '(' } }\n");
    assert!(
        e.contains("/parameters/0/schema") && e.contains("does not compile"),
        "{e}"
    );
    let e = load("openapi: 3.0.0\npaths: [\n");
    assert!(e.contains("not JSON or YAML"), "{e}");
    let e = load("openapi: 3.0.0\npaths:\n  /a:\n    get:\n      parameters:\n        - $ref: 'https://example.com/p.yaml'\n");
    assert!(e.contains("remote references are not fetched"), "{e}");
}

fn github() -> PathBuf {
    let p =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-fixtures/github-api.json");
    assert!(
        p.exists(),
        "{} is missing: scripts/test fetches it from npm",
        p.display()
    );
    p
}

/// GitHub's REST API: every operation compiles; a handful are checked both ways.
#[test]
fn github_rest_api() {
    let t = std::time::Instant::now();
    let spec = Spec::load(&github()).unwrap();
    eprintln!(
        "loaded {} operations in {:?}",
        spec.operations(),
        t.elapsed()
    );
    assert!(spec.operations() > 1000);
    let json = h(&[("Content-Type", "application/json")]);
    let check = |m: &str, t: &str, b: Option<&str>| {
        spec.check(&req(m, t, &json, b.map(str::as_bytes)), STRICT)
    };
    let op = check(
        "POST",
        "/repos/octo/hello/issues",
        Some(r#"{"title":"Found a bug","labels":["bug"]}"#),
    )
    .unwrap();
    assert_eq!(op.id.as_deref(), Some("issues/create"));
    let r = check(
        "POST",
        "/repos/octo/hello/issues",
        Some(r#"{"body":"no title"}"#),
    )
    .unwrap_err();
    assert!(pointers(&r).contains(&"/body"), "{r:?}");
    assert!(check(
        "GET",
        "/repos/octo/hello/issues?state=open&per_page=50",
        None
    )
    .is_ok());
    let r = check("GET", "/repos/octo/hello/issues?state=sideways", None).unwrap_err();
    assert_eq!(pointers(&r), ["/query/state"]);
    let r = check("GET", "/repos/octo/hello/issues?per_page=many", None).unwrap_err();
    assert_eq!(pointers(&r), ["/query/per_page"]);
    assert!(check("GET", "/users/octocat", None).is_ok());
    assert_eq!(
        check("PATCH", "/users/octocat", None).unwrap_err().status,
        405
    );
    assert_eq!(
        check("GET", "/no/such/thing/here", None)
            .unwrap_err()
            .status,
        404
    );
}

/// Responses: status declared (exact, class, default), media type, JSON body against its
/// schema with `writeOnly` properties forbidden.
#[test]
fn responses_by_status_media_type_and_schema() {
    let d = dir("responses");
    std::fs::write(
        d.join("api.yaml"),
        r##"
openapi: 3.0.3
info: { title: r, version: "1" }
paths:
  /users/{id}:
    get:
      parameters: [{ name: id, in: path, required: true, schema: { type: integer } }]
      responses:
        "200":
          description: ok
          content:
            application/json:
              schema:
                type: object
                required: [id]
                properties:
                  id: { type: integer }
                  password: { type: string, writeOnly: true }
        "4XX":
          description: client error
          content:
            application/problem+json: { schema: { type: object } }
        "204": { description: empty }
"##,
    )
    .unwrap();
    let path = d.join("api.yaml");
    let plain = Spec::load(&path).unwrap();
    let op = plain
        .check(&req("GET", "/users/1", &[], None), STRICT)
        .unwrap();
    assert!(
        !op.has_responses(),
        "responses are compiled only when asked"
    );
    let spec = Spec::load_with(&path, rampart_openapi::LoadOptions { responses: true }).unwrap();
    let op = spec
        .check(&req("GET", "/users/1", &[], None), STRICT)
        .unwrap();
    assert!(std::ptr::eq(spec.operation(op.at).unwrap(), op));
    let json = Some("application/json");
    let head = op.check_response_head(200, json);
    assert!(head.violations.is_empty() && head.body_schema);
    assert!(op.check_response_body(200, json, br#"{"id":1}"#).is_empty());
    let v = op.check_response_body(200, json, br#"{"id":1,"password":"hunter2"}"#);
    assert_eq!(v[0].pointer, "/response/body/password", "{v:?}");
    let v = op.check_response_body(200, json, br#"{"id":"one"}"#);
    assert_eq!(v[0].pointer, "/response/body/id", "{v:?}");
    let v = op.check_response_head(500, json).violations;
    assert_eq!(v[0].pointer, "/response/status");
    assert!(op
        .check_response_head(404, Some("application/problem+json"))
        .violations
        .is_empty());
    let v = op.check_response_head(404, Some("text/html")).violations;
    assert_eq!(v[0].pointer, "/response/header/content-type");
    assert!(op.check_response_head(204, None).violations.is_empty());
}

/// The published document: other files inlined, internal entries and sensitive examples
/// gone, only the public server.
#[test]
fn the_published_document_hides_what_is_internal() {
    let d = dir("public");
    std::fs::write(
        d.join("api.yaml"),
        r##"
openapi: 3.0.3
info: { title: shop, version: "1" }
servers: [{ url: "http://10.0.0.5:8080/v1" }]
paths:
  /items:
    get:
      operationId: listItems
      servers: [{ url: "http://internal" }]
      responses: { "200": { description: ok, content: { application/json: { schema: { $ref: "parts.yaml#/Item" } } } } }
    delete:
      operationId: purgeAll
      x-internal: true
  /admin:
    x-internal: true
    get: { operationId: adminStats }
"##,
    )
    .unwrap();
    std::fs::write(
        d.join("parts.yaml"),
        r##"
Item:
  type: object
  required: [id, cost]
  properties:
    id: { type: integer }
    cost: { type: number, x-internal: true }
    token: { type: string, x-sensitive: true, example: "sk_live_123" }
  examples:
    - { id: 1 }
"##,
    )
    .unwrap();
    let v =
        rampart_openapi::public_document(&d.join("api.yaml"), Some("https://api.example.com/v1"))
            .unwrap();
    let text = v.to_string();
    for hidden in [
        "purgeAll",
        "adminStats",
        "/admin",
        "cost",
        "sk_live_123",
        "10.0.0.5",
        "internal",
        "parts.yaml",
    ] {
        assert!(!text.contains(hidden), "{hidden} published: {text}");
    }
    assert!(
        text.contains("listItems") && text.contains("https://api.example.com/v1"),
        "{text}"
    );
    let item =
        &v["paths"]["/items"]["get"]["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(item["required"], serde_json::json!(["id"]));
    let none = rampart_openapi::public_document(&d.join("api.yaml"), None).unwrap();
    assert!(none.get("servers").is_none());
}
