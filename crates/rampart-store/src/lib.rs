//! The config store a fleet of Rampart nodes shares: every version of the shared config
//! document in one PostgreSQL table (who, when, the whole document), a `NOTIFY` on each new
//! version so every node picks it up at once, and the schema kept by numbered migrations.
//!
//! Versions are append-only: a rollback is a new version holding an old document. A write
//! names the version it was made on; when another node wrote first, the write is refused
//! ([`Error::Conflict`]) instead of silently overwriting it.

use futures_util::StreamExt;
use std::time::Duration;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// The channel new versions are announced on (payload: the version number).
pub const CHANNEL: &str = "rampart_config";

/// The schema, one migration per entry, applied in order, each once.
const MIGRATIONS: &[(i32, &str)] = &[(
    1,
    "CREATE TABLE rampart_config_versions (
        version    BIGSERIAL PRIMARY KEY,
        created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        author     TEXT NOT NULL,
        document   TEXT NOT NULL
    )",
)];

/// Serialises migrations between nodes starting together (an arbitrary, fixed key).
const MIGRATION_LOCK: i64 = 0x5241_4d50_4152_5431;

/// What went wrong with the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be reached or answered with an error.
    #[error("config store: {0}")]
    Db(#[from] tokio_postgres::Error),
    /// Connecting took longer than allowed.
    #[error("config store: no answer within {0:?}")]
    Timeout(Duration),
    /// Another version was stored since the one the write was made on.
    #[error("config store: version {latest} was stored meanwhile")]
    Conflict {
        /// The latest version now.
        latest: i64,
    },
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// Its number (increasing).
    pub version: i64,
    /// When it was stored (RFC 3339, the database's clock).
    pub created_at: String,
    /// Who stored it (an admin token's name, or `seed`).
    pub author: String,
    /// The shared config document (YAML or JSON text).
    pub document: String,
}

/// A connection to the store.
pub struct Store {
    client: Client,
}

/// New versions announced by other nodes (and this one); ends when the connection is lost.
pub type Announcements = tokio::sync::mpsc::UnboundedReceiver<i64>;

impl Store {
    /// Connect within `timeout`, bring the schema up to date and listen for new versions.
    /// The connection is driven by a task on the current runtime.
    pub async fn connect(url: &str, timeout: Duration) -> Result<(Store, Announcements), Error> {
        let (client, mut connection) =
            tokio::time::timeout(timeout, tokio_postgres::connect(url, NoTls))
                .await
                .map_err(|_| Error::Timeout(timeout))??;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(m) = messages.next().await {
                match m {
                    Ok(AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                        if let Ok(v) = n.payload().parse::<i64>() {
                            let _ = tx.send(v);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log::warn!("config store: connection lost: {e}");
                        break;
                    }
                }
            }
            // Dropping `tx` tells the follower the connection is gone.
        });
        let store = Store { client };
        tokio::time::timeout(timeout, async {
            store.migrate().await?;
            store
                .client
                .batch_execute(&format!("LISTEN {CHANNEL}"))
                .await?;
            Ok::<_, Error>(())
        })
        .await
        .map_err(|_| Error::Timeout(timeout))??;
        Ok((store, rx))
    }

    async fn migrate(&self) -> Result<(), Error> {
        self.client
            .batch_execute(
                "CREATE TABLE IF NOT EXISTS rampart_schema_migrations (
                    version INTEGER PRIMARY KEY,
                    applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
                )",
            )
            .await
            .or_else(ignore_concurrent_create)?;
        self.client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        let result = async {
            for (n, sql) in MIGRATIONS {
                let done = self
                    .client
                    .query_opt(
                        "SELECT 1 FROM rampart_schema_migrations WHERE version = $1",
                        &[n],
                    )
                    .await?
                    .is_some();
                if !done {
                    self.client.batch_execute(sql).await?;
                    self.client
                        .execute(
                            "INSERT INTO rampart_schema_migrations (version) VALUES ($1)",
                            &[n],
                        )
                        .await?;
                    log::warn!("config store: migration {n} applied");
                }
            }
            Ok::<_, Error>(())
        }
        .await;
        self.client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await?;
        result
    }

    fn row(r: &tokio_postgres::Row) -> Stored {
        Stored {
            version: r.get(0),
            created_at: r.get(1),
            author: r.get(2),
            document: r.get(3),
        }
    }

    const COLUMNS: &'static str = "version, to_char(created_at AT TIME ZONE 'UTC', \
        'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'), author, document";

    /// The newest version, if any.
    pub async fn latest(&self) -> Result<Option<Stored>, Error> {
        let q = format!(
            "SELECT {} FROM rampart_config_versions ORDER BY version DESC LIMIT 1",
            Self::COLUMNS
        );
        Ok(self
            .client
            .query_opt(&q, &[])
            .await?
            .as_ref()
            .map(Self::row))
    }

    /// One version.
    pub async fn get(&self, version: i64) -> Result<Option<Stored>, Error> {
        let q = format!(
            "SELECT {} FROM rampart_config_versions WHERE version = $1",
            Self::COLUMNS
        );
        Ok(self
            .client
            .query_opt(&q, &[&version])
            .await?
            .as_ref()
            .map(Self::row))
    }

    /// The newest `limit` versions, newest first, without their documents.
    pub async fn history(&self, limit: i64) -> Result<Vec<Stored>, Error> {
        let q = format!(
            "SELECT {} FROM rampart_config_versions ORDER BY version DESC LIMIT $1",
            Self::COLUMNS.replace("document", "''::text")
        );
        Ok(self
            .client
            .query(&q, &[&limit])
            .await?
            .iter()
            .map(Self::row)
            .collect())
    }

    /// Store `document` as the next version, made on version `parent` (`None`: on an empty
    /// store), and announce it. Refused with [`Error::Conflict`] when the latest version is
    /// not `parent`.
    pub async fn insert(
        &mut self,
        document: &str,
        author: &str,
        parent: Option<i64>,
    ) -> Result<i64, Error> {
        let tx = self.client.transaction().await?;
        // One writer at a time across the fleet: the check and the insert are one step.
        tx.execute(
            "LOCK TABLE rampart_config_versions IN SHARE ROW EXCLUSIVE MODE",
            &[],
        )
        .await?;
        let latest: Option<i64> = tx
            .query_one("SELECT max(version) FROM rampart_config_versions", &[])
            .await?
            .get(0);
        if latest != parent {
            return Err(Error::Conflict {
                latest: latest.unwrap_or(0),
            });
        }
        let version: i64 = tx
            .query_one(
                "INSERT INTO rampart_config_versions (author, document) VALUES ($1, $2) \
                 RETURNING version",
                &[&author, &document],
            )
            .await?
            .get(0);
        tx.execute(
            "SELECT pg_notify($1, $2)",
            &[&CHANNEL, &version.to_string()],
        )
        .await?;
        tx.commit().await?;
        Ok(version)
    }

    /// Whether the connection is still usable.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }
}

/// Two nodes creating the bookkeeping table at once: one of them sees a unique violation.
fn ignore_concurrent_create(e: tokio_postgres::Error) -> Result<(), tokio_postgres::Error> {
    match e.code() {
        Some(c) if *c == tokio_postgres::error::SqlState::UNIQUE_VIOLATION => Ok(()),
        _ => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of its own on the machine's PostgreSQL (127.0.0.1:5432, trust).
    async fn fresh_db() -> String {
        let name = format!(
            "rampart_store_unit_{}_{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let (c, conn) = tokio_postgres::connect(
            "host=127.0.0.1 port=5432 user=postgres dbname=postgres",
            NoTls,
        )
        .await
        .expect("PostgreSQL on 127.0.0.1:5432");
        tokio::spawn(conn);
        c.batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        format!("host=127.0.0.1 port=5432 user=postgres dbname={name}")
    }

    #[tokio::test]
    async fn versions_are_appended_announced_and_guarded() {
        let url = fresh_db().await;
        let (mut a, mut heard_a) = Store::connect(&url, Duration::from_secs(5)).await.unwrap();
        // A second node migrating the same database changes nothing.
        let (mut b, mut heard_b) = Store::connect(&url, Duration::from_secs(5)).await.unwrap();
        assert_eq!(a.latest().await.unwrap(), None);
        let v1 = a.insert("routes: []\n", "seed", None).await.unwrap();
        // B wrote nothing yet and believes the store is empty: refused.
        match b.insert("routes: [x]\n", "bob", None).await {
            Err(Error::Conflict { latest }) => assert_eq!(latest, v1),
            other => panic!("{other:?}"),
        }
        let v2 = b.insert("waf: {}\n", "bob", Some(v1)).await.unwrap();
        assert!(v2 > v1);
        for heard in [&mut heard_a, &mut heard_b] {
            let mut got = Vec::new();
            while got.len() < 2 {
                let v = tokio::time::timeout(Duration::from_secs(2), heard.recv())
                    .await
                    .unwrap()
                    .unwrap();
                got.push(v);
            }
            assert_eq!(got, [v1, v2]);
        }
        let latest = a.latest().await.unwrap().unwrap();
        assert_eq!((latest.version, latest.author.as_str()), (v2, "bob"));
        assert_eq!(latest.document, "waf: {}\n");
        assert!(latest.created_at.ends_with('Z'));
        assert_eq!(a.get(v1).await.unwrap().unwrap().document, "routes: []\n");
        let h = a.history(10).await.unwrap();
        assert_eq!(h.iter().map(|s| s.version).collect::<Vec<_>>(), [v2, v1]);
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_fast() {
        let t = std::time::Instant::now();
        let r = Store::connect(
            "host=127.0.0.1 port=1 user=postgres dbname=x",
            Duration::from_millis(500),
        )
        .await;
        assert!(r.is_err());
        assert!(t.elapsed() < Duration::from_secs(3));
    }
}
