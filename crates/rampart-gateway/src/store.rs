//! A fleet sharing one config through PostgreSQL (`store.postgres`): at startup the node
//! takes the newest stored version (seeding an empty store from its file), or its local
//! cache when the database is down; then a follower task applies every announced version
//! (LISTEN/NOTIFY), reconnects after an outage and catches up. The admin API's writes go
//! through [`StoreLink::insert`]. A version that does not build on this node is refused
//! here, reported, and the node keeps the config it has.

use crate::reload::Reloader;
use rampart_config::document;
use rampart_store::{Announcements, Error, Store, Stored};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

enum Cmd {
    Insert {
        document: String,
        author: String,
        parent: Option<i64>,
        reply: std::sync::mpsc::Sender<Result<i64, Error>>,
    },
}

/// The running node's side of the store.
pub struct StoreLink {
    cmds: tokio::sync::mpsc::UnboundedSender<Cmd>,
    cache: PathBuf,
    timeout: Duration,
}

/// Where the shared config for startup came from.
pub struct Initial {
    /// The whole config text to build (the shared part combined with the node's file).
    pub text: String,
    /// What it is called in errors.
    pub name: String,
    /// The stored version it holds, if it came from the store (or its cache).
    pub version: Option<i64>,
    /// The connection, when the store answered.
    pub connection: Option<(Store, Announcements)>,
}

/// The cache file for a config at `config_path`.
pub fn cache_path(settings: &rampart_config::PostgresStore, config_path: &Path) -> PathBuf {
    settings
        .cache
        .clone()
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let mut p = config_path.as_os_str().to_owned();
            p.push(".store-cache.yaml");
            PathBuf::from(p)
        })
}

/// The cache holds the stored version's number on its first line, then the document.
fn read_cache(path: &Path) -> Option<(i64, String)> {
    let text = std::fs::read_to_string(path).ok()?;
    let (first, doc) = text.split_once('\n')?;
    let v = first
        .strip_prefix("# rampart store version ")?
        .parse()
        .ok()?;
    Some((v, doc.to_string()))
}

fn write_cache(path: &Path, version: i64, shared: &str) {
    let text = format!("# rampart store version {version}\n{shared}");
    let tmp = path.with_extension("tmp");
    let result = (|| {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // The shared config can hold secrets.
            f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        }
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        log::error!(
            "config store: cannot write the cache {}: {e}",
            path.display()
        );
    }
}

/// The config to start with: the store's newest version (an empty store is seeded with the
/// shared part of `local_text`), else the cache, else the file alone.
pub fn initial(
    settings: &rampart_config::PostgresStore,
    url: &str,
    config_path: &Path,
    local_text: &str,
    rt: &tokio::runtime::Runtime,
) -> Initial {
    let local = document::from_text(local_text).unwrap_or_default();
    let cache = cache_path(settings, config_path);
    let combined = |shared: &str| {
        let s = document::from_text(shared).unwrap_or_default();
        document::to_text(&document::combine(&s, &local))
    };
    let limit = settings.connect_timeout.0;
    let connected = rt.block_on(async {
        // A database that accepts but does not answer must not hold the start for long.
        tokio::time::timeout(limit * 3, start(url, limit, &local))
            .await
            .unwrap_or(Err(Error::Timeout(limit * 3)))
    });

    match connected {
        Ok((store, heard, latest)) => {
            write_cache(&cache, latest.version, &latest.document);
            Initial {
                text: combined(&latest.document),
                name: format!("config store version {}", latest.version),
                version: Some(latest.version),
                connection: Some((store, heard)),
            }
        }
        Err(e) => {
            crate::observe::system_event(
                "store",
                "degraded",
                format!("the config store is unreachable at startup ({e})"),
            );
            match read_cache(&cache) {
                Some((v, doc)) => {
                    log::warn!(
                        "config store: starting on the cached version {v} ({})",
                        cache.display()
                    );
                    Initial {
                        text: combined(&doc),
                        name: format!("cached config store version {v}"),
                        version: Some(v),
                        connection: None,
                    }
                }
                None => {
                    log::warn!("config store: no cache yet; starting on the file alone");
                    Initial {
                        text: local_text.to_string(),
                        name: config_path.display().to_string(),
                        version: None,
                        connection: None,
                    }
                }
            }
        }
    }
}

/// Connect, read the newest version; an empty store is seeded with the file's shared
/// sections (a node starting at the same time may seed first: then its version is taken).
async fn start(
    url: &str,
    limit: Duration,
    local: &serde_json::Value,
) -> Result<(Store, Announcements, Stored), Error> {
    let (mut store, heard) = Store::connect(url, limit).await?;
    let latest = match store.latest().await? {
        Some(s) => s,
        None => {
            let seed = document::to_text(&document::shared_part(local));
            match store.insert(&seed, "seed", None).await {
                Ok(_) | Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
            store.latest().await?.ok_or(Error::Timeout(limit))?
        }
    };
    Ok((store, heard, latest))
}

impl StoreLink {
    /// Start the follower on `rt`; `connection` is the one startup made, if any.
    pub fn start(
        url: String,
        settings: &rampart_config::PostgresStore,
        config_path: &Path,
        connection: Option<(Store, Announcements)>,
        reloader: Arc<Reloader>,
        rt: &tokio::runtime::Handle,
    ) -> Arc<StoreLink> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let link = Arc::new(StoreLink {
            cmds: tx,
            cache: cache_path(settings, config_path),
            timeout: settings.connect_timeout.0,
        });
        rt.spawn(follow(
            url,
            settings.connect_timeout.0,
            connection,
            rx,
            reloader,
        ));
        link
    }

    /// Store a new shared document made on version `parent`; waits for the answer (the
    /// admin API's caller waits for the change either way).
    pub fn insert(
        &self,
        document: String,
        author: &str,
        parent: Option<i64>,
    ) -> Result<i64, Error> {
        let (reply, answer) = std::sync::mpsc::channel();
        let cmd = Cmd::Insert {
            document,
            author: author.to_string(),
            parent,
            reply,
        };
        if self.cmds.send(cmd).is_err() {
            return Err(Error::Timeout(self.timeout));
        }
        answer
            .recv_timeout(self.timeout + Duration::from_secs(3))
            .unwrap_or(Err(Error::Timeout(self.timeout)))
    }

    /// Remember a version this node runs, for a start while the database is down.
    pub fn cache(&self, version: i64, shared: &str) {
        write_cache(&self.cache, version, shared);
    }
}

/// Applies announced versions; reconnects (every second) after losing the database and
/// catches up with what was stored meanwhile; serves the admin API's writes.
async fn follow(
    url: String,
    timeout: Duration,
    mut connection: Option<(Store, Announcements)>,
    mut cmds: tokio::sync::mpsc::UnboundedReceiver<Cmd>,
    reloader: Arc<Reloader>,
) {
    let mut refused: std::collections::HashSet<i64> = Default::default();
    let mut was_down = connection.is_none();
    // A version stored while this node started is caught up with at once.
    let mut catch_up = true;
    loop {
        let Some((store, heard)) = connection.as_mut() else {
            // Down: answer writes at once, try again in a second.
            tokio::select! {
                Some(Cmd::Insert { document, author, parent, reply }) = cmds.recv() => {
                    // A write is worth one attempt to reconnect now rather than a refusal.
                    match Store::connect(&url, timeout).await {
                        Ok(mut c) => {
                            let _ = reply.send(c.0.insert(&document, &author, parent).await);
                            connection = Some(c);
                            catch_up = true;
                            restored(&mut was_down);
                        }
                        Err(e) => {
                            let _ = reply.send(Err(e));
                        }
                    }
                }
                _ = tokio::time::sleep(Duration::from_secs(1)) => {
                    match Store::connect(&url, timeout).await {
                        Ok(c) => {
                            connection = Some(c);
                            catch_up = true;
                            restored(&mut was_down);
                        }
                        Err(e) => log::debug!("config store: still unreachable: {e}"),
                    }
                }
            }
            continue;
        };
        if catch_up {
            catch_up = false;
            match tokio::time::timeout(timeout, store.latest()).await {
                Ok(Ok(Some(s))) => apply(&reloader, s, &mut refused).await,
                Ok(Ok(None)) => {}
                Ok(Err(e)) => log::warn!("config store: cannot read the latest version: {e}"),
                Err(_) => {
                    lose(&mut connection, &mut was_down);
                    continue;
                }
            }
        }
        let lost = tokio::select! {
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Insert { document, author, parent, reply }) => {
                    // A database that stops answering counts as gone: writes are refused
                    // quickly and the connection is made again.
                    let r = tokio::time::timeout(timeout, store.insert(&document, &author, parent))
                        .await
                        .unwrap_or(Err(Error::Timeout(timeout)));
                    let lost = matches!(&r, Err(Error::Timeout(_)))
                        || matches!(&r, Err(Error::Db(e)) if e.is_closed())
                        || store.is_closed();
                    let _ = reply.send(r);
                    lost
                }
                None => return,
            },
            v = heard.recv() => match v {
                Some(v) => {
                    if reloader.store_version().is_none_or(|cur| v > cur) && !refused.contains(&v) {
                        match tokio::time::timeout(timeout, store.get(v)).await {
                            Ok(Ok(Some(s))) => apply(&reloader, s, &mut refused).await,
                            Ok(Ok(None)) => {}
                            Ok(Err(e)) => log::warn!("config store: cannot read version {v}: {e}"),
                            Err(_) => {
                                lose(&mut connection, &mut was_down);
                                continue;
                            }
                        }
                    }
                    store.is_closed()
                }
                None => true,
            },
        };
        if lost {
            lose(&mut connection, &mut was_down);
        }
    }
}

fn restored(was_down: &mut bool) {
    if *was_down {
        crate::observe::system_event(
            "store",
            "restored",
            "the config store is reachable again".into(),
        );
    }
    *was_down = false;
}

fn lose(connection: &mut Option<(Store, Announcements)>, was_down: &mut bool) {
    *connection = None;
    *was_down = true;
    crate::observe::system_event(
        "store",
        "degraded",
        "the config store connection was lost; serving the config in force".into(),
    );
}

async fn apply(reloader: &Arc<Reloader>, s: Stored, refused: &mut std::collections::HashSet<i64>) {
    if reloader.store_version().is_some_and(|cur| s.version <= cur) || refused.contains(&s.version)
    {
        return;
    }
    let r = reloader.clone();
    let version = s.version;
    // Building a snapshot compiles rules: off the runtime's worker.
    let result = tokio::task::spawn_blocking(move || r.apply_stored(&s)).await;
    if !matches!(result, Ok(Ok(_))) {
        refused.insert(version);
    }
}
