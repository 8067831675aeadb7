//! A transaction's TX variables ([`TxStore`]): the slotted names' values in one buffer, and
//! a map for the names made at run time.

use super::txnames::{TxName, TxNames, NO_SLOT};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

/// TX variables. The names the rules spell out have slots (numbered at load), so CRS's
/// hundreds of reads and writes per request index a vector instead of hashing and
/// allocating names; names made at run time (`tx.header_name_920450_%{tx.0}`) go to a map.
pub(super) struct TxStore {
    pub(super) names: Arc<TxNames>,
    /// Per slot, where its value is in `bytes`: CRS sets a hundred variables per request,
    /// which one buffer holds without an allocation each.
    pub(super) slots: Vec<Option<Span>>,
    bytes: Vec<u8>,
    /// Keys can come from requests (header names): a keyed hasher.
    pub(super) dynamic: HashMap<String, Vec<u8>, ahash::RandomState>,
}

impl TxStore {
    pub(super) fn new(names: Arc<TxNames>) -> TxStore {
        TxStore {
            slots: vec![None; names.names.len()],
            bytes: Vec::new(),
            names,
            dynamic: HashMap::with_hasher(ahash::RandomState::new()),
        }
    }

    fn slot(&self, key: &str) -> Option<usize> {
        self.names.index.get(key).map(|&i| i as usize)
    }

    pub(super) fn get(&self, key: &str) -> Option<&[u8]> {
        match self.slot(key) {
            Some(i) => self.value(i),
            None => self.dynamic.get(key).map(Vec::as_slice),
        }
    }

    pub(super) fn get_name(&self, n: &TxName) -> Option<&[u8]> {
        match n.slot {
            NO_SLOT => self.get(&n.name),
            i => self.value(i as usize),
        }
    }

    pub(super) fn get_key_value(&self, key: &str) -> Option<(&str, &[u8])> {
        match self.slot(key) {
            Some(i) => self.value(i).map(|v| (self.names.names[i].as_str(), v)),
            None => self
                .dynamic
                .get_key_value(key)
                .map(|(k, v)| (k.as_str(), v.as_slice())),
        }
    }

    /// Slot `i`'s value.
    pub(super) fn value(&self, i: usize) -> Option<&[u8]> {
        self.slots[i].map(|s| &self.bytes[s.at..s.at + s.len])
    }

    pub(super) fn set_slot(&mut self, i: usize, value: &[u8]) {
        let len = value.len();
        match &mut self.slots[i] {
            Some(s) if len <= s.cap => {
                self.bytes[s.at..s.at + len].copy_from_slice(value);
                s.len = len;
            }
            slot => {
                // A new place, with room to grow (scores gain digits): what it leaves
                // behind is at most what it takes.
                if self.bytes.capacity() == 0 {
                    self.bytes.reserve(4 << 10);
                }
                let cap = len.max(slot.map_or(0, |s| s.cap * 2)).max(8);
                let at = self.bytes.len();
                self.bytes.extend_from_slice(value);
                self.bytes.resize(at + cap, 0);
                *slot = Some(Span { at, len, cap });
            }
        }
    }

    pub(super) fn set(&mut self, key: TxKey<'_>, value: &[u8]) {
        let name = match key {
            TxKey::Slot(i) => return self.set_slot(i as usize, value),
            TxKey::Name(n) => n,
        };
        match self.slot(&name) {
            Some(i) => self.set_slot(i, value),
            None => match self.dynamic.get_mut(name.as_ref()) {
                Some(v) => overwrite(v, value),
                None => {
                    // A name rendered at run time is already owned: moved, not copied.
                    self.dynamic.insert(name.into_owned(), value.to_vec());
                }
            },
        }
    }

    pub(super) fn get_key(&self, key: &TxKey<'_>) -> Option<&[u8]> {
        match key {
            TxKey::Slot(i) => self.value(*i as usize),
            TxKey::Name(n) => self.get(n),
        }
    }

    pub(super) fn remove(&mut self, key: &TxKey<'_>) {
        let name = match key {
            TxKey::Slot(i) => return self.slots[*i as usize] = None,
            TxKey::Name(n) => n.as_ref(),
        };
        match self.slot(name) {
            Some(i) => self.slots[i] = None,
            None => {
                self.dynamic.remove(name);
            }
        }
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let names = &self.names.names;
        (0..self.slots.len())
            .filter_map(move |i| self.value(i).map(|v| (names[i].as_str(), v)))
            .chain(self.dynamic.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
}

/// A TX slot's value in [`TxStore::bytes`]: where, how long, and the room it has.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    at: usize,
    len: usize,
    cap: usize,
}

/// Replaces `buf`'s contents, keeping its allocation (CRS rewrites scores all request long).
fn overwrite(buf: &mut Vec<u8>, value: &[u8]) {
    buf.clear();
    buf.extend_from_slice(value);
}

/// The TX variable a `setvar` writes: a slot, or a name made at run time.
pub(super) enum TxKey<'n> {
    Slot(u32),
    Name(Cow<'n, str>),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tx_slots_keep_their_values_as_they_grow_and_shrink() {
        let mut names = TxNames::new();
        let (a, b) = (names.intern("a") as usize, names.intern("b") as usize);
        let mut tx = TxStore::new(Arc::new(names));
        assert_eq!(tx.value(a), None);
        let mut expect = Vec::new();
        for n in [1usize, 3, 9, 2, 40, 0, 17, 100, 5] {
            let v = vec![b'x'; n];
            tx.set_slot(a, &v);
            tx.set_slot(b, &vec![b'y'; n / 2]);
            expect.clone_from(&v);
            assert_eq!(tx.value(a), Some(expect.as_slice()));
            assert_eq!(tx.value(b), Some(vec![b'y'; n / 2].as_slice()));
        }
        tx.remove(&TxKey::Slot(a as u32));
        assert_eq!(tx.value(a), None);
        assert_eq!(tx.iter().map(|(k, _)| k).collect::<Vec<_>>(), ["b"]);
    }
}
