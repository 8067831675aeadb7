//! The network layer's runtime view: named lists (from the config and from list files,
//! re-read when a file changes), each listener's and route's policy over them, and how
//! the client address is found behind trusted proxies. Built with the snapshot.

use crate::snapshot::Problem;
use rampart_config::{
    ClientIpHeader, NetworkAction, NetworkList, NetworkPolicy, NetworkSettings, ServerSettings,
};
use rampart_net::{ClientIp, HeaderSource, IpSet, IpSetBuilder};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

/// Errors reported per list file (a million-line file with a wrong format would
/// otherwise print a million lines).
const MAX_FILE_ERRORS: usize = 10;

/// A built list and the files it was read from (path, modified, length), so a reload
/// rebuilds only lists whose definition or files changed.
pub struct ListRt {
    pub def: NetworkList,
    pub set: Arc<IpSet>,
    files: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

fn stamp(p: &str) -> (PathBuf, Option<SystemTime>, u64) {
    let meta = std::fs::metadata(p).ok();
    (
        PathBuf::from(p),
        meta.as_ref().and_then(|m| m.modified().ok()),
        meta.map(|m| m.len()).unwrap_or(0),
    )
}

impl ListRt {
    fn build(
        name: &str,
        def: &NetworkList,
        previous: Option<&ListRt>,
    ) -> Result<ListRt, Vec<Problem>> {
        let files: Vec<_> = def.files.iter().map(|f| stamp(f)).collect();
        if let Some(p) = previous {
            if p.def == *def && p.files == files {
                return Ok(ListRt {
                    def: def.clone(),
                    set: p.set.clone(),
                    files,
                });
            }
        }
        let mut b = IpSetBuilder::default();
        let mut errs = Vec::new();
        for c in &def.cidrs {
            // Each entry was checked by the config's own validation.
            let _ = b.add_str(c);
        }
        for (i, f) in def.files.iter().enumerate() {
            let path = format!("network.lists.{name}.files.{i}");
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    if let Err(e) = b.add_text(&text, f, MAX_FILE_ERRORS) {
                        errs.extend(e.into_iter().map(|m| (path.clone(), m)));
                    }
                }
                Err(e) => errs.push((path, format!("{f}: cannot read: {e}"))),
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(ListRt {
            def: def.clone(),
            set: Arc::new(b.build()),
            files,
        })
    }
}

/// Every list file's current modification time and length, to notice a change.
pub fn file_stamps(lists: &BTreeMap<String, ListRt>) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    lists
        .values()
        .flat_map(|l| l.def.files.iter().map(|f| stamp(f)))
        .collect()
}

/// Every named list, built (or reused from `previous` when unchanged).
pub fn build_lists(
    n: &NetworkSettings,
    previous: Option<&BTreeMap<String, ListRt>>,
) -> Result<BTreeMap<String, ListRt>, Vec<Problem>> {
    let mut out = BTreeMap::new();
    let mut errs = Vec::new();
    for (name, def) in &n.lists {
        match ListRt::build(name, def, previous.and_then(|p| p.get(name))) {
            Ok(l) => {
                out.insert(name.clone(), l);
            }
            Err(e) => errs.extend(e),
        }
    }
    if errs.is_empty() {
        Ok(out)
    } else {
        Err(errs)
    }
}

/// The client-address resolution the config asks for.
pub fn client_ip(n: &ServerSettings) -> ClientIp {
    // Entries were checked by the config's own validation.
    let trusted = IpSet::parse(n.trusted_proxies.iter().map(String::as_str)).unwrap_or_default();
    let source = match n.client_ip_header {
        ClientIpHeader::XForwardedFor => HeaderSource::XForwardedFor,
        ClientIpHeader::Forwarded => HeaderSource::Forwarded,
    };
    ClientIp::new(trusted, source)
}

/// A listener's or route's policy with its lists resolved.
pub struct PolicyRt {
    allow_only: Vec<Arc<IpSet>>,
    deny: Vec<Arc<IpSet>>,
    pub action: NetworkAction,
}

/// Why a policy refused an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Denied,
    NotAllowed,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Denied => "network denied",
            Refusal::NotAllowed => "network not allowed",
        }
    }
}

impl PolicyRt {
    pub fn new(p: &NetworkPolicy, lists: &BTreeMap<String, ListRt>) -> PolicyRt {
        // Names were checked by the config's own validation.
        let sets = |names: &[String]| -> Vec<Arc<IpSet>> {
            names
                .iter()
                .filter_map(|n| lists.get(n).map(|l| l.set.clone()))
                .collect()
        };
        PolicyRt {
            allow_only: sets(&p.allow_only),
            deny: sets(&p.deny),
            action: p.action,
        }
    }

    /// Deny lists win over allow lists.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        if self.deny.iter().any(|s| s.contains(ip)) {
            return Err(Refusal::Denied);
        }
        if !self.allow_only.is_empty() && !self.allow_only.iter().any(|s| s.contains(ip)) {
            return Err(Refusal::NotAllowed);
        }
        Ok(())
    }
}

/// The listener's policy on a connection's peer, decided at accept when the peer speaks
/// only for itself (it is not a trusted proxy): the reason it is refused, if it is.
pub fn refused_at_accept(
    snap: &crate::snapshot::Snapshot,
    peer: IpAddr,
    local: Option<std::net::SocketAddr>,
) -> Option<&'static str> {
    if snap.client_ip.is_trusted(peer) {
        return None;
    }
    let listener = &snap.listeners[snap.listener_for(local?)?];
    let refusal = listener
        .network
        .as_ref()?
        .check(peer.to_canonical())
        .err()?;
    Some(refusal.reason())
}

/// The ban list: kept across reloads while its settings stay (bans and their sync task
/// live on); local bans are carried into a list with new settings.
pub fn ban_list(
    c: &rampart_config::Config,
    previous: Option<&crate::snapshot::Snapshot>,
    runtime: Option<&tokio::runtime::Handle>,
) -> Result<Arc<rampart_bans::BanList>, Vec<Problem>> {
    use rampart_config::BanBackend;
    if let Some(p) = previous {
        if p.config.bans == c.bans
            && (c.bans.backend == BanBackend::Local || p.config.redis == c.redis)
        {
            return Ok(p.bans.clone());
        }
    }
    let redis = match (c.bans.backend, c.redis.as_deref()) {
        (BanBackend::Redis, Some(url)) => Some(
            rampart_redis::RedisHandle::new(url, "bans", std::time::Duration::from_millis(500))
                .map_err(|e| vec![("redis".to_string(), e.to_string())])?,
        ),
        _ => None,
    };
    let list = Arc::new(rampart_bans::BanList::new(rampart_bans::BanSettings {
        // Checked by the config's own validation.
        never: IpSet::parse(c.bans.never.iter().map(String::as_str)).unwrap_or_default(),
        max_automatic: c.bans.max_automatic,
        redis,
    }));
    if let (Some(p), BanBackend::Local) = (previous, c.bans.backend) {
        list.replace(p.bans.list());
    }
    if let Some(rt) = runtime {
        list.sync(rt);
    }
    Ok(list)
}

/// The playbooks, counting in Redis when bans are shared.
pub fn responses(
    c: &rampart_config::Config,
    bans: &Arc<rampart_bans::BanList>,
    previous: Option<&crate::snapshot::Snapshot>,
) -> Arc<rampart_bans::Responses> {
    use rampart_bans::{EventKind, Playbook, Subject};
    use rampart_config::{ResponseEvent, ResponseKey};
    if let Some(p) = previous {
        if p.config.responses == c.responses && Arc::ptr_eq(&p.bans, bans) {
            return p.responses.clone();
        }
    }
    let playbooks = c
        .responses
        .iter()
        .map(|r| Playbook {
            name: r.name.clone(),
            on: r
                .on
                .iter()
                .map(|e| match e {
                    ResponseEvent::WafBlock => EventKind::WafBlock,
                    ResponseEvent::AuthFailure => EventKind::AuthFailure,
                    ResponseEvent::Lockout => EventKind::Lockout,
                    ResponseEvent::RateLimited => EventKind::RateLimited,
                    ResponseEvent::ValidationFailure => EventKind::ValidationFailure,
                })
                .collect(),
            subject: match r.key {
                ResponseKey::ClientIp => Subject::ClientIp,
                ResponseKey::Consumer => Subject::Consumer,
            },
            count: r.count,
            within: r.within.0,
            ban: r.ban.0,
            escalate: r.escalate.iter().map(|d| d.0).collect(),
        })
        .collect();
    let redis = match (c.bans.backend, c.redis.as_deref()) {
        (rampart_config::BanBackend::Redis, Some(url)) => {
            rampart_redis::RedisHandle::new(url, "responses", std::time::Duration::from_millis(500))
                .ok()
        }
        _ => None,
    };
    Arc::new(rampart_bans::Responses::new(playbooks, bans.clone(), redis))
}
