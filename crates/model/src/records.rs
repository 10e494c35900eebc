//! What the registry stores, as validated values.

use std::collections::BTreeMap;

use semver::{Version, VersionReq};

use crate::{CompatibilityPolicy, InstanceId, LifecycleState, Schema, ServiceName, Timestamp};

/// A service to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewService {
    pub name: ServiceName,
    pub owner: String,
    pub description: String,
    pub policy: CompatibilityPolicy,
}

/// A stored service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: ServiceName,
    pub owner: String,
    pub description: String,
    pub policy: CompatibilityPolicy,
    pub created: Timestamp,
}

/// How to run a version.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Artifact {
    pub image: String,
    pub command: Vec<String>,
}

/// A version's requirement on another service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dependency {
    pub service: ServiceName,
    pub requirement: VersionReq,
}

/// A version to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    pub service: ServiceName,
    pub version: Version,
    pub schema: Schema,
    pub artifact: Artifact,
    pub dependencies: Vec<Dependency>,
    pub labels: BTreeMap<String, String>,
}

impl NewVersion {
    /// Whether a stored version has this content: the immutability check of publishing.
    pub fn same_content_as(&self, stored: &VersionRecord) -> bool {
        self.service == stored.service
            && self.version == stored.version
            && self.schema.fingerprint() == stored.schema.fingerprint()
            && self.artifact == stored.artifact
            && self.dependencies == stored.dependencies
            && self.labels == stored.labels
    }
}

/// One entry of a version's lifecycle history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LifecycleEvent {
    pub state: LifecycleState,
    pub reason: String,
    pub at: Timestamp,
    pub actor: String,
}

/// A stored version.
#[derive(Debug, Clone, PartialEq)]
pub struct VersionRecord {
    pub service: ServiceName,
    pub version: Version,
    pub schema: Schema,
    pub artifact: Artifact,
    pub dependencies: Vec<Dependency>,
    pub labels: BTreeMap<String, String>,
    pub state: LifecycleState,
    pub history: Vec<LifecycleEvent>,
    pub published: Timestamp,
}

/// An instance's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ServingStatus {
    #[default]
    Serving,
    NotServing,
}

impl ServingStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Serving => "SERVING",
            Self::NotServing => "NOT_SERVING",
        }
    }

    pub fn from_str_trusted(text: &str) -> Option<Self> {
        [Self::Serving, Self::NotServing]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// An instance to register.
#[derive(Debug, Clone, PartialEq)]
pub struct NewInstance {
    pub service: ServiceName,
    pub version: Version,
    pub address: String,
    pub metadata: BTreeMap<String, String>,
    pub status: ServingStatus,
    pub lease_ttl_ms: u32,
}

/// A registered instance and its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    pub id: InstanceId,
    pub service: ServiceName,
    pub version: Version,
    pub address: String,
    pub metadata: BTreeMap<String, String>,
    pub status: ServingStatus,
    pub lease_ttl_ms: u32,
    pub registered: Timestamp,
    pub expires: Timestamp,
}

impl Instance {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.expires > now
    }
}

/// The weight of one version in a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionWeight {
    pub version: Version,
    pub weight: u32,
}

/// A service's traffic split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub service: ServiceName,
    pub weights: Vec<VersionWeight>,
    pub updated: Timestamp,
}

impl Route {
    pub const MAX_WEIGHT: u32 = 10_000;

    pub fn weight_of(&self, version: &Version) -> Option<u32> {
        self.weights
            .iter()
            .find(|w| &w.version == version)
            .map(|w| w.weight)
    }
}

/// The kinds of mutation the audit log records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuditAction {
    ServiceCreate,
    ServiceSetPolicy,
    VersionPublish,
    VersionTransition,
    InstanceRegister,
    InstanceDeregister,
    InstanceExpire,
    RouteSet,
}

impl AuditAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ServiceCreate => "service.create",
            Self::ServiceSetPolicy => "service.set_policy",
            Self::VersionPublish => "version.publish",
            Self::VersionTransition => "version.transition",
            Self::InstanceRegister => "instance.register",
            Self::InstanceDeregister => "instance.deregister",
            Self::InstanceExpire => "instance.expire",
            Self::RouteSet => "route.set",
        }
    }
}

/// A recorded mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEvent {
    pub id: u64,
    pub at: Timestamp,
    pub actor: String,
    pub action: String,
    pub service: String,
    pub version: String,
    pub detail_json: String,
}
