//! Flotilla's domain vocabulary, shared by the store, the services and the clients.
//!
//! Strings from the wire become these types at the edge ([`ServiceName::parse`],
//! [`parse_version`], [`Schema::from_bytes`], ...), so code further in never re-checks them.
//! Everything here is pure: no I/O, no clock.

mod endpoints;
#[cfg(any(test, feature = "fixtures"))]
pub mod fixtures;
mod lifecycle;
mod names;
mod records;
mod resolve;
mod rollout;
mod schema;
mod time;
mod validate;
mod wire;

pub use endpoints::{EndpointSnapshot, SelectedEndpoint, SelectedEndpoints, select_endpoints};
/// Compatibility policies are the compat library's: one definition for the registry and the CLI.
pub use flotilla_compat::{
    Category as RuleCategory,
    policy::{Mode as CompatibilityMode, Policy as CompatibilityPolicy},
};
pub use lifecycle::{IllegalTransition, LifecycleState};
pub use names::{InstanceId, ServiceName};
pub use records::{
    Artifact, AuditAction, AuditEvent, Dependency, Instance, LifecycleEvent, NewInstance,
    NewService, NewVersion, Route, Service, ServingStatus, VersionRecord, VersionWeight,
};
pub use resolve::{Rejection, RejectionReason, Resolution, resolve, resolve_for_caller};
pub use rollout::{
    AnalysisSpec, AnalysisView, CanaryStep, EventKind, Figure, Gate, Halt, Health, InstanceView,
    Millis, NewRolloutEvent, PlanStep, Promotion, Revision, Role, Rollout, RolloutEvent, RolloutId,
    RolloutState, Strategy, TransitionError, Verdict,
};
pub use schema::{Schema, SchemaError};
pub use semver::{Version, VersionReq};
pub use time::Timestamp;
pub use validate::{
    InvalidField, MAX_VERSION_CHARS, Quoted, parse_address, parse_requirement, parse_version,
    quote, validate_labels, validate_text,
};
