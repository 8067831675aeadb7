//! The WAF adapter: compiles the configured SecLang rules once per config (shared by every
//! route), and turns a route's settings into a per-request `rampart_waf` transaction.
//! No request I/O here: `proxy.rs` feeds the transaction from Pingora's phases.

use crate::snapshot::Problem;
use rampart_config::{ParsedExclusion, Route, WafConfig, WafMode};
use rampart_waf::engine::{EngineMode, Ruleset, Transaction};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

/// The compiled rules and the settings they were compiled from.
pub struct WafRt {
    pub cfg: WafConfig,
    pub ruleset: Arc<Ruleset>,
    /// The rule files (path, modified, length) at compile time: a reload recompiles only
    /// when the settings or a file changed.
    files: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

/// A route's WAF: the shared rules plus this route's mode, paranoia and exclusions.
pub struct RouteWaf {
    pub rt: Arc<WafRt>,
    pub mode: WafMode,
    pub paranoia: u8,
    pub exclusions: Vec<ParsedExclusion>,
    /// The `id;TARGET` exclusions, resolved against the rules once with the snapshot.
    targets: Vec<rampart_waf::engine::TargetExclusion>,
}

/// The CRS a config names, located on disk (`waf.crs`), or why it cannot be loaded.
fn crs_tree(cfg: &WafConfig) -> Result<Option<rampart_crs::CrsTree>, Problem> {
    let Some(crs) = &cfg.crs else { return Ok(None) };
    let found = match (&crs.version, &crs.dir) {
        (Some(v), _) => rampart_crs::CrsTree::installed(&rampart_crs::versions_dir(), v),
        (None, Some(d)) => {
            rampart_crs::CrsTree::locate(Path::new(d), crs.setup.as_deref().map(Path::new))
        }
        // Refused by the config's own validation.
        (None, None) => return Ok(None),
    };
    found
        .map(Some)
        .map_err(|e| ("waf.crs".to_string(), e.to_string()))
}

/// The rule file patterns in load order: the CRS's files, then `waf.rules`.
fn patterns(cfg: &WafConfig, crs: Option<&rampart_crs::CrsTree>) -> Vec<String> {
    crs.map(|t| t.files())
        .unwrap_or_default()
        .into_iter()
        // A CRS path holding glob characters would otherwise match something else.
        .map(|p| glob::Pattern::escape(&p.to_string_lossy()))
        .chain(cfg.rules.iter().cloned())
        .collect()
}

fn rule_files(patterns: &[String]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut out = Vec::new();
    for pattern in patterns {
        let mut paths: Vec<PathBuf> = glob::glob(pattern)
            .map(|g| g.filter_map(Result::ok).collect())
            .unwrap_or_default();
        paths.sort();
        for p in paths {
            let meta = std::fs::metadata(&p).ok();
            out.push((
                p,
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map(|m| m.len()).unwrap_or(0),
            ));
        }
    }
    out
}

/// Parse and compile the rules: the CRS, files in order, then the inline rules. Errors name
/// the rule file, line and offending text. (The snapshot goes through [`WafRt::build`].)
#[cfg(test)]
pub fn compile(cfg: &WafConfig) -> Result<Ruleset, crate::Error> {
    let crs = crs_tree(cfg).map_err(|(_, e)| crate::Error::Crs(e))?;
    compile_with(cfg, crs.as_ref())
}

fn compile_with(
    cfg: &WafConfig,
    crs: Option<&rampart_crs::CrsTree>,
) -> Result<Ruleset, crate::Error> {
    let patterns = patterns(cfg, crs);
    let refs: Vec<&str> = patterns.iter().map(String::as_str).collect();
    let mut directives = rampart_waf::parse_files(&refs).map_err(crate::Error::WafParse)?;
    if let Some(inline) = cfg.custom_rules.as_deref() {
        directives.extend(
            rampart_waf::parse_str(inline, "waf.custom_rules").map_err(crate::Error::WafParse)?,
        );
    }
    // The CRS's data files sit beside its rules, whatever is loaded after them.
    let data_dir = match (&cfg.data_dir, crs) {
        (Some(d), _) => PathBuf::from(d),
        (None, Some(t)) => t.data_dir.clone(),
        (None, None) => rule_files(&patterns)
            .last()
            .and_then(|(p, _, _)| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from(".")),
    };
    Ruleset::compile(&directives, &data_dir).map_err(crate::Error::WafCompile)
}

impl WafRt {
    /// Compile, or reuse `previous` when neither the settings nor the files changed.
    /// Problems: a pattern that matches no file (`waf.rules.N`), a rule that does not
    /// parse or compile (`waf.rules`, the message naming the file and line).
    pub fn build(
        cfg: &WafConfig,
        previous: Option<&Arc<WafRt>>,
    ) -> Result<Arc<WafRt>, Vec<Problem>> {
        let unmatched: Vec<Problem> = cfg
            .rules
            .iter()
            .enumerate()
            .filter(|(_, pattern)| !glob::glob(pattern).is_ok_and(|mut g| g.any(|p| p.is_ok())))
            .map(|(i, pattern)| {
                (
                    format!("waf.rules.{i}"),
                    format!("no file matches {pattern}"),
                )
            })
            .collect();
        if !unmatched.is_empty() {
            return Err(unmatched);
        }
        let crs = crs_tree(cfg).map_err(|p| vec![p])?;
        let files = rule_files(&patterns(cfg, crs.as_ref()));
        if let Some(p) = previous {
            if p.cfg == *cfg && p.files == files {
                return Ok(p.clone());
            }
        }
        let ruleset = compile_with(cfg, crs.as_ref())
            .map_err(|e| vec![("waf.rules".to_string(), e.to_string())])?;
        if let Some(t) = &crs {
            log::info!("waf: OWASP CRS from {}", t.dir.display());
        }
        log::info!(
            "waf: {} rules compiled from {} files",
            ruleset.rule_count(),
            files.len()
        );
        Ok(Arc::new(WafRt {
            cfg: cfg.clone(),
            ruleset: Arc::new(ruleset),
            files,
        }))
    }
}

impl RouteWaf {
    /// Route `index`'s view of the rules: `None` when it does not run the WAF. Every
    /// exclusion target must parse (`routes.N.waf.exclusions.M`).
    pub fn for_route(
        rt: Option<&Arc<WafRt>>,
        route: &Route,
        index: usize,
    ) -> Result<Option<RouteWaf>, Vec<Problem>> {
        let own = route.waf.as_ref();
        let mut exclusions = Vec::new();
        let mut targets = Vec::new();
        let mut errs = Vec::new();
        for (j, e) in own.iter().flat_map(|w| w.exclusions.iter()).enumerate() {
            // A malformed exclusion was reported by the config's own validation.
            let Ok(parsed) = e.parse() else { continue };
            if let ParsedExclusion::Target(id, t) = &parsed {
                match rampart_waf::parser::parse_variables(t) {
                    Ok(vars) => targets.push((*id, vars)),
                    Err(m) => errs.push((
                        format!("routes.{index}.waf.exclusions.{j}"),
                        format!("target {t:?}: {m}"),
                    )),
                }
            }
            exclusions.push(parsed);
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let Some(rt) = rt else { return Ok(None) };
        if own.is_some_and(|w| !w.enabled) {
            return Ok(None);
        }
        let targets = targets
            .iter()
            .filter_map(|(id, vars)| rt.ruleset.target_exclusion(*id, vars))
            .collect();
        Ok(Some(RouteWaf {
            rt: rt.clone(),
            mode: own.and_then(|w| w.mode).unwrap_or(rt.cfg.mode),
            paranoia: own.and_then(|w| w.paranoia).unwrap_or(rt.cfg.paranoia),
            exclusions,
            targets,
        }))
    }

    /// A transaction for one request, with this route's mode, paranoia, thresholds and
    /// exclusions applied before any rule runs.
    pub fn transaction(&self, client_ip: &str) -> Transaction<'static> {
        let mut tx = Transaction::new_shared(self.rt.ruleset.clone(), client_ip);
        tx.set_mode(match self.mode {
            WafMode::Block => EngineMode::On,
            WafMode::Detect => EngineMode::DetectionOnly,
        });
        // CRS only fills these in when unset, so the gateway's settings take effect unless
        // the rule files set them explicitly (crs-setup.conf's 900000/900110).
        tx.set_tx("blocking_paranoia_level", &self.paranoia.to_string());
        let t = &self.rt.cfg.anomaly_threshold;
        tx.set_tx("inbound_anomaly_score_threshold", &t.inbound.to_string());
        tx.set_tx("outbound_anomaly_score_threshold", &t.outbound.to_string());
        for e in &self.exclusions {
            match e {
                ParsedExclusion::Ids(a, b) => tx.remove_rule_ids(*a, *b),
                ParsedExclusion::Tag(t) => tx.remove_rules_by_tag(t),
                ParsedExclusion::Target(..) => {}
            }
        }
        for ex in &self.targets {
            tx.apply_target_exclusion(ex);
        }
        tx
    }

    /// Whether phase 4 sees a response with this Content-Type.
    pub fn inspects_response_type(&self, content_type: &str) -> bool {
        let cfg = &self.rt.cfg;
        if !cfg.inspect_response_body {
            return false;
        }
        let ct = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        cfg.response_mime_types
            .iter()
            .any(|m| m.eq_ignore_ascii_case(&ct))
    }
}

/// Method, request target, protocol and headers.
pub type RequestHead = (String, String, String, Vec<(String, Vec<u8>)>);

/// The request line and headers exactly as an HTTP/1 client sent them (names keep their
/// case and underscores, repeats stay repeated, order is kept): what the rules must see.
pub fn raw_head(raw: &[u8]) -> Option<RequestHead> {
    let text = raw.strip_suffix(b"\r\n\r\n").unwrap_or(raw);
    let mut lines = text
        .split(|b| *b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let first = String::from_utf8_lossy(lines.next()?).into_owned();
    let mut parts = first.splitn(3, ' ');
    let method = parts.next()?.to_string();
    let uri = parts.next()?.to_string();
    let proto = parts.next().unwrap_or("HTTP/1.1").trim().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| {
            let colon = l.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(&l[..colon]).trim().to_string();
            let value = l[colon + 1..].trim_ascii().to_vec();
            Some((name, value))
        })
        .collect();
    Some((method, uri, proto, headers))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_head_keeps_what_was_sent() {
        let raw = b"POST /a?b=1 HTTP/1.1\r\nHost: x\r\nContent-Type: a\r\ncontent-type: b\r\nX_Under: 1\r\n\r\n";
        let (m, u, p, h) = raw_head(raw).unwrap();
        assert_eq!(
            (m.as_str(), u.as_str(), p.as_str()),
            ("POST", "/a?b=1", "HTTP/1.1")
        );
        let names: Vec<&str> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["Host", "Content-Type", "content-type", "X_Under"]);
        assert_eq!(h[2].1, b"b");
    }

    #[test]
    fn exclusions_parse() {
        use rampart_config::WafExclusion as E;
        assert_eq!(
            E::Id(942100).parse(),
            Ok(ParsedExclusion::Ids(942100, 942100))
        );
        assert_eq!(
            E::Text("942100-942199".into()).parse(),
            Ok(ParsedExclusion::Ids(942100, 942199))
        );
        assert_eq!(
            E::Text("tag:attack-sqli".into()).parse(),
            Ok(ParsedExclusion::Tag("attack-sqli".into()))
        );
        assert_eq!(
            E::Text("942100;ARGS:q".into()).parse(),
            Ok(ParsedExclusion::Target(942100, "ARGS:q".into()))
        );
        assert!(E::Text("sqli".into()).parse().is_err());
        assert!(E::Text("9-1".into()).parse().is_err());
    }
}
