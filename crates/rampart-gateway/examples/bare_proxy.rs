//! The smallest Pingora reverse proxy: one fixed upstream, no stages, no logs. It is not
//! part of Rampart; `bench/run.sh` runs it beside nginx and Rampart so that a result can be
//! split into what the data plane itself costs and what Rampart's stages add.
//! Usage: bare_proxy LISTEN UPSTREAM [TLS_LISTEN CERT KEY]  (one worker thread, as Rampart
//! in the benchmark).

use async_trait::async_trait;
use pingora::prelude::*;
use pingora::server::configuration::ServerConf;

struct Bare {
    upstream: String,
}

#[async_trait]
impl ProxyHttp for Bare {
    type CTX = ();
    fn new_ctx(&self) {}

    async fn upstream_peer(&self, _s: &mut Session, _c: &mut ()) -> Result<Box<HttpPeer>> {
        Ok(Box::new(HttpPeer::new(
            self.upstream.as_str(),
            false,
            String::new(),
        )))
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() != 2 && args.len() != 5 {
        eprintln!("usage: bare_proxy LISTEN UPSTREAM [TLS_LISTEN CERT KEY]");
        std::process::exit(2);
    }
    let conf = ServerConf {
        threads: 1,
        work_stealing: false,
        grace_period_seconds: Some(0),
        graceful_shutdown_timeout_seconds: Some(0),
        ..Default::default()
    };
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();
    let mut proxy = http_proxy_service(
        &server.configuration,
        Bare {
            upstream: args[1].clone(),
        },
    );
    proxy.add_tcp(&args[0]);
    if args.len() == 5 {
        let mut tls = pingora::listeners::tls::TlsSettings::intermediate(&args[3], &args[4])
            .unwrap_or_else(|e| {
                eprintln!("bare_proxy: certificate: {e}");
                std::process::exit(1);
            });
        tls.enable_h2();
        proxy.add_tls_with_settings(&args[2], None, tls);
    }
    server.add_service(proxy);
    server.run_forever();
}
