//! The registry's rows: reading them into records, and the loads, locks and appends that the
//! registry's methods share.

use std::collections::HashMap;

use deadpool_postgres::{GenericClient, Transaction};
use flotilla_model::{
    AuditAction, AuditEvent, Instance, InstanceId, LifecycleEvent, LifecycleState, NewVersion,
    Route, Schema, Service, ServiceName, Timestamp, Version, VersionRecord,
};
use tokio_postgres::Row;

use super::statements::{col, execute, query, query_opt};
use crate::{Mutation, StoreError, records};

pub(super) async fn audit(
    tx: &Transaction<'_>,
    m: &Mutation,
    action: AuditAction,
    service: &ServiceName,
    version: Option<&Version>,
    detail_json: &str,
) -> Result<(), StoreError> {
    let version = version.map(|v| v.to_string()).unwrap_or_default();
    execute(
        tx,
        "INSERT INTO audit_events (at_ms, actor, action, service, version, detail_json)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &m.now.millis(),
            &m.actor,
            &action.as_str(),
            &service.as_str(),
            &version,
            &detail_json,
        ],
    )
    .await?;
    Ok(())
}

pub(super) const SERVICE_COLUMNS: &str =
    "name, owner, description, policy_mode, policy_category, created_ms";

pub(super) fn service_from_row(row: &Row) -> Result<Service, StoreError> {
    Ok(Service {
        name: ServiceName::from_trusted(col(row, 0)?),
        owner: col(row, 1)?,
        description: col(row, 2)?,
        policy: records::parse_policy(col(row, 3)?, col(row, 4)?)?,
        created: Timestamp(col(row, 5)?),
    })
}

pub(super) async fn load_service(
    db: &impl GenericClient,
    name: &ServiceName,
) -> Result<Service, StoreError> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE name = $1");
    match query_opt(db, &sql, &[&name.as_str()]).await? {
        Some(row) => service_from_row(&row),
        None => Err(StoreError::ServiceNotFound(name.clone())),
    }
}

/// Loads a service and locks its row until commit: changes to a service's versions, route and
/// instances hold it, so they are checked one after another.
pub(super) async fn lock_service(
    tx: &Transaction<'_>,
    name: &ServiceName,
) -> Result<Service, StoreError> {
    let sql = format!("SELECT {SERVICE_COLUMNS} FROM services WHERE name = $1 FOR UPDATE");
    match query_opt(tx, &sql, &[&name.as_str()]).await? {
        Some(row) => service_from_row(&row),
        None => Err(StoreError::ServiceNotFound(name.clone())),
    }
}

pub(super) async fn require_service(
    db: &impl GenericClient,
    name: &ServiceName,
) -> Result<(), StoreError> {
    match query_opt(
        db,
        "SELECT 1 FROM services WHERE name = $1",
        &[&name.as_str()],
    )
    .await?
    {
        Some(_) => Ok(()),
        None => Err(StoreError::ServiceNotFound(name.clone())),
    }
}

/// The index of the first dependency that names a service that does not exist. Services are
/// never deleted, so the answer cannot change before commit.
pub(super) async fn first_missing_dependency(
    db: &impl GenericClient,
    new: &NewVersion,
) -> Result<Option<usize>, StoreError> {
    let names: Vec<&str> = new
        .dependencies
        .iter()
        .map(|d| d.service.as_str())
        .collect();
    if names.is_empty() {
        return Ok(None);
    }
    let rows = query(
        db,
        "SELECT name FROM services WHERE name = ANY($1)",
        &[&names],
    )
    .await?;
    let existing = rows
        .iter()
        .map(|row| col::<String>(row, 0))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names.iter().position(|n| !existing.iter().any(|e| e == n)))
}

pub(super) const VERSION_COLUMNS: &str = "service, version, schema, artifact_json, dependencies_json, \
                               labels_json, state, published_ms, fingerprint";

/// The lifecycle histories of a service's versions (of one version when given), by version.
async fn load_histories(
    db: &impl GenericClient,
    service: &ServiceName,
    version: Option<&Version>,
) -> Result<HashMap<String, Vec<LifecycleEvent>>, StoreError> {
    let version = version.map(|v| v.to_string());
    let rows = query(
        db,
        "SELECT version, state, reason, at_ms, actor FROM version_events
         WHERE service = $1 AND ($2::TEXT IS NULL OR version = $2) ORDER BY version, seq",
        &[&service.as_str(), &version],
    )
    .await?;
    let mut histories: HashMap<String, Vec<LifecycleEvent>> = HashMap::new();
    for row in &rows {
        histories
            .entry(col(row, 0)?)
            .or_default()
            .push(LifecycleEvent {
                state: records::parse_state(col(row, 1)?)?,
                reason: col(row, 2)?,
                at: Timestamp(col(row, 3)?),
                actor: col(row, 4)?,
            });
    }
    Ok(histories)
}

pub(super) fn version_from_row(
    row: &Row,
    histories: &mut HashMap<String, Vec<LifecycleEvent>>,
) -> Result<VersionRecord, StoreError> {
    let version: String = col(row, 1)?;
    Ok(VersionRecord {
        history: histories.remove(&version).unwrap_or_default(),
        version: records::parse_stored_version(&version)?,
        service: ServiceName::from_trusted(col(row, 0)?),
        schema: Schema::from_stored(col(row, 2)?, col(row, 8)?),
        artifact: records::artifact_from_json(col(row, 3)?)?,
        dependencies: records::dependencies_from_json(col(row, 4)?)?,
        labels: records::map_from_json(col(row, 5)?)?,
        state: records::parse_state(col(row, 6)?)?,
        published: Timestamp(col(row, 7)?),
    })
}

pub(super) async fn load_version(
    db: &impl GenericClient,
    service: &ServiceName,
    version: &Version,
) -> Result<Option<VersionRecord>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE service = $1 AND version = $2");
    let Some(row) = query_opt(db, &sql, &[&service.as_str(), &version.to_string()]).await? else {
        return Ok(None);
    };
    let mut histories = load_histories(db, service, Some(version)).await?;
    version_from_row(&row, &mut histories).map(Some)
}

pub(super) async fn load_versions(
    db: &impl GenericClient,
    service: &ServiceName,
) -> Result<Vec<VersionRecord>, StoreError> {
    let sql = format!("SELECT {VERSION_COLUMNS} FROM versions WHERE service = $1");
    let rows = query(db, &sql, &[&service.as_str()]).await?;
    let mut histories = load_histories(db, service, None).await?;
    let mut versions = rows
        .iter()
        .map(|row| version_from_row(row, &mut histories))
        .collect::<Result<Vec<_>, _>>()?;
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(versions)
}

/// Locks a version's row until commit, so a transition waits for (and is not lost to) another
/// change of the same version. False when the version does not exist.
pub(super) async fn lock_version(
    tx: &Transaction<'_>,
    service: &ServiceName,
    version: &Version,
) -> Result<bool, StoreError> {
    Ok(query_opt(
        tx,
        "SELECT 1 FROM versions WHERE service = $1 AND version = $2 FOR UPDATE",
        &[&service.as_str(), &version.to_string()],
    )
    .await?
    .is_some())
}

/// Every version of a service with its state, highest first. `share_lock` keeps the states from
/// changing until commit, for a transaction whose decision depends on them.
pub(super) async fn load_version_states(
    db: &impl GenericClient,
    service: &ServiceName,
    share_lock: bool,
) -> Result<Vec<(Version, LifecycleState)>, StoreError> {
    let sql = if share_lock {
        "SELECT version, state FROM versions WHERE service = $1 FOR SHARE"
    } else {
        "SELECT version, state FROM versions WHERE service = $1"
    };
    let rows = query(db, sql, &[&service.as_str()]).await?;
    let mut states = rows
        .iter()
        .map(|row| {
            Ok((
                records::parse_stored_version(col(row, 0)?)?,
                records::parse_state(col(row, 1)?)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    states.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(states)
}

/// The state of one version, locked against transitions until commit; None when not published.
pub(super) async fn share_version_state(
    tx: &Transaction<'_>,
    service: &ServiceName,
    version: &Version,
) -> Result<Option<LifecycleState>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT state FROM versions WHERE service = $1 AND version = $2 FOR SHARE",
        &[&service.as_str(), &version.to_string()],
    )
    .await?;
    row.map(|row| records::parse_state(col(&row, 0)?))
        .transpose()
}

pub(super) async fn append_history(
    tx: &Transaction<'_>,
    service: &ServiceName,
    version: &Version,
    state: LifecycleState,
    reason: &str,
    m: &Mutation,
) -> Result<(), StoreError> {
    execute(
        tx,
        "INSERT INTO version_events (service, version, seq, state, reason, at_ms, actor)
         SELECT $1, $2, COALESCE(MAX(seq), 0) + 1, $3, $4, $5, $6
         FROM version_events WHERE service = $1 AND version = $2",
        &[
            &service.as_str(),
            &version.to_string(),
            &state.as_str(),
            &reason,
            &m.now.millis(),
            &m.actor,
        ],
    )
    .await?;
    Ok(())
}

pub(super) const INSTANCE_COLUMNS: &str = "id, service, version, address, metadata_json, status, \
                                lease_ttl_ms, registered_ms, expires_ms";

pub(super) fn instance_from_row(row: &Row) -> Result<Instance, StoreError> {
    Ok(Instance {
        id: InstanceId::from_trusted(col(row, 0)?),
        service: ServiceName::from_trusted(col(row, 1)?),
        version: records::parse_stored_version(col(row, 2)?)?,
        address: col(row, 3)?,
        metadata: records::map_from_json(col(row, 4)?)?,
        status: records::parse_status(col(row, 5)?)?,
        lease_ttl_ms: u32::try_from(col::<i64>(row, 6)?)
            .map_err(|e| records::corrupt("lease ttl", e))?,
        registered: Timestamp(col(row, 7)?),
        expires: Timestamp(col(row, 8)?),
    })
}

/// Instances from `rows`, by version then address.
pub(super) fn sorted_instances(rows: &[Row]) -> Result<Vec<Instance>, StoreError> {
    let mut instances = rows
        .iter()
        .map(instance_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    instances.sort_by(|a, b| a.version.cmp(&b.version).then(a.address.cmp(&b.address)));
    Ok(instances)
}

/// Loads an instance, and whether the reaper marked it expired, and locks its row until commit.
pub(super) async fn lock_instance(
    tx: &Transaction<'_>,
    id: &InstanceId,
) -> Result<Option<(Instance, bool)>, StoreError> {
    let sql = format!("SELECT {INSTANCE_COLUMNS}, expired FROM instances WHERE id = $1 FOR UPDATE");
    query_opt(tx, &sql, &[&id.as_str()])
        .await?
        .map(|row| Ok((instance_from_row(&row)?, col(&row, 9)?)))
        .transpose()
}

pub(super) async fn live_instances(
    db: &impl GenericClient,
    service: &ServiceName,
    now: Timestamp,
) -> Result<Vec<Instance>, StoreError> {
    let sql = format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances
         WHERE service = $1 AND NOT expired AND expires_ms > $2"
    );
    sorted_instances(&query(db, &sql, &[&service.as_str(), &now.millis()]).await?)
}

pub(super) fn route_from_row(service: &ServiceName, row: &Row) -> Result<Route, StoreError> {
    Ok(Route {
        service: service.clone(),
        weights: records::weights_from_json(col(row, 0)?)?,
        updated: Timestamp(col(row, 1)?),
    })
}

pub(super) async fn load_route(
    db: &impl GenericClient,
    service: &ServiceName,
) -> Result<Option<Route>, StoreError> {
    query_opt(
        db,
        "SELECT weights_json, updated_ms FROM routes WHERE service = $1",
        &[&service.as_str()],
    )
    .await?
    .map(|row| route_from_row(service, &row))
    .transpose()
}

pub(super) fn audit_event_from_row(row: &Row) -> Result<AuditEvent, StoreError> {
    Ok(AuditEvent {
        id: u64::try_from(col::<i64>(row, 0)?).map_err(|e| records::corrupt("audit id", e))?,
        at: Timestamp(col(row, 1)?),
        actor: col(row, 2)?,
        action: col(row, 3)?,
        service: col(row, 4)?,
        version: col(row, 5)?,
        detail_json: col(row, 6)?,
    })
}
