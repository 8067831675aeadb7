//! Issue targets for contracts: checking a typical ~1 KiB JSON request against its operation
//! costs ≤ 20 µs; loading GitHub's REST API description takes ≤ 3 s.
//! `cargo bench -p rampart-openapi --bench contract` (after `scripts/test` fetched the
//! description into `target/test-fixtures`).

// `criterion_group!` expands to a `pub fn` that cannot carry a doc comment.
#![allow(missing_docs)]

use criterion::{criterion_group, criterion_main, Criterion};
use rampart_openapi::{Options, Request, Spec};
use std::hint::black_box;
use std::path::Path;

fn github() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-fixtures/github-api.json")
}

/// `POST /repos/{owner}/{repo}/issues` with a ~1 KiB body (title, body, labels, assignees).
fn issue_body() -> String {
    let text = "Steps to reproduce: open the settings page, change the locale, save. ".repeat(10);
    format!(
        r#"{{"title":"Locale setting is not saved","body":"{text}","labels":["bug","settings","i18n"],"assignees":["octocat","hubot"],"milestone":3}}"#
    )
}

fn bench(c: &mut Criterion) {
    let t = std::time::Instant::now();
    let spec = Spec::load(&github()).expect("scripts/test fetches the description");
    println!(
        "github description: {} operations loaded in {:.2?}",
        spec.operations(),
        t.elapsed()
    );
    let body = issue_body();
    println!("request body: {} bytes", body.len());
    let headers = vec![("content-type".to_string(), b"application/json".to_vec())];
    let opts = Options {
        refuse_unknown_query: true,
        base_path: None,
    };
    let req = Request {
        method: "POST",
        path: "/repos/octo/hello/issues",
        query: None,
        headers: &headers,
        body: Some(body.as_bytes()),
    };
    assert!(spec.check(&req, opts).is_ok());
    c.bench_function("check_1k_json_issue", |b| {
        b.iter(|| black_box(spec.check(black_box(&req), opts).is_ok()))
    });
    let get = Request {
        method: "GET",
        path: "/repos/octo/hello/issues",
        query: Some("state=open&per_page=50&labels=bug"),
        headers: &headers,
        body: None,
    };
    assert!(spec.check(&get, opts).is_ok());
    c.bench_function("check_get_with_query", |b| {
        b.iter(|| black_box(spec.check(black_box(&get), opts).is_ok()))
    });
    let mut g = c.benchmark_group("load");
    g.sample_size(10);
    g.bench_function("github_description", |b| {
        b.iter(|| black_box(Spec::load(&github()).unwrap().operations()))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
