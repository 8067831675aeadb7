//! Why rules cannot be parsed or compiled, or a request body cannot be read.

/// The errors of `rampart-waf`. Parsing wraps them in a [`crate::ParseError`] (file, line
/// and the offending text); compiling a rule wraps them in [`Error::Rule`]. Why a JSON
/// body is unreadable is a reason (`&'static str`, `REQBODY_ERROR_MSG`), not an error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A rule file cannot be read.
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    /// An `Include` pattern that is not a valid glob.
    #[error("bad include pattern: {0}")]
    IncludePattern(#[source] glob::PatternError),
    /// An `Include` pattern (or a rule file pattern) that matches no file.
    #[error("no file matches")]
    NoFileMatches,
    /// `Include` nested beyond the depth limit.
    #[error("includes nested too deeply (a cycle?)")]
    IncludeDepth,
    /// A double-quoted argument without its closing quote.
    #[error("unterminated quoted argument")]
    UnterminatedArgument,
    /// A directive line without words.
    #[error("empty directive")]
    EmptyDirective,
    /// `SecRule` with too few or too many arguments.
    #[error("SecRule takes 2 or 3 arguments, got {got}")]
    SecRuleArguments {
        /// How many it was given.
        got: usize,
    },
    /// `SecAction`, `SecMarker` or `SecDefaultAction` without exactly one argument.
    #[error("{directive} takes 1 argument")]
    OneArgument {
        /// The directive.
        directive: &'static str,
    },
    /// A directive we do not know.
    #[error("unknown directive {name}")]
    UnknownDirective {
        /// The directive's name.
        name: String,
    },
    /// A variable name that is empty or holds other than letters, digits and `_`.
    #[error("invalid variable name in {variables:?}")]
    VariableName {
        /// The variables as written.
        variables: String,
    },
    /// A `/regex/` selector without its closing `/`.
    #[error("unterminated regex selector in {variables:?}")]
    UnterminatedSelector {
        /// The variables as written.
        variables: String,
    },
    /// `VAR:` without a key.
    #[error("empty selector in {variables:?}")]
    EmptySelector {
        /// The variables as written.
        variables: String,
    },
    /// Variables ending in `|`.
    #[error("trailing | in {variables:?}")]
    TrailingPipe {
        /// The variables as written.
        variables: String,
    },
    /// Text after a variable that is not `|`.
    #[error("unexpected {rest:?} in variables {variables:?}")]
    UnexpectedInVariables {
        /// The text from the unexpected part on.
        rest: String,
        /// The variables as written.
        variables: String,
    },
    /// No variable at all.
    #[error("no variables")]
    NoVariables,
    /// `@` without an operator name.
    #[error("missing operator name in {operator:?}")]
    OperatorName {
        /// The operator as written.
        operator: String,
    },
    /// Actions with an unclosed single quote.
    #[error("unterminated quote in actions {actions:?}")]
    UnterminatedActionQuote {
        /// The actions as written.
        actions: String,
    },
    /// An action name that is empty or holds other than letters, digits and `_`.
    #[error("invalid action {action:?}")]
    ActionName {
        /// The action as written.
        action: String,
    },
    /// A rule (`SecRule`, `SecAction`) that does not compile, with its file and line.
    #[error("{file}:{line}: {source}")]
    Rule {
        /// The file the rule is in.
        file: String,
        /// The line the rule starts on.
        line: usize,
        /// Why it does not compile.
        #[source]
        source: Box<Error>,
    },
    /// A rule id that is not a whole number.
    #[error("bad id {value:?}")]
    Id {
        /// The id as written.
        value: String,
    },
    /// A `phase` that is neither a number nor `request`, `response` or `logging`.
    #[error("bad phase {value:?}")]
    Phase {
        /// The phase as written.
        value: String,
    },
    /// A `phase` outside 1..=5.
    #[error("phase {value} out of range")]
    PhaseRange {
        /// The phase as written.
        value: String,
    },
    /// A transformation (`t:`) we do not know.
    #[error("unknown transformation {name}")]
    UnknownTransformation {
        /// The transformation's name.
        name: String,
    },
    /// An action we do not know.
    #[error("unknown action {name}")]
    UnknownAction {
        /// The action's name.
        name: String,
    },
    /// A `ctl:` this engine does not know: refused rather than ignored, since an exclusion
    /// or a body processor that silently does nothing changes what is inspected.
    #[error("unknown ctl:{name} (known: {known})")]
    UnknownCtl {
        /// The ctl's name.
        name: String,
        /// The ones this engine runs or accepts.
        known: &'static str,
    },
    /// A `ctl:ruleRemoveTarget*` whose rules or targets cannot be read: it would exclude
    /// nothing, or not what was meant.
    #[error("rule {id}: ctl:{ctl}: {reason}")]
    Ctl {
        /// The rule that carries it.
        id: u64,
        /// The ctl as written.
        ctl: String,
        /// What is wrong.
        reason: String,
    },
    /// `chain` on the last rule.
    #[error("rule {id} says chain but no SecRule follows")]
    ChainEnd {
        /// The id of the rule with `chain`.
        id: u64,
    },
    /// The actions of a `SecRuleUpdateActionById` do not parse.
    #[error("SecRuleUpdateActionById {id}: {source}")]
    UpdateActionById {
        /// The rule id the update is for.
        id: u64,
        /// Why the actions do not parse.
        #[source]
        source: Box<Error>,
    },
    /// A `SecRuleEngine` mode other than On, Off and DetectionOnly.
    #[error("SecRuleEngine: unknown mode {mode}")]
    EngineMode {
        /// The mode as written.
        mode: String,
    },
    /// A setting that takes a number given something else.
    #[error("{directive}: not a number: {value}")]
    NotANumber {
        /// The setting.
        directive: &'static str,
        /// What it was given.
        value: String,
    },
    /// A `SecRequestBodyLimitAction` other than Reject and ProcessPartial.
    #[error("SecRequestBodyLimitAction: Reject or ProcessPartial, not {value}")]
    LimitAction {
        /// The value as written.
        value: String,
    },
    /// A `SecArgumentSeparator` that is not one character.
    #[error("SecArgumentSeparator: one character expected, got {value:?}")]
    ArgumentSeparator {
        /// The value as written.
        value: String,
    },
    /// An id range (`SecRuleRemoveById 1-2`) whose ends are not whole numbers.
    #[error("bad id range {value:?}")]
    IdRange {
        /// The range as written.
        value: String,
    },
    /// A key selector's regex (`ARGS:/.../`) does not compile.
    #[error("selector /{pattern}/: {source}")]
    Selector {
        /// The regex, without its slashes.
        pattern: String,
        /// Why it does not compile.
        #[source]
        source: regex::Error,
    },
    /// An `@rx` pattern that neither regex engine accepts.
    #[error("@rx: {0}")]
    Regex(#[source] regex::Error),
    /// The `@pm` phrases cannot be built into a matcher.
    #[error("@pm: {0}")]
    Phrases(#[source] aho_corasick::BuildError),
    /// An `@pmFromFile` / `@ipMatchFromFile` data file cannot be read.
    #[error("{path}: {source}")]
    DataFile {
        /// The file's path.
        path: String,
        /// Why it cannot be read.
        #[source]
        source: std::io::Error,
    },
    /// A `@validateByteRange` range whose ends are not bytes.
    #[error("@validateByteRange: bad range {range:?}")]
    ByteRange {
        /// The range as written.
        range: String,
    },
    /// An `@ipMatch` item that is neither an address nor a CIDR.
    #[error("@ipMatch: {item:?} is not an address or CIDR")]
    IpMatch {
        /// The item as written.
        item: String,
    },
    /// An operator we do not know.
    #[error("unknown operator @{name}")]
    UnknownOperator {
        /// The operator's name, without `@`.
        name: String,
    },
    /// An XML request body that is not UTF-8.
    #[error("not UTF-8: {0}")]
    XmlUtf8(#[source] std::str::Utf8Error),
    /// An XML request body that does not parse.
    #[error("{0}")]
    Xml(#[source] roxmltree::Error),
}

#[cfg(test)]
mod tests {
    use super::Error;
    use crate::engine::{Ruleset, Transaction};
    use crate::operator::CompiledOperator;
    use crate::parser::{parse_actions, parse_operator, parse_variables, Operator};
    use crate::{parse_files, parse_str};
    use std::path::Path;

    /// The messages are what `rampart validate` prints (and `REQBODY_ERROR_MSG` holds):
    /// their wording is part of the contract.
    #[test]
    fn messages() {
        let msg = |r: Result<(), Error>| r.unwrap_err().to_string();
        let parse = |text: &str| parse_str(text, "t.conf").map(drop).unwrap_err().to_string();
        assert_eq!(
            parse("\n\nSecFoo bar\n"),
            "t.conf:3: unknown directive SecFoo: SecFoo bar"
        );
        assert_eq!(
            parse("SecRule ARGS \"@rx a"),
            "t.conf:1: unterminated quoted argument: SecRule ARGS \"@rx a"
        );
        assert_eq!(
            parse("SecRule ARGS"),
            "t.conf:1: SecRule takes 2 or 3 arguments, got 1: SecRule ARGS"
        );
        assert_eq!(
            parse("SecMarker a b"),
            "t.conf:1: SecMarker takes 1 argument: SecMarker a b"
        );
        assert_eq!(
            msg(parse_variables("AR-GS").map(drop)),
            "invalid variable name in \"AR-GS\""
        );
        assert_eq!(
            msg(parse_variables("ARGS:/^a").map(drop)),
            "unterminated regex selector in \"ARGS:/^a\""
        );
        assert_eq!(
            msg(parse_variables("ARGS:''").map(drop)),
            "empty selector in \"ARGS:''\""
        );
        assert_eq!(
            msg(parse_variables("ARGS|").map(drop)),
            "trailing | in \"ARGS|\""
        );
        assert_eq!(
            msg(parse_variables("ARGS:/a/x").map(drop)),
            "unexpected \"x\" in variables \"ARGS:/a/x\""
        );
        assert_eq!(msg(parse_variables(" ").map(drop)), "no variables");
        assert_eq!(
            msg(parse_operator("@ a").map(drop)),
            "missing operator name in \"@ a\""
        );
        assert_eq!(
            msg(parse_actions("id:1,msg:'x").map(drop)),
            "unterminated quote in actions \"id:1,msg:'x\""
        );
        assert_eq!(
            msg(parse_actions("id:1,b-c").map(drop)),
            "invalid action \"b-c\""
        );
        let e = parse_files(&["/nonexistent/rampart-waf/*.conf"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "<command line>:0: no file matches: /nonexistent/rampart-waf/*.conf"
        );

        let compile = |text: &str| {
            let d = parse_str(text, "c.conf").unwrap();
            Ruleset::compile(&d, Path::new("."))
                .map(drop)
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            compile("SecRule ARGS \"@rx a\" \"id:x\""),
            "c.conf:1: bad id \"x\""
        );
        assert_eq!(
            compile("\nSecAction \"id:1,phase:9\""),
            "c.conf:2: phase 9 out of range"
        );
        assert_eq!(
            compile("SecRule ARGS \"@rx a\" \"id:1,phase:x\""),
            "c.conf:1: bad phase \"x\""
        );
        assert_eq!(
            compile("SecRule ARGS \"@rx a\" \"id:1,t:nope\""),
            "c.conf:1: unknown transformation nope"
        );
        assert_eq!(
            compile("SecRule ARGS \"@rx a\" \"id:1,frobnicate\""),
            "c.conf:1: unknown action frobnicate"
        );
        assert_eq!(
            compile("SecRule ARGS \"@rx a\" \"id:7,chain\""),
            "c.conf:1: rule 7 says chain but no SecRule follows"
        );
        assert_eq!(
            compile("SecRule ARGS \"@bogusOperator a\" \"id:1\""),
            "c.conf:1: unknown operator @bogusOperator"
        );
        assert!(compile("SecRule ARGS \"@rx (\" \"id:1\"").starts_with("c.conf:1: @rx: "));
        assert_eq!(
            compile("SecRuleUpdateActionById 1 \"a,'\""),
            "SecRuleUpdateActionById 1: unterminated quote in actions \"a,'\""
        );
        assert_eq!(
            compile("SecRuleEngine Maybe"),
            "SecRuleEngine: unknown mode maybe"
        );
        assert_eq!(
            compile("SecArgumentsLimit x"),
            "SecArgumentsLimit: not a number: x"
        );
        assert_eq!(
            compile("SecRequestBodyLimitAction Drop"),
            "SecRequestBodyLimitAction: Reject or ProcessPartial, not drop"
        );
        assert_eq!(
            compile("SecArgumentSeparator ;;"),
            "SecArgumentSeparator: one character expected, got \";;\""
        );
        assert_eq!(compile("SecRuleRemoveById 1-x"), "bad id range \"1-x\"");
        assert_eq!(compile("SecRuleRemoveById x"), "bad id \"x\"");
        assert!(
            compile("SecRule ARGS:/(/ \"@rx a\" \"id:1\"").starts_with("selector /(/: "),
            "selector"
        );

        let op = |name: &str, argument: &str| {
            let op = Operator {
                name: name.into(),
                argument: argument.into(),
                negated: false,
            };
            msg(CompiledOperator::compile(&op, Path::new("/nonexistent")).map(drop))
        };
        assert_eq!(
            op("validateByteRange", "1-300"),
            "@validateByteRange: bad range \"1-300\""
        );
        assert_eq!(
            op("ipMatch", "10.0.0.1,nope"),
            "@ipMatch: \"nope\" is not an address or CIDR"
        );
        assert!(op("pmFromFile", "x.data").starts_with("/nonexistent/x.data: "));

        let rs = Ruleset::compile(
            &parse_str("SecRuleEngine On\n", "t").unwrap(),
            Path::new("."),
        )
        .unwrap();
        let mut tx = Transaction::new(&rs, "127.0.0.1");
        assert_eq!(msg(tx.remove_target(1, "ARGS|")), "trailing | in \"ARGS|\"");
        assert!(msg(crate::xml::parse(b"\xff").map(drop)).starts_with("not UTF-8: "));
        assert!(crate::xml::parse(b"<a><b></a>").is_err());
    }
}
