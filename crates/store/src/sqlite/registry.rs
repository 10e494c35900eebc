//! [`RegistryStore`] on SQLite: each mutation one IMMEDIATE transaction, announced in-process
//! after commit.

use std::sync::Arc;

use async_trait::async_trait;
use flotilla_model::{
    AuditAction, AuditEvent, CompatibilityPolicy, EndpointSnapshot, Instance, InstanceId,
    LifecycleState, NewInstance, NewService, NewVersion, Resolution, Route, Service, ServiceName,
    ServingStatus, Timestamp, Version, VersionRecord, VersionReq, VersionWeight,
};
use rusqlite::params;
use tokio::sync::broadcast;

use super::{
    SqliteStore,
    rows::{
        INSTANCE_COLUMNS, SERVICE_COLUMNS, VERSION_COLUMNS, append_history, audit, live_instances,
        load_route, load_service, load_version, load_version_states, load_versions,
        query_instances, require_service, service_exists, service_from_row,
    },
};
use crate::{
    Census, Change, EXPIRED_INSTANCE_RETENTION_MS, Mutation, PublishGate, Published, RegistryStore,
    StoreError,
    records::{self, PublishPlan, detail},
};

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
