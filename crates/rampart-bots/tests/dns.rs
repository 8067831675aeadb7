//! Forward-confirmed reverse DNS against a real DNS server on loopback (dnsmasq, answering
//! only from the records given here), and against one that never answers.

#[path = "../../../tests/common/dns.rs"]
mod dnsmasq;

use dnsmasq::Dnsmasq;
use rampart_bots::dns::{Outcome, Settings, Verifier};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

fn dnsmasq() -> Dnsmasq {
    Dnsmasq::start(
        &["googlebot.com", "example"],
        &[
            // The real crawler: PTR and A agree.
            "--host-record=crawl-66-249-66-1.googlebot.com,66.249.66.1",
            "--host-record=crawl6.googlebot.com,2001:db8::1",
            // A PTR in the domain with no A record.
            "--ptr-record=2.66.249.66.in-addr.arpa,fake.googlebot.com",
            // A PTR outside the domain.
            "--ptr-record=3.66.249.66.in-addr.arpa,crawler.evil.example",
            // A PTR in the domain whose A is another address.
            "--ptr-record=4.66.249.66.in-addr.arpa,other.googlebot.com",
            "--host-record=other.googlebot.com,66.249.66.9",
            // A suffix game: `googlebot.com.evil.example`.
            "--ptr-record=6.66.249.66.in-addr.arpa,googlebot.com.evil.example",
            "--host-record=googlebot.com.evil.example,66.249.66.6",
        ],
    )
}

fn verifier(server: SocketAddr, timeout: Duration, max_pending: usize) -> Verifier {
    Verifier::new(Settings {
        servers: vec![server],
        timeout,
        cache_ttl: Duration::from_secs(60),
        cache_size: 1000,
        max_pending,
    })
    .unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawlers_are_confirmed_by_forward_confirmed_reverse_dns() {
    let dns = dnsmasq();
    let v = verifier(dns.addr, Duration::from_secs(3), 8);
    let google = vec!["googlebot.com".to_string(), "google.com".to_string()];
    let check = |a: &'static str| {
        let (v, google) = (&v, &google);
        async move { v.verify(ip(a), "googlebot", google).await }
    };
    assert_eq!(check("66.249.66.1").await, Outcome::Confirmed);
    assert_eq!(check("2001:db8::1").await, Outcome::Confirmed);
    assert_eq!(
        check("66.249.66.2").await,
        Outcome::Refuted("reverse DNS name does not resolve back")
    );
    assert_eq!(
        check("66.249.66.3").await,
        Outcome::Refuted("reverse DNS name outside the crawler's domains")
    );
    assert_eq!(
        check("66.249.66.4").await,
        Outcome::Refuted("reverse DNS name does not resolve back")
    );
    assert_eq!(
        check("66.249.66.5").await,
        Outcome::Refuted("no reverse DNS name")
    );
    assert_eq!(
        check("66.249.66.6").await,
        Outcome::Refuted("reverse DNS name outside the crawler's domains")
    );
    // Another crawler's domains do not vouch for this one.
    assert_eq!(
        v.verify(ip("66.249.66.1"), "bingbot", &["search.msn.com".into()])
            .await,
        Outcome::Refuted("reverse DNS name outside the crawler's domains")
    );
    // Answers are cached: with the server gone, the same questions get the same answers.
    drop(dns);
    let t = Instant::now();
    assert_eq!(check("66.249.66.1").await, Outcome::Confirmed);
    assert_eq!(
        check("66.249.66.3").await,
        Outcome::Refuted("reverse DNS name outside the crawler's domains")
    );
    assert!(t.elapsed() < Duration::from_millis(500));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_server_is_a_failure_and_floods_are_bounded() {
    // A server that reads queries and never answers.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let v = std::sync::Arc::new(verifier(addr, Duration::from_millis(400), 4));
    let t = Instant::now();
    let first = v
        .verify(ip("66.249.66.1"), "googlebot", &["googlebot.com".into()])
        .await;
    assert!(matches!(first, Outcome::Failed(_)), "{first:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    // Many fake crawlers at once: at most `max_pending` checks wait for DNS, the rest are
    // answered at once without a query.
    let mut tasks = Vec::new();
    for i in 0..50u8 {
        let v = v.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            let o = v
                .verify(
                    IpAddr::from([198, 51, 100, i]),
                    "googlebot",
                    &["googlebot.com".into()],
                )
                .await;
            (o, t.elapsed())
        }));
    }
    let (mut busy, mut waited) = (0, 0);
    for t in tasks {
        let (o, took) = t.await.unwrap();
        match o {
            Outcome::Failed("too many DNS checks under way") => {
                busy += 1;
                assert!(took < Duration::from_millis(100), "{took:?}");
            }
            Outcome::Failed(_) => waited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert!(waited <= 4 && busy >= 46, "waited {waited}, busy {busy}");
    assert_eq!(v.pending(), 0);
}
