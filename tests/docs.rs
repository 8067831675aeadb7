//! API documentation served by a route, checked in a real browser: headless Chromium
//! (Debian's `chromium`, driven over the DevTools protocol) renders the operations of the
//! published description, never the internal one, with the API key the route requires; the
//! page and the description are refused without it.
mod common;
use common::browser::Browser;
use common::*;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const KEY: &str = "docs-reader-key-0123456789";

const SPEC: &str = r##"
openapi: 3.0.3
info: { title: Inventory API, version: "2.1" }
servers: [{ url: "http://10.1.2.3:8080" }]
paths:
  /items:
    get:
      operationId: listItems
      summary: List the items
      parameters: [{ name: limit, in: query, schema: { type: integer } }]
    post:
      operationId: createItem
      requestBody:
        content:
          application/json:
            schema: { type: object, properties: { name: { type: string }, cost: { type: number, x-internal: true } } }
  /items/purge:
    post: { operationId: purgeEverything, x-internal: true }
  /reports:
    get: { operationId: staffReport, x-groups: [staff] }
    post: { operationId: financeReport, x-groups: [finance] }
"##;

/// Opening the documentation page and waiting for its script.
trait DocsPage {
    /// Opens `url` and waits for the page's script to finish (`data-ready`).
    async fn open(&mut self, url: &str) -> String;
}

impl DocsPage for Browser {
    async fn open(&mut self, url: &str) -> String {
        self.call("Page.navigate", json!({"url": url})).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            // "no-page": something else loaded (an error document has no operations list).
            let ready = self
                .eval(
                    "document.readyState === 'complete' && !document.getElementById('operations') \
                     ? 'no-page' : (document.body ? (document.body.dataset.ready || '') : '')",
                )
                .await;
            if let Some(r) = ready.as_str().filter(|r| !r.is_empty()) {
                return r.to_string();
            }
            if Instant::now() > deadline {
                return String::new();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn documentation_renders_in_a_browser_behind_auth() {
    let dir = temp_dir("docs");
    let spec = dir.join("inventory.yaml");
    std::fs::write(&spec, SPEC).unwrap();
    let gw = Gateway::start(&format!(
        "consumers:\n  - id: reader\n    groups: [staff]\n    api_keys:\n      - sha256: {}\nauth:\n  api_key: {{ header: X-API-Key }}\nroutes:\n  - name: docs\n    paths: [\"/docs\"]\n    auth: {{ methods: [api_key] }}\n    docs:\n      spec: {}\n      server_url: https://api.example.com\n      by_groups: true\n",
        sha256_hex(KEY.as_bytes()),
        spec.display()
    ));

    // Without the key: nothing, neither the page nor the description.
    for path in ["/docs/", "/docs/openapi.json", "/docs/docs.js"] {
        let r = client().get(gw.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path}");
    }
    // With it: the published description, sanitized; security headers on the page.
    let get = |path: &str| client().get(gw.url(path)).header("X-API-Key", KEY);
    let doc: Value = get("/docs/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = doc.to_string();
    assert!(
        text.contains("listItems") && text.contains("https://api.example.com"),
        "{text}"
    );
    for hidden in [
        "purgeEverything",
        "cost",
        "10.1.2.3",
        "financeReport",
        "x-groups",
    ] {
        assert!(!text.contains(hidden), "{hidden}: {text}");
    }
    let page = get("/docs/").send().await.unwrap();
    assert_eq!(page.status(), 200);
    let csp = page.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe"),
        "{csp}"
    );
    let html = page.text().await.unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no outside asset: {html}"
    );
    let r = get("/docs").send().await.unwrap();
    assert_eq!(r.status(), 200, "redirected to /docs/");
    let r = client()
        .post(gw.url("/docs/"))
        .header("X-API-Key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);

    // The browser: without the key the page is an error document, with it the operations.
    let mut b = Browser::start().await;
    let state = b.open(&gw.url("/docs/")).await;
    assert_eq!(state, "no-page", "rendered without credentials");
    let body = b.eval("document.body ? document.body.innerText : ''").await;
    assert!(!body.to_string().contains("listItems"), "{body}");

    b.call(
        "Network.setExtraHTTPHeaders",
        json!({"headers": {"X-API-Key": KEY}}),
    )
    .await;
    assert_eq!(b.open(&gw.url("/docs/")).await, "true");
    let ops = b
        .eval("Array.from(document.querySelectorAll('section.op')).map(s => s.dataset.operation)")
        .await;
    // The reader's group (staff) sees its report, not finance's.
    assert_eq!(ops, json!(["listItems", "createItem", "staffReport"]));
    let title = b.eval("document.getElementById('title').textContent").await;
    assert_eq!(title, "Inventory API");
    let text = b.eval("document.body.innerText").await.to_string();
    assert!(
        text.contains("List the items") && text.contains("/items"),
        "{text}"
    );
    assert!(!text.contains("purge") && !text.contains("cost"), "{text}");
}
