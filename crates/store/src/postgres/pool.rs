//! Connections: the driver's configuration, the pool each call takes a connection from (renewing
//! leases first after an outage), and the migrations applied before the store is used.

use std::str::FromStr;

use deadpool_postgres::{
    Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod, Runtime, TimeoutType,
};
use flotilla_model::Timestamp;
use tokio_postgres::NoTls;

use super::{PostgresConfig, PostgresStore, errors::describe, outage};
use crate::StoreError;

mod embedded {
    refinery::embed_migrations!("migrations/postgres");
}

/// The advisory lock that serializes migration runs ("flotilla" in ASCII). Advisory locks are
/// scoped to one database, so registries on other databases of the server do not wait for it.
const MIGRATION_LOCK: i64 = 0x666c_6f74_696c_6c61;

impl PostgresStore {
    pub(super) async fn client(&self) -> Result<Object, StoreError> {
        let Some(outages) = &self.outages else {
            return Ok(self.pool.get().await?);
        };
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(e) => {
                // A full pool is load, not an outage; a connection that could not be made is.
                if matches!(
                    e,
                    PoolError::Backend(_) | PoolError::Timeout(TimeoutType::Create)
                ) {
                    outages.unreachable();
                }
                return Err(e.into());
            }
        };
        if outages.pending().is_none() {
            outages.reached(None);
            return Ok(client);
        }
        let _renewing = outages.renewing.lock().await;
        // Another connection may have renewed while this one waited.
        let pending = outages.pending();
        if let Some(outage) = pending {
            // Before anything is served: a read now would find the leases lapsed.
            let renewed =
                outage::renew_leases_live_at(&client, outage.since_ms, Timestamp::now()).await?;
            tracing::warn!(
                renewed,
                unreachable_for_ms = Timestamp::now().millis() - outage.since_ms,
                "the database is reachable again; leases live before the outage renewed"
            );
        }
        outages.reached(pending);
        Ok(client)
    }
}

pub(super) fn driver_config(config: &PostgresConfig) -> Result<tokio_postgres::Config, StoreError> {
    let mut pg = tokio_postgres::Config::from_str(&config.url).map_err(|e| {
        StoreError::Internal(format!("the PostgreSQL URL is invalid: {}", describe(&e)))
    })?;
    pg.connect_timeout(config.connect_timeout);
    if pg.get_application_name().is_none() {
        pg.application_name(&config.application_name);
    }
    Ok(pg)
}

pub(super) fn build_pool(
    pg: &tokio_postgres::Config,
    config: &PostgresConfig,
) -> Result<Pool, StoreError> {
    let manager = Manager::from_config(
        pg.clone(),
        NoTls,
        ManagerConfig {
            // A closed connection is noticed without a query; a broken one fails one request.
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(config.pool_size.max(1))
        .runtime(Runtime::Tokio1)
        .wait_timeout(Some(config.connect_timeout))
        .create_timeout(Some(config.connect_timeout))
        .recycle_timeout(Some(config.connect_timeout))
        .build()
        .map_err(|e| StoreError::Internal(format!("building the postgres pool: {e}")))
}

/// Applies pending migrations on a connection of its own, under an advisory lock: registry
/// processes that start together would otherwise race to create the same tables.
pub(super) async fn migrate(pg: &tokio_postgres::Config) -> Result<(), StoreError> {
    let (mut client, connection) = pg.connect(NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %describe(&e), "the migration connection failed");
        }
    });
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
        .await?;
    // On failure the connection closes, which releases the lock too.
    embedded::migrations::runner()
        .run_async(&mut client)
        .await
        .map_err(|e| {
            StoreError::Internal(format!("migrating the postgres store: {}", describe(&e)))
        })?;
    client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
        .await?;
    Ok(())
}
