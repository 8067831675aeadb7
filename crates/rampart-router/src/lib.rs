//! Route matching, free of any HTTP library: most specific host, then longest path, then method.
//!
//! Host specificity: an exact host beats a wildcard (`*.example.test`, longer suffix wins),
//! which beats a route with no `hosts` (any host). Path: an exact path (`=/x`) beats any
//! prefix; longer prefixes beat shorter ones. Prefixes match on segment boundaries, so
//! `/api/items` matches `/api/items` and `/api/items/7` but not `/api/itemsX`.
//! When the best host+path candidates exist but none allows the method, the answer is
//! "method not allowed" with the methods they do allow.
//! Paths are matched in their canonical form ([`canonical_path`]).

mod canonical;
pub use canonical::{canonical_path, PathError, PathPolicy};

/// What a route declares, as far as matching is concerned.
#[derive(Debug, Clone, Default)]
pub struct RouteSpec {
    /// Exact host names or `*.suffix` wildcards; empty = any host.
    pub hosts: Vec<String>,
    /// Prefixes, or `=`-prefixed exact paths.
    pub paths: Vec<String>,
    /// Allowed methods; empty = any.
    pub methods: Vec<String>,
}

/// The result of a lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    /// Index of the matched route in the list given to [`Router::new`], and the path
    /// prefix that matched (for strip_prefix).
    Route {
        /// Position in the list given to [`Router::new`].
        index: usize,
        /// The route path that matched, without a leading `=`.
        prefix: String,
    },
    /// No route matches host and path.
    NotFound,
    /// The path matched but the method did not: these methods would have been accepted.
    MethodNotAllowed {
        /// Allowed methods of the best matching routes (for `Allow`).
        allow: Vec<String>,
    },
}

#[derive(Debug)]
struct Entry {
    route: usize,
    host: HostPattern,
    path: PathPattern,
    methods: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Exact(String),
    /// Suffix including the leading dot: `*.example.test` → `.example.test`.
    Wildcard(String),
}

impl HostPattern {
    fn score(&self) -> usize {
        match self {
            HostPattern::Any => 0,
            HostPattern::Wildcard(s) => 1 + s.len(),
            HostPattern::Exact(_) => usize::MAX,
        }
    }
    fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Any => true,
            HostPattern::Exact(h) => h == host,
            HostPattern::Wildcard(suffix) => {
                host.len() > suffix.len() && host.ends_with(suffix.as_str())
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum PathPattern {
    Exact(String),
    Prefix(String),
}

impl PathPattern {
    fn score(&self) -> usize {
        match self {
            PathPattern::Exact(_) => usize::MAX,
            PathPattern::Prefix(p) => p.len(),
        }
    }
    fn matches(&self, path: &str) -> bool {
        match self {
            PathPattern::Exact(p) => p == path,
            PathPattern::Prefix(p) => {
                if p.ends_with('/') {
                    path.starts_with(p.as_str())
                } else {
                    path.starts_with(p.as_str())
                        && (path.len() == p.len() || path.as_bytes()[p.len()] == b'/')
                }
            }
        }
    }
    fn text(&self) -> &str {
        match self {
            PathPattern::Exact(p) | PathPattern::Prefix(p) => p,
        }
    }
}

/// An immutable routing table.
#[derive(Debug, Default)]
pub struct Router {
    entries: Vec<Entry>,
}

impl Router {
    /// Builds the table, most specific entries first (config order among equals).
    pub fn new(routes: &[RouteSpec]) -> Router {
        let mut entries = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            let hosts: Vec<HostPattern> = if r.hosts.is_empty() {
                vec![HostPattern::Any]
            } else {
                r.hosts
                    .iter()
                    .map(|h| {
                        let h = h.to_ascii_lowercase();
                        match h.strip_prefix('*') {
                            Some(suffix) => HostPattern::Wildcard(suffix.to_string()),
                            None => HostPattern::Exact(h),
                        }
                    })
                    .collect()
            };
            for h in &hosts {
                for p in &r.paths {
                    let path = match p.strip_prefix('=') {
                        Some(x) => PathPattern::Exact(x.to_string()),
                        None => PathPattern::Prefix(p.clone()),
                    };
                    entries.push(Entry {
                        route: i,
                        host: h.clone(),
                        path,
                        methods: r.methods.clone(),
                    });
                }
            }
        }
        // Most specific first; a stable sort keeps config order among equals.
        entries.sort_by(|a, b| {
            (b.host.score(), b.path.score()).cmp(&(a.host.score(), a.path.score()))
        });
        Router { entries }
    }

    /// `host` without port, any case; `path` without query string.
    pub fn find(&self, host: &str, path: &str, method: &str) -> Match {
        let host = normalize_host(host);
        let mut best: Option<(usize, usize)> = None;
        let mut allow: Vec<String> = Vec::new();
        for e in &self.entries {
            let score = (e.host.score(), e.path.score());
            if let Some(b) = best {
                if score < b {
                    break;
                }
            }
            if !e.host.matches(&host) || !e.path.matches(path) {
                continue;
            }
            best = Some(score);
            if e.methods.is_empty() || e.methods.iter().any(|m| m == method) {
                return Match::Route {
                    index: e.route,
                    prefix: e.path.text().to_string(),
                };
            }
            for m in &e.methods {
                if !allow.contains(m) {
                    allow.push(m.clone());
                }
            }
        }
        if best.is_some() {
            Match::MethodNotAllowed { allow }
        } else {
            Match::NotFound
        }
    }
}

/// Lower-case, without port and trailing dot; IPv6 literals keep their brackets.
pub fn normalize_host(host: &str) -> String {
    let h = if host.starts_with('[') {
        match host.find(']') {
            Some(i) => &host[..=i],
            None => host,
        }
    } else {
        host.rsplit_once(':').map(|(h, _)| h).unwrap_or(host)
    };
    h.trim_end_matches('.').to_ascii_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(hosts: &[&str], paths: &[&str], methods: &[&str]) -> RouteSpec {
        RouteSpec {
            hosts: hosts.iter().map(|s| s.to_string()).collect(),
            paths: paths.iter().map(|s| s.to_string()).collect(),
            methods: methods.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn idx(m: Match) -> usize {
        match m {
            Match::Route { index, .. } => index,
            other => panic!("expected a route, got {other:?}"),
        }
    }

    #[test]
    fn host_specificity_then_path_length() {
        let r = Router::new(&[
            spec(&[], &["/"], &[]),
            spec(&["*.example.test"], &["/api"], &[]),
            spec(&["api.example.test"], &["/api"], &[]),
            spec(&[], &["/api/items"], &[]),
            spec(&["*.b.example.test"], &["/api"], &[]),
        ]);
        assert_eq!(idx(r.find("api.example.test:8080", "/api/x", "GET")), 2);
        assert_eq!(idx(r.find("other.example.test", "/api/x", "GET")), 1);
        assert_eq!(idx(r.find("x.b.example.test", "/api/x", "GET")), 4);
        assert_eq!(idx(r.find("API.EXAMPLE.TEST", "/api", "GET")), 2);
        // The wildcard does not match the bare domain.
        assert_eq!(idx(r.find("example.test", "/api/items/1", "GET")), 3);
        assert_eq!(idx(r.find("nothing", "/zzz", "GET")), 0);
    }

    #[test]
    fn prefix_on_segment_boundary_and_exact() {
        let r = Router::new(&[
            spec(&[], &["/api/items"], &[]),
            spec(&[], &["=/api/items"], &[]),
        ]);
        assert_eq!(idx(r.find("h", "/api/items", "GET")), 1);
        assert_eq!(idx(r.find("h", "/api/items/7", "GET")), 0);
        assert_eq!(r.find("h", "/api/itemsX", "GET"), Match::NotFound);
        assert_eq!(r.find("h", "/api", "GET"), Match::NotFound);
    }

    #[test]
    fn method_not_allowed_lists_allowed_methods() {
        let r = Router::new(&[
            spec(&[], &["/api/items"], &["GET", "POST"]),
            spec(&[], &["/api/items"], &["DELETE"]),
            spec(&[], &["/"], &[]),
        ]);
        assert_eq!(idx(r.find("h", "/api/items", "DELETE")), 1);
        assert_eq!(
            r.find("h", "/api/items", "PUT"),
            Match::MethodNotAllowed {
                allow: vec!["GET".into(), "POST".into(), "DELETE".into()]
            }
        );
    }

    #[test]
    fn hosts_normalized() {
        assert_eq!(normalize_host("Example.Test:443"), "example.test");
        assert_eq!(normalize_host("[::1]:8080"), "[::1]");
        assert_eq!(normalize_host("a.test."), "a.test");
    }
}
