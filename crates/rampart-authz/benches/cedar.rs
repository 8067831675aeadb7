//! Cedar evaluation cost per request with 100 policies (target < 20 µs).

// `criterion_group!` expands to a `pub fn` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_authz::{AuthzRequest, CedarPolicies};
use serde_json::json;
use std::net::IpAddr;
use std::time::SystemTime;

fn bench(c: &mut Criterion) {
    let mut text = String::new();
    for i in 0..98 {
        text.push_str(&format!(
            "@id(\"p{i}\")\npermit(principal in Group::\"g{i}\", action == Action::\"GET\", resource == Route::\"r{i}\") when {{ context.claims.level >= {} }};\n",
            i % 5
        ));
    }
    text.push_str("@id(\"office-hours\")\nforbid(principal, action, resource) when { context.time.hour < 6 };\n");
    text.push_str("@id(\"no-evil-net\")\nforbid(principal, action, resource) when { context.client_ip.isInRange(ip(\"203.0.113.0/24\")) };\n");
    let dir = std::env::temp_dir().join(format!("rampart-cedar-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("p.cedar");
    std::fs::write(&path, text).unwrap();
    let p = CedarPolicies::load(path.to_str().unwrap(), None, None).unwrap();
    let groups = vec!["g42".to_string(), "staff".to_string()];
    let claims = json!({"level": 3, "sub": "alice", "scope": "orders:read"});
    let ip: IpAddr = "198.51.100.7".parse().unwrap();
    c.bench_function("cedar_100_policies", |b| {
        b.iter(|| {
            let r = AuthzRequest {
                consumer: Some("alice"),
                groups: &groups,
                claims: Some(&claims),
                method: "GET",
                path: "/r42/items",
                route: "r42",
                client_ip: Some(ip),
                mtls: None,
                now: SystemTime::now(),
            };
            let d = p.decide(&r, "GET");
            assert!(d.allowed || d.reason.contains("forbid"));
            d
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
