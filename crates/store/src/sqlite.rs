//! The embedded store: one SQLite file (or memory), no server. One process owns the file; its
//! changes are announced in-process.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use flotilla_model::ServiceName;
use rusqlite::{Connection, TransactionBehavior};
use tokio::sync::broadcast;

use crate::{Change, RolloutChange, StoreError};

mod errors;
mod registry;
mod rollouts;
mod rows;

mod embedded {
    refinery::embed_migrations!("migrations/sqlite");
}

/// The embedded store. Calls run on tokio's blocking pool, one at a time per store.
#[derive(Clone)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    changes: broadcast::Sender<Change>,
    rollout_changes: broadcast::Sender<RolloutChange>,
    location: Arc<str>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("file", &self.location)
            .finish()
    }
}

impl SqliteStore {
    /// Opens (creating if needed) the store at `path` and applies pending migrations.
    pub async fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        let location = path.display().to_string();
        let conn = tokio::task::spawn_blocking(move || Connection::open(path))
            .await
            .map_err(|e| StoreError::Internal(e.to_string()))??;
        Self::init(conn, location).await
    }

    /// A store that lives in memory and is gone when dropped: for tests and benchmarks.
    pub async fn open_in_memory() -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, ":memory:".to_owned()).await
    }

    async fn init(mut conn: Connection, location: String) -> Result<Self, StoreError> {
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection, StoreError> {
            // WAL with synchronous=FULL: an acknowledged commit survives a power loss.
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.pragma_update(None, "foreign_keys", "ON")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            embedded::migrations::runner()
                .run(&mut conn)
                .map_err(|e| StoreError::Internal(format!("migrating the sqlite store: {e}")))?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))??;
        let (changes, _) = broadcast::channel(1024);
        let (rollout_changes, _) = broadcast::channel(1024);
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            changes,
            rollout_changes,
            location: location.into(),
        })
    }

    async fn read<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Runs `f` in one IMMEDIATE transaction and commits; returns what `f` returned and what it
    /// said it changed.
    async fn transact<T, C, F>(&self, f: F) -> Result<(T, Vec<C>), StoreError>
    where
        T: Send + 'static,
        C: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<C>) -> Result<T, StoreError> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let mut changed = Vec::new();
            let value = f(&tx, &mut changed)?;
            tx.commit()?;
            Ok::<_, StoreError>((value, changed))
        })
        .await
        .map_err(|e| StoreError::Internal(e.to_string()))?
    }

    /// Runs `f` in one IMMEDIATE transaction, commits, then announces the changed services.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<ServiceName>) -> Result<T, StoreError> + Send + 'static,
    {
        let (value, changed) = self.transact(f).await?;
        for service in changed {
            // No receivers is fine: nobody is watching.
            let _ = self.changes.send(Change::Service(service));
        }
        Ok(value)
    }
}
