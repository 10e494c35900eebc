//! The version registry's store: one [`RegistryStore`] trait, implemented by [`PostgresStore`]
//! (production; several registry processes may share one database) and [`SqliteStore`] (the
//! embedded default: one file, no server).
//!
//! Every mutating method is one transaction that also appends its audit event, so a failure leaves
//! nothing half-written. Committed changes are announced on [`RegistryStore::subscribe`]; with
//! PostgreSQL the announcement crosses processes through LISTEN/NOTIFY.
//!
//! The store owns the rules that must hold under concurrency (immutability of published versions,
//! the lifecycle state machine, references between services, versions and instances); the
//! registry service validates request shapes before calling it.
//!
//! Both stores also implement the orchestrator's [`RolloutStore`]: rollouts with their events,
//! revisions and per-service leases, in tables that reference none of the registry's (so the
//! orchestrator may use a database of its own), announced on
//! [`RolloutStore::subscribe_rollouts`].

mod error;
mod postgres;
mod records;
mod rollouts;
mod sqlite;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

use async_trait::async_trait;
use flotilla_model::{
    AuditEvent, CompatibilityPolicy, EndpointSnapshot, Instance, InstanceId, LifecycleState,
    NewInstance, NewService, NewVersion, Resolution, Route, Service, ServiceName, ServingStatus,
    Timestamp, Version, VersionRecord, VersionReq, VersionWeight,
};
use tokio::sync::broadcast;

pub use error::{GateRejection, GateViolation, StoreError};
pub use postgres::{PostgresConfig, PostgresStore};
pub use rollouts::{Fence, RolloutChange, RolloutQuery, RolloutStore};
pub use sqlite::SqliteStore;

/// Who is making a change, and when: recorded in the audit log and lifecycle history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mutation {
    pub actor: String,
    pub now: Timestamp,
}

/// What changed, announced after commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Something about this service's versions, instances or route changed.
    Service(ServiceName),
    /// Announcements may have been missed (a lost LISTEN connection): reload everything.
    All,
}

/// The outcome of a publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub version: VersionRecord,
    /// False when identical content had already been published under this version.
    pub created: bool,
}

/// Counts of what the registry holds, for its metrics: read in one statement per table, so a
/// scrape costs two queries however many services there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Census {
    /// Versions by service and lifecycle state, in service then state order.
    pub versions: Vec<(ServiceName, LifecycleState, u64)>,
    /// Live (unexpired) instances by service and version, in service then version order.
    pub instances: Vec<(ServiceName, Version, u64)>,
}

/// The compatibility check a publish must pass. It runs inside the publish transaction, with the
/// service row locked, so two concurrent publishes are checked against each other.
pub trait PublishGate: Send + Sync {
    /// `earlier` holds every stored version of the service, highest first.
    fn check(
        &self,
        service: &Service,
        earlier: &[VersionRecord],
        candidate: &NewVersion,
    ) -> Result<(), GateRejection>;
}

/// How long an expired instance is remembered, so a late heartbeat hears "expired" rather than
/// "unknown".
pub const EXPIRED_INSTANCE_RETENTION_MS: u64 = 10 * 60 * 1000;

/// The registry's persistence. See the crate docs for the guarantees every implementation keeps;
/// `tests/contract.rs` checks them against both.
#[async_trait]
pub trait RegistryStore: Send + Sync + std::fmt::Debug {
    async fn create_service(&self, new: NewService, m: &Mutation) -> Result<Service, StoreError>;
    async fn get_service(&self, name: &ServiceName) -> Result<Service, StoreError>;
    /// Services in name order, starting after `after`.
    async fn list_services(
        &self,
        after: Option<&ServiceName>,
        limit: u32,
    ) -> Result<Vec<Service>, StoreError>;
    async fn set_policy(
        &self,
        name: &ServiceName,
        policy: CompatibilityPolicy,
        m: &Mutation,
    ) -> Result<Service, StoreError>;

    /// Publishes a version after `gate` accepts it. Identical content under an existing version
    /// returns it with `created: false` without consulting the gate; different content is
    /// [`StoreError::VersionConflict`]. Every dependency must name an existing service.
    async fn publish_version(
        &self,
        new: NewVersion,
        gate: Arc<dyn PublishGate>,
        m: &Mutation,
    ) -> Result<Published, StoreError>;
    async fn get_version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<VersionRecord, StoreError>;
    /// Every version of a service, highest first.
    async fn list_versions(&self, service: &ServiceName) -> Result<Vec<VersionRecord>, StoreError>;
    /// Resolves `requirement` (see [`flotilla_model::resolve`]) and reads the chosen version, in
    /// one consistent read: the record returned is in the state the resolution saw.
    async fn resolve(
        &self,
        service: &ServiceName,
        requirement: &VersionReq,
    ) -> Result<(Resolution, Option<VersionRecord>), StoreError>;
    /// Moves a version along its lifecycle; a move to its current state changes nothing.
    async fn transition_version(
        &self,
        service: &ServiceName,
        version: &Version,
        to: LifecycleState,
        reason: &str,
        m: &Mutation,
    ) -> Result<VersionRecord, StoreError>;

    /// Registers an instance of a resolvable version with a lease of `new.lease_ttl_ms`.
    async fn register_instance(
        &self,
        new: NewInstance,
        m: &Mutation,
    ) -> Result<Instance, StoreError>;
    /// Renews a lease. Heartbeats are not audited.
    async fn heartbeat(
        &self,
        id: &InstanceId,
        status: Option<ServingStatus>,
        now: Timestamp,
    ) -> Result<Instance, StoreError>;
    async fn deregister_instance(&self, id: &InstanceId, m: &Mutation) -> Result<(), StoreError>;
    /// Live instances of a service (of one version when given), by version then address.
    async fn list_instances(
        &self,
        service: &ServiceName,
        version: Option<&Version>,
        now: Timestamp,
    ) -> Result<Vec<Instance>, StoreError>;
    /// Marks every lease that ran out by `now` as expired (audited, announced) and forgets
    /// instances expired for longer than [`EXPIRED_INSTANCE_RETENTION_MS`]. Returns the newly
    /// expired instances.
    async fn expire_instances(&self, now: Timestamp) -> Result<Vec<Instance>, StoreError>;

    /// Replaces a service's route. Every version must exist; a positive weight needs a
    /// resolvable version.
    async fn set_route(
        &self,
        service: &ServiceName,
        weights: Vec<VersionWeight>,
        m: &Mutation,
    ) -> Result<Route, StoreError>;
    async fn get_route(&self, service: &ServiceName) -> Result<Option<Route>, StoreError>;

    /// Versions, live instances and route of a service, read consistently.
    async fn endpoint_snapshot(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<EndpointSnapshot, StoreError>;

    /// Audit events newest first, older than `before_id` when given.
    async fn list_audit(
        &self,
        service: Option<&ServiceName>,
        before_id: Option<u64>,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;

    /// Announcements of committed changes, from this process and (PostgreSQL) from others.
    fn subscribe(&self) -> broadcast::Receiver<Change>;

    /// How many versions each service has in each state, and how many live instances each
    /// version has at `now`.
    async fn census(&self, now: Timestamp) -> Result<Census, StoreError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), StoreError>;
}
