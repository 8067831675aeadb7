//! A fleet sharing one config through the machine's PostgreSQL (a database of its own per
//! test): an admin change on one node is served by the others within a second; with the
//! database cut off the nodes keep serving, refuse writes, and catch up when it returns; a
//! version that does not build is refused on every node, which keep their config; a node
//! restarted while the database is down starts on its cache; a client stream to every node
//! sees no failure throughout.
mod common;
use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};

const ADMIN: &str = "store-admin-token-0123456789";

async fn fresh_db() -> (String, tokio_postgres::Client) {
    let name = format!(
        "rampart_fleet_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let (c, conn) = tokio_postgres::connect(
        "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
        tokio_postgres::NoTls,
    )
    .await
    .expect("PostgreSQL on 127.0.0.1:5432");
    tokio::spawn(conn);
    c.batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap();
    let (db, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port=5432 user=postgres dbname={name}"),
        tokio_postgres::NoTls,
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    (name, db)
}

/// A TCP relay in front of PostgreSQL that the test can cut (every connection closed, new
/// ones refused) and restore on the same port: the database "goes away" for the nodes.
struct Relay {
    port: u16,
    tasks: Arc<Mutex<Vec<tokio::task::JoinHandle<()>>>>,
    /// Accept connections but never answer: a database that hangs.
    hang: Arc<AtomicBool>,
}

impl Relay {
    async fn start(port: u16) -> Relay {
        let r = Relay {
            port,
            tasks: Default::default(),
            hang: Default::default(),
        };
        r.up().await;
        r
    }

    async fn up(&self) {
        // The aborted listener of a cut closes asynchronously: try again for a moment.
        let mut tries = 0;
        let listener = loop {
            match TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) if tries < 100 => {
                    tries += 1;
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("relay port {}: {e}", self.port),
            }
        };
        let tasks = self.tasks.clone();
        let hang = self.hang.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let hang = hang.load(Ordering::Relaxed);
                let t = tokio::spawn(async move {
                    if hang {
                        tokio::time::sleep(Duration::from_secs(3600)).await;
                        drop(client);
                    } else if let Ok(mut db) = TcpStream::connect("127.0.0.1:5432").await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut db).await;
                    }
                });
                tasks.lock().unwrap().push(t);
            }
        });
        self.tasks.lock().unwrap().push(accept);
    }

    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

fn node_body(
    url: &str,
    cache: &std::path::Path,
    events: &std::path::Path,
    up: &Upstream,
) -> String {
    format!(
        "store:\n  postgres:\n    url: {url}\n    cache: {}\n    connect_timeout: 1s\nevents:\n  file: {}\nupstreams:\n{}routes:\n  - name: base\n    paths: [\"/base\"]\n    upstream: u\n",
        cache.display(),
        events.display(),
        upstream_yaml("u", &[up.addr], "")
    )
}

fn admin_yaml() -> String {
    format!(
        "  tokens:\n    - {{name: fleet-admin, role: admin, sha256: {}}}\n",
        sha256_hex(ADMIN.as_bytes())
    )
}

async fn status(port: u16, path: &str) -> u16 {
    match client()
        .get(format!("http://127.0.0.1:{port}{path}"))
        .send()
        .await
    {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0,
    }
}

async fn put_route(admin_port: u16, name: &str, path: &str) -> (u16, Value) {
    let base = format!("http://127.0.0.1:{admin_port}");
    let c = client();
    let etag = c
        .get(format!("{base}/config"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .headers()["etag"]
        .to_str()
        .unwrap()
        .to_string();
    let r = c
        .put(format!("{base}/routes/{name}"))
        .bearer_auth(ADMIN)
        .header("If-Match", etag)
        .json(&json!({"paths": [path], "upstream": "u"}))
        .send()
        .await
        .unwrap();
    let s = r.status().as_u16();
    (s, r.json().await.unwrap_or(Value::Null))
}

async fn served_everywhere(ports: &[u16], path: &str, within: Duration) -> Duration {
    let t = Instant::now();
    loop {
        let mut all = true;
        for p in ports {
            all &= status(*p, path).await == 200;
        }
        if all {
            return t.elapsed();
        }
        assert!(
            t.elapsed() < within,
            "{path} not served by every node within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Store a version directly, as another node (or an operator with SQL) would, announced.
async fn store_directly(db: &tokio_postgres::Client, document: &str) -> i64 {
    let v: i64 = db
        .query_one(
            "INSERT INTO rampart_config_versions (author, document) VALUES ('sql', $1) RETURNING version",
            &[&document],
        )
        .await
        .unwrap()
        .get(0);
    db.execute("SELECT pg_notify('rampart_config', $1)", &[&v.to_string()])
        .await
        .unwrap();
    v
}

async fn latest_document(db: &tokio_postgres::Client) -> String {
    db.query_one(
        "SELECT document FROM rampart_config_versions ORDER BY version DESC LIMIT 1",
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_nodes_share_one_config_through_postgres() {
    let up = Upstream::start("u").await;
    let (name, db) = fresh_db().await;
    let relay = Relay::start(free_port()).await;
    let url = format!("postgres://postgres@127.0.0.1:{}/{name}", relay.port);
    let dir = temp_dir("fleet");
    let nodes: Vec<Gateway> = ["a", "b", "c"]
        .iter()
        .map(|n| {
            Gateway::start_full(
                &node_body(
                    &url,
                    &dir.join(format!("{n}.cache.yaml")),
                    &dir.join(format!("{n}.events.jsonl")),
                    &up,
                ),
                "",
                &admin_yaml(),
            )
        })
        .collect();
    let mut nodes = nodes;
    let ports: Vec<u16> = nodes.iter().map(|g| g.port).collect();
    let seeded = latest_document(&db).await;
    assert!(
        seeded.contains("/base") && !seeded.contains("listeners"),
        "{seeded}"
    );

    // A steady stream of requests to every node for the whole test.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let paused = Arc::new(AtomicBool::new(false));
    let mut stream = Vec::new();
    for (i, port) in ports.iter().enumerate() {
        let (stop, ok, failed, paused, port) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            paused.clone(),
            *port,
        );
        stream.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Node c (index 2) is restarted on purpose near the end.
                if !(i == 2 && paused.load(Ordering::Relaxed)) {
                    match status(port, "/base").await {
                        200 => {
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        s => failed.lock().unwrap().push(format!("node {i}: {s}")),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }

    // 1. An admin change on A is served by B and C within a second.
    let (s, r) = put_route(nodes[0].admin_port, "one", "/one").await;
    assert_eq!(s, 201, "{r}");
    let took = served_everywhere(&ports, "/one", Duration::from_secs(1)).await;
    println!("a change on A served by every node after {took:?}");

    // A node's own sections are not the fleet's: changing them through the API is refused.
    let base = format!("http://127.0.0.1:{}", nodes[0].admin_port);
    let r = client()
        .get(format!("{base}/config"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    let etag = r.headers()["etag"].to_str().unwrap().to_string();
    let mut doc: Value = r.json().await.unwrap();
    doc["server"] = json!({"watch_interval": "3s"});
    let r = client()
        .put(format!("{base}/config"))
        .bearer_auth(ADMIN)
        .header("If-Match", etag)
        .json(&doc)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["errors"][0]["pointer"], "/server", "{e}");

    // 2. The database goes away: every node keeps serving; a write is refused, unchanged.
    relay.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (s, r) = put_route(nodes[1].admin_port, "refused", "/refused").await;
    assert_eq!(s, 503, "{r}");
    assert_eq!(status(ports[1], "/refused").await, 404);
    // Meanwhile a version lands in the database (another node, still connected).
    let doc = latest_document(&db).await;
    let with_two = doc.replace(
        "routes:\n",
        "routes:\n- name: two\n  paths:\n  - /two\n  upstream: u\n",
    );
    assert_ne!(with_two, doc);
    store_directly(&db, &with_two).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(status(ports[0], "/two").await, 404, "cut off: not seen yet");
    // A database that accepts connections but never answers: writes are refused within
    // the connect timeout (1 s here), the data plane does not notice.
    relay.hang.store(true, Ordering::Relaxed);
    relay.up().await;
    let t = Instant::now();
    let (s, r) = put_route(nodes[0].admin_port, "hung", "/hung").await;
    assert_eq!(s, 503, "{r}");
    assert!(t.elapsed() < Duration::from_secs(4), "{:?}", t.elapsed());
    relay.cut();
    relay.hang.store(false, Ordering::Relaxed);

    // 3. The database comes back: every node catches up.
    relay.up().await;
    let took = served_everywhere(&ports, "/two", Duration::from_secs(5)).await;
    println!("caught up after the outage within {took:?}");

    // 4. A version that does not build is refused on every node; they keep their config.
    let gens: Vec<u64> = nodes.iter().map(|g| g.readyz_generation()).collect();
    let bad = with_two.replace("upstream: u\n", "upstream: nowhere\n");
    let v_bad = store_directly(&db, &bad).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    for n in ["a", "b", "c"] {
        let path = dir.join(format!("{n}.events.jsonl"));
        loop {
            let ev = std::fs::read_to_string(&path).unwrap_or_default();
            if ev.contains(&format!("version {v_bad} by sql was refused")) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {n} did not report version {v_bad}:\n{ev}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let after: Vec<u64> = nodes.iter().map(|g| g.readyz_generation()).collect();
    assert_eq!(gens, after, "nothing swapped");
    for p in &ports {
        assert_eq!(status(*p, "/two").await, 200);
    }
    // The next good version, made through the API on top of the bad one, lands everywhere.
    let (s, r) = put_route(nodes[2].admin_port, "three", "/three").await;
    assert_eq!(
        s, 412,
        "C's config is not the store's latest (the bad version): {r}"
    );
    db.execute(
        "DELETE FROM rampart_config_versions WHERE version = $1",
        &[&v_bad],
    )
    .await
    .unwrap();
    let (s, r) = put_route(nodes[2].admin_port, "three", "/three").await;
    assert_eq!(s, 201, "{r}");
    served_everywhere(&ports, "/three", Duration::from_secs(1)).await;

    // 5. A node restarted while the database is down starts on its cache.
    relay.cut();
    paused.store(true, Ordering::Relaxed);
    // A request to C already on its way finishes before C stops.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let c_body = node_body(
        &url,
        &dir.join("c.cache.yaml"),
        &dir.join("c.events.jsonl"),
        &up,
    );
    drop(nodes.pop());
    let c = Gateway::start_full(&c_body, "", &admin_yaml());
    assert_eq!(status(c.port, "/three").await, 200, "from the cache");
    assert_eq!(status(c.port, "/two").await, 200);
    relay.up().await;
    // And it follows the store again once it is back.
    let (s, r) = put_route(nodes[0].admin_port, "four", "/four").await;
    assert_eq!(s, 201, "{r}");
    served_everywhere(
        &[ports[0], ports[1], c.port],
        "/four",
        Duration::from_secs(5),
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    for t in stream {
        t.await.unwrap();
    }
    let failed = failed.lock().unwrap();
    println!("{} requests served", ok.load(Ordering::Relaxed));
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    assert!(ok.load(Ordering::Relaxed) > 100);
    let ev = std::fs::read_to_string(dir.join("a.events.jsonl")).unwrap();
    assert!(
        ev.contains("\"action\":\"degraded\"") && ev.contains("\"action\":\"restored\""),
        "{ev}"
    );
}
