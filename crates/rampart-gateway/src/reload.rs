//! Hot reload: on SIGHUP or when the file changes, the new config is validated and built
//! into a new snapshot, then swapped in atomically. In-flight requests keep the snapshot
//! they started with. A bad config is refused with its errors and the old one stays.

use crate::metrics::metrics;
use crate::snapshot::Snapshot;
use arc_swap::ArcSwap;
use rampart_config::ConfigErrors;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// Rebuilds the snapshot from the config file and swaps it in, one reload at a time.
pub struct Reloader {
    path: PathBuf,
    state: Arc<ArcSwap<Snapshot>>,
    rt: tokio::runtime::Handle,
    lock: Mutex<()>,
    certs: Vec<Arc<crate::tls::CertSet>>,
}

impl Reloader {
    /// A reloader of the config at `path` into `state`, building in `rt`; `certs` are the
    /// certificate sets a SIGHUP reloads too.
    pub fn new(
        path: PathBuf,
        state: Arc<ArcSwap<Snapshot>>,
        rt: tokio::runtime::Handle,
        certs: Vec<Arc<crate::tls::CertSet>>,
    ) -> Self {
        Reloader {
            path,
            state,
            rt,
            lock: Mutex::new(()),
            certs,
        }
    }

    /// Validate and apply the file; returns the new generation.
    pub fn reload(&self) -> Result<u64, ConfigErrors> {
        let _one_at_a_time = self.lock.lock().unwrap_or_else(|p| p.into_inner());
        let result = self.try_reload();
        match &result {
            Ok(g) => {
                metrics().reloads.with_label_values(&["ok"]).inc();
                log::warn!(
                    "config reloaded from {} (generation {g})",
                    self.path.display()
                );
            }
            Err(e) => {
                metrics().reloads.with_label_values(&["failed"]).inc();
                log::error!("config reload refused, the previous config stays in force:\n{e}");
            }
        }
        result
    }

    fn try_reload(&self) -> Result<u64, ConfigErrors> {
        let current = self.state.load_full();
        let generation = current.generation + 1;
        let env = crate::snapshot::BuildEnv {
            previous: Some(&current),
            generation,
            runtime: Some(&self.rt),
        };
        let snap = {
            let _g = self.rt.enter();
            rampart_config::build_file(&self.path, |c| {
                // These are bound at startup; refusing is clearer than a config that
                // claims something the process is not doing.
                let old = &current.config;
                // What a listener binds (address, TLS); its network policy and PROXY protocol may change.
                let bound = |ls: &[rampart_config::Listener]| -> Vec<rampart_config::Listener> {
                    ls.iter()
                        .cloned()
                        .map(|mut l| {
                            l.network = None;
                            l.proxy_protocol = false;
                            l
                        })
                        .collect()
                };
                let fixed = [
                    ("listeners", bound(&c.listeners) != bound(&old.listeners)),
                    ("admin.address", c.admin.address != old.admin.address),
                    ("server.threads", c.server.threads != old.server.threads),
                    ("access_log", c.access_log != old.access_log),
                    ("events", c.events != old.events),
                ];
                let changed: Vec<_> = fixed
                    .iter()
                    .filter(|(_, changed)| *changed)
                    .map(|(path, _)| {
                        (
                            path.to_string(),
                            "can only change with a restart".to_string(),
                        )
                    })
                    .collect();
                if !changed.is_empty() {
                    return Err(changed);
                }
                Snapshot::build(c, &env)
            })?
        };
        self.state.store(Arc::new(snap));
        Ok(generation)
    }

    /// Reloads the certificates, then the config, on every SIGHUP (from a thread of its own).
    pub fn watch_sighup(self: &Arc<Self>) -> Result<(), crate::Error> {
        let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
            .map_err(crate::Error::Sighup)?;
        let me = self.clone();
        std::thread::Builder::new()
            .name("rampart-sighup".into())
            .spawn(move || {
                for _ in signals.forever() {
                    // SIGHUP also rotates certificates, for deployments that signal
                    // rather than rely on the file watch.
                    for c in &me.certs {
                        let _ = c.reload();
                    }
                    let _ = me.reload();
                }
            })
            .map_err(crate::Error::Thread)?;
        Ok(())
    }

    /// Poll the file's (and the network list files') modification time and size; polling
    /// works on every filesystem, including bind mounts and editors that replace the file.
    pub fn watch_file(self: &Arc<Self>, interval: Duration) {
        if interval.is_zero() {
            return;
        }
        let me = self.clone();
        let stamp = |p: &PathBuf| -> Option<(SystemTime, u64)> {
            let m = std::fs::metadata(p).ok()?;
            Some((m.modified().ok()?, m.len()))
        };
        let _ = std::thread::Builder::new()
            .name("rampart-watch".into())
            .spawn(move || {
                let mut last = stamp(&me.path);
                let mut lists_last = crate::network::watched_files(&me.state.load());
                loop {
                    std::thread::sleep(interval);
                    let now = stamp(&me.path);
                    // Network list files are re-read like the config: a changed file
                    // rebuilds its list and swaps the snapshot.
                    let lists_now = crate::network::watched_files(&me.state.load());
                    if (now.is_some() && now != last) || lists_now != lists_last {
                        last = now;
                        // A file that fails to load is not retried until it changes again.
                        lists_last = lists_now;
                        let _ = me.reload();
                    }
                }
            });
    }
}
