//! Running statements on a client or a transaction, prepared once per connection; reading
//! columns; read-only snapshots.

use deadpool_postgres::{GenericClient, Object, Transaction};
use tokio_postgres::{
    IsolationLevel, Row,
    types::{FromSql, ToSql},
};

use super::errors::describe;
use crate::{StoreError, records};

type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub(super) async fn query(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query(&statement, params).await?)
}

pub(super) async fn query_opt(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<Option<Row>, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.query_opt(&statement, params).await?)
}

pub(super) async fn execute(
    db: &impl GenericClient,
    sql: &str,
    params: Params<'_>,
) -> Result<u64, StoreError> {
    let statement = db.prepare_cached(sql).await?;
    Ok(db.execute(&statement, params).await?)
}

/// Reads a column; a failure means the table and this code disagree.
pub(super) fn col<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index)
        .map_err(|e| records::corrupt("column", describe(&e)))
}

/// A read-only transaction that sees one snapshot, for reads of several statements.
pub(super) async fn snapshot(client: &mut Object) -> Result<Transaction<'_>, StoreError> {
    Ok(client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await?)
}
