//! The ruleset compiler: SecLang directives become [`Ruleset`]'s per-phase [`CompiledRule`]s,
//! with defaults, markers and the `SecRuleUpdate*` / `SecRuleRemove*` tuning applied once at
//! load, so that requests only evaluate.

use super::actions::{Effect, Exclusion, TargetExclusion};
use super::caches::DetectCache;
use super::groups::{assign_groups, GroupFilter, Hot};
use super::macros::Template;
use super::selectors::{literal_prefix, same_collection, selector_regex, KeyMatcher};
use super::txnames::TxNames;
use super::vars::Plan;
use super::Phase;
use super::{Disruptive, EngineMode, MAX_JSON_DEPTH};
use crate::operator::CompiledOperator;
use crate::parser::{Action, Directive, Rule, Selector, Variable};
use crate::transform::{by_name, Transform};
use crate::Error;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

#[derive(Debug)]
pub(super) struct CompiledRule {
    pub(super) id: u64,
    pub(super) phase: Phase,
    pub(super) vars: Vec<Variable>,
    pub(super) op: CompiledOperator,
    pub(super) transforms: Vec<Transform>,
    pub(super) msg: Option<String>,
    pub(super) logdata: Option<String>,
    pub(super) severity: Option<String>,
    pub(super) tags: Vec<String>,
    pub(super) log: bool,
    pub(super) capture: bool,
    /// `multiMatch`: the operator runs on the value before the transformations and after
    /// each one that changes it, every match counting (ModSecurity v3).
    pub(super) multi_match: bool,
    pub(super) disruptive: Option<Disruptive>,
    pub(super) status: Option<u16>,
    /// `msg` and `logdata` with their macros parsed once.
    pub(super) msg_t: Option<Template>,
    pub(super) logdata_t: Option<Template>,
    /// setvar and ctl actions, in order, parsed once.
    pub(super) effects: Vec<Effect>,
    pub(super) skip_after: Option<String>,
    /// Where `skip_after` lands in the rule's phase, resolved once the ruleset is built.
    pub(super) skip_to: Option<usize>,
    /// What evaluating `vars[i]` needs, filled in once the ruleset is built.
    pub(super) sources: Vec<Plan>,
    /// Whether any of `exclusions` is non-empty: most rules have none, and the loop then
    /// need not read them.
    pub(super) has_exclusions: bool,
    /// The transformation chain's number (equal chains, equal numbers), for caching.
    pub(super) chain_id: u32,
    /// The byte classes the chain acts on ([`Transform::triggers`]).
    pub(super) triggers: u16,
    /// Rules that inspect the same request data through the same transformations share a
    /// group: the first of them to run in a phase keeps the transformed values
    /// ([`GroupCache`](super::caches::GroupCache)) and the others read them.
    pub(super) group: Option<u32>,
    /// This link's bit in its group's [`GroupFilter`], when its operator has literals.
    pub(super) filter_bit: Option<u8>,
    /// For `vars[i]`, the exclusions (`!VAR:key`, as indexes into `vars`) that apply to
    /// its collection; filled in once the ruleset is built.
    pub(super) exclusions: Vec<Vec<usize>>,
    /// The operator argument when it holds `%{...}` macros to expand per evaluation.
    pub(super) op_macros: Option<Template>,
    pub(super) skip: usize,
    pub(super) chain: Option<Box<CompiledRule>>,
    /// The rule's dense index in the ruleset (chain links share their rule's): where a
    /// transaction's run-time exclusions keep their bit.
    pub(super) ix: u32,
}

/// The compiled rules: build once, share by `Arc` across requests.
#[derive(Debug)]
pub struct Ruleset {
    pub(super) phases: [Vec<CompiledRule>; 5],
    /// (phase index, marker) → position after the marker.
    markers: HashMap<(usize, String), usize>,
    /// `SecRuleEngine` (default `On`); a transaction may override it.
    pub mode: EngineMode,
    /// `SecRequestBodyAccess` (default on): whether request bodies are to be inspected. The
    /// engine inspects what it is given: the caller applies this.
    pub request_body_access: bool,
    /// `SecRequestBodyLimit` in bytes (default 12.5 MiB): a longer body is refused or
    /// inspected in part (`request_body_limit_reject`).
    pub request_body_limit: usize,
    /// `SecRequestBodyLimitAction Reject` (ModSecurity's default): a body over the limit
    /// is refused with 413 instead of inspected in part.
    pub request_body_limit_reject: bool,
    /// `SecArgumentsLimit`: arguments kept per request; a body holding more sets
    /// `REQBODY_ERROR` (ModSecurity's default is 1000).
    pub argument_limit: usize,
    /// `SecRequestBodyJsonDepthLimit`: deeper JSON sets `REQBODY_ERROR`.
    pub json_depth_limit: usize,
    /// `SecResponseBodyAccess` (default off): whether response bodies are to be inspected.
    /// The engine inspects what it is given: the caller applies this.
    pub response_body_access: bool,
    /// `SecResponseBodyLimit` in bytes (default 512 KiB); like `response_body_access`, for
    /// the caller to apply.
    pub response_body_limit: usize,
    /// `SecResponseBodyMimeType`: the response types whose bodies phase 4 sees.
    pub response_body_mime_types: Vec<String>,
    /// `SecArgumentSeparator` for query strings and URL-encoded bodies.
    pub(super) argument_separator: u8,
    /// Regex selectors (`ARGS:/^id_/`), compiled once at load, case-insensitive.
    pub(super) selectors: HashMap<String, regex::bytes::Regex>,
    /// The TX names the rules use, numbered.
    pub(super) tx_names: Arc<TxNames>,
    /// Per target group (`CompiledRule::group`): the literal prefilter of its members'
    /// operators, when two or more have one.
    pub(super) group_filters: Vec<Option<GroupFilter>>,
    /// Per target group: whether a member is `multiMatch`, so that the group keeps each
    /// value as it was before the transformations too.
    pub(super) group_multi: Vec<bool>,
    /// Tests only: run the operator where a literal filter said it cannot match, and
    /// panic if it does.
    pub(super) verify_filters: bool,
    pub(super) detect_cache: DetectCache,
    /// Per phase, parallel to `phases`: what the rule loop reads first, in one compact
    /// array ([`Hot`]).
    pub(super) hot: [Vec<Hot>; 5],
    /// Rule ids by tag and by msg, for `ctl:ruleRemoveTargetByTag`/`ByMsg`: resolved once
    /// when the ctl runs, not compared against every rule evaluated afterwards.
    pub(super) ids_by_tag: HashMap<String, Vec<u32>>,
    pub(super) ids_by_msg: HashMap<String, Vec<u32>>,
    /// Rule index ([`CompiledRule::ix`]) by id, for `ctl:ruleRemoveTargetById`.
    pub(super) ix_by_id: HashMap<u64, Vec<u32>>,
    /// How many indexes there are.
    pub(super) rule_ixs: u32,
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

/// The phase a directive's actions name (`phase:`), by default the request body's.
fn phase_of(actions: &[Action]) -> Phase {
    actions
        .iter()
        .find(|a| a.name == "phase")
        .and_then(|a| a.value.as_deref())
        .and_then(Phase::parse)
        .unwrap_or(Phase::RequestBody)
}

/// The `ctl:` names a rule may use. Those not run in `actions.rs` are accepted as no-ops
/// on purpose: audit logging (`auditEngine`, `auditLogParts`) and debug output this engine
/// does not have; `forceRequestBodyVariable` (REQUEST_BODY is always set); and the body
/// access and limit switches, since the gateway's own limits decide how much is read and
/// every body read is inspected.
const CTLS: &[&str] = &[
    "ruleEngine",
    "ruleRemoveById",
    "ruleRemoveByTag",
    "ruleRemoveByMsg",
    "ruleRemoveTargetById",
    "ruleRemoveTargetByTag",
    "ruleRemoveTargetByMsg",
    "requestBodyProcessor",
    "auditEngine",
    "auditLogParts",
    "debugLogLevel",
    "forceRequestBodyVariable",
    "requestBodyAccess",
    "requestBodyLimit",
    "responseBodyAccess",
    "responseBodyLimit",
];
const CTLS_TEXT: &str = "ruleEngine, ruleRemoveById, ruleRemoveByTag, ruleRemoveByMsg, \
ruleRemoveTargetById, ruleRemoveTargetByTag, ruleRemoveTargetByMsg, requestBodyProcessor, \
auditEngine, auditLogParts, debugLogLevel, forceRequestBodyVariable, requestBodyAccess, \
requestBodyLimit, responseBodyAccess, responseBodyLimit";

fn compile_rule(
    vars: Vec<Variable>,
    op: &crate::parser::Operator,
    actions: &[Action],
    defaults: &[Action],
    dir: &Path,
    inherited_phase: Option<Phase>,
    rest: &mut std::iter::Peekable<std::slice::Iter<'_, Directive>>,
) -> Result<CompiledRule, Error> {
    let mut r = CompiledRule {
        id: 0,
        phase: inherited_phase.unwrap_or(Phase::RequestBody),
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
        ix: 0,
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
            "id" => r.id = v.parse().map_err(|_| Error::Id { value: v.clone() })?,
            "phase" => {
                r.phase = match Phase::parse(&v) {
                    Some(p) => p,
                    None if v.trim().parse::<u64>().is_ok() => {
                        return Err(Error::PhaseRange { value: v });
                    }
                    None => return Err(Error::Phase { value: v.clone() }),
                };
            }
            "t" => {
                if v.eq_ignore_ascii_case("none") {
                    r.transforms.clear();
                } else {
                    r.transforms.push(
                        by_name(&v)
                            .ok_or_else(|| Error::UnknownTransformation { name: v.clone() })?,
                    );
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
                if !CTLS.contains(&k) {
                    return Err(Error::UnknownCtl {
                        name: k.to_string(),
                        known: CTLS_TEXT,
                    });
                }
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
            other => {
                return Err(Error::UnknownAction {
                    name: other.to_string(),
                })
            }
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
            _ => return Err(Error::ChainEnd { id: r.id }),
        }
    }
    Ok(r)
}

impl Ruleset {
    /// Compile parsed directives; `data_dir` holds the `@pmFromFile` data files.
    pub fn compile(directives: &[Directive], data_dir: &Path) -> Result<Ruleset, Error> {
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
            group_multi: Vec::new(),
            verify_filters: false,
            detect_cache: DetectCache::new(),
            hot: Default::default(),
            ids_by_tag: HashMap::new(),
            ids_by_msg: HashMap::new(),
            ix_by_id: HashMap::new(),
            rule_ixs: 0,
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
                            .map_err(|e| Error::UpdateActionById {
                                id,
                                source: Box::new(e),
                            })?;
                    action_updates.entry(id).or_default().extend(actions);
                }
            }
        }
        let mut defaults: HashMap<Phase, Vec<Action>> = HashMap::new();
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
                    let phase = phase_of(actions);
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
                    .map_err(|e| Error::Rule {
                        file: file.clone(),
                        line: *line,
                        source: Box::new(e),
                    })?;
                    rs.phases[r.phase.index()].push(r);
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
                    let phase = phase_of(actions);
                    let defs = defaults.get(&phase).cloned().unwrap_or_default();
                    let vars = vec![Variable {
                        name: "REQUEST_URI".into(),
                        selector: None,
                        exclude: false,
                        count: false,
                    }];
                    let r = compile_rule(vars, &op, actions, &defs, data_dir, None, &mut it)
                        .map_err(|e| Error::Rule {
                            file: file.clone(),
                            line: *line,
                            source: Box::new(e),
                        })?;
                    rs.phases[r.phase.index()].push(r);
                }
                Directive::Marker(m) => {
                    for p in 0..5 {
                        rs.markers.insert((p, m.clone()), rs.phases[p].len());
                    }
                }
                Directive::DefaultAction(actions) => {
                    let phase = phase_of(actions);
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
                                    return Err(Error::EngineMode {
                                        mode: other.to_string(),
                                    })
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
                            rs.argument_limit = a0.parse().map_err(|_| Error::NotANumber {
                                directive: "SecArgumentsLimit",
                                value: a0.to_string(),
                            })?
                        }
                        // The JSON parser recurses: the cap keeps a configured limit from
                        // turning deep input into a stack overflow.
                        "SecRequestBodyJsonDepthLimit" => {
                            rs.json_depth_limit = a0
                                .parse::<usize>()
                                .map_err(|_| Error::NotANumber {
                                    directive: "SecRequestBodyJsonDepthLimit",
                                    value: a0.to_string(),
                                })?
                                .min(MAX_JSON_DEPTH)
                        }
                        "SecRequestBodyLimitAction" => {
                            rs.request_body_limit_reject = match a0.to_ascii_lowercase().as_str() {
                                "reject" => true,
                                "processpartial" => false,
                                other => {
                                    return Err(Error::LimitAction {
                                        value: other.to_string(),
                                    })
                                }
                            }
                        }
                        "SecResponseBodyAccess" => {
                            rs.response_body_access = a0.eq_ignore_ascii_case("on")
                        }
                        "SecResponseBodyLimit" => {
                            rs.response_body_limit = a0.parse().map_err(|_| Error::NotANumber {
                                directive: "SecResponseBodyLimit",
                                value: a0.to_string(),
                            })?
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
                                return Err(Error::ArgumentSeparator {
                                    value: a0.to_string(),
                                })
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
        rs.group_multi = vec![false; rs.group_filters.len()];
        for r in rs.phases.iter().flatten() {
            let mut link = Some(r);
            while let Some(l) = link {
                if let (Some(g), true) = (l.group, l.multi_match) {
                    rs.group_multi[g as usize] = true;
                }
                link = l.chain.as_deref();
            }
        }
        let mut ix = 0u32;
        for r in rs.phases.iter_mut().flatten() {
            let mut link = Some(&mut *r);
            while let Some(l) = link {
                l.ix = ix;
                link = l.chain.as_deref_mut();
            }
            for t in &r.tags {
                rs.ids_by_tag.entry(t.clone()).or_default().push(ix);
            }
            if let Some(m) = &r.msg {
                rs.ids_by_msg.entry(m.clone()).or_default().push(ix);
            }
            rs.ix_by_id.entry(r.id).or_default().push(ix);
            ix += 1;
        }
        rs.rule_ixs = ix;
        resolve_exclusions(&mut rs)?;
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
                                .filter(|i| m.is_match(names.names[*i as usize].as_bytes()))
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
    /// `vars` removed from the rules with id `id` (as `ctl:ruleRemoveTargetById` does), ready
    /// to apply to any transaction; `None` without a target.
    pub fn target_exclusion(&self, id: u64, vars: &[Variable]) -> Option<TargetExclusion> {
        let ixs = self.ix_by_id.get(&id).map_or(&[][..], Vec::as_slice);
        Exclusion::new(ixs.iter().copied(), vars, self.rule_ixs)
            .map(|e| TargetExclusion(Arc::new(e)))
    }

    #[doc(hidden)]
    pub fn verify_filters(&mut self) {
        self.verify_filters = true;
    }

    /// The number of rules over all phases, a chain counting as one.
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

pub(super) fn parse_range(s: &str) -> Result<(u64, u64), Error> {
    let s = s.trim().trim_matches('"');
    match s.split_once('-') {
        Some((a, b)) => Ok((
            a.trim().parse().map_err(|_| Error::IdRange {
                value: s.to_string(),
            })?,
            b.trim().parse().map_err(|_| Error::IdRange {
                value: s.to_string(),
            })?,
        )),
        None => {
            let n = s.parse().map_err(|_| Error::Id {
                value: s.to_string(),
            })?;
            Ok((n, n))
        }
    }
}

/// Turns each `ctl:ruleRemoveTarget{ById,ByTag,ByMsg}=which;targets` into the rules it
/// names and its parsed targets, once, now that every rule has its index: the rule that
/// runs it then applies a shared [`Exclusion`]. A target that does not parse is an error
/// here, where it would otherwise exclude nothing at run time.
fn resolve_exclusions(rs: &mut Ruleset) -> Result<(), Error> {
    let (by_id, by_tag, by_msg, n) = (&rs.ix_by_id, &rs.ids_by_tag, &rs.ids_by_msg, rs.rule_ixs);
    for r in rs.phases.iter_mut().flatten() {
        let id = r.id;
        let mut link = Some(&mut *r);
        while let Some(l) = link {
            for e in &mut l.effects {
                let Effect::Ctl(k, val) = e else { continue };
                let (which, target) = match k.as_str() {
                    "ruleRemoveTargetById" | "ruleRemoveTargetByTag" | "ruleRemoveTargetByMsg" => {
                        val.split_once(';').unwrap_or((val.as_str(), ""))
                    }
                    _ => continue,
                };
                let vars = crate::parser::parse_variables(target).map_err(|e| Error::Ctl {
                    id,
                    ctl: format!("{k}={val}"),
                    reason: e.to_string(),
                })?;
                let ixs: Vec<u32> = match k.as_str() {
                    "ruleRemoveTargetById" => match parse_range(which) {
                        Ok((a, b)) => by_id
                            .iter()
                            .filter(|(i, _)| (a..=b).contains(*i))
                            .flat_map(|(_, v)| v.iter().copied())
                            .collect(),
                        Err(_) => {
                            return Err(Error::Ctl {
                                id,
                                ctl: format!("{k}={val}"),
                                reason: "the rule id is not a number or a range".into(),
                            })
                        }
                    },
                    "ruleRemoveTargetByTag" => by_tag.get(which).cloned().unwrap_or_default(),
                    _ => by_msg.get(which).cloned().unwrap_or_default(),
                };
                *e = match Exclusion::new(ixs, &vars, n) {
                    Some(ex) => Effect::RemoveTargets(std::sync::Arc::new(ex)),
                    None => {
                        return Err(Error::Ctl {
                            id,
                            ctl: format!("{k}={val}"),
                            reason: "no target to remove (expected `id;VARIABLE`)".into(),
                        })
                    }
                };
            }
            link = l.chain.as_deref_mut();
        }
    }
    Ok(())
}

#[cfg(test)]
mod directive_tests {
    use super::*;
    use crate::body::json::json_text;
    use crate::engine::{Interruption, Transaction};

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
        tx.request_headers("GET", uri, "HTTP/1.1", vec![("Host".into(), b"x".to_vec())]);
        tx.run_phase(Phase::RequestHeaders);
        tx.run_phase(Phase::RequestBody);
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
        tx.request_headers(
            "GET",
            "/",
            "HTTP/1.1",
            vec![("Host".into(), b"evil".to_vec())],
        );
        tx.run_phase(Phase::RequestBody);
        assert!(tx.interruption.is_some());
        // Body limit: Reject (default) refuses with 413; ProcessPartial inspects the start.
        for (action, refused) in [("Reject", true), ("ProcessPartial", false)] {
            let rules = format!(
                "SecRuleEngine On\nSecRequestBodyLimit 8\nSecRequestBodyLimitAction {action}\n"
            );
            let d = crate::parse_str(&rules, "<test>").unwrap();
            let rs = Ruleset::compile(&d, Path::new(".")).unwrap();
            let mut tx = Transaction::new(&rs, "10.0.0.1");
            tx.request_headers("POST", "/", "HTTP/1.1", Vec::new());
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
