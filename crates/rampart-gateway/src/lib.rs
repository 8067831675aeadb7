//! Rampart's gateway: builds the Pingora server (proxy, admin, optional demo backend) from a
//! validated config, and keeps the config current with atomic hot reloads.
//!
//! Security engines live in their own crates without Pingora types; this crate adapts them to
//! Pingora's phases (see `proxy.rs` for the request pipeline).

mod access_log;
mod acme;
mod admin;
mod cache;
mod contract;
mod ctx;
mod dashboard;
pub mod demo;
mod error;
mod forward;
mod hello;
pub use rampart_framing as framing;
pub mod hygiene;
mod metrics;
mod network;
mod observe;
mod ocsp;
mod otel;
mod prefilter;
mod proxy;
mod reload;
mod respond;
mod snapshot;
mod stages;
mod store;
mod tls;
mod upstream;
mod waf;

use arc_swap::ArcSwap;
use pingora::apps::HttpServerOptions;
use pingora::server::configuration::ServerConf;
use pingora::server::Server;
use pingora::services::listening::Service;
use rampart_config::ConfigErrors;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The read buffer of each accepted connection (Pingora's default is 64 KiB).
const L4_READ_BUFFER: usize = 16 * 1024;

pub use error::Error;
pub use reload::Reloader;

/// `rampart validate`: the config file is parsed and built exactly as `serve` and a reload
/// build it (rules compiled, credentials and certificates read, policies validated),
/// without listening, connecting or starting anything.
pub fn validate_file(path: &Path) -> Result<(), ConfigErrors> {
    rampart_config::build_file(path, |c| {
        snapshot::Snapshot::build(c, &snapshot::BuildEnv::check_only()).map(drop)
    })
}

/// `rampart bans`: what to do with the shared ban list.
pub enum BansCommand {
    /// Print every ban in force.
    List,
    /// Ban `key` (`ip:ADDR`, `net:CIDR`, `consumer:ID`) for `duration`.
    Add {
        /// What to ban.
        key: String,
        /// How long the ban lasts.
        duration: std::time::Duration,
        /// Why, as `list` shows it.
        reason: String,
    },
    /// Lift the ban on `key`.
    Remove {
        /// The banned key.
        key: String,
    },
}

/// `rampart bans`: lists or changes the bans every node shares through Redis (the config
/// file names the store). Returns the lines to print.
pub fn bans_command(config: &Path, cmd: BansCommand) -> Result<Vec<String>, Error> {
    let c = rampart_config::load_file(config).map_err(Error::BansConfig)?;
    let url = match (c.bans.backend, c.redis.as_deref()) {
        (rampart_config::BanBackend::Redis, Some(url)) => url.to_string(),
        _ => {
            return Err(Error::BansLocal {
                config: config.display().to_string(),
            })
        }
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    rt.block_on(async move {
        let handle =
            rampart_redis::RedisHandle::new(&url, "bans", std::time::Duration::from_secs(2))?;
        let list = rampart_bans::BanList::new(rampart_bans::BanSettings {
            never: rampart_net::IpSet::parse(c.bans.never.iter().map(String::as_str))
                .unwrap_or_default(),
            max_automatic: c.bans.max_automatic,
            redis: Some(handle),
        });
        let unreachable = |what| Error::BansUnreachable {
            url: url.clone(),
            what,
        };
        if !list.resync().await {
            return Err(unreachable("the bans could not be read"));
        }
        let refused = |key: &str, source| Error::BanRefused {
            key: key.to_string(),
            source,
        };
        match cmd {
            BansCommand::List => Ok(list
                .list()
                .into_iter()
                .map(|b| {
                    let left = b.until_ms.saturating_sub(rampart_bans::now_ms()) / 1000;
                    let by = b
                        .playbook
                        .map(|p| format!(" [playbook {p}]"))
                        .unwrap_or_default();
                    let what = match &b.limit {
                        Some(rate) => format!("throttled to {rate}"),
                        None => "banned".into(),
                    };
                    format!("{}\t{what}\t{left}s left\t{}{by}", b.key, b.reason)
                })
                .collect()),
            BansCommand::Add {
                key,
                duration,
                reason,
            } => {
                let ban = rampart_bans::Ban {
                    key: key.clone(),
                    until_ms: rampart_bans::now_ms() + duration.as_millis() as u64,
                    reason,
                    playbook: None,
                    limit: None,
                };
                match list.add(ban).await {
                    Ok(true) => Ok(vec![format!("banned {key} for {}s", duration.as_secs())]),
                    Ok(false) => Err(unreachable("nothing was changed")),
                    Err(e) => Err(refused(&key, e)),
                }
            }
            BansCommand::Remove { key } => match list.remove(&key).await {
                Ok(true) => Ok(vec![format!("lifted the ban on {key}")]),
                Ok(false) => Err(unreachable("nothing was changed")),
                Err(e) => Err(refused(&key, e)),
            },
        }
    })
}

/// Where `rampart serve` gets its config.
pub enum ConfigSource {
    /// A file, watched and re-read on SIGHUP.
    File(PathBuf),
    /// The embedded demo config with its own backend (no reload).
    Demo,
}

/// Why `serve` returned.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The config has problems; nothing was started.
    #[error("{0}")]
    Config(#[source] ConfigErrors),
    /// Something else prevented startup.
    #[error(transparent)]
    Startup(#[from] Error),
}

/// Start everything and serve until the process is told to stop. Only returns on a startup
/// error.
pub fn serve(source: ConfigSource) -> Result<(), ServeError> {
    let background = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("rampart-bg")
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let env = snapshot::BuildEnv {
        previous: None,
        generation: 1,
        runtime: Some(background.handle()),
    };
    let build = |c| snapshot::Snapshot::build(c, &env);
    let demo_env = match &source {
        ConfigSource::Demo => Some(demo::environment().map_err(ServeError::Config)?),
        ConfigSource::File(_) => None,
    };
    // With a config store, the file names the store and gives this node's own sections;
    // the rest comes from the store (or its local cache while the database is down).
    let mut store_start = None;
    if let ConfigSource::File(path) = &source {
        if let Ok(c) = rampart_config::load_file(path) {
            if let Some(st) = c.store {
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let init = store::initial(&st.postgres, &st.postgres.url, path, &text, &background);
                store_start = Some((st.postgres, init));
            }
        }
    }
    let snapshot = {
        let _guard = background.enter();
        match (&source, &demo_env) {
            (ConfigSource::File(path), _) if store_start.is_some() => {
                let (_, init) = store_start.as_ref().expect("checked");
                let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
                rampart_config::build_str_in(
                    &init.text,
                    &init.name,
                    &base,
                    &|n| std::env::var(n).ok(),
                    build,
                )
            }
            (ConfigSource::File(path), _) => rampart_config::build_file(path, build),
            (ConfigSource::Demo, Some(env)) => demo::build_config(env, build),
            (ConfigSource::Demo, None) => unreachable!("the demo has its environment"),
        }
        .map_err(ServeError::Config)?
    };
    // The text in force, for the admin API's versions (a file changed since it was built
    // is picked up by the watch).
    let (source_text, config_source, demo_backend) = match (source, demo_env) {
        (ConfigSource::File(p), _) => {
            let text = match &store_start {
                Some((_, init)) => init.text.clone(),
                None => std::fs::read_to_string(&p).unwrap_or_default(),
            };
            let base = p.parent().map(Path::to_path_buf).unwrap_or_default();
            let src = reload::Source {
                path: Some(p),
                base,
                env: Arc::new(|n: &str| std::env::var(n).ok()),
            };
            (text, src, false)
        }
        (ConfigSource::Demo, env) => {
            let src = reload::Source {
                path: None,
                base: std::env::current_dir().unwrap_or_default(),
                env: env.expect("the demo has its environment"),
            };
            (demo::config_text().to_string(), src, true)
        }
    };
    let config = snapshot.config.clone();
    access_log::init(&config.access_log.target).map_err(|source| Error::AccessLog {
        target: config.access_log.target.clone(),
        source,
    })?;
    if let Some(t) = &config.tracing {
        otel::start(t).map_err(Error::Tracing)?;
    }
    let state = Arc::new(ArcSwap::from_pointee(snapshot));

    // Pingora listens with SO_REUSEPORT, so a port another process also holds with that
    // option would be shared silently, splitting traffic. A plain bind finds any holder.
    let demo_backend_addr = demo::backend_addr();
    let mut addrs: Vec<(String, &str)> = config
        .listeners
        .iter()
        .map(|l| (format!("listener {}", l.name), l.address.as_str()))
        .collect();
    addrs.push(("admin".into(), config.admin.address.as_str()));
    if demo_backend {
        addrs.push(("demo backend".into(), demo_backend_addr.as_str()));
    }
    for (what, addr) in addrs {
        if let Err(source) = std::net::TcpListener::bind(addr) {
            return Err(Error::Listen {
                what,
                address: addr.to_string(),
                source,
            }
            .into());
        }
    }

    // Events start before the TLS material: ACME reports what it loads at start.
    let ev = &config.events;
    let sinks = rampart_events::SinkConfig {
        file: ev.file.clone(),
        stdout: ev.stdout,
        syslog: ev.syslog.as_ref().map(|s| rampart_events::SyslogConfig {
            address: s.address.clone(),
            tcp: s.protocol == rampart_config::SyslogProtocol::Tcp,
            cef: s.format == rampart_config::SyslogFormat::Cef,
        }),
        webhook: ev.webhook.as_ref().map(|w| rampart_events::WebhookConfig {
            url: w.url.clone(),
            batch_size: w.batch_size,
            flush_interval: w.flush_interval.0,
            max_buffer: w.max_buffer,
            max_retries: w.max_retries,
        }),
        durable: siem_sinks(ev),
        // The dashboard's "latest events".
        recent: if config.admin.dashboard { 100 } else { 0 },
    };
    let events = Arc::new(
        rampart_events::Events::start(&sinks, background.handle()).map_err(Error::Events)?,
    );
    metrics::metrics().watch_events(&events);
    observe::set_system_events(events.clone());

    // TLS material is checked before anything listens: Pingora would panic on bad files.
    let mut tls_listeners = Vec::new();
    let mut cert_sets = Vec::new();
    let mut acme_pending = Vec::new();
    for l in &config.listeners {
        if l.tls.is_some() {
            let acme = {
                let _guard = background.enter();
                acme::prepare(l)?
            };
            let (settings, set) = tls::settings(l, acme.as_ref().map(|(_, k)| k.clone()))?;
            if let Some((pending, _)) = acme {
                acme_pending.push((pending, set.clone()));
            }
            tls_listeners.push((l.address.clone(), settings));
            cert_sets.push(set);
        }
    }
    for (pending, set) in acme_pending {
        pending.start(set, background.handle());
    }
    // The admin listener's HTTPS is set up like a public listener's (and rotated alike).
    let admin_tls = match &config.admin.tls {
        Some(t) => {
            let as_listener = rampart_config::Listener {
                name: "admin".into(),
                address: config.admin.address.clone(),
                tls: Some(t.clone()),
                redirect_https: false,
                https_port: None,
                hsts: None,
                max_connections_per_ip: None,
                max_connections: None,
                proxy_protocol: false,
                network: None,
            };
            let (settings, set) = tls::settings(&as_listener, None)?;
            cert_sets.push(set);
            Some(settings)
        }
        None => None,
    };

    let config_file = config_source.path.clone();
    let reloader = Arc::new(Reloader::new(
        config_source,
        &source_text,
        store_start.as_ref().and_then(|(_, init)| init.version),
        state.clone(),
        background.handle().clone(),
        cert_sets.clone(),
    ));
    if let (Some((settings, init)), Some(path)) = (store_start, config_file) {
        let link = store::StoreLink::start(
            settings.url.clone(),
            &settings,
            &path,
            init.connection,
            reloader.clone(),
            background.handle(),
        );
        reloader.set_store(link);
    }
    reloader.watch_sighup()?;
    reloader.watch_file(config.server.watch_interval.0);
    if config.server.ocsp_stapling {
        ocsp::start(
            cert_sets.clone(),
            config.server.watch_interval.0,
            background.handle(),
        );
    }
    tls::watch(cert_sets, config.server.watch_interval.0);

    let mut conf = ServerConf {
        threads: config.server.threads,
        grace_period_seconds: Some(config.server.grace_period.0.as_secs()),
        graceful_shutdown_timeout_seconds: Some(config.server.grace_period.0.as_secs()),
        ..Default::default()
    };
    conf.work_stealing = false;
    let mut server = Server::new_with_opt_and_conf(None, conf);
    server.bootstrap();

    let mut http = pingora::proxy::http_proxy(
        &server.configuration,
        proxy::Gateway {
            state: state.clone(),
            events: events.clone(),
        },
    );
    let mut o = HttpServerOptions::default();
    o.h2c = true;
    http.server_options = Some(o);
    let admin_events = events.clone();
    let accept_events = events.clone();
    let mut proxy = Service::new(
        "rampart-proxy".into(),
        prefilter::Prefiltered {
            inner: Arc::new(http),
            state: state.clone(),
            conns: Default::default(),
            events,
        },
    );
    // Pingora reads every connection through a 64 KiB buffer allocated at accept; idle
    // and slow connections (the ones a flood holds open) each kept that much. 16 KiB is
    // one TLS record, so TLS still reads whole records.
    let buffers = pingora::listeners::L4BufferSettings::default().read(L4_READ_BUFFER);
    for l in &config.listeners {
        if l.tls.is_none() {
            proxy.endpoints().add_listener(
                pingora::listeners::ListenerConfig::tcp(l.address.as_str()).l4_buffer(buffers),
            );
        }
    }
    for (addr, settings) in tls_listeners {
        proxy.endpoints().add_listener(
            pingora::listeners::ListenerConfig::tcp(addr.as_str())
                .tls(settings)
                .l4_buffer(buffers),
        );
    }
    proxy
        .endpoints()
        .set_pre_tls_callback(Arc::new(prefilter::AcceptGate {
            state: state.clone(),
            events: accept_events,
        }));
    server.add_service(proxy);

    let mut admin = Service::new(
        "rampart-admin".into(),
        prefilter::Prefiltered {
            inner: Arc::new(admin::AdminApp::new(admin::Admin::new(
                state.clone(),
                reloader.clone(),
                admin_events.clone(),
            ))),
            state: state.clone(),
            conns: Default::default(),
            events: admin_events,
        },
    );
    admin.threads = Some(1);
    match admin_tls {
        Some(settings) => admin.add_tls_with_settings(&config.admin.address, None, settings),
        None => admin.add_tcp(&config.admin.address),
    }
    server.add_service(admin);

    if demo_backend {
        let mut demo = Service::new("rampart-demo-backend".into(), demo::DemoBackend);
        demo.threads = Some(1);
        demo.add_tcp(&demo::backend_addr());
        server.add_service(demo);
    }

    for l in &config.listeners {
        let scheme = if l.tls.is_some() { "https" } else { "http" };
        let note = if l.redirect_https {
            " (redirects to https)"
        } else {
            ""
        };
        println!(
            "rampart: listener {} on {scheme}://{}{note}",
            l.name, l.address
        );
    }
    println!(
        "rampart: admin (health, metrics, API) on {}://{}",
        if config.admin.tls.is_some() {
            "https"
        } else {
            "http"
        },
        config.admin.address
    );
    if demo_backend {
        println!("rampart: demo backend on http://{}", demo::backend_addr());
        println!("{}", demo::waf_summary());
        println!("{}", demo::instructions());
    }
    // Keep the background runtime alive for the life of the process.
    std::mem::forget(background);
    server.run_forever();
}

/// The configured SIEM sinks, in the order their buffers are opened.
fn siem_sinks(ev: &rampart_config::EventsConfig) -> Vec<rampart_events::siem::DurableConfig> {
    use rampart_events::siem::{DurableConfig, Fsync, OnFull, Target};
    let durable = |name: &str,
                   target: Target,
                   b: &rampart_config::BufferConfig,
                   batch,
                   flush,
                   timeout: &rampart_config::HumanDuration| {
        DurableConfig {
            name: name.into(),
            target,
            dir: b.dir.clone().into(),
            max_bytes: b.max_size.0,
            fsync: match b.fsync {
                rampart_config::FsyncPolicy::Always => Fsync::Always,
                rampart_config::FsyncPolicy::Never => Fsync::Never,
                rampart_config::FsyncPolicy::Every(d) => Fsync::Every(d),
            },
            on_full: match b.on_full {
                rampart_config::OnFullPolicy::DropOldest => OnFull::DropOldest,
                rampart_config::OnFullPolicy::DropNewest => OnFull::DropNewest,
            },
            batch_size: batch,
            flush_interval: flush,
            timeout: timeout.0,
        }
    };
    let mut out = Vec::new();
    if let Some(s) = &ev.splunk {
        let target = Target::Splunk {
            url: s.url.clone(),
            token: s.token.clone(),
            index: s.index.clone(),
            sourcetype: s.sourcetype.clone(),
        };
        out.push(durable(
            "splunk",
            target,
            &s.buffer,
            s.batch_size,
            s.flush_interval.0,
            &s.timeout,
        ));
    }
    if let Some(e) = &ev.elastic {
        use base64::Engine;
        let authorization = match (&e.api_key, &e.username, &e.password) {
            (Some(k), _, _) => Some(format!("ApiKey {k}")),
            (None, Some(u), Some(p)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
            )),
            _ => None,
        };
        let target = Target::Elastic {
            url: e.url.clone(),
            index: e.index.clone(),
            authorization,
        };
        out.push(durable(
            "elastic",
            target,
            &e.buffer,
            e.batch_size,
            e.flush_interval.0,
            &e.timeout,
        ));
    }
    if let Some(n) = &ev.nats {
        let target = Target::Nats {
            url: n.url.clone(),
            subject: n.subject.clone(),
            stream: n.stream.clone(),
            token: n.token.clone(),
        };
        out.push(durable(
            "nats",
            target,
            &n.buffer,
            n.batch_size,
            n.flush_interval.0,
            &n.timeout,
        ));
    }
    out
}
