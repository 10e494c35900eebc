//! The orchestrator's persistence: rollouts (stored whole after every transition, with their
//! events), revisions, and the per-service leases that keep two orchestrators from acting on one
//! service.

use async_trait::async_trait;
use flotilla_model::{
    NewRolloutEvent, Revision, Rollout, RolloutEvent, RolloutId, RolloutState, ServiceName,
    Timestamp,
};
use tokio::sync::broadcast;

use crate::StoreError;

/// What changed, announced after commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutChange {
    /// This rollout (or its events) changed.
    Rollout(RolloutId),
    /// Announcements may have been missed: reload everything.
    All,
}

/// Which rollouts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutQuery {
    pub service: Option<ServiceName>,
    /// Only PROGRESSING, PAUSED and ABORTING rollouts.
    pub active_only: bool,
    /// Rollouts listed before this one (newest first), for paging.
    pub after: Option<RolloutId>,
    pub limit: u32,
}

/// A write's fence: it commits only while `holder` holds the lease on the rollout's service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fence<'a> {
    pub holder: &'a str,
}

/// The orchestrator's store. `tests/contract` checks every implementation against the same cases.
///
/// Guarantees:
/// - at most one active rollout per service (`create_rollout` refuses a second);
/// - `update_rollout` is compare-and-set on [`Rollout::generation`], and with a [`Fence`] commits
///   only while the fence's holder holds the service's unexpired lease, so an orchestrator that
///   lost its lease (paused by GC, partitioned) cannot overwrite its successor's work;
/// - events get consecutive sequence numbers from 1 per rollout, in the transaction that wrote
///   the rollout;
/// - when a rollout first reaches SUCCEEDED, the same transaction records the service's next
///   revision (number = previous + 1), marks the previous one replaced, and stores the number
///   in the rollout's `revision`.
#[async_trait]
pub trait RolloutStore: Send + Sync + std::fmt::Debug {
    /// Stores a new rollout (generation 1) with its first events. [`StoreError::RolloutActive`]
    /// when the service already has an active rollout.
    async fn create_rollout(
        &self,
        rollout: &Rollout,
        events: &[NewRolloutEvent],
    ) -> Result<Rollout, StoreError>;

    async fn get_rollout(&self, id: &RolloutId) -> Result<Rollout, StoreError>;

    /// Newest first (by creation time, then id).
    async fn list_rollouts(&self, query: &RolloutQuery) -> Result<Vec<Rollout>, StoreError>;

    /// Replaces the stored rollout if its generation is still `rollout.generation`
    /// ([`StoreError::RolloutConflict`] otherwise), appends `events`, and returns what was
    /// stored (generation + 1, `updated` = `now`). With a fence, [`StoreError::LeaseLost`] unless
    /// the fence's holder holds the service's lease at `now`.
    async fn update_rollout(
        &self,
        rollout: &Rollout,
        events: &[NewRolloutEvent],
        fence: Option<Fence<'_>>,
        now: Timestamp,
    ) -> Result<Rollout, StoreError>;

    /// Events of a rollout with a sequence number above `after`, in order.
    async fn rollout_events(
        &self,
        id: &RolloutId,
        after: u64,
    ) -> Result<Vec<RolloutEvent>, StoreError>;

    /// A service's revisions, newest first.
    async fn list_revisions(&self, service: &ServiceName) -> Result<Vec<Revision>, StoreError>;

    /// Takes the lease on `service` for `holder` until `now + ttl_ms`, or renews it if `holder`
    /// has it. False (and nothing changes) while another holder's lease is unexpired.
    async fn acquire_lease(
        &self,
        service: &ServiceName,
        holder: &str,
        ttl_ms: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError>;

    /// Gives up `holder`'s lease on `service` (nothing if it does not hold it).
    async fn release_lease(&self, service: &ServiceName, holder: &str) -> Result<(), StoreError>;

    /// The holder of the unexpired lease on `service`, if any.
    async fn lease_holder(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError>;

    /// How many rollouts are in each state, in state order (PROGRESSING first); states without
    /// rollouts are left out.
    async fn count_rollouts(&self) -> Result<Vec<(RolloutState, u64)>, StoreError>;

    /// Announcements of committed rollout changes, from this process and (PostgreSQL) others.
    fn subscribe_rollouts(&self) -> broadcast::Receiver<RolloutChange>;
}
