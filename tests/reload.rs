//! Hot reload under load, refused reloads, metrics content.
mod common;
use common::*;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(a: &Upstream, b: &Upstream, generation: usize) -> String {
    format!(
        "upstreams:\n{}{}routes:
  - name: steady
    paths: [\"/api\"]
    upstream: a
  - name: version-{generation}
    paths: [\"/v{generation}\"]
    upstream: b
",
        upstream_yaml("a", &[a.addr], ""),
        upstream_yaml("b", &[b.addr], "")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_reloads_under_load_lose_no_request() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&config(&a, &b, 0));
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..4 {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            gw.url("/api/steady"),
        );
        workers.push(tokio::spawn(async move {
            let c = client();
            while !stop.load(Ordering::SeqCst) {
                match c.get(&url).send().await {
                    Ok(r) if r.status().as_u16() == 200 => {
                        ok.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(r) => failed
                        .lock()
                        .unwrap()
                        .push(format!("status {}", r.status())),
                    Err(e) => failed.lock().unwrap().push(e.to_string()),
                }
            }
        }));
    }
    let c = client();
    for g in 1..=20 {
        gw.write_config(&config(&a, &b, g));
        gw.sighup();
        // The new route answers once the reload is in; the old one is gone.
        let mut applied = false;
        for _ in 0..100 {
            if c.get(gw.url(&format!("/v{g}")))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
                == 200
            {
                applied = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(applied, "reload {g} not applied; stderr:\n{}", gw.stderr());
        assert_eq!(
            c.get(gw.url(&format!("/v{}", g - 1)))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16(),
            404
        );
    }
    stop.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} failed requests: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(
        ok.load(Ordering::SeqCst) > 100,
        "too little load: {}",
        ok.load(Ordering::SeqCst)
    );
    // SIGHUP and the file watcher may both have applied a change; at least 20 reloads.
    assert!(gw.metric("rampart_config_reloads_total{result=\"ok\"}") >= 20.0);
    assert_eq!(
        gw.metric("rampart_config_reloads_total{result=\"failed\"}"),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn invalid_reload_keeps_old_config() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&config(&a, &b, 1));
    let c = client();
    // A dangling upstream reference and an unknown key: refused as a whole.
    gw.write_config(
        &config(&a, &b, 2)
            .replace("upstream: b", "upstream: nope")
            .replace("  - name: steady", "  - name: steady\n    colour: blue"),
    );
    gw.sighup();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(gw.metric("rampart_config_reloads_total{result=\"failed\"}") >= 1.0);
    assert_eq!(
        gw.metric("rampart_config_reloads_total{result=\"ok\"}"),
        0.0
    );
    let err = gw.stderr();
    assert!(err.contains("unknown upstream \"nope\""), "{err}");
    assert!(err.contains("routes.0.colour: unknown key"), "{err}");
    assert_eq!(
        c.get(gw.url("/v1")).send().await.unwrap().status().as_u16(),
        200
    );
    assert_eq!(
        c.get(gw.url("/v2")).send().await.unwrap().status().as_u16(),
        404
    );
    // Broken YAML too.
    gw.write_config("routes: [");
    gw.sighup();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        c.get(gw.url("/v1")).send().await.unwrap().status().as_u16(),
        200
    );
    // A fixed file is then picked up by the watcher alone (no signal).
    gw.write_config(&config(&a, &b, 3));
    let mut ok = false;
    for _ in 0..50 {
        if c.get(gw.url("/v3")).send().await.unwrap().status().as_u16() == 200 {
            ok = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(ok, "file change not picked up");
    assert!(gw.readyz_generation() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn metrics_describe_traffic() {
    let a = Upstream::start("a").await;
    let b = Upstream::start("b").await;
    let gw = Gateway::start(&config(&a, &b, 1));
    let c = client();
    for _ in 0..3 {
        c.get(gw.url("/api/x")).send().await.unwrap();
    }
    c.get(gw.url("/nowhere")).send().await.unwrap();
    // Metrics are recorded in the logging phase, just after the response is sent, and the
    // requests' logging phases may end in any order: wait for every request to be counted.
    let mut m = gw.metrics();
    for _ in 0..100 {
        if m.contains("rampart_requests_total{route=\"-\",status=\"404\"} 1")
            && m.contains("rampart_requests_total{route=\"steady\",status=\"200\"} 3")
            && m.contains("rampart_request_duration_seconds_count{route=\"steady\"} 3")
            && m.contains("rampart_upstream_response_seconds_count{upstream=\"a\"} 3")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        m = gw.metrics();
    }
    assert!(
        m.contains("rampart_requests_total{route=\"steady\",status=\"200\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("rampart_requests_total{route=\"-\",status=\"404\"} 1"),
        "{m}"
    );
    assert!(
        m.contains("rampart_request_duration_seconds_count{route=\"steady\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("rampart_upstream_response_seconds_count{upstream=\"a\"} 3"),
        "{m}"
    );
    assert!(
        m.contains(&format!(
            "rampart_upstream_target_healthy{{target=\"{}\",upstream=\"a\"}} 1",
            a.addr
        )),
        "{m}"
    );
    assert!(
        m.contains("rampart_config_reloads_total{result=\"ok\"} 0"),
        "{m}"
    );
    assert!(
        m.contains("rampart_rejected_total{reason=\"no route\"} 1"),
        "{m}"
    );
    let (s, body) = raw_get(gw.admin_port, "/healthz").unwrap();
    assert_eq!((s, body.as_str()), (200, "{\"status\":\"ok\"}"));
}
