//! Automatic responses: when a key (client IP or consumer) produces `count` security
//! events of given kinds within a window, ban it; each repeat within a day bans longer.
//! Counting is local, or in Redis so that every node counts toward the same threshold.

use crate::{now_ms, Ban, BanKey, BanList, Refused};
use rampart_redis::{redis, RedisHandle};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Security events a playbook can count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// The WAF refused the request.
    WafBlock,
    /// Credentials were missing or wrong.
    AuthFailure,
    /// The account or address is locked out after failed attempts.
    Lockout,
    /// A rate limit or quota refused the request.
    RateLimited,
    /// The request broke the route's input contract.
    ValidationFailure,
}

impl EventKind {
    /// The name configs and events use.
    pub fn name(self) -> &'static str {
        match self {
            EventKind::WafBlock => "waf_block",
            EventKind::AuthFailure => "auth_failure",
            EventKind::Lockout => "lockout",
            EventKind::RateLimited => "rate_limited",
            EventKind::ValidationFailure => "validation_failure",
        }
    }
}

/// What a playbook counts by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// The client address (the real one behind trusted proxies).
    ClientIp,
    /// The authenticated consumer.
    Consumer,
}

/// One playbook.
#[derive(Debug, Clone)]
pub struct Playbook {
    /// Named in events and in the bans it sets.
    pub name: String,
    /// The event kinds it counts.
    pub on: Vec<EventKind>,
    /// Whose events are counted.
    pub subject: Subject,
    /// Events within `within` that trigger the response.
    pub count: u32,
    /// The counting window.
    pub within: Duration,
    /// The first ban's length.
    pub ban: Duration,
    /// Lengths of the bans that follow, within a day of the previous one (the last repeats).
    pub escalate: Vec<Duration>,
    /// Hold the key to this rate (`10/minute`) for the ban's length instead of refusing it.
    pub throttle: Option<String>,
}

/// What a playbook did, for the event stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A ban was set. `shared: false` when Redis could not be reached (this node only).
    Banned {
        /// The playbook's name.
        playbook: String,
        /// The banned key ([`BanKey`] text).
        key: String,
        /// How long.
        duration: Duration,
        /// 1 for the first ban, 2 for the first escalation...
        level: u32,
        /// Stored in Redis for every node (false: on this node only).
        shared: bool,
        /// A throttle to this rate rather than a ban.
        limit: Option<String>,
    },
    /// The threshold was reached but no ban was set.
    NotBanned {
        /// The playbook's name.
        playbook: String,
        /// The key that would have been banned.
        key: String,
        /// Why it was not.
        why: Refused,
    },
}

/// How long a key's ban count is remembered for escalation.
const LEVEL_MEMORY: Duration = Duration::from_secs(24 * 3600);
/// Local counters kept at most; beyond it, expired ones are dropped, then new keys wait.
const MAX_LOCAL: usize = 100_000;

#[derive(Default)]
struct Local {
    /// (playbook, key) → (window start, events in it).
    counts: HashMap<(usize, String), (u64, u32)>,
    /// (playbook, key) → (bans so far, time of the last).
    levels: HashMap<(usize, String), (u32, u64)>,
}

/// The playbooks of one config, over a ban list.
pub struct Responses {
    playbooks: Vec<Playbook>,
    bans: Arc<BanList>,
    redis: Option<RedisHandle>,
    local: Mutex<Local>,
}

impl Responses {
    /// Playbooks over `bans`; with `redis`, counts are shared by every node.
    pub fn new(playbooks: Vec<Playbook>, bans: Arc<BanList>, redis: Option<RedisHandle>) -> Self {
        Responses {
            playbooks,
            bans,
            redis,
            local: Mutex::default(),
        }
    }

    /// Whether any playbook counts `kind`.
    pub fn counts(&self, kind: EventKind) -> bool {
        self.playbooks.iter().any(|p| p.on.contains(&kind))
    }

    /// Records one security event; returns what the playbooks did.
    pub async fn observe(
        &self,
        kind: EventKind,
        ip: Option<IpAddr>,
        consumer: Option<&str>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        for (i, p) in self.playbooks.iter().enumerate() {
            if !p.on.contains(&kind) {
                continue;
            }
            let key = match p.subject {
                Subject::ClientIp => ip.map(|ip| BanKey::Ip(ip.to_canonical())),
                Subject::Consumer => consumer.map(|c| BanKey::Consumer(c.to_string())),
            };
            let Some(key) = key.map(|k| k.to_string()) else {
                continue;
            };
            let Some(level) = self.count(i, p, &key).await else {
                continue;
            };
            let duration = match level {
                0 | 1 => p.ban,
                n => p
                    .escalate
                    .get(n as usize - 2)
                    .or(p.escalate.last())
                    .copied()
                    .unwrap_or(p.ban),
            };
            let ban = Ban {
                key: key.clone(),
                until_ms: now_ms() + duration.as_millis() as u64,
                reason: format!(
                    "playbook {}: {} events in {}s",
                    p.name,
                    p.count,
                    p.within.as_secs()
                ),
                playbook: Some(p.name.clone()),
                limit: p.throttle.clone(),
            };
            out.push(match self.bans.add(ban).await {
                Ok(shared) => Action::Banned {
                    playbook: p.name.clone(),
                    key,
                    duration,
                    level,
                    shared,
                    limit: p.throttle.clone(),
                },
                Err(why) => Action::NotBanned {
                    playbook: p.name.clone(),
                    key,
                    why,
                },
            });
        }
        out
    }

    /// Counts one event; at the threshold, restarts the count and returns the ban level.
    async fn count(&self, i: usize, p: &Playbook, key: &str) -> Option<u32> {
        if let Some(r) = &self.redis {
            if let Some(level) = shared_count(r, p, key).await {
                return level;
            }
            // Redis unreachable: count on this node rather than not at all.
        }
        self.local_count(i, p, key)
    }

    fn local_count(&self, i: usize, p: &Playbook, key: &str) -> Option<u32> {
        let now = now_ms();
        let window = p.within.as_millis() as u64;
        let mut l = self.local.lock().unwrap_or_else(|e| e.into_inner());
        if l.counts.len() >= MAX_LOCAL {
            l.counts
                .retain(|_, (start, _)| now.saturating_sub(*start) < window);
            if l.counts.len() >= MAX_LOCAL {
                return None;
            }
        }
        let id = (i, key.to_string());
        let e = l.counts.entry(id.clone()).or_insert((now, 0));
        if now.saturating_sub(e.0) >= window {
            *e = (now, 0);
        }
        e.1 += 1;
        if e.1 < p.count {
            return None;
        }
        l.counts.remove(&id);
        if l.levels.len() >= MAX_LOCAL {
            let memory = LEVEL_MEMORY.as_millis() as u64;
            l.levels
                .retain(|_, (_, last)| now.saturating_sub(*last) < memory);
        }
        let lv = l.levels.entry(id).or_insert((0, now));
        if now.saturating_sub(lv.1) >= LEVEL_MEMORY.as_millis() as u64 {
            lv.0 = 0;
        }
        lv.0 += 1;
        lv.1 = now;
        Some(lv.0)
    }
}

/// Counting in Redis: `Some(None)` below the threshold, `Some(Some(level))` at it, `None`
/// when Redis could not be used.
async fn shared_count(r: &RedisHandle, p: &Playbook, key: &str) -> Option<Option<u32>> {
    let mut c = r.connection().await?;
    let counter = format!("rampart:resp:{}:{key}", p.name);
    let (n,): (u32,) = redis::pipe()
        .incr(&counter, 1)
        .cmd("PEXPIRE")
        .arg(&counter)
        .arg(p.within.as_millis() as u64)
        .arg("NX")
        .ignore()
        .query_async(&mut c)
        .await
        .ok()?;
    if n < p.count {
        return Some(None);
    }
    // Whoever takes the counter away reached the threshold; another node racing on the same
    // event finds it gone and does not ban twice.
    let taken: u32 = redis::cmd("DEL")
        .arg(&counter)
        .query_async(&mut c)
        .await
        .ok()?;
    if taken == 0 {
        return Some(None);
    }
    let levels = format!("rampart:resp:level:{}:{key}", p.name);
    let (level,): (u32,) = redis::pipe()
        .incr(&levels, 1)
        .cmd("PEXPIRE")
        .arg(&levels)
        .arg(LEVEL_MEMORY.as_millis() as u64)
        .ignore()
        .query_async(&mut c)
        .await
        .ok()?;
    Some(Some(level))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BanSettings;
    use rampart_net::IpSet;

    fn playbook(name: &str) -> Playbook {
        Playbook {
            name: name.into(),
            on: vec![EventKind::WafBlock],
            subject: Subject::ClientIp,
            count: 3,
            within: Duration::from_secs(60),
            ban: Duration::from_secs(60),
            escalate: vec![Duration::from_secs(600), Duration::from_secs(3600)],
            throttle: None,
        }
    }

    fn bans(never: &[&str]) -> Arc<BanList> {
        Arc::new(BanList::new(BanSettings {
            never: IpSet::parse(never.iter().copied()).unwrap(),
            max_automatic: 100,
            redis: None,
        }))
    }

    #[tokio::test]
    async fn threshold_escalation_and_never_banned() {
        let list = bans(&["192.0.2.0/24"]);
        let r = Responses::new(vec![playbook("sqli")], list.clone(), None);
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let mut durations = Vec::new();
        for _ in 0..12 {
            for a in r.observe(EventKind::WafBlock, Some(ip), None).await {
                if let Action::Banned { duration, .. } = a {
                    durations.push(duration.as_secs());
                }
            }
        }
        assert_eq!(durations, [60, 600, 3600, 3600]);
        assert!(list.ip(ip).is_some());
        // Other kinds are not counted.
        let other: IpAddr = "203.0.113.6".parse().unwrap();
        for _ in 0..5 {
            assert!(r
                .observe(EventKind::AuthFailure, Some(other), None)
                .await
                .is_empty());
        }
        let safe: IpAddr = "192.0.2.8".parse().unwrap();
        let mut refused = 0;
        for _ in 0..3 {
            for a in r.observe(EventKind::WafBlock, Some(safe), None).await {
                assert!(matches!(
                    a,
                    Action::NotBanned {
                        why: Refused::NeverBanned,
                        ..
                    }
                ));
                refused += 1;
            }
        }
        assert_eq!(refused, 1);
        assert!(list.ip(safe).is_none());
    }

    /// Two nodes counting in the machine's Redis reach one threshold together.
    #[tokio::test]
    async fn nodes_count_together_through_redis() {
        let handle = || {
            Some(
                RedisHandle::new("redis://127.0.0.1:6379", "test", Duration::from_millis(500))
                    .unwrap(),
            )
        };
        let name = format!("t{}", now_ms());
        let a = Responses::new(vec![playbook(&name)], bans(&[]), handle());
        let b = Responses::new(vec![playbook(&name)], bans(&[]), handle());
        let ip: IpAddr = "198.51.100.77".parse().unwrap();
        assert!(a
            .observe(EventKind::WafBlock, Some(ip), None)
            .await
            .is_empty());
        assert!(b
            .observe(EventKind::WafBlock, Some(ip), None)
            .await
            .is_empty());
        let third = a.observe(EventKind::WafBlock, Some(ip), None).await;
        assert!(
            matches!(third.as_slice(), [Action::Banned { level: 1, .. }]),
            "{third:?}"
        );
    }
}
