use super::*;

const GOOD: &str = r#"
listeners:
  - name: public
    address: 127.0.0.1:8080
admin:
  address: 127.0.0.1:9901
upstreams:
  items:
    targets: ["127.0.0.1:9001", "127.0.0.1:9002"]
    balance: round_robin
    health_check: { path: /healthz, interval: 2s, unhealthy_after: 3, healthy_after: 2 }
    timeouts: { connect: 2s, read: 30s }
routes:
  - name: items
    hosts: ["api.example.test", "*.example.test"]
    paths: ["/api/items"]
    methods: [GET, POST]
    upstream: items
    strip_prefix: false
limits:
  max_request_body: 1MiB
  max_header_bytes: 16KiB
  request_header_timeout: 10s
"#;

fn no_env(_: &str) -> Option<String> {
    None
}

#[test]
fn contract_example_loads() {
    let c = load_str_with_env(GOOD, "t.yaml", &no_env).unwrap();
    assert_eq!(c.routes[0].methods, vec!["GET", "POST"]);
    assert_eq!(c.limits.max_request_body.0, 1 << 20);
    let hc = c.upstreams["items"].health_check.as_ref().unwrap();
    assert_eq!(hc.interval.0, std::time::Duration::from_secs(2));
}

#[test]
fn every_error_is_reported_with_its_location() {
    let bad = GOOD
        .replace("    strip_prefix: false", "    strip_prefx: false")
        .replace("    upstream: items", "    upstream: itemz")
        .replace("interval: 2s", "interval: 2 parsecs");
    let errs = load_str_with_env(&bad, "t.yaml", &no_env).unwrap_err();
    let text = errs.to_string();
    // A type error stops serde, so keys after it and the semantic checks wait for the next pass.
    assert!(
        text.contains("t.yaml:11:37: upstreams.items.health_check.interval: invalid duration"),
        "{text}"
    );
    let fixed = bad.replace("2 parsecs", "2s");
    let text = load_str_with_env(&fixed, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("t.yaml:18:5: routes.0.upstream: unknown upstream \"itemz\""),
        "{text}"
    );
    assert!(
        text.contains("t.yaml:19:5: routes.0.strip_prefx: unknown key"),
        "{text}"
    );
}

#[test]
fn syntax_errors_have_positions() {
    let errs = load_str_with_env("listeners: [\n  - a: b\n", "s.yaml", &no_env).unwrap_err();
    let e = &errs.0[0];
    assert_eq!(e.file, "s.yaml");
    assert!(e.line >= 2, "{e}");
    assert!(e.message.starts_with("YAML syntax error"), "{e}");
}

#[test]
fn env_secrets_are_substituted_and_missing_ones_reported() {
    let text = GOOD.replace("127.0.0.1:9001", "${T1}");
    let env = |n: &str| (n == "T1").then(|| "127.0.0.1:9555".to_string());
    let c = load_str_with_env(&text, "t.yaml", &env).unwrap();
    assert_eq!(c.upstreams["items"].targets[0], "127.0.0.1:9555");
    let errs = load_str_with_env(&text, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        errs.contains("environment variable T1 is not set"),
        "{errs}"
    );
    assert!(errs.contains("upstreams.items.targets.0"), "{errs}");
}

#[test]
fn bad_values_are_explained() {
    let bad = GOOD
        .replace("127.0.0.1:8080", "localhost")
        .replace("methods: [GET, POST]", "methods: [get]")
        .replace("\"/api/items\"", "\"api/items\"")
        .replace("\"*.example.test\"", "\"a..b\"");
    let text = load_str_with_env(&bad, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    for needle in [
        "listeners.0.address",
        "routes.0.methods.0",
        "routes.0.paths.0",
        "routes.0.hosts.1",
    ] {
        assert!(text.contains(needle), "missing {needle} in {text}");
    }
    assert_eq!(text.lines().count(), 4, "{text}");
}

#[test]
fn missing_required_key() {
    let text = "listeners:\n  - name: a\n";
    let errs = load_str_with_env(text, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(errs.contains("required key `address` is missing"), "{errs}");
}

/// Every default a minimal config gets, written out: a refactor of the model's defaults
/// must leave each one as it is.
#[test]
fn defaults_of_a_minimal_config_are_pinned() {
    use std::time::Duration;
    let secs = HumanDuration::from_secs;
    let c = load_str_with_env(
        "listeners:\n  - name: p\n    address: 127.0.0.1:1\n",
        "t.yaml",
        &no_env,
    )
    .unwrap();
    assert_eq!(c.server.threads, 2);
    assert_eq!(c.server.watch_interval.0, Duration::from_millis(500));
    assert_eq!(c.server.grace_period, secs(5));
    assert_eq!(c.limits.max_request_body.0, 1 << 20);
    assert_eq!(c.limits.max_header_bytes.0, 16 << 10);
    assert_eq!(c.limits.request_header_timeout, secs(10));
    assert_eq!(c.limits.request_body_timeout, secs(30));
    assert_eq!(c.limits.min_request_body_rate.0, 1024);
    assert_eq!(c.access_log.target, "stdout");
    assert_eq!(c.admin.address, "127.0.0.1:9901");
    assert_eq!(c.auth.api_key.header, "X-API-Key");
    assert_eq!(c.auth.api_key.query, None);
    assert_eq!(c.auth.basic.realm, "rampart");
    assert_eq!(c.auth.lockout.max_failures, 5);
    assert_eq!(c.auth.lockout.max_failures_per_ip, 50);
    assert_eq!(c.auth.lockout.window, secs(300));
    assert_eq!(c.auth.lockout.duration, secs(900));
    assert_eq!(c.auth.lockout.redis, None);
    assert_eq!(c.default_authorization, DefaultAuthorization::Allow);
    assert_eq!(c.waf, None);
    let r = &c.requests;
    assert_eq!(r.encoded_slash, KeepOrReject::Reject);
    assert_eq!(r.backslash, KeepOrReject::Reject);
    assert_eq!(r.path_parameters, KeepOrReject::Reject);
    assert!(r.merge_slashes);
    assert_eq!(r.underscore_headers, UnderscoreHeaders::Drop);
    assert!(r.allow_underscore_headers.is_empty());
    // Without an `events` section the redaction lists still apply (the access log uses them).
    assert_eq!(c.events, EventsConfig::default());
    assert_eq!(c.events.redact_query.len(), 15);
    assert!(c.events.redact_query.iter().any(|q| q == "access_token"));
    assert_eq!(c.events.redact_headers.len(), 5);
    assert!(!c.events.stdout && c.events.file.is_none());
    // The sections' `Default`s agree with what an empty section deserializes to.
    assert_eq!(c.limits, Limits::default());
    assert_eq!(c.server, ServerSettings::default());
    assert_eq!(c.auth, AuthSettings::default());
    assert_eq!(c.requests, RequestHygiene::default());

    // Empty (or only required keys) nested sections.
    fn de<T: serde::de::DeserializeOwned>(yaml: &str) -> T {
        serde_yaml::from_str(yaml).unwrap()
    }
    let e: EventsConfig = de("{}");
    assert_eq!(e.redact_query.len(), 15);
    assert!(e.redact_query.iter().any(|p| p == "client_secret"));
    assert_eq!(
        e.redact_headers,
        [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "x-api-key"
        ]
    );
    let w: WebhookSink = de("url: http://x");
    assert_eq!(
        (w.batch_size, w.max_buffer, w.max_retries),
        (100, 10_000, 3)
    );
    assert_eq!(w.flush_interval, secs(1));
    let s: SyslogSink = de("address: x:514");
    assert_eq!(
        (s.protocol, s.format),
        (SyslogProtocol::Udp, SyslogFormat::Json)
    );

    let u: Upstream = de("targets: [a:1]\nhealth_check: {}\ntls: {sni: a}");
    assert_eq!(u.retries, 1);
    assert_eq!(u.balance, Balance::RoundRobin);
    assert_eq!(u.timeouts.connect, secs(2));
    assert_eq!((u.timeouts.read, u.timeouts.write), (secs(30), secs(30)));
    assert_eq!((u.passive.failures, u.passive.eject_for), (3, secs(10)));
    let hc = u.health_check.unwrap();
    assert_eq!(hc.path, "/healthz");
    assert_eq!((hc.interval, hc.timeout), (secs(5), secs(1)));
    assert_eq!((hc.unhealthy_after, hc.healthy_after), (3, 2));
    let tls = u.tls.unwrap();
    assert!(tls.verify_hostname && tls.ca.is_none());

    let h: Hsts = de("{}");
    assert_eq!(h.max_age, secs(365 * 24 * 3600));
    assert!(!h.include_subdomains && !h.preload);

    let w: WafConfig = de("{}");
    assert_eq!(w.mode, WafMode::Block);
    assert_eq!(w.paranoia, 1);
    assert_eq!(
        (w.anomaly_threshold.inbound, w.anomaly_threshold.outbound),
        (5, 4)
    );
    assert_eq!(w.request_body_limit.0, 64 * 1024);
    assert_eq!(w.request_body_limit_action, BodyLimitAction::Reject);
    assert!(!w.inspect_response_body);
    assert_eq!(w.response_body_limit.0, 512 * 1024);
    assert_eq!(
        w.response_mime_types,
        ["text/plain", "text/html", "text/xml", "application/json"]
    );
    assert_eq!(w.status, 403);
    assert!(w.reject_unparsable_body);
    assert!(w.rules.is_empty() && w.custom_rules.is_none() && w.data_dir.is_none());
    let rw: RouteWaf = de("{}");
    assert!(rw.enabled && rw.mode.is_none() && rw.paranoia.is_none());

    let l: RateLimit = de("rate: 1/s");
    assert_eq!(l.key, LimitKey::One("client_ip".into()));
    assert_eq!(l.max_delay.0, Duration::from_millis(500));
    assert_eq!(
        (l.mode, l.backend),
        (LimitMode::Reject, LimitBackend::Local)
    );
    assert_eq!(l.on_backend_error, OnBackendError::Local);
    assert_eq!((l.burst, l.quota), (None, None));

    let j: JwtIssuer = de("issuer: i\nalgorithms: [RS256]");
    assert_eq!(j.consumer_claim, "sub");
    assert_eq!(j.leeway, secs(30));
    assert_eq!(j.jwks_refresh, secs(600));
    assert_eq!(j.jwks_min_interval, secs(10));
    assert!(!j.discovery && !j.allow_unknown_subjects);
    let i: Introspection = de("url: u\nclient_id: c\nclient_secret: s");
    assert_eq!((i.max_ttl, i.consumer_claim.as_str()), (secs(300), "sub"));
    let l: Ldap = de("url: ldap://x\nbind_dn: d");
    assert_eq!(l.group_filter, "(member={dn})");
    assert_eq!(l.group_attr, "cn");
    assert_eq!((l.cache_ttl, l.timeout), (secs(60), secs(3)));
    assert!(!l.starttls);
}

/// Keys without a default stay required in sections that also have defaulted keys.
#[test]
fn required_keys_beside_defaulted_ones_stay_required() {
    fn missing<T: serde::de::DeserializeOwned + std::fmt::Debug>(yaml: &str, key: &str) {
        let e = serde_yaml::from_str::<T>(yaml).unwrap_err().to_string();
        assert!(e.contains(&format!("missing field `{key}`")), "{key}: {e}");
    }
    missing::<Upstream>("retries: 1", "targets");
    missing::<UpstreamTls>("verify_hostname: true", "sni");
    missing::<WebhookSink>("batch_size: 1", "url");
    missing::<JwtIssuer>("issuer: i", "algorithms");
    missing::<Introspection>("url: u\nclient_id: c", "client_secret");
    missing::<Ldap>("url: ldap://x", "bind_dn");
    missing::<Listener>("name: p", "address");
}

#[test]
fn tracing_settings_are_checked_with_their_location() {
    let cfg = |t: &str| format!("{GOOD}tracing:\n{t}");
    let text = load_str_with_env(
        &cfg("  otlp_endpoint: ftp://collector/v1/traces\n  sample_ratio: 1.5\n"),
        "t.yaml",
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("tracing.otlp_endpoint: must be an http(s) URL"),
        "{text}"
    );
    assert!(
        text.contains("tracing.sample_ratio: must be between 0 and 1"),
        "{text}"
    );
    let text = load_str_with_env(
        &cfg("  otlp_endpoint: http://c:4318/v1/traces\n  sampling: 1\n"),
        "t.yaml",
        &no_env,
    )
    .unwrap_err()
    .to_string();
    assert!(text.contains("tracing.sampling"), "{text}");
    let ok = load_str_with_env(
        &cfg("  otlp_endpoint: http://127.0.0.1:4318/v1/traces\n"),
        "t.yaml",
        &no_env,
    )
    .unwrap();
    let t = ok.tracing.expect("tracing");
    assert_eq!((t.sample_ratio, t.service_name.as_str()), (1.0, "rampart"));
}

#[test]
fn siem_sinks_are_checked() {
    let good = format!(
        "{GOOD}events:\n  splunk:\n    url: https://splunk.example:8088/services/collector/event\n    token: abc\n    buffer: {{dir: /var/lib/rampart/splunk, fsync: always}}\n  nats:\n    url: nats://127.0.0.1:4222\n    stream: RAMPART\n    buffer: {{dir: /var/lib/rampart/nats, max_size: 64MiB, on_full: drop_newest}}\n"
    );
    let c = load_str_with_env(&good, "t.yaml", &no_env).unwrap();
    let s = c.events.splunk.as_ref().unwrap();
    assert_eq!(s.buffer.fsync, FsyncPolicy::Always);
    assert_eq!(s.batch_size, 100);
    let n = c.events.nats.as_ref().unwrap();
    assert_eq!(n.subject, "rampart.events");
    assert_eq!(
        n.buffer.fsync,
        FsyncPolicy::Every(std::time::Duration::from_secs(1))
    );
    assert_eq!(n.buffer.on_full, OnFullPolicy::DropNewest);
    assert_eq!(n.buffer.max_size.0, 64 << 20);

    let bad = format!(
        "{GOOD}events:\n  splunk:\n    url: splunk.example\n    token: ' '\n    batch_size: 0\n    buffer: {{dir: /spool/x, max_size: 10KiB}}\n  elastic:\n    url: http://es:9200\n    index: Rampart\n    api_key: k\n    username: u\n    buffer: {{dir: /spool/x/}}\n  nats:\n    url: http://nats\n    subject: rampart.*\n    stream: a.b\n    buffer: {{dir: /spool/n}}\n"
    );
    let text = load_str_with_env(&bad, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    for needle in [
        "events.splunk.url: must be an http(s) URL",
        "events.splunk.token: must not be empty",
        "events.splunk.batch_size: must be between 1 and 10000",
        "events.splunk.buffer.max_size: must be at least 1MiB",
        "events.elastic.index: must be a lowercase index name",
        "events.elastic: give api_key or username and password, not both",
        "events.elastic: username and password go together",
        "events.elastic.buffer.dir: is also events.splunk.buffer.dir",
        "events.nats.url: must be a nats:// or tls:// URL",
        "events.nats.subject: must be a subject without wildcards",
        "events.nats.stream: must be a stream name",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }
    let fsync = good.replace("fsync: always", "fsync: sometimes");
    let text = load_str_with_env(&fsync, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("fsync \"sometimes\": expected always, never or a duration"),
        "{text}"
    );
}

#[test]
fn acme_settings_are_checked() {
    let tls = |acme: &str| {
        GOOD.replace(
            "    address: 127.0.0.1:8080\n",
            &format!("    address: 127.0.0.1:8080\n  - name: secure\n    address: 127.0.0.1:8443\n    tls:\n      acme:\n{acme}"),
        )
    };
    let good = tls("        directory: https://acme.example/dir\n        domains: [shop.example.test]\n        storage: /var/lib/rampart/acme\n        eab: {kid: kid-1, hmac_key: zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W}\n");
    let c = load_str_with_env(&good, "t.yaml", &no_env).unwrap();
    let a = c.listeners[1].tls.as_ref().unwrap().acme.as_ref().unwrap();
    assert_eq!(a.challenge, AcmeChallenge::Http01);
    assert_eq!(a.renew_before.0.as_secs(), 30 * 24 * 3600);
    assert_eq!(
        (a.retry_initial.0.as_secs(), a.retry_max.0.as_secs()),
        (60, 6 * 3600)
    );
    // The MAC key never shows in debug output.
    assert!(!format!("{a:?}").contains("zWNDZM6"));

    let bad = tls("        directory: http://acme.example/dir\n        domains: ['*.shop.test', 'shop..test', a.test, A.test]\n        storage: ' '\n        ca: /nonexistent/ca.pem\n        eab: {kid: ' ', hmac_key: 'not base64!'}\n        redis: localhost:6379\n        retry_initial: 10m\n        retry_max: 1m\n        timeout: 0s\n");
    let text = load_str_with_env(&bad, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    for needle in [
        "listeners.1.tls.acme.directory: \"http://acme.example/dir\" is not an https:// URL",
        "listeners.1.tls.acme.domains.0: \"*.shop.test\": wildcard certificates need the dns-01 challenge",
        "listeners.1.tls.acme.domains.1: \"shop..test\" is not a DNS name",
        "listeners.1.tls.acme.domains.3: \"A.test\" is listed twice",
        "listeners.1.tls.acme.storage: a storage directory is required",
        "listeners.1.tls.acme.ca: /nonexistent/ca.pem: cannot read",
        "listeners.1.tls.acme.eab.kid: the key id is empty",
        "listeners.1.tls.acme.eab.hmac_key: not a base64url key",
        "listeners.1.tls.acme.redis: \"localhost:6379\" is not a redis:// URL",
        "listeners.1.tls.acme.retry_initial: must be above zero and at most retry_max",
        "listeners.1.tls.acme.timeout: must be at least 1s",
    ] {
        assert!(text.contains(needle), "{needle}\n{text}");
    }

    // http-01 needs a plain listener; an unknown key is named.
    let only_tls = good
        .replace("  - name: public\n    address: 127.0.0.1:8080\n", "")
        .replace(
            "storage: /var/lib/rampart/acme\n",
            "storage: /var/lib/rampart/acme\n        challenge: http-01\n        renew: 30d\n",
        );
    let text = load_str_with_env(&only_tls, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(text.contains("renew"), "{text}");
    let only_tls = only_tls.replace("        renew: 30d\n", "");
    let text = load_str_with_env(&only_tls, "t.yaml", &no_env)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(
            "listeners.0.tls.acme.challenge: http-01 is answered on a plain HTTP listener"
        ),
        "{text}"
    );
    let alpn = only_tls.replace("challenge: http-01", "challenge: tls-alpn-01");
    load_str_with_env(&alpn, "t.yaml", &no_env).unwrap();
}
