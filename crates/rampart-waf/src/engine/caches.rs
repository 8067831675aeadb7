//! The caches evaluation reads through, each bounded: a phase's target-group values
//! ([`GroupCache`]), transformed values ([`TransformCache`]) and the libinjection detectors'
//! answers ([`DetectCache`]).

use super::ruleset::CompiledRule;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

/// One value of a target group, as ranges of [`GroupCache::bytes`].
pub(super) struct GroupItem {
    /// The variable's index in the rule (all rules of a group have the same variables).
    pub(super) var: u16,
    pub(super) count: bool,
    pub(super) key: Option<(u32, u32)>,
    pub(super) value: (u32, u32),
    /// The value before the transformations, when they changed it.
    pub(super) original: Option<(u32, u32)>,
    /// The group's members that may match it
    /// ([`GroupFilter::candidates`](super::groups::GroupFilter::candidates)).
    pub(super) candidates: u128,
}

/// The most a phase's groups keep (copies of request data, transformed): beyond it, rules
/// read the request themselves, so that a large body is not copied once per group.
pub(super) const GROUP_BYTES_MAX: usize = 1 << 20;

/// A span end marking a group that did not fit in [`GROUP_BYTES_MAX`].
pub(super) const OVERFLOW: u32 = u32::MAX;

/// The transformed values of the target groups met so far in this phase.
#[derive(Default)]
pub(super) struct GroupCache {
    /// Per group: the phase run that filled it, and its range of `items`.
    pub(super) spans: Vec<(u32, u32, u32)>,
    /// Counts phase runs; a span from an earlier run is stale.
    pub(super) run: u32,
    pub(super) items: Vec<GroupItem>,
    pub(super) bytes: Vec<u8>,
}

thread_local! {
    /// Group buffers of finished transactions, for the next ones on this thread: a body's
    /// groups fill hundreds of kilobytes, and growing a new buffer there each request
    /// (copying it at every doubling) cost 2.5% of a JSON request's instructions.
    static POOL: std::cell::RefCell<Vec<(Vec<u8>, Vec<GroupItem>)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Buffers kept per thread, and the most a kept one may hold.
const POOL_MAX: usize = 2;
const POOL_BYTES_MAX: usize = 2 * GROUP_BYTES_MAX;

impl GroupCache {
    /// Empty buffers, from this thread's pool when it has some.
    pub(super) fn from_pool() -> GroupCache {
        let (bytes, items) = POOL
            .try_with(|p| p.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_default();
        GroupCache {
            spans: Vec::new(),
            run: 0,
            items,
            bytes,
        }
    }

    /// Gives the buffers back to this thread's pool (emptied; an oversized one is dropped).
    pub(super) fn return_to_pool(&mut self) {
        let (mut bytes, mut items) = (
            std::mem::take(&mut self.bytes),
            std::mem::take(&mut self.items),
        );
        if bytes.capacity() > POOL_BYTES_MAX || items.capacity() > POOL_BYTES_MAX / 64 {
            return;
        }
        bytes.clear();
        items.clear();
        let _ = POOL.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < POOL_MAX {
                p.push((bytes, items));
            }
        });
    }
    pub(super) fn push_bytes(&mut self, b: &[u8]) -> (u32, u32) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        (start, self.bytes.len() as u32)
    }

    pub(super) fn bytes(&self, (a, b): (u32, u32)) -> &[u8] {
        &self.bytes[a as usize..b as usize]
    }
}

/// Values longer than this are not remembered: long values rarely repeat.
pub(super) const DETECT_MEMO_MAX: usize = 128;

/// Whether detector answers for this target may be shared across requests: only the
/// User-Agent, which identifies software rather than a user and is the long value every
/// request repeats. Other values (form fields, cookies, a Referer's query) can be secrets,
/// and a shared answer would let a client time whether someone else sent one.
#[inline]
pub(super) fn shares_answers(coll: &str, key: Option<&[u8]>) -> bool {
    coll == "REQUEST_HEADERS" && key.is_some_and(|k| k.eq_ignore_ascii_case(b"user-agent"))
}

/// Shards per detector in [`DetectCache`], and the answers each keeps.
const DETECT_SHARDS: usize = 16;
const DETECT_SHARD_ENTRIES: usize = 1024;

pub(super) type DetectMemo = HashMap<Box<[u8]>, bool, ahash::RandomState>;

/// detectSQLi's and detectXSS's answers for User-Agent values ([`shares_answers`]), shared
/// by the transactions of a ruleset. libinjection is the costliest operator CRS runs
/// (942100 and 941100 on a browser's User-Agent were a sixth of a benign GET), and
/// browsers send the same few User-Agents on every request. Exact: the detectors are pure
/// functions of the value. Bounded: a full shard is emptied. Keyed with a random hasher:
/// clients choose the values.
pub(super) struct DetectCache {
    hasher: ahash::RandomState,
    /// `DETECT_SHARDS` per detector (0 detectSQLi, 1 detectXSS).
    pub(super) shards: Vec<std::sync::Mutex<DetectMemo>>,
}

impl std::fmt::Debug for DetectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DetectCache")
    }
}

impl DetectCache {
    pub(super) fn new() -> DetectCache {
        DetectCache {
            hasher: ahash::RandomState::new(),
            shards: (0..2 * DETECT_SHARDS).map(|_| Default::default()).collect(),
        }
    }

    /// Detector `d`'s answer for `v`: remembered, or `run` (without a lock held).
    #[inline]
    pub(super) fn answer(&self, d: usize, v: &[u8], run: impl FnOnce() -> bool) -> bool {
        if v.len() > DETECT_MEMO_MAX {
            return run();
        }
        let shard =
            &self.shards[d * DETECT_SHARDS + self.hasher.hash_one(v) as usize % DETECT_SHARDS];
        let lock = || shard.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = lock().get(v) {
            return *known;
        }
        let x = run();
        let mut m = lock();
        if m.len() >= DETECT_SHARD_ENTRIES {
            m.clear();
        }
        m.insert(v.into(), x);
        x
    }
}

pub(super) type TransformCache =
    HashMap<(usize, usize, u32), Option<Box<[u8]>>, BuildHasherDefault<WordHash>>;

/// `value` after rule `r`'s transformations, `None` when they leave it as it is. CRS runs
/// the same few chains (`t:urlDecodeUni,t:htmlEntityDecode,...`) over the same values rule
/// after rule: each (value, chain) is computed once per phase.
pub(super) fn transformed<'c>(
    cache: &'c mut TransformCache,
    value: &[u8],
    r: &CompiledRule,
) -> Option<&'c [u8]> {
    let key = (value.as_ptr() as usize, value.len(), r.chain_id);
    if cache.capacity() == 0 {
        // Sized once, on first use: growing it rule by rule costs more than the
        // transformations saved.
        cache.reserve(256);
    }
    cache
        .entry(key)
        .or_insert_with(|| match apply_chain(r, Cow::Borrowed(value)) {
            Cow::Borrowed(_) => None,
            Cow::Owned(o) => (o != value).then(|| o.into_boxed_slice()),
        })
        .as_deref()
}

/// `v` after rule `r`'s transformations.
pub(super) fn apply_chain<'v>(r: &CompiledRule, mut v: Cow<'v, [u8]>) -> Cow<'v, [u8]> {
    for tr in &r.transforms {
        v = tr.apply_cow(v);
    }
    v
}

/// A hasher for keys made of machine words that requests do not choose (addresses, ids).
#[derive(Default)]
pub(super) struct WordHash(pub(super) u64);

impl std::hash::Hasher for WordHash {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn write_usize(&mut self, x: usize) {
        self.write_u64(x as u64);
    }
    fn write_u32(&mut self, x: u32) {
        self.write_u64(u64::from(x));
    }
}

/// [`classes`](crate::transform::classes) of the phase's request values, by address and
/// length: every rule with transformations asks it of every value it reads (a 70-byte
/// User-Agent is scanned again by each header rule), and it depends on the value alone.
/// Direct-mapped, a miss overwrites. Atomics only to keep the transaction `Sync`: relaxed
/// loads and stores are plain moves, and one thread uses it at a time.
pub(super) struct ClassMemo {
    slots: [(AtomicUsize, AtomicU64); CLASS_SLOTS],
}

const CLASS_SLOTS: usize = 64;

/// Shorter values are scanned faster than looked up.
const CLASS_MEMO_MIN: usize = 10;

impl Default for ClassMemo {
    fn default() -> Self {
        ClassMemo {
            slots: std::array::from_fn(|_| (AtomicUsize::new(0), AtomicU64::new(0))),
        }
    }
}

impl ClassMemo {
    /// The classes of `v`, a value that does not change while the phase runs.
    #[inline]
    pub(super) fn get(&self, v: &[u8]) -> u16 {
        if v.len() < CLASS_MEMO_MIN {
            return crate::transform::classes(v);
        }
        let p = v.as_ptr() as usize;
        let (key, val) = &self.slots[((p >> 3) ^ v.len()) % CLASS_SLOTS];
        let packed = val.load(Relaxed);
        if key.load(Relaxed) == p && (packed >> 16) as usize == v.len() {
            return packed as u16;
        }
        let c = crate::transform::classes(v);
        key.store(p, Relaxed);
        val.store((v.len() as u64) << 16 | u64::from(c), Relaxed);
        c
    }

    /// Forgets every value: called when a phase starts (request data may change between).
    pub(super) fn clear(&mut self) {
        for (k, _) in &mut self.slots {
            *k.get_mut() = 0;
        }
    }
}
