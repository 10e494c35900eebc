//! The production store: PostgreSQL, shared by any number of registry processes.
//!
//! Every mutation is one transaction that locks the rows it decides on, so concurrent requests,
//! from this process or another, are checked against each other. Announcements travel through
//! LISTEN/NOTIFY: a transaction queues `pg_notify` for each service it changed, PostgreSQL delivers
//! it only if the transaction commits, and every store (this one included) hears it on its LISTEN
//! connection. Nothing is announced locally, so a watcher hears each change once. Rollouts are
//! announced the same way, on a channel of their own.

use std::{fmt, sync::Arc};

use deadpool_postgres::Pool;
use tokio::sync::oneshot;

use crate::StoreError;

mod config;
mod errors;
mod notifications;
mod outage;
mod pool;
mod registry;
mod rollouts;
mod rows;
mod statements;

pub use config::PostgresConfig;
use config::redact_password;
use notifications::{Announcements, Listening, listen, listener_config};
use pool::{build_pool, driver_config, migrate};

/// The PostgreSQL store. Clones share one pool and one LISTEN connection, which closes when the
/// last clone is dropped.
#[derive(Clone)]
pub struct PostgresStore {
    /// The database URL with its password hidden, for logs.
    shown_url: Arc<str>,
    pool: Pool,
    announcements: Announcements,
    /// Outages of the database this store saw; `None` unless leases are renewed after them.
    outages: Option<Arc<outage::Outages>>,
    /// Dropped with the last clone, which tells the LISTEN task to stop.
    _stop_listening: Arc<oneshot::Sender<()>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.shown_url)
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects, applies pending migrations and starts listening for announcements. Returns once
    /// the store is listening, so a subscriber hears every change committed after this returns.
    pub async fn connect(config: PostgresConfig) -> Result<Self, StoreError> {
        let pg = driver_config(&config)?;
        migrate(&pg).await?;
        let pool = build_pool(&pg, &config)?;
        let announcements = Announcements::new();
        let listen_config = listener_config(&pg);
        let session = Listening::open(&listen_config, &announcements).await?;
        let (stop, stopped) = oneshot::channel();
        let outages = config
            .renew_leases_after_outage
            .then(|| Arc::new(outage::Outages::default()));
        tokio::spawn(listen(
            listen_config,
            session,
            announcements.clone(),
            outages.clone(),
            stopped,
        ));
        Ok(Self {
            shown_url: redact_password(&config.url).into(),
            pool,
            announcements,
            outages,
            _stop_listening: Arc::new(stop),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn an_unreachable_database_is_unavailable() {
        let mut config = PostgresConfig::new("postgres://nobody:secret@127.0.0.1:1/flotilla");
        config.connect_timeout = Duration::from_millis(500);
        match PostgresStore::connect(config).await {
            Err(StoreError::Unavailable(message)) => {
                assert!(!message.contains("secret"), "{message}")
            }
            other => panic!("expected an unavailable store, got {other:?}"),
        }
    }
}
