//! The startup exchange with the registry: reach it, make sure the service exists, publish the
//! version.

use flotilla_proto::headers::ACTOR_HEADER;
use std::{future::Future, time::Duration};

use flotilla_client::RegistryChannel;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tokio::time::Instant;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use crate::ServerError;

/// First and longest pause between attempts to reach a registry that is not up yet.
const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// A registry client that names this server as the actor of what it does.
#[derive(Debug, Clone)]
pub(crate) struct Registry {
    client: RegistryClient<RegistryChannel>,
    endpoint: String,
    actor: tonic::metadata::MetadataValue<tonic::metadata::Ascii>,
}

impl Registry {
    /// A client for `endpoint` (one URL, or several replicas separated by commas). Nothing is
    /// dialled yet: the channel connects on first use, reconnects after failures and moves on to
    /// the next replica when one fails, so a registry that restarts or dies is reached again.
    pub(crate) fn new(endpoint: &str, actor: &str) -> Result<Self, ServerError> {
        let invalid = |reason: String| ServerError::InvalidSetting {
            field: "registry_endpoint",
            reason,
        };
        let channel = RegistryChannel::new(endpoint, |endpoint| {
            endpoint
                .connect_timeout(Duration::from_secs(2))
                // A registry call that hangs longer than this is as good as failed; the caller
                // retries.
                .timeout(Duration::from_secs(5))
                .tcp_nodelay(true)
        })
        .map_err(|e| invalid(e.to_string()))?;
        let actor = actor
            .parse()
            .map_err(|_| invalid(format!("{actor:?} is not a valid header value")))?;
        Ok(Self {
            client: RegistryClient::new(channel),
            endpoint: endpoint.to_owned(),
            actor,
        })
    }

    /// The registry client, for calls made by the instance's lease.
    pub(crate) fn client(&self) -> RegistryClient<RegistryChannel> {
        self.client.clone()
    }

    /// `message` as a request naming this server as the actor.
    pub(crate) fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut request = tonic::Request::new(message);
        request
            .metadata_mut()
            .insert(ACTOR_HEADER, self.actor.clone());
        request
    }

    /// Creates the service unless it exists, retrying while the registry is unreachable until
    /// `deadline`.
    pub(crate) async fn ensure_service(
        &self,
        name: &str,
        owner: &str,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ServerError> {
        let request = pb::CreateServiceRequest {
            name: name.to_owned(),
            owner: owner.to_owned(),
            ..Default::default()
        };
        let created = self
            .until_reachable(deadline, started, || {
                let mut client = self.client.clone();
                let request = self.request(request.clone());
                async move { client.create_service(request).await }
            })
            .await?;
        match created {
            Ok(_) => {
                tracing::info!(service = name, "service created");
                Ok(())
            }
            // Another instance or an operator made it first: exactly what was wanted.
            Err(status) if status.code() == Code::AlreadyExists => Ok(()),
            Err(status) => Err(ServerError::Registry {
                action: "create the service",
                code: status.code(),
                message: status.message().to_owned(),
            }),
        }
    }

    /// Publishes the version. An identical earlier publish is fine; a refusal is an error naming
    /// the registry's reason and each breaking change.
    pub(crate) async fn publish(
        &self,
        request: pb::PublishVersionRequest,
        deadline: Instant,
        started: Instant,
    ) -> Result<(), ServerError> {
        let published = self
            .until_reachable(deadline, started, || {
                let mut client = self.client.clone();
                let request = self.request(request.clone());
                async move { client.publish_version(request).await }
            })
            .await?;
        match published {
            Ok(response) => {
                let created = response.into_inner().created;
                tracing::info!(
                    service = %request.service, version = %request.version, created,
                    "version published"
                );
                Ok(())
            }
            Err(status) => Err(refusal(&request, &status)),
        }
    }

    /// Runs `call` until it gets an answer other than UNAVAILABLE, backing off between attempts;
    /// still unavailable at `deadline` makes [`ServerError::RegistryUnreachable`]. Other errors
    /// are the caller's to judge.
    async fn until_reachable<T, F, Fut>(
        &self,
        deadline: Instant,
        started: Instant,
        mut call: F,
    ) -> Result<Result<T, Status>, ServerError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, Status>>,
    {
        let mut backoff = FIRST_BACKOFF;
        loop {
            match call().await {
                Err(status) if status.code() == Code::Unavailable => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(ServerError::RegistryUnreachable {
                            endpoint: self.endpoint.clone(),
                            waited: now - started,
                            reason: status.message().to_owned(),
                        });
                    }
                    tracing::debug!(endpoint = %self.endpoint, reason = status.message(),
                        "registry not reachable yet; retrying");
                    tokio::time::sleep(backoff.min(deadline - now)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                answered => return Ok(answered),
            }
        }
    }
}

/// The error for a publish the registry did not accept.
fn refusal(request: &pb::PublishVersionRequest, status: &Status) -> ServerError {
    match status.code() {
        Code::FailedPrecondition | Code::AlreadyExists | Code::InvalidArgument => {
            let violations = status
                .get_details_precondition_failure()
                .map(|failure| {
                    failure
                        .violations
                        .iter()
                        .map(|v| format!("{}: {}", v.r#type, v.subject))
                        .collect()
                })
                .unwrap_or_default();
            ServerError::PublishRefused {
                service: request.service.clone(),
                version: request.version.clone(),
                code: status.code(),
                message: status.message().to_owned(),
                violations,
            }
        }
        code => ServerError::Registry {
            action: "publish the version",
            code,
            message: status.message().to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::{ErrorDetails, StatusExt};

    fn publish_request() -> pb::PublishVersionRequest {
        pb::PublishVersionRequest {
            service: "greeter".into(),
            version: "1.1.0".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_gate_refusal_keeps_the_message_and_each_violation() {
        let mut details = ErrorDetails::new();
        details.add_precondition_failure_violation(
            "FIELD_NO_DELETE",
            "demo.HelloRequest.name (#1) against 1.0.0 (backward)",
            "deleted",
        );
        let status = Status::with_error_details(
            Code::FailedPrecondition,
            "publish refused: 1 breaking change(s)",
            details,
        );
        match refusal(&publish_request(), &status) {
            ServerError::PublishRefused {
                code,
                message,
                violations,
                ..
            } => {
                assert_eq!(code, Code::FailedPrecondition);
                assert_eq!(message, "publish refused: 1 breaking change(s)");
                assert_eq!(
                    violations,
                    ["FIELD_NO_DELETE: demo.HelloRequest.name (#1) against 1.0.0 (backward)"]
                );
            }
            other => panic!("not a refusal: {other:?}"),
        }
    }

    #[test]
    fn other_failures_are_registry_errors() {
        let status = Status::internal("disk full");
        assert!(matches!(
            refusal(&publish_request(), &status),
            ServerError::Registry {
                code: Code::Internal,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_a_setting_error() {
        let error = Registry::new("not a uri at all", "me").unwrap_err();
        assert!(matches!(
            error,
            ServerError::InvalidSetting {
                field: "registry_endpoint",
                ..
            }
        ));
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_given_up_at_the_deadline() {
        // A port just released: nothing listens there, so every attempt is UNAVAILABLE.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        drop(listener);
        let registry = Registry::new(&format!("http://{address}"), "me").unwrap();
        let started = Instant::now();
        let error = registry
            .ensure_service("greeter", "", started + Duration::from_millis(300), started)
            .await
            .unwrap_err();
        match error {
            ServerError::RegistryUnreachable { waited, .. } => {
                assert!(waited >= Duration::from_millis(300), "{waited:?}");
                assert!(waited < Duration::from_secs(3), "{waited:?}");
            }
            other => panic!("not unreachable: {other:?}"),
        }
    }
}
