//! OCSP stapling for the TLS listeners (`server.ocsp_stapling`): for every certificate
//! served whose issuer names a responder, a response is fetched, checked
//! (`rampart_tls::ocsp::check`) and stapled; refreshed halfway to its `nextUpdate`. A
//! failed fetch is an event: the listener keeps its staple while it is valid, then serves
//! without one (never a stale or unchecked staple), and tries again with backoff.

use crate::observe::system_event;
use crate::tls::CertSet;
use rampart_tls::ocsp::{self, Query, Staple};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// What is known of one certificate's stapling.
struct State {
    query: Query,
    staple: Option<Staple>,
    next: SystemTime,
    failures: u32,
}

/// OCSP responses are a few KiB; anything far larger is not one.
const MAX_RESPONSE: usize = 64 * 1024;
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
const RETRY_MIN: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(3600);

/// Keeps the staples of `sets` fresh, looking every `every` for certificates that need one.
pub(crate) fn start(sets: Vec<Arc<CertSet>>, every: Duration, rt: &tokio::runtime::Handle) {
    if sets.is_empty() {
        return;
    }
    let every = if every.is_zero() {
        Duration::from_secs(10)
    } else {
        every.min(Duration::from_secs(10))
    };
    rt.spawn(async move {
        let client = match reqwest::Client::builder().timeout(FETCH_TIMEOUT).build() {
            Ok(c) => c,
            Err(e) => {
                log::error!("ocsp: no HTTP client, stapling is off: {e}");
                return;
            }
        };
        // Per listener, by leaf DER.
        let mut states: Vec<HashMap<Vec<u8>, State>> =
            sets.iter().map(|_| HashMap::new()).collect();
        loop {
            for (set, known) in sets.iter().zip(states.iter_mut()) {
                tend(&client, set, known).await;
            }
            tokio::time::sleep(every).await;
        }
    });
}

async fn tend(client: &reqwest::Client, set: &CertSet, known: &mut HashMap<Vec<u8>, State>) {
    let keys = set.keys();
    let leaves: Vec<Vec<u8>> = keys.iter().map(|k| k.cert[0].to_vec()).collect();
    // Certificates no longer served are forgotten.
    known.retain(|leaf, _| leaves.contains(leaf));
    let now = SystemTime::now();
    for k in &keys {
        let leaf = k.cert[0].to_vec();
        if !known.contains_key(&leaf) {
            match ocsp::query(&k.cert) {
                None => continue,
                Some(Err(e)) => {
                    log::warn!(
                        "ocsp: listener {}: no request for a certificate: {e}",
                        set.listener
                    );
                    continue;
                }
                Some(Ok(query)) => {
                    known.insert(
                        leaf.clone(),
                        State {
                            query,
                            staple: None,
                            next: now,
                            failures: 0,
                        },
                    );
                }
            }
        }
        let st = known.get_mut(&leaf).expect("inserted above");
        if now < st.next {
            continue;
        }
        match fetch(client, &st.query)
            .await
            .and_then(|der| ocsp::check(&st.query, &der, SystemTime::now()))
        {
            Ok(staple) => {
                st.next = staple.refresh_at(SystemTime::now());
                st.failures = 0;
                set.staple(&leaf, Some(staple.der.clone()));
                if st.staple.is_none() {
                    system_event(
                        "tls",
                        "ocsp",
                        format!(
                            "listener {}: OCSP response from {} stapled{}",
                            set.listener,
                            st.query.url,
                            staple
                                .next_update
                                .map(|n| format!(
                                    ", valid until {}",
                                    humantime::format_rfc3339_seconds(n)
                                ))
                                .unwrap_or_default()
                        ),
                    );
                }
                st.staple = Some(staple);
            }
            Err(why) => {
                let delay = (RETRY_MIN * 2u32.saturating_pow(st.failures.min(8))).min(RETRY_MAX);
                st.failures = st.failures.saturating_add(1);
                st.next = SystemTime::now() + delay;
                let keep = st
                    .staple
                    .as_ref()
                    .is_some_and(|s| s.valid_at(SystemTime::now()));
                if !keep && st.staple.take().is_some() {
                    set.staple(&leaf, None);
                }
                system_event(
                    "tls",
                    "ocsp_fail",
                    format!(
                        "listener {}: OCSP response from {} not stapled: {why}; {}, next attempt in {}s",
                        set.listener,
                        st.query.url,
                        if keep { "the previous staple stays" } else { "served without a staple" },
                        delay.as_secs()
                    ),
                );
            }
        }
    }
}

/// POSTs the request (RFC 6960 A.1).
async fn fetch(client: &reqwest::Client, q: &Query) -> Result<Vec<u8>, String> {
    let r = client
        .post(&q.url)
        .header("content-type", "application/ocsp-request")
        .body(q.request.clone())
        .send()
        .await
        .map_err(|e| format!("fetch failed: {e}"))?;
    if !r.status().is_success() {
        return Err(format!("responder answered HTTP {}", r.status().as_u16()));
    }
    if r.content_length().is_some_and(|l| l > MAX_RESPONSE as u64) {
        return Err("response larger than 64 KiB".into());
    }
    // Read in pieces: a chunked answer has no length to refuse up front.
    let mut r = r;
    let mut body = Vec::new();
    while let Some(c) = r.chunk().await.map_err(|e| format!("fetch failed: {e}"))? {
        body.extend_from_slice(&c);
        if body.len() > MAX_RESPONSE {
            return Err("response larger than 64 KiB".into());
        }
    }
    Ok(body)
}
