//! The rule loop: runs a phase's rules over a transaction (skipping what the `Hot` array
//! rules out), evaluates chains, resolves each rule's targets and transforms them, and
//! records matches.

use super::caches::{
    apply_chain, shares_answers, transformed, GroupItem, DETECT_MEMO_MAX, GROUP_BYTES_MAX, OVERFLOW,
};
use super::groups::{source_bit, ALWAYS};
use super::ruleset::CompiledRule;
use super::selectors::same_collection;
use super::transaction::{removed_in, Removed, Transaction};
use super::vars::{Coll, Plan, Source, ARGS_GET, ARGS_POST, COLLECTIONS, GEO};
use super::Phase;
use super::{Disruptive, EngineMode, Interruption, MatchedRule};
use crate::parser::{Selector, Variable};
use crate::transform::classes;
use std::borrow::Cow;

/// A rule's matched targets (name, transformed value): MATCHED_VARS. The entries past
/// `len` are kept for their buffers, which the next rule's hits are written into.
#[derive(Default)]
pub(super) struct Hits {
    items: Vec<(Vec<u8>, Vec<u8>)>,
    len: usize,
}

impl Hits {
    fn as_slice(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.items[..self.len]
    }

    /// Adds a hit named `coll:key` (or `&coll` when counted, `coll` for a scalar).
    fn push(&mut self, coll: &str, key: Option<&[u8]>, count: bool, value: &[u8]) {
        if self.len == self.items.len() {
            // Room for a usual name and value: no growing step by step.
            self.items
                .push((Vec::with_capacity(48), Vec::with_capacity(64)));
        }
        let (name, v) = &mut self.items[self.len];
        self.len += 1;
        name.clear();
        if count && key.is_none() {
            name.push(b'&');
        }
        name.extend_from_slice(coll.as_bytes());
        if let Some(k) = key {
            name.push(b':');
            name.extend_from_slice(k);
        }
        v.clear();
        v.extend_from_slice(value);
    }
}

/// A count (`&ARGS`) as text; small counts, the usual case, without allocating.
fn count_text(n: usize) -> Cow<'static, [u8]> {
    static SMALL: std::sync::LazyLock<Vec<String>> =
        std::sync::LazyLock::new(|| (0..256).map(|i| i.to_string()).collect());
    match SMALL.get(n) {
        Some(s) => Cow::Borrowed(s.as_bytes()),
        None => Cow::Owned(n.to_string().into_bytes()),
    }
}

/// One value a rule inspects, borrowed from the transaction where it can be.
pub(super) struct Target<'a> {
    /// The variable's index in the rule.
    var: u16,
    /// The collection (or scalar) name; reported as `coll:key`, or `&coll` when counted.
    coll: &'a str,
    key: Option<&'a [u8]>,
    pub(super) value: Cow<'a, [u8]>,
    count: bool,
    /// Borrowed from request or response data, which no rule changes during a phase (not
    /// TX or MATCHED_VAR*): its transformations can be cached.
    stable: bool,
}

impl<'a> Target<'a> {
    /// A collection item `coll:key`, its value or (for `_NAMES`) its key.
    #[inline]
    fn item(
        var: u16,
        coll: &'a str,
        (key, value): (&'a [u8], &'a [u8]),
        names: bool,
        stable: bool,
    ) -> Target<'a> {
        Target {
            var,
            coll,
            key: Some(key),
            value: Cow::Borrowed(if names { key } else { value }),
            count: false,
            stable,
        }
    }
}

impl Transaction<'_> {
    /// Runs the rules of `phase` on the inputs given so far. Nothing runs in `Off` mode;
    /// after an interruption or an `allow`, only logging (phase 5) does.
    pub fn run_phase(&mut self, phase: Phase) {
        // Logging (phase 5) runs even after a block or an allow, as in ModSecurity.
        if self.mode == EngineMode::Off
            || (phase != Phase::Logging && (self.interruption.is_some() || self.allowed))
        {
            return;
        }
        self.transform_cache
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        self.class_memo.clear();
        // Group values are valid for one phase: the request data can change between phases.
        self.groups.run += 1;
        self.groups.items.clear();
        self.groups.bytes.clear();
        let rs = self.rs.clone();
        let rules = &rs.phases[phase.index()];
        let hot = &rs.hot[phase.index()];
        self.present = self.present_sources();
        let present = self.present;
        let mut i = 0;
        while i < rules.len() {
            // Rules that cannot match, told from the compact array alone: nothing to read,
            // or a TX gate that does not hold.
            let h = &hot[i];
            if h.reads & present == 0 {
                i += 1;
                continue;
            }
            if let Some((slot, cmp, n, negated)) = h.tx_test {
                let holds = self
                    .tx
                    .value(slot as usize)
                    .is_some_and(|v| cmp.holds(v, n) != negated);
                if !holds {
                    i += 1;
                    continue;
                }
            }
            let r = &rules[i];
            i += 1;
            if self
                .removed_ids
                .iter()
                .any(|(a, b)| (*a..=*b).contains(&r.id))
                || (!self.removed_tags.is_empty()
                    && r.tags.iter().any(|t| self.removed_tags.contains(t)))
                || (!self.removed_msgs.is_empty()
                    && r.msg
                        .as_ref()
                        .is_some_and(|m| self.removed_msgs.contains(m)))
            {
                continue;
            }
            if !self.eval_chain(r) {
                continue;
            }
            self.report(r);
            if let Some(d) = self.disrupt(r) {
                match d {
                    Disruptive::Allow => {
                        self.allowed = true;
                        return;
                    }
                    Disruptive::Pass | Disruptive::Block => {}
                    other => {
                        if self.mode == EngineMode::On && phase != Phase::Logging {
                            self.interruption = Some(Interruption {
                                status: r.status.unwrap_or(403),
                                action: other,
                                rule_id: r.id,
                            });
                            return;
                        }
                    }
                }
            }
            if r.skip_after.is_some() {
                if let Some(pos) = r.skip_to {
                    i = pos.max(i);
                }
            } else if r.skip > 0 {
                i += r.skip;
            }
        }
    }

    fn report(&mut self, r: &CompiledRule) {
        if !r.log {
            return;
        }
        let msg = r
            .msg_t
            .as_ref()
            .map(|m| self.render_text(m, r))
            .unwrap_or_default();
        let data = r
            .logdata_t
            .as_ref()
            .map(|m| self.render_text(m, r))
            .unwrap_or_default();
        self.matched.push(MatchedRule {
            id: r.id,
            phase: r.phase,
            msg,
            data,
            severity: r.severity.clone().unwrap_or_default(),
            tags: r.tags.clone(),
            matched_var_name: String::from_utf8_lossy(&self.matched_var.0).into_owned(),
            matched_value: String::from_utf8_lossy(&self.matched_var.1)
                .chars()
                .take(200)
                .collect(),
        });
    }

    /// The rule and its chain links must all match. As in ModSecurity, each link's
    /// non-disruptive actions (setvar, ctl, capture) run as soon as that link matches, so a
    /// later link can test what an earlier one set.
    fn eval_chain(&mut self, r: &CompiledRule) -> bool {
        let mut link = Some(r);
        while let Some(l) = link {
            let caps = self.eval_rule(l);
            if self.matched_vars.len == 0 {
                return false;
            }
            // Actions run once per matched target, each seeing its own MATCHED_VAR and
            // captures (ModSecurity v2).
            for i in 0..self.matched_vars.len {
                for (n, c) in caps.get(i).into_iter().flatten().enumerate() {
                    // Captures are slots 0..=9 (`TxNames::new`).
                    self.tx.set_slot(n, c);
                }
                let (name, value) = &self.matched_vars.items[i];
                self.matched_var.0.clone_from(name);
                self.matched_var.1.clone_from(value);
                for e in &l.effects {
                    self.effect(e, r);
                }
            }
            link = l.chain.as_deref();
        }
        true
    }

    /// Evaluates one rule (one chain link): its matched targets (name, transformed value)
    /// become MATCHED_VARS; returns each hit's captures when the rule captures.
    fn eval_rule(&mut self, r: &CompiledRule) -> Vec<Vec<Vec<u8>>> {
        // Run-time exclusions (`ctl:ruleRemoveTargetById`): a whole variable removed (CRS's
        // 941010 drops REQUEST_FILENAME from the XSS rules on most requests) skips its items
        // in the group; one removed by key makes the rule read its own targets.
        let by_key = self.removed_for(r).iter().any(|x| x.selector.is_some());
        let grouped = match r.group {
            Some(g) if !by_key => self.fill_group(g as usize, r),
            _ => None,
        };
        let removed = removed_in(&self.removed_bits, &self.exclusions, r);
        // Targets borrow the transaction, so matches are collected in a spare buffer and
        // the state updated after: the same result, as the targets and the operator
        // argument are read before any of it changes.
        let mut hits = std::mem::take(&mut self.spare_hits);
        hits.len = 0;
        let mut all_caps = Vec::new();
        let detector = r.op.detector();
        // `@geoLookup`'s finding, which becomes the GEO collection once targets are read.
        let geo_found: std::cell::RefCell<Option<crate::GeoRecord>> = Default::default();
        let geo =
            r.op.is_geo_lookup()
                .then_some(self.geo.as_deref())
                .flatten();
        {
            let arg: Cow<'_, [u8]> = match &r.op_macros {
                Some(t) => {
                    let mut a = Vec::new();
                    self.render(t, r, &mut a);
                    Cow::Owned(a)
                }
                None => Cow::Borrowed(r.op.argument.as_bytes()),
            };
            // The operator on one transformed value: `Some(captures)` on a hit.
            // `shared`: the value may be remembered across requests ([`DetectCache`]).
            let test = |v: &[u8], shared: bool| {
                if r.op.is_geo_lookup() {
                    let found = std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.trim().parse::<std::net::IpAddr>().ok())
                        .and_then(|ip| geo?.lookup(ip.to_canonical()));
                    let matched = found.is_some();
                    if found.is_some() {
                        *geo_found.borrow_mut() = found;
                    }
                    return (matched != r.op.negated).then(Vec::new);
                }
                let (matched, caps) = match detector {
                    // The detectors give no captures: the answer is all there is.
                    Some(d) => {
                        let run = || r.op.eval(v, &arg, false).0;
                        let matched = if shared {
                            self.rs.detect_cache.answer(d, v, run)
                        } else if v.len() <= DETECT_MEMO_MAX {
                            let mut m = self.detect_memo.lock().unwrap_or_else(|p| p.into_inner());
                            match m[d].get(v) {
                                Some(known) => *known,
                                None => {
                                    let x = run();
                                    m[d].insert(v.into(), x);
                                    x
                                }
                            }
                        } else {
                            run()
                        };
                        (matched, Vec::new())
                    }
                    None => r.op.eval(v, &arg, r.capture),
                };
                (matched != r.op.negated).then_some(caps)
            };
            // Most operators are neither a detector nor `@geoLookup`: called directly at
            // each site, without the closure's call (which the compiler does not inline
            // into four sites).
            let plain = detector.is_none() && !r.op.is_geo_lookup();
            macro_rules! test {
                ($v:expr, $shared:expr) => {
                    if plain {
                        let (m, caps) = r.op.eval($v, &arg, r.capture);
                        (m != r.op.negated).then_some(caps)
                    } else {
                        test($v, $shared)
                    }
                };
            }
            let mut hit = |caps: Vec<Vec<u8>>| {
                if r.capture {
                    all_caps.push(caps);
                }
            };
            match grouped {
                Some((a, b)) => {
                    let g = &self.groups;
                    let bit = r.filter_bit.map_or(0, |b| 1u128 << b);
                    for it in &g.items[a..b] {
                        if !removed.is_empty() {
                            let name = &r.vars[usize::from(it.var)].name;
                            if removed.iter().any(|x| same_collection(&x.name, name)) {
                                continue;
                            }
                        }
                        let v = g.bytes(it.value);
                        let coll = || {
                            let var = &r.vars[usize::from(it.var)];
                            match r.sources[usize::from(it.var)].src.static_name() {
                                Some(n) if !it.count => n,
                                _ => var.name.as_str(),
                            }
                        };
                        if r.multi_match {
                            // The value before the transformations and after each one
                            // that changed it (no literal filter: it knows only the last).
                            let key = it.key.map(|k| g.bytes(k));
                            let Some(o) = it.original else {
                                if let Some(caps) = test!(v, false) {
                                    hits.push(coll(), key, it.count, v);
                                    hit(caps);
                                }
                                continue;
                            };
                            let mut cur = g.bytes(o).to_vec();
                            if let Some(caps) = test!(&cur, false) {
                                hits.push(coll(), key, it.count, &cur);
                                hit(caps);
                            }
                            for tr in &r.transforms {
                                let next = match tr.apply_cow(Cow::Borrowed(&cur[..])) {
                                    Cow::Borrowed(_) => continue,
                                    Cow::Owned(n) if n == cur => continue,
                                    Cow::Owned(n) => n,
                                };
                                if let Some(caps) = test!(&next, false) {
                                    hits.push(coll(), key, it.count, &next);
                                    hit(caps);
                                }
                                cur = next;
                            }
                            continue;
                        }
                        // Without one of its literals the operator cannot match.
                        let res = if it.candidates & bit == 0 && bit != 0 {
                            if self.rs.verify_filters {
                                assert_eq!(
                                    test!(v, false).is_some(),
                                    r.op.negated,
                                    "rule {}: the literal filter skipped a match on {:?}",
                                    r.id,
                                    String::from_utf8_lossy(v)
                                );
                            }
                            r.op.negated.then(Vec::new)
                        } else {
                            test!(v, false)
                        };
                        if let Some(caps) = res {
                            hits.push(coll(), it.key.map(|k| g.bytes(k)), it.count, v);
                            hit(caps);
                        }
                    }
                }
                None if r.multi_match => self.each_target(r, true, |t| {
                    let shared = shares_answers(t.coll, t.key);
                    let mut check = |v: &[u8]| {
                        if let Some(caps) = test!(v, shared) {
                            hits.push(t.coll, t.key, t.count, v);
                            hit(caps);
                        }
                    };
                    check(&t.value);
                    // None of the bytes the chain acts on: no other value to test.
                    if r.triggers & classes(&t.value) == 0 {
                        return;
                    }
                    let mut v = t.value;
                    for tr in &r.transforms {
                        let next = match tr.apply_cow(Cow::Borrowed(&v[..])) {
                            Cow::Borrowed(_) => continue,
                            Cow::Owned(n) if n[..] == v[..] => continue,
                            Cow::Owned(n) => n,
                        };
                        check(&next);
                        v = Cow::Owned(next);
                    }
                }),
                None => self.each_value(r, false, true, |_, coll, key, count, v, _| {
                    if let Some(caps) = test!(v, shares_answers(coll, key)) {
                        hits.push(coll, key, count, v);
                        hit(caps);
                    }
                }),
            }
        }
        if let Some(found) = geo_found.into_inner() {
            self.collections.0[GEO] = found.items();
        }
        // The previous MATCHED_VARS become the spare buffer: its allocation is reused.
        self.spare_hits = std::mem::replace(&mut self.matched_vars, hits);
        all_caps
    }

    /// The range of `groups.items` holding group `g`'s values, computed by rule `r` (one of
    /// the group) if this phase has not met the group yet; `None` when the phase's groups
    /// already hold [`GROUP_BYTES_MAX`] (the rules then read the request themselves).
    fn fill_group(&mut self, g: usize, r: &CompiledRule) -> Option<(usize, usize)> {
        let (run, a, b) = self.groups.spans[g];
        if run == self.groups.run {
            return (b != OVERFLOW).then_some((a as usize, b as usize));
        }
        let mut gc = std::mem::take(&mut self.groups);
        let (start, bytes) = (gc.items.len(), gc.bytes.len());
        let mut full = false;
        let keep_before = self.rs.group_multi[g];
        // The group's values are every member's: `r`'s own run-time exclusions are not
        // applied here (each member applies its own when it reads the group), or a rule
        // that had one would empty the group for the others.
        self.each_value(r, keep_before, false, |var, _, key, count, v, before| {
            full |= gc.bytes.len()
                + v.len()
                + key.map_or(0, <[u8]>::len)
                + before.map_or(0, <[u8]>::len)
                > GROUP_BYTES_MAX;
            if full {
                return;
            }
            let key = key.map(|k| gc.push_bytes(k));
            let value = gc.push_bytes(v);
            // Kept for a multiMatch member, which tests it and what comes between.
            let original = before.map(|b| gc.push_bytes(b));
            gc.items.push(GroupItem {
                var,
                count,
                key,
                value,
                original,
                candidates: u128::MAX,
            });
        });
        if full {
            gc.items.truncate(start);
            gc.bytes.truncate(bytes);
            gc.spans[g] = (gc.run, 0, OVERFLOW);
            self.groups = gc;
            return None;
        }
        if let Some(f) = &self.rs.group_filters[g] {
            for i in start..gc.items.len() {
                gc.items[i].candidates = f.candidates(gc.bytes(gc.items[i].value));
            }
        }
        let end = gc.items.len();
        gc.spans[g] = (gc.run, start as u32, end as u32);
        self.groups = gc;
        Some((start, end))
    }

    /// Calls `f` with each target of `r` (variable index, name, key, counted), its value
    /// after the rule's transformations and, with `keep_before`, its value before them when
    /// they changed it (for a group with a `multiMatch` member; others skip the copy).
    /// `runtime`: apply `r`'s run-time exclusions (see [`Self::each_target`]).
    fn each_value<'a>(
        &'a self,
        r: &'a CompiledRule,
        keep_before: bool,
        runtime: bool,
        mut f: impl FnMut(u16, &'a str, Option<&'a [u8]>, bool, &[u8], Option<&[u8]>),
    ) {
        // Short chains cost less to run than to look up (measured: 4 and more pays).
        // The lock is taken once per rule, never contended (see `transform_cache`).
        let mut cache = (r.transforms.len() >= 4).then(|| {
            self.transform_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        });
        self.each_target(r, runtime, |t| {
            let Target {
                var,
                coll,
                key,
                value,
                count,
                stable,
            } = t;
            let own: Cow<'_, [u8]>;
            let kept: Vec<u8>;
            let (v, original): (&[u8], Option<&[u8]>) = match value {
                // None of the bytes the chain acts on: nothing to compute or look up.
                Cow::Borrowed(b)
                    if r.triggers
                        & if stable {
                            self.class_memo.get(b)
                        } else {
                            classes(b)
                        }
                        == 0 =>
                {
                    return f(var, coll, key, count, b, None);
                }
                Cow::Borrowed(b) => match cache.as_deref_mut() {
                    Some(c) if stable => (transformed(c, b, r).unwrap_or(b), Some(b)),
                    _ => {
                        own = apply_chain(r, Cow::Borrowed(b));
                        (&own, Some(b))
                    }
                },
                // An owned value moves into the chain; copied first only when kept.
                Cow::Owned(o) => {
                    kept = if keep_before { o.clone() } else { Vec::new() };
                    own = apply_chain(r, Cow::Owned(o));
                    (&own, keep_before.then_some(&kept[..]))
                }
            };
            let before = original.filter(|o| keep_before && *o != v);
            f(var, coll, key, count, v, before);
        });
    }

    /// Calls `f` with each value rule `r` inspects, in order, its exclusions (`!VAR:key`,
    /// `ctl:ruleRemoveTargetById`) applied. A visitor rather than a list: no allocation per
    /// rule.
    fn each_target<'a>(
        &'a self,
        r: &'a CompiledRule,
        runtime: bool,
        mut f: impl FnMut(Target<'a>),
    ) {
        // Exclusions added at run time (`ctl:ruleRemoveTargetById`) for this rule, unless
        // the caller applies them itself (`runtime` false: a group being filled).
        let removed = if runtime {
            self.removed_for(r)
        } else {
            Removed::NONE
        };
        let any_removed = !removed.is_empty();
        // Only `sources` is read per variable; a `Variable` itself (a separate heap block,
        // often out of the cache in a busy proxy) only when it has a selector.
        for (i, (var, src)) in r.vars.iter().zip(&r.sources).enumerate() {
            if src.exclude || (!src.count && self.is_empty(src.src)) {
                continue;
            }
            if src.count {
                let mut n = 0;
                self.resolve_each(i as u16, var, *src, &mut |_| n += 1);
                f(Target {
                    var: i as u16,
                    coll: &var.name,
                    key: None,
                    value: count_text(n),
                    count: true,
                    stable: false,
                });
                continue;
            }
            let own = if r.has_exclusions {
                r.exclusions.get(i).map_or(&[][..], Vec::as_slice)
            } else {
                &[]
            };
            if own.is_empty()
                && (!any_removed || !removed.iter().any(|x| same_collection(&x.name, &var.name)))
            {
                self.resolve_each(i as u16, var, *src, &mut f);
                continue;
            }
            // A whole variable removed (no key): none of its items, without a check each.
            let whole = |x: &Variable| x.selector.is_none() && same_collection(&x.name, &var.name);
            if own.iter().any(|j| whole(&r.vars[*j])) || removed.iter().any(whole) {
                continue;
            }
            let excluded = |key: &[u8]| {
                own.iter()
                    .map(|j| &r.vars[*j])
                    .chain(
                        removed
                            .iter()
                            .filter(|x| same_collection(&x.name, &var.name)),
                    )
                    .any(|x| match &x.selector {
                        Some(Selector::Key(k)) => key.eq_ignore_ascii_case(k.as_bytes()),
                        Some(Selector::Regex(re)) => self.selector_matches(re, key),
                        None => true,
                    })
            };
            self.resolve_each(i as u16, var, *src, &mut |t: Target<'a>| {
                if !excluded(t.key.unwrap_or(t.coll.as_bytes())) {
                    f(t);
                }
            });
        }
    }

    /// The sources holding a value now ([`source_bit`]); none changes while a phase runs.
    fn present_sources(&self) -> u64 {
        let mut m = ALWAYS;
        for (i, c) in self.collections.0.iter().enumerate() {
            if !c.is_empty() {
                m |= 1 << i;
            }
        }
        if !self.collections.0[ARGS_GET].is_empty() || !self.collections.0[ARGS_POST].is_empty() {
            m |= 1 << COLLECTIONS.len();
        }
        for (i, v) in self.scalars.0.iter().enumerate() {
            if v.is_some() {
                m |= 1 << (COLLECTIONS.len() + 1 + i);
            }
        }
        m
    }

    /// Whether `src` has no value now: most of a rule's variables, for most requests
    /// (cookies, XML, files), and cheaper to tell than to resolve.
    #[inline]
    fn is_empty(&self, src: Source) -> bool {
        match src {
            Source::TxSlot(i) => self.tx.slots[i as usize].is_none(),
            src => source_bit(src) & self.present == 0,
        }
    }

    /// Calls `f` with each (key, value) of a collection, without copying.
    fn for_each_item<'a>(&'a self, coll: Coll, mut f: impl FnMut(&'a [u8], &'a [u8])) {
        let mut each = |items: &'a [(Vec<u8>, Vec<u8>)]| {
            for (k, v) in items {
                f(k, v);
            }
        };
        match coll {
            Coll::Args => {
                each(&self.collections.0[ARGS_GET]);
                each(&self.collections.0[ARGS_POST]);
            }
            Coll::Tx => {
                for (k, v) in self.tx.iter() {
                    f(k.as_bytes(), v);
                }
            }
            Coll::MatchedVars => each(self.matched_vars.as_slice()),
            Coll::Fixed(i) => each(&self.collections.0[i]),
        }
    }

    /// Calls `f` with each value of `var` (a collection's selected items, or a scalar).
    pub(super) fn resolve_each<'a>(
        &'a self,
        vi: u16,
        var: &'a Variable,
        plan: Plan,
        f: &mut impl FnMut(Target<'a>),
    ) {
        let src = plan.src;
        // Lazy on purpose: reading `var.name` loads the Variable, which this avoids.
        #[allow(clippy::unnecessary_lazy_evaluations)]
        let name = src.static_name().unwrap_or_else(|| var.name.as_str());
        let selector = if plan.keyed {
            var.selector.as_ref()
        } else {
            None
        };
        let scalar = |value: Cow<'a, [u8]>, stable: bool| Target {
            var: vi,
            coll: name,
            key: None,
            value,
            count: false,
            stable,
        };
        let (coll, names) = match src {
            Source::Coll(c, names) => (c, names),
            Source::MatchedVar => return f(scalar(Cow::Borrowed(&self.matched_var.1), false)),
            Source::MatchedVarName => return f(scalar(Cow::Borrowed(&self.matched_var.0), false)),
            Source::ArgsCombinedSize => {
                let mut n = 0;
                self.for_each_item(Coll::Args, |k, v| n += k.len() + v.len());
                return f(scalar(Cow::Owned(n.to_string().into_bytes()), false));
            }
            Source::TxSlot(i) => {
                if let Some(v) = self.tx.value(i as usize) {
                    f(Target {
                        var: vi,
                        coll: name,
                        key: Some(self.tx.names.names[i as usize].as_bytes()),
                        value: Cow::Borrowed(v),
                        count: false,
                        stable: false,
                    });
                }
                return;
            }
            Source::Scalar(i) => {
                if let Some(v) = self.scalars.get(i) {
                    f(scalar(Cow::Borrowed(v), true));
                }
                return;
            }
        };
        // `ARGS_NAMES` values are reported as `ARGS:key`: the collection's own name.
        if let (Coll::Tx, Some(Selector::Key(k))) = (coll, selector) {
            if !k.bytes().any(|c| c.is_ascii_uppercase()) {
                if let Some((k, v)) = self.tx.get_key_value(k) {
                    f(Target::item(vi, name, (k.as_bytes(), v), names, false));
                }
                return;
            }
        }
        let matcher = match selector {
            Some(Selector::Regex(re)) => Some(self.key_matcher(re)),
            _ => None,
        };
        if let (Coll::Tx, Some(Selector::Regex(p)), Some(m)) = (coll, selector, &matcher) {
            if let Some(slots) = self.tx.names.selected.get(p) {
                // The slots this selector can select, then the run-time names: the order of
                // a full scan.
                let t = &self.tx;
                let found = slots
                    .iter()
                    .filter_map(|i| {
                        let v = t.value(*i as usize)?;
                        Some((t.names.names[*i as usize].as_bytes(), v))
                    })
                    .chain(
                        t.dynamic
                            .iter()
                            .filter(|(k, _)| m.is_match(k.as_bytes()))
                            .map(|(k, v)| (k.as_bytes(), v.as_slice())),
                    );
                for (k, v) in found {
                    f(Target::item(vi, name, (k, v), names, false));
                }
                return;
            }
        }
        // GEO is filled while a phase runs (`@geoLookup`): like TX, not for the caches
        // keyed by a value's address.
        let stable = !matches!(coll, Coll::Tx | Coll::MatchedVars | Coll::Fixed(GEO));
        self.for_each_item(coll, |k, v| {
            let selected = match (selector, &matcher) {
                (None, _) => true,
                (Some(Selector::Key(s)), _) => k.eq_ignore_ascii_case(s.as_bytes()),
                (Some(Selector::Regex(_)), Some(m)) => m.is_match(k),
                (Some(Selector::Regex(_)), None) => false,
            };
            if selected {
                f(Target::item(vi, name, (k, v), names, stable));
            }
        });
    }
}
