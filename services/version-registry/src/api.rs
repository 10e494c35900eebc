//! The flotilla.registry.v1.Registry gRPC service.

use flotilla_proto::headers::ACTOR_HEADER;
use std::{pin::Pin, sync::Arc};

use flotilla_model::{self as model, InstanceId, Timestamp};
use flotilla_proto::registry::v1::{self as pb, registry_server::Registry};
use flotilla_store::{Mutation, PublishGate, RegistryStore, StoreError};
use futures::Stream;
use tokio::sync::watch;
use tonic::{Request, Response, Status};

use crate::{
    convert,
    endpoint_stream::{CallerFilter, EndpointStream},
    error::RegistryError,
    gate,
    hub::EndpointHub,
    metrics::RegistryMetrics,
};

const MAX_ACTOR_LEN: usize = 128;

/// The registry's request handlers: validation at the edge, then one store call per mutation.
#[derive(Clone)]
pub struct RegistryApi {
    store: Arc<dyn RegistryStore>,
    gate: Arc<dyn PublishGate>,
    hub: EndpointHub,
    metrics: RegistryMetrics,
    shutdown: watch::Receiver<bool>,
}

impl std::fmt::Debug for RegistryApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryApi")
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<Response<T>, Status>;

fn mutation<T>(request: &Request<T>) -> std::result::Result<Mutation, RegistryError> {
    let actor = match request.metadata().get(ACTOR_HEADER) {
        None => "anonymous".to_owned(),
        Some(value) => {
            let text = value.to_str().ok().filter(|t| {
                !t.is_empty()
                    && t.len() <= MAX_ACTOR_LEN
                    && t.chars().all(|c| c.is_ascii_graphic() || c == ' ')
            });
            text.ok_or_else(|| {
                model::InvalidField::new(
                    ACTOR_HEADER,
                    format!("must be 1 to {MAX_ACTOR_LEN} printable ASCII characters"),
                )
            })?
            .to_owned()
        }
    };
    Ok(Mutation {
        actor,
        now: Timestamp::now(),
    })
}

fn instance_id(text: &str) -> std::result::Result<InstanceId, RegistryError> {
    Ok(InstanceId::parse("instance_id", text)?)
}

impl RegistryApi {
    pub fn new(
        store: Arc<dyn RegistryStore>,
        gate: Arc<dyn PublishGate>,
        hub: EndpointHub,
        metrics: RegistryMetrics,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        Self {
            store,
            gate,
            hub,
            metrics,
            shutdown,
        }
    }
}

#[tonic::async_trait]
impl Registry for RegistryApi {
    async fn create_service(
        &self,
        request: Request<pb::CreateServiceRequest>,
    ) -> Result<pb::Service> {
        let m = mutation(&request)?;
        let new = convert::new_service(request.into_inner()).map_err(RegistryError::from)?;
        let service = self
            .store
            .create_service(new, &m)
            .await
            .map_err(RegistryError::from)?;
        tracing::info!(service = %service.name, actor = %m.actor, "service created");
        Ok(Response::new(convert::service(service)))
    }

    async fn get_service(&self, request: Request<pb::GetServiceRequest>) -> Result<pb::Service> {
        let name =
            convert::service_name("name", &request.get_ref().name).map_err(RegistryError::from)?;
        let service = self
            .store
            .get_service(&name)
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(convert::service(service)))
    }

    async fn list_services(
        &self,
        request: Request<pb::ListServicesRequest>,
    ) -> Result<pb::ListServicesResponse> {
        let req = request.into_inner();
        let limit = convert::page_size(req.page_size).map_err(RegistryError::from)?;
        let after = match req.page_token.as_str() {
            "" => None,
            token => Some(convert::service_name("page_token", token).map_err(RegistryError::from)?),
        };
        let services = self
            .store
            .list_services(after.as_ref(), limit)
            .await
            .map_err(RegistryError::from)?;
        let next_page_token = match services.last() {
            Some(last) if services.len() == limit as usize => last.name.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListServicesResponse {
            services: services.into_iter().map(convert::service).collect(),
            next_page_token,
        }))
    }

    async fn set_compatibility_policy(
        &self,
        request: Request<pb::SetCompatibilityPolicyRequest>,
    ) -> Result<pb::Service> {
        let m = mutation(&request)?;
        let req = request.into_inner();
        let name = convert::service_name("name", &req.name).map_err(RegistryError::from)?;
        let Some(policy) = req.policy.as_ref() else {
            return Err(
                RegistryError::from(model::InvalidField::new("policy", "is required")).into(),
            );
        };
        let policy = convert::policy("policy", Some(policy)).map_err(RegistryError::from)?;
        let service = self
            .store
            .set_policy(&name, policy, &m)
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(convert::service(service)))
    }

    async fn publish_version(
        &self,
        request: Request<pb::PublishVersionRequest>,
    ) -> Result<pb::PublishVersionResponse> {
        let m = mutation(&request)?;
        let new = convert::new_version(request.into_inner()).map_err(RegistryError::from)?;
        let published = self
            .store
            .publish_version(new, self.gate.clone(), &m)
            .await
            .map_err(RegistryError::from)?;
        if published.created {
            tracing::info!(
                service = %published.version.service,
                version = %published.version.version,
                fingerprint = published.version.schema.fingerprint(),
                actor = %m.actor,
                "version published"
            );
        }
        Ok(Response::new(pb::PublishVersionResponse {
            version: Some(convert::version(published.version, true)),
            created: published.created,
        }))
    }

    async fn get_version(&self, request: Request<pb::GetVersionRequest>) -> Result<pb::Version> {
        let req = request.get_ref();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let version = model::parse_version("version", &req.version).map_err(RegistryError::from)?;
        let record = self
            .store
            .get_version(&service, &version)
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(convert::version(record, true)))
    }

    async fn list_versions(
        &self,
        request: Request<pb::ListVersionsRequest>,
    ) -> Result<pb::ListVersionsResponse> {
        let req = request.get_ref();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let versions = self
            .store
            .list_versions(&service)
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(pb::ListVersionsResponse {
            versions: versions
                .into_iter()
                .map(|v| convert::version(v, req.include_schema))
                .collect(),
        }))
    }

    async fn transition_version(
        &self,
        request: Request<pb::TransitionVersionRequest>,
    ) -> Result<pb::Version> {
        let m = mutation(&request)?;
        let req = request.into_inner();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let version = model::parse_version("version", &req.version).map_err(RegistryError::from)?;
        let to = convert::target_state("state", req.state).map_err(RegistryError::from)?;
        model::validate_text("reason", &req.reason, 1024, true).map_err(RegistryError::from)?;
        let record = self
            .store
            .transition_version(&service, &version, to, &req.reason, &m)
            .await
            .map_err(RegistryError::from)?;
        tracing::info!(%service, %version, state = %record.state, actor = %m.actor, "version transitioned");
        Ok(Response::new(convert::version(record, false)))
    }

    async fn check_compatibility(
        &self,
        request: Request<pb::CheckCompatibilityRequest>,
    ) -> Result<pb::CheckCompatibilityResponse> {
        let req = request.into_inner();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let schema = convert::schema("file_descriptor_set", &req.file_descriptor_set)
            .map_err(RegistryError::from)?;
        let version = match req.version.as_str() {
            "" => None,
            text => Some(model::parse_version("version", text).map_err(RegistryError::from)?),
        };
        let stored = self
            .store
            .list_versions(&service)
            .await
            .map_err(RegistryError::from)?;
        let policy = match &req.policy {
            Some(policy) => convert::policy("policy", Some(policy)).map_err(RegistryError::from)?,
            None => {
                self.store
                    .get_service(&service)
                    .await
                    .map_err(RegistryError::from)?
                    .policy
            }
        };
        let candidate_version = version
            .clone()
            .unwrap_or_else(|| gate::after_highest(&stored));
        let against = convert::against(
            req.against,
            &req.against_version,
            &candidate_version,
            &stored,
        )
        .map_err(|e| match e {
            convert::AgainstError::Invalid(field) => RegistryError::from(field),
            convert::AgainstError::Unknown(v) => RegistryError::from(StoreError::VersionNotFound {
                service: service.clone(),
                version: v,
            }),
        })?;
        let evaluation =
            gate::evaluate_against(policy, &against, &candidate_version, &schema, &stored)
                .map_err(|e| RegistryError::Comparison {
                    summary: gate::failure_summary(&e, &stored),
                    internal: matches!(e, flotilla_compat::CompatError::Internal),
                })?;
        Ok(Response::new(convert::compatibility_response(
            &evaluation,
            policy,
            version.as_ref(),
        )))
    }

    async fn resolve(&self, request: Request<pb::ResolveRequest>) -> Result<pb::ResolveResponse> {
        let req = request.get_ref();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let requirement =
            convert::requirement("requirement", &req.requirement).map_err(RegistryError::from)?;
        let (resolution, record) = if req.client_schema.is_empty() {
            self.store
                .resolve(&service, &requirement)
                .await
                .map_err(RegistryError::from)?
        } else {
            let caller = convert::schema("client_schema", &req.client_schema)
                .map_err(RegistryError::from)?
                .descriptor_set();
            // Schemas are needed to judge the caller, so read every record in one consistent read.
            let records = self
                .store
                .list_versions(&service)
                .await
                .map_err(RegistryError::from)?;
            let find = |version: &model::Version| records.iter().find(|r| &r.version == version);
            let resolution = model::resolve_for_caller(
                records.iter().map(|r| (&r.version, r.state)),
                &requirement,
                |version| find(version).and_then(|r| gate::caller_incompatibility(&caller, r)),
            );
            let record = resolution.selected.as_ref().and_then(find).cloned();
            (resolution, record)
        };
        let Some(record) = record else {
            return Err(RegistryError::NoEligibleVersion {
                service,
                requirement,
                rejected: resolution.rejected,
            }
            .into());
        };
        Ok(Response::new(pb::ResolveResponse {
            selected: Some(convert::version(record, false)),
            rejected: resolution
                .rejected
                .into_iter()
                .map(convert::rejection)
                .collect(),
        }))
    }

    async fn register_instance(
        &self,
        request: Request<pb::RegisterInstanceRequest>,
    ) -> Result<pb::Instance> {
        let m = mutation(&request)?;
        let new = convert::new_instance(request.into_inner()).map_err(RegistryError::from)?;
        let instance = self
            .store
            .register_instance(new, &m)
            .await
            .map_err(RegistryError::from)?;
        tracing::info!(
            service = %instance.service, version = %instance.version, id = %instance.id,
            address = %instance.address, "instance registered"
        );
        Ok(Response::new(convert::instance(instance)))
    }

    async fn heartbeat(&self, request: Request<pb::HeartbeatRequest>) -> Result<pb::Instance> {
        let req = request.get_ref();
        let id = instance_id(&req.instance_id)?;
        let status = convert::serving_status("status", req.status).map_err(RegistryError::from)?;
        let instance = self
            .store
            .heartbeat(&id, status, Timestamp::now())
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(convert::instance(instance)))
    }

    async fn deregister_instance(
        &self,
        request: Request<pb::DeregisterInstanceRequest>,
    ) -> Result<pb::DeregisterInstanceResponse> {
        let m = mutation(&request)?;
        let id = instance_id(&request.get_ref().instance_id)?;
        self.store
            .deregister_instance(&id, &m)
            .await
            .map_err(RegistryError::from)?;
        tracing::info!(%id, "instance deregistered");
        Ok(Response::new(pb::DeregisterInstanceResponse {}))
    }

    async fn list_instances(
        &self,
        request: Request<pb::ListInstancesRequest>,
    ) -> Result<pb::ListInstancesResponse> {
        let req = request.get_ref();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let version = match req.version.as_str() {
            "" => None,
            text => Some(model::parse_version("version", text).map_err(RegistryError::from)?),
        };
        let instances = self
            .store
            .list_instances(&service, version.as_ref(), Timestamp::now())
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(pb::ListInstancesResponse {
            instances: instances.into_iter().map(convert::instance).collect(),
        }))
    }

    async fn set_route(&self, request: Request<pb::SetRouteRequest>) -> Result<pb::Route> {
        let m = mutation(&request)?;
        let req = request.into_inner();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let weights = convert::weights(&req.weights).map_err(RegistryError::from)?;
        let route = self
            .store
            .set_route(&service, weights, &m)
            .await
            .map_err(RegistryError::from)?;
        tracing::info!(%service, weights = ?route.weights, actor = %m.actor, "route set");
        Ok(Response::new(convert::route(&service, Some(route))))
    }

    async fn get_route(&self, request: Request<pb::GetRouteRequest>) -> Result<pb::Route> {
        let service = convert::service_name("service", &request.get_ref().service)
            .map_err(RegistryError::from)?;
        let route = self
            .store
            .get_route(&service)
            .await
            .map_err(RegistryError::from)?;
        Ok(Response::new(convert::route(&service, route)))
    }

    type WatchEndpointsStream =
        Pin<Box<dyn Stream<Item = std::result::Result<pb::EndpointSet, Status>> + Send + 'static>>;

    async fn watch_endpoints(
        &self,
        request: Request<pb::WatchEndpointsRequest>,
    ) -> Result<Self::WatchEndpointsStream> {
        let req = request.get_ref();
        let service =
            convert::service_name("service", &req.service).map_err(RegistryError::from)?;
        let requirement =
            convert::requirement("requirement", &req.requirement).map_err(RegistryError::from)?;
        let snapshots = self
            .hub
            .subscribe(&service)
            .await
            .map_err(RegistryError::from)?;
        let caller = match req.client_schema.as_slice() {
            [] => None,
            bytes => Some(CallerFilter::new(
                convert::schema("client_schema", bytes)
                    .map_err(RegistryError::from)?
                    .descriptor_set(),
                self.store.clone(),
            )),
        };
        let stream = EndpointStream {
            counted: self.metrics.watching(&service),
            service,
            requirement,
            snapshots,
            shutdown: self.shutdown.clone(),
            caller,
        };
        Ok(Response::new(Box::pin(stream.into_stream())))
    }

    async fn list_audit_events(
        &self,
        request: Request<pb::ListAuditEventsRequest>,
    ) -> Result<pb::ListAuditEventsResponse> {
        let req = request.get_ref();
        let service = match req.service.as_str() {
            "" => None,
            text => Some(convert::service_name("service", text).map_err(RegistryError::from)?),
        };
        let limit = convert::page_size(req.page_size).map_err(RegistryError::from)?;
        let before = match req.page_token.as_str() {
            "" => None,
            token => Some(token.parse::<u64>().map_err(|_| {
                RegistryError::from(model::InvalidField::new(
                    "page_token",
                    "is not a token from a previous page",
                ))
            })?),
        };
        let events = self
            .store
            .list_audit(service.as_ref(), before, limit)
            .await
            .map_err(RegistryError::from)?;
        let next_page_token = match events.last() {
            Some(last) if events.len() == limit as usize => last.id.to_string(),
            _ => String::new(),
        };
        Ok(Response::new(pb::ListAuditEventsResponse {
            events: events.into_iter().map(convert::audit_event).collect(),
            next_page_token,
        }))
    }
}
