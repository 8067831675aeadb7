//! Test harness: real upstream servers, the real `rampart` binary on free ports, raw sockets.
#![allow(dead_code)]

pub mod browser;
pub mod dns;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `N` ports free a moment ago and distinct from each other (each held until all are
/// chosen; one at a time, the kernel may hand out the same one twice).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held: Vec<StdListener> = (0..N)
        .map(|_| StdListener::bind("127.0.0.1:0").unwrap())
        .collect();
    std::array::from_fn(|i| held[i].local_addr().unwrap().port())
}

/// A real HTTP/1.1 upstream. It answers JSON describing the request it saw:
/// `{"server": NAME, "method", "path", "query", "headers": {..}, "body": ".."}`.
/// `/slow?ms=N` waits first; `/status/N` answers N; `/big?mb=N` sends N MiB; `/healthz`
/// answers 200 or 503.
pub struct Upstream {
    pub addr: SocketAddr,
    pub name: String,
    pub hits: Arc<AtomicUsize>,
    pub healthy: Arc<AtomicBool>,
    pub health_hits: Arc<AtomicUsize>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hits = Arc::new(AtomicUsize::new(0));
        let healthy = Arc::new(AtomicBool::new(true));
        let health_hits = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
        let (n, h, hh, hl) = (
            name.to_string(),
            hits.clone(),
            healthy.clone(),
            health_hits.clone(),
        );
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(s) => s, Err(_) => continue },
                    _ = &mut rx => break,
                };
                let (n, h, hh, hl) = (n.clone(), h.clone(), hh.clone(), hl.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (n, h, hh, hl) = (n.clone(), h.clone(), hh.clone(), hl.clone());
                        async move { Ok::<_, hyper::Error>(handle(req, &n, &h, &hh, &hl).await) }
                    });
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(io, svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            addr,
            name: name.to_string(),
            hits,
            healthy,
            health_hits,
            shutdown: Some(tx),
        }
    }

    pub fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn handle(
    req: Request<hyper::body::Incoming>,
    name: &str,
    hits: &AtomicUsize,
    healthy: &AtomicBool,
    health_hits: &AtomicUsize,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    if path == "/healthz" {
        health_hits.fetch_add(1, Ordering::SeqCst);
        let code = if healthy.load(Ordering::SeqCst) {
            200
        } else {
            503
        };
        return Response::builder()
            .status(code)
            .body(Full::new(Bytes::from_static(b"{}")))
            .unwrap();
    }
    hits.fetch_add(1, Ordering::SeqCst);
    let query = req.uri().query().map(|s| s.to_string());
    if path.starts_with("/slow") {
        let ms: u64 = query
            .as_deref()
            .and_then(|q| q.strip_prefix("ms="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1000);
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    if path == "/big" {
        // `/big?mb=N`: N MiB of `x`.
        let mb: usize = query
            .as_deref()
            .and_then(|q| q.strip_prefix("mb="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        return Response::builder()
            .header("Content-Type", "application/octet-stream")
            .body(Full::new(Bytes::from(vec![b'x'; mb << 20])))
            .unwrap();
    }
    let status: u16 = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let method = req.method().to_string();
    let mut headers = serde_json::Map::new();
    for (k, v) in req.headers() {
        headers.insert(
            k.as_str().to_string(),
            String::from_utf8_lossy(v.as_bytes()).into_owned().into(),
        );
    }
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    if method == "POST" && path == "/reflect" {
        return reflect(&body);
    }
    let out = serde_json::json!({
        "server": name,
        "method": method,
        "path": path,
        "query": query,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
    });
    let mut resp = Response::builder()
        .status(status)
        .header("Content-Type", "application/json")
        .header("Server", "secret-upstream/1.2.3")
        .header("X-Powered-By", "internal-framework");
    if path.contains("cors-open") {
        // A backend with a CORS policy of its own, as wide as can be.
        resp = resp
            .header("Access-Control-Allow-Origin", "*")
            .header("Access-Control-Allow-Credentials", "true")
            .header("Access-Control-Allow-Methods", "*")
            .header("Vary", "Accept-Encoding");
    }
    resp.body(Full::new(Bytes::from(out.to_string()))).unwrap()
}

/// `POST /reflect` as CRS's test backend (albedo) does it: the JSON body says the status,
/// headers and body (`body`, or base64 `encodedBody`) of the response.
pub fn reflect(body: &[u8]) -> Response<Full<Bytes>> {
    use base64::Engine;
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    let mut b = Response::builder().status(v["status"].as_u64().unwrap_or(200) as u16);
    let mut typed = false;
    if let Some(h) = v["headers"].as_object() {
        for (k, val) in h {
            typed |= k.eq_ignore_ascii_case("content-type");
            b = b.header(k.as_str(), val.as_str().unwrap_or(""));
        }
    }
    let out = match (v["body"].as_str(), v["encodedBody"].as_str()) {
        (Some(t), _) => t.as_bytes().to_vec(),
        (None, Some(e)) => base64::engine::general_purpose::STANDARD
            .decode(e)
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if !typed {
        let html = out.windows(5).any(|w| w.eq_ignore_ascii_case(b"<html"));
        b = b.header(
            "Content-Type",
            if html {
                "text/html; charset=utf-8"
            } else {
                "text/plain; charset=utf-8"
            },
        );
    }
    b.body(Full::new(Bytes::from(out))).unwrap()
}

/// The `rampart` binary running `serve --config` on a config written to a temp file.
pub struct Gateway {
    pub child: Child,
    pub port: u16,
    pub admin_port: u16,
    pub config_path: PathBuf,
    pub log_path: PathBuf,
    pub dir: PathBuf,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "rampart-test-{tag}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn fastrand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(Instant::now().elapsed().as_nanos() as u64);
    h.finish()
}

impl Gateway {
    /// `body` is the config without `listeners`, `admin` and `access_log`, which the harness
    /// adds with free ports and a log file.
    pub fn start(body: &str) -> Gateway {
        Self::start_with_listeners(body, "")
    }

    /// `body` may begin with extra listener entries (indented list items), which follow the
    /// harness's plain listener; `plain_extra` adds keys to the plain listener itself.
    pub fn start_with_listeners(body: &str, plain_extra: &str) -> Gateway {
        Self::start_full(body, plain_extra, "")
    }

    /// As [`Gateway::start_with_listeners`], with `admin_extra` (indented keys) added to
    /// the `admin` section.
    pub fn start_full(body: &str, plain_extra: &str, admin_extra: &str) -> Gateway {
        Self::start_env(body, plain_extra, admin_extra, &[])
    }

    /// As [`Gateway::start_full`], with variables added to the gateway's environment.
    pub fn start_env(
        body: &str,
        plain_extra: &str,
        admin_extra: &str,
        env: &[(&str, &std::ffi::OsStr)],
    ) -> Gateway {
        let https_admin = admin_extra.contains("tls:");
        let mut attempt = 0;
        loop {
            let dir = temp_dir("gw");
            let [port, admin_port] = free_ports();
            let log_path = dir.join("access.log");
            let config_path = dir.join("rampart.yaml");
            let text = Self::wrap_with(body, plain_extra, port, admin_port, &log_path).replacen(
                "\naccess_log:",
                &format!("\n{admin_extra}access_log:"),
                1,
            );
            std::fs::write(&config_path, text).unwrap();
            let stderr = std::fs::File::create(dir.join("stderr.log")).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_rampart"))
                .args(["serve", "--config"])
                .arg(&config_path)
                .env("RUST_LOG", "warn")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .expect("start rampart");
            let mut gw = Gateway {
                child,
                port,
                admin_port,
                config_path,
                log_path,
                dir,
            };
            // An HTTPS admin listener: the public port and the admin port accepting is
            // ready enough (the test then speaks TLS to it).
            let why = match gw.wait_up(https_admin) {
                Ok(()) => return gw,
                Err(why) => why,
            };
            // Another test's process took one of the harness's ports between its choice
            // and the start: choose again. Anything else is the test's failure.
            let ours = [port, admin_port]
                .iter()
                .any(|p| why.contains(&format!("cannot listen on 127.0.0.1:{p}")));
            attempt += 1;
            if !ours || attempt == 3 {
                panic!("{why}");
            }
        }
    }

    /// Why the process is gone, if it is (a refused config, a port already taken).
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!(
                "rampart exited ({status}); stderr:\n{}",
                self.stderr()
            )),
            _ => None,
        }
    }

    /// Until the admin API says ready and the public port accepts (or, `listening_only`,
    /// both ports accept), at most 20 s; the process exiting ends the wait at once.
    fn wait_up(&mut self, listening_only: bool) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(why) = self.exited() {
                return Err(why);
            }
            let admin = if listening_only {
                TcpStream::connect(("127.0.0.1", self.admin_port)).is_ok()
            } else {
                matches!(raw_get(self.admin_port, "/readyz"), Ok((200, _)))
            };
            if admin && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "rampart did not become ready in 20 s; stderr:\n{}",
            self.stderr()
        ))
    }

    pub fn wrap(body: &str, port: u16, admin_port: u16, log: &std::path::Path) -> String {
        Self::wrap_with(body, "", port, admin_port, log)
    }

    fn wrap_with(
        body: &str,
        plain_extra: &str,
        port: u16,
        admin_port: u16,
        log: &std::path::Path,
    ) -> String {
        // Extra listeners (lines starting with "  - ") must directly follow the plain one.
        format!(
            "admin:\n  address: 127.0.0.1:{admin_port}\naccess_log:\n  target: {}\nlisteners:\n  - name: public\n    address: 127.0.0.1:{port}\n{plain_extra}{body}",
            log.display()
        )
    }

    /// Rewrite the config file with a new body (same ports) without signalling.
    pub fn write_config(&self, body: &str) {
        let text = Self::wrap(body, self.port, self.admin_port, &self.log_path);
        let tmp = self.dir.join("rampart.yaml.tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, &self.config_path).unwrap();
    }

    pub fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP failed");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{}", self.port, path)
    }

    pub fn metrics(&self) -> String {
        match raw_get(self.admin_port, "/metrics") {
            Ok((_, body)) => body,
            Err(e) => panic!(
                "admin listener unreachable ({e}); stderr:\n{}",
                self.stderr()
            ),
        }
    }

    pub fn readyz_generation(&self) -> u64 {
        let body = raw_get(self.admin_port, "/readyz").unwrap().1;
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["config_generation"].as_u64().unwrap()
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The access log once it holds every one of `needles` (lines are written after the
    /// response, off the request path), or as it is after 3 s.
    pub fn access_log_with(&self, needles: &[&str]) -> String {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.access_log();
            if needles.iter().all(|n| log.contains(n)) || Instant::now() > deadline {
                return log;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Current value of a metric line starting with `prefix` (name and labels), or 0.
    pub fn metric(&self, prefix: &str) -> f64 {
        self.metrics()
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A one-shot HTTP/1.1 GET over a raw socket: (status, body).
pub fn raw_get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let resp = raw_request(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )?;
    Ok((status_of(&resp), body_of(&resp)))
}

/// Send raw bytes, read until the server closes (or 5 s pass).
pub fn raw_request(port: u16, bytes: &[u8]) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(bytes)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    Ok(String::from_utf8_lossy(&out).into_owned())
}

pub fn status_of(resp: &str) -> u16 {
    resp.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

pub fn body_of(resp: &str) -> String {
    resp.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

pub fn header_of(resp: &str, name: &str) -> Option<String> {
    let head = resp.split("\r\n\r\n").next()?;
    head.lines().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// A client that speaks HTTP/2 without TLS from the first byte (h2c prior knowledge).
pub fn h2c() -> reqwest::Client {
    reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// An upstream block for one or more upstream servers.
pub fn upstream_yaml(name: &str, addrs: &[SocketAddr], extra: &str) -> String {
    let targets: Vec<String> = addrs.iter().map(|a| format!("\"{a}\"")).collect();
    format!("  {name}:\n    targets: [{}]\n{extra}", targets.join(", "))
}

/// Hex SHA-256, as configs store API keys and as certificate fingerprints are shown.
pub fn sha256_hex(data: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Runs the `rampart` binary: (exit code, stdout, stderr).
pub fn rampart(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Writes a self-signed certificate for `localhost` into `dir`: (cert path, key path).
pub fn self_signed_files(dir: &std::path::Path) -> (PathBuf, PathBuf) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let (cert, key) = (dir.join("c.pem"), dir.join("k.pem"));
    std::fs::write(&cert, ck.cert.pem()).unwrap();
    std::fs::write(&key, ck.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

/// `rampart validate` must refuse the file and say each of `needles`; returns its stderr.
pub fn validate_refuses(path: &std::path::Path, needles: &[&str]) -> String {
    let (code, err) = validate(path);
    assert_eq!(code, Some(1), "{err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?}:\n{err}");
    }
    err
}

/// A config of one listener and `rest` (upstreams, routes, ...) written to a new file, which
/// `rampart validate` must refuse saying each of `needles`.
pub fn refused_config(tag: &str, rest: &str, needles: &[&str]) -> String {
    let path = temp_dir(tag).join("rampart.yaml");
    let text = format!("listeners:\n  - name: p\n    address: 127.0.0.1:1\n{rest}");
    std::fs::write(&path, text).unwrap();
    validate_refuses(&path, needles)
}

/// `rampart validate --config PATH`: (exit code, stderr).
pub fn validate(path: &std::path::Path) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_rampart"))
        .args(["validate", "--config"])
        .arg(path)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The Flask app in `tests/backends/flask_app.py` on a free port, served by Werkzeug
/// (`werkzeug`: decodes chunked bodies, drops `_` header names) or the standard library's
/// wsgiref (`wsgiref`: folds `_` and `-` alike, as CGI does). Killed on drop.
pub struct Flask {
    pub addr: SocketAddr,
    child: Child,
}

impl Flask {
    pub fn start(server: &str) -> Flask {
        let port = free_port();
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/backends/flask_app.py");
        let child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(server)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 with flask (scripts/test installs it)");
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "flask backend did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        Flask { addr, child }
    }
}

impl Drop for Flask {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An upstream that records every byte it receives, per connection, and answers each
/// complete HTTP/1.1 request it parses (Content-Length or chunked body) with a small 200
/// naming the request's ordinal. What a proxy sends can be checked byte for byte, and a
/// stray byte is read as the start of another request, as a real backend would.
pub struct RawUpstream {
    pub addr: SocketAddr,
    pub received: Arc<std::sync::Mutex<Vec<Vec<u8>>>>,
    pub requests: Arc<AtomicUsize>,
}

impl RawUpstream {
    pub fn start() -> RawUpstream {
        let listener = StdListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicUsize::new(0));
        let (rec, reqs) = (received.clone(), requests.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut s) = stream else { continue };
                let (rec, reqs) = (rec.clone(), reqs.clone());
                std::thread::spawn(move || {
                    let idx = {
                        let mut r = rec.lock().unwrap();
                        r.push(Vec::new());
                        r.len() - 1
                    };
                    let mut buf: Vec<u8> = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let n = match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        buf.extend_from_slice(&chunk[..n]);
                        rec.lock().unwrap()[idx].extend_from_slice(&chunk[..n]);
                        while let Some(used) = complete_request(&buf) {
                            buf.drain(..used);
                            let k = reqs.fetch_add(1, Ordering::SeqCst) + 1;
                            let body = format!("request {k}");
                            let resp = format!(
                                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                                body.len()
                            );
                            if s.write_all(resp.as_bytes()).is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        RawUpstream {
            addr,
            received,
            requests,
        }
    }

    /// Everything received on all connections, concatenated in connection order.
    pub fn all_bytes(&self) -> Vec<u8> {
        self.received.lock().unwrap().concat()
    }
}

/// The length of the first complete request in `buf`, if there is one.
fn complete_request(buf: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        // Garbage still counts as one (bad) request: the server answers and moves on.
        Err(_) => return buf.iter().position(|b| *b == b'\n').map(|p| p + 1),
        Ok(httparse::Status::Partial) => return None,
    };
    let mut cl = None;
    let mut chunked = false;
    for h in req.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            cl = std::str::from_utf8(h.value)
                .ok()?
                .trim()
                .parse::<usize>()
                .ok();
        }
        if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = h.value.eq_ignore_ascii_case(b"chunked");
        }
    }
    if chunked {
        let mut pos = head;
        loop {
            let line_end = buf[pos..].windows(2).position(|w| w == b"\r\n")? + pos;
            let size_text = std::str::from_utf8(&buf[pos..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            pos = line_end + 2;
            if size == 0 {
                // No trailers in these tests: the terminator's CRLF follows.
                return (buf.len() >= pos + 2).then_some(pos + 2);
            }
            if buf.len() < pos + size + 2 {
                return None;
            }
            pos += size + 2;
        }
    }
    let n = head + cl.unwrap_or(0);
    (buf.len() >= n).then_some(n)
}

/// A CRS release archive as the release page serves it (`coreruleset-VERSION/` holding
/// `crs-setup.conf.example` and `rules/`), built from `../shared/crs` (CRS 4.28.0).
pub fn crs_archive(version: &str) -> Vec<u8> {
    let shared = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/crs/rules");
    let top = format!("coreruleset-{version}");
    let mut b = tar::Builder::new(Vec::new());
    let mut names: Vec<PathBuf> = std::fs::read_dir(&shared)
        .expect("../shared/crs beside the checkout")
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for p in names {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let inside = if name == "crs-setup.conf.example" {
            format!("{top}/{name}")
        } else if name.ends_with(".conf") || name.ends_with(".data") {
            format!("{top}/rules/{name}")
        } else {
            continue;
        };
        b.append_path_with_name(&p, inside).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &b.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

/// The first security event in the JSON-lines `file` for which `pred` holds, waiting for
/// the writer up to `wait`.
#[allow(dead_code)] // Not every test binary reads events.
pub fn event_where(
    file: &std::path::Path,
    wait: Duration,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + wait;
    loop {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        if let Some(v) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| pred(v))
        {
            return v;
        }
        assert!(Instant::now() < deadline, "no such event in:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Accepts any server certificate: for tests that look at what a listener serves (a
/// self-signed or placeholder certificate) rather than trust it.
#[derive(Debug)]
pub struct AnyCert(pub Arc<rustls::crypto::CryptoProvider>);

impl AnyCert {
    /// With ring's signature algorithms.
    pub fn ring() -> Arc<AnyCert> {
        Arc::new(AnyCert(Arc::new(rustls::crypto::ring::default_provider())))
    }
}

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &rustls::pki_types::CertificateDer<'_>,
        d: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
