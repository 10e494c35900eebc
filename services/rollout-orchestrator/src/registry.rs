//! The orchestrator's view of the version registry: versions, instances, consumers, and the
//! route weights through which it moves traffic.

use flotilla_proto::headers::ACTOR_HEADER;
use std::time::Duration;

use flotilla_client::{RegistryChannel, RegistryUrlError};
use flotilla_model::{ServiceName, Version};
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tonic::Status;

const ACTOR: &str = "rollout-orchestrator";

#[derive(Debug, Clone)]
pub struct Registry {
    client: RegistryClient<RegistryChannel>,
}

/// A version of another service that declares a dependency on the service being rolled out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consumer {
    pub service: String,
    pub version: String,
    pub requirement: String,
    pub live_instances: usize,
}

impl Registry {
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

    pub async fn get_version(
        &self,
        service: &ServiceName,
        version: &Version,
    ) -> Result<pb::Version, Status> {
        self.client
            .clone()
            .get_version(Self::request(pb::GetVersionRequest {
                service: service.to_string(),
                version: version.to_string(),
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Live instances of a service, of every version.
    pub async fn instances(&self, service: &ServiceName) -> Result<Vec<pb::Instance>, Status> {
        self.client
            .clone()
            .list_instances(Self::request(pb::ListInstancesRequest {
                service: service.to_string(),
                version: String::new(),
            }))
            .await
            .map(|r| r.into_inner().instances)
    }

    /// Sets the service's route: each version's share in percent.
    pub async fn set_route(
        &self,
        service: &ServiceName,
        weights: &[(Version, u32)],
    ) -> Result<(), Status> {
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
            .await
            .map(|_| ())
    }

    /// Compares `candidate` (a published version) with `against` under the service's policy.
    /// The lower version is the baseline, so a rollback to an older version is checked in the
    /// direction it was published.
    pub async fn compare(
        &self,
        service: &ServiceName,
        candidate: &pb::Version,
        against: &pb::Version,
    ) -> Result<pb::CheckCompatibilityResponse, Status> {
        let (later, earlier) = match parse(&candidate.version) > parse(&against.version) {
            true => (candidate, against),
            false => (against, candidate),
        };
        self.client
            .clone()
            .check_compatibility(Self::request(pb::CheckCompatibilityRequest {
                service: service.to_string(),
                file_descriptor_set: later.file_descriptor_set.clone(),
                version: later.version.clone(),
                against: pb::Against::Version as i32,
                against_version: earlier.version.clone(),
                policy: None,
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Every released or deprecated version of another service whose dependencies name
    /// `service`, with its count of live instances.
    pub async fn consumers(&self, service: &ServiceName) -> Result<Vec<Consumer>, Status> {
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
                    let state = pb::LifecycleState::try_from(version.state)
                        .unwrap_or(pb::LifecycleState::Unspecified);
                    if !matches!(
                        state,
                        pb::LifecycleState::Released | pb::LifecycleState::Deprecated
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
                            None => instances.insert(
                                self.client
                                    .clone()
                                    .list_instances(Self::request(pb::ListInstancesRequest {
                                        service: other.name.clone(),
                                        version: String::new(),
                                    }))
                                    .await?
                                    .into_inner()
                                    .instances,
                            ),
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

fn parse(version: &str) -> Option<Version> {
    Version::parse(version).ok()
}
