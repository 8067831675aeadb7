//! SecLang parsing: config files into directives, with file, line and the offending text in
//! every error. Unknown directives are errors, never silently skipped.

use crate::Error;
use std::path::{Path, PathBuf};

/// Why a config file or text does not parse, where, and the offending text.
#[derive(Debug, thiserror::Error)]
#[error("{file}:{line}: {error}: {text}")]
pub struct ParseError {
    /// The file being parsed, the one whose `Include` failed, or `<command line>` for a
    /// pattern given to [`parse_files`].
    pub file: String,
    /// The 1-based line (the first of a continued one); 0 when not about a line.
    pub line: usize,
    /// What is wrong.
    #[source]
    pub error: Error,
    /// The start of the offending text (bounded).
    pub text: String,
}

/// `ARGS:foo`, `!ARGS:/^x/`, `&TX:anomaly`, `REQUEST_HEADERS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variable {
    /// The variable or collection name, upper-cased (`ARGS`).
    pub name: String,
    /// `:key` or `:/regex/` after the name: which members of the collection.
    pub selector: Option<Selector>,
    /// `!VAR:key`: remove from the target list.
    pub exclude: bool,
    /// `&VAR`: the number of values instead of the values.
    pub count: bool,
}

/// Which members of a collection a [`Variable`] takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// `VAR:key`: the member named `key`; for `XML`, an XPath expression.
    Key(String),
    /// `VAR:/regex/`: the members whose name matches the regex.
    Regex(String),
}

/// `@rx ^a`, `!@eq 0`; a bare argument means `@rx`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operator {
    /// The name without `@` (`rx`).
    pub name: String,
    /// The argument, as written after the name.
    pub argument: String,
    /// `!@op`: the rule matches when the operator does not.
    pub negated: bool,
}

/// One action of a rule's action list: `name` or `name:value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Action {
    /// The action's name (`id`, `t`, `setvar`).
    pub name: String,
    /// What follows the `:`, single quotes around it removed; None for a bare action.
    pub value: Option<String>,
}

/// A `SecRule`, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The targets the operator runs on.
    pub variables: Vec<Variable>,
    /// The test run on each target value.
    pub operator: Operator,
    /// The actions, in the order written.
    pub actions: Vec<Action>,
    /// The file the rule is in.
    pub file: String,
    /// The line the rule starts on.
    pub line: usize,
}

impl Rule {
    /// The value of the rule's `id` action, if it has one that is a number.
    pub fn id(&self) -> Option<u64> {
        self.actions
            .iter()
            .find(|a| a.name == "id")
            .and_then(|a| a.value.as_deref())
            .and_then(|v| v.parse().ok())
    }
}

/// One SecLang directive, as parsed (`Include` is followed, not kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `SecRule`.
    Rule(Rule),
    /// `SecAction`: a rule that always matches.
    Action {
        /// The actions, in the order written.
        actions: Vec<Action>,
        /// The file the directive is in.
        file: String,
        /// The line the directive starts on.
        line: usize,
    },
    /// `SecMarker`: a named position in the rules, the target of `skipAfter`.
    Marker(String),
    /// `SecDefaultAction`: actions the rules of its phase inherit.
    DefaultAction(Vec<Action>),
    /// Engine settings and rule updates, kept as name + arguments for the engine to apply.
    Setting {
        /// The directive's name (`SecRuleRemoveById`).
        name: String,
        /// Its arguments, quotes removed.
        args: Vec<String>,
    },
}

/// Directives CRS v4 and its setup files use that are settings (applied by the engine).
const SETTINGS: &[&str] = &[
    "SecRuleEngine",
    "SecRequestBodyAccess",
    "SecRequestBodyLimit",
    "SecRequestBodyNoFilesLimit",
    "SecRequestBodyInMemoryLimit",
    "SecRequestBodyLimitAction",
    "SecRequestBodyJsonDepthLimit",
    "SecArgumentsLimit",
    "SecResponseBodyAccess",
    "SecResponseBodyMimeType",
    "SecResponseBodyMimeTypesClear",
    "SecResponseBodyLimit",
    "SecResponseBodyLimitAction",
    "SecComponentSignature",
    "SecRuleRemoveById",
    "SecRuleRemoveByTag",
    "SecRuleRemoveByMsg",
    "SecRuleUpdateTargetById",
    "SecRuleUpdateTargetByTag",
    "SecRuleUpdateActionById",
    "SecCollectionTimeout",
    "SecArgumentSeparator",
    "SecCookieFormat",
    "SecUnicodeMapFile",
    "SecStatusEngine",
    "SecTmpDir",
    "SecDataDir",
    "SecUploadDir",
    "SecUploadKeepFiles",
    "SecUploadFileMode",
    "SecAuditEngine",
    "SecAuditLog",
    "SecAuditLogParts",
    "SecAuditLogType",
    "SecAuditLogStorageDir",
    "SecAuditLogRelevantStatus",
    "SecAuditLogFormat",
    "SecDebugLog",
    "SecDebugLogLevel",
    "SecPcreMatchLimit",
    "SecPcreMatchLimitRecursion",
    "SecHttpBlKey",
    "SecGeoLookupDb",
    "SecServerSignature",
    "SecWebAppId",
    "SecSensorId",
];

/// Parse files in order (each may be a glob), following `Include`.
pub fn parse_files(patterns: &[&str]) -> Result<Vec<Directive>, ParseError> {
    let mut out = Vec::new();
    for p in patterns {
        for path in expand(p, "<command line>", 0)? {
            parse_file(&path, &mut out, 0)?;
        }
    }
    Ok(out)
}

fn expand(pattern: &str, from: &str, line: usize) -> Result<Vec<PathBuf>, ParseError> {
    let err = |error: Error| ParseError {
        file: from.into(),
        line,
        error,
        text: pattern.chars().take(120).collect(),
    };
    let mut paths: Vec<PathBuf> = glob::glob(pattern)
        .map_err(|e| err(Error::IncludePattern(e)))?
        .filter_map(Result::ok)
        .collect();
    paths.sort();
    if paths.is_empty() {
        return Err(err(Error::NoFileMatches));
    }
    Ok(paths)
}

fn parse_file(path: &Path, out: &mut Vec<Directive>, depth: usize) -> Result<(), ParseError> {
    let name = path.display().to_string();
    if depth > 16 {
        return Err(ParseError {
            file: name,
            line: 0,
            error: Error::IncludeDepth,
            text: String::new(),
        });
    }
    let text = std::fs::read_to_string(path).map_err(|e| ParseError {
        file: name.clone(),
        line: 0,
        error: Error::Read(e),
        text: String::new(),
    })?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    for (line, d) in logical_lines(&text) {
        let (directive, args) = split_args(&d).map_err(|error| ParseError {
            file: name.clone(),
            line,
            error,
            text: d.chars().take(120).collect(),
        })?;
        if directive.eq_ignore_ascii_case("Include") {
            let target = args.first().cloned().unwrap_or_default();
            let full = if Path::new(&target).is_relative() {
                base.join(&target).display().to_string()
            } else {
                target
            };
            for p in expand(&full, &name, line)? {
                parse_file(&p, out, depth + 1)?;
            }
            continue;
        }
        out.push(
            directive_from(&directive, args)
                .map_err(|error| ParseError {
                    file: name.clone(),
                    line,
                    error,
                    text: d.chars().take(120).collect(),
                })?
                .with_location(&name, line),
        );
    }
    Ok(())
}

/// Parse config text (no includes).
pub fn parse_str(text: &str, file: &str) -> Result<Vec<Directive>, ParseError> {
    let mut out = Vec::new();
    for (line, d) in logical_lines(text) {
        let err = |error: Error| ParseError {
            file: file.into(),
            line,
            error,
            text: d.chars().take(120).collect(),
        };
        let (directive, args) = split_args(&d).map_err(err)?;
        out.push(
            directive_from(&directive, args)
                .map_err(err)?
                .with_location(file, line),
        );
    }
    Ok(out)
}

impl Directive {
    fn with_location(mut self, file: &str, l: usize) -> Directive {
        match &mut self {
            Directive::Rule(r) => {
                r.file = file.into();
                r.line = l;
            }
            Directive::Action { file: f, line, .. } => {
                *f = file.into();
                *line = l;
            }
            _ => {}
        }
        self
    }
}

/// Comments removed, continuation lines (`\` at the end) joined; each with its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if cur.is_empty() {
            let t = line.trim_start();
            if t.is_empty() || t.starts_with('#') {
                continue;
            }
            start = i + 1;
        }
        if let Some(body) = line.strip_suffix('\\') {
            cur.push_str(body);
            continue;
        }
        cur.push_str(line);
        out.push((start, cur.trim().to_string()));
        cur.clear();
    }
    if !cur.trim().is_empty() {
        out.push((start, cur.trim().to_string()));
    }
    out
}

/// A directive's name and arguments: double-quoted (with `\"` escapes) or bare words.
fn split_args(line: &str) -> Result<(String, Vec<String>), Error> {
    let mut chars = line.chars().peekable();
    let mut words = Vec::new();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&c) = chars.peek() else { break };
        let mut w = String::new();
        if c == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.peek() {
                        Some('"') => {
                            w.push('"');
                            chars.next();
                        }
                        _ => w.push('\\'),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => w.push(c),
                }
            }
            if !closed {
                return Err(Error::UnterminatedArgument);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                w.push(c);
                chars.next();
            }
        }
        words.push(w);
    }
    if words.is_empty() {
        return Err(Error::EmptyDirective);
    }
    let name = words.remove(0);
    Ok((name, words))
}

fn directive_from(name: &str, args: Vec<String>) -> Result<Directive, Error> {
    match name {
        "SecRule" => {
            if args.len() < 2 || args.len() > 3 {
                return Err(Error::SecRuleArguments { got: args.len() });
            }
            let variables = parse_variables(&args[0])?;
            let operator = parse_operator(&args[1])?;
            let actions = match args.get(2) {
                Some(a) => parse_actions(a)?,
                None => Vec::new(),
            };
            Ok(Directive::Rule(Rule {
                variables,
                operator,
                actions,
                file: String::new(),
                line: 0,
            }))
        }
        "SecAction" => {
            let [a] = args.as_slice() else {
                return Err(Error::OneArgument {
                    directive: "SecAction",
                });
            };
            Ok(Directive::Action {
                actions: parse_actions(a)?,
                file: String::new(),
                line: 0,
            })
        }
        "SecMarker" => {
            let [m] = args.as_slice() else {
                return Err(Error::OneArgument {
                    directive: "SecMarker",
                });
            };
            Ok(Directive::Marker(m.clone()))
        }
        "SecDefaultAction" => {
            let [a] = args.as_slice() else {
                return Err(Error::OneArgument {
                    directive: "SecDefaultAction",
                });
            };
            Ok(Directive::DefaultAction(parse_actions(a)?))
        }
        n if SETTINGS.contains(&n) => Ok(Directive::Setting {
            name: n.to_string(),
            args,
        }),
        n => Err(Error::UnknownDirective {
            name: n.to_string(),
        }),
    }
}

/// `ARGS|!ARGS:foo|&TX:x|REQUEST_HEADERS:/^x-/`. Regex selectors may contain `|`.
pub fn parse_variables(s: &str) -> Result<Vec<Variable>, Error> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let (mut exclude, mut count) = (false, false);
        if let Some(r) = rest.strip_prefix('!') {
            exclude = true;
            rest = r;
        }
        if let Some(r) = rest.strip_prefix('&') {
            count = true;
            rest = r;
        }
        let name_end = rest.find([':', '|']).unwrap_or(rest.len());
        let name = rest[..name_end].trim().to_ascii_uppercase();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::VariableName {
                variables: s.to_string(),
            });
        }
        rest = &rest[name_end..];
        let mut selector = None;
        if let Some(r) = rest.strip_prefix(':') {
            if name == "XML" {
                // XPath (`/*`, `//@*`), not a regex: it runs to the next '|'.
                let end = r.find('|').unwrap_or(r.len());
                selector = Some(Selector::Key(r[..end].trim().to_string()));
                rest = &r[end..];
            } else if let Some(r2) = r.strip_prefix('/') {
                // A regex selector ends at the next unescaped '/'.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in r2.char_indices() {
                    match c {
                        '\\' if !escaped => escaped = true,
                        '/' if !escaped => {
                            end = Some(i);
                            break;
                        }
                        _ => escaped = false,
                    }
                }
                let end = end.ok_or_else(|| Error::UnterminatedSelector {
                    variables: s.to_string(),
                })?;
                selector = Some(Selector::Regex(r2[..end].to_string()));
                rest = &r2[end + 1..];
            } else {
                let end = r.find('|').unwrap_or(r.len());
                let key = r[..end].trim().trim_matches('\'');
                if key.is_empty() {
                    return Err(Error::EmptySelector {
                        variables: s.to_string(),
                    });
                }
                selector = Some(Selector::Key(key.to_string()));
                rest = &r[end..];
            }
        }
        out.push(Variable {
            name,
            selector,
            exclude,
            count,
        });
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('|') {
            rest = r.trim_start();
            if rest.is_empty() {
                return Err(Error::TrailingPipe {
                    variables: s.to_string(),
                });
            }
        } else if !rest.is_empty() {
            return Err(Error::UnexpectedInVariables {
                rest: rest.to_string(),
                variables: s.to_string(),
            });
        }
    }
    if out.is_empty() {
        return Err(Error::NoVariables);
    }
    Ok(out)
}

/// `@rx ^a`, `!@eq 0`, or a bare argument (meaning `@rx`) into an [`Operator`].
pub fn parse_operator(s: &str) -> Result<Operator, Error> {
    let (negated, rest) = match s.strip_prefix('!') {
        Some(r) => (true, r),
        None => (false, s),
    };
    match rest.strip_prefix('@') {
        Some(r) => {
            let end = r.find(char::is_whitespace).unwrap_or(r.len());
            let name = &r[..end];
            if name.is_empty() {
                return Err(Error::OperatorName {
                    operator: s.to_string(),
                });
            }
            Ok(Operator {
                name: name.to_string(),
                argument: r[end..].trim_start().to_string(),
                negated,
            })
        }
        None => Ok(Operator {
            name: "rx".into(),
            argument: rest.to_string(),
            negated,
        }),
    }
}

/// `id:1,phase:2,msg:'a, b',t:none,setvar:'tx.x=+%{tx.y}'`: commas inside single quotes do
/// not split; quotes around a value are removed.
pub fn parse_actions(s: &str) -> Result<Vec<Action>, Error> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut escaped = false;
    let mut parts = Vec::new();
    for c in s.chars() {
        if escaped {
            cur.push(c);
            escaped = false;
            continue;
        }
        match c {
            '\\' => {
                cur.push(c);
                escaped = true;
            }
            '\'' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => parts.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    if quoted {
        return Err(Error::UnterminatedActionQuote {
            actions: s.to_string(),
        });
    }
    parts.push(cur);
    for p in parts {
        let p = p.trim();
        if p.is_empty() {
            continue;
        }
        let (name, value) = match p.split_once(':') {
            Some((n, v)) => {
                let v = v.trim();
                let v = v
                    .strip_prefix('\'')
                    .and_then(|x| x.strip_suffix('\''))
                    .unwrap_or(v);
                (n.trim(), Some(v.to_string()))
            }
            None => (p, None),
        };
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(Error::ActionName {
                action: p.to_string(),
            });
        }
        out.push(Action {
            name: name.to_string(),
            value,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_with_continuations_quotes_and_selectors() {
        let text = r#"
# comment
SecRule REQUEST_HEADERS:User-Agent|!ARGS:foo|&TX:x|ARGS:/^a|b$/ "!@rx ^(?:a\"b)$" \
    "id:942100,\
    phase:2,\
    msg:'SQL Injection, detected',\
    setvar:'tx.score=+%{tx.critical_anomaly_score}',\
    t:none,t:urlDecodeUni"
SecAction "id:1,pass,nolog"
SecMarker "END-HOST-CHECK"
SecRuleEngine DetectionOnly
"#;
        let d = parse_str(text, "t.conf").unwrap();
        assert_eq!(d.len(), 4);
        let Directive::Rule(r) = &d[0] else { panic!() };
        assert_eq!(r.line, 3);
        assert_eq!(r.id(), Some(942100));
        assert_eq!(r.variables.len(), 4);
        assert!(r.variables[1].exclude);
        assert!(r.variables[2].count);
        assert_eq!(
            r.variables[3].selector,
            Some(Selector::Regex("^a|b$".into()))
        );
        assert_eq!(
            r.operator,
            Operator {
                name: "rx".into(),
                argument: "^(?:a\"b)$".into(),
                negated: true
            }
        );
        assert_eq!(
            r.actions[2].value.as_deref(),
            Some("SQL Injection, detected")
        );
        assert_eq!(
            r.actions[3].value.as_deref(),
            Some("tx.score=+%{tx.critical_anomaly_score}")
        );
    }

    #[test]
    fn errors_name_file_line_and_text() {
        let e = parse_str("\n\nSecFoo bar\n", "x.conf").unwrap_err();
        assert_eq!((e.file.as_str(), e.line), ("x.conf", 3));
        assert!(
            e.to_string()
                .contains("unknown directive SecFoo: SecFoo bar"),
            "{e}"
        );
        let e = parse_str("SecRule ARGS \"@rx a\" \"id:1,msg:'x\"", "y.conf").unwrap_err();
        assert!(
            matches!(e.error, Error::UnterminatedActionQuote { .. }),
            "{e}"
        );
        assert!(parse_str("SecRule ARGS|| \"@rx a\"", "z").is_err());
    }
}
