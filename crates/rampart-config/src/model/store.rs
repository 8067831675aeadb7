//! `store:`, a config shared by a fleet of nodes.

use crate::units::HumanDuration;
use serde::Deserialize;

/// Where the shared part of the config lives. Node settings (`listeners`, `admin`,
/// `access_log`, `events`, `server`, `store`) always come from this node's file; every
/// other section comes from the store.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct StoreSettings {
    /// A PostgreSQL database holding every version of the shared config.
    pub postgres: PostgresStore,
}

/// `store.postgres`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct PostgresStore {
    /// A libpq connection string or URL, e.g. `postgres://rampart@db:5432/rampart`
    /// (`${ENV}` for the password).
    pub url: String,
    /// The last good shared config, kept on local disk for starting while the database
    /// is down. Default: beside the config file, `<file>.store-cache.yaml`.
    #[serde(default)]
    pub cache: Option<String>,
    /// How long a connection attempt may take.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout: HumanDuration,
}

fn default_connect_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(2))
}

/// The top-level keys that describe this node rather than the fleet.
pub const NODE_KEYS: &[&str] = &[
    "listeners",
    "admin",
    "access_log",
    "events",
    "server",
    "store",
];
