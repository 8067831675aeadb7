//! Rule actions that act on the transaction: `setvar` and `ctl` ([`Effect`], parsed once at
//! load, run per matched target) and the rule's disruptive action.

use super::macros::Template;
use super::ruleset::{parse_range, CompiledRule};
use super::transaction::Transaction;
use super::txnames::{TxName, NO_SLOT};
use super::txstore::TxKey;
use super::{Disruptive, EngineMode};
use std::borrow::Cow;

/// A non-disruptive action that changes the transaction, parsed once at load.
#[derive(Debug)]
pub(super) enum Effect {
    /// `setvar:tx.name=value`, `=+n`, `=-n`.
    SetVar {
        name: VarName,
        op: SetOp,
        value: Template,
        /// The value as a number when it is a literal (scores: `+5`).
        number: Option<i64>,
    },
    /// `setvar:!tx.name`.
    UnsetVar(VarName),
    /// `ctl:key=value`.
    Ctl(String, String),
    /// `ctl:ruleRemoveTargetById|ByTag|ByMsg`, resolved at load to the rules it names.
    RemoveTargets(std::sync::Arc<Exclusion>),
}

/// Targets removed from a set of rules for one transaction (`ctl:ruleRemoveTarget*`, a
/// route's exclusions). Built once at load for a `ctl`, so that applying it (CRS's 941010
/// removes REQUEST_FILENAME from some forty rules on most requests) is a few word ORs
/// rather than a copy of the target per rule.
#[derive(Debug)]
pub(super) struct Exclusion {
    /// One bit per rule index ([`CompiledRule::ix`]).
    pub(super) bits: Vec<u64>,
    /// The targets, each marked `exclude`; never empty.
    pub(super) vars: Vec<crate::parser::Variable>,
}

/// Targets removed from the rules with one id, prepared once
/// ([`Ruleset::target_exclusion`](super::Ruleset::target_exclusion), e.g. when a route's
/// settings are built) and applied to each transaction
/// ([`Transaction::apply_target_exclusion`]) without copying anything.
#[derive(Debug, Clone)]
pub struct TargetExclusion(pub(super) std::sync::Arc<Exclusion>);

impl Exclusion {
    /// `vars` removed from the rules at `ixs`, among `rule_ixs` rules; `None` without
    /// a target.
    pub(super) fn new(
        ixs: impl IntoIterator<Item = u32>,
        vars: &[crate::parser::Variable],
        rule_ixs: u32,
    ) -> Option<Exclusion> {
        if vars.is_empty() {
            return None;
        }
        let mut bits = vec![0u64; (rule_ixs as usize).div_ceil(64)];
        for ix in ixs {
            if let Some(w) = bits.get_mut(ix as usize / 64) {
                *w |= 1 << (ix % 64);
            }
        }
        let vars = vars
            .iter()
            .map(|v| {
                let mut v = v.clone();
                v.exclude = true;
                v
            })
            .collect();
        Some(Exclusion { bits, vars })
    }

    #[inline]
    pub(super) fn has(&self, ix: u32) -> bool {
        self.bits
            .get(ix as usize / 64)
            .is_some_and(|w| w & (1 << (ix % 64)) != 0)
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum SetOp {
    Assign,
    Add,
    Sub,
}

/// The target of a `setvar`.
#[derive(Debug)]
pub(super) enum VarName {
    /// A TX variable named by a literal: lower-cased, without `tx.`.
    Tx(TxName),
    /// A name built from macros: expanded, then checked for `tx.`, per evaluation.
    Dynamic(Template),
}

/// `setvar`'s argument as a number (ModSecurity reads non-numbers as 0).
#[inline]
fn number(s: &[u8]) -> i64 {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Effect {
    /// `None` for variables outside TX: ip./global./session. collections are not
    /// persisted by this engine.
    pub(super) fn setvar(v: &str) -> Option<Effect> {
        let v = v.trim();
        let name = |n: &str| -> Option<VarName> {
            let n = n.trim();
            if n.contains("%{") {
                return Some(VarName::Dynamic(Template::compile(n)));
            }
            n.get(..3)
                .filter(|p| p.eq_ignore_ascii_case("tx."))
                .map(|_| VarName::Tx(TxName::new(&n[3..])))
        };
        if let Some(n) = v.strip_prefix('!') {
            return name(n).map(Effect::UnsetVar);
        }
        let (n, value) = v.split_once('=').unwrap_or((v, "1"));
        let (op, value) = if let Some(x) = value.strip_prefix('+') {
            (SetOp::Add, x)
        } else if let Some(x) = value.strip_prefix('-') {
            (SetOp::Sub, x)
        } else {
            (SetOp::Assign, value)
        };
        let value = Template::compile(value);
        let number = value.literal().map(|l| number(l.as_bytes()));
        Some(Effect::SetVar {
            name: name(n)?,
            op,
            value,
            number,
        })
    }
}

impl Transaction<'_> {
    pub(super) fn disrupt(&self, r: &CompiledRule) -> Option<Disruptive> {
        r.disruptive.clone()
    }

    /// The TX key a `setvar` names, or `None` when it names another collection.
    fn tx_key<'n>(&self, name: &'n VarName, r: &CompiledRule) -> Option<TxKey<'n>> {
        match name {
            VarName::Tx(k) if k.slot != NO_SLOT => Some(TxKey::Slot(k.slot)),
            VarName::Tx(k) => Some(TxKey::Name(Cow::Borrowed(&k.name))),
            VarName::Dynamic(t) => {
                // One allocation: rendered, checked, lower-cased and trimmed in place.
                let mut out = Vec::with_capacity(64);
                self.render(t, r, &mut out);
                if !out.get(..3).is_some_and(|p| p.eq_ignore_ascii_case(b"tx.")) {
                    return None;
                }
                out.drain(..3);
                out.make_ascii_lowercase();
                let name = String::from_utf8(out)
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
                Some(TxKey::Name(Cow::Owned(name)))
            }
        }
    }

    pub(super) fn effect(&mut self, e: &Effect, r: &CompiledRule) {
        match e {
            Effect::UnsetVar(name) => {
                if let Some(k) = self.tx_key(name, r) {
                    self.tx.remove(&k);
                }
            }
            Effect::SetVar {
                name,
                op,
                value,
                number: literal,
            } => {
                let Some(key) = self.tx_key(name, r) else {
                    return;
                };
                // CRS runs hundreds of setvars per request: the values are written into
                // the existing slot, and scores stay numbers until written.
                let mut buf = std::mem::take(&mut self.scratch);
                buf.clear();
                match op {
                    SetOp::Assign => self.render(value, r, &mut buf),
                    SetOp::Add | SetOp::Sub => {
                        let n = literal.unwrap_or_else(|| {
                            self.render(value, r, &mut buf);
                            number(&buf)
                        });
                        let cur = self.tx.get_key(&key).map_or(0, number);
                        // Wrapping: scores come from rules and requests, and must not panic.
                        let new = match op {
                            SetOp::Add => cur.wrapping_add(n),
                            _ => cur.wrapping_sub(n),
                        };
                        buf.clear();
                        use std::io::Write;
                        let _ = write!(buf, "{new}");
                    }
                }
                self.tx.set(key, &buf);
                self.scratch = buf;
            }
            Effect::RemoveTargets(ex) => self.add_exclusion(ex),
            Effect::Ctl(k, val) => match k.as_str() {
                "ruleEngine" => {
                    self.mode = match val.to_ascii_lowercase().as_str() {
                        "off" => EngineMode::Off,
                        "detectiononly" => EngineMode::DetectionOnly,
                        _ => EngineMode::On,
                    }
                }
                "ruleRemoveById" => {
                    if let Ok(range) = parse_range(val) {
                        self.removed_ids.push(range);
                    }
                }
                "ruleRemoveByTag" => self.removed_tags.push(val.to_string()),
                "ruleRemoveByMsg" => self.removed_msgs.push(val.to_string()),
                "requestBodyProcessor" => {
                    self.body_processor = Some(val.to_ascii_uppercase());
                }
                // Accepted as no-ops (see `CTLS` in ruleset.rs).
                _ => {}
            },
        }
    }
}
