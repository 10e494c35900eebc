//! The registry's rows: reading them into records, and the loads and appends that the registry's
//! methods share.

use flotilla_model::{
    AuditAction, Instance, InstanceId, LifecycleEvent, LifecycleState, Route, Schema, Service,
    ServiceName, Timestamp, Version, VersionRecord,
};
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::{Mutation, StoreError, records};

pub(super) fn audit(
    conn: &Connection,
    m: &Mutation,
    action: AuditAction,
    service: &ServiceName,
    version: Option<&Version>,
    detail_json: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit_events (at_ms, actor, action, service, version, detail_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            m.now.millis(),
            m.actor,
            action.as_str(),
            service.as_str(),
            version.map(|v| v.to_string()).unwrap_or_default(),
            detail_json
        ],
    )?;
    Ok(())
}

pub(super) const SERVICE_COLUMNS: &str =
    "name, owner, description, policy_mode, policy_category, created_ms";

pub(super) fn service_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Service, StoreError>> {
    let mode: String = row.get(3)?;
    let category: String = row.get(4)?;
    Ok(
        records::parse_policy(&mode, &category).map(|policy| Service {
            name: ServiceName::from_trusted(row.get(0).unwrap_or_default()),
            owner: row.get(1).unwrap_or_default(),
            description: row.get(2).unwrap_or_default(),
            policy,
            created: Timestamp(row.get(5).unwrap_or_default()),
        }),
    )
}

pub(super) fn load_service(conn: &Connection, name: &ServiceName) -> Result<Service, StoreError> {
    conn.query_row(
        &format!("SELECT {SERVICE_COLUMNS} FROM services WHERE name = ?1"),
        [name.as_str()],
        service_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::ServiceNotFound(name.clone()))?
}

pub(super) fn service_exists(conn: &Connection, name: &ServiceName) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM services WHERE name = ?1",
            [name.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

pub(super) fn require_service(conn: &Connection, name: &ServiceName) -> Result<(), StoreError> {
    if service_exists(conn, name)? {
        Ok(())
    } else {
        Err(StoreError::ServiceNotFound(name.clone()))
    }
}

pub(super) const VERSION_COLUMNS: &str = "service, version, schema, artifact_json, dependencies_json, \
                               labels_json, state, published_ms, fingerprint";

fn history(
    conn: &Connection,
    service: &str,
    version: &str,
) -> Result<Vec<LifecycleEvent>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT state, reason, at_ms, actor FROM version_events
         WHERE service = ?1 AND version = ?2 ORDER BY seq",
    )?;
    let rows = stmt.query_map([service, version], |row| {
        Ok((
            row.get::<_, String>(0)?,
            row.get(1)?,
            row.get(2)?,
            row.get(3)?,
        ))
    })?;
    rows.map(|row| {
        let (state, reason, at, actor) = row?;
        Ok(LifecycleEvent {
            state: records::parse_state(&state)?,
            reason,
            at: Timestamp(at),
            actor,
        })
    })
    .collect()
}

fn version_from_row(conn: &Connection, row: &Row<'_>) -> Result<VersionRecord, StoreError> {
    let service: String = row.get(0)?;
    let version: String = row.get(1)?;
    let schema: Vec<u8> = row.get(2)?;
    Ok(VersionRecord {
        history: history(conn, &service, &version)?,
        version: records::parse_stored_version(&version)?,
        service: ServiceName::from_trusted(service),
        schema: Schema::from_stored(schema, row.get(8)?),
        artifact: records::artifact_from_json(&row.get::<_, String>(3)?)?,
        dependencies: records::dependencies_from_json(&row.get::<_, String>(4)?)?,
        labels: records::map_from_json(&row.get::<_, String>(5)?)?,
        state: records::parse_state(&row.get::<_, String>(6)?)?,
        published: Timestamp(row.get(7)?),
    })
}

pub(super) fn load_version(
    conn: &Connection,
    service: &ServiceName,
    version: &Version,
) -> Result<Option<VersionRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE service = ?1 AND version = ?2"
    ))?;
    let mut rows = stmt.query([service.as_str(), &version.to_string()])?;
    match rows.next()? {
        Some(row) => Ok(Some(version_from_row(conn, row)?)),
        None => Ok(None),
    }
}

pub(super) fn load_versions(
    conn: &Connection,
    service: &ServiceName,
) -> Result<Vec<VersionRecord>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM versions WHERE service = ?1"
    ))?;
    let mut rows = stmt.query([service.as_str()])?;
    let mut versions = Vec::new();
    while let Some(row) = rows.next()? {
        versions.push(version_from_row(conn, row)?);
    }
    versions.sort_by(|a, b| b.version.cmp(&a.version));
    Ok(versions)
}

pub(super) fn load_version_states(
    conn: &Connection,
    service: &ServiceName,
) -> Result<Vec<(Version, LifecycleState)>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT version, state FROM versions WHERE service = ?1")?;
    let rows = stmt.query_map([service.as_str()], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut states = rows
        .map(|row| {
            let (version, state) = row?;
            Ok((
                records::parse_stored_version(&version)?,
                records::parse_state(&state)?,
            ))
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    states.sort_by(|a, b| b.0.cmp(&a.0));
    Ok(states)
}

pub(super) fn append_history(
    conn: &Connection,
    service: &ServiceName,
    version: &Version,
    state: LifecycleState,
    reason: &str,
    m: &Mutation,
) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO version_events (service, version, seq, state, reason, at_ms, actor)
         SELECT ?1, ?2, COALESCE(MAX(seq), 0) + 1, ?3, ?4, ?5, ?6
         FROM version_events WHERE service = ?1 AND version = ?2",
        params![
            service.as_str(),
            version.to_string(),
            state.as_str(),
            reason,
            m.now.millis(),
            m.actor
        ],
    )?;
    Ok(())
}

pub(super) const INSTANCE_COLUMNS: &str = "id, service, version, address, metadata_json, status, \
                                lease_ttl_ms, registered_ms, expires_ms";

fn instance_from_row(row: &Row<'_>) -> Result<Instance, StoreError> {
    Ok(Instance {
        id: InstanceId::from_trusted(row.get(0)?),
        service: ServiceName::from_trusted(row.get(1)?),
        version: records::parse_stored_version(&row.get::<_, String>(2)?)?,
        address: row.get(3)?,
        metadata: records::map_from_json(&row.get::<_, String>(4)?)?,
        status: records::parse_status(&row.get::<_, String>(5)?)?,
        lease_ttl_ms: u32::try_from(row.get::<_, i64>(6)?)
            .map_err(|e| records::corrupt("lease ttl", e))?,
        registered: Timestamp(row.get(7)?),
        expires: Timestamp(row.get(8)?),
    })
}

pub(super) fn query_instances(
    conn: &Connection,
    sql_filter: &str,
    args: &[&dyn rusqlite::ToSql],
) -> Result<Vec<Instance>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {INSTANCE_COLUMNS} FROM instances WHERE {sql_filter}"
    ))?;
    let mut rows = stmt.query(args)?;
    let mut instances = Vec::new();
    while let Some(row) = rows.next()? {
        instances.push(instance_from_row(row)?);
    }
    instances.sort_by(|a, b| a.version.cmp(&b.version).then(a.address.cmp(&b.address)));
    Ok(instances)
}

pub(super) fn live_instances(
    conn: &Connection,
    service: &ServiceName,
    now: Timestamp,
) -> Result<Vec<Instance>, StoreError> {
    query_instances(
        conn,
        "service = ?1 AND expired = 0 AND expires_ms > ?2",
        &[&service.as_str(), &now.millis()],
    )
}

pub(super) fn load_route(
    conn: &Connection,
    service: &ServiceName,
) -> Result<Option<Route>, StoreError> {
    let row = conn
        .query_row(
            "SELECT weights_json, updated_ms FROM routes WHERE service = ?1",
            [service.as_str()],
            |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?)),
        )
        .optional()?;
    row.map(|(weights, updated)| {
        Ok(Route {
            service: service.clone(),
            weights: records::weights_from_json(&weights)?,
            updated: Timestamp(updated),
        })
    })
    .transpose()
}
