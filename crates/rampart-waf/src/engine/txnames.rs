//! The TX names the rules spell out, numbered at load ([`TxNames`]), so that a
//! transaction's reads and writes index slots instead of hashing names.

use super::actions::{Effect, VarName};
use super::macros::{Piece, Template};
use super::ruleset::CompiledRule;
use super::vars::{Coll, Source};
use crate::parser::Selector;
use std::collections::HashMap;

/// TX names of regex captures (`capture`): `tx.0` to `tx.9`.
const CAPTURE_KEYS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

/// A TX variable name written in the rules, with its slot in
/// [`TxStore`](super::txstore::TxStore) once the ruleset is built.
#[derive(Debug)]
pub(super) struct TxName {
    pub(super) name: String,
    pub(super) slot: u32,
}

pub(super) const NO_SLOT: u32 = u32::MAX;

impl TxName {
    pub(super) fn new(name: &str) -> TxName {
        TxName {
            name: name.to_ascii_lowercase(),
            slot: NO_SLOT,
        }
    }
}

/// Every TX name the rules spell out, numbered at load. `0`..`9` (captures) come first, so
/// capture `n` is slot `n`.
#[derive(Debug)]
pub(super) struct TxNames {
    pub(super) names: Vec<String>,
    pub(super) index: HashMap<String, u32, ahash::RandomState>,
    /// For each `TX:/regex/` selector the rules use: the slots whose names it selects
    /// (found at load), so that a read scans those and the names made at run time rather
    /// than every slot.
    pub(super) selected: HashMap<String, Vec<u32>>,
}

impl TxNames {
    pub(super) fn new() -> TxNames {
        let mut t = TxNames {
            names: Vec::new(),
            index: HashMap::default(),
            selected: HashMap::new(),
        };
        for k in CAPTURE_KEYS {
            t.intern(k);
        }
        t
    }

    pub(super) fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    fn name(&mut self, n: &mut TxName) {
        n.slot = self.intern(&n.name);
    }

    fn template(&mut self, t: &mut Template) {
        for p in &mut t.0 {
            if let Piece::Tx(n) = p {
                self.name(n);
            }
        }
    }

    fn var_name(&mut self, v: &mut VarName) {
        match v {
            VarName::Tx(n) => self.name(n),
            VarName::Dynamic(t) => self.template(t),
        }
    }

    /// Numbers every TX name in rule `l` (one chain link).
    pub(super) fn rule(&mut self, l: &mut CompiledRule) {
        for t in [&mut l.msg_t, &mut l.logdata_t, &mut l.op_macros]
            .into_iter()
            .flatten()
        {
            self.template(t);
        }
        for e in &mut l.effects {
            match e {
                Effect::SetVar { name, value, .. } => {
                    self.var_name(name);
                    self.template(value);
                }
                Effect::UnsetVar(name) => self.var_name(name),
                Effect::Ctl(..) | Effect::RemoveTargets(_) => {}
            }
        }
        // `TX:name` targets (CRS's paranoia-level gates, scores) read their slot directly.
        for (v, p) in l.vars.iter().zip(l.sources.iter_mut()) {
            if let (Source::Coll(Coll::Tx, false), Some(Selector::Key(k))) = (p.src, &v.selector) {
                p.src = Source::TxSlot(self.intern(k));
                // The slot is the selection.
                p.keyed = false;
            }
        }
    }
}
