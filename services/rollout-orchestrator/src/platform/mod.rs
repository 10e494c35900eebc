//! Where versions run. The orchestrator asks a [`Platform`] to start and stop instances of a
//! version from its published artifact; traffic moves separately, through the registry's routes.
//!
//! The trait is shaped for drivers beyond the local one: a Docker driver maps an instance to a
//! container (handle = container id, labels = service/version/rollout), a Kubernetes driver to a
//! pod. Every method is idempotent, and `list` recovers the instances after a restart, so no
//! driver keeps state the orchestrator depends on in memory.

pub mod docker;
pub mod local;

use async_trait::async_trait;
use flotilla_model::{Artifact, RolloutId, ServiceName, Version};

pub use docker::{DockerConfig, DockerConnectError, DockerPlatform};
pub use local::LocalProcessPlatform;

/// What to start.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub service: ServiceName,
    pub version: Version,
    pub artifact: Artifact,
    /// The rollout starting it, recorded with the instance.
    pub rollout: RolloutId,
}

/// An instance a platform runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformInstance {
    /// The platform's handle: what `stop` takes.
    pub handle: String,
    pub service: ServiceName,
    pub version: Version,
    /// "host:port" where it listens; the address it registers in the registry.
    pub address: String,
    /// The rollout that started it.
    pub rollout: Option<RolloutId>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The artifact cannot run on this platform (e.g. no command for the local driver).
    #[error("{service}@{version}: {reason}")]
    Unrunnable {
        service: ServiceName,
        version: Version,
        reason: String,
    },
    #[error("starting {what}: {source}")]
    Start {
        what: String,
        source: std::io::Error,
    },
    #[error("stopping instance {handle}: {reason}")]
    Stop { handle: String, reason: String },
    #[error("reading the platform's records: {0}")]
    Records(String),
}

#[async_trait]
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// The platform's name, for events and logs ("local", "docker").
    fn name(&self) -> &'static str;

    /// Checks, before a rollout starts, that `artifact` can run here. Async because a driver
    /// may have to ask its engine (does the image exist?).
    async fn check(
        &self,
        service: &ServiceName,
        version: &Version,
        artifact: &Artifact,
    ) -> Result<(), PlatformError>;

    /// Starts one instance. It registers itself with the registry; the orchestrator waits for
    /// that and for its health.
    async fn start(&self, spec: &InstanceSpec) -> Result<PlatformInstance, PlatformError>;

    /// Stops an instance gracefully (SIGTERM, so it deregisters and drains), forcefully after a
    /// grace period. Stopping an instance that is already gone succeeds.
    async fn stop(&self, handle: &str) -> Result<(), PlatformError>;

    /// The live instances of a service, whoever started them on this platform.
    async fn list(&self, service: &ServiceName) -> Result<Vec<PlatformInstance>, PlatformError>;

    /// How an instance that has left `list` ended, as far as the platform still knows (exit
    /// status, last log lines), for the halt that reports it. `None` when it cannot tell.
    async fn exit_report(&self, _handle: &str) -> Option<String> {
        None
    }
}
