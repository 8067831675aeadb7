//! gRPC through Rampart with a real tonic server and client: HTTP/2 to the upstream (h2c),
//! unary and streaming calls both ways, trailers intact, Rampart's refusals as gRPC
//! statuses, and malformed frames that reach the server without harming the gateway.
mod common;
use common::*;
use std::pin::Pin;
use tokio_stream::{Stream, StreamExt};
use tonic::codegen::http;
use tonic::{Code, Request, Response, Status, Streaming};

const KEY: &str = "grpc-test-key-0123456789";

#[derive(Clone, PartialEq, prost::Message)]
struct Msg {
    #[prost(string, tag = "1")]
    text: String,
    #[prost(uint32, tag = "2")]
    n: u32,
}

fn msg(text: &str, n: u32) -> Msg {
    Msg {
        text: text.into(),
        n,
    }
}

type Codec = tonic_prost::ProstCodec<Msg, Msg>;
type MsgStream = Pin<Box<dyn Stream<Item = Result<Msg, Status>> + Send>>;

/// The test service `test.Echo`, written out as tonic's generated code would be.
#[derive(Clone, Default)]
struct Echo;

impl Echo {
    async fn unary(req: Request<Msg>) -> Result<Response<Msg>, Status> {
        let consumer = req
            .metadata()
            .get("x-consumer-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let key_seen = req.metadata().contains_key("x-api-key");
        let m = req.into_inner();
        if m.text == "fail" {
            let mut s = Status::failed_precondition("no luck here");
            s.metadata_mut().insert("x-detail", "kept".parse().unwrap());
            return Err(s);
        }
        Ok(Response::new(msg(
            &format!("{}|{consumer}|key:{key_seen}", m.text),
            m.n,
        )))
    }

    async fn count(req: Request<Msg>) -> Result<Response<MsgStream>, Status> {
        let m = req.into_inner();
        let out = tokio_stream::iter((0..m.n).map(move |i| Ok(msg(&m.text, i))));
        Ok(Response::new(Box::pin(out)))
    }

    async fn sum(req: Request<Streaming<Msg>>) -> Result<Response<Msg>, Status> {
        let mut s = req.into_inner();
        let (mut text, mut n) = (String::new(), 0);
        while let Some(m) = s.next().await {
            let m = m?;
            text.push_str(&m.text);
            n += m.n;
        }
        Ok(Response::new(msg(&text, n)))
    }

    async fn chat(req: Request<Streaming<Msg>>) -> Result<Response<MsgStream>, Status> {
        let s = req.into_inner();
        let out = s.map(|m| m.map(|m| msg(&m.text.to_uppercase(), m.n * 2)));
        Ok(Response::new(Box::pin(out)))
    }
}

impl tonic::server::NamedService for Echo {
    const NAME: &'static str = "test.Echo";
}

type BoxFut<T> = Pin<Box<dyn std::future::Future<Output = T> + Send>>;

impl<B> tonic::codegen::Service<http::Request<B>> for Echo
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = BoxFut<Result<Self::Response, Self::Error>>;

    fn poll_ready(
        &mut self,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        struct Unary<F>(F);
        impl<F, Fut> tonic::server::UnaryService<Msg> for Unary<F>
        where
            F: Fn(Request<Msg>) -> Fut,
            Fut: std::future::Future<Output = Result<Response<Msg>, Status>> + Send + 'static,
        {
            type Response = Msg;
            type Future = BoxFut<Result<Response<Msg>, Status>>;
            fn call(&mut self, r: Request<Msg>) -> Self::Future {
                Box::pin((self.0)(r))
            }
        }
        struct ServerStreaming;
        impl tonic::server::ServerStreamingService<Msg> for ServerStreaming {
            type Response = Msg;
            type ResponseStream = MsgStream;
            type Future = BoxFut<Result<Response<MsgStream>, Status>>;
            fn call(&mut self, r: Request<Msg>) -> Self::Future {
                Box::pin(Echo::count(r))
            }
        }
        struct ClientStreaming;
        impl tonic::server::ClientStreamingService<Msg> for ClientStreaming {
            type Response = Msg;
            type Future = BoxFut<Result<Response<Msg>, Status>>;
            fn call(&mut self, r: Request<Streaming<Msg>>) -> Self::Future {
                Box::pin(Echo::sum(r))
            }
        }
        struct Bidi;
        impl tonic::server::StreamingService<Msg> for Bidi {
            type Response = Msg;
            type ResponseStream = MsgStream;
            type Future = BoxFut<Result<Response<MsgStream>, Status>>;
            fn call(&mut self, r: Request<Streaming<Msg>>) -> Self::Future {
                Box::pin(Echo::chat(r))
            }
        }
        let path = req.uri().path().to_string();
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(Codec::default());
            Ok(match path.rsplit('/').next().unwrap_or("") {
                "Unary" | "Admin" | "Limited" => grpc.unary(Unary(Echo::unary), req).await,
                "Count" => grpc.server_streaming(ServerStreaming, req).await,
                "Sum" => grpc.client_streaming(ClientStreaming, req).await,
                "Chat" => grpc.streaming(Bidi, req).await,
                _ => Status::unimplemented("no such method").into_http(),
            })
        })
    }
}

/// A tonic server on a free port (HTTP/2 only, as tonic serves by default).
async fn start_server() -> std::net::SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(Echo)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    addr
}

/// The same server over TLS (ALPN `h2`), with a self-signed certificate for `localhost`.
async fn start_tls_server(dir: &std::path::Path) -> (std::net::SocketAddr, std::path::PathBuf) {
    let (cert, key) = self_signed_files(dir);
    let identity = tonic::transport::Identity::from_pem(
        std::fs::read(&cert).unwrap(),
        std::fs::read(&key).unwrap(),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .tls_config(tonic::transport::ServerTlsConfig::new().identity(identity))
            .unwrap()
            .add_service(Echo)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(l))
            .await
            .unwrap();
    });
    (addr, cert)
}

fn config(server: std::net::SocketAddr, dead: u16) -> String {
    format!(
        r#"consumers:
  - id: svc
    groups: [callers]
    api_keys:
      - sha256: {key}
auth:
  api_key: {{ header: X-API-Key }}
upstreams:
  grpc:
    targets: ["{server}"]
    protocol: http2
  down:
    targets: ["127.0.0.1:{dead}"]
    protocol: http2
    retries: 0
routes:
  - name: echo
    paths: ["/test.Echo"]
    upstream: grpc
    grpc: true
    auth: {{ methods: [api_key] }}
  - name: admin
    paths: ["/test.Echo/Admin"]
    upstream: grpc
    grpc: true
    auth: {{ methods: [api_key] }}
    authorize: {{ groups: [admins] }}
  - name: limited
    paths: ["/test.Echo/Limited"]
    upstream: grpc
    grpc: true
    auth: {{ methods: [api_key] }}
    rate_limit:
      - {{ key: client_ip, rate: 1/m, burst: 2 }}
  - name: rest
    paths: ["/rest"]
    upstream: grpc
    auth: {{ methods: [api_key] }}
  - name: down
    paths: ["/test.Down"]
    upstream: down
    grpc: true
"#,
        key = sha256_hex(KEY.as_bytes()),
    )
}

type Client = tonic::client::Grpc<tonic::transport::Channel>;

async fn connect(gw: &Gateway) -> Client {
    let ch = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", gw.port))
        .unwrap()
        .connect()
        .await
        .unwrap();
    Client::new(ch)
}

fn keyed<T>(m: T) -> Request<T> {
    let mut r = Request::new(m);
    r.metadata_mut().insert("x-api-key", KEY.parse().unwrap());
    r
}

async fn unary(c: &mut Client, path: &'static str, r: Request<Msg>) -> Result<Msg, Status> {
    c.ready().await.unwrap();
    c.unary(
        r,
        http::uri::PathAndQuery::from_static(path),
        Codec::default(),
    )
    .await
    .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_calls_pass_whole_and_refusals_are_grpc_statuses() {
    let server = start_server().await;
    let gw = Gateway::start(&config(server, free_port()));
    let mut c = connect(&gw).await;

    // Unary: the identity reaches the server, the key does not.
    let m = unary(&mut c, "/test.Echo/Unary", keyed(msg("hi", 7)))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.stderr()));
    assert_eq!(m, msg("hi|svc|key:false", 7));
    // An error with its message and metadata: the trailers arrive intact.
    let e = unary(&mut c, "/test.Echo/Unary", keyed(msg("fail", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(e.message(), "no luck here");
    assert_eq!(e.metadata().get("x-detail").unwrap(), "kept");

    // Server streaming.
    c.ready().await.unwrap();
    let mut s = c
        .server_streaming(
            keyed(msg("n", 5)),
            http::uri::PathAndQuery::from_static("/test.Echo/Count"),
            Codec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut got = Vec::new();
    while let Some(m) = s.next().await {
        got.push(m.unwrap().n);
    }
    assert_eq!(got, vec![0, 1, 2, 3, 4]);

    // Client streaming.
    c.ready().await.unwrap();
    let input = tokio_stream::iter(vec![msg("a", 1), msg("b", 2), msg("c", 3)]);
    let m = c
        .client_streaming(
            keyed(input),
            http::uri::PathAndQuery::from_static("/test.Echo/Sum"),
            Codec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    assert_eq!(m, msg("abc", 6));

    // Both ways at once: each answer comes back while the stream is still open.
    let (tx, rx) = tokio::sync::mpsc::channel::<Msg>(4);
    c.ready().await.unwrap();
    let mut answers = c
        .streaming(
            keyed(tokio_stream::wrappers::ReceiverStream::new(rx)),
            http::uri::PathAndQuery::from_static("/test.Echo/Chat"),
            Codec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    for (i, w) in ["one", "two", "three"].iter().enumerate() {
        tx.send(msg(w, i as u32)).await.unwrap();
        let a = tokio::time::timeout(std::time::Duration::from_secs(5), answers.next())
            .await
            .expect("an answer before the stream ends")
            .unwrap()
            .unwrap();
        assert_eq!(a, msg(&w.to_uppercase(), i as u32 * 2));
    }
    drop(tx);
    assert!(answers.next().await.is_none());

    // Rampart's refusals, as gRPC statuses.
    let e = unary(&mut c, "/test.Echo/Unary", Request::new(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = unary(&mut c, "/test.Echo/Admin", keyed(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    for _ in 0..2 {
        unary(&mut c, "/test.Echo/Limited", keyed(msg("x", 0)))
            .await
            .unwrap();
    }
    let e = unary(&mut c, "/test.Echo/Limited", keyed(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted, "{e:?}");
    let e = unary(&mut c, "/test.Nope/X", keyed(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unimplemented, "{e:?}");
    let e = unary(&mut c, "/test.Down/Unary", Request::new(msg("x", 0)))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(
        !e.message().contains("127.0.0.1"),
        "nothing inside leaks: {e:?}"
    );

    // The same connection still works after all of that.
    let m = unary(&mut c, "/test.Echo/Unary", keyed(msg("again", 1)))
        .await
        .unwrap();
    assert_eq!(m.text, "again|svc|key:false");
}

#[tokio::test(flavor = "multi_thread")]
async fn grpc_to_a_tls_upstream_negotiates_h2() {
    let dir = temp_dir("grpc-tls");
    let (server, ca) = start_tls_server(&dir).await;
    let gw = Gateway::start(&format!(
        r#"upstreams:
  secure:
    targets: ["{server}"]
    protocol: http2
    tls: {{ sni: localhost, ca: {} }}
routes:
  - name: echo
    paths: ["/test.Echo"]
    upstream: secure
    grpc: true
"#,
        ca.display()
    ));
    let mut c = connect(&gw).await;
    let m = unary(&mut c, "/test.Echo/Unary", Request::new(msg("tls", 3)))
        .await
        .unwrap_or_else(|e| panic!("{e:?}\n{}", gw.stderr()));
    assert_eq!(m, msg("tls||key:false", 3));
    c.ready().await.unwrap();
    let mut s = c
        .server_streaming(
            Request::new(msg("s", 3)),
            http::uri::PathAndQuery::from_static("/test.Echo/Count"),
            Codec::default(),
        )
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while let Some(m) = s.next().await {
        assert_eq!(m.unwrap().n, n);
        n += 1;
    }
    assert_eq!(n, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_grpc_route_takes_only_grpc_and_survives_bad_frames() {
    let server = start_server().await;
    let gw = Gateway::start(&config(server, free_port()));
    // HTTP/1.1, or HTTP/2 without the gRPC content type: 415, never the server.
    let r = raw_request(
        gw.port,
        format!(
            "POST /test.Echo/Unary HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\nContent-Type: application/grpc\r\nContent-Length: 5\r\nConnection: close\r\n\r\n\0\0\0\0\0"
        )
        .as_bytes(),
    )
    .unwrap();
    // Not gRPC (HTTP/1.1): Rampart's usual answer, a real 415.
    assert_eq!(status_of(&r), 415, "{r}");
    assert_eq!(header_of(&r, "grpc-status"), None, "{r}");
    let h2 = h2c();
    let r = h2
        .post(gw.url("/test.Echo/Unary"))
        .header("X-API-Key", KEY)
        .header("Content-Type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    // A gRPC content type on a route that is not gRPC's changes nothing: Rampart's
    // refusal keeps its real status (not a 200 any cache could keep).
    let r = h2
        .post(gw.url("/rest/x"))
        .header("Content-Type", "application/grpc")
        .body(b"\0\0\0\0\0".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("grpc-status").is_none());

    // Frames the server cannot read: a length prefix promising more than is sent, a
    // compressed flag without compression, garbage. The server says so; the gateway goes on.
    for body in [
        &b"\x00\x00\x00\x00\x09ab"[..],
        b"\x01\x00\x00\x00\x02ab",
        b"not grpc at all",
    ] {
        let r = h2
            .post(gw.url("/test.Echo/Unary"))
            .header("X-API-Key", KEY)
            .header("Content-Type", "application/grpc")
            .header("TE", "trailers")
            .body(body.to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "gRPC errors travel as statuses");
        let status = r.headers().get("grpc-status").cloned();
        assert!(
            status.as_ref().is_some_and(|s| s != "0"),
            "{body:?}: {:?}",
            r.headers()
        );
    }
    let mut c = connect(&gw).await;
    let m = unary(&mut c, "/test.Echo/Unary", keyed(msg("still", 1)))
        .await
        .unwrap();
    assert_eq!(m.text, "still|svc|key:false");
    assert!(gw.stderr().lines().all(|l| !l.contains("panicked")));
}

#[test]
fn grpc_route_mistakes_are_refused() {
    refused_config(
        "grpc-config",
        r#"upstreams:
  h1:
    targets: ["127.0.0.1:9"]
routes:
  - name: g
    paths: ["/svc"]
    upstream: h1
    grpc: true
    websocket: true
"#,
        &[
            "routes.0.grpc",
            "set upstreams.h1.protocol: http2",
            "routes.0.websocket",
            "a gRPC route cannot have websocket",
        ],
    );
}
