use super::*;
use rampart_config::HumanDuration;

fn limit(rate: &str, burst: Option<u64>, mode: LimitMode) -> LimitRt {
    let l = RateLimit {
        key: rampart_config::LimitKey::One("client_ip".into()),
        rate: Some(rate.into()),
        burst,
        quota: None,
        mode,
        max_delay: HumanDuration(Duration::from_millis(500)),
        backend: LimitBackend::Local,
        on_backend_error: OnBackendError::Local,
    };
    LimitRt::compile("t", &l).unwrap()
}

#[test]
fn gcra_is_exact_to_the_request() {
    // 10/s burst 10: 30 at one instant -> exactly 10; then one per 100 ms.
    let g = local::Gcra::new(1000);
    let t = 100_000_000;
    let tau = t * 9;
    let allowed = (0..30).filter(|_| g.step(7, 0, t, tau, 0).allowed).count();
    assert_eq!(allowed, 10);
    assert!(!g.step(7, 99_000_000, t, tau, 0).allowed);
    assert!(g.step(7, 100_000_000, t, tau, 0).allowed);
    assert!(!g.step(7, 150_000_000, t, tau, 0).allowed);
    assert!(g.step(7, 200_000_000, t, tau, 0).allowed);
    // Over a long run the rate holds: at most burst + rate × time (10 + 100 in 10 s), no
    // double bursts at window boundaries.
    let mut n = 0;
    for ms in (1_000..11_000).step_by(10) {
        if g.step(7, ms * 1_000_000, t, tau, 0).allowed {
            n += 1;
        }
    }
    assert!((100..=110).contains(&n), "{n}");
}

#[test]
fn delay_mode_reserves_slots() {
    let g = local::Gcra::new(1000);
    let t = 100_000_000;
    let max = 300_000_000;
    let s1 = g.step(1, 0, t, 0, max);
    assert!(s1.allowed && s1.wait_ns == 0);
    let s2 = g.step(1, 0, t, 0, max);
    assert_eq!((s2.allowed, s2.wait_ns), (true, 100_000_000));
    let s3 = g.step(1, 0, t, 0, max);
    assert_eq!(s3.wait_ns, 200_000_000);
    let s4 = g.step(1, 0, t, 0, max);
    assert_eq!(s4.wait_ns, 300_000_000);
    assert!(!g.step(1, 0, t, 0, max).allowed, "beyond max_delay");
}

#[test]
fn compile_errors_are_clear() {
    let mut l = RateLimit {
        key: rampart_config::LimitKey::Many(vec!["consumer".into(), "bogus".into()]),
        rate: Some("10/s".into()),
        burst: None,
        quota: None,
        mode: LimitMode::Reject,
        max_delay: HumanDuration(Duration::from_millis(1)),
        backend: LimitBackend::Local,
        on_backend_error: OnBackendError::Local,
    };
    assert_eq!(
        LimitRt::compile("x", &l).unwrap_err().to_string(),
        "key \"bogus\": expected client_ip, consumer, route, header:NAME or claim:NAME"
    );
    l.key = rampart_config::LimitKey::One("consumer".into());
    l.quota = Some("5/day".into());
    assert_eq!(
        LimitRt::compile("x", &l).unwrap_err().to_string(),
        "give exactly one of rate or quota"
    );
}

#[tokio::test]
async fn headers_and_missing_consumer_fallback() {
    let lim = Limiter::new(None, 10_000).unwrap();
    let l = limit("5/s", Some(5), LimitMode::Reject);
    let none = |_: &str| None;
    let f = Facts {
        client_ip: Some("10.0.0.1".parse().unwrap()),
        consumer: None,
        route: "r",
        header: &none,
        claim: &none,
    };
    let d = lim.check(std::slice::from_ref(&l), &f).await;
    assert_eq!(d.verdict, Verdict::Allow);
    assert_eq!(d.policy_header.as_deref(), Some("\"t\";q=5;w=1"));
    assert_eq!(d.limit_header.as_deref(), Some("\"t\";r=4;t=1"));
    for _ in 0..4 {
        lim.check(std::slice::from_ref(&l), &f).await;
    }
    let d = lim.check(std::slice::from_ref(&l), &f).await;
    assert!(matches!(d.verdict, Verdict::Reject { .. }));
    assert_eq!(d.limit_header.as_deref(), Some("\"t\";r=0;t=1"));
    // Another IP has its own bucket.
    let f2 = Facts {
        client_ip: Some("10.0.0.2".parse().unwrap()),
        ..f
    };
    assert_eq!(
        lim.check(std::slice::from_ref(&l), &f2).await.verdict,
        Verdict::Allow
    );
}

#[test]
fn concurrency_guard_releases_on_drop() {
    let f = Arc::new(InFlight::default());
    let k = local::hash_key("k");
    let a = f.acquire(k, 2).unwrap();
    let _b = f.acquire(k, 2).unwrap();
    assert!(f.acquire(k, 2).is_none());
    assert!(f.acquire(local::hash_key("other"), 1).is_some());
    assert_eq!(f.current(k), 2);
    drop(a);
    assert!(f.acquire(k, 2).is_some());
}

/// One million distinct client IPs must fit in well under 200 MB.
#[test]
fn million_keys_memory_bound() {
    fn rss_kb() -> u64 {
        let s = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
        let pages: u64 = s
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        pages * 4
    }
    let before = rss_kb();
    let g = local::Gcra::new(2_000_000);
    for i in 0..1_000_000u32 {
        let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i).to_string();
        g.step(local::hash_key(&ip), 0, 100_000_000, 0, 0);
    }
    let used_mb = (rss_kb().saturating_sub(before)) / 1024;
    println!("1M keys: {} entries, +{used_mb} MB RSS", g.len());
    assert_eq!(g.len(), 1_000_000);
    assert!(used_mb < 200, "{used_mb} MB");
}
