//! The instance's lease: register, heartbeat every ttl/3 with the current health, register again
//! when the registry has forgotten the instance, deregister on shutdown.

use std::{convert::Infallible, time::Duration};

use flotilla_proto::registry::v1 as pb;
use http::HeaderValue;
use tokio::sync::watch;
use tonic::Code;

use crate::{ServerError, registry::Registry};

/// What the registry needs to register this instance.
#[derive(Debug, Clone)]
pub(crate) struct InstanceSpec {
    pub service: String,
    pub version: String,
    pub address: String,
    pub ttl: Duration,
}

/// A registered instance and the lease that keeps it in endpoint sets.
#[derive(Debug)]
pub(crate) struct Lease {
    registry: Registry,
    spec: InstanceSpec,
    /// The registry's id for the current registration; `None` until registered (or while a
    /// re-registration after a lost lease has not succeeded yet).
    id: Option<String>,
    /// Announces each new id, for the response header.
    announce: watch::Sender<Option<HeaderValue>>,
}

impl Lease {
    /// A lease not yet registered; each registration's id is sent on `announce`.
    pub(crate) fn new(
        registry: Registry,
        spec: InstanceSpec,
        announce: watch::Sender<Option<HeaderValue>>,
    ) -> Self {
        Self {
            registry,
            spec,
            id: None,
            announce,
        }
    }

    /// The id of the current registration.
    pub(crate) fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// How often the lease is renewed: three heartbeats per ttl, so one lost heartbeat does not
    /// let the lease run out.
    pub(crate) fn heartbeat_interval(&self) -> Duration {
        heartbeat_interval(self.spec.ttl)
    }

    /// Registers the instance with the given health.
    pub(crate) async fn register(&mut self, serving: bool) -> Result<(), ServerError> {
        let request = pb::RegisterInstanceRequest {
            service: self.spec.service.clone(),
            version: self.spec.version.clone(),
            address: self.spec.address.clone(),
            lease_ttl_ms: u32::try_from(self.spec.ttl.as_millis()).unwrap_or(u32::MAX),
            status: status(serving).into(),
            ..Default::default()
        };
        let instance = self
            .registry
            .client()
            .register_instance(self.registry.request(request))
            .await
            .map_err(|status| ServerError::Registry {
                action: "register the instance",
                code: status.code(),
                message: status.message().to_owned(),
            })?
            .into_inner();
        tracing::info!(
            id = %instance.id, address = %instance.address, ttl = ?self.spec.ttl,
            "instance registered"
        );
        // Ids are uuids, so always a valid header value; an odd one is just not announced.
        self.announce
            .send_replace(HeaderValue::from_str(&instance.id).ok());
        self.id = Some(instance.id);
        Ok(())
    }

    /// Renews the lease every ttl/3, and at once whenever the app's health changes, reporting
    /// that health. Never returns; the caller stops it by dropping it.
    pub(crate) async fn keep_alive(&mut self, mut health: watch::Receiver<bool>) -> Infallible {
        let mut tick = tokio::time::interval(self.heartbeat_interval());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await; // The first tick is immediate; the instance has just registered.
        let mut health_open = true;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                changed = health.changed(), if health_open => health_open = changed.is_ok(),
            }
            let serving = *health.borrow_and_update();
            self.renew(serving).await;
        }
    }

    /// One heartbeat. A lease the registry no longer knows (expired, or removed by an operator)
    /// is replaced by a new registration; other failures are logged and the next heartbeat
    /// tries again, since the lease outlives two lost heartbeats.
    async fn renew(&mut self, serving: bool) {
        let Some(id) = self.id.clone() else {
            if let Err(error) = self.register(serving).await {
                tracing::warn!(%error, "registering again failed; retrying at the next heartbeat");
            }
            return;
        };
        let request = pb::HeartbeatRequest {
            instance_id: id.clone(),
            status: status(serving).into(),
        };
        match self
            .registry
            .client()
            .heartbeat(self.registry.request(request))
            .await
        {
            Ok(_) => tracing::trace!(%id, serving, "heartbeat"),
            Err(status) if status.code() == Code::NotFound => {
                tracing::warn!(%id, reason = status.message(), "lease lost; registering again");
                self.id = None;
                self.announce.send_replace(None);
                if let Err(error) = self.register(serving).await {
                    tracing::warn!(%error, "registering again failed; retrying at the next heartbeat");
                }
            }
            Err(status) => {
                tracing::warn!(%id, code = ?status.code(), reason = status.message(), "heartbeat failed")
            }
        }
    }

    /// Removes the instance from the registry, so callers stop picking it before it stops.
    /// Failures are logged: the lease expires on its own anyway.
    pub(crate) async fn deregister(&mut self) {
        let Some(id) = self.id.take() else { return };
        let request = pb::DeregisterInstanceRequest {
            instance_id: id.clone(),
        };
        match self
            .registry
            .client()
            .deregister_instance(self.registry.request(request))
            .await
        {
            Ok(_) => tracing::info!(%id, "instance deregistered"),
            Err(status) if status.code() == Code::NotFound => {
                tracing::info!(%id, "instance already gone from the registry")
            }
            Err(status) => tracing::warn!(
                %id, code = ?status.code(), reason = status.message(),
                "deregistering failed; the lease will expire"
            ),
        }
    }
}

/// A third of the ttl.
fn heartbeat_interval(ttl: Duration) -> Duration {
    ttl / 3
}

fn status(serving: bool) -> pb::ServingStatus {
    if serving {
        pb::ServingStatus::Serving
    } else {
        pb::ServingStatus::NotServing
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeats_come_three_times_per_ttl() {
        assert_eq!(
            heartbeat_interval(Duration::from_secs(3)),
            Duration::from_secs(1)
        );
        assert_eq!(
            heartbeat_interval(Duration::from_millis(1500)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn health_maps_to_the_registry_status() {
        assert_eq!(status(true), pb::ServingStatus::Serving);
        assert_eq!(status(false), pb::ServingStatus::NotServing);
    }
}
