//! What a Flotilla-built service declares about itself before it serves.

use std::{
    borrow::Cow, collections::BTreeMap, fmt, future::Future, net::SocketAddr, time::Duration,
};

use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{HealthHandle, ServerError, serve};

/// The lease time to live unless [`FleetServerBuilder::lease_ttl`] says otherwise.
pub const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(3);
/// How long startup keeps trying to reach the registry, unless
/// [`FleetServerBuilder::registry_wait`] says otherwise.
pub const DEFAULT_REGISTRY_WAIT: Duration = Duration::from_secs(10);
/// How long in-flight calls may finish after shutdown, unless
/// [`FleetServerBuilder::shutdown_grace`] says otherwise (the registry's own grace period).
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// The entry point: `FleetServer::builder(registry, service, version)`.
#[derive(Debug)]
pub struct FleetServer;

impl FleetServer {
    /// Starts describing version `version` of `service`, to be published to and registered with
    /// the registry at `registry_endpoint` (e.g. `http://127.0.0.1:50051`).
    pub fn builder(
        registry_endpoint: &str,
        service: &str,
        version: semver::Version,
    ) -> FleetServerBuilder {
        FleetServerBuilder {
            registry_endpoint: registry_endpoint.to_owned(),
            service: service.to_owned(),
            version,
            descriptor_set: None,
            artifact: None,
            dependencies: Vec::new(),
            labels: BTreeMap::new(),
            owner: String::new(),
            advertise: None,
            lease_ttl: DEFAULT_LEASE_TTL,
            registry_wait: DEFAULT_REGISTRY_WAIT,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            health: HealthHandle::new(),
            on_ready: None,
        }
    }
}

/// What the server knows once it serves and its instance is registered; passed to
/// [`FleetServerBuilder::on_ready`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Ready {
    /// The address the listener is bound to.
    pub local_addr: SocketAddr,
    /// The address registered for callers to dial.
    pub advertised: String,
    /// The registry's id of this instance.
    pub instance_id: String,
    /// The schema fingerprint, as sent in the `x-flotilla-schema` header.
    pub schema_fingerprint: String,
}

type ReadyCallback = Box<dyn FnOnce(&Ready) + Send>;

/// A service version's declaration: its schema, artifact, dependencies and how it registers.
/// Finished by [`FleetServerBuilder::serve`].
pub struct FleetServerBuilder {
    pub(crate) registry_endpoint: String,
    pub(crate) service: String,
    pub(crate) version: semver::Version,
    pub(crate) descriptor_set: Option<Cow<'static, [u8]>>,
    pub(crate) artifact: Option<(String, Vec<String>)>,
    pub(crate) dependencies: Vec<(String, String)>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) owner: String,
    pub(crate) advertise: Option<String>,
    pub(crate) lease_ttl: Duration,
    pub(crate) registry_wait: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) health: HealthHandle,
    pub(crate) on_ready: Option<ReadyCallback>,
}

impl FleetServerBuilder {
    /// The encoded FileDescriptorSet of the service's API, imports included: published as the
    /// version's schema, served by reflection, and the source of the health names. Required.
    pub fn descriptor_set(mut self, bytes: impl Into<Cow<'static, [u8]>>) -> Self {
        self.descriptor_set = Some(bytes.into());
        self
    }

    /// How to run this version: a container image and/or a command line (the first element is
    /// the program).
    pub fn artifact(mut self, image: &str, command: Vec<String>) -> Self {
        self.artifact = Some((image.to_owned(), command));
        self
    }

    /// A service this version calls, and the semver requirement on its versions (e.g. `^1.1`).
    /// Repeatable. The service must exist in the registry.
    pub fn dependency(mut self, service: &str, requirement: &str) -> Self {
        self.dependencies
            .push((service.to_owned(), requirement.to_owned()));
        self
    }

    /// A label published with the version, e.g. `git_sha`. A repeated key keeps the last value.
    pub fn label(mut self, key: &str, value: &str) -> Self {
        self.labels.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The owner recorded if the service has to be created.
    pub fn owner(mut self, owner: &str) -> Self {
        self.owner = owner.to_owned();
        self
    }

    /// The `host:port` callers should dial (a `SocketAddr` or a string). Defaults to the
    /// listener's local address, with an unspecified IP (`0.0.0.0`, `::`) replaced by loopback.
    pub fn advertise(mut self, address: impl fmt::Display) -> Self {
        self.advertise = Some(address.to_string());
        self
    }

    /// The instance's lease (1 s to 300 s, default 3 s); it is renewed every ttl/3.
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }

    /// How long startup keeps trying a registry that is not reachable yet (default 10 s).
    pub fn registry_wait(mut self, wait: Duration) -> Self {
        self.registry_wait = wait;
        self
    }

    /// How long in-flight calls may finish after shutdown before connections are closed
    /// (default 10 s).
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Called once, when the server serves and its instance is registered: the moment to tell
    /// the world (e.g. print the address).
    pub fn on_ready(mut self, callback: impl FnOnce(&Ready) + Send + 'static) -> Self {
        self.on_ready = Some(Box::new(callback));
        self
    }

    /// The switch for this server's health, to keep before [`FleetServerBuilder::serve`]
    /// consumes the builder. It starts SERVING.
    pub fn health_handle(&self) -> HealthHandle {
        self.health.clone()
    }

    /// Publishes the version (creating the service if needed) and returns without serving: how
    /// a release is announced for an orchestrator to run later from its artifact. Publishing
    /// identical content again succeeds; a refusal says why.
    pub async fn publish(self) -> Result<(), ServerError> {
        serve::publish(self).await
    }

    /// Publishes the version, serves `routes` (plus health, reflection and `GET /metrics`) on
    /// `listener` and keeps the instance registered until `shutdown` completes; then turns
    /// health NOT_SERVING, deregisters, and lets in-flight calls finish within the grace period.
    ///
    /// Returns an error when the settings are invalid, the registry stays unreachable through
    /// the startup wait, the registry refuses the version (the message says why), registration
    /// fails, or serving fails.
    pub async fn serve(
        self,
        listener: TcpListener,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ServerError> {
        serve::serve(self, listener, routes, shutdown).await
    }
}

impl fmt::Debug for FleetServerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetServerBuilder")
            .field("registry_endpoint", &self.registry_endpoint)
            .field("service", &self.service)
            .field("version", &self.version.to_string())
            .field(
                "descriptor_set_bytes",
                &self.descriptor_set.as_ref().map(|d| d.len()),
            )
            .field("artifact", &self.artifact)
            .field("dependencies", &self.dependencies)
            .field("labels", &self.labels)
            .field("owner", &self.owner)
            .field("advertise", &self.advertise)
            .field("lease_ttl", &self.lease_ttl)
            .field("registry_wait", &self.registry_wait)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("health", &self.health)
            .field("on_ready", &self.on_ready.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_settings_are_kept() {
        let builder = FleetServer::builder("http://r:1", "greeter", semver::Version::new(1, 0, 0));
        assert_eq!(builder.lease_ttl, DEFAULT_LEASE_TTL);
        assert!(builder.descriptor_set.is_none());

        let builder = builder
            .descriptor_set(vec![1, 2, 3])
            .artifact("img:1", vec!["run".into()])
            .dependency("a", "^1")
            .dependency("b", ">=2")
            .label("k", "v1")
            .label("k", "v2")
            .owner("team")
            .advertise("host:7")
            .lease_ttl(Duration::from_secs(9));
        assert_eq!(builder.descriptor_set.as_deref(), Some(&[1u8, 2, 3][..]));
        assert_eq!(
            builder.dependencies,
            [("a".into(), "^1".into()), ("b".into(), ">=2".into())]
        );
        assert_eq!(builder.labels["k"], "v2");
        assert_eq!(builder.advertise.as_deref(), Some("host:7"));
        assert_eq!(builder.lease_ttl, Duration::from_secs(9));
        assert!(format!("{builder:?}").contains("descriptor_set_bytes: Some(3)"));
    }

    #[test]
    fn a_socket_address_advertises_as_host_port() {
        let address: SocketAddr = "10.0.0.5:8080".parse().unwrap();
        let builder = FleetServer::builder("http://r:1", "greeter", semver::Version::new(1, 0, 0))
            .advertise(address);
        assert_eq!(builder.advertise.as_deref(), Some("10.0.0.5:8080"));
    }

    #[test]
    fn the_health_handle_is_shared_with_the_server() {
        let builder = FleetServer::builder("http://r:1", "greeter", semver::Version::new(1, 0, 0));
        let handle = builder.health_handle();
        handle.set_not_serving();
        assert!(!builder.health.is_serving());
    }
}
