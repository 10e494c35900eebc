//! What the orchestrator asks of the version registry, in model types: the [`Registry`] trait
//! (so the controller and the gates can be tested against a fake), and [`GrpcRegistry`], the
//! real one, a flotilla.registry.v1 client. Wire types stop here.

use std::{fmt, time::Duration};

use async_trait::async_trait;
use flotilla_client::{RegistryChannel, RegistryUrlError};
use flotilla_model::{Artifact, LifecycleState, ServiceName, Version};
use flotilla_proto::headers::ACTOR_HEADER;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tonic::Status;

/// The actor the registry's audit log records for the orchestrator's writes.
const ACTOR: &str = "rollout-orchestrator";

/// Why a call to the registry failed: its status, or an answer that makes no sense.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the registry answered {code}: {message}")]
pub struct RegistryError {
    pub code: tonic::Code,
    pub message: String,
}

impl From<Status> for RegistryError {
    fn from(status: Status) -> Self {
        Self {
            code: status.code(),
            message: status.message().to_owned(),
        }
    }
}

impl RegistryError {
    fn malformed(what: impl fmt::Display) -> Self {
        Self {
            code: tonic::Code::Internal,
            message: format!("an answer this orchestrator cannot read: {what}"),
        }
    }
}

/// A published version, as much of it as a rollout needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedVersion {
    pub version: Version,
    pub state: LifecycleState,
    pub artifact: Artifact,
    /// Its schema, encoded, for the compatibility gate.
    pub schema: Vec<u8>,
}

/// A live instance the registry lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredInstance {
    pub version: Version,
    pub address: String,
    /// Not reported NOT_SERVING.
    pub serving: bool,
}

/// A version of another service that declares a dependency on the service being rolled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub service: String,
    pub version: String,
    pub requirement: String,
    pub live_instances: usize,
}

#[async_trait]
pub trait Registry: Send + Sync + fmt::Debug {
    async fn version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<PublishedVersion, RegistryError>;

    /// Live instances of a service, of every version.
    async fn instances(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<RegisteredInstance>, RegistryError>;

    /// Sets the service's route: each version's share in percent.
    async fn set_route(
        &self,
        service: &ServiceName,
        weights: &[(Version, u32)],
    ) -> Result<(), RegistryError>;

    /// The breaking changes between two published versions that no major bump between them
    /// announces, under the service's policy (the lower version is the baseline, so a rollback
    /// is checked in the direction it was published), each as `RULE element: message`.
    async fn unannounced_breaks(
        &self,
        service: &ServiceName,
        candidate: &PublishedVersion,
        against: &PublishedVersion,
    ) -> Result<Vec<String>, RegistryError>;

    /// Every released or deprecated version of another service whose dependencies name
    /// `service`, with its count of live instances.
    async fn consumers(&self, service: &ServiceName) -> Result<Vec<Consumer>, RegistryError>;

    /// The addresses of `version`'s live instances that are not NOT_SERVING.
    async fn serving(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<Vec<String>, RegistryError> {
        Ok(self
            .instances(service)
            .await?
            .into_iter()
            .filter(|i| &i.version == version && i.serving)
            .map(|i| i.address)
            .collect())
    }
}

/// The registry over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcRegistry {
    client: RegistryClient<RegistryChannel>,
}

impl GrpcRegistry {
    /// A client for `url` (one URL, or several replicas separated by commas). Nothing is dialled
    /// yet; the channel connects on first use, again after failures, and moves on to the next
    /// replica when one fails.
    pub fn new(url: &str) -> Result<Self, RegistryUrlError> {
        let channel = RegistryChannel::new(url, |endpoint| {
            endpoint
                .connect_timeout(Duration::from_secs(2))
                .timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
        })?;
        Ok(Self {
            client: RegistryClient::new(channel),
        })
    }

    fn request<T>(message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request.metadata_mut().insert(
            ACTOR_HEADER,
            tonic::metadata::MetadataValue::from_static(ACTOR),
        );
        request
    }

    async fn list_instances(&self, service: &str) -> Result<Vec<pb::Instance>, Status> {
        self.client
            .clone()
            .list_instances(Self::request(pb::ListInstancesRequest {
                service: service.to_owned(),
                version: String::new(),
            }))
            .await
            .map(|r| r.into_inner().instances)
    }
}

fn lifecycle(state: i32) -> Option<LifecycleState> {
    match pb::LifecycleState::try_from(state).ok()? {
        pb::LifecycleState::Released => Some(LifecycleState::Released),
        pb::LifecycleState::Deprecated => Some(LifecycleState::Deprecated),
        pb::LifecycleState::Retired => Some(LifecycleState::Retired),
        pb::LifecycleState::Yanked => Some(LifecycleState::Yanked),
        pb::LifecycleState::Unspecified => None,
    }
}

fn published(version: pb::Version) -> Result<PublishedVersion, RegistryError> {
    Ok(PublishedVersion {
        version: Version::parse(&version.version)
            .map_err(|e| RegistryError::malformed(format!("version {:?}: {e}", version.version)))?,
        state: lifecycle(version.state).ok_or_else(|| {
            RegistryError::malformed(format!("lifecycle state {}", version.state))
        })?,
        artifact: version
            .artifact
            .map(|a| Artifact {
                image: a.image,
                command: a.command,
            })
            .unwrap_or_default(),
        schema: version.file_descriptor_set,
    })
}

#[async_trait]
impl Registry for GrpcRegistry {
    async fn version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<PublishedVersion, RegistryError> {
        let answer = self
            .client
            .clone()
            .get_version(Self::request(pb::GetVersionRequest {
                service: service.to_string(),
                version: version.to_string(),
            }))
            .await?
            .into_inner();
        published(answer)
    }

    async fn instances(
        &self,
        service: &ServiceName,
    ) -> Result<Vec<RegisteredInstance>, RegistryError> {
        Ok(self
            .list_instances(service.as_str())
            .await?
            .into_iter()
            // An instance of a version this build cannot read is no instance of a rollout's.
            .filter_map(|i| {
                Some(RegisteredInstance {
                    version: Version::parse(&i.version).ok()?,
                    serving: i.status != pb::ServingStatus::NotServing as i32,
                    address: i.address,
                })
            })
            .collect())
    }

    async fn set_route(
        &self,
        service: &ServiceName,
        weights: &[(Version, u32)],
    ) -> Result<(), RegistryError> {
        let weights = weights
            .iter()
            // The registry's weights run to 10,000: percent × 100 keeps every split exact.
            .map(|(version, percent)| pb::VersionWeight {
                version: version.to_string(),
                weight: percent * 100,
            })
            .collect();
        self.client
            .clone()
            .set_route(Self::request(pb::SetRouteRequest {
                service: service.to_string(),
                weights,
            }))
            .await?;
        Ok(())
    }

    async fn unannounced_breaks(
        &self,
        service: &ServiceName,
        candidate: &PublishedVersion,
        against: &PublishedVersion,
    ) -> Result<Vec<String>, RegistryError> {
        let (later, earlier) = match candidate.version > against.version {
            true => (candidate, against),
            false => (against, candidate),
        };
        let verdict = self
            .client
            .clone()
            .check_compatibility(Self::request(pb::CheckCompatibilityRequest {
                service: service.to_string(),
                file_descriptor_set: later.schema.clone(),
                version: later.version.to_string(),
                against: pb::Against::Version as i32,
                against_version: earlier.version.to_string(),
                policy: None,
            }))
            .await?
            .into_inner();
        Ok(verdict
            .comparisons
            .iter()
            .filter(|c| !c.major_bump)
            .flat_map(|c| c.violations.iter())
            .map(|v| format!("{} {}: {}", v.rule, v.element, v.message))
            .collect())
    }

    async fn consumers(&self, service: &ServiceName) -> Result<Vec<Consumer>, RegistryError> {
        let mut consumers = Vec::new();
        let mut page_token = String::new();
        loop {
            let page = self
                .client
                .clone()
                .list_services(Self::request(pb::ListServicesRequest {
                    page_size: 1000,
                    page_token: page_token.clone(),
                }))
                .await?
                .into_inner();
            for other in page.services {
                if other.name == service.as_str() {
                    continue;
                }
                let versions = self
                    .client
                    .clone()
                    .list_versions(Self::request(pb::ListVersionsRequest {
                        service: other.name.clone(),
                        include_schema: false,
                    }))
                    .await?
                    .into_inner()
                    .versions;
                let mut instances = None;
                for version in versions {
                    if !matches!(
                        lifecycle(version.state),
                        Some(LifecycleState::Released | LifecycleState::Deprecated)
                    ) {
                        continue;
                    }
                    for dependency in version
                        .dependencies
                        .iter()
                        .filter(|d| d.service == service.as_str())
                    {
                        let live: &Vec<pb::Instance> = match &instances {
                            Some(live) => live,
                            None => instances.insert(self.list_instances(&other.name).await?),
                        };
                        consumers.push(Consumer {
                            service: other.name.clone(),
                            version: version.version.clone(),
                            requirement: dependency.requirement.clone(),
                            live_instances: live
                                .iter()
                                .filter(|i| i.version == version.version)
                                .count(),
                        });
                    }
                }
            }
            if page.next_page_token.is_empty() {
                return Ok(consumers);
            }
            page_token = page.next_page_token;
        }
    }
}
