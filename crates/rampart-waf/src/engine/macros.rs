//! `%{...}` macros: [`Template`]s parsed once at load (`msg`, `logdata`, `setvar`, operator
//! arguments) and expanded per evaluation against the transaction.

use super::ruleset::CompiledRule;
use super::transaction::Transaction;
use super::txnames::TxName;
use super::vars::{Plan, Source};
use crate::parser::{Selector, Variable};

/// A text with `%{...}` macros (`msg`, `logdata`, `setvar`, operator arguments), split once
/// at load so that evaluation only looks values up.
#[derive(Debug, Default)]
pub(super) struct Template(pub(super) Vec<Piece>);

#[derive(Debug)]
pub(super) enum Piece {
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
    pub(super) fn compile(text: &str) -> Template {
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
    pub(super) fn literal(&self) -> Option<&str> {
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

impl Transaction<'_> {
    /// Appends `t` with its macros expanded to `out`.
    pub(super) fn render(&self, t: &Template, r: &CompiledRule, out: &mut Vec<u8>) {
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
                Piece::MatchedVarName => out.extend_from_slice(&self.matched_var.0),
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
    pub(super) fn render_text(&self, t: &Template, r: &CompiledRule) -> String {
        let mut out = Vec::new();
        self.render(t, r, &mut out);
        String::from_utf8(out).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into())
    }
}
