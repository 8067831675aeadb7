//! The per-request [`Transaction`]: its state, its inputs (request line and headers, bodies
//! parsed by `crate::body`, the response) and the setters and getters the gateway calls.

use super::actions::Exclusion;
use super::caches::{ClassMemo, DetectMemo, GroupCache, TransformCache};
use super::eval::Hits;
use super::ruleset::Ruleset;
use super::txstore::{TxKey, TxStore};
use super::vars::{Collections, Sc, Scalars};
use super::{Disruptive, EngineMode, Interruption, MatchedRule};
use crate::body::json::{json_text, serde_free_json};
use crate::body::multipart::multipart;
use crate::body::urlencoded::parse_urlencoded;
use crate::parser::Variable;
use std::borrow::Cow;
use std::sync::Arc;

/// The ruleset a transaction reads: borrowed (tests, benches) or shared by `Arc` (the
/// gateway keeps a transaction across proxy phases, so it cannot borrow).
#[derive(Clone)]
pub(super) enum RulesetRef<'r> {
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

/// A request (and its response) going through the rules.
pub struct Transaction<'r> {
    pub(super) rs: RulesetRef<'r>,
    pub(super) mode: EngineMode,
    /// Collections by upper-case name: (key, value) in order.
    pub(super) collections: Collections,
    pub(super) scalars: Scalars,
    pub(super) tx: TxStore,
    pub(super) removed_ids: Vec<(u64, u64)>,
    pub(super) removed_tags: Vec<String>,
    /// Run-time target exclusions (`ctl:ruleRemoveTarget*`, a route's), shared with the
    /// ruleset, and the union of their rule bits in `removed_bits` (empty until the
    /// first): every rule evaluation tests its bit, and only a rule with one set looks
    /// through the exclusions.
    pub(super) exclusions: Vec<Arc<Exclusion>>,
    pub(super) removed_bits: Vec<u64>,
    /// `ctl:ruleRemoveByMsg`.
    pub(super) removed_msgs: Vec<String>,
    /// `ctl:requestBodyProcessor`: the processor a rule chose, over the Content-Type's.
    pub(super) body_processor: Option<String>,
    pub(super) matched_var: (Vec<u8>, Vec<u8>),
    pub(super) matched_vars: Hits,
    /// The buffer the next rule's hits are collected in.
    pub(super) spare_hits: Hits,
    /// (value address, length, transformation chain) → the transformed value, `None` when
    /// unchanged. Only for request/response data, which does not change while a phase
    /// runs; emptied at the start of each phase. Behind a `Mutex` only to keep the
    /// transaction `Sync` (Pingora's request context must be): taken once per rule, never
    /// contended. Lending it to the rule loop instead cost 4.7% more instructions per
    /// request (callgrind), so the lock stays.
    pub(super) transform_cache: std::sync::Mutex<TransformCache>,
    /// The byte classes of this phase's request values ([`ClassMemo`]).
    pub(super) class_memo: ClassMemo,
    /// detectSQLi's and detectXSS's answers for this request's other values: JSON bodies
    /// and forms repeat short values (`EUR`, `true`, `1`). `Mutex` as above.
    pub(super) detect_memo: std::sync::Mutex<[DetectMemo; 2]>,
    /// The values of the target groups met so far in this phase.
    pub(super) groups: GroupCache,
    /// The sources holding a value in this phase ([`source_bit`](super::groups::source_bit)).
    pub(super) present: u64,
    /// A buffer `setvar` reuses.
    pub(super) scratch: Vec<u8>,
    /// The matches reported so far (rules that log), in order.
    pub matched: Vec<MatchedRule>,
    /// What stopped the request, if anything did.
    pub interruption: Option<Interruption>,
    pub(super) allowed: bool,
    /// The database `@geoLookup` asks, if the host lent one.
    pub(super) geo: Option<std::sync::Arc<dyn crate::GeoLookup>>,
}

impl Transaction<'static> {
    /// A transaction that owns a share of the ruleset, to live across async proxy phases.
    pub fn new_shared(rs: std::sync::Arc<Ruleset>, client_ip: &str) -> Transaction<'static> {
        Self::with_ruleset(RulesetRef::Shared(rs), client_ip)
    }
}

impl<'r> Transaction<'r> {
    /// A transaction borrowing `rs`, for a request from `client_ip` (`REMOTE_ADDR`).
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
            exclusions: Vec::new(),
            removed_bits: Vec::new(),
            removed_msgs: Vec::new(),
            body_processor: None,
            matched_var: Default::default(),
            matched_vars: Hits::default(),
            spare_hits: Hits::default(),
            transform_cache: Default::default(),
            class_memo: ClassMemo::default(),
            detect_memo: Default::default(),
            // Until a phase says otherwise, every source may hold values.
            present: u64::MAX,
            groups: GroupCache {
                spans: vec![(0, 0, 0); groups],
                run: 0,
                ..GroupCache::from_pool()
            },
            scratch: Vec::new(),
            matched: Vec::new(),
            interruption: None,
            allowed: false,
            geo: None,
        };
        t.scalars
            .insert(Sc::REMOTE_ADDR, client_ip.as_bytes().to_vec());
        t
    }

    /// The database `@geoLookup` asks (without one it never matches).
    pub fn set_geo(&mut self, geo: std::sync::Arc<dyn crate::GeoLookup>) {
        self.geo = Some(geo);
    }

    /// `REQUEST_URI_RAW` as sent, when `request_headers` was given the normalised URI
    /// (the form the gateway routes on and forwards).
    pub fn set_request_uri_raw(&mut self, raw: &str) {
        self.scalars
            .insert(Sc::REQUEST_URI_RAW, raw.as_bytes().to_vec());
    }

    /// The request line and headers (phase 1 input); the header list is moved in, not copied.
    pub fn request_headers(
        &mut self,
        method: &str,
        uri: &str,
        protocol: &str,
        headers: Vec<(String, Vec<u8>)>,
    ) {
        let raw_uri = uri;
        // The fragment is not part of what the server receives (ModSecurity drops it too).
        let uri = uri.split_once('#').map_or(uri, |(u, _)| u);
        let (path, query) = match uri.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (uri, None),
        };
        let decoded_path = crate::transform::Transform::UrlDecode.apply(path.as_bytes());
        // After the last `/`; a target without one (CONNECT's authority) has none.
        let basename = match decoded_path.iter().rposition(|c| *c == b'/') {
            Some(i) => decoded_path[i + 1..].to_vec(),
            None => Vec::new(),
        };
        let s = &mut self.scalars;
        s.insert(Sc::REQUEST_METHOD, method.as_bytes().to_vec());
        s.insert(Sc::REQUEST_PROTOCOL, protocol.as_bytes().to_vec());
        s.insert(Sc::REQUEST_URI, uri.as_bytes().to_vec());
        s.insert(Sc::REQUEST_URI_RAW, raw_uri.as_bytes().to_vec());
        // Defined for every request, as in ModSecurity v3 (`&REQBODY_ERROR` is 1 and the
        // value 0 until a body processor fails; the multipart flags are empty until a
        // multipart body is read).
        s.insert(Sc::REQBODY_ERROR, b"0".to_vec());
        s.insert(Sc::REQBODY_PROCESSOR_ERROR, b"0".to_vec());
        for flag in [
            Sc::MULTIPART_BOUNDARY_QUOTED,
            Sc::MULTIPART_BOUNDARY_WHITESPACE,
            Sc::MULTIPART_CRLF_LF_LINES,
            Sc::MULTIPART_DATA_AFTER,
            Sc::MULTIPART_DATA_BEFORE,
            Sc::MULTIPART_FILE_LIMIT_EXCEEDED,
            Sc::MULTIPART_HEADER_FOLDING,
            Sc::MULTIPART_INVALID_HEADER_FOLDING,
            Sc::MULTIPART_INVALID_PART,
            Sc::MULTIPART_INVALID_QUOTING,
            Sc::MULTIPART_LF_LINE,
            Sc::MULTIPART_MISSING_SEMICOLON,
            Sc::MULTIPART_STRICT_ERROR,
            Sc::MULTIPART_UNMATCHED_BOUNDARY,
            Sc::FILES_COMBINED_SIZE,
        ] {
            s.insert(flag, Vec::new());
        }
        s.insert(Sc::REQUEST_FILENAME, decoded_path);
        s.insert(Sc::REQUEST_BASENAME, basename);
        s.insert(Sc::QUERY_STRING, query.unwrap_or("").as_bytes().to_vec());
        // The request line as sent, fragment included (ModSecurity's).
        s.insert(
            Sc::REQUEST_LINE,
            format!("{method} {raw_uri} {protocol}").into_bytes(),
        );
        let mut full = format!("{method} {uri} {protocol}").len();
        // The headers move in: the gateway's copy of the request head is the WAF's.
        for (k, v) in headers {
            full += k.len() + v.len() + 4;
            if k.eq_ignore_ascii_case("cookie") {
                // Bytes as sent, names too: a cookie need not be UTF-8.
                for c in v.split(|b| *b == b';') {
                    let c = c.trim_ascii();
                    let (name, val) = match c.iter().position(|b| *b == b'=') {
                        Some(i) => (&c[..i], &c[i + 1..]),
                        None => (c, &c[c.len()..]),
                    };
                    self.push("REQUEST_COOKIES", name, val.to_vec());
                }
            }
            if let Some(items) = self.collections.get_mut("REQUEST_HEADERS") {
                items.push((k.into_bytes(), v));
            }
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
        // No body, nothing to parse: an empty JSON or multipart body is not a malformed
        // one (ModSecurity runs no processor either). Refusing it would refuse every
        // bodiless POST a client labels `application/json`.
        let ct = self
            .collections
            .get("REQUEST_HEADERS")
            .and_then(|h| {
                h.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
            })
            .map(|(_, v)| String::from_utf8_lossy(v).to_ascii_lowercase())
            .unwrap_or_default();
        // A multipart body's flags are still set (from its Content-Type): ModSecurity's
        // processor runs on an empty body too.
        if body.is_empty() && !ct.starts_with("multipart/form-data") {
            return;
        }
        // A rule's `ctl:requestBodyProcessor` stands for the Content-Type it would imply.
        let ct = match self.body_processor.as_deref() {
            Some("URLENCODED") => "application/x-www-form-urlencoded".to_string(),
            Some("MULTIPART") if ct.starts_with("multipart/form-data") => ct,
            Some("MULTIPART") => "multipart/form-data".to_string(),
            Some("XML") => "application/xml".to_string(),
            Some("JSON") => "application/json".to_string(),
            _ => ct,
        };
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
                        .find(|(k, _)| k.eq_ignore_ascii_case(b"content-type"))
                })
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            let m = multipart(&raw_ct, body);
            for (name, line) in m.part_headers {
                self.push("MULTIPART_PART_HEADERS", &name, line);
            }
            let (mut total, mut files) = (0usize, 0usize);
            for p in m.parts {
                match p.filename {
                    Some(f) => {
                        total += p.value.len();
                        files += 1;
                        self.push("FILES", &p.name, f);
                        self.push("FILES_NAMES", &p.name, p.name.clone());
                        self.push(
                            "FILES_SIZES",
                            &p.name,
                            p.value.len().to_string().into_bytes(),
                        );
                    }
                    None => self.push("ARGS_POST", &p.name, p.value),
                }
            }
            // Set by the first file part, as in ModSecurity.
            if files > 0 {
                self.scalars
                    .insert(Sc::FILES_COMBINED_SIZE, total.to_string().into_bytes());
            }
            let f = m.flags;
            let flag = |on: bool| if on { b"1".to_vec() } else { b"0".to_vec() };
            let s = &mut self.scalars;
            s.insert(Sc::MULTIPART_BOUNDARY_QUOTED, flag(f.boundary_quoted));
            s.insert(
                Sc::MULTIPART_BOUNDARY_WHITESPACE,
                flag(f.boundary_whitespace),
            );
            s.insert(Sc::MULTIPART_CRLF_LF_LINES, flag(f.crlf_line && f.lf_line));
            s.insert(Sc::MULTIPART_DATA_AFTER, flag(f.data_after));
            s.insert(Sc::MULTIPART_DATA_BEFORE, flag(f.data_before));
            // MULTIPART_FILE_LIMIT_EXCEEDED stays empty: files are never kept on disk, so
            // there is no upload limit (ModSecurity 3.0.9 never sets it either).
            s.insert(Sc::MULTIPART_HEADER_FOLDING, flag(f.header_folding));
            s.insert(
                Sc::MULTIPART_INVALID_HEADER_FOLDING,
                flag(f.invalid_header_folding),
            );
            s.insert(Sc::MULTIPART_INVALID_PART, flag(f.invalid_part));
            s.insert(Sc::MULTIPART_INVALID_QUOTING, flag(f.invalid_quoting));
            s.insert(Sc::MULTIPART_LF_LINE, flag(f.lf_line));
            s.insert(Sc::MULTIPART_MISSING_SEMICOLON, flag(f.missing_semicolon));
            s.insert(Sc::MULTIPART_STRICT_ERROR, flag(f.strict_error()));
            s.insert(
                Sc::MULTIPART_UNMATCHED_BOUNDARY,
                f.unmatched_boundary.to_string().into_bytes(),
            );
            match m.error {
                Some(e) => self.body_error(format!("Multipart parsing error: {e}")),
                None => {
                    self.scalars
                        .insert(Sc::REQBODY_PROCESSOR_ERROR, b"0".to_vec());
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
                    // an XML document is judged by its values, not its element names. CRS
                    // v4's tests expect this (v3 keeps the document there, and fails 23 of
                    // them: tests/crs-oracle-divergences.txt).
                    self.scalars.insert(Sc::REQUEST_BODY, Vec::new());
                    let items = self.collections.get_mut("XML").expect("collection");
                    items.push((b"/*".to_vec(), x.text));
                    items.extend(x.attributes.into_iter().map(|v| (b"//@*".to_vec(), v)));
                }
                Err(e) => self.body_error(format!("XML parsing error: {e}")),
            }
        } else if ct.contains("json") {
            self.scalars.insert(Sc::REQBODY_PROCESSOR, b"JSON".to_vec());
            // Backends read JSON in UTF-8, -16 or -32, with or without a BOM (RFC 8259 §8.1
            // says UTF-8, but Python's json, Jackson and .NET detect the others): the rules
            // read the same text, or the body is flagged unreadable.
            let text = match json_text(body, &ct) {
                Ok(t) => t,
                Err(e) => return self.body_error(e.to_string()),
            };
            if let std::borrow::Cow::Owned(t) = &text {
                self.scalars.insert(Sc::REQUEST_BODY, t.clone());
            }
            match serde_free_json(&text, self.rs.json_depth_limit) {
                Ok(args) => {
                    self.collections.insert("ARGS_POST", args);
                    self.limit_body_args();
                }
                Err(e) => self.body_error(e.to_string()),
            }
        }
    }

    /// A body processor failed: `REQBODY_ERROR` and `REQBODY_PROCESSOR_ERROR`, with why.
    fn body_error(&mut self, msg: String) {
        let s = &mut self.scalars;
        s.insert(Sc::REQBODY_ERROR, b"1".to_vec());
        s.insert(Sc::REQBODY_PROCESSOR_ERROR, b"1".to_vec());
        s.insert(Sc::REQBODY_PROCESSOR_ERROR_MSG, msg.clone().into_bytes());
        s.insert(Sc::REQBODY_ERROR_MSG, msg.into_bytes());
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
        self.collections.insert(
            "RESPONSE_HEADERS",
            headers
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        );
    }

    /// The response body, or the part of it within the inspection limit (phase 4 input).
    pub fn response_body(&mut self, body: &[u8]) {
        self.scalars.insert(Sc::RESPONSE_BODY, body.to_vec());
        self.scalars.insert(
            Sc::RESPONSE_CONTENT_LENGTH,
            body.len().to_string().into_bytes(),
        );
    }

    fn push(&mut self, coll: &'static str, key: &[u8], value: Vec<u8>) {
        if let Some(items) = self.collections.get_mut(coll) {
            items.push((key.to_vec(), value));
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
    pub fn remove_target(&mut self, id: u64, target: &str) -> Result<(), crate::Error> {
        let vars = crate::parser::parse_variables(target)?;
        self.remove_parsed_targets(id, &vars);
        Ok(())
    }

    /// As [`Transaction::remove_target`], with the target parsed once beforehand
    /// ([`crate::parser::parse_variables`]), e.g. when a route's settings are built.
    pub fn remove_parsed_targets(&mut self, id: u64, vars: &[Variable]) {
        if let Some(ex) = self.rs.target_exclusion(id, vars) {
            self.apply_target_exclusion(&ex);
        }
    }

    /// Applies an exclusion prepared once with [`Ruleset::target_exclusion`]: per request,
    /// a few word ORs instead of parsing and copying targets.
    pub fn apply_target_exclusion(&mut self, ex: &super::TargetExclusion) {
        self.add_exclusion(&ex.0);
    }

    /// Applies `ex` for this transaction (once: a `ctl` runs per matched target).
    pub(super) fn add_exclusion(&mut self, ex: &Arc<Exclusion>) {
        if self.exclusions.iter().any(|e| Arc::ptr_eq(e, ex)) {
            return;
        }
        if self.removed_bits.is_empty() {
            self.removed_bits = vec![0; ex.bits.len()];
        }
        for (w, b) in self.removed_bits.iter_mut().zip(&ex.bits) {
            *w |= b;
        }
        self.exclusions.push(ex.clone());
    }

    /// The run-time exclusions of rule `r`.
    pub(super) fn removed_for(&self, r: &super::ruleset::CompiledRule) -> Removed<'_> {
        removed_in(&self.removed_bits, &self.exclusions, r)
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

    /// Whether a multipart body failed strict validation: `MULTIPART_STRICT_ERROR`, or a
    /// line like the boundary that is not it (`MULTIPART_UNMATCHED_BOUNDARY` 1), which
    /// ModSecurity's recommended rules 200003 and 200004 deny. Each is a place where
    /// multipart parsers (the WAF's, the backend's) may read different parts.
    pub fn multipart_strict_error(&self) -> bool {
        let is = |sc: Sc, v: &[u8]| self.scalars.get(sc as u8).is_some_and(|x| x == v);
        is(Sc::MULTIPART_STRICT_ERROR, b"1") || is(Sc::MULTIPART_UNMATCHED_BOUNDARY, b"1")
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

    /// The value of TX variable `name` (case-insensitive), if set.
    pub fn tx(&self, name: &str) -> Option<String> {
        self.tx
            .get(&name.to_ascii_lowercase())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        self.groups.return_to_pool();
    }
}

/// A rule's run-time exclusions: the targets of the exclusions that name it.
#[derive(Clone, Copy)]
pub(super) struct Removed<'a> {
    /// Empty when no exclusion names the rule.
    exclusions: &'a [Arc<Exclusion>],
    ix: u32,
}

impl<'a> Removed<'a> {
    /// No exclusion.
    pub(super) const NONE: Removed<'static> = Removed {
        exclusions: &[],
        ix: 0,
    };

    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.exclusions.is_empty()
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = &'a Variable> + 'a {
        let ix = self.ix;
        self.exclusions
            .iter()
            .filter(move |e| e.has(ix))
            .flat_map(|e| e.vars.iter())
    }
}

/// The run-time exclusions of rule `r`, from a transaction's `removed_bits` and
/// `exclusions` (fields, so that the caller may borrow others meanwhile).
pub(super) fn removed_in<'a>(
    bits: &[u64],
    exclusions: &'a [Arc<Exclusion>],
    r: &super::ruleset::CompiledRule,
) -> Removed<'a> {
    let set = bits
        .get(r.ix as usize / 64)
        .is_some_and(|w| w & (1 << (r.ix % 64)) != 0);
    Removed {
        // The union bit is set only where some exclusion (with targets) names the rule.
        exclusions: if set { exclusions } else { &[] },
        ix: r.ix,
    }
}
