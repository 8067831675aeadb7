//! What lets the rule loop skip work, derived once the ruleset is built: target groups (rule
//! links reading the same values through the same transformations) with their literal
//! prefilters, and the compact [`Hot`] array the loop reads first.

use super::ruleset::CompiledRule;
use super::vars::{Coll, Source, COLLECTIONS, GEO, SCALAR_NAMES};
use crate::operator::NumCmp;
use std::collections::HashMap;

/// Numbers the target groups: rule links whose variables are all request or response data
/// (which no rule changes while a phase runs) and that share both their variable list and
/// their transformation chain with another link of the same phase. Returns each group's
/// literal prefilter.
pub(super) fn assign_groups(phases: &mut [Vec<CompiledRule>; 5]) -> Vec<Option<GroupFilter>> {
    fn each_link(phases: &mut [Vec<CompiledRule>; 5], mut f: impl FnMut(usize, &mut CompiledRule)) {
        for (p, phase) in phases.iter_mut().enumerate() {
            for r in phase.iter_mut() {
                let mut link = Some(r);
                while let Some(l) = link {
                    f(p, l);
                    link = l.chain.as_deref_mut();
                }
            }
        }
    }
    let key = |p: usize, l: &CompiledRule| {
        let stable = l.sources.iter().all(|s| {
            matches!(
                s.src,
                Source::Coll(Coll::Args | Coll::Fixed(_), _) | Source::Scalar(_)
            )
        });
        (stable && !l.vars.is_empty()).then(|| (p, l.chain_id, format!("{:?}", l.vars)))
    };
    let mut uses: HashMap<(usize, u32, String), (usize, Option<u32>)> = HashMap::new();
    each_link(phases, |p, l| {
        if let Some(k) = key(p, l) {
            uses.entry(k).or_default().0 += 1;
        }
    });
    let mut next = 0;
    // Per group: literal → the bits of the members whose operator needs it.
    let mut literals: Vec<HashMap<Vec<u8>, u128>> = Vec::new();
    let mut members: Vec<u8> = Vec::new();
    each_link(phases, |p, l| {
        let Some((n, id)) = key(p, l).and_then(|k| uses.get_mut(&k)) else {
            return;
        };
        if *n < 2 {
            return;
        }
        let g = *id.get_or_insert_with(|| {
            next += 1;
            literals.push(HashMap::new());
            members.push(0);
            next - 1
        });
        l.group = Some(g);
        let g = g as usize;
        // A multiMatch member gets no filter bit: the filter sees only the transformed
        // value, and such a rule may match on the value before or between.
        if let (Some(lits), true, false) = (l.op.literals(), members[g] < 128, l.multi_match) {
            let bit = members[g];
            members[g] += 1;
            l.filter_bit = Some(bit);
            for lit in lits {
                *literals[g].entry(lit.clone()).or_default() |= 1u128 << bit;
            }
        }
    });
    literals
        .into_iter()
        .zip(members)
        .map(|(lits, n)| {
            if n < 2 {
                // One member: its operator's own search is as good.
                return None;
            }
            let (pats, bits): (Vec<Vec<u8>>, Vec<u128>) = lits.into_iter().unzip();
            let ac = aho_corasick::AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .match_kind(aho_corasick::MatchKind::Standard)
                .build(&pats)
                .ok()?;
            Some(GroupFilter {
                ac,
                bits,
                all: if n == 128 {
                    u128::MAX
                } else {
                    (1u128 << n) - 1
                },
            })
        })
        .collect()
}

/// One pass over a value that tells which of a group's rules can match it: the union of
/// the members' required literals
/// ([`CompiledOperator::literals`](crate::operator::CompiledOperator::literals)).
#[derive(Debug)]
pub(super) struct GroupFilter {
    ac: aho_corasick::AhoCorasick,
    /// Per pattern, the members (bits) that need it.
    bits: Vec<u128>,
    /// All members' bits.
    all: u128,
}

/// Values longer than this skip the group prefilter (every member runs its operator): the
/// overlapping search reports every occurrence, so its cost grows with matches.
const FILTER_MAX: usize = 16 << 10;

impl GroupFilter {
    /// The members that may match `v`.
    #[inline]
    pub(super) fn candidates(&self, v: &[u8]) -> u128 {
        if v.len() > FILTER_MAX {
            return self.all;
        }
        let mut m = 0;
        for hit in self.ac.find_overlapping_iter(v) {
            m |= self.bits[hit.pattern().as_usize()];
            if m == self.all {
                break;
            }
        }
        m
    }
}

/// What the rule loop needs to pass over most rules without reading them: a rule's own
/// data is spread over several heap blocks, which a busy proxy has evicted from the cache
/// between requests, while this array of a few kilobytes stays close.
#[derive(Debug, Clone, Copy)]
pub(super) struct Hot {
    /// The sources the rule's first link reads ([`source_bit`]): none of them holding a
    /// value, it cannot match.
    pub(super) reads: u64,
    /// For a first link `TX:name "@lt 2"` (CRS's paranoia gates): the slot, the test and
    /// the negation, enough to tell a miss.
    pub(super) tx_test: Option<(u32, NumCmp, i64, bool)>,
}

/// A source that may hold values whatever the request (TX, MATCHED_VAR, counts).
pub(super) const ALWAYS: u64 = 1 << 63;

/// The bit of `src` in [`Hot::reads`] and in a transaction's present sources.
pub(super) fn source_bit(src: Source) -> u64 {
    match src {
        // Filled by `@geoLookup` in the middle of a phase: never skipped as empty.
        Source::Coll(Coll::Fixed(GEO), _) => ALWAYS,
        Source::Coll(Coll::Fixed(i), _) => 1 << i,
        Source::Coll(Coll::Args, _) => 1 << COLLECTIONS.len(),
        // Never set by this engine: never present.
        Source::Scalar(u8::MAX) => 0,
        Source::Scalar(i) => 1 << (COLLECTIONS.len() + 1 + usize::from(i)),
        _ => ALWAYS,
    }
}

const _: () = assert!(COLLECTIONS.len() + 1 + SCALAR_NAMES.len() < 63);

impl Hot {
    pub(super) fn of(r: &CompiledRule) -> Hot {
        let reads = r
            .sources
            .iter()
            .filter(|p| !p.exclude)
            .map(|p| if p.count { ALWAYS } else { source_bit(p.src) })
            .fold(0, |a, b| a | b);
        let tx_test = match (r.sources.as_slice(), r.op.numeric()) {
            ([p], Some((cmp, n)))
                if !p.exclude && !p.count && r.transforms.is_empty() && r.op_macros.is_none() =>
            {
                match p.src {
                    Source::TxSlot(slot) => Some((slot, cmp, n, r.op.negated)),
                    _ => None,
                }
            }
            _ => None,
        };
        Hot { reads, tx_test }
    }
}
