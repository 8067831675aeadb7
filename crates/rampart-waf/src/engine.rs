//! Rule evaluation: a compiled [`Ruleset`] (immutable, shareable) and a per-request
//! [`Transaction`] that walks phases 1–5, following ModSecurity v2 semantics for chains,
//! `skipAfter`, `setvar`, macros and disruptive actions.

use crate::body::json::{json_text, serde_free_json};
use crate::body::multipart::multipart;
use crate::body::urlencoded::parse_urlencoded;
use crate::operator::{CompiledOperator, NumCmp};
use crate::parser::{Action, Directive, Rule, Selector, Variable};
use crate::transform::{by_name, classes, Transform};
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineMode {
    On,
    Off,
    DetectionOnly,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disruptive {
    Pass,
    Block,
    Deny,
    Drop,
    Allow,
    Redirect(String),
}

#[derive(Debug)]
struct CompiledRule {
    id: u64,
    phase: u8,
    vars: Vec<Variable>,
    op: CompiledOperator,
    transforms: Vec<Transform>,
    msg: Option<String>,
    logdata: Option<String>,
    severity: Option<String>,
    tags: Vec<String>,
    log: bool,
    capture: bool,
    multi_match: bool,
    disruptive: Option<Disruptive>,
    status: Option<u16>,
    /// `msg` and `logdata` with their macros parsed once.
    msg_t: Option<Template>,
    logdata_t: Option<Template>,
    /// setvar and ctl actions, in order, parsed once.
    effects: Vec<Effect>,
    skip_after: Option<String>,
    /// Where `skip_after` lands in the rule's phase, resolved once the ruleset is built.
    skip_to: Option<usize>,
    /// What evaluating `vars[i]` needs, filled in once the ruleset is built.
    sources: Vec<Plan>,
    /// Whether any of `exclusions` is non-empty: most rules have none, and the loop then
    /// need not read them.
    has_exclusions: bool,
    /// The transformation chain's number (equal chains, equal numbers), for caching.
    chain_id: u32,
    /// The byte classes the chain acts on ([`Transform::triggers`]).
    triggers: u16,
    /// Rules that inspect the same request data through the same transformations share a
    /// group: the first of them to run in a phase keeps the transformed values
    /// ([`GroupCache`]) and the others read them.
    group: Option<u32>,
    /// This link's bit in its group's [`GroupFilter`], when its operator has literals.
    filter_bit: Option<u8>,
    /// For `vars[i]`, the exclusions (`!VAR:key`, as indexes into `vars`) that apply to
    /// its collection; filled in once the ruleset is built.
    exclusions: Vec<Vec<usize>>,
    /// The operator argument when it holds `%{...}` macros to expand per evaluation.
    op_macros: Option<Template>,
    skip: usize,
    chain: Option<Box<CompiledRule>>,
}

/// The compiled rules: build once, share by `Arc` across requests.
#[derive(Debug)]
pub struct Ruleset {
    phases: [Vec<CompiledRule>; 5],
    /// (phase index, marker) → position after the marker.
    markers: HashMap<(usize, String), usize>,
    pub mode: EngineMode,
    pub request_body_access: bool,
    pub request_body_limit: usize,
    /// `SecRequestBodyLimitAction Reject` (ModSecurity's default): a body over the limit
    /// is refused with 413 instead of inspected in part.
    pub request_body_limit_reject: bool,
    /// `SecArgumentsLimit`: arguments kept per request; a body holding more sets
    /// `REQBODY_ERROR` (ModSecurity's default is 1000).
    pub argument_limit: usize,
    /// `SecRequestBodyJsonDepthLimit`: deeper JSON sets `REQBODY_ERROR`.
    pub json_depth_limit: usize,
    pub response_body_access: bool,
    pub response_body_limit: usize,
    /// `SecResponseBodyMimeType`: the response types whose bodies phase 4 sees.
    pub response_body_mime_types: Vec<String>,
    /// `SecArgumentSeparator` for query strings and URL-encoded bodies.
    argument_separator: u8,
    /// Regex selectors (`ARGS:/^id_/`), compiled once at load, case-insensitive.
    selectors: HashMap<String, regex::Regex>,
    /// The TX names the rules use, numbered.
    tx_names: Arc<TxNames>,
    /// Per target group (`CompiledRule::group`): the literal prefilter of its members'
    /// operators, when two or more have one.
    group_filters: Vec<Option<GroupFilter>>,
    /// Tests only: run the operator where a literal filter said it cannot match, and
    /// panic if it does.
    verify_filters: bool,
    detect_cache: DetectCache,
    /// Per phase, parallel to `phases`: what the rule loop reads first, in one compact
    /// array ([`Hot`]).
    hot: [Vec<Hot>; 5],
}

/// Numbers the target groups: rule links whose variables are all request or response data
/// (which no rule changes while a phase runs) and that share both their variable list and
/// their transformation chain with another link of the same phase. Returns each group's
/// literal prefilter.
fn assign_groups(phases: &mut [Vec<CompiledRule>; 5]) -> Vec<Option<GroupFilter>> {
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
        if let (Some(lits), true) = (l.op.literals(), members[g] < 128) {
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
/// the members' required literals ([`CompiledOperator::literals`]).
#[derive(Debug)]
struct GroupFilter {
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
    fn candidates(&self, v: &[u8]) -> u128 {
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

/// One value of a target group, as ranges of [`GroupCache::bytes`].
struct GroupItem {
    /// The variable's index in the rule (all rules of a group have the same variables).
    var: u16,
    count: bool,
    key: Option<(u32, u32)>,
    value: (u32, u32),
    /// The group's members that may match it ([`GroupFilter::candidates`]).
    candidates: u128,
}

/// The most a phase's groups keep (copies of request data, transformed): beyond it, rules
/// read the request themselves, so that a large body is not copied once per group.
const GROUP_BYTES_MAX: usize = 1 << 20;

/// A span end marking a group that did not fit in [`GROUP_BYTES_MAX`].
const OVERFLOW: u32 = u32::MAX;

/// The transformed values of the target groups met so far in this phase.
#[derive(Default)]
struct GroupCache {
    /// Per group: the phase run that filled it, and its range of `items`.
    spans: Vec<(u32, u32, u32)>,
    /// Counts phase runs; a span from an earlier run is stale.
    run: u32,
    items: Vec<GroupItem>,
    bytes: Vec<u8>,
}

impl GroupCache {
    fn push_bytes(&mut self, b: &[u8]) -> (u32, u32) {
        let start = self.bytes.len() as u32;
        self.bytes.extend_from_slice(b);
        (start, self.bytes.len() as u32)
    }

    fn bytes(&self, (a, b): (u32, u32)) -> &[u8] {
        &self.bytes[a as usize..b as usize]
    }

    fn text(&self, r: (u32, u32)) -> &str {
        // Keys come from `&str`s and are copied whole.
        std::str::from_utf8(self.bytes(r)).unwrap_or("")
    }
}

/// What the rule loop needs to pass over most rules without reading them: a rule's own
/// data is spread over several heap blocks, which a busy proxy has evicted from the cache
/// between requests, while this array of a few kilobytes stays close.
#[derive(Debug, Clone, Copy)]
struct Hot {
    /// The sources the rule's first link reads ([`source_bit`]): none of them holding a
    /// value, it cannot match.
    reads: u64,
    /// For a first link `TX:name "@lt 2"` (CRS's paranoia gates): the slot, the test and
    /// the negation, enough to tell a miss.
    tx_test: Option<(u32, NumCmp, i64, bool)>,
}

/// A source that may hold values whatever the request (TX, MATCHED_VAR, counts).
const ALWAYS: u64 = 1 << 63;

/// The bit of `src` in [`Hot::reads`] and in a transaction's present sources.
fn source_bit(src: Source) -> u64 {
    match src {
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
    fn of(r: &CompiledRule) -> Hot {
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

/// The deepest JSON the recursive parser accepts, whatever the configuration says.
pub(crate) const MAX_JSON_DEPTH: usize = 1024;

fn selector_regex(p: &str) -> Result<regex::Regex, String> {
    regex::RegexBuilder::new(p)
        .case_insensitive(true)
        .build()
        .map_err(|e| format!("selector /{p}/: {e}"))
}

/// One reported match (ModSecurity v2 logging: a chain is reported once, by its first rule).
#[derive(Debug, Clone, PartialEq)]
pub struct MatchedRule {
    pub id: u64,
    pub phase: u8,
    pub msg: String,
    pub data: String,
    pub severity: String,
    pub tags: Vec<String>,
    pub matched_var_name: String,
    pub matched_value: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interruption {
    pub status: u16,
    pub action: Disruptive,
    pub rule_id: u64,
}

fn severity_name(s: &str) -> String {
    match s {
        "0" => "EMERGENCY",
        "1" => "ALERT",
        "2" => "CRITICAL",
        "3" => "ERROR",
        "4" => "WARNING",
        "5" => "NOTICE",
        "6" => "INFO",
        "7" => "DEBUG",
        other => return other.to_ascii_uppercase(),
    }
    .to_string()
}

/// A text with `%{...}` macros (`msg`, `logdata`, `setvar`, operator arguments), split once
/// at load so that evaluation only looks values up.
#[derive(Debug, Default)]
struct Template(Vec<Piece>);

#[derive(Debug)]
enum Piece {
    Lit(String),
    /// `%{tx.name}`, the name lower-cased.
    Tx(TxName),
    RuleId,
    RuleMsg,
    RuleSeverity,
    RuleLogdata,
    MatchedVar,
    MatchedVarName,
    /// Any other variable: its first value.
    Var(Variable, Source),
}

impl Template {
    fn compile(text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("%{") {
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                break; // Unterminated: the rest is literal text.
            };
            if start > 0 {
                pieces.push(Piece::Lit(rest[..start].to_string()));
            }
            pieces.push(Piece::of_macro(&after[..end]));
            rest = &after[end + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Lit(rest.to_string()));
        }
        Template(pieces)
    }

    /// The text when it holds no macro.
    fn literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

impl Piece {
    fn of_macro(key: &str) -> Piece {
        let (coll, sel) = match key.split_once('.') {
            Some((c, s)) => (c.to_ascii_uppercase(), Some(s)),
            None => (key.to_ascii_uppercase(), None),
        };
        match (coll.as_str(), sel) {
            ("TX", Some(s)) => Piece::Tx(TxName::new(s)),
            ("RULE", Some("id")) => Piece::RuleId,
            ("RULE", Some("msg")) => Piece::RuleMsg,
            ("RULE", Some("severity")) => Piece::RuleSeverity,
            ("RULE", Some("logdata")) => Piece::RuleLogdata,
            ("MATCHED_VAR", None) => Piece::MatchedVar,
            ("MATCHED_VAR_NAME", None) => Piece::MatchedVarName,
            (c, s) => {
                let var = Variable {
                    name: c.to_string(),
                    selector: s.map(|s| Selector::Key(s.to_string())),
                    exclude: false,
                    count: false,
                };
                let src = Source::of(&var.name);
                Piece::Var(var, src)
            }
        }
    }
}

/// A TX variable name written in the rules, with its slot in [`TxStore`] once the ruleset
/// is built.
#[derive(Debug)]
struct TxName {
    name: String,
    slot: u32,
}

const NO_SLOT: u32 = u32::MAX;

impl TxName {
    fn new(name: &str) -> TxName {
        TxName {
            name: name.to_ascii_lowercase(),
            slot: NO_SLOT,
        }
    }
}

/// Every TX name the rules spell out, numbered at load. `0`..`9` (captures) come first, so
/// capture `n` is slot `n`.
#[derive(Debug)]
struct TxNames {
    names: Vec<String>,
    index: HashMap<String, u32, ahash::RandomState>,
    /// For each `TX:/regex/` selector the rules use: the slots whose names it selects
    /// (found at load), so that a read scans those and the names made at run time rather
    /// than every slot.
    selected: HashMap<String, Vec<u32>>,
}

impl TxNames {
    fn new() -> TxNames {
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

    fn intern(&mut self, name: &str) -> u32 {
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
    fn rule(&mut self, l: &mut CompiledRule) {
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
                Effect::Ctl(..) => {}
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

/// TX variables. The names the rules spell out have slots (numbered at load), so CRS's
/// hundreds of reads and writes per request index a vector instead of hashing and
/// allocating names; names made at run time (`tx.header_name_920450_%{tx.0}`) go to a map.
struct TxStore {
    names: Arc<TxNames>,
    /// Per slot, where its value is in `bytes`: CRS sets a hundred variables per request,
    /// which one buffer holds without an allocation each.
    slots: Vec<Option<Span>>,
    bytes: Vec<u8>,
    /// Keys can come from requests (header names): a keyed hasher.
    dynamic: HashMap<String, Vec<u8>, ahash::RandomState>,
}

impl TxStore {
    fn new(names: Arc<TxNames>) -> TxStore {
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

    fn get(&self, key: &str) -> Option<&[u8]> {
        match self.slot(key) {
            Some(i) => self.value(i),
            None => self.dynamic.get(key).map(Vec::as_slice),
        }
    }

    fn get_name(&self, n: &TxName) -> Option<&[u8]> {
        match n.slot {
            NO_SLOT => self.get(&n.name),
            i => self.value(i as usize),
        }
    }

    fn get_key_value(&self, key: &str) -> Option<(&str, &[u8])> {
        match self.slot(key) {
            Some(i) => self.value(i).map(|v| (self.names.names[i].as_str(), v)),
            None => self
                .dynamic
                .get_key_value(key)
                .map(|(k, v)| (k.as_str(), v.as_slice())),
        }
    }

    /// Slot `i`'s value.
    fn value(&self, i: usize) -> Option<&[u8]> {
        self.slots[i].map(|s| &self.bytes[s.at..s.at + s.len])
    }

    fn set_slot(&mut self, i: usize, value: &[u8]) {
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

    fn set(&mut self, key: TxKey<'_>, value: &[u8]) {
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

    fn get_key(&self, key: &TxKey<'_>) -> Option<&[u8]> {
        match key {
            TxKey::Slot(i) => self.value(*i as usize),
            TxKey::Name(n) => self.get(n),
        }
    }

    fn remove(&mut self, key: &TxKey<'_>) {
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

    fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        let names = &self.names.names;
        (0..self.slots.len())
            .filter_map(move |i| self.value(i).map(|v| (names[i].as_str(), v)))
            .chain(self.dynamic.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
    }
}

/// A TX slot's value in [`TxStore::bytes`]: where, how long, and the room it has.
#[derive(Debug, Clone, Copy)]
struct Span {
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
enum TxKey<'n> {
    Slot(u32),
    Name(Cow<'n, str>),
}

/// A non-disruptive action that changes the transaction, parsed once at load.
#[derive(Debug)]
enum Effect {
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
}

#[derive(Debug, Clone, Copy)]
enum SetOp {
    Assign,
    Add,
    Sub,
}

/// The target of a `setvar`.
#[derive(Debug)]
enum VarName {
    /// A TX variable named by a literal: lower-cased, without `tx.`.
    Tx(TxName),
    /// A name built from macros: expanded, then checked for `tx.`, per evaluation.
    Dynamic(Template),
}

/// `setvar`'s argument as a number (ModSecurity reads non-numbers as 0).
fn number(s: &[u8]) -> i64 {
    std::str::from_utf8(s)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

impl Effect {
    /// `None` for variables outside TX: ip./global./session. collections are not
    /// persisted by this engine.
    fn setvar(v: &str) -> Option<Effect> {
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

fn compile_rule(
    vars: Vec<Variable>,
    op: &crate::parser::Operator,
    actions: &[Action],
    defaults: &[Action],
    dir: &Path,
    inherited_phase: Option<u8>,
    rest: &mut std::iter::Peekable<std::slice::Iter<'_, Directive>>,
) -> Result<CompiledRule, String> {
    let mut r = CompiledRule {
        id: 0,
        phase: inherited_phase.unwrap_or(2),
        vars,
        op: CompiledOperator::compile(op, dir)?,
        transforms: Vec::new(),
        msg: None,
        logdata: None,
        severity: None,
        tags: Vec::new(),
        log: true,
        capture: false,
        multi_match: false,
        disruptive: None,
        status: None,
        msg_t: None,
        logdata_t: None,
        effects: Vec::new(),
        skip_after: None,
        skip_to: None,
        sources: Vec::new(),
        has_exclusions: false,
        chain_id: 0,
        triggers: 0,
        group: None,
        filter_bit: None,
        exclusions: Vec::new(),
        op_macros: op
            .argument
            .contains("%{")
            .then(|| Template::compile(&op.argument)),
        skip: 0,
        chain: None,
    };
    let mut chain = false;
    // Defaults first (transformations, log), then the rule's own actions override them.
    let all: Vec<&Action> = if inherited_phase.is_none() {
        defaults.iter().chain(actions.iter()).collect()
    } else {
        actions.iter().collect()
    };
    for a in all {
        let v = a.value.clone().unwrap_or_default();
        match a.name.as_str() {
            "id" => r.id = v.parse().map_err(|_| format!("bad id {v:?}"))?,
            "phase" => {
                r.phase = match v.as_str() {
                    "request" => 2,
                    "response" => 4,
                    "logging" => 5,
                    n => n.parse().map_err(|_| format!("bad phase {v:?}"))?,
                };
                if !(1..=5).contains(&r.phase) {
                    return Err(format!("phase {v} out of range"));
                }
            }
            "t" => {
                if v.eq_ignore_ascii_case("none") {
                    r.transforms.clear();
                } else {
                    r.transforms
                        .push(by_name(&v).ok_or_else(|| format!("unknown transformation {v}"))?);
                }
            }
            "msg" => {
                r.msg_t = Some(Template::compile(&v));
                r.msg = Some(v);
            }
            "logdata" => {
                r.logdata_t = Some(Template::compile(&v));
                r.logdata = Some(v);
            }
            "severity" => r.severity = Some(severity_name(&v)),
            "tag" => r.tags.push(v),
            "log" => r.log = true,
            "nolog" => r.log = false,
            "capture" => r.capture = true,
            "multiMatch" => r.multi_match = true,
            "chain" => chain = true,
            "pass" => r.disruptive = Some(Disruptive::Pass),
            "block" => r.disruptive = Some(Disruptive::Block),
            "deny" => r.disruptive = Some(Disruptive::Deny),
            "drop" => r.disruptive = Some(Disruptive::Drop),
            "allow" => r.disruptive = Some(Disruptive::Allow),
            "redirect" => r.disruptive = Some(Disruptive::Redirect(v)),
            "status" => r.status = v.parse().ok(),
            "skipAfter" => r.skip_after = Some(v),
            "skip" => r.skip = v.parse().unwrap_or(0),
            "setvar" => r.effects.extend(Effect::setvar(&v)),
            "ctl" => {
                let (k, val) = v.split_once('=').unwrap_or((&v, ""));
                r.effects.push(Effect::Ctl(k.to_string(), val.to_string()));
            }
            // Persistent collections (ip, global, session) are not kept by this engine.
            "expirevar" | "initcol" | "setenv" => {}
            // Accepted metadata or no-ops for this engine.
            "ver"
            | "rev"
            | "maturity"
            | "accuracy"
            | "auditlog"
            | "noauditlog"
            | "sanitiseMatched"
            | "sanitiseArg"
            | "exec"
            | "append"
            | "prepend"
            | "deprecatevar"
            | "sanitiseMatchedBytes" => {}
            other => return Err(format!("unknown action {other}")),
        }
    }
    if chain {
        match rest.next() {
            Some(Directive::Rule(next)) => {
                r.chain = Some(Box::new(compile_rule(
                    next.variables.clone(),
                    &next.operator,
                    &next.actions,
                    defaults,
                    dir,
                    Some(r.phase),
                    rest,
                )?));
            }
            _ => return Err(format!("rule {} says chain but no SecRule follows", r.id)),
        }
    }
    Ok(r)
}

impl Ruleset {
    /// Compile parsed directives; `data_dir` holds the `@pmFromFile` data files.
    pub fn compile(directives: &[Directive], data_dir: &Path) -> Result<Ruleset, String> {
        let mut rs = Ruleset {
            phases: Default::default(),
            markers: HashMap::new(),
            mode: EngineMode::On,
            request_body_access: true,
            request_body_limit: 13_107_200,
            request_body_limit_reject: true,
            argument_limit: 1000,
            json_depth_limit: 512,
            response_body_access: false,
            response_body_limit: 524_288,
            response_body_mime_types: vec!["text/plain".into(), "text/html".into()],
            argument_separator: b'&',
            selectors: HashMap::new(),
            tx_names: Arc::new(TxNames::new()),
            group_filters: Vec::new(),
            verify_filters: false,
            detect_cache: DetectCache::new(),
            hot: Default::default(),
        };
        // SecRuleUpdateActionById comes after the rule it changes: gather the updates first
        // so each rule is compiled once, with its final actions.
        let mut action_updates: HashMap<u64, Vec<Action>> = HashMap::new();
        for d in directives {
            if let Directive::Setting { name, args } = d {
                if name == "SecRuleUpdateActionById" {
                    let id = parse_range(args.first().map(String::as_str).unwrap_or(""))?.0;
                    let actions =
                        crate::parser::parse_actions(args.get(1).map(String::as_str).unwrap_or(""))
                            .map_err(|e| format!("SecRuleUpdateActionById {id}: {e}"))?;
                    action_updates.entry(id).or_default().extend(actions);
                }
            }
        }
        let mut defaults: HashMap<u8, Vec<Action>> = HashMap::new();
        let mut removed: Vec<(u64, u64)> = Vec::new();
        let mut removed_tags: Vec<String> = Vec::new();
        let mut removed_msgs: Vec<String> = Vec::new();
        let mut target_updates: Vec<(u64, Vec<Variable>)> = Vec::new();
        let mut tag_target_updates: Vec<(String, Vec<Variable>)> = Vec::new();
        let mut it = directives.iter().peekable();
        while let Some(d) = it.next() {
            match d {
                Directive::Rule(Rule {
                    variables,
                    operator,
                    actions,
                    file,
                    line,
                }) => {
                    let phase = actions
                        .iter()
                        .find(|a| a.name == "phase")
                        .and_then(|a| a.value.as_deref())
                        .and_then(|p| match p {
                            "request" => Some(2),
                            "response" => Some(4),
                            "logging" => Some(5),
                            n => n.parse().ok(),
                        })
                        .unwrap_or(2);
                    let defs = defaults.get(&phase).cloned().unwrap_or_default();
                    let id = actions
                        .iter()
                        .find(|a| a.name == "id")
                        .and_then(|a| a.value.as_deref())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let updated = id
                        .and_then(|id| action_updates.get(&id))
                        .map(|u| merge_actions(actions, u));
                    let r = compile_rule(
                        variables.clone(),
                        operator,
                        updated.as_deref().unwrap_or(actions),
                        &defs,
                        data_dir,
                        None,
                        &mut it,
                    )
                    .map_err(|e| format!("{file}:{line}: {e}"))?;
                    rs.phases[(r.phase - 1) as usize].push(r);
                }
                Directive::Action {
                    actions,
                    file,
                    line,
                } => {
                    let op = crate::parser::Operator {
                        name: "unconditionalMatch".into(),
                        argument: String::new(),
                        negated: false,
                    };
                    let phase = actions
                        .iter()
                        .find(|a| a.name == "phase")
                        .and_then(|a| a.value.as_deref())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(2);
                    let defs = defaults.get(&phase).cloned().unwrap_or_default();
                    let vars = vec![Variable {
                        name: "REQUEST_URI".into(),
                        selector: None,
                        exclude: false,
                        count: false,
                    }];
                    let r = compile_rule(vars, &op, actions, &defs, data_dir, None, &mut it)
                        .map_err(|e| format!("{file}:{line}: {e}"))?;
                    rs.phases[(r.phase - 1) as usize].push(r);
                }
                Directive::Marker(m) => {
                    for p in 0..5 {
                        rs.markers.insert((p, m.clone()), rs.phases[p].len());
                    }
                }
                Directive::DefaultAction(actions) => {
                    let phase = actions
                        .iter()
                        .find(|a| a.name == "phase")
                        .and_then(|a| a.value.as_deref())
                        .and_then(|p| p.parse().ok())
                        .unwrap_or(2);
                    defaults.insert(
                        phase,
                        actions
                            .iter()
                            .filter(|a| a.name != "phase")
                            .cloned()
                            .collect(),
                    );
                }
                Directive::Setting { name, args } => {
                    let a0 = args.first().map(String::as_str).unwrap_or("");
                    match name.as_str() {
                        "SecRuleEngine" => {
                            rs.mode = match a0.to_ascii_lowercase().as_str() {
                                "on" => EngineMode::On,
                                "off" => EngineMode::Off,
                                "detectiononly" => EngineMode::DetectionOnly,
                                other => {
                                    return Err(format!("SecRuleEngine: unknown mode {other}"))
                                }
                            }
                        }
                        "SecRequestBodyAccess" => {
                            rs.request_body_access = a0.eq_ignore_ascii_case("on")
                        }
                        "SecRequestBodyLimit" => {
                            rs.request_body_limit = a0.parse().unwrap_or(rs.request_body_limit)
                        }
                        "SecArgumentsLimit" => {
                            rs.argument_limit = a0
                                .parse()
                                .map_err(|_| format!("SecArgumentsLimit: not a number: {a0}"))?
                        }
                        // The JSON parser recurses: the cap keeps a configured limit from
                        // turning deep input into a stack overflow.
                        "SecRequestBodyJsonDepthLimit" => {
                            rs.json_depth_limit = a0
                                .parse::<usize>()
                                .map_err(|_| {
                                    format!("SecRequestBodyJsonDepthLimit: not a number: {a0}")
                                })?
                                .min(MAX_JSON_DEPTH)
                        }
                        "SecRequestBodyLimitAction" => {
                            rs.request_body_limit_reject = match a0.to_ascii_lowercase().as_str() {
                                "reject" => true,
                                "processpartial" => false,
                                other => {
                                    return Err(format!(
                                "SecRequestBodyLimitAction: Reject or ProcessPartial, not {other}"
                            ))
                                }
                            }
                        }
                        "SecResponseBodyAccess" => {
                            rs.response_body_access = a0.eq_ignore_ascii_case("on")
                        }
                        "SecResponseBodyLimit" => {
                            rs.response_body_limit = a0
                                .parse()
                                .map_err(|_| format!("SecResponseBodyLimit: not a number: {a0}"))?
                        }
                        "SecResponseBodyMimeType" => {
                            rs.response_body_mime_types = args
                                .iter()
                                .flat_map(|a| a.split_whitespace())
                                .map(|m| m.to_ascii_lowercase())
                                .collect()
                        }
                        "SecRuleRemoveByTag" => removed_tags.push(a0.to_string()),
                        "SecRuleRemoveByMsg" => removed_msgs.push(a0.to_string()),
                        "SecRuleUpdateTargetByTag" => {
                            let vars = crate::parser::parse_variables(
                                args.get(1).map(String::as_str).unwrap_or(""),
                            )?;
                            tag_target_updates.push((a0.to_string(), vars));
                        }
                        "SecResponseBodyMimeTypesClear" => rs.response_body_mime_types.clear(),
                        "SecArgumentSeparator" => match a0.as_bytes() {
                            [c] => rs.argument_separator = *c,
                            _ => {
                                return Err(format!(
                                    "SecArgumentSeparator: one character expected, got {a0:?}"
                                ))
                            }
                        },
                        "SecRuleRemoveById" => {
                            for a in args.iter().flat_map(|a| a.split_whitespace()) {
                                removed.push(parse_range(a)?);
                            }
                        }
                        "SecRuleUpdateTargetById" => {
                            let id = parse_range(a0)?.0;
                            let vars = crate::parser::parse_variables(
                                args.get(1).map(String::as_str).unwrap_or(""),
                            )?;
                            target_updates.push((id, vars));
                        }
                        _ => {}
                    }
                }
            }
        }
        let mut patterns = Vec::new();
        for phase in rs.phases.iter() {
            for r in phase {
                let mut link = Some(r);
                while let Some(l) = link {
                    for v in &l.vars {
                        if let Some(Selector::Regex(p)) = &v.selector {
                            patterns.push(p.clone());
                        }
                    }
                    link = l.chain.as_deref();
                }
            }
        }
        for vars in target_updates
            .iter()
            .map(|(_, v)| v)
            .chain(tag_target_updates.iter().map(|(_, v)| v))
        {
            for v in vars {
                if let Some(Selector::Regex(p)) = &v.selector {
                    patterns.push(p.clone());
                }
            }
        }
        for p in patterns {
            if let std::collections::hash_map::Entry::Vacant(e) = rs.selectors.entry(p) {
                let re = selector_regex(e.key())?;
                e.insert(re);
            }
        }
        let mut chains: HashMap<Vec<Transform>, u32> = HashMap::new();
        for (p, phase) in rs.phases.iter_mut().enumerate() {
            let keep: Vec<bool> = phase
                .iter()
                .map(|r| {
                    !removed.iter().any(|(a, b)| (*a..=*b).contains(&r.id))
                        && !r.tags.iter().any(|t| removed_tags.contains(t))
                        && !r.msg.as_ref().is_some_and(|m| removed_msgs.contains(m))
                })
                .collect();
            // A marker's position counts the rules before it: removed ones no longer do.
            let mut kept_before = Vec::with_capacity(keep.len() + 1);
            kept_before.push(0);
            for k in &keep {
                kept_before.push(kept_before.last().copied().unwrap_or(0) + usize::from(*k));
            }
            for ((mp, _), pos) in rs.markers.iter_mut() {
                if *mp == p {
                    *pos = kept_before[*pos];
                }
            }
            let mut keep = keep.into_iter();
            phase.retain(|_| keep.next().unwrap_or(false));
            for r in phase.iter_mut() {
                for (id, vars) in &target_updates {
                    if *id == r.id {
                        r.vars.extend(vars.iter().cloned());
                    }
                }
                for (tag, vars) in &tag_target_updates {
                    if r.tags.contains(tag) {
                        r.vars.extend(vars.iter().cloned());
                    }
                }
                r.skip_to = r
                    .skip_after
                    .as_ref()
                    .and_then(|m| rs.markers.get(&(p, m.clone())).copied());
                let mut link = Some(r);
                while let Some(l) = link {
                    l.sources = l.vars.iter().map(Plan::of).collect();
                    let next = chains.len() as u32;
                    l.chain_id = *chains.entry(l.transforms.clone()).or_insert(next);
                    l.triggers = l.transforms.iter().fold(0, |m, t| m | t.triggers());
                    l.exclusions = l
                        .vars
                        .iter()
                        .map(|v| {
                            (0..l.vars.len())
                                .filter(|j| {
                                    l.vars[*j].exclude && same_collection(&l.vars[*j].name, &v.name)
                                })
                                .collect()
                        })
                        .collect();
                    l.has_exclusions = l.exclusions.iter().any(|e| !e.is_empty());
                    for v in l.vars.iter_mut() {
                        // TX keys are stored lower-case: this makes `TX:KEY` a map lookup.
                        if let (true, Some(Selector::Key(k))) = (v.name == "TX", &mut v.selector) {
                            k.make_ascii_lowercase();
                        }
                    }
                    link = l.chain.as_deref_mut();
                }
            }
        }
        rs.group_filters = assign_groups(&mut rs.phases);
        let mut names = TxNames::new();
        for phase in rs.phases.iter_mut() {
            for r in phase.iter_mut() {
                let mut link = Some(r);
                while let Some(l) = link {
                    names.rule(l);
                    link = l.chain.as_deref_mut();
                }
            }
        }
        for phase in &rs.phases {
            for r in phase {
                let mut link = Some(r);
                while let Some(l) = link {
                    for v in l.vars.iter().filter(|v| v.name == "TX") {
                        if let Some(Selector::Regex(p)) = &v.selector {
                            let m = match literal_prefix(p) {
                                Some(prefix) => KeyMatcher::Prefix(prefix),
                                None => match rs.selectors.get(p) {
                                    Some(re) => KeyMatcher::Re(re),
                                    None => continue,
                                },
                            };
                            let slots = (0..names.names.len() as u32)
                                .filter(|i| m.is_match(&names.names[*i as usize]))
                                .collect();
                            names.selected.insert(p.clone(), slots);
                        }
                    }
                    link = l.chain.as_deref();
                }
            }
        }
        rs.tx_names = Arc::new(names);
        for (hot, phase) in rs.hot.iter_mut().zip(&rs.phases) {
            *hot = phase.iter().map(Hot::of).collect();
        }
        Ok(rs)
    }

    /// For tests: makes every transaction check that the literal filters never skip a rule
    /// that would have matched (the operator runs anyway, and a match panics).
    #[doc(hidden)]
    pub fn verify_filters(&mut self) {
        self.verify_filters = true;
    }

    pub fn rule_count(&self) -> usize {
        self.phases.iter().map(Vec::len).sum()
    }
}

/// `SecRuleUpdateActionById`: a new disruptive action replaces the old one, `t:`, `tag`,
/// `setvar`, `ctl` and the like are added, any other action replaces its namesake
/// (log/nolog and auditlog/noauditlog replace each other).
fn merge_actions(base: &[Action], update: &[Action]) -> Vec<Action> {
    const DISRUPTIVE: &[&str] = &[
        "pass", "block", "deny", "drop", "allow", "redirect", "proxy",
    ];
    const ADDITIVE: &[&str] = &[
        "t",
        "tag",
        "setvar",
        "ctl",
        "expirevar",
        "initcol",
        "setenv",
    ];
    fn family(n: &str) -> &str {
        match n {
            "nolog" => "log",
            "noauditlog" => "auditlog",
            other => other,
        }
    }
    let mut out: Vec<Action> = base.to_vec();
    for u in update {
        let name = u.name.as_str();
        if name == "id" || name == "phase" {
            continue; // a rule keeps its identity and its phase
        }
        if DISRUPTIVE.contains(&name) {
            out.retain(|a| !DISRUPTIVE.contains(&a.name.as_str()));
        } else if !ADDITIVE.contains(&name) {
            out.retain(|a| family(&a.name) != family(name));
        }
        out.push(u.clone());
    }
    out
}

fn parse_range(s: &str) -> Result<(u64, u64), String> {
    let s = s.trim().trim_matches('"');
    match s.split_once('-') {
        Some((a, b)) => Ok((
            a.trim()
                .parse()
                .map_err(|_| format!("bad id range {s:?}"))?,
            b.trim()
                .parse()
                .map_err(|_| format!("bad id range {s:?}"))?,
        )),
        None => {
            let n = s.parse().map_err(|_| format!("bad id {s:?}"))?;
            Ok((n, n))
        }
    }
}

/// The ruleset a transaction reads: borrowed (tests, benches) or shared by `Arc` (the
/// gateway keeps a transaction across proxy phases, so it cannot borrow).
#[derive(Clone)]
enum RulesetRef<'r> {
    Borrowed(&'r Ruleset),
    Shared(std::sync::Arc<Ruleset>),
}

impl std::ops::Deref for RulesetRef<'_> {
    type Target = Ruleset;
    fn deref(&self) -> &Ruleset {
        match self {
            RulesetRef::Borrowed(r) => r,
            RulesetRef::Shared(r) => r,
        }
    }
}

/// A compiled key selector. CRS's TX selectors are mostly `^literal_prefix` (e.g.
/// `/^header_name_920450_/`), tested against every TX variable: a prefix compare instead
/// of a regex search there is the difference that matters.
enum KeyMatcher<'a> {
    Prefix(&'a str),
    Re(&'a regex::Regex),
    Owned(Option<regex::Regex>),
}

impl KeyMatcher<'_> {
    fn is_match(&self, key: &str) -> bool {
        match self {
            // Selectors are case-insensitive.
            KeyMatcher::Prefix(p) => {
                key.len() >= p.len() && key.as_bytes()[..p.len()].eq_ignore_ascii_case(p.as_bytes())
            }
            KeyMatcher::Re(re) => re.is_match(key),
            KeyMatcher::Owned(re) => re.as_ref().is_some_and(|re| re.is_match(key)),
        }
    }
}

/// `^` followed by plain name characters only: the regex is a prefix test.
fn literal_prefix(pattern: &str) -> Option<&str> {
    let rest = pattern.strip_prefix('^')?;
    (!rest.is_empty()
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
    .then_some(rest)
}

/// A rule's matched targets (name, transformed value): MATCHED_VARS. The entries past
/// `len` are kept for their buffers, which the next rule's hits are written into.
#[derive(Default)]
struct Hits {
    items: Vec<(String, Vec<u8>)>,
    len: usize,
}

impl Hits {
    fn as_slice(&self) -> &[(String, Vec<u8>)] {
        &self.items[..self.len]
    }

    /// Adds a hit named `coll:key` (or `&coll` when counted, `coll` for a scalar).
    fn push(&mut self, coll: &str, key: Option<&str>, count: bool, value: &[u8]) {
        if self.len == self.items.len() {
            // Room for a usual name and value: no growing step by step.
            self.items
                .push((String::with_capacity(48), Vec::with_capacity(64)));
        }
        let (name, v) = &mut self.items[self.len];
        self.len += 1;
        name.clear();
        if count && key.is_none() {
            name.push('&');
        }
        name.push_str(coll);
        if let Some(k) = key {
            name.push(':');
            name.push_str(k);
        }
        v.clear();
        v.extend_from_slice(value);
    }
}

/// Values longer than this are not remembered: long values rarely repeat.
const DETECT_MEMO_MAX: usize = 128;

/// Whether detector answers for this target may be shared across requests: only the
/// User-Agent, which identifies software rather than a user and is the long value every
/// request repeats. Other values (form fields, cookies, a Referer's query) can be secrets,
/// and a shared answer would let a client time whether someone else sent one.
fn shares_answers(coll: &str, key: Option<&str>) -> bool {
    coll == "REQUEST_HEADERS" && key.is_some_and(|k| k.eq_ignore_ascii_case("user-agent"))
}

/// Shards per detector in [`DetectCache`], and the answers each keeps.
const DETECT_SHARDS: usize = 16;
const DETECT_SHARD_ENTRIES: usize = 1024;

type DetectMemo = HashMap<Box<[u8]>, bool, ahash::RandomState>;

/// detectSQLi's and detectXSS's answers for User-Agent values ([`shares_answers`]), shared
/// by the transactions of a ruleset. libinjection is the costliest operator CRS runs
/// (942100 and 941100 on a browser's User-Agent were a sixth of a benign GET), and
/// browsers send the same few User-Agents on every request. Exact: the detectors are pure
/// functions of the value. Bounded: a full shard is emptied. Keyed with a random hasher:
/// clients choose the values.
struct DetectCache {
    hasher: ahash::RandomState,
    /// `DETECT_SHARDS` per detector (0 detectSQLi, 1 detectXSS).
    shards: Vec<std::sync::Mutex<DetectMemo>>,
}

impl std::fmt::Debug for DetectCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DetectCache")
    }
}

impl DetectCache {
    fn new() -> DetectCache {
        DetectCache {
            hasher: ahash::RandomState::new(),
            shards: (0..2 * DETECT_SHARDS).map(|_| Default::default()).collect(),
        }
    }

    /// Detector `d`'s answer for `v`: remembered, or `run` (without a lock held).
    fn answer(&self, d: usize, v: &[u8], run: impl FnOnce() -> bool) -> bool {
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

type TransformCache = HashMap<(usize, usize, u32), Option<Box<[u8]>>, BuildHasherDefault<WordHash>>;

/// `value` after rule `r`'s transformations, `None` when they leave it as it is. CRS runs
/// the same few chains (`t:urlDecodeUni,t:htmlEntityDecode,...`) over the same values rule
/// after rule: each (value, chain) is computed once per phase.
fn transformed<'c>(
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
fn apply_chain<'v>(r: &CompiledRule, mut v: Cow<'v, [u8]>) -> Cow<'v, [u8]> {
    for tr in &r.transforms {
        v = tr.apply_cow(v);
    }
    v
}

/// A hasher for keys made of machine words that requests do not choose (addresses, ids).
#[derive(Default)]
struct WordHash(u64);

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

/// TX names of regex captures (`capture`): `tx.0` to `tx.9`.
const CAPTURE_KEYS: [&str; 10] = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];

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
struct Target<'a> {
    /// The variable's index in the rule.
    var: u16,
    /// The collection (or scalar) name; reported as `coll:key`, or `&coll` when counted.
    coll: &'a str,
    key: Option<&'a str>,
    value: Cow<'a, [u8]>,
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
        (key, value): (&'a str, &'a [u8]),
        names: bool,
        stable: bool,
    ) -> Target<'a> {
        Target {
            var,
            coll,
            key: Some(key),
            value: Cow::Borrowed(if names { key.as_bytes() } else { value }),
            count: false,
            stable,
        }
    }
}

/// A request (and its response) going through the rules.
pub struct Transaction<'r> {
    rs: RulesetRef<'r>,
    mode: EngineMode,
    /// Collections by upper-case name: (key, value) in order.
    collections: Collections,
    scalars: Scalars,
    tx: TxStore,
    removed_ids: Vec<(u64, u64)>,
    removed_tags: Vec<String>,
    removed_targets: Vec<(u64, Variable)>,
    matched_var: (String, Vec<u8>),
    matched_vars: Hits,
    /// The buffer the next rule's hits are collected in.
    spare_hits: Hits,
    /// (value address, length, transformation chain) → the transformed value, `None` when
    /// unchanged. Only for request/response data, which does not change while a phase
    /// runs; emptied at the start of each phase.
    transform_cache: std::sync::Mutex<TransformCache>,
    /// The values of the target groups met so far in this phase.
    groups: GroupCache,
    /// The sources holding a value in this phase ([`source_bit`]).
    present: u64,
    /// detectSQLi's and detectXSS's answers for this request's other values: JSON bodies
    /// and forms repeat short values (`EUR`, `true`, `1`).
    detect_memo: std::sync::Mutex<[DetectMemo; 2]>,
    /// A buffer `setvar` reuses.
    scratch: Vec<u8>,
    pub matched: Vec<MatchedRule>,
    pub interruption: Option<Interruption>,
    allowed: bool,
}

const COLLECTIONS: [&str; 10] = [
    "MULTIPART_PART_HEADERS",
    "ARGS_GET",
    "ARGS_POST",
    "REQUEST_HEADERS",
    "REQUEST_COOKIES",
    "RESPONSE_HEADERS",
    "FILES",
    "FILES_NAMES",
    "FILES_SIZES",
    "XML",
];

type Items = Vec<(String, Vec<u8>)>;

/// Indexes of the argument collections in [`COLLECTIONS`].
const ARGS_GET: usize = 1;
const ARGS_POST: usize = 2;

/// The request's collections, one slot per name in [`COLLECTIONS`]: rules find theirs by
/// an index resolved at load time rather than by hashing the name on every evaluation.
#[derive(Default)]
struct Collections([Items; COLLECTIONS.len()]);

impl Collections {
    fn index_of(name: &str) -> Option<usize> {
        COLLECTIONS.iter().position(|c| *c == name)
    }
    fn get(&self, name: &str) -> Option<&Items> {
        Self::index_of(name).map(|i| &self.0[i])
    }
    fn get_mut(&mut self, name: &str) -> Option<&mut Items> {
        Self::index_of(name).map(|i| &mut self.0[i])
    }
    fn insert(&mut self, name: &str, items: Items) {
        if let Some(slot) = self.get_mut(name) {
            *slot = items;
        }
    }
}

impl std::ops::Index<&str> for Collections {
    type Output = Items;
    fn index(&self, name: &str) -> &Items {
        self.get(name).expect("known collection")
    }
}

/// Where a rule variable's values come from, resolved from its name at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coll {
    Fixed(usize),
    Args,
    Tx,
    MatchedVars,
}

/// The single-valued variables the engine sets. Each has a fixed index, so a rule reading
/// one (`REQUEST_FILENAME`, `QUERY_STRING`...) indexes an array instead of hashing the name.
macro_rules! scalars {
    ($($name:ident),* $(,)?) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Debug, Clone, Copy)]
        enum Sc { $($name),* }
        const SCALAR_NAMES: &[&str] = &[$(stringify!($name)),*];
    };
}
scalars!(
    FILES_COMBINED_SIZE,
    FULL_REQUEST_LENGTH,
    INBOUND_DATA_ERROR,
    MULTIPART_STRICT_ERROR,
    QUERY_STRING,
    REMOTE_ADDR,
    REQBODY_ERROR,
    REQBODY_ERROR_MSG,
    REQBODY_PROCESSOR,
    REQUEST_BASENAME,
    REQUEST_BODY,
    REQUEST_BODY_LENGTH,
    REQUEST_FILENAME,
    REQUEST_LINE,
    REQUEST_METHOD,
    REQUEST_PROTOCOL,
    REQUEST_URI,
    REQUEST_URI_RAW,
    RESPONSE_BODY,
    RESPONSE_CONTENT_LENGTH,
    RESPONSE_CONTENT_TYPE,
    RESPONSE_PROTOCOL,
    RESPONSE_STATUS,
    STATUS,
);

#[derive(Default)]
struct Scalars([Option<Vec<u8>>; SCALAR_NAMES.len()]);

impl Scalars {
    fn insert(&mut self, name: Sc, value: Vec<u8>) {
        self.0[name as usize] = Some(value);
    }

    fn get(&self, i: u8) -> Option<&Vec<u8>> {
        self.0.get(usize::from(i)).and_then(Option::as_ref)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// A collection; `true` for its `_NAMES` (the keys as values).
    Coll(Coll, bool),
    MatchedVar,
    MatchedVarName,
    ArgsCombinedSize,
    /// A single-valued variable: its index in [`SCALAR_NAMES`] (`u8::MAX`: one this engine
    /// never sets).
    Scalar(u8),
    /// `TX:name` with the name's slot.
    TxSlot(u32),
}

/// What the rule loop needs of a variable, resolved at load and kept in one small array per
/// rule.
#[derive(Debug, Clone, Copy)]
struct Plan {
    src: Source,
    exclude: bool,
    count: bool,
    /// Has a selector (`:key`, `:/regex/`) to apply.
    keyed: bool,
}

impl Plan {
    fn of(v: &Variable) -> Plan {
        Plan::with(v, Source::of(&v.name))
    }

    fn with(v: &Variable, src: Source) -> Plan {
        Plan {
            src,
            exclude: v.exclude,
            count: v.count,
            keyed: v.selector.is_some(),
        }
    }
}

impl Source {
    /// The variable's name as reported (`ARGS` for `ARGS_NAMES`), from the binary's own
    /// strings: no read of the rule's data.
    fn static_name(self) -> Option<&'static str> {
        Some(match self {
            Source::Coll(Coll::Fixed(i), _) => COLLECTIONS[i],
            Source::Coll(Coll::Args, _) => "ARGS",
            Source::Coll(Coll::Tx, _) | Source::TxSlot(_) => "TX",
            Source::Coll(Coll::MatchedVars, _) => "MATCHED_VARS",
            Source::MatchedVar => "MATCHED_VAR",
            Source::MatchedVarName => "MATCHED_VAR_NAME",
            Source::ArgsCombinedSize => "ARGS_COMBINED_SIZE",
            Source::Scalar(i) => return SCALAR_NAMES.get(usize::from(i)).copied(),
        })
    }

    fn of(name: &str) -> Source {
        let coll = |n: &str| match n {
            "ARGS" => Some(Coll::Args),
            "TX" => Some(Coll::Tx),
            "MATCHED_VARS" => Some(Coll::MatchedVars),
            n => Collections::index_of(n).map(Coll::Fixed),
        };
        if let Some(c) = coll(name) {
            return Source::Coll(c, false);
        }
        if let Some(c) = name.strip_suffix("_NAMES").and_then(coll) {
            return Source::Coll(c, true);
        }
        match name {
            "MATCHED_VAR" => Source::MatchedVar,
            "MATCHED_VAR_NAME" => Source::MatchedVarName,
            "ARGS_COMBINED_SIZE" => Source::ArgsCombinedSize,
            _ => Source::Scalar(
                SCALAR_NAMES
                    .iter()
                    .position(|n| *n == name)
                    .map_or(u8::MAX, |i| i as u8),
            ),
        }
    }
}

impl Transaction<'static> {
    /// A transaction that owns a share of the ruleset, to live across async proxy phases.
    pub fn new_shared(rs: std::sync::Arc<Ruleset>, client_ip: &str) -> Transaction<'static> {
        Self::with_ruleset(RulesetRef::Shared(rs), client_ip)
    }
}

impl<'r> Transaction<'r> {
    pub fn new(rs: &'r Ruleset, client_ip: &str) -> Transaction<'r> {
        Self::with_ruleset(RulesetRef::Borrowed(rs), client_ip)
    }

    fn with_ruleset(rs: RulesetRef<'r>, client_ip: &str) -> Transaction<'r> {
        let mode = rs.mode;
        let tx = TxStore::new(rs.tx_names.clone());
        let groups = rs.group_filters.len();
        let mut t = Transaction {
            rs,
            mode,
            collections: Collections::default(),
            scalars: Scalars::default(),
            tx,
            removed_ids: Vec::new(),
            removed_tags: Vec::new(),
            removed_targets: Vec::new(),
            matched_var: Default::default(),
            matched_vars: Hits::default(),
            spare_hits: Hits::default(),
            transform_cache: Default::default(),
            // Until a phase says otherwise, every source may hold values.
            present: u64::MAX,
            groups: GroupCache {
                spans: vec![(0, 0, 0); groups],
                run: 0,
                items: Vec::new(),
                bytes: Vec::new(),
            },
            detect_memo: Default::default(),
            scratch: Vec::new(),
            matched: Vec::new(),
            interruption: None,
            allowed: false,
        };
        t.scalars
            .insert(Sc::REMOTE_ADDR, client_ip.as_bytes().to_vec());
        t
    }

    /// Request line and headers (phase 1 input). `uri` is the raw request target.
    /// `REQUEST_URI_RAW` as sent, when `request_headers` was given the normalised URI
    /// (the form the gateway routes on and forwards).
    pub fn set_request_uri_raw(&mut self, raw: &str) {
        self.scalars
            .insert(Sc::REQUEST_URI_RAW, raw.as_bytes().to_vec());
    }

    pub fn request_headers(
        &mut self,
        method: &str,
        uri: &str,
        protocol: &str,
        headers: &[(String, Vec<u8>)],
    ) {
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let decoded_path = crate::transform::Transform::UrlDecode.apply(path.as_bytes());
        let basename = decoded_path
            .rsplit(|c| *c == b'/')
            .next()
            .unwrap_or(&[])
            .to_vec();
        let s = &mut self.scalars;
        s.insert(Sc::REQUEST_METHOD, method.as_bytes().to_vec());
        s.insert(Sc::REQUEST_PROTOCOL, protocol.as_bytes().to_vec());
        s.insert(Sc::REQUEST_URI, uri.as_bytes().to_vec());
        s.insert(Sc::REQUEST_URI_RAW, uri.as_bytes().to_vec());
        s.insert(Sc::REQUEST_FILENAME, decoded_path);
        s.insert(Sc::REQUEST_BASENAME, basename);
        s.insert(Sc::QUERY_STRING, query.unwrap_or("").as_bytes().to_vec());
        s.insert(
            Sc::REQUEST_LINE,
            format!("{method} {uri} {protocol}").into_bytes(),
        );
        let mut full = format!("{method} {uri} {protocol}").len();
        for (k, v) in headers {
            full += k.len() + v.len() + 4;
            if k.eq_ignore_ascii_case("cookie") {
                for c in v.split(|b| *b == b';') {
                    let c = String::from_utf8_lossy(c).trim().to_string();
                    let (name, val) = c.split_once('=').unwrap_or((c.as_str(), ""));
                    self.push("REQUEST_COOKIES", name, val.as_bytes().to_vec());
                }
            }
            self.push("REQUEST_HEADERS", k, v.clone());
        }
        self.scalars
            .insert(Sc::FULL_REQUEST_LENGTH, full.to_string().into_bytes());
        if let Some(q) = query {
            // Beyond the limit query arguments are dropped (ModSecurity v3), so a long
            // query string cannot multiply the work of every ARGS rule.
            let mut args = parse_urlencoded(q.as_bytes(), self.rs.argument_separator);
            args.truncate(self.rs.argument_limit);
            self.collections.insert("ARGS_GET", args);
        }
    }

    /// The request body (phase 2 input), parsed by Content-Type.
    pub fn request_body(&mut self, body: &[u8]) {
        // Beyond SecRequestBodyLimit: 413 (Reject), or only the first part is inspected
        // (ProcessPartial), flagged as INBOUND_DATA_ERROR for the rules to act on.
        let body = if body.len() > self.rs.request_body_limit {
            self.scalars.insert(Sc::INBOUND_DATA_ERROR, b"1".to_vec());
            if self.rs.request_body_limit_reject
                && self.mode == EngineMode::On
                && self.interruption.is_none()
            {
                self.interruption = Some(Interruption {
                    status: 413,
                    action: Disruptive::Deny,
                    rule_id: 0,
                });
            }
            &body[..self.rs.request_body_limit]
        } else {
            body
        };
        self.scalars.insert(Sc::REQUEST_BODY, body.to_vec());
        self.scalars
            .insert(Sc::REQUEST_BODY_LENGTH, body.len().to_string().into_bytes());
        let ct = self
            .collections
            .get("REQUEST_HEADERS")
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            })
            .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        if ct.starts_with("application/x-www-form-urlencoded") {
            self.scalars
                .insert(Sc::REQBODY_PROCESSOR, b"URLENCODED".to_vec());
            self.collections.insert(
                "ARGS_POST",
                parse_urlencoded(body, self.rs.argument_separator),
            );
            self.limit_body_args();
        } else if ct.starts_with("multipart/form-data") {
            self.scalars
                .insert(Sc::REQBODY_PROCESSOR, b"MULTIPART".to_vec());
            // The boundary is case-sensitive: take it from the header as sent.
            let raw_ct = self
                .collections
                .get("REQUEST_HEADERS")
                .and_then(|h| {
                    h.iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
                })
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default();
            match multipart(&raw_ct, body) {
                Some(parts) => {
                    let mut total = 0usize;
                    for p in parts {
                        for h in &p.headers {
                            self.push("MULTIPART_PART_HEADERS", &p.name, h.clone().into_bytes());
                        }
                        match p.filename {
                            Some(f) => {
                                total += p.value.len();
                                self.push("FILES", &p.name, f.into_bytes());
                                self.push("FILES_NAMES", &p.name, p.name.clone().into_bytes());
                                self.push(
                                    "FILES_SIZES",
                                    &p.name,
                                    p.value.len().to_string().into_bytes(),
                                );
                            }
                            None => self.push("ARGS_POST", &p.name, p.value),
                        }
                    }
                    self.scalars
                        .insert(Sc::FILES_COMBINED_SIZE, total.to_string().into_bytes());
                }
                None => {
                    self.scalars.insert(Sc::REQBODY_ERROR, b"1".to_vec());
                    self.scalars
                        .insert(Sc::REQBODY_ERROR_MSG, b"Multipart parsing error".to_vec());
                    self.scalars
                        .insert(Sc::MULTIPART_STRICT_ERROR, b"1".to_vec());
                }
            }
            // Only plain fields count as arguments, as in ModSecurity.
            self.limit_body_args();
        } else if ct.starts_with("text/xml")
            || ct.starts_with("application/xml")
            || ct.starts_with("application/soap+xml")
        {
            // The types ModSecurity's recommended rule 200000 sends to the XML processor.
            self.scalars.insert(Sc::REQBODY_PROCESSOR, b"XML".to_vec());
            match crate::xml::parse(body) {
                Ok(x) => {
                    // ModSecurity v2 keeps REQUEST_BODY for the URL-encoded processor only:
                    // an XML document is judged by its values, not its element names.
                    self.scalars.insert(Sc::REQUEST_BODY, Vec::new());
                    let items = self.collections.get_mut("XML").expect("collection");
                    items.push(("/*".into(), x.text));
                    items.extend(x.attributes.into_iter().map(|v| ("//@*".to_string(), v)));
                }
                Err(e) => {
                    self.scalars.insert(Sc::REQBODY_ERROR, b"1".to_vec());
                    self.scalars.insert(
                        Sc::REQBODY_ERROR_MSG,
                        format!("XML parsing error: {e}").into_bytes(),
                    );
                }
            }
        } else if ct.contains("json") {
            self.scalars.insert(Sc::REQBODY_PROCESSOR, b"JSON".to_vec());
            // Backends read JSON in UTF-8, -16 or -32, with or without a BOM (RFC 8259 §8.1
            // says UTF-8, but Python's json, Jackson and .NET detect the others): the rules
            // read the same text, or the body is flagged unreadable.
            let text = match json_text(body, &ct) {
                Ok(t) => t,
                Err(e) => {
                    self.scalars.insert(Sc::REQBODY_ERROR, b"1".to_vec());
                    self.scalars
                        .insert(Sc::REQBODY_ERROR_MSG, e.as_bytes().to_vec());
                    return;
                }
            };
            if let std::borrow::Cow::Owned(t) = &text {
                self.scalars.insert(Sc::REQUEST_BODY, t.clone());
            }
            match serde_free_json(&text, self.rs.json_depth_limit) {
                Ok(args) => {
                    self.collections.insert("ARGS_POST", args);
                    self.limit_body_args();
                }
                Err(e) => {
                    self.scalars.insert(Sc::REQBODY_ERROR, b"1".to_vec());
                    self.scalars.insert(Sc::REQBODY_ERROR_MSG, e.into_bytes());
                }
            }
        }
    }

    /// `SecArgumentsLimit` for body arguments: the excess is dropped and the body flagged
    /// as not fully parsed (ModSecurity v2; CRS-style rule 200007 rejects on it).
    fn limit_body_args(&mut self) {
        let room = self
            .rs
            .argument_limit
            .saturating_sub(self.collections["ARGS_GET"].len());
        let post = self.collections.get_mut("ARGS_POST").expect("collection");
        if post.len() > room {
            post.truncate(room);
            self.scalars.insert(Sc::REQBODY_ERROR, b"1".to_vec());
            self.scalars.insert(
                Sc::REQBODY_ERROR_MSG,
                b"Request body has more arguments than SecArgumentsLimit".to_vec(),
            );
        }
    }

    /// The upstream's response (phases 3 and 4 input).
    pub fn response(&mut self, status: u16, headers: &[(String, Vec<u8>)], body: &[u8]) {
        self.response_headers(status, "HTTP/1.1", headers);
        self.response_body(body);
    }

    /// The response status line and headers (phase 3 input).
    pub fn response_headers(&mut self, status: u16, protocol: &str, headers: &[(String, Vec<u8>)]) {
        self.scalars
            .insert(Sc::RESPONSE_STATUS, status.to_string().into_bytes());
        self.scalars
            .insert(Sc::STATUS, status.to_string().into_bytes());
        self.scalars
            .insert(Sc::RESPONSE_PROTOCOL, protocol.as_bytes().to_vec());
        for (k, v) in headers {
            if k.eq_ignore_ascii_case("content-type") {
                self.scalars.insert(Sc::RESPONSE_CONTENT_TYPE, v.clone());
            } else if k.eq_ignore_ascii_case("content-length") {
                self.scalars.insert(Sc::RESPONSE_CONTENT_LENGTH, v.clone());
            }
        }
        self.collections
            .insert("RESPONSE_HEADERS", headers.to_vec());
    }

    /// The response body, or the part of it within the inspection limit (phase 4 input).
    pub fn response_body(&mut self, body: &[u8]) {
        self.scalars.insert(Sc::RESPONSE_BODY, body.to_vec());
        self.scalars.insert(
            Sc::RESPONSE_CONTENT_LENGTH,
            body.len().to_string().into_bytes(),
        );
    }

    fn push(&mut self, coll: &'static str, key: &str, value: Vec<u8>) {
        if let Some(items) = self.collections.get_mut(coll) {
            items.push((key.to_string(), value));
        }
    }

    pub fn run_phase(&mut self, phase: u8) {
        // Logging (phase 5) runs even after a block or an allow, as in ModSecurity.
        if self.mode == EngineMode::Off
            || (phase != 5 && (self.interruption.is_some() || self.allowed))
        {
            return;
        }
        self.transform_cache
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
        // Group values are valid for one phase: the request data can change between phases.
        self.groups.run += 1;
        self.groups.items.clear();
        self.groups.bytes.clear();
        let rs = self.rs.clone();
        let rules = &rs.phases[(phase - 1) as usize];
        let hot = &rs.hot[(phase - 1) as usize];
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
                        if self.mode == EngineMode::On && phase != 5 {
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

    fn disrupt(&self, r: &CompiledRule) -> Option<Disruptive> {
        r.disruptive.clone()
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
            matched_var_name: self.matched_var.0.clone(),
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
        // Run-time exclusions (`ctl:ruleRemoveTargetById`) make a rule's targets its own.
        let grouped = match r.group {
            Some(g) if !self.removed_targets.iter().any(|(id, _)| *id == r.id) => {
                self.fill_group(g as usize, r)
            }
            _ => None,
        };
        // Targets borrow the transaction, so matches are collected in a spare buffer and
        // the state updated after: the same result, as the targets and the operator
        // argument are read before any of it changes.
        let mut hits = std::mem::take(&mut self.spare_hits);
        hits.len = 0;
        let mut all_caps = Vec::new();
        let detector = r.op.detector();
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
                        let v = g.bytes(it.value);
                        // Without one of its literals the operator cannot match.
                        let res = if it.candidates & bit == 0 && bit != 0 {
                            if self.rs.verify_filters {
                                assert_eq!(
                                    test(v, false).is_some(),
                                    r.op.negated,
                                    "rule {}: the literal filter skipped a match on {:?}",
                                    r.id,
                                    String::from_utf8_lossy(v)
                                );
                            }
                            r.op.negated.then(Vec::new)
                        } else {
                            test(v, false)
                        };
                        if let Some(caps) = res {
                            let var = &r.vars[usize::from(it.var)];
                            let coll = match r.sources[usize::from(it.var)].src.static_name() {
                                Some(n) if !it.count => n,
                                _ => var.name.as_str(),
                            };
                            hits.push(coll, it.key.map(|k| g.text(k)), it.count, v);
                            hit(caps);
                        }
                    }
                }
                None => self.each_value(r, |_, coll, key, count, v| {
                    if let Some(caps) = test(v, shares_answers(coll, key)) {
                        hits.push(coll, key, count, v);
                        hit(caps);
                    }
                }),
            }
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
        self.each_value(r, |var, _, key, count, v| {
            full |= gc.bytes.len() + v.len() + key.map_or(0, str::len) > GROUP_BYTES_MAX;
            if full {
                return;
            }
            let key = key.map(|k| gc.push_bytes(k.as_bytes()));
            let value = gc.push_bytes(v);
            gc.items.push(GroupItem {
                var,
                count,
                key,
                value,
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

    /// Calls `f` with each target of `r` (variable index, name, key, counted) and its value
    /// after the rule's transformations.
    fn each_value<'a>(
        &'a self,
        r: &'a CompiledRule,
        mut f: impl FnMut(u16, &'a str, Option<&'a str>, bool, &[u8]),
    ) {
        // Short chains cost less to run than to look up (measured: 4 and more pays). The
        // lock is taken once per rule, never contended: it only makes the transaction Sync.
        let mut cache = (r.transforms.len() >= 4).then(|| {
            self.transform_cache
                .lock()
                .unwrap_or_else(|p| p.into_inner())
        });
        self.each_target(r, |t| {
            let Target {
                var,
                coll,
                key,
                value,
                count,
                stable,
            } = t;
            let own: Cow<'_, [u8]>;
            let v: &[u8] = match (value, cache.as_deref_mut()) {
                // None of the bytes the chain acts on: nothing to compute or look up.
                (Cow::Borrowed(b), _) if r.triggers & classes(b) == 0 => b,
                (Cow::Borrowed(b), Some(c)) if stable => transformed(c, b, r).unwrap_or(b),
                (value, _) => {
                    own = apply_chain(r, value);
                    &own
                }
            };
            f(var, coll, key, count, v);
        });
    }

    /// Calls `f` with each value rule `r` inspects, in order, its exclusions (`!VAR:key`,
    /// `ctl:ruleRemoveTargetById`) applied. A visitor rather than a list: no allocation per
    /// rule.
    fn each_target<'a>(&'a self, r: &'a CompiledRule, mut f: impl FnMut(Target<'a>)) {
        // Exclusions added at run time (`ctl:ruleRemoveTargetById`) for this rule.
        let removed = || {
            self.removed_targets
                .iter()
                .filter(|(id, _)| *id == r.id)
                .map(|(_, v)| v)
        };
        let any_removed = !self.removed_targets.is_empty() && removed().next().is_some();
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
            if own.is_empty() && !any_removed {
                self.resolve_each(i as u16, var, *src, &mut f);
                continue;
            }
            let excluded = |key: &str| {
                own.iter()
                    .map(|j| &r.vars[*j])
                    .chain(removed().filter(|x| same_collection(&x.name, &var.name)))
                    .any(|x| match &x.selector {
                        Some(Selector::Key(k)) => key.eq_ignore_ascii_case(k),
                        Some(Selector::Regex(re)) => self.selector_matches(re, key),
                        None => true,
                    })
            };
            self.resolve_each(i as u16, var, *src, &mut |t: Target<'a>| {
                if !excluded(t.key.unwrap_or(t.coll)) {
                    f(t);
                }
            });
        }
    }

    fn selector_matches(&self, pattern: &str, key: &str) -> bool {
        self.key_matcher(pattern).is_match(key)
    }

    /// How a `/regex/` selector tests keys, found once per variable rather than per key.
    fn key_matcher<'s>(&'s self, pattern: &'s str) -> KeyMatcher<'s> {
        if let Some(prefix) = literal_prefix(pattern) {
            return KeyMatcher::Prefix(prefix);
        }
        match self.rs.selectors.get(pattern) {
            Some(re) => KeyMatcher::Re(re),
            // Targets added at run time (ctl) are rare: compile on use.
            None => KeyMatcher::Owned(selector_regex(pattern).ok()),
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
    fn for_each_item<'a>(&'a self, coll: Coll, mut f: impl FnMut(&'a str, &'a [u8])) {
        let mut each = |items: &'a [(String, Vec<u8>)]| {
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
                    f(k, v);
                }
            }
            Coll::MatchedVars => each(self.matched_vars.as_slice()),
            Coll::Fixed(i) => each(&self.collections.0[i]),
        }
    }

    /// Calls `f` with each value of `var` (a collection's selected items, or a scalar).
    fn resolve_each<'a>(
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
            Source::MatchedVarName => {
                return f(scalar(Cow::Borrowed(self.matched_var.0.as_bytes()), false))
            }
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
                        key: Some(self.tx.names.names[i as usize].as_str()),
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
                    f(Target::item(vi, name, (k, v), names, false));
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
                        Some((t.names.names[*i as usize].as_str(), v))
                    })
                    .chain(
                        t.dynamic
                            .iter()
                            .filter(|(k, _)| m.is_match(k))
                            .map(|(k, v)| (k.as_str(), v.as_slice())),
                    );
                for (k, v) in found {
                    f(Target::item(vi, name, (k, v), names, false));
                }
                return;
            }
        }
        let stable = !matches!(coll, Coll::Tx | Coll::MatchedVars);
        self.for_each_item(coll, |k, v| {
            let selected = match (selector, &matcher) {
                (None, _) => true,
                (Some(Selector::Key(s)), _) => k.eq_ignore_ascii_case(s),
                (Some(Selector::Regex(_)), Some(m)) => m.is_match(k),
                (Some(Selector::Regex(_)), None) => false,
            };
            if selected {
                f(Target::item(vi, name, (k, v), names, stable));
            }
        });
    }

    /// Appends `t` with its macros expanded to `out`.
    fn render(&self, t: &Template, r: &CompiledRule, out: &mut Vec<u8>) {
        let text = |o: &mut Vec<u8>, s: &Option<String>| {
            o.extend_from_slice(s.as_deref().unwrap_or("").as_bytes())
        };
        for p in &t.0 {
            match p {
                Piece::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Tx(k) => {
                    if let Some(v) = self.tx.get_name(k) {
                        out.extend_from_slice(v);
                    }
                }
                Piece::RuleId => {
                    use std::io::Write;
                    let _ = write!(out, "{}", r.id);
                }
                Piece::RuleMsg => text(out, &r.msg),
                Piece::RuleSeverity => text(out, &r.severity),
                Piece::RuleLogdata => text(out, &r.logdata),
                Piece::MatchedVar => out.extend_from_slice(&self.matched_var.1),
                Piece::MatchedVarName => out.extend_from_slice(self.matched_var.0.as_bytes()),
                Piece::Var(var, src) => {
                    let mut first = None;
                    // (A variable's index in its rule matters to groups only.)
                    self.resolve_each(0, var, Plan::with(var, *src), &mut |t| {
                        first.get_or_insert(t.value);
                    });
                    if let Some(v) = first {
                        out.extend_from_slice(&v);
                    }
                }
            }
        }
    }

    /// `msg` / `logdata` text: request bytes that are not UTF-8 are replaced.
    fn render_text(&self, t: &Template, r: &CompiledRule) -> String {
        let mut out = Vec::new();
        self.render(t, r, &mut out);
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
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

    fn effect(&mut self, e: &Effect, r: &CompiledRule) {
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
                "ruleRemoveTargetById" => {
                    if let Some((id, target)) = val.split_once(';') {
                        if let (Ok((id, _)), Ok(vars)) =
                            (parse_range(id), crate::parser::parse_variables(target))
                        {
                            for mut var in vars {
                                var.exclude = true;
                                self.removed_targets.push((id, var));
                            }
                        }
                    }
                }
                _ => {}
            },
        }
    }

    /// Overrides the ruleset's `SecRuleEngine` for this transaction (a route's own mode).
    pub fn set_mode(&mut self, mode: EngineMode) {
        self.mode = mode;
    }

    /// Sets a TX variable before the rules run (e.g. CRS's `blocking_paranoia_level`,
    /// which CRS only defaults when it is unset).
    pub fn set_tx(&mut self, name: &str, value: &str) {
        self.tx.set(
            TxKey::Name(Cow::Owned(name.to_ascii_lowercase())),
            value.as_bytes(),
        );
    }

    /// Skips the rules with ids in `from..=to` for this transaction.
    pub fn remove_rule_ids(&mut self, from: u64, to: u64) {
        self.removed_ids.push((from, to));
    }

    /// Skips the rules carrying `tag` for this transaction.
    pub fn remove_rules_by_tag(&mut self, tag: &str) {
        self.removed_tags.push(tag.to_string());
    }

    /// Excludes `target` (SecLang variable syntax, e.g. `ARGS:password`) from rule `id`.
    pub fn remove_target(&mut self, id: u64, target: &str) -> Result<(), String> {
        for mut var in crate::parser::parse_variables(target)? {
            var.exclude = true;
            self.removed_targets.push((id, var));
        }
        Ok(())
    }

    /// Why the request body could not be parsed (`REQBODY_ERROR_MSG`), if it could not.
    pub fn request_body_error(&self) -> Option<String> {
        let set = self
            .scalars
            .get(Sc::REQBODY_ERROR as u8)
            .is_some_and(|v| v.as_slice() != b"0");
        set.then(|| {
            String::from_utf8_lossy(
                self.scalars
                    .get(Sc::REQBODY_ERROR_MSG as u8)
                    .map_or(&[][..], |v| v),
            )
            .into_owned()
        })
    }

    /// The anomaly score CRS accumulated (inbound + outbound), 0 without CRS.
    pub fn anomaly_score(&self) -> i64 {
        let n = |k: &str| {
            self.tx(k)
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0)
        };
        n("blocking_inbound_anomaly_score") + n("blocking_outbound_anomaly_score")
    }

    pub fn tx(&self, name: &str) -> Option<String> {
        self.tx
            .get(&name.to_ascii_lowercase())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn same_collection(a: &str, b: &str) -> bool {
    a == b
        || (a == "ARGS" && (b == "ARGS_GET" || b == "ARGS_POST"))
        || (b == "ARGS" && (a == "ARGS_GET" || a == "ARGS_POST"))
}

#[cfg(test)]
mod directive_tests {
    use super::*;

    #[test]
    fn json_bodies_in_any_unicode_encoding_are_read_as_text() {
        let utf16le = |t: &str| {
            let mut v = vec![0xFF, 0xFE];
            v.extend(t.encode_utf16().flat_map(|u| u.to_le_bytes()));
            v
        };
        let utf32be = |t: &str| {
            t.chars()
                .flat_map(|c| (c as u32).to_be_bytes())
                .collect::<Vec<u8>>()
        };
        let doc = r#"{"q":"1' union"}"#;
        for (body, ct) in [
            (
                [&[0xEF, 0xBB, 0xBF][..], doc.as_bytes()].concat(),
                "application/json",
            ),
            (utf16le(doc), "application/json"),
            (utf32be(doc), "application/json"),
            (utf16le(doc)[2..].to_vec(), "application/json"),
            (
                doc.encode_utf16().flat_map(|u| u.to_be_bytes()).collect(),
                "application/json; charset=utf-16",
            ),
        ] {
            let text = json_text(&body, ct).unwrap();
            assert_eq!(&*text, doc.as_bytes(), "{ct} {body:?}");
        }
        assert!(json_text(doc.as_bytes(), "application/json; charset=koi8-r").is_err());
        assert!(json_text(&[0xFF, 0xFE, 0x00, 0xD8, 0x41, 0x00], "application/json").is_err());
        assert!(matches!(
            json_text(doc.as_bytes(), "application/json"),
            Ok(std::borrow::Cow::Borrowed(_))
        ));
    }

    fn run(rules: &str, uri: &str) -> (Vec<u64>, Option<Interruption>) {
        let d = crate::parse_str(rules, "<test>").unwrap();
        let rs = Ruleset::compile(&d, Path::new(".")).unwrap();
        let mut tx = Transaction::new(&rs, "10.0.0.1");
        tx.request_headers("GET", uri, "HTTP/1.1", &[("Host".into(), b"x".to_vec())]);
        tx.run_phase(1);
        tx.run_phase(2);
        (
            tx.matched.iter().map(|m| m.id).collect(),
            tx.interruption.clone(),
        )
    }

    const BASE: &str =
        "SecRule ARGS \"@contains evil\" \"id:10,phase:2,deny,log,msg:'evil',tag:'t1'\"\n";

    #[test]
    fn tuning_directives_take_effect() {
        assert!(run(BASE, "/?a=evil").1.is_some());
        // Action update: pass instead of deny, still logged, with a new message.
        let (ids, stop) = run(
            &format!("{BASE}SecRuleUpdateActionById 10 \"pass,msg:'tuned'\"\n"),
            "/?a=evil",
        );
        assert_eq!((ids, stop), (vec![10], None));
        let (ids, _) = run(
            &format!("{BASE}SecRuleUpdateActionById 10 \"nolog\"\n"),
            "/?a=evil",
        );
        assert!(ids.is_empty());
        assert!(run(&format!("{BASE}SecRuleRemoveByMsg evil\n"), "/?a=evil")
            .1
            .is_none());
        // Target update by tag: a cookie-less rule now also reads a header.
        let rules = format!("{BASE}SecRuleUpdateTargetByTag t1 REQUEST_HEADERS:Host\n");
        let d = crate::parse_str(&rules, "<test>").unwrap();
        let rs = Ruleset::compile(&d, Path::new(".")).unwrap();
        let mut tx = Transaction::new(&rs, "10.0.0.1");
        tx.request_headers("GET", "/", "HTTP/1.1", &[("Host".into(), b"evil".to_vec())]);
        tx.run_phase(2);
        assert!(tx.interruption.is_some());
        // Body limit: Reject (default) refuses with 413; ProcessPartial inspects the start.
        for (action, refused) in [("Reject", true), ("ProcessPartial", false)] {
            let rules = format!(
                "SecRuleEngine On\nSecRequestBodyLimit 8\nSecRequestBodyLimitAction {action}\n"
            );
            let d = crate::parse_str(&rules, "<test>").unwrap();
            let rs = Ruleset::compile(&d, Path::new(".")).unwrap();
            let mut tx = Transaction::new(&rs, "10.0.0.1");
            tx.request_headers("POST", "/", "HTTP/1.1", &[]);
            tx.request_body(b"0123456789abcdef");
            assert_eq!(
                tx.interruption.as_ref().map(|i| i.status),
                refused.then_some(413)
            );
        }
        // Argument separator.
        let (ids, _) = run(&format!("SecArgumentSeparator ;\n{BASE}"), "/?a=1;b=evil");
        assert_eq!(ids, vec![10]);
        let d = crate::parse_str("SecArgumentSeparator ab\n", "<test>").unwrap();
        assert!(Ruleset::compile(&d, Path::new(".")).is_err());
    }
}

#[cfg(test)]
mod selector_tests {
    use super::*;

    #[test]
    fn literal_prefixes_match_like_their_regex() {
        assert_eq!(
            literal_prefix("^header_name_920450_"),
            Some("header_name_920450_")
        );
        assert_eq!(literal_prefix("^a.b"), None);
        assert_eq!(literal_prefix("x_"), None);
        assert_eq!(literal_prefix("^"), None);
        let m = KeyMatcher::Prefix("header_name_");
        let re = selector_regex("^header_name_").unwrap();
        for key in [
            "header_name_host",
            "HEADER_NAME_x",
            "header_nam",
            "xheader_name_a",
            "",
        ] {
            assert_eq!(m.is_match(key), re.is_match(key), "{key}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ruleset(rules: &str) -> Ruleset {
        Ruleset::compile(&crate::parse_str(rules, "<test>").unwrap(), Path::new(".")).unwrap()
    }

    /// Rules sharing a group see the same values whether the group keeps them or, past
    /// its size limit, each rule reads the request itself.
    #[test]
    fn group_members_match_alike_below_and_above_the_size_limit() {
        let rs = ruleset(
            "SecRule ARGS \"@rx evil\" \"id:1,phase:2,pass,t:lowercase,setvar:tx.a=+1\"\n\
             SecRule ARGS \"@pm evil\" \"id:2,phase:2,pass,t:lowercase,setvar:tx.b=+1\"\n\
             SecRule ARGS \"!@rx good\" \"id:3,phase:2,pass,t:lowercase,setvar:tx.c=+1\"\n",
        );
        for len in [10, GROUP_BYTES_MAX + 10] {
            let mut t = Transaction::new(&rs, "192.0.2.1");
            let h = [(
                "Content-Type".to_string(),
                b"application/x-www-form-urlencoded".to_vec(),
            )];
            t.request_headers("POST", "/?q=EVIL&n=good", "HTTP/1.1", &h);
            t.run_phase(1);
            let body = format!("big={}EVIL", "a".repeat(len));
            t.request_body(body.as_bytes());
            t.run_phase(2);
            assert_eq!(t.tx("a").as_deref(), Some("2"), "len {len}");
            assert_eq!(t.tx("b").as_deref(), Some("2"), "len {len}");
            assert_eq!(t.tx("c").as_deref(), Some("2"), "len {len}");
        }
    }

    /// Detector answers outlive the request for User-Agent values only: other values may
    /// be secrets whose presence a client could otherwise time.
    #[test]
    fn only_user_agent_answers_outlive_the_request() {
        let rs = ruleset(
            "SecRule REQUEST_HEADERS|ARGS \"@detectSQLi\" \"id:1,phase:1,pass,setvar:tx.n=+1\"\n",
        );
        let h = [
            ("User-Agent".to_string(), b"1' or '1'='1".to_vec()),
            ("X-Other".to_string(), b"2' or '2'='2".to_vec()),
        ];
        for _ in 0..2 {
            let mut t = Transaction::new(&rs, "192.0.2.1");
            t.request_headers("GET", "/?a=3'%20or%20'3'='3", "HTTP/1.1", &h);
            t.run_phase(1);
            assert_eq!(t.tx("n").as_deref(), Some("3"));
        }
        let cached = |v: &[u8]| {
            rs.detect_cache
                .shards
                .iter()
                .any(|s| s.lock().unwrap().contains_key(v))
        };
        assert!(cached(b"1' or '1'='1"));
        assert!(!cached(b"2' or '2'='2"));
        assert!(!cached(b"3' or '3'='3"));
    }

    #[test]
    fn argument_collection_indexes_name_them() {
        assert_eq!(COLLECTIONS[ARGS_GET], "ARGS_GET");
        assert_eq!(COLLECTIONS[ARGS_POST], "ARGS_POST");
    }

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

    /// Scores near i64::MAX used to overflow (a panic in debug builds).
    #[test]
    fn setvar_arithmetic_wraps_instead_of_panicking() {
        let rs = ruleset(
            "SecAction \"id:1,phase:1,pass,setvar:tx.a=9223372036854775807,setvar:tx.a=+1,\
             setvar:tx.b=-9223372036854775807,setvar:tx.b=-2\"\n",
        );
        let mut t = Transaction::new(&rs, "192.0.2.1");
        t.request_headers("GET", "/", "HTTP/1.1", &[]);
        t.run_phase(1);
        assert_eq!(t.tx("a").as_deref(), Some("-9223372036854775808"));
        assert_eq!(t.tx("b").as_deref(), Some("9223372036854775807"));
    }

    /// A marker's position must not count rules removed by SecRuleRemoveById.
    #[test]
    fn skip_after_lands_on_the_marker_when_earlier_rules_are_removed() {
        let rs = ruleset(
            "SecAction \"id:1,phase:1,pass,nolog\"\n\
             SecAction \"id:2,phase:1,pass,nolog\"\n\
             SecAction \"id:3,phase:1,pass,nolog,skipAfter:END\"\n\
             SecAction \"id:4,phase:1,pass,setvar:tx.skipped=1\"\n\
             SecMarker END\n\
             SecAction \"id:5,phase:1,pass,setvar:tx.after=1\"\n\
             SecRuleRemoveById 1 2\n",
        );
        let mut t = Transaction::new(&rs, "192.0.2.1");
        t.request_headers("GET", "/", "HTTP/1.1", &[]);
        t.run_phase(1);
        assert_eq!(t.tx("skipped"), None);
        assert_eq!(t.tx("after").as_deref(), Some("1"));
    }

    /// The detectors' per-request memo answers repeated values as libinjection does: each
    /// repeat of an injection is a hit, a repeated benign value never is, and the two
    /// detectors do not share answers.
    #[test]
    fn remembered_detector_answers_match_libinjection() {
        let rs = ruleset(
            "SecRule ARGS \"@detectSQLi\" \"id:1,phase:1,pass,setvar:tx.sqli=+1\"\n\
             SecRule ARGS \"@detectXSS\" \"id:2,phase:1,pass,setvar:tx.xss=+1\"\n\
             SecRule ARGS \"@detectSQLi\" \"id:3,phase:1,pass,setvar:tx.again=+1\"\n",
        );
        let mut t = Transaction::new(&rs, "192.0.2.1");
        let q = "/?a=1'%20OR%20'1'='1&b=EUR&c=1'%20OR%20'1'='1&d=EUR&e=<script>alert(1)</script>";
        t.request_headers("GET", q, "HTTP/1.1", &[]);
        t.run_phase(1);
        assert_eq!(t.tx("sqli").as_deref(), Some("2"));
        assert_eq!(t.tx("again").as_deref(), Some("2"));
        assert_eq!(t.tx("xss").as_deref(), Some("1"));
    }
}
