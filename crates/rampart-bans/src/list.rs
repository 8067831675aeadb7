//! The ban list: a snapshot read by every request, rebuilt on change, shared through Redis.

use crate::{now_ms, BanKey};
use arc_swap::ArcSwap;
use rampart_net::IpSet;
use rampart_redis::{redis, RedisHandle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The Redis hash holding every ban (field: the key, value: the ban as JSON).
const HASH: &str = "rampart:bans";
/// The channel a node publishes on after changing the hash.
const CHANNEL: &str = "rampart:bans:changed";
/// How often the hash is re-read even without a message (a missed message, a restart of
/// Redis, expired entries).
const RESYNC: Duration = Duration::from_secs(5);

/// One ban.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// What is banned ([`BanKey`] text).
    pub key: String,
    /// Until when (Unix milliseconds).
    pub until_ms: u64,
    /// Why, for operators (never request data).
    pub reason: String,
    /// The playbook that set it, for automatic bans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    /// A throttle rather than a ban: the key is held to this rate (`10/minute`) instead of
    /// being refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<String>,
}

impl Ban {
    /// Still in force at `now` (Unix milliseconds).
    pub fn active(&self, now: u64) -> bool {
        self.until_ms > now
    }
}

/// Why a ban was not set (an [`crate::Error`]).
pub type Refused = crate::Error;

/// How bans are kept.
pub struct BanSettings {
    /// Networks that can never be banned (by hand or by a playbook).
    pub never: IpSet,
    /// Automatic bans in force at most; beyond it playbooks ban no one.
    pub max_automatic: usize,
    /// Shared store; `None` keeps bans on this node.
    pub redis: Option<RedisHandle>,
}

/// What requests read: bans by key, built from the full list.
#[derive(Default)]
struct State {
    ips: HashMap<IpAddr, Ban>,
    /// Every banned network, for a quick "no" before the scan of `nets`.
    net_set: IpSet,
    nets: Vec<(IpAddr, u8, Ban)>,
    consumers: HashMap<String, Ban>,
}

impl State {
    fn build(bans: impl IntoIterator<Item = Ban>, now: u64) -> State {
        let mut s = State::default();
        let mut nets = rampart_net::IpSetBuilder::default();
        for b in bans {
            if !b.active(now) {
                continue;
            }
            match BanKey::parse(&b.key) {
                Ok(BanKey::Ip(ip)) => {
                    s.ips.insert(ip, b);
                }
                Ok(BanKey::Net(ip, p)) => {
                    nets.add(ip, p);
                    s.nets.push((ip, p, b));
                }
                Ok(BanKey::Consumer(c)) => {
                    s.consumers.insert(c, b);
                }
                Err(e) => log::warn!("bans: ignoring an entry with a bad key: {e}"),
            }
        }
        s.net_set = nets.build();
        s
    }

    fn all(&self) -> impl Iterator<Item = &Ban> {
        self.ips
            .values()
            .chain(self.nets.iter().map(|(_, _, b)| b))
            .chain(self.consumers.values())
    }
}

/// The ban list of this node (and, with Redis, of every node).
pub struct BanList {
    state: ArcSwap<State>,
    /// Writers change the list one at a time (rare, off the request path).
    write: Mutex<()>,
    settings: BanSettings,
}

impl BanList {
    /// An empty list; with Redis, [`BanList::sync`] loads and follows the shared one.
    pub fn new(settings: BanSettings) -> BanList {
        BanList {
            state: ArcSwap::from_pointee(State::default()),
            write: Mutex::new(()),
            settings,
        }
    }

    /// Whether bans are shared through Redis.
    pub fn shared(&self) -> bool {
        self.settings.redis.is_some()
    }

    /// The ban in force on `ip` (its own, or one of a network holding it).
    pub fn ip(&self, ip: IpAddr) -> Option<Ban> {
        let ip = ip.to_canonical();
        let s = self.state.load();
        let now = now_ms();
        if let Some(b) = s.ips.get(&ip).filter(|b| b.active(now)) {
            return Some(b.clone());
        }
        if !s.net_set.contains(ip) {
            return None;
        }
        s.nets
            .iter()
            .find(|(n, p, b)| b.active(now) && rampart_net::net_contains(*n, *p, ip))
            .map(|(_, _, b)| b.clone())
    }

    /// The ban in force on a consumer.
    pub fn consumer(&self, id: &str) -> Option<Ban> {
        let now = now_ms();
        self.state
            .load()
            .consumers
            .get(id)
            .filter(|b| b.active(now))
            .cloned()
    }

    /// Every ban in force, by key.
    pub fn list(&self) -> Vec<Ban> {
        let now = now_ms();
        let mut v: Vec<Ban> = self
            .state
            .load()
            .all()
            .filter(|b| b.active(now))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.key.cmp(&b.key));
        v
    }

    fn automatic_in_force(&self) -> usize {
        let now = now_ms();
        self.state
            .load()
            .all()
            .filter(|b| b.playbook.is_some() && b.active(now))
            .count()
    }

    /// Sets a ban. Refused for an address in `never`, and for an automatic ban beyond the
    /// cap. `Ok(false)`: set on this node only, because Redis could not be reached.
    pub async fn add(&self, ban: Ban) -> Result<bool, Refused> {
        let key = BanKey::parse(&ban.key)?;
        let never = match key {
            BanKey::Ip(ip) => self.settings.never.contains(ip),
            // A network holding a never-banned address is refused as a whole.
            BanKey::Net(net, p) => self.settings.never.overlaps_net(net, p),
            BanKey::Consumer(_) => false,
        };
        if never {
            return Err(Refused::NeverBanned);
        }
        if ban.playbook.is_some() && self.automatic_in_force() >= self.settings.max_automatic {
            return Err(Refused::CapReached);
        }
        // A throttle never softens a ban in force.
        if ban.limit.is_some() {
            let (now, text) = (now_ms(), key.to_string());
            let banned = self
                .state
                .load()
                .all()
                .any(|b| b.key == text && b.limit.is_none() && b.active(now));
            if banned {
                return Err(Refused::AlreadyBanned);
            }
        }
        let ban = Ban {
            key: key.to_string(),
            ..ban
        };
        let shared = match &self.settings.redis {
            Some(r) => store(r, &ban).await,
            None => true,
        };
        self.apply(|m| {
            m.insert(ban.key.clone(), ban.clone());
        });
        Ok(shared)
    }

    /// Lifts a ban; `Ok(false)`: on this node only (Redis unreachable).
    pub async fn remove(&self, key: &str) -> Result<bool, Refused> {
        let key = BanKey::parse(key)?.to_string();
        let shared = match &self.settings.redis {
            Some(r) => unstore(r, &key).await,
            None => true,
        };
        self.apply(|m| {
            m.remove(&key);
        });
        Ok(shared)
    }

    fn apply(&self, change: impl FnOnce(&mut HashMap<String, Ban>)) {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        let mut all: HashMap<String, Ban> = self
            .state
            .load()
            .all()
            .map(|b| (b.key.clone(), b.clone()))
            .collect();
        change(&mut all);
        self.state
            .store(Arc::new(State::build(all.into_values(), now_ms())));
    }

    /// Replaces the whole list (a re-read of the shared hash, or a local list carried over
    /// a reload that changed the ban settings).
    pub fn replace(&self, bans: Vec<Ban>) {
        let _one = self.write.lock().unwrap_or_else(|p| p.into_inner());
        self.state.store(Arc::new(State::build(bans, now_ms())));
    }

    /// Re-reads the shared hash now; false when Redis could not be read (the list in force
    /// stays).
    pub async fn resync(&self) -> bool {
        let Some(r) = &self.settings.redis else {
            return true;
        };
        match load(r).await {
            Some(bans) => {
                self.replace(bans);
                true
            }
            None => false,
        }
    }

    /// Re-reads the shared hash after an outage, first writing back the bans in force here
    /// that it lacks: a ban is never lost to a Redis restart or to an outage during which it
    /// was set. (A ban lifted elsewhere during a partition comes back: denying is the safe
    /// side.) False when Redis could not be used.
    pub async fn merge_back(&self) -> bool {
        let Some(r) = &self.settings.redis else {
            return true;
        };
        let Some(shared) = load(r).await else {
            return false;
        };
        let now = now_ms();
        let missing: Vec<Ban> = self
            .state
            .load()
            .all()
            .filter(|b| b.active(now) && !shared.iter().any(|s| s.key == b.key))
            .cloned()
            .collect();
        for b in &missing {
            if !store(r, b).await {
                return false;
            }
        }
        let mut all = shared;
        all.extend(missing);
        self.replace(all);
        true
    }

    async fn refresh(&self, after_outage: bool) -> bool {
        if after_outage {
            self.merge_back().await
        } else {
            self.resync().await
        }
    }

    /// Follows the shared list for as long as the process runs: a re-read on every change
    /// message and every few seconds. Nothing to do without Redis. `on_reachable` is told
    /// when Redis stops answering (`false`: this node serves its last copy) and when it
    /// answers again (`true`), once per change.
    pub fn sync(
        self: &Arc<Self>,
        rt: &tokio::runtime::Handle,
        on_reachable: impl Fn(bool) + Send + Sync + 'static,
    ) {
        let Some(r) = &self.settings.redis else {
            return;
        };
        let client = r.client().clone();
        let me = Arc::downgrade(self);
        rt.spawn(async move {
            use futures_util::StreamExt;
            // Assumed reachable at start: the first failure is reported.
            let mut reachable = true;
            let mut report = |now: bool| {
                if now != reachable {
                    reachable = now;
                    on_reachable(now);
                }
            };
            // After an outage the hash may have lost what this node holds (a Redis restart
            // without persistence, bans set here while it was down): merge, don't replace.
            let mut after_outage = false;
            loop {
                let Some(list) = me.upgrade() else { return };
                after_outage = !list.refresh(after_outage).await;
                report(!after_outage);
                let pubsub = match client.get_async_pubsub().await {
                    Ok(mut p) => p.subscribe(CHANNEL).await.ok().map(|_| p),
                    Err(_) => None,
                };
                let Some(pubsub) = pubsub else {
                    after_outage = true;
                    report(false);
                    drop(list);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                };
                let mut messages = pubsub.into_on_message();
                // A change message, or the periodic re-read; `Ok(None)`: the subscription
                // ended (Redis went away), so subscribe again.
                while let Ok(Some(_)) | Err(_) = tokio::time::timeout(RESYNC, messages.next()).await
                {
                    after_outage = !list.refresh(after_outage).await;
                    report(!after_outage);
                }
                after_outage = true;
                report(false);
                drop(list);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
    }
}

async fn store(r: &RedisHandle, ban: &Ban) -> bool {
    let Some(mut c) = r.connection().await else {
        return false;
    };
    let json = serde_json::to_string(ban).unwrap_or_default();
    redis::pipe()
        .hset(HASH, &ban.key, json)
        .ignore()
        .publish(CHANNEL, &ban.key)
        .ignore()
        .query_async::<()>(&mut c)
        .await
        .is_ok()
}

async fn unstore(r: &RedisHandle, key: &str) -> bool {
    let Some(mut c) = r.connection().await else {
        return false;
    };
    redis::pipe()
        .hdel(HASH, key)
        .ignore()
        .publish(CHANNEL, key)
        .ignore()
        .query_async::<()>(&mut c)
        .await
        .is_ok()
}

/// The shared hash; expired entries are deleted as they are met.
async fn load(r: &RedisHandle) -> Option<Vec<Ban>> {
    let mut c = r.connection().await?;
    let all: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(HASH)
        .query_async(&mut c)
        .await
        .ok()?;
    let now = now_ms();
    let mut out = Vec::new();
    let mut expired = Vec::new();
    for (k, v) in all {
        match serde_json::from_str::<Ban>(&v) {
            Ok(b) if b.active(now) => out.push(b),
            _ => expired.push(k),
        }
    }
    if !expired.is_empty() {
        let _: Result<(), _> = redis::cmd("HDEL")
            .arg(HASH)
            .arg(&expired)
            .query_async(&mut c)
            .await;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(key: &str, secs: u64, playbook: Option<&str>) -> Ban {
        Ban {
            key: key.into(),
            until_ms: now_ms() + secs * 1000,
            reason: "test".into(),
            playbook: playbook.map(String::from),
            limit: None,
        }
    }

    /// A throttle never replaces a ban in force; a ban replaces a throttle.
    #[tokio::test]
    async fn a_throttle_never_softens_a_ban() {
        let list = local(&[], 10);
        let throttle = |k: &str| Ban {
            limit: Some("2/minute".into()),
            ..ban(k, 60, Some("p"))
        };
        list.add(ban("ip:192.0.2.1", 60, None)).await.unwrap();
        assert_eq!(
            list.add(throttle("ip:192.0.2.1")).await,
            Err(Refused::AlreadyBanned)
        );
        assert_eq!(list.ip("192.0.2.1".parse().unwrap()).unwrap().limit, None);
        list.add(throttle("ip:192.0.2.2")).await.unwrap();
        let ip = "192.0.2.2".parse().unwrap();
        assert_eq!(list.ip(ip).unwrap().limit.as_deref(), Some("2/minute"));
        list.add(ban("ip:192.0.2.2", 60, None)).await.unwrap();
        assert_eq!(list.ip(ip).unwrap().limit, None);
    }

    fn local(never: &[&str], cap: usize) -> BanList {
        BanList::new(BanSettings {
            never: IpSet::parse(never.iter().copied()).unwrap(),
            max_automatic: cap,
            redis: None,
        })
    }

    #[tokio::test]
    async fn ips_networks_consumers_and_expiry() {
        let l = local(&[], 10);
        l.add(ban("192.0.2.1", 60, None)).await.unwrap();
        l.add(ban("net:10.0.0.0/8", 60, None)).await.unwrap();
        l.add(ban("consumer:alice", 60, None)).await.unwrap();
        l.add(ban("192.0.2.9", 0, None)).await.unwrap();
        assert!(l.ip("192.0.2.1".parse().unwrap()).is_some());
        assert!(l.ip("::ffff:192.0.2.1".parse().unwrap()).is_some());
        assert!(l.ip("10.200.0.1".parse().unwrap()).is_some());
        assert!(l.ip("192.0.2.2".parse().unwrap()).is_none());
        assert!(l.ip("192.0.2.9".parse().unwrap()).is_none(), "expired");
        assert!(l.consumer("alice").is_some() && l.consumer("bob").is_none());
        assert_eq!(l.list().len(), 3);
        l.remove("ip:192.0.2.1").await.unwrap();
        assert!(l.ip("192.0.2.1".parse().unwrap()).is_none());
    }

    #[tokio::test]
    async fn never_banned_networks_and_the_cap() {
        let l = local(&["192.0.2.0/24"], 2);
        assert_eq!(
            l.add(ban("192.0.2.7", 60, None)).await,
            Err(Refused::NeverBanned)
        );
        assert_eq!(
            l.add(ban("net:192.0.0.0/16", 60, None)).await,
            Err(Refused::NeverBanned)
        );
        l.add(ban("198.51.100.1", 60, Some("p"))).await.unwrap();
        l.add(ban("198.51.100.2", 60, Some("p"))).await.unwrap();
        assert_eq!(
            l.add(ban("198.51.100.3", 60, Some("p"))).await,
            Err(Refused::CapReached)
        );
        // By hand, beyond the cap.
        l.add(ban("198.51.100.3", 60, None)).await.unwrap();
    }

    /// Two lists on the test machine's Redis: a ban set on one is in force on the other
    /// after its change message, well within a second.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shared_through_redis() {
        let mk = || {
            Arc::new(BanList::new(BanSettings {
                never: IpSet::default(),
                max_automatic: 100,
                redis: Some(
                    RedisHandle::new("redis://127.0.0.1:6379", "bans", Duration::from_millis(500))
                        .unwrap(),
                ),
            }))
        };
        let (a, b) = (mk(), mk());
        b.sync(&tokio::runtime::Handle::current(), |_| {});
        tokio::time::sleep(Duration::from_millis(300)).await;
        let ip = format!("203.0.113.{}", (now_ms() % 250) as u8 + 1);
        a.remove(&ip).await.unwrap();
        assert!(a.add(ban(&ip, 30, None)).await.unwrap());
        let t = std::time::Instant::now();
        while b.ip(ip.parse().unwrap()).is_none() {
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "not seen on the other node"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(a.remove(&ip).await.unwrap());
        let t = std::time::Instant::now();
        while b.ip(ip.parse().unwrap()).is_some() {
            assert!(t.elapsed() < Duration::from_secs(1), "lift not seen");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}
