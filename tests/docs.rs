//! API documentation served by a route, checked in a real browser: headless Chromium
//! (Debian's `chromium`, driven over the DevTools protocol) renders the operations of the
//! published description, never the internal one, with the API key the route requires; the
//! page and the description are refused without it.
mod common;
use common::*;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::io::BufRead;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

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

/// A headless Chromium and one page, over the DevTools protocol.
struct Browser {
    child: std::process::Child,
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    session: String,
    next: u64,
    _profile: std::path::PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        let profile = temp_dir("chromium");
        let mut child = std::process::Command::new("chromium")
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
            ])
            .arg("--remote-debugging-port=0")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("chromium (scripts/test installs it)");
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID"
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(url) = line.split("listening on ").nth(1) {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        });
        let url = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("chromium printed no DevTools address");
        let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let mut b = Browser {
            child,
            ws,
            session: String::new(),
            next: 0,
            _profile: profile,
        };
        let target = b
            .call("Target.createTarget", json!({"url": "about:blank"}))
            .await;
        let attached = b
            .call(
                "Target.attachToTarget",
                json!({"targetId": target["targetId"], "flatten": true}),
            )
            .await;
        b.session = attached["sessionId"].as_str().unwrap().to_string();
        b.call("Network.enable", json!({})).await;
        b.call("Page.enable", json!({})).await;
        b
    }

    async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next += 1;
        let id = self.next;
        let mut msg = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            msg["sessionId"] = self.session.clone().into();
        }
        self.ws.send(Message::text(msg.to_string())).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let m = tokio::time::timeout(left, self.ws.next())
                .await
                .unwrap_or_else(|_| panic!("{method}: no answer"))
                .unwrap()
                .unwrap();
            let Message::Text(t) = m else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    async fn eval(&mut self, expr: &str) -> Value {
        let r = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expr, "returnByValue": true}),
            )
            .await;
        r["result"]["value"].clone()
    }

    /// Opens `url` and waits for the page's script to finish (`data-ready`).
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

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
