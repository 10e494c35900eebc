//! The store's errors. The registry maps each variant to one gRPC code in one place.

use flotilla_model::{IllegalTransition, InstanceId, RolloutId, ServiceName, Timestamp, Version};

/// One reason a publish gate refused a version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateViolation {
    /// A stable identifier of the rule, e.g. buf's `FIELD_NO_DELETE`.
    pub rule: String,
    /// What it applies to, e.g. `greeter.proto:demo.Hello.name`.
    pub subject: String,
    pub description: String,
}

/// A publish gate's refusal, with every violation it found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{summary}")]
pub struct GateRejection {
    pub summary: String,
    pub violations: Vec<GateViolation>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("service {0:?} does not exist")]
    ServiceNotFound(ServiceName),
    #[error("version {version} of service {service:?} does not exist")]
    VersionNotFound {
        service: ServiceName,
        version: Version,
    },
    #[error("instance {0} is not registered")]
    InstanceNotFound(InstanceId),
    #[error("the lease of instance {id} expired at {expired}; register again")]
    LeaseExpired { id: InstanceId, expired: Timestamp },
    #[error("service {0:?} already exists")]
    ServiceExists(ServiceName),
    #[error(
        "version {version} of service {service:?} was already published with other content \
         (differs in {differences}); published versions are immutable, publish a new version"
    )]
    VersionConflict {
        service: ServiceName,
        version: Version,
        differences: String,
    },
    #[error("version {version} of service {service:?}: {source}")]
    IllegalTransition {
        service: ServiceName,
        version: Version,
        source: IllegalTransition,
    },
    /// A reference or state the request relies on does not hold; `field` names the request field.
    #[error("{field}: {message}")]
    Precondition { field: String, message: String },
    #[error("publish refused: {0}")]
    Rejected(GateRejection),
    #[error("rollout {0} does not exist")]
    RolloutNotFound(RolloutId),
    #[error("service {service:?} already has rollout {active} in progress")]
    RolloutActive {
        service: ServiceName,
        active: RolloutId,
    },
    /// Someone else wrote the rollout since it was read: read it again and redo the change.
    #[error("rollout {id} changed since it was read (generation {expected}, now {found})")]
    RolloutConflict {
        id: RolloutId,
        expected: u64,
        found: u64,
    },
    #[error("{holder} does not hold the lease on service {service:?}")]
    LeaseLost {
        service: ServiceName,
        holder: String,
    },
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    #[error("the store failed: {0}")]
    Internal(String),
}

impl StoreError {
    pub(crate) fn precondition(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Precondition {
            field: field.into(),
            message: message.into(),
        }
    }
}
