//! The network layer's runtime view: named lists (from the config and from list files,
//! re-read when a file changes), each listener's and route's policy over them, and how
//! the client address is found behind trusted proxies. Built with the snapshot.

use crate::snapshot::Problem;
use rampart_config::{
    ClientIpHeader, NetworkAction, NetworkList, NetworkPolicy, NetworkSettings, ServerSettings,
};
use rampart_net::{ClientIp, HeaderSource, IpSet, IpSetBuilder};
use std::collections::{BTreeMap, HashSet};
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
    pub set: Arc<ListMatch>,
    files: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

/// What a list matches: networks, countries, autonomous systems.
pub struct ListMatch {
    nets: IpSet,
    countries: HashSet<[u8; 2]>,
    asns: HashSet<u32>,
}

/// An address's country and AS, looked up at most once per check and only if a list
/// needs them.
struct Located<'g> {
    ip: IpAddr,
    geo: &'g GeoRt,
    country: Option<Option<[u8; 2]>>,
    asn: Option<Option<u32>>,
}

impl Located<'_> {
    fn country(&mut self) -> Option<[u8; 2]> {
        let (ip, geo) = (self.ip, self.geo);
        *self
            .country
            .get_or_insert_with(|| geo.country.as_ref().and_then(|d| d.country(ip)))
    }

    fn asn(&mut self) -> Option<u32> {
        let (ip, geo) = (self.ip, self.geo);
        *self
            .asn
            .get_or_insert_with(|| geo.asn.as_ref().and_then(|d| d.asn(ip)))
    }
}

impl ListMatch {
    /// Whether `ip` is in the list (its networks, countries or autonomous systems).
    pub fn contains(&self, ip: IpAddr, geo: &GeoRt) -> bool {
        self.matches(&mut Located {
            ip,
            geo,
            country: None,
            asn: None,
        })
    }

    fn matches(&self, at: &mut Located) -> bool {
        self.nets.contains(at.ip)
            || (!self.countries.is_empty()
                && at.country().is_some_and(|c| self.countries.contains(&c)))
            || (!self.asns.is_empty() && at.asn().is_some_and(|a| self.asns.contains(&a)))
    }
}

/// The geolocation databases, shared by every policy of a snapshot.
#[derive(Default)]
pub struct GeoRt {
    country: Option<Arc<rampart_net::geo::GeoDb>>,
    asn: Option<Arc<rampart_net::geo::GeoDb>>,
    def: rampart_config::GeoIp,
    files: Vec<(PathBuf, Option<SystemTime>, u64)>,
}

impl GeoRt {
    /// Opens the configured databases, or reuses `previous` when neither path nor file
    /// changed (a GeoLite2 file is tens of MB).
    pub fn build(
        g: &rampart_config::GeoIp,
        previous: Option<&Arc<GeoRt>>,
    ) -> Result<Arc<GeoRt>, Vec<Problem>> {
        let files: Vec<_> = [&g.country_db, &g.asn_db]
            .into_iter()
            .flatten()
            .map(|f| stamp(f))
            .collect();
        if let Some(p) = previous {
            if p.def == *g && p.files == files {
                return Ok(p.clone());
            }
        }
        let mut errs = Vec::new();
        let mut open = |path: &Option<String>, key: &str| {
            path.as_deref()
                .and_then(|p| match rampart_net::geo::GeoDb::open(p) {
                    Ok(db) => Some(Arc::new(db)),
                    Err(e) => {
                        errs.push((format!("network.geoip.{key}"), e.to_string()));
                        None
                    }
                })
        };
        let country = open(&g.country_db, "country_db");
        let asn = open(&g.asn_db, "asn_db");
        if !errs.is_empty() {
            return Err(errs);
        }
        Ok(Arc::new(GeoRt {
            country,
            asn,
            def: g.clone(),
            files,
        }))
    }

    /// The database files' current stamps, to notice a replaced file.
    pub fn file_stamps(&self) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
        [&self.def.country_db, &self.def.asn_db]
            .into_iter()
            .flatten()
            .map(|f| stamp(f))
            .collect()
    }

    /// The country of `ip`.
    pub fn country(&self, ip: IpAddr) -> Option<[u8; 2]> {
        self.country.as_ref()?.country(ip)
    }

    /// Whether a country database is configured (the WAF's `@geoLookup` asks it).
    pub fn has_countries(&self) -> bool {
        self.country.is_some()
    }
}

impl rampart_waf::GeoLookup for GeoRt {
    fn lookup(&self, ip: IpAddr) -> Option<rampart_waf::GeoRecord> {
        let at = self.country.as_ref()?.locate(ip)?;
        Some(rampart_waf::GeoRecord {
            country_code: String::from_utf8_lossy(&at.country).into_owned(),
            country_name: at.country_name,
            continent: at.continent,
        })
    }
}

pub(crate) fn stamp(p: &str) -> (PathBuf, Option<SystemTime>, u64) {
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
            set: Arc::new(ListMatch {
                nets: b.build(),
                // Codes were checked by the config's own validation (upper case, assigned).
                countries: def
                    .countries
                    .iter()
                    .filter_map(|c| <[u8; 2]>::try_from(c.as_bytes()).ok())
                    .collect(),
                asns: def.asns.iter().copied().collect(),
            }),
            files,
        })
    }
}

/// The stamps of every file the network layer reads (list files, geolocation databases):
/// a change re-reads the config.
pub fn watched_files(snap: &crate::snapshot::Snapshot) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    let mut s = file_stamps(&snap.lists);
    s.extend(snap.geo.file_stamps());
    s.extend(crate::contract::file_stamps(snap));
    s
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
    allow_only: Vec<Arc<ListMatch>>,
    deny: Vec<Arc<ListMatch>>,
    geo: Arc<GeoRt>,
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
    pub fn new(p: &NetworkPolicy, lists: &BTreeMap<String, ListRt>, geo: &Arc<GeoRt>) -> PolicyRt {
        // Names were checked by the config's own validation.
        let sets = |names: &[String]| -> Vec<Arc<ListMatch>> {
            names
                .iter()
                .filter_map(|n| lists.get(n).map(|l| l.set.clone()))
                .collect()
        };
        PolicyRt {
            allow_only: sets(&p.allow_only),
            deny: sets(&p.deny),
            geo: geo.clone(),
            action: p.action,
        }
    }

    /// Deny lists win over allow lists. An address a database does not know is in no
    /// country and no AS: an `allow_only` of countries refuses it.
    pub fn check(&self, ip: IpAddr) -> Result<(), Refusal> {
        let mut at = Located {
            ip,
            geo: &self.geo,
            country: None,
            asn: None,
        };
        if self.deny.iter().any(|l| l.matches(&mut at)) {
            return Err(Refusal::Denied);
        }
        if !self.allow_only.is_empty() && !self.allow_only.iter().any(|l| l.matches(&mut at)) {
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
        list.sync(rt, |reachable| {
            if reachable {
                crate::observe::system_event(
                    "bans",
                    "restored",
                    "the shared ban list is reachable again and re-read".into(),
                );
            } else {
                crate::observe::system_event(
                    "bans",
                    "degraded",
                    "redis unreachable: serving this node's last copy of the shared ban list"
                        .into(),
                );
            }
        });
    }
    Ok(list)
}

/// The playbooks, counting in Redis when bans are shared.
pub fn responses(
    c: &rampart_config::Config,
    bans: &Arc<rampart_bans::BanList>,
    previous: Option<&crate::snapshot::Snapshot>,
) -> Result<Arc<rampart_bans::Responses>, Vec<Problem>> {
    use rampart_bans::{EventKind, Playbook, Subject};
    use rampart_config::{ResponseEvent, ResponseKey};
    if let Some(p) = previous {
        if p.config.responses == c.responses && Arc::ptr_eq(&p.bans, bans) {
            return Ok(p.responses.clone());
        }
    }
    // A throttle's rate is what the rate_limit stage compiles per throttled request.
    let mut errs = Vec::new();
    for (i, r) in c.responses.iter().enumerate() {
        if let Some(rate) = &r.throttle {
            let spec = rampart_config::RateLimit {
                rate: Some(rate.clone()),
                ..Default::default()
            };
            if let Err(e) = rampart_limits::LimitRt::compile("throttle", &spec) {
                errs.push((format!("responses[{i}].throttle"), e.to_string()));
            }
        }
    }
    if !errs.is_empty() {
        return Err(errs);
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
            throttle: r.throttle.clone(),
        })
        .collect();
    let redis = match (c.bans.backend, c.redis.as_deref()) {
        (rampart_config::BanBackend::Redis, Some(url)) => {
            rampart_redis::RedisHandle::new(url, "responses", std::time::Duration::from_millis(500))
                .ok()
        }
        _ => None,
    };
    Ok(Arc::new(rampart_bans::Responses::new(
        playbooks,
        bans.clone(),
        redis,
    )))
}
