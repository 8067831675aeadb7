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

/// Resolves a config's `${ENV}` references.
pub type EnvLookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where the running config came from; what the admin API can write back.
pub struct Source {
    /// The config file; `None` for the embedded demo (changes live in memory).
    pub path: Option<PathBuf>,
    /// Relative paths in the config resolve against it.
    pub base: PathBuf,
    /// Resolves `${ENV}` references.
    pub env: EnvLookup,
}

/// One version of the running config.
#[derive(Clone)]
pub struct Version {
    /// The snapshot generation it was built into (the admin API's `ETag`).
    pub generation: u64,
    /// When it was put in force (RFC 3339).
    pub at: String,
    /// Who: `startup`, `file`, `sighup`, or an admin token's name.
    pub by: String,
    /// The config text (`${ENV}` references unexpanded).
    pub text: Arc<str>,
    /// What changed from the version before, by resource.
    pub changes: Vec<rampart_config::document::Change>,
    /// The config store's version of the shared part (with `store`).
    pub store_version: Option<i64>,
}

/// Why an admin API change was not applied (nothing changed).
pub enum ApplyError {
    /// `If-Match` names another generation than the one in force.
    Stale { current: u64 },
    /// The config does not validate or build.
    Invalid(ConfigErrors),
    /// A listener address, the admin address, threads, the access log, events or tracing
    /// changed.
    Restart(Vec<String>),
    /// The config file could not be written (the old config stays in force).
    Persist(std::io::Error),
    /// The config store could not take the change (nothing changed).
    Store(String),
    /// With a store, these sections come from each node's file.
    NodeSections(Vec<String>),
}

struct Versions {
    current: Version,
    history: std::collections::VecDeque<Version>,
}

/// Rebuilds the snapshot from the config file (or a document from the admin API) and
/// swaps it in, one change at a time; keeps the versions it put in force.
pub struct Reloader {
    source: Source,
    state: Arc<ArcSwap<Snapshot>>,
    rt: tokio::runtime::Handle,
    versions: Mutex<Versions>,
    certs: Vec<Arc<crate::tls::CertSet>>,
    /// With `store`: where shared changes go.
    store: std::sync::OnceLock<Arc<crate::store::StoreLink>>,
}

impl Reloader {
    /// A reloader of `source` into `state`, building in `rt`; `text` is the config in
    /// force at startup; `certs` are the certificate sets a SIGHUP reloads too.
    pub fn new(
        source: Source,
        text: &str,
        store_version: Option<i64>,
        state: Arc<ArcSwap<Snapshot>>,
        rt: tokio::runtime::Handle,
        certs: Vec<Arc<crate::tls::CertSet>>,
    ) -> Self {
        let current = Version {
            generation: state.load().generation,
            at: rampart_events::Event::now_ts(),
            by: "startup".into(),
            text: text.into(),
            changes: Vec::new(),
            store_version,
        };
        Reloader {
            source,
            state,
            rt,
            versions: Mutex::new(Versions {
                current,
                history: Default::default(),
            }),
            certs,
            store: Default::default(),
        }
    }

    /// Send shared changes to the config store from now on.
    pub fn set_store(&self, link: Arc<crate::store::StoreLink>) {
        let _ = self.store.set(link);
    }

    /// The stored version in force, with a config store.
    pub fn store_version(&self) -> Option<i64> {
        self.versions().current.store_version
    }

    /// Put a stored version in force: its shared part with this node's own sections. A
    /// version that does not build here is refused and reported; the config in force stays.
    pub fn apply_stored(&self, stored: &rampart_store::Stored) -> Result<u64, ConfigErrors> {
        use rampart_config::document;
        let mut versions = self.versions();
        if versions
            .current
            .store_version
            .is_some_and(|v| stored.version <= v)
        {
            return Ok(versions.current.generation);
        }
        let node = document::from_text(&versions.current.text).unwrap_or_default();
        let shared = document::from_text(&stored.document).unwrap_or_default();
        let text = document::to_text(&document::combine(&shared, &node));
        let name = format!("config store version {}", stored.version);
        let by = stored.author.clone();
        let result = self.build_and_swap(&mut versions, &text, &name, &by, |_| {
            Ok(Some(stored.version))
        });
        match result {
            Ok(g) => {
                metrics().reloads.with_label_values(&["ok"]).inc();
                log::warn!(
                    "config store version {} in force (generation {g})",
                    stored.version
                );
                if let Some(link) = self.store.get() {
                    link.cache(stored.version, &stored.document);
                }
                Ok(g)
            }
            Err(e) => {
                metrics().reloads.with_label_values(&["failed"]).inc();
                let errors = match e {
                    ApplyError::Invalid(e) => e,
                    ApplyError::Restart(paths) => ConfigErrors(
                        paths
                            .into_iter()
                            .map(|path| rampart_config::ConfigError {
                                file: name.clone(),
                                line: 0,
                                column: 0,
                                path,
                                message: "can only change with a restart".into(),
                            })
                            .collect(),
                    ),
                    _ => ConfigErrors(Vec::new()),
                };
                crate::observe::system_event(
                    "store",
                    "config_refused",
                    format!(
                        "version {} by {by} was refused on this node, which keeps its config: {}",
                        stored.version,
                        errors.to_string().replace('\n', "; ")
                    ),
                );
                Err(errors)
            }
        }
    }

    fn versions(&self) -> std::sync::MutexGuard<'_, Versions> {
        self.versions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The version in force.
    pub fn current(&self) -> Version {
        self.versions().current.clone()
    }

    /// Earlier versions, newest first, then the current one first.
    pub fn history(&self) -> Vec<Version> {
        let v = self.versions();
        std::iter::once(v.current.clone())
            .chain(v.history.iter().rev().cloned())
            .collect()
    }

    /// Whether changes are written back to a file.
    pub fn persists(&self) -> bool {
        self.store.get().is_none()
            && self.source.path.is_some()
            && self.state.load().config.admin.persist
    }

    /// Validate and apply the file; returns the new generation.
    pub fn reload(&self) -> Result<u64, ConfigErrors> {
        self.reload_by("file", false)
    }

    fn reload_by(&self, by: &str, skip_unchanged: bool) -> Result<u64, ConfigErrors> {
        let Some(path) = self.source.path.clone() else {
            return Ok(self.state.load().generation);
        };
        let mut versions = self.versions();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ConfigErrors(vec![rampart_config::ConfigError {
                file: path.display().to_string(),
                line: 0,
                column: 0,
                path: String::new(),
                message: format!("cannot read config file: {e}"),
            }])
        });
        let result = text.and_then(|text| {
            // The file the admin API just wrote: already in force.
            if skip_unchanged && *versions.current.text == *text {
                return Ok(None);
            }
            // With a store, the file gives this node's sections only.
            let text = if self.store.get().is_some() {
                use rampart_config::document;
                let node = document::from_text(&text).unwrap_or_default();
                let shared = document::from_text(&versions.current.text).unwrap_or_default();
                document::to_text(&document::combine(&shared, &node))
            } else {
                text
            };
            let name = path.display().to_string();
            self.build_and_swap(&mut versions, &text, &name, by, |_| Ok(None))
                .map(Some)
                .map_err(|e| match e {
                    ApplyError::Invalid(e) => e,
                    _ => unreachable!("a file reload neither persists nor checks If-Match"),
                })
        });
        match &result {
            Ok(None) => return Ok(versions.current.generation),
            Ok(Some(g)) => {
                metrics().reloads.with_label_values(&["ok"]).inc();
                log::warn!("config reloaded from {} (generation {g})", path.display());
            }
            Err(e) => {
                metrics().reloads.with_label_values(&["failed"]).inc();
                log::error!("config reload refused, the previous config stays in force:\n{e}");
            }
        }
        result.map(|g| g.unwrap_or(versions.current.generation))
    }

    /// Apply a config document from the admin API: `edit` turns the document in force
    /// into the new one. Refused when `if_match` is not the generation in force, when the
    /// result does not build, or when it cannot be written back to the config file; in each
    /// case nothing changes.
    pub fn apply(
        &self,
        by: &str,
        if_match: Option<u64>,
        edit: impl FnOnce(&serde_json::Value) -> Result<String, Vec<(String, String)>>,
    ) -> Result<Version, ApplyError> {
        let mut versions = self.versions();
        let current = versions.current.generation;
        if if_match.is_some_and(|g| g != current) {
            return Err(ApplyError::Stale { current });
        }
        let doc = rampart_config::document::from_text(&versions.current.text)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()));
        let located = |problems: Vec<(String, String)>| {
            ApplyError::Invalid(ConfigErrors(
                problems
                    .into_iter()
                    .map(|(path, message)| rampart_config::ConfigError {
                        file: "admin API".into(),
                        line: 0,
                        column: 0,
                        path,
                        message,
                    })
                    .collect(),
            ))
        };
        let mut text = edit(&doc).map_err(located)?;
        let path = self.source.path.clone();
        let persist = self.persists();
        if persist {
            // The file loses its comments once the API writes it; say so in it.
            text.insert_str(
                0,
                "# Written by Rampart's admin API (comments of earlier versions are not kept).\n",
            );
        }
        let store = self.store.get().cloned();
        if store.is_some() {
            // A node's own sections live in its file: a change to them through the API
            // would reach neither the file nor the other nodes.
            use rampart_config::document::{from_text, node_part};
            let (old, new) = (
                node_part(&doc),
                node_part(&from_text(&text).unwrap_or_default()),
            );
            let keys: Vec<String> = rampart_config::NODE_KEYS
                .iter()
                .filter(|k| old.get(**k) != new.get(**k))
                .map(|k| k.to_string())
                .collect();
            if !keys.is_empty() {
                return Err(ApplyError::NodeSections(keys));
            }
        }
        let parent = versions.current.store_version;
        let result = self.build_and_swap(&mut versions, &text, "admin API", by, |_| {
            if let Some(link) = &store {
                // The change is in force on this node only once the store took it; the
                // others follow from the store's announcement.
                let shared = rampart_config::document::shared_part(
                    &rampart_config::document::from_text(&text).unwrap_or_default(),
                );
                let shared = rampart_config::document::to_text(&shared);
                return match link.insert(shared.clone(), by, parent) {
                    Ok(v) => {
                        link.cache(v, &shared);
                        Ok(Some(v))
                    }
                    Err(rampart_store::Error::Conflict { .. }) => Err(ApplyError::Stale {
                        current: self.state.load().generation,
                    }),
                    Err(e) => Err(ApplyError::Store(e.to_string())),
                };
            }
            match (&path, persist) {
                (Some(p), true) => write_atomically(p, &text)
                    .map(|_| None)
                    .map_err(ApplyError::Persist),
                _ => Ok(None),
            }
        });
        match &result {
            Ok(g) => {
                metrics().reloads.with_label_values(&["ok"]).inc();
                log::warn!("config changed through the admin API by {by} (generation {g})");
            }
            Err(_) => {
                metrics().reloads.with_label_values(&["failed"]).inc();
            }
        }
        result.map(|_| versions.current.clone())
    }

    /// Build `text`, run `commit` (which may refuse), swap the snapshot, record the
    /// version. Called with the versions locked: one change at a time.
    fn build_and_swap(
        &self,
        versions: &mut Versions,
        text: &str,
        name: &str,
        by: &str,
        commit: impl FnOnce(&Snapshot) -> Result<Option<i64>, ApplyError>,
    ) -> Result<u64, ApplyError> {
        let current = self.state.load_full();
        let generation = current.generation + 1;
        let env = crate::snapshot::BuildEnv {
            previous: Some(&current),
            generation,
            runtime: Some(&self.rt),
        };
        let restart = std::cell::RefCell::new(Vec::new());
        let snap = {
            let _g = self.rt.enter();
            let lookup = |n: &str| (self.source.env)(n);
            rampart_config::build_str_in(text, name, &self.source.base, &lookup, |c| {
                let changed = fixed_changes(&c, &current.config);
                if !changed.is_empty() {
                    restart.replace(changed.iter().map(|(p, _)| p.clone()).collect());
                    return Err(changed);
                }
                Snapshot::build(c, &env)
            })
        };
        let snap = match snap {
            Ok(s) => s,
            Err(e) if !restart.borrow().is_empty() && name == "admin API" => {
                let _ = e;
                return Err(ApplyError::Restart(restart.take()));
            }
            Err(e) => return Err(ApplyError::Invalid(e)),
        };
        let stored = commit(&snap)?.or(versions.current.store_version);
        self.state.store(Arc::new(snap));
        let doc = |t: &str| {
            rampart_config::document::from_text(t)
                .unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
        };
        let changes = rampart_config::document::diff(&doc(&versions.current.text), &doc(text));
        let old = std::mem::replace(
            &mut versions.current,
            Version {
                generation,
                at: rampart_events::Event::now_ts(),
                by: by.into(),
                text: text.into(),
                changes,
                store_version: stored,
            },
        );
        versions.history.push_back(old);
        let keep = self.state.load().config.admin.history;
        while versions.history.len() > keep {
            versions.history.pop_front();
        }
        Ok(generation)
    }

    /// Re-read every listener's certificates; the errors of those that could not be.
    pub fn reload_certificates(&self) -> Vec<String> {
        self.certs
            .iter()
            .filter_map(|c| c.reload().err().map(|e| e.to_string()))
            .collect()
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
                    let _ = me.reload_by("sighup", false);
                }
            })
            .map_err(crate::Error::Thread)?;
        Ok(())
    }

    /// Poll the file's (and the network list files') modification time and size; polling
    /// works on every filesystem, including bind mounts and editors that replace the file.
    pub fn watch_file(self: &Arc<Self>, interval: Duration) {
        let Some(path) = self.source.path.clone() else {
            return;
        };
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
                let mut last = stamp(&path);
                let mut lists_last = crate::network::watched_files(&me.state.load());
                loop {
                    std::thread::sleep(interval);
                    let now = stamp(&path);
                    // Network list files are re-read like the config: a changed file
                    // rebuilds its list and swaps the snapshot.
                    let lists_now = crate::network::watched_files(&me.state.load());
                    let file_changed = now.is_some() && now != last;
                    let lists_changed = lists_now != lists_last;
                    if file_changed || lists_changed {
                        last = now;
                        // A file that fails to load is not retried until it changes again.
                        lists_last = lists_now;
                        // A file the admin API wrote is already in force.
                        let _ = me.reload_by("file", !lists_changed);
                    }
                }
            });
    }
}

/// What a running process cannot change without a restart, between `new` and `old`.
fn fixed_changes(
    new: &rampart_config::Config,
    old: &rampart_config::Config,
) -> Vec<(String, String)> {
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
        ("listeners", bound(&new.listeners) != bound(&old.listeners)),
        ("admin.address", new.admin.address != old.admin.address),
        ("admin.tls", new.admin.tls != old.admin.tls),
        ("server.threads", new.server.threads != old.server.threads),
        ("access_log", new.access_log != old.access_log),
        ("events", new.events != old.events),
        ("tracing", new.tracing != old.tracing),
        ("store", new.store != old.store),
    ];
    fixed
        .iter()
        .filter(|(_, changed)| *changed)
        .map(|(path, _)| {
            (
                path.to_string(),
                "can only change with a restart".to_string(),
            )
        })
        .collect()
}

/// Replace `path` with `text` so that a reader (or a crash) sees the old file or the new
/// one, never a mix: a temporary file beside it, synced, renamed over it.
fn write_atomically(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.rampart-{}.tmp",
        path.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("config"),
        std::process::id()
    ));
    let mut f = std::fs::File::create(&tmp)?;
    // Keep the file's mode: a config holding secrets stays private.
    if let Ok(meta) = std::fs::metadata(path) {
        let _ = std::fs::set_permissions(&tmp, meta.permissions());
    }
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}
