//! An adaptive concurrency limit for one upstream, in the spirit of Netflix's
//! concurrency-limits (AIMD) and Envoy's adaptive concurrency filter: the backend's own
//! latency says how many requests it can take at once. The limit grows by one for each
//! answer on time while it is in use, and shrinks by `backoff` when answers come back
//! later than `tolerance` times the best recent latency, or fail; requests over the limit
//! are refused at once instead of queueing in a backend that is already slow.
//!
//! The best latency is the minimum over a window (`window`), so a backend that became
//! slower for good is measured again rather than judged forever by its best day. A
//! decrease happens at most once per best latency (a burst of late answers from one
//! overload is one signal, not many).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The limit's settings (`upstreams.NAME.adaptive_concurrency`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdaptiveSettings {
    /// The limit never goes under this (at least 1).
    pub min: u32,
    /// Nor over this.
    pub max: u32,
    /// An answer slower than this times the best recent latency counts as late.
    pub tolerance: f64,
    /// The limit is multiplied by this on a late or failed answer (0.5–0.99).
    pub backoff: f64,
    /// How long the best latency is kept before it is measured again.
    pub window: Duration,
}

impl Default for AdaptiveSettings {
    fn default() -> Self {
        AdaptiveSettings {
            min: 4,
            max: 1000,
            tolerance: 2.0,
            backoff: 0.9,
            window: Duration::from_secs(30),
        }
    }
}

struct State {
    limit: f64,
    in_flight: u32,
    /// The best latency of the previous window (the reference) and of this one.
    best: Option<Duration>,
    best_now: Option<Duration>,
    window_start: Instant,
    last_decrease: Option<Instant>,
}

/// One upstream's limit; shared by the requests to it.
pub struct AdaptiveLimit {
    settings: AdaptiveSettings,
    state: Mutex<State>,
}

/// A request's place under the limit. Say how it went with [`Permit::answered`] or
/// [`Permit::failed`]; dropped without a word (refused later, or the client left), it
/// only frees the place.
pub struct Permit {
    owner: Arc<AdaptiveLimit>,
    done: bool,
}

impl AdaptiveLimit {
    /// Starts at `max` halved (at least `min`): the first answers set the reference.
    pub fn new(settings: AdaptiveSettings) -> AdaptiveLimit {
        let min = settings.min.max(1);
        let start = (settings.max / 2).max(min) as f64;
        AdaptiveLimit {
            settings: AdaptiveSettings { min, ..settings },
            state: Mutex::new(State {
                limit: start,
                in_flight: 0,
                best: None,
                best_now: None,
                window_start: Instant::now(),
                last_decrease: None,
            }),
        }
    }

    /// Its settings (a reload keeps the limit while they are the same).
    pub fn settings(&self) -> &AdaptiveSettings {
        &self.settings
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current limit (whole requests).
    pub fn limit(&self) -> u32 {
        self.state().limit as u32
    }

    /// Requests under way now.
    pub fn in_flight(&self) -> u32 {
        self.state().in_flight
    }

    /// A place, or `None` when the limit is reached.
    pub fn try_acquire(self: &Arc<Self>) -> Option<Permit> {
        let mut s = self.state();
        if s.in_flight >= s.limit as u32 {
            return None;
        }
        s.in_flight += 1;
        Some(Permit {
            owner: self.clone(),
            done: false,
        })
    }

    fn release(&self, outcome: Option<Result<Duration, ()>>) {
        let now = Instant::now();
        let set = &self.settings;
        let mut s = self.state();
        s.in_flight = s.in_flight.saturating_sub(1);
        let Some(outcome) = outcome else { return };
        if now.duration_since(s.window_start) >= set.window {
            // The reference becomes this window's best (or stays, if nothing was answered).
            s.best = s.best_now.take().or(s.best);
            s.window_start = now;
        }
        let late = match outcome {
            Ok(took) => {
                s.best_now = Some(s.best_now.map_or(took, |b| b.min(took)));
                let reference = s.best.unwrap_or(took).min(s.best_now.unwrap_or(took));
                if s.best.is_none() {
                    s.best = Some(took);
                }
                took.as_secs_f64() > reference.as_secs_f64() * set.tolerance
            }
            Err(()) => true,
        };
        if late {
            let reference = s.best.unwrap_or(Duration::from_millis(10));
            let quiet = s
                .last_decrease
                .is_none_or(|t| now.duration_since(t) >= reference.max(Duration::from_millis(1)));
            if quiet {
                s.limit = (s.limit * set.backoff).max(set.min as f64);
                s.last_decrease = Some(now);
            }
        } else if s.in_flight as f64 + 1.0 >= s.limit / 2.0 {
            // Grow only while the limit is what holds traffic back.
            s.limit = (s.limit + 1.0).min(set.max as f64);
        }
    }
}

impl Permit {
    /// The upstream answered (not a failure) after `took` (request sent to response
    /// headers: what the backend itself took, not the client's download).
    pub fn answered(mut self, took: Duration) {
        self.done = true;
        self.owner.release(Some(Ok(took)));
    }

    /// The upstream failed: no connection, a timeout, a 5xx of its own.
    pub fn failed(mut self) {
        self.done = true;
        self.owner.release(Some(Err(())));
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        if !self.done {
            self.owner.release(None);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(min: u32, max: u32) -> Arc<AdaptiveLimit> {
        Arc::new(AdaptiveLimit::new(AdaptiveSettings {
            min,
            max,
            window: Duration::from_secs(60),
            ..Default::default()
        }))
    }

    /// One request that took `took`.
    fn answer(l: &Arc<AdaptiveLimit>, took: Duration) {
        l.try_acquire().expect("a place").answered(took);
    }

    /// `n` answers that took `took`, each with half the limit in use (so it may grow).
    fn busy_answers(l: &Arc<AdaptiveLimit>, took: Duration, n: usize) {
        for _ in 0..n {
            let want = (l.limit() / 2) as usize;
            let held: Vec<_> = (0..want).filter_map(|_| l.try_acquire()).collect();
            answer(l, took);
            drop(held);
        }
    }

    #[test]
    fn slow_answers_shrink_the_limit_and_fast_ones_grow_it_back() {
        let l = limit(2, 40);
        assert_eq!(l.limit(), 20);
        // Fast answers with nothing else going on: the limit is not what holds traffic
        // back, so it does not grow.
        for _ in 0..10 {
            answer(&l, Duration::from_millis(2));
        }
        assert_eq!(l.limit(), 20);
        // With the limit in use: it grows to max.
        busy_answers(&l, Duration::from_millis(2), 40);
        assert_eq!(l.limit(), 40);
        // Late answers (over twice the best): down, but one decrease per best latency.
        answer(&l, Duration::from_millis(50));
        let after_one = l.limit();
        assert!((35..40).contains(&after_one), "{after_one}");
        answer(&l, Duration::from_millis(50));
        assert_eq!(
            l.limit(),
            after_one,
            "a burst of late answers is one signal"
        );
        for _ in 0..200 {
            std::thread::sleep(Duration::from_micros(2100));
            answer(&l, Duration::from_millis(50));
        }
        assert_eq!(l.limit(), 2, "floored at min");
        // Over the limit: refused at once.
        let a = l.try_acquire().unwrap();
        let b = l.try_acquire().unwrap();
        assert!(l.try_acquire().is_none());
        drop(a);
        assert_eq!(l.in_flight(), 1);
        b.failed();
        assert_eq!(l.in_flight(), 0);
        // Fast again: back up.
        busy_answers(&l, Duration::from_millis(2), 30);
        assert!(l.limit() > 10, "{}", l.limit());
    }

    #[test]
    fn the_reference_is_measured_again_each_window() {
        let l = Arc::new(AdaptiveLimit::new(AdaptiveSettings {
            min: 1,
            max: 100,
            window: Duration::from_millis(50),
            ..Default::default()
        }));
        answer(&l, Duration::from_millis(1));
        std::thread::sleep(Duration::from_millis(60));
        // A backend that is now 20 ms at best: late at first...
        answer(&l, Duration::from_millis(20));
        let lowered = l.limit();
        assert!(lowered < 50, "{lowered}");
        // ...then, a window later, 20 ms is the reference and no longer late.
        std::thread::sleep(Duration::from_millis(60));
        answer(&l, Duration::from_millis(20));
        std::thread::sleep(Duration::from_millis(60));
        let before = l.limit();
        busy_answers(&l, Duration::from_millis(21), 1);
        assert_eq!(l.limit(), before + 1);
    }
}
