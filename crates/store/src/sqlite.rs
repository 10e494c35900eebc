//! The embedded store: one SQLite file (or memory), no server. One process owns the file; its
//! changes are announced in-process.

use std::{
    path::Path,
    sync::{Arc, Mutex},
};

use async_trait::async_trait;
use flotilla_model::{
    AuditAction, AuditEvent, CompatibilityPolicy, EndpointSnapshot, Instance, InstanceId,
    LifecycleEvent, LifecycleState, NewInstance, NewService, NewVersion, Resolution, Route, Schema,
    Service, ServiceName, ServingStatus, Timestamp, Version, VersionRecord, VersionReq,
    VersionWeight,
};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::broadcast;

use crate::{
    Census, Change, EXPIRED_INSTANCE_RETENTION_MS, Mutation, PublishGate, Published, RegistryStore,
    RolloutChange, StoreError,
    records::{self, PublishPlan, detail},
};

mod rollouts;

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

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::SqliteFailure(code, _)
                if matches!(
                    code.code,
                    rusqlite::ErrorCode::DatabaseBusy
                        | rusqlite::ErrorCode::DatabaseLocked
                        | rusqlite::ErrorCode::CannotOpen
                        | rusqlite::ErrorCode::DiskFull
                        | rusqlite::ErrorCode::SystemIoFailure
                ) =>
            {
                StoreError::Unavailable(e.to_string())
            }
            other => StoreError::Internal(format!("sqlite: {other}")),
        }
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

// ---- row helpers -----------------------------------------------------------------------------

fn audit(
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

const SERVICE_COLUMNS: &str = "name, owner, description, policy_mode, policy_category, created_ms";

fn service_from_row(row: &Row<'_>) -> rusqlite::Result<Result<Service, StoreError>> {
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

fn load_service(conn: &Connection, name: &ServiceName) -> Result<Service, StoreError> {
    conn.query_row(
        &format!("SELECT {SERVICE_COLUMNS} FROM services WHERE name = ?1"),
        [name.as_str()],
        service_from_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::ServiceNotFound(name.clone()))?
}

fn service_exists(conn: &Connection, name: &ServiceName) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM services WHERE name = ?1",
            [name.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn require_service(conn: &Connection, name: &ServiceName) -> Result<(), StoreError> {
    if service_exists(conn, name)? {
        Ok(())
    } else {
        Err(StoreError::ServiceNotFound(name.clone()))
    }
}

const VERSION_COLUMNS: &str = "service, version, schema, artifact_json, dependencies_json, \
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

fn load_version(
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

fn load_versions(
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

fn load_version_states(
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

fn append_history(
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

const INSTANCE_COLUMNS: &str = "id, service, version, address, metadata_json, status, \
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

fn query_instances(
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

fn live_instances(
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

fn load_route(conn: &Connection, service: &ServiceName) -> Result<Option<Route>, StoreError> {
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

// ---- the trait -------------------------------------------------------------------------------

#[async_trait]
impl RegistryStore for SqliteStore {
    async fn create_service(&self, new: NewService, m: &Mutation) -> Result<Service, StoreError> {
        let m = m.clone();
        self.write(move |conn, changed| {
            if service_exists(conn, &new.name)? {
                return Err(StoreError::ServiceExists(new.name));
            }
            conn.execute(
                &format!(
                    "INSERT INTO services ({SERVICE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    new.name.as_str(),
                    new.owner,
                    new.description,
                    new.policy.mode.as_str(),
                    new.policy.category.as_str(),
                    m.now.millis()
                ],
            )?;
            audit(
                conn,
                &m,
                AuditAction::ServiceCreate,
                &new.name,
                None,
                &detail::service(&new.owner, &new.policy),
            )?;
            changed.push(new.name.clone());
            load_service(conn, &new.name)
        })
        .await
    }

    async fn get_service(&self, name: &ServiceName) -> Result<Service, StoreError> {
        let name = name.clone();
        self.read(move |conn| load_service(conn, &name)).await
    }

    async fn list_services(
        &self,
        after: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<Service>, StoreError> {
        let after = after.map(|a| a.to_string()).unwrap_or_default();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT {SERVICE_COLUMNS} FROM services WHERE name > ?1 ORDER BY name LIMIT ?2"
            ))?;
            let rows = stmt.query_map(params![after, limit], service_from_row)?;
            rows.map(|row| row?).collect()
        })
        .await
    }

    async fn set_policy(
        &self,
        name: &ServiceName,
        policy: CompatibilityPolicy,
        m: &Mutation,
    ) -> Result<Service, StoreError> {
        let (name, m) = (name.clone(), m.clone());
        self.write(move |conn, changed| {
            let service = load_service(conn, &name)?;
            conn.execute(
                "UPDATE services SET policy_mode = ?2, policy_category = ?3 WHERE name = ?1",
                params![
                    name.as_str(),
                    policy.mode.as_str(),
                    policy.category.as_str()
                ],
            )?;
            audit(
                conn,
                &m,
                AuditAction::ServiceSetPolicy,
                &name,
                None,
                &detail::service(&service.owner, &policy),
            )?;
            changed.push(name.clone());
            load_service(conn, &name)
        })
        .await
    }

    async fn publish_version(
        &self,
        new: NewVersion,
        gate: Arc<dyn PublishGate>,
        m: &Mutation,
    ) -> Result<Published, StoreError> {
        let m = m.clone();
        self.write(move |conn, changed| {
            let service = load_service(conn, &new.service)?;
            let existing = load_versions(conn, &new.service)?;
            let mut missing_dependency = None;
            for (i, dependency) in new.dependencies.iter().enumerate() {
                if !service_exists(conn, &dependency.service)? {
                    missing_dependency = Some(i);
                    break;
                }
            }
            let plan =
                records::plan_publish(&new, &service, &existing, missing_dependency, &*gate)?;
            if let PublishPlan::AlreadyPublished(version) = plan {
                return Ok(Published {
                    version: *version,
                    created: false,
                });
            }
            conn.execute(
                &format!(
                    "INSERT INTO versions ({VERSION_COLUMNS})
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    new.service.as_str(),
                    new.version.to_string(),
                    new.schema.bytes(),
                    records::artifact_to_json(&new.artifact),
                    records::dependencies_to_json(&new.dependencies),
                    records::map_to_json(&new.labels),
                    LifecycleState::Released.as_str(),
                    m.now.millis(),
                    new.schema.fingerprint(),
                ],
            )?;
            append_history(
                conn,
                &new.service,
                &new.version,
                LifecycleState::Released,
                "published",
                &m,
            )?;
            audit(
                conn,
                &m,
                AuditAction::VersionPublish,
                &new.service,
                Some(&new.version),
                &detail::publish(&new),
            )?;
            changed.push(new.service.clone());
            let version = load_version(conn, &new.service, &new.version)?
                .ok_or_else(|| StoreError::Internal("published version vanished".into()))?;
            Ok(Published {
                version,
                created: true,
            })
        })
        .await
    }

    async fn get_version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<VersionRecord, StoreError> {
        let (service, version) = (service.clone(), version.clone());
        self.read(move |conn| {
            require_service(conn, &service)?;
            load_version(conn, &service, &version)?
                .ok_or(StoreError::VersionNotFound { service, version })
        })
        .await
    }

    async fn list_versions(&self, service: &ServiceName) -> Result<Vec<VersionRecord>, StoreError> {
        let service = service.clone();
        self.read(move |conn| {
            require_service(conn, &service)?;
            load_versions(conn, &service)
        })
        .await
    }

    async fn resolve(
        &self,
        service: &ServiceName,
        requirement: &VersionReq,
    ) -> Result<(Resolution, Option<VersionRecord>), StoreError> {
        let (service, requirement) = (service.clone(), requirement.clone());
        // One connection under one lock: the states and the record agree.
        self.read(move |conn| {
            require_service(conn, &service)?;
            let states = load_version_states(conn, &service)?;
            let resolution =
                flotilla_model::resolve(states.iter().map(|(v, s)| (v, *s)), &requirement);
            let record = match &resolution.selected {
                Some(version) => load_version(conn, &service, version)?,
                None => None,
            };
            Ok((resolution, record))
        })
        .await
    }

    async fn transition_version(
        &self,
        service: &ServiceName,
        version: &Version,
        to: LifecycleState,
        reason: &str,
        m: &Mutation,
    ) -> Result<VersionRecord, StoreError> {
        let (service, version, reason, m) = (
            service.clone(),
            version.clone(),
            reason.to_owned(),
            m.clone(),
        );
        self.write(move |conn, changed| {
            require_service(conn, &service)?;
            let record = load_version(conn, &service, &version)?.ok_or_else(|| {
                StoreError::VersionNotFound {
                    service: service.clone(),
                    version: version.clone(),
                }
            })?;
            let moves = record.state.check_transition(to).map_err(|source| {
                StoreError::IllegalTransition {
                    service: service.clone(),
                    version: version.clone(),
                    source,
                }
            })?;
            if !moves {
                return Ok(record);
            }
            conn.execute(
                "UPDATE versions SET state = ?3 WHERE service = ?1 AND version = ?2",
                params![service.as_str(), version.to_string(), to.as_str()],
            )?;
            append_history(conn, &service, &version, to, &reason, &m)?;
            audit(
                conn,
                &m,
                AuditAction::VersionTransition,
                &service,
                Some(&version),
                &detail::transition(record.state, to, &reason),
            )?;
            changed.push(service.clone());
            load_version(conn, &service, &version)?
                .ok_or_else(|| StoreError::Internal("transitioned version vanished".into()))
        })
        .await
    }

    async fn register_instance(
        &self,
        new: NewInstance,
        m: &Mutation,
    ) -> Result<Instance, StoreError> {
        let m = m.clone();
        self.write(move |conn, changed| {
            require_service(conn, &new.service)?;
            let state = load_version_states(conn, &new.service)?
                .into_iter()
                .find(|(v, _)| v == &new.version)
                .map(|(_, state)| state);
            records::check_register(&new, state)?;
            let id = records::new_instance_id();
            conn.execute(
                &format!(
                    "INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
                ),
                params![
                    id,
                    new.service.as_str(),
                    new.version.to_string(),
                    new.address,
                    records::map_to_json(&new.metadata),
                    new.status.as_str(),
                    new.lease_ttl_ms,
                    m.now.millis(),
                    m.now.plus_millis(u64::from(new.lease_ttl_ms)).millis(),
                ],
            )?;
            audit(
                conn,
                &m,
                AuditAction::InstanceRegister,
                &new.service,
                Some(&new.version),
                &detail::instance(&id, &new.address),
            )?;
            changed.push(new.service.clone());
            let mut found = query_instances(conn, "id = ?1", &[&id])?;
            found
                .pop()
                .ok_or_else(|| StoreError::Internal("registered instance vanished".into()))
        })
        .await
    }

    async fn heartbeat(
        &self,
        id: &InstanceId,
        status: Option<ServingStatus>,
        now: Timestamp,
    ) -> Result<Instance, StoreError> {
        let id = id.clone();
        self.write(move |conn, changed| {
            let Some(current) = query_instances(conn, "id = ?1", &[&id.as_str()])?.pop() else {
                return Err(StoreError::InstanceNotFound(id));
            };
            let reaped: bool = conn.query_row(
                "SELECT expired FROM instances WHERE id = ?1",
                [id.as_str()],
                |row| row.get(0),
            )?;
            // `reaped` as well as the lease, as in the PostgreSQL store: once expired (and
            // announced), a renewal stamped by a clock behind the reaper's must not revive it.
            if reaped || !current.is_live(now) {
                return Err(StoreError::LeaseExpired {
                    id,
                    expired: current.expires,
                });
            }
            let status = status.unwrap_or(current.status);
            conn.execute(
                "UPDATE instances SET expires_ms = ?2, status = ?3 WHERE id = ?1",
                params![
                    id.as_str(),
                    now.plus_millis(u64::from(current.lease_ttl_ms)).millis(),
                    status.as_str()
                ],
            )?;
            if status != current.status {
                changed.push(current.service.clone());
            }
            query_instances(conn, "id = ?1", &[&id.as_str()])?
                .pop()
                .ok_or_else(|| StoreError::Internal("renewed instance vanished".into()))
        })
        .await
    }

    async fn deregister_instance(&self, id: &InstanceId, m: &Mutation) -> Result<(), StoreError> {
        let (id, m) = (id.clone(), m.clone());
        self.write(move |conn, changed| {
            let Some(current) = query_instances(conn, "id = ?1", &[&id.as_str()])?.pop() else {
                return Err(StoreError::InstanceNotFound(id));
            };
            conn.execute("DELETE FROM instances WHERE id = ?1", [id.as_str()])?;
            audit(
                conn,
                &m,
                AuditAction::InstanceDeregister,
                &current.service,
                Some(&current.version),
                &detail::instance(id.as_str(), &current.address),
            )?;
            changed.push(current.service);
            Ok(())
        })
        .await
    }

    async fn list_instances(
        &self,
        service: &ServiceName,
        version: Option<&Version>,
        now: Timestamp,
    ) -> Result<Vec<Instance>, StoreError> {
        let (service, version) = (service.clone(), version.cloned());
        self.read(move |conn| {
            require_service(conn, &service)?;
            let mut instances = live_instances(conn, &service, now)?;
            if let Some(version) = version {
                instances.retain(|i| i.version == version);
            }
            Ok(instances)
        })
        .await
    }

    async fn expire_instances(&self, now: Timestamp) -> Result<Vec<Instance>, StoreError> {
        self.write(move |conn, changed| {
            let expired =
                query_instances(conn, "expired = 0 AND expires_ms <= ?1", &[&now.millis()])?;
            let registry = Mutation {
                actor: "registry".into(),
                now,
            };
            for instance in &expired {
                conn.execute(
                    "UPDATE instances SET expired = 1 WHERE id = ?1",
                    [instance.id.as_str()],
                )?;
                audit(
                    conn,
                    &registry,
                    AuditAction::InstanceExpire,
                    &instance.service,
                    Some(&instance.version),
                    &detail::instance(instance.id.as_str(), &instance.address),
                )?;
                if !changed.contains(&instance.service) {
                    changed.push(instance.service.clone());
                }
            }
            let forget_before = now.millis() - EXPIRED_INSTANCE_RETENTION_MS as i64;
            conn.execute(
                "DELETE FROM instances WHERE expired = 1 AND expires_ms < ?1",
                [forget_before],
            )?;
            Ok(expired)
        })
        .await
    }

    async fn set_route(
        &self,
        service: &ServiceName,
        weights: Vec<VersionWeight>,
        m: &Mutation,
    ) -> Result<Route, StoreError> {
        let (service, m) = (service.clone(), m.clone());
        self.write(move |conn, changed| {
            require_service(conn, &service)?;
            records::check_route(&weights, &load_version_states(conn, &service)?)?;
            conn.execute(
                "INSERT INTO routes (service, weights_json, updated_ms) VALUES (?1, ?2, ?3)
                 ON CONFLICT (service) DO UPDATE SET weights_json = ?2, updated_ms = ?3",
                params![
                    service.as_str(),
                    records::weights_to_json(&weights),
                    m.now.millis()
                ],
            )?;
            audit(
                conn,
                &m,
                AuditAction::RouteSet,
                &service,
                None,
                &detail::route(&weights),
            )?;
            changed.push(service.clone());
            load_route(conn, &service)?.ok_or_else(|| StoreError::Internal("route vanished".into()))
        })
        .await
    }

    async fn get_route(&self, service: &ServiceName) -> Result<Option<Route>, StoreError> {
        let service = service.clone();
        self.read(move |conn| {
            require_service(conn, &service)?;
            load_route(conn, &service)
        })
        .await
    }

    async fn endpoint_snapshot(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<EndpointSnapshot, StoreError> {
        let service = service.clone();
        // One connection under one lock: the three reads see one state.
        self.read(move |conn| {
            require_service(conn, &service)?;
            Ok(EndpointSnapshot {
                versions: load_version_states(conn, &service)?,
                instances: live_instances(conn, &service, now)?,
                route: load_route(conn, &service)?,
                service,
            })
        })
        .await
    }

    async fn list_audit(
        &self,
        service: Option<&ServiceName>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let service = service.map(|s| s.to_string());
        let before = before_id.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, at_ms, actor, action, service, version, detail_json FROM audit_events
                 WHERE id < ?1 AND (?2 IS NULL OR service = ?2) ORDER BY id DESC LIMIT ?3",
            )?;
            let rows = stmt.query_map(params![before, service, limit], |row| {
                Ok(AuditEvent {
                    id: row.get::<_, i64>(0)? as u64,
                    at: Timestamp(row.get(1)?),
                    actor: row.get(2)?,
                    action: row.get(3)?,
                    service: row.get(4)?,
                    version: row.get(5)?,
                    detail_json: row.get(6)?,
                })
            })?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
        .await
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.changes.subscribe()
    }

    async fn census(&self, now: Timestamp) -> Result<Census, StoreError> {
        self.read(move |conn| {
            let mut census = Census::default();
            let mut versions = conn.prepare_cached(
                "SELECT service, state, COUNT(*) FROM versions GROUP BY service, state",
            )?;
            let rows = versions.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (service, state, count) = row?;
                census.versions.push((
                    ServiceName::from_trusted(service),
                    records::parse_state(&state)?,
                    records::stored_count("version count", count)?,
                ));
            }
            let mut instances = conn.prepare_cached(
                "SELECT service, version, COUNT(*) FROM instances
                 WHERE expired = 0 AND expires_ms > ?1 GROUP BY service, version",
            )?;
            let rows = instances.query_map([now.millis()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (service, version, count) = row?;
                census.instances.push((
                    ServiceName::from_trusted(service),
                    records::parse_stored_version(&version)?,
                    records::stored_count("instance count", count)?,
                ));
            }
            records::sort_census(&mut census);
            Ok(census)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.read(|conn| Ok(conn.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }
}
