//! Why the gateway cannot start, or a part of a config cannot be set up.

/// The errors of `rampart-gateway`. Config problems found while building a snapshot are
/// reported as `(config path, message)` problems, these errors' text being the message;
/// what stops `serve` is a [`crate::ServeError`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The background runtime (reloads, events, key fetches) cannot start.
    #[error("cannot start background runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The span exporter (`tracing:`) cannot start.
    #[error("tracing: {0}")]
    Tracing(String),
    /// The access log file cannot be opened.
    #[error("cannot open access log {target}: {source}")]
    AccessLog {
        /// The configured `access_log.target`.
        target: String,
        /// Why it cannot be opened.
        #[source]
        source: std::io::Error,
    },
    /// A listener, the admin or the demo backend address is taken or not bindable.
    #[error("{what}: cannot listen on {address}: {source}")]
    Listen {
        /// Which one (`listener NAME`, `admin`, `demo backend`).
        what: String,
        /// The address it is configured with.
        address: String,
        /// Why the bind failed.
        #[source]
        source: std::io::Error,
    },
    /// TLS settings asked for a listener without `tls`.
    #[error("not a TLS listener")]
    NotTls,
    /// A TLS listener's certificates, keys, client CA or CRL are unusable.
    #[error("listener {listener}: {source}")]
    ListenerTls {
        /// The listener's name.
        listener: String,
        /// What is wrong with them.
        #[source]
        source: rampart_tls::TlsError,
    },
    /// Pingora refuses a TLS listener's settings.
    #[error("listener {listener}: {source}")]
    ListenerTlsSettings {
        /// The listener's name.
        listener: String,
        /// Pingora's error.
        #[source]
        source: Box<pingora::Error>,
    },
    /// The SIGHUP handler cannot be installed.
    #[error("cannot install SIGHUP handler: {0}")]
    Sighup(#[source] std::io::Error),
    /// A background thread cannot be started.
    #[error("{0}")]
    Thread(#[source] std::io::Error),
    /// The events sinks cannot start.
    #[error(transparent)]
    Events(#[from] rampart_events::Error),
    /// An upstream target that is not `IP:PORT`.
    #[error("bad target {target:?}")]
    UpstreamTarget {
        /// The target as configured.
        target: String,
    },
    /// An upstream's TLS material (CA, client certificate and key) is unusable.
    #[error("{0}")]
    UpstreamTls(#[source] rampart_tls::TlsError),
    /// Pingora's load balancer refuses an upstream's targets.
    #[error("upstream {upstream}: {source}")]
    Balancer {
        /// The upstream's name.
        upstream: String,
        /// The load balancer's error.
        #[source]
        source: std::io::Error,
    },
    /// A WAF rule file or the inline rules do not parse.
    #[error("{0}")]
    WafParse(#[source] rampart_waf::ParseError),
    /// The WAF rules do not compile.
    #[error("{0}")]
    WafCompile(#[source] rampart_waf::Error),
    /// The Core Rule Set a config names is not on disk.
    #[error("waf.crs: {0}")]
    Crs(String),
    /// The demo's self-signed certificate cannot be generated.
    #[error("{0}")]
    DemoCertificate(#[source] rcgen::Error),
    /// The demo's certificate files cannot be written.
    #[error("{0}")]
    DemoFiles(#[source] std::io::Error),
    /// `rampart bans` on a config whose bans are not shared.
    #[error("{config}: bans.backend is local, so each node keeps its own bans; set bans.backend: redis to manage them from the command line")]
    BansLocal {
        /// The config file.
        config: String,
    },
    /// `rampart bans` could not read or change the shared list.
    #[error("{url} could not be reached: {what}")]
    BansUnreachable {
        /// The Redis URL.
        url: String,
        /// What was not done.
        what: &'static str,
    },
    /// `rampart bans` was given a key it cannot ban (or may not).
    #[error("{key}: {source}")]
    BanRefused {
        /// The key as given.
        key: String,
        /// Why the ban list refused it.
        #[source]
        source: rampart_bans::Error,
    },
    /// `rampart bans` with a config that does not load.
    #[error("{0}")]
    BansConfig(#[source] rampart_config::ConfigErrors),
    /// `rampart bans`'s Redis URL is not one.
    #[error(transparent)]
    BansRedis(#[from] rampart_redis::Error),
}

#[cfg(test)]
mod tests {
    use super::Error;
    use rampart_config::WafConfig;

    /// The messages are what `rampart serve` and `rampart validate` print: their wording
    /// is part of the contract.
    #[test]
    fn messages() {
        let io = || std::io::Error::from(std::io::ErrorKind::AddrInUse);
        let io_text = io().to_string();
        assert_eq!(
            Error::Runtime(io()).to_string(),
            format!("cannot start background runtime: {io_text}")
        );
        assert_eq!(
            Error::AccessLog {
                target: "/nope/access.log".into(),
                source: io()
            }
            .to_string(),
            format!("cannot open access log /nope/access.log: {io_text}")
        );
        assert_eq!(
            Error::Listen {
                what: "listener public".into(),
                address: "127.0.0.1:80".into(),
                source: io()
            }
            .to_string(),
            format!("listener public: cannot listen on 127.0.0.1:80: {io_text}")
        );
        assert_eq!(
            Error::Sighup(io()).to_string(),
            format!("cannot install SIGHUP handler: {io_text}")
        );
        assert_eq!(
            Error::ListenerTls {
                listener: "public".into(),
                source: rampart_tls::TlsError("cert.pem: no certificate".into())
            }
            .to_string(),
            "listener public: cert.pem: no certificate"
        );

        let spec = |targets: &[&str]| -> rampart_config::Upstream {
            serde_json::from_value(serde_json::json!({ "targets": targets })).unwrap()
        };
        let pool = |targets: &[&str]| {
            crate::upstream::UpstreamPool::new("app", &spec(targets))
                .map(drop)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(pool(&["nowhere"]), "bad target \"nowhere\"");

        let waf = |custom: &str| -> String {
            let cfg: WafConfig =
                serde_json::from_value(serde_json::json!({ "custom_rules": custom })).unwrap();
            crate::waf::compile(&cfg).map(drop).unwrap_err().to_string()
        };
        assert_eq!(
            waf("SecRule ARGS \"@bogusOperator x\" \"id:1\"\n"),
            "waf.custom_rules:1: unknown operator @bogusOperator"
        );
        assert_eq!(
            waf("SecFoo bar\n"),
            "waf.custom_rules:1: unknown directive SecFoo: SecFoo bar"
        );
    }
}
