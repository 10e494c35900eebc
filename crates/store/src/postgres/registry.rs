//! [`RegistryStore`] on PostgreSQL: each mutation one transaction that locks the rows it decides
//! on and queues its announcement.

use std::sync::Arc;

use async_trait::async_trait;
use flotilla_model::{
    AuditAction, AuditEvent, CompatibilityPolicy, EndpointSnapshot, Instance, InstanceId,
    LifecycleState, NewInstance, NewService, NewVersion, Resolution, Route, Service, ServiceName,
    ServingStatus, Timestamp, Version, VersionRecord, VersionReq, VersionWeight,
};
use tokio::sync::broadcast;

use super::{
    PostgresStore,
    notifications::announce,
    rows::{
        INSTANCE_COLUMNS, SERVICE_COLUMNS, VERSION_COLUMNS, append_history, audit,
        audit_event_from_row, first_missing_dependency, instance_from_row, live_instances,
        load_route, load_service, load_version, load_version_states, load_versions, lock_instance,
        lock_service, lock_version, require_service, route_from_row, service_from_row,
        share_version_state, sorted_instances,
    },
    statements::{col, execute, query, query_opt, snapshot},
};
use crate::{
    Census, Change, EXPIRED_INSTANCE_RETENTION_MS, Mutation, PublishGate, Published, RegistryStore,
    StoreError,
    records::{self, PublishPlan, detail},
};

#[async_trait]
impl RegistryStore for PostgresStore {
    async fn create_service(&self, new: NewService, m: &Mutation) -> Result<Service, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // ON CONFLICT: a concurrent create of the same name waits for the other to commit and
        // then inserts nothing, rather than failing on the unique index.
        let sql = format!(
            "INSERT INTO services ({SERVICE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO NOTHING RETURNING {SERVICE_COLUMNS}"
        );
        let row = query_opt(
            &tx,
            &sql,
            &[
                &new.name.as_str(),
                &new.owner,
                &new.description,
                &new.policy.mode.as_str(),
                &new.policy.category.as_str(),
                &m.now.millis(),
            ],
        )
        .await?;
        let Some(row) = row else {
            return Err(StoreError::ServiceExists(new.name));
        };
        let service = service_from_row(&row)?;
        audit(
            &tx,
            m,
            AuditAction::ServiceCreate,
            &new.name,
            None,
            &detail::service(&new.owner, &new.policy),
        )
        .await?;
        announce(&tx, &new.name).await?;
        tx.commit().await?;
        Ok(service)
    }

    async fn get_service(&self, name: &ServiceName) -> Result<Service, StoreError> {
        let client = self.client().await?;
        load_service(&client, name).await
    }

    async fn list_services(
        &self,
        after: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<Service>, StoreError> {
        let client = self.client().await?;
        // COLLATE "C": byte order, as in the SQLite store, whatever the database's collation
        // (a natural-language one would ignore the '-' in names and break paging).
        let sql = format!(
            "SELECT {SERVICE_COLUMNS} FROM services WHERE name COLLATE \"C\" > $1
             ORDER BY name COLLATE \"C\" LIMIT $2"
        );
        let after = after.map(|a| a.as_str()).unwrap_or_default();
        let rows = query(&client, &sql, &[&after, &i64::from(limit)]).await?;
        rows.iter().map(service_from_row).collect()
    }

    async fn set_policy(
        &self,
        name: &ServiceName,
        policy: CompatibilityPolicy,
        m: &Mutation,
    ) -> Result<Service, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let service = lock_service(&tx, name).await?;
        execute(
            &tx,
            "UPDATE services SET policy_mode = $2, policy_category = $3 WHERE name = $1",
            &[
                &name.as_str(),
                &policy.mode.as_str(),
                &policy.category.as_str(),
            ],
        )
        .await?;
        audit(
            &tx,
            m,
            AuditAction::ServiceSetPolicy,
            name,
            None,
            &detail::service(&service.owner, &policy),
        )
        .await?;
        announce(&tx, name).await?;
        tx.commit().await?;
        Ok(Service { policy, ..service })
    }

    async fn publish_version(
        &self,
        new: NewVersion,
        gate: Arc<dyn PublishGate>,
        m: &Mutation,
    ) -> Result<Published, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // The lock makes concurrent publishes to this service take turns, so each sees the
        // versions the others committed: one of two publishes of a version wins.
        let service = lock_service(&tx, &new.service).await?;
        let existing = load_versions(&tx, &new.service).await?;
        let missing_dependency = first_missing_dependency(&tx, &new).await?;
        let plan = records::plan_publish(&new, &service, &existing, missing_dependency, &*gate)?;
        if let PublishPlan::AlreadyPublished(version) = plan {
            tx.commit().await?;
            return Ok(Published {
                version: *version,
                created: false,
            });
        }
        execute(
            &tx,
            &format!(
                "INSERT INTO versions ({VERSION_COLUMNS})
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                &new.service.as_str(),
                &new.version.to_string(),
                &new.schema.bytes(),
                &records::artifact_to_json(&new.artifact),
                &records::dependencies_to_json(&new.dependencies),
                &records::map_to_json(&new.labels),
                &LifecycleState::Released.as_str(),
                &m.now.millis(),
                &new.schema.fingerprint(),
            ],
        )
        .await?;
        append_history(
            &tx,
            &new.service,
            &new.version,
            LifecycleState::Released,
            "published",
            m,
        )
        .await?;
        audit(
            &tx,
            m,
            AuditAction::VersionPublish,
            &new.service,
            Some(&new.version),
            &detail::publish(&new),
        )
        .await?;
        announce(&tx, &new.service).await?;
        let version = load_version(&tx, &new.service, &new.version)
            .await?
            .ok_or_else(|| StoreError::Internal("published version vanished".into()))?;
        tx.commit().await?;
        Ok(Published {
            version,
            created: true,
        })
    }

    async fn get_version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<VersionRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let record = load_version(&tx, service, version).await?;
        tx.commit().await?;
        record.ok_or_else(|| StoreError::VersionNotFound {
            service: service.clone(),
            version: version.clone(),
        })
    }

    async fn list_versions(&self, service: &ServiceName) -> Result<Vec<VersionRecord>, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let versions = load_versions(&tx, service).await?;
        tx.commit().await?;
        Ok(versions)
    }

    async fn resolve(
        &self,
        service: &ServiceName,
        requirement: &VersionReq,
    ) -> Result<(Resolution, Option<VersionRecord>), StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let states = load_version_states(&tx, service, false).await?;
        let resolution = flotilla_model::resolve(states.iter().map(|(v, s)| (v, *s)), requirement);
        let record = match &resolution.selected {
            Some(version) => load_version(&tx, service, version).await?,
            None => None,
        };
        tx.commit().await?;
        Ok((resolution, record))
    }

    async fn transition_version(
        &self,
        service: &ServiceName,
        version: &Version,
        to: LifecycleState,
        reason: &str,
        m: &Mutation,
    ) -> Result<VersionRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        require_service(&tx, service).await?;
        let not_found = || StoreError::VersionNotFound {
            service: service.clone(),
            version: version.clone(),
        };
        if !lock_version(&tx, service, version).await? {
            return Err(not_found());
        }
        let record = load_version(&tx, service, version)
            .await?
            .ok_or_else(not_found)?;
        let moves =
            record
                .state
                .check_transition(to)
                .map_err(|source| StoreError::IllegalTransition {
                    service: service.clone(),
                    version: version.clone(),
                    source,
                })?;
        if !moves {
            tx.commit().await?;
            return Ok(record);
        }
        execute(
            &tx,
            "UPDATE versions SET state = $3 WHERE service = $1 AND version = $2",
            &[&service.as_str(), &version.to_string(), &to.as_str()],
        )
        .await?;
        append_history(&tx, service, version, to, reason, m).await?;
        audit(
            &tx,
            m,
            AuditAction::VersionTransition,
            service,
            Some(version),
            &detail::transition(record.state, to, reason),
        )
        .await?;
        announce(&tx, service).await?;
        let record = load_version(&tx, service, version)
            .await?
            .ok_or_else(|| StoreError::Internal("transitioned version vanished".into()))?;
        tx.commit().await?;
        Ok(record)
    }

    async fn register_instance(
        &self,
        new: NewInstance,
        m: &Mutation,
    ) -> Result<Instance, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_service(&tx, &new.service).await?;
        // Shared lock: a concurrent yank waits, so no instance runs a version yanked under it.
        let state = share_version_state(&tx, &new.service, &new.version).await?;
        records::check_register(&new, state)?;
        let id = records::new_instance_id();
        let sql = format!(
            "INSERT INTO instances ({INSTANCE_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             RETURNING {INSTANCE_COLUMNS}"
        );
        let row = query_opt(
            &tx,
            &sql,
            &[
                &id,
                &new.service.as_str(),
                &new.version.to_string(),
                &new.address,
                &records::map_to_json(&new.metadata),
                &new.status.as_str(),
                &i64::from(new.lease_ttl_ms),
                &m.now.millis(),
                &m.now.plus_millis(u64::from(new.lease_ttl_ms)).millis(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("registered instance vanished".into()))?;
        let instance = instance_from_row(&row)?;
        audit(
            &tx,
            m,
            AuditAction::InstanceRegister,
            &new.service,
            Some(&new.version),
            &detail::instance(&id, &new.address),
        )
        .await?;
        announce(&tx, &new.service).await?;
        tx.commit().await?;
        Ok(instance)
    }

    async fn heartbeat(
        &self,
        id: &InstanceId,
        status: Option<ServingStatus>,
        now: Timestamp,
    ) -> Result<Instance, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some((current, reaped)) = lock_instance(&tx, id).await? else {
            return Err(StoreError::InstanceNotFound(id.clone()));
        };
        // `reaped` as well as the lease: another registry process, whose clock may be ahead of
        // this caller's, may have expired it already, and a renewal would leave it unlisted.
        if reaped || !current.is_live(now) {
            return Err(StoreError::LeaseExpired {
                id: id.clone(),
                expired: current.expires,
            });
        }
        let status = status.unwrap_or(current.status);
        let sql = format!(
            "UPDATE instances SET expires_ms = $2, status = $3 WHERE id = $1
             RETURNING {INSTANCE_COLUMNS}"
        );
        let row = query_opt(
            &tx,
            &sql,
            &[
                &id.as_str(),
                &now.plus_millis(u64::from(current.lease_ttl_ms)).millis(),
                &status.as_str(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("renewed instance vanished".into()))?;
        // A renewal alone changes nothing a watcher sees; announcing it would wake every watcher
        // on every heartbeat.
        if status != current.status {
            announce(&tx, &current.service).await?;
        }
        let renewed = instance_from_row(&row)?;
        tx.commit().await?;
        Ok(renewed)
    }

    async fn deregister_instance(&self, id: &InstanceId, m: &Mutation) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        let Some((current, _)) = lock_instance(&tx, id).await? else {
            return Err(StoreError::InstanceNotFound(id.clone()));
        };
        execute(&tx, "DELETE FROM instances WHERE id = $1", &[&id.as_str()]).await?;
        audit(
            &tx,
            m,
            AuditAction::InstanceDeregister,
            &current.service,
            Some(&current.version),
            &detail::instance(id.as_str(), &current.address),
        )
        .await?;
        announce(&tx, &current.service).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn list_instances(
        &self,
        service: &ServiceName,
        version: Option<&Version>,
        now: Timestamp,
    ) -> Result<Vec<Instance>, StoreError> {
        let client = self.client().await?;
        require_service(&client, service).await?;
        let mut instances = live_instances(&client, service, now).await?;
        if let Some(version) = version {
            instances.retain(|i| &i.version == version);
        }
        Ok(instances)
    }

    async fn expire_instances(&self, now: Timestamp) -> Result<Vec<Instance>, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        // A concurrent heartbeat either renews first (and the row no longer matches) or waits
        // and finds the lease expired. Rows are locked in id order, so two reapers in two
        // processes wait for each other instead of deadlocking, and each expires a lease once.
        let sql = format!(
            "UPDATE instances SET expired = TRUE WHERE id IN (
                 SELECT id FROM instances WHERE NOT expired AND expires_ms <= $1
                 ORDER BY id FOR UPDATE)
             RETURNING {INSTANCE_COLUMNS}"
        );
        let expired = sorted_instances(&query(&tx, &sql, &[&now.millis()]).await?)?;
        let registry = Mutation {
            actor: "registry".into(),
            now,
        };
        for instance in &expired {
            audit(
                &tx,
                &registry,
                AuditAction::InstanceExpire,
                &instance.service,
                Some(&instance.version),
                &detail::instance(instance.id.as_str(), &instance.address),
            )
            .await?;
            announce(&tx, &instance.service).await?;
        }
        let forget_before = now.millis() - EXPIRED_INSTANCE_RETENTION_MS as i64;
        execute(
            &tx,
            "DELETE FROM instances WHERE expired AND expires_ms < $1",
            &[&forget_before],
        )
        .await?;
        tx.commit().await?;
        Ok(expired)
    }

    async fn set_route(
        &self,
        service: &ServiceName,
        weights: Vec<VersionWeight>,
        m: &Mutation,
    ) -> Result<Route, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await?;
        lock_service(&tx, service).await?;
        // Shared locks: a version cannot be yanked while a route gives it traffic.
        records::check_route(&weights, &load_version_states(&tx, service, true).await?)?;
        let row = query_opt(
            &tx,
            "INSERT INTO routes (service, weights_json, updated_ms) VALUES ($1, $2, $3)
             ON CONFLICT (service) DO UPDATE
                 SET weights_json = EXCLUDED.weights_json, updated_ms = EXCLUDED.updated_ms
             RETURNING weights_json, updated_ms",
            &[
                &service.as_str(),
                &records::weights_to_json(&weights),
                &m.now.millis(),
            ],
        )
        .await?
        .ok_or_else(|| StoreError::Internal("route vanished".into()))?;
        let route = route_from_row(service, &row)?;
        audit(
            &tx,
            m,
            AuditAction::RouteSet,
            service,
            None,
            &detail::route(&weights),
        )
        .await?;
        announce(&tx, service).await?;
        tx.commit().await?;
        Ok(route)
    }

    async fn get_route(&self, service: &ServiceName) -> Result<Option<Route>, StoreError> {
        let client = self.client().await?;
        require_service(&client, service).await?;
        load_route(&client, service).await
    }

    async fn endpoint_snapshot(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<EndpointSnapshot, StoreError> {
        let mut client = self.client().await?;
        // One snapshot: the three reads see one committed state.
        let tx = snapshot(&mut client).await?;
        require_service(&tx, service).await?;
        let snapshot = EndpointSnapshot {
            versions: load_version_states(&tx, service, false).await?,
            instances: live_instances(&tx, service, now).await?,
            route: load_route(&tx, service).await?,
            service: service.clone(),
        };
        tx.commit().await?;
        Ok(snapshot)
    }

    async fn list_audit(
        &self,
        service: Option<&ServiceName>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let client = self.client().await?;
        let service = service.map(|s| s.as_str());
        let before = before_id.map_or(i64::MAX, |id| i64::try_from(id).unwrap_or(i64::MAX));
        let rows = query(
            &client,
            "SELECT id, at_ms, actor, action, service, version, detail_json FROM audit_events
             WHERE id < $1 AND ($2::TEXT IS NULL OR service = $2) ORDER BY id DESC LIMIT $3",
            &[&before, &service, &i64::from(limit)],
        )
        .await?;
        rows.iter().map(audit_event_from_row).collect()
    }

    fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.announcements.changes.subscribe()
    }

    async fn census(&self, now: Timestamp) -> Result<Census, StoreError> {
        let mut client = self.client().await?;
        let tx = snapshot(&mut client).await?;
        let mut census = Census::default();
        let versions = query(
            &tx,
            "SELECT service, state, COUNT(*) FROM versions GROUP BY service, state",
            &[],
        )
        .await?;
        for row in &versions {
            census.versions.push((
                ServiceName::from_trusted(col(row, 0)?),
                records::parse_state(col(row, 1)?)?,
                records::stored_count("version count", col(row, 2)?)?,
            ));
        }
        let instances = query(
            &tx,
            "SELECT service, version, COUNT(*) FROM instances
             WHERE NOT expired AND expires_ms > $1 GROUP BY service, version",
            &[&now.millis()],
        )
        .await?;
        for row in &instances {
            census.instances.push((
                ServiceName::from_trusted(col(row, 0)?),
                records::parse_stored_version(col(row, 1)?)?,
                records::stored_count("instance count", col(row, 2)?)?,
            ));
        }
        tx.commit().await?;
        records::sort_census(&mut census);
        Ok(census)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.simple_query("SELECT 1").await?;
        Ok(())
    }
}
