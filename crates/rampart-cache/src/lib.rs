//! The response cache's store, for pingora-cache (which brings RFC 9111: freshness,
//! validators, `Vary`, serving stale, one fetch per entry at a time).
//!
//! pingora-cache's own memory storage is documented "for testing only": it has no bound,
//! copies each body per hit, and shows bodies still being written to readers. This one:
//! - keeps only complete responses (a body cut short upstream is never stored: an entry
//!   exists only once its writer finished);
//! - is bounded in bytes (bodies and headers) by pingora-cache's sharded LRU, which evicts
//!   the least recently used entries;
//! - serves hits without copying (`Bytes`), and ranges of them;
//! - purges by resource, path prefix, tag (the upstream's `Cache-Tag`) or everything.
//!
//! The caller puts an [`EntryInfo`] in each [`CacheKey`]'s extensions: what purges match on.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora_cache::eviction::{lru, CacheEntryKeyRef, EvictionManager};
use pingora_cache::key::{CacheHashKey, CompactCacheKey};
use pingora_cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora_cache::trace::SpanHandle;
use pingora_cache::{CacheKey, CacheMeta};
use pingora_error::{Error, ErrorType, Result};
use std::any::Any;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

/// Tags an entry keeps from `Cache-Tag`, and their length: a response cannot make its
/// entry large through them.
pub const MAX_TAGS: usize = 32;
/// The longest tag kept.
pub const MAX_TAG_LEN: usize = 128;
/// The LRU's shards (contention between threads).
const SHARDS: usize = 16;
/// What an entry costs beyond its bytes (map slot, key, LRU node, allocations): counted
/// against the bound so that many tiny entries cannot hold more memory than it says.
const ENTRY_OVERHEAD: usize = 256;

/// What an entry is for, as purges see it (set by the gateway in the key's extensions).
#[derive(Debug, Clone, Default)]
pub struct EntryInfo {
    /// The route that stored it.
    pub route: String,
    /// The path the client asked for (canonical).
    pub path: String,
    /// The query, when there was one.
    pub query: Option<String>,
}

/// Which entries a purge removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// One resource: this path (and query, when given), every host, variant and consumer.
    Resource {
        /// The canonical path.
        path: String,
        /// Only this query (`None`: any).
        query: Option<String>,
    },
    /// Every path that starts with this.
    Prefix(String),
    /// Every entry whose response carried this tag in `Cache-Tag`.
    Tag(String),
    /// Every entry of one route.
    Route(String),
    /// Everything.
    All,
}

struct Entry {
    meta: (Vec<u8>, Vec<u8>),
    body: Bytes,
    info: EntryInfo,
    tags: Vec<String>,
    compact: CompactCacheKey,
    /// Its weight in the LRU: every byte it holds, plus the overhead.
    size: usize,
}

fn weigh(meta: &(Vec<u8>, Vec<u8>), body: usize, info: &EntryInfo, tags: &[String]) -> usize {
    meta.0.len()
        + meta.1.len()
        + body
        + info.route.len()
        + info.path.len()
        + info.query.as_ref().map_or(0, String::len)
        + tags.iter().map(String::len).sum::<usize>()
        + ENTRY_OVERHEAD
}

impl Entry {
    fn matches(&self, sel: &Selector) -> bool {
        match sel {
            Selector::Resource { path, query } => {
                self.info.path == *path && (query.is_none() || self.info.query == *query)
            }
            Selector::Prefix(p) => self.info.path.starts_with(p.as_str()),
            Selector::Tag(t) => self.tags.iter().any(|x| x == t),
            Selector::Route(r) => self.info.route == *r,
            Selector::All => true,
        }
    }
}

/// Counters the gateway exports.
#[derive(Default)]
pub struct Stats {
    /// Entries stored.
    pub stored: AtomicU64,
    /// Entries the LRU evicted to stay in bounds.
    pub evicted: AtomicU64,
    /// Entries removed by purges.
    pub purged: AtomicU64,
}

/// The store: entries by their combined key (primary and variance).
pub struct Store {
    entries: RwLock<HashMap<String, Arc<Entry>>>,
    lru: lru::Manager<SHARDS>,
    max_entry: usize,
    /// Bytes of bodies being fetched (held outside the store until finished), and their cap.
    in_flight: AtomicUsize,
    max_in_flight: usize,
    /// Bumped by every purge: a fetch that started before one is not stored (it may be what
    /// the purge meant to remove).
    purges: AtomicU64,
    /// What happened to entries.
    pub stats: Stats,
}

impl Store {
    /// A store holding at most `max_bytes`, each entry at most `max_bytes / 4`. It lives
    /// as long as the process (pingora-cache takes `&'static` storage).
    pub fn leak(max_bytes: usize) -> &'static Store {
        // Entries are at least a few hundred bytes with their headers: the item cap keeps
        // the LRU's own bookkeeping bounded too.
        let items = (max_bytes / (4 * ENTRY_OVERHEAD)).max(1024);
        Box::leak(Box::new(Store {
            entries: RwLock::new(HashMap::new()),
            lru: lru::Manager::with_capacity_and_watermark(
                max_bytes,
                (items / SHARDS).min(4096),
                Some(items),
            ),
            max_entry: max_bytes / 4,
            in_flight: AtomicUsize::new(0),
            max_in_flight: max_bytes / 2,
            purges: AtomicU64::new(0),
            stats: Stats::default(),
        }))
    }

    /// The eviction manager to hand pingora-cache with this store.
    pub fn eviction(&'static self) -> &'static (dyn EvictionManager + Sync) {
        &self.lru
    }

    /// Bytes held (bodies and headers).
    pub fn bytes(&self) -> usize {
        self.lru.total_size()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Removes the entries `sel` matches; returns how many.
    pub fn purge(&self, sel: &Selector) -> usize {
        self.purges.fetch_add(1, Ordering::SeqCst);
        // Matched under the read lock (lookups go on), removed under the write lock.
        let keys: Vec<String> = self
            .read()
            .iter()
            .filter(|(_, e)| e.matches(sel))
            .map(|(k, _)| k.clone())
            .collect();
        let removed: Vec<Arc<Entry>> = {
            let mut map = self.write();
            keys.iter().filter_map(|k| map.remove(k)).collect()
        };
        for e in &removed {
            self.lru
                .remove(CacheEntryKeyRef::from_entry_id(&e.compact, None));
        }
        self.stats
            .purged
            .fetch_add(removed.len() as u64, Ordering::Relaxed);
        removed.len()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, Arc<Entry>>> {
        // A panic while holding the lock cannot leave the map half-changed (every change is
        // one insert or remove), so a poisoned lock is still a consistent map.
        self.entries.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<String, Arc<Entry>>> {
        self.entries.write().unwrap_or_else(|p| p.into_inner())
    }
}

/// The tags of a response: `Cache-Tag` values, comma-separated, bounded.
fn tags_of(meta: &CacheMeta) -> Vec<String> {
    meta.headers()
        .get_all("cache-tag")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.is_empty() && t.len() <= MAX_TAG_LEN)
        .take(MAX_TAGS)
        .map(str::to_string)
        .collect()
}

struct Hit {
    body: Bytes,
    range: (usize, usize),
    done: bool,
    size: usize,
}

#[async_trait]
impl HandleHit for Hit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        Ok(Some(self.body.slice(self.range.0..self.range.1)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        let len = self.body.len();
        let end = end.map_or(len, |e| e.min(len));
        if start >= len || start > end {
            return Error::e_explain(ErrorType::InternalError, "range outside the cached body");
        }
        self.range = (start, end);
        self.done = false;
        Ok(())
    }

    fn get_eviction_weight(&self) -> usize {
        self.size
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

struct Miss {
    store: &'static Store,
    hash: String,
    meta: (Vec<u8>, Vec<u8>),
    info: EntryInfo,
    tags: Vec<String>,
    compact: CompactCacheKey,
    body: BytesMut,
    /// The body outgrew the store's entry limit, or fetches in progress hold too much:
    /// nothing is stored.
    over: bool,
    /// The purge count when the fetch began.
    purges: u64,
}

impl Miss {
    /// Gives back what this fetch counted as in flight.
    fn release(&mut self) {
        let held = self.body.len();
        self.store.in_flight.fetch_sub(held, Ordering::Relaxed);
        self.body = BytesMut::new();
    }
}

impl Drop for Miss {
    fn drop(&mut self) {
        self.release();
    }
}

#[async_trait]
impl HandleMiss for Miss {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.over {
            return Ok(());
        }
        let before = self
            .store
            .in_flight
            .fetch_add(data.len(), Ordering::Relaxed);
        if self.body.len() + data.len() > self.store.max_entry
            || before + data.len() > self.store.max_in_flight
        {
            self.store
                .in_flight
                .fetch_sub(data.len(), Ordering::Relaxed);
            self.over = true;
            self.release();
            return Ok(());
        }
        self.body.extend_from_slice(&data);
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<MissFinishType> {
        if self.over {
            return Error::e_explain(ErrorType::InternalError, "response not stored: too large");
        }
        if self.store.purges.load(Ordering::SeqCst) != self.purges {
            return Error::e_explain(
                ErrorType::InternalError,
                "response not stored: purged meanwhile",
            );
        }
        let body = std::mem::take(&mut self.body);
        self.store
            .in_flight
            .fetch_sub(body.len(), Ordering::Relaxed);
        let info = std::mem::take(&mut self.info);
        let tags = std::mem::take(&mut self.tags);
        let meta = std::mem::take(&mut self.meta);
        let size = weigh(&meta, body.len(), &info, &tags);
        let entry = Arc::new(Entry {
            meta,
            body: body.freeze(),
            info,
            tags,
            compact: self.compact.clone(),
            size,
        });
        self.store
            .write()
            .insert(std::mem::take(&mut self.hash), entry);
        self.store.stats.stored.fetch_add(1, Ordering::Relaxed);
        // The LRU learns the size from this (pingora-cache admits it and purges what it
        // evicts through `Storage::purge`).
        Ok(MissFinishType::Created(size))
    }
}

#[async_trait]
impl Storage for Store {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let Some(entry) = self.read().get(&key.combined()).cloned() else {
            return Ok(None);
        };
        let meta = CacheMeta::deserialize(&entry.meta.0, &entry.meta.1)?;
        let len = entry.body.len();
        let hit = Hit {
            body: entry.body.clone(),
            range: (0, len),
            done: false,
            size: entry.size,
        };
        Ok(Some((meta, Box::new(hit))))
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        Ok(Box::new(Miss {
            store: self,
            hash: key.combined(),
            meta: meta.serialize()?,
            info: key
                .extensions
                .get::<EntryInfo>()
                .cloned()
                .unwrap_or_default(),
            tags: tags_of(meta),
            compact: key.to_compact(),
            body: BytesMut::new(),
            over: false,
            purges: self.purges.load(Ordering::SeqCst),
        }))
    }

    async fn purge(
        &'static self,
        target: PurgeTarget<'_>,
        purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        let removed = self.write().remove(&target.key().combined());
        match (removed, purge_type) {
            (None, _) => Ok(PurgeOutcome::NotFound),
            (Some(_), PurgeType::Eviction) => {
                self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                Ok(PurgeOutcome::Purged(None))
            }
            (Some(e), PurgeType::Invalidation) => {
                self.lru
                    .remove(CacheEntryKeyRef::from_entry_id(&e.compact, None));
                self.stats.purged.fetch_add(1, Ordering::Relaxed);
                Ok(PurgeOutcome::Purged(None))
            }
        }
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        // A revalidation (304) refreshed the headers and freshness; the body stays.
        let hash = key.combined();
        let serialized = meta.serialize()?;
        let mut map = self.write();
        let Some(old) = map.get(&hash) else {
            return Ok(false);
        };
        let tags = tags_of(meta);
        // The weight the LRU knows stays the one it admitted (pingora-cache does not re-admit
        // on a refresh); the headers of a 304 are close to the ones they replace.
        let entry = Arc::new(Entry {
            size: old.size,
            meta: serialized,
            body: old.body.clone(),
            info: old.info.clone(),
            tags,
            compact: old.compact.clone(),
        });
        map.insert(hash, entry);
        Ok(true)
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

#[cfg(test)]
mod tests;
