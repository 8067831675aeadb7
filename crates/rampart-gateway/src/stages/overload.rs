//! `overload`: load shedding. Every request holds a slot of the process-wide in-flight
//! count until it ends; under pressure the least likely legitimate requests are answered
//! 503 before anything is done for them. Pressure is the in-flight count against
//! `server.overload`'s thresholds, or the measured queueing delay (how late the proxy
//! threads' timers fire) against `max_queue_delay`, whichever is worse:
//! 1. over `shed_anonymous_at` (or the delay): anonymous requests (no credential
//!    presented) whose bot verdict is not `human` or `good_bot`, or that bring a challenge
//!    pass that is not valid (a failed challenge);
//! 2. halfway to `max_in_flight` (or twice the delay): every anonymous request;
//! 3. over `max_in_flight` (or four times the delay): everything but the allowlist's,
//!    which is shed only past twice `max_in_flight`.
//!
//! Credentials are only looked at, not checked, here: a forged one buys a place in the
//! queue, not a way past authentication.

use super::{Decision, Reject, Req};
use crate::ctx::Ctx;
use crate::snapshot::Snapshot;
use rampart_config::BotVerdict;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

static IN_FLIGHT: AtomicUsize = AtomicUsize::new(0);
/// The smoothed lateness of the probes' timers, in microseconds.
static QUEUE_DELAY_US: AtomicU64 = AtomicU64::new(0);
const PROBE_PERIOD: Duration = Duration::from_millis(10);

/// The measured queueing delay now (for the metrics and the shedding).
pub(crate) fn queue_delay() -> Duration {
    Duration::from_micros(QUEUE_DELAY_US.load(Ordering::Relaxed))
}

/// A timer on each proxy thread that measures how late it fires: work queued on the
/// runtime delays it. Started by the thread's first request, so it runs where requests do.
fn ensure_probe() {
    thread_local! {
        static STARTED: Cell<bool> = const { Cell::new(false) };
    }
    if STARTED.with(|s| s.replace(true)) {
        return;
    }
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        return;
    };
    rt.spawn(async {
        loop {
            let t = Instant::now();
            tokio::time::sleep(PROBE_PERIOD).await;
            let late = t.elapsed().saturating_sub(PROBE_PERIOD).as_micros() as u64;
            // Smoothed (7/8 old, 1/8 new): one slow tick is not overload, a run of them is.
            // Several probes may write; any of their recent values is good enough.
            let old = QUEUE_DELAY_US.load(Ordering::Relaxed);
            QUEUE_DELAY_US.store(old - old / 8 + late / 8, Ordering::Relaxed);
        }
    });
}

/// Requests in progress now (for the metrics).
pub(crate) fn in_flight() -> usize {
    IN_FLIGHT.load(Ordering::Relaxed)
}

/// One request's place in the count, released when the request's context is dropped.
pub(crate) struct Slot(());

impl Drop for Slot {
    fn drop(&mut self) {
        IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

fn presents_credentials(r: &Req, snap: &Snapshot, ctx: &Ctx) -> bool {
    let h = &r.head.headers;
    let api = &snap.config.auth.api_key;
    ctx.auth.identity.is_some()
        || h.contains_key(http::header::AUTHORIZATION)
        || h.contains_key(api.header.as_str())
        || api.query.as_deref().is_some_and(|q| {
            r.head
                .uri
                .query()
                .is_some_and(|s| s.split('&').any(|kv| kv.split('=').next() == Some(q)))
        })
        // A challenge pass counts only when it is valid (checked by `bots`): a forged or
        // expired one is a failed challenge, shed first.
        || ctx.pass == Some(true)
}

fn shed(reason: &'static str) -> Decision {
    Decision::Respond(Reject {
        status: 503,
        message: "the gateway is overloaded; try again shortly",
        reason,
        headers: vec![("Retry-After", "1".into())],
    })
}

/// How hard to shed, from 0 (not at all) to 3 (all but the allowlist).
fn tier(n: usize, o: &rampart_config::Overload, delay: Duration) -> u8 {
    let anon = o.anonymous_limit().min(o.max_in_flight);
    let by_count = if n > o.max_in_flight {
        3
    } else if n > anon + (o.max_in_flight - anon) / 2 {
        2
    } else if n > anon {
        1
    } else {
        0
    };
    let by_delay = match o.max_queue_delay {
        Some(d) if !d.0.is_zero() && delay > d.0 * 4 => 3,
        Some(d) if !d.0.is_zero() && delay > d.0 * 2 => 2,
        Some(d) if !d.0.is_zero() && delay > d.0 => 1,
        _ => 0,
    };
    by_count.max(by_delay)
}

pub(super) fn run(r: &Req, snap: &Snapshot, ctx: &mut Ctx) -> Decision {
    ensure_probe();
    let n = IN_FLIGHT.fetch_add(1, Ordering::Relaxed) + 1;
    ctx.overload = Some(Slot(()));
    let o = &snap.config.server.overload;
    let tier = tier(n, o, queue_delay());
    if tier == 0 {
        return Decision::Continue;
    }
    let allowlisted = snap
        .overload_allow
        .as_ref()
        .zip(ctx.client_ip)
        .is_some_and(|(p, ip)| p.check(ip).is_ok());
    if allowlisted {
        return if n <= o.max_in_flight.saturating_mul(2) {
            Decision::Continue
        } else {
            shed("over twice max_in_flight")
        };
    }
    if tier == 3 {
        return shed(if n > o.max_in_flight {
            "over max_in_flight"
        } else {
            "queueing delay over four times max_queue_delay"
        });
    }
    if presents_credentials(r, snap, ctx) {
        return Decision::Continue;
    }
    let trusted = ctx.pass != Some(false)
        && ctx
            .bot
            .as_ref()
            .is_some_and(|b| matches!(b.verdict, BotVerdict::Human | BotVerdict::GoodBot));
    if tier == 2 || !trusted {
        return shed("anonymous request shed under load");
    }
    Decision::Continue
}

/// Whether the gateway is past its first shedding threshold (checks that cost more than
/// they save, such as DNS, are skipped then).
pub(crate) fn under_pressure(o: &rampart_config::Overload) -> bool {
    tier(in_flight() + 1, o, queue_delay()) > 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use rampart_config::{HumanDuration, Overload};

    #[test]
    fn tiers_follow_the_count_and_the_measured_delay() {
        let o = Overload {
            max_in_flight: 100,
            shed_anonymous_at: Some(60),
            allowlist: Vec::new(),
            max_queue_delay: Some(HumanDuration(Duration::from_millis(50))),
        };
        let ms = Duration::from_millis;
        assert_eq!(tier(60, &o, ms(1)), 0);
        assert_eq!(tier(61, &o, ms(1)), 1);
        assert_eq!(tier(81, &o, ms(1)), 2);
        assert_eq!(tier(101, &o, ms(1)), 3);
        assert_eq!(tier(1, &o, ms(51)), 1);
        assert_eq!(tier(1, &o, ms(101)), 2);
        assert_eq!(tier(1, &o, ms(201)), 3);
        assert_eq!(tier(61, &o, ms(201)), 3);
        let off = Overload {
            max_queue_delay: None,
            ..o
        };
        assert_eq!(tier(1, &off, Duration::from_secs(5)), 0);
    }
}
