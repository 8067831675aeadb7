//! Path templates (`/repos/{owner}/{repo}`): which one a request path is, and its
//! parameters. A concrete segment wins over a parameter at the same place (OpenAPI: "when
//! matching URLs, concrete (non-templated) paths would be matched before their templated
//! counterparts").

use percent_encoding::percent_decode_str;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Lit(String),
    Param(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    /// Parameters, possibly several, possibly inside fixed text (`{id}.json`,
    /// `{base}...{head}`).
    Mixed(Vec<Part>),
}

/// One compiled template.
#[derive(Debug, Clone)]
pub(crate) struct Template {
    pub text: String,
    segs: Vec<Seg>,
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, String> {
        if !text.starts_with('/') {
            return Err("a path must start with /".into());
        }
        let mut segs = Vec::new();
        for raw in text[1..].split('/') {
            if !raw.contains(['{', '}']) {
                segs.push(Seg::Lit(decode(raw).unwrap_or_else(|| raw.to_string())));
                continue;
            }
            let mut parts = Vec::new();
            let mut rest = raw;
            while !rest.is_empty() {
                match rest.find('{') {
                    Some(0) => {
                        let end = rest.find('}').ok_or(format!("unclosed {{ in {raw:?}"))?;
                        let name = &rest[1..end];
                        if name.is_empty() || name.contains('{') {
                            return Err(format!("unsupported path segment {raw:?}"));
                        }
                        if matches!(parts.last(), Some(Part::Param(_))) {
                            // `{a}{b}` cannot be split.
                            return Err(format!("unsupported path segment {raw:?}"));
                        }
                        parts.push(Part::Param(name.to_string()));
                        rest = &rest[end + 1..];
                    }
                    at => {
                        let end = at.unwrap_or(rest.len());
                        if rest[..end].contains('}') {
                            return Err(format!("unsupported path segment {raw:?}"));
                        }
                        parts.push(Part::Lit(rest[..end].to_string()));
                        rest = &rest[end..];
                    }
                }
            }
            segs.push(Seg::Mixed(parts));
        }
        Ok(Template {
            text: text.to_string(),
            segs,
        })
    }

    /// The parameter names, in order.
    pub fn params(&self) -> impl Iterator<Item = &str> {
        self.segs.iter().flat_map(|s| match s {
            Seg::Mixed(parts) => parts
                .iter()
                .filter_map(|p| match p {
                    Part::Param(n) => Some(n.as_str()),
                    Part::Lit(_) => None,
                })
                .collect::<Vec<_>>(),
            Seg::Lit(_) => Vec::new(),
        })
    }

    /// The parameters of a path (its segments, percent-decoded) if it is this template.
    pub fn matches<S: AsRef<str>>(&self, segments: &[S]) -> Option<Vec<(String, String)>> {
        if segments.len() != self.segs.len() {
            return None;
        }
        let mut params = Vec::new();
        for (seg, got) in self.segs.iter().zip(segments) {
            let got = got.as_ref();
            match seg {
                Seg::Lit(l) => {
                    if l != got {
                        return None;
                    }
                }
                Seg::Mixed(parts) => {
                    if !match_parts(parts, got, &mut params) {
                        return None;
                    }
                }
            }
        }
        Some(params)
    }

    /// How concrete the template is, position by position (greater wins).
    pub fn rank(&self) -> Vec<u8> {
        self.segs
            .iter()
            .map(|s| match s {
                Seg::Lit(_) => 2,
                Seg::Mixed(parts) if parts.iter().any(|p| matches!(p, Part::Lit(_))) => 1,
                Seg::Mixed(_) => 0,
            })
            .collect()
    }
}

/// Matches `text` against literal and parameter parts; a parameter takes the shortest
/// non-empty text after which the rest matches.
fn match_parts(parts: &[Part], text: &str, params: &mut Vec<(String, String)>) -> bool {
    match parts.split_first() {
        None => text.is_empty(),
        Some((Part::Lit(l), rest)) => text
            .strip_prefix(l.as_str())
            .is_some_and(|t| match_parts(rest, t, params)),
        Some((Part::Param(name), rest)) => {
            if rest.is_empty() {
                if text.is_empty() {
                    return false;
                }
                params.push((name.clone(), text.to_string()));
                return true;
            }
            for (i, _) in text.char_indices().skip(1).chain([(text.len(), ' ')]) {
                let mark = params.len();
                params.push((name.clone(), text[..i].to_string()));
                if match_parts(rest, &text[i..], params) {
                    return true;
                }
                params.truncate(mark);
            }
            false
        }
    }
}

/// Percent-decoded text; `None` when it is not UTF-8 once decoded.
pub(crate) fn decode(s: &str) -> Option<String> {
    percent_decode_str(s)
        .decode_utf8()
        .ok()
        .map(|c| c.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_match_and_rank() {
        let t = Template::parse("/repos/{owner}/{repo}/tarball/{ref}.tar").unwrap();
        let segs = ["repos", "octo", "hello world", "tarball", "v1.tar"];
        assert_eq!(
            t.matches(&segs).unwrap(),
            [
                ("owner".to_string(), "octo".to_string()),
                ("repo".into(), "hello world".into()),
                ("ref".into(), "v1".into())
            ]
        );
        assert!(t.matches(&["repos", "o", "r", "tarball", ".tar"]).is_none());
        assert!(t
            .matches(&["repos", "o", "r", "zipball", "v1.tar"])
            .is_none());
        let me = Template::parse("/users/me").unwrap();
        let id = Template::parse("/users/{id}").unwrap();
        assert!(me.rank() > id.rank());
        assert!(Template::parse("users").is_err());
        assert!(Template::parse("/a/{b}{c}").is_err());
        let cmp = Template::parse("/compare/{base}...{head}").unwrap();
        assert_eq!(
            cmp.matches(&["compare", "main...dev"]).unwrap(),
            [
                ("base".to_string(), "main".to_string()),
                ("head".into(), "dev".into())
            ]
        );
        assert!(cmp.matches(&["compare", "main..dev"]).is_none());
        assert_eq!(cmp.params().collect::<Vec<_>>(), ["base", "head"]);
    }
}
