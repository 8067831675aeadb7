use super::*;
use std::collections::HashMap;

fn rules(yaml: &str) -> Vec<Rule> {
    serde_yaml::from_str(yaml).unwrap()
}

fn known() -> Known<'static> {
    Known {
        upstreams: &|u| u == "beta" || u == "main",
        lists: &|l| l == "office",
        consumers: &|c| c == "alice" || c == "bob",
        countries: true,
    }
}

fn compile(yaml: &str) -> RuleSet {
    RuleSet::compile(&rules(yaml), &known()).unwrap()
}

fn errors(yaml: &str) -> Vec<String> {
    RuleSet::compile(&rules(yaml), &known())
        .unwrap_err()
        .into_iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect()
}

struct Req {
    method: &'static str,
    path: &'static str,
    query: Option<&'static str>,
    headers: HashMap<&'static str, Vec<&'static [u8]>>,
    ip: Option<IpAddr>,
    country: Option<[u8; 2]>,
    consumer: Option<&'static str>,
    groups: Vec<String>,
    bot: Option<BotVerdict>,
}

impl Req {
    fn get(path: &'static str) -> Req {
        Req {
            method: "GET",
            path,
            query: None,
            headers: HashMap::new(),
            ip: Some("192.0.2.7".parse().unwrap()),
            country: None,
            consumer: None,
            groups: Vec::new(),
            bot: None,
        }
    }

    fn header(mut self, k: &'static str, v: &'static str) -> Req {
        self.headers.entry(k).or_default().push(v.as_bytes());
        self
    }

    fn eval<'r>(&self, set: &'r RuleSet) -> Result<Outcome<'r>, Ambiguous> {
        let header = |n: &str| self.headers.get(n).cloned().unwrap_or_default();
        let in_list = |l: &str| l == "office" && self.ip == Some("10.1.2.3".parse().unwrap());
        set.evaluate(&Request {
            method: self.method,
            path: self.path,
            query: self.query,
            header: &header,
            client_ip: self.ip,
            in_list: &in_list,
            country: self.country,
            consumer: self.consumer,
            groups: &self.groups,
            bot: self.bot,
        })
    }
}

#[test]
fn conditions_are_typed_and_all_must_hold() {
    let set = compile(
        r#"
- name: beta
  if:
    path: { prefix: /api }
    methods: [GET]
    headers: [{ name: X-Beta, equals: "1" }]
    query: [{ name: v, one_of: ["2", "3"] }]
  then: { upstream: beta }
"#,
    );
    let mut r = Req::get("/api/items").header("x-beta", "1");
    r.query = Some("v=2&x=1");
    assert_eq!(r.eval(&set).unwrap().upstream, Some("beta"));
    // Each condition alone failing:
    for (path, method, beta, query) in [
        ("/apis", "GET", "1", "v=2"),
        ("/api", "POST", "1", "v=2"),
        ("/api", "GET", "0", "v=2"),
        ("/api", "GET", "1", "v=4"),
        ("/api", "GET", "1", "w=2"),
    ] {
        let mut r = Req::get(path).header("x-beta", beta);
        r.method = method;
        r.query = Some(query);
        assert_eq!(r.eval(&set).unwrap(), Outcome::default(), "{path} {method}");
    }
    // Decoded query names and values: `%76=%32` is `v=2`, `+` a space.
    let mut r = Req::get("/api").header("x-beta", "1");
    r.query = Some("%76=%32");
    assert_eq!(r.eval(&set).unwrap().upstream, Some("beta"));
}

#[test]
fn what_could_be_read_two_ways_is_refused() {
    let set = compile(
        r#"
- if: { headers: [{ name: X-Tier, equals: gold }], query: [{ name: plan, regex: "^pro$" }] }
  then: { upstream: beta }
- if: { headers: [{ name: X-Debug, present: true }] }
  then: { respond: { status: 404 } }
"#,
    );
    let r = Req::get("/")
        .header("x-tier", "gold")
        .header("x-tier", "free");
    assert_eq!(r.eval(&set), Err(Ambiguous { what: "header" }));
    let mut r = Req::get("/").header("x-tier", "gold");
    r.query = Some("plan=pro&plan=free");
    assert_eq!(
        r.eval(&set),
        Err(Ambiguous {
            what: "query parameter"
        })
    );
    // Encoded twice is twice.
    r.query = Some("plan=pro&pl%61n=free");
    assert_eq!(
        r.eval(&set),
        Err(Ambiguous {
            what: "query parameter"
        })
    );
    // Presence does not depend on which value.
    let r = Req::get("/").header("x-debug", "a").header("x-debug", "b");
    assert!(matches!(
        r.eval(&set).unwrap().answer,
        Some(Answer::Respond { status: 404, .. })
    ));
    // Not UTF-8: matches no text.
    let mut r = Req::get("/");
    r.headers.insert("x-tier", vec![b"gol\xffd"]);
    r.query = Some("plan=pro");
    assert_eq!(r.eval(&set).unwrap().upstream, None);
}

#[test]
fn who_and_where_conditions() {
    let set = compile(
        r#"
- name: office
  if: { networks: [office] }
  then: { request_headers: { set: { X-Office: "yes" } } }
- name: net
  if: { client_ip: ["192.0.2.0/24"] }
  unless: { countries: [DE] }
  then: { response_headers: { add: { X-Net: "1" } } }
- name: people
  if: { consumers: [alice], groups: [staff] }
  then: { upstream: beta }
- name: bots
  if: { bots: [automated, bad_bot] }
  then: { respond: { status: 403, body: "no", content_type: text/plain } }
"#,
    );
    let mut r = Req::get("/");
    assert_eq!(r.eval(&set).unwrap().applied, vec!["net"]);
    r.country = Some(*b"DE");
    assert!(r.eval(&set).unwrap().applied.is_empty());
    r.ip = Some("10.1.2.3".parse().unwrap());
    assert_eq!(r.eval(&set).unwrap().applied, vec!["office"]);
    r.consumer = Some("alice");
    r.groups = vec!["staff".into()];
    let o = r.eval(&set).unwrap();
    assert_eq!(o.applied, vec!["office", "people"]);
    assert_eq!(o.upstream, Some("beta"));
    r.groups = vec!["other".into()];
    assert_eq!(r.eval(&set).unwrap().upstream, None);
    r.bot = Some(BotVerdict::Automated);
    let o = r.eval(&set).unwrap();
    assert_eq!(o.applied, vec!["office", "bots"]);
    assert!(o.answer.is_some());
    r.ip = None;
    r.bot = Some(BotVerdict::Human);
    assert!(r.eval(&set).unwrap().applied.is_empty());
}

#[test]
fn actions_accumulate_and_answers_end_the_rules() {
    let set = compile(
        r#"
- if: { path: { prefix: /v1 } }
  then:
    rewrite: { prefix: /v1, to: /internal/v2 }
    request_headers: { remove: [X-Old], set: { X-Version: "1" } }
- if: { path: { exact: /v1/gone } }
  then:
    redirect: { location: "https://new.example.test/gone", status: 308 }
    response_headers: { set: { Cache-Control: no-store } }
- then: { response_headers: { add: { X-Never: "1" } } }
"#,
    );
    let o = Req::get("/v1/items/7").eval(&set).unwrap();
    assert_eq!(o.path.as_deref(), Some("/internal/v2/items/7"));
    assert_eq!(o.request_headers.len(), 1);
    assert_eq!(o.response_headers.len(), 1, "only the last rule's");
    let o = Req::get("/v1/gone").eval(&set).unwrap();
    assert_eq!(
        o.answer,
        Some(&Answer::Redirect {
            location: "https://new.example.test/gone".into(),
            status: 308
        })
    );
    assert_eq!(o.response_headers[0].set[0].0, "cache-control");
    assert_eq!(o.applied.len(), 2, "the third rule never ran");
    // Prefixes match on segment boundaries, and rewrites keep the rest.
    assert_eq!(rewrite("/v1", Some("/v1"), "/x"), "/x");
    assert_eq!(rewrite("/v1/a", Some("/v1"), "/x/"), "/x/a");
    assert_eq!(rewrite("/v1/a", Some("/v1/"), "/x"), "/x/a");
    assert_eq!(rewrite("/v1/a", None, "/fixed"), "/fixed");
    assert_eq!(rewrite("/v10", Some("/v1"), "/x"), "/v10");
    assert!(under("/a/b", "/a") && under("/a", "/a") && !under("/ab", "/a"));
}

#[test]
fn mistakes_are_located() {
    let e = errors(
        r#"
- if:
    path: { prefix: /a, regex: "x" }
    methods: [get]
    headers: [{ name: X_Under, equals: a }, { name: X-Two, equals: a, present: true }, { name: X-Consumer-Id, equals: admin }]
    query: [{ name: q, regex: "(" }]
    client_ip: [10.0.0.0/33]
    networks: [nowhere]
    countries: [de]
    consumers: [mallory]
    bots: [robot]
  then: { upstream: missing }
- if: { path: { prefix: "/a/../b" } }
  then:
    redirect: { location: "//evil.test", status: 200 }
    respond: { status: 99, content_type: "x" }
    rewrite: { to: "relative" }
- then:
    request_headers: { set: { Host: evil.test, X-Forwarded-For: 1.2.3.4, "X-Bad": "a\u0001" } }
    response_headers: { remove: [Access-Control-Allow-Origin, Strict-Transport-Security, Vary] }
- then: { respond: { status: 304, body: "x" } }
- then: {}
"#,
    );
    let joined = e.join("\n");
    for needle in [
        "0.if.path: give exactly one",
        "0.if.methods.0",
        "0.if.headers.0.name",
        "0.if.headers.1: give exactly one",
        "0.if.headers.2.name: `X-Consumer-Id` is what the client claims",
        "0.if.query.0.regex",
        "0.if.client_ip",
        "0.if.networks.0",
        "0.if.countries.0",
        "0.if.consumers.0",
        "0.if.bots.0",
        "0.then.upstream",
        "1.if.path",
        "1.then: redirect and respond",
        "1.then: a rule that answers",
        "1.then.rewrite.to",
        "1.then.redirect.status",
        "1.then.redirect.location",
        "1.then.respond.status",
        "1.then.respond.content_type",
        "2.then.request_headers.set.Host",
        "2.then.request_headers.set.X-Forwarded-For",
        "2.then.request_headers.X-Bad",
        "2.then.response_headers.remove.0",
        "2.then.response_headers.remove.1",
        "2.then.response_headers.remove.2",
        "3.then.respond.body: a 304 answer has no body",
        "4.then: the rule does nothing",
    ] {
        assert!(joined.contains(needle), "missing {needle}:\n{joined}");
    }
    // Countries without a database.
    let no_geo = Known {
        countries: false,
        ..known()
    };
    let e = RuleSet::compile(
        &rules("- if: { countries: [DE] }\n  then: { upstream: beta }\n"),
        &no_geo,
    )
    .unwrap_err();
    assert!(e[0].1.contains("country database"), "{e:?}");
}

#[test]
fn redirect_targets_cannot_leave_for_another_site_by_accident() {
    for ok in [
        "/new",
        "/new?x=1",
        "https://example.test/x",
        "http://a.test",
    ] {
        assert!(valid_location(ok), "{ok}");
    }
    for bad in [
        "//evil.test",
        "/\\evil.test",
        "new",
        "https://",
        "https://user@evil.test",
        "javascript:alert(1)",
        "/a b",
        "/a\r\nSet-Cookie: x=1",
        "",
    ] {
        assert!(!valid_location(bad), "{bad:?}");
    }
}
