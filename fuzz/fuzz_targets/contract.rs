//! One request checked against a small OpenAPI contract that uses every parameter style,
//! a recursive body schema with `readOnly`, forms and multipart. Input layout: the first
//! byte picks the method and media type; then `target \n header-lines \n\n body`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rampart_openapi::{Options, Request, Spec};
use std::sync::OnceLock;

const SPEC: &str = r##"
openapi: 3.0.3
info: { title: fuzz, version: "1" }
servers: [{ url: /api }]
paths:
  /items/{id}/{base}...{head}:
    parameters:
      - { name: id, in: path, required: true, style: label, schema: { type: array, items: { type: integer } } }
      - { name: base, in: path, required: true, schema: { type: string, pattern: "^[a-z]{1,8}$" } }
      - { name: head, in: path, required: true, schema: { type: string } }
    get:
      parameters:
        - { name: limit, in: query, schema: { type: integer, minimum: 1 } }
        - { name: tags, in: query, schema: { type: array, items: { type: string } } }
        - { name: ids, in: query, style: pipeDelimited, explode: false, schema: { type: array, items: { type: number } } }
        - { name: f, in: query, style: deepObject, schema: { type: object, properties: { a: { type: boolean } } } }
        - { name: o, in: query, schema: { type: object, properties: { x: { type: integer }, y: { type: string } } } }
        - { name: X-N, in: header, schema: { type: integer, nullable: true } }
        - { name: c, in: cookie, schema: { type: string, format: email } }
        - { name: j, in: query, content: { application/json: { schema: { type: object } } } }
  /items:
    post:
      requestBody:
        required: true
        content:
          application/json: { schema: { $ref: "#/components/schemas/Node" } }
          application/x-www-form-urlencoded: { schema: { $ref: "#/components/schemas/Node" } }
          multipart/form-data: { schema: { $ref: "#/components/schemas/Node" } }
          text/plain: { schema: { type: string, maxLength: 10 } }
components:
  schemas:
    Node:
      type: object
      required: [name]
      properties:
        id: { type: integer, readOnly: true }
        name: { type: string, minLength: 1 }
        n: { type: number, minimum: 0, exclusiveMinimum: true }
        kids: { type: array, items: { $ref: "#/components/schemas/Node" } }
        when: { type: string, format: date-time }
"##;

fn spec() -> &'static Spec {
    static S: OnceLock<Spec> = OnceLock::new();
    S.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("rampart-fuzz-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("api.yaml");
        std::fs::write(&p, SPEC).unwrap();
        Spec::load(&p).unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (method, ct) = match pick % 5 {
        0 => ("GET", None),
        1 => ("POST", Some("application/json")),
        2 => ("POST", Some("application/x-www-form-urlencoded")),
        3 => ("POST", Some("multipart/form-data; boundary=b")),
        _ => ("POST", Some("text/plain; charset=utf-8")),
    };
    let text = String::from_utf8_lossy(rest);
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let target = lines.next().unwrap_or("/");
    let mut headers: Vec<(String, Vec<u8>)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().as_bytes().to_vec()))
        .collect();
    if let Some(ct) = ct {
        headers.push(("content-type".into(), ct.as_bytes().to_vec()));
    }
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let req = Request {
        method,
        path,
        query,
        headers: &headers,
        body: Some(body.as_bytes()),
    };
    for refuse_unknown_query in [true, false] {
        let opts = Options {
            refuse_unknown_query,
            base_path: None,
        };
        if let Err(r) = spec().check(&req, opts) {
            assert!(!r.violations.is_empty() && r.violations.len() <= rampart_openapi::MAX_VIOLATIONS);
        }
    }
});
