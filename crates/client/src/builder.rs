//! Configures a fleet client and connects it: the first endpoint set is fetched before
//! [`FleetClientBuilder::connect`] returns, so the first call already has somewhere to go.

use std::{
    collections::HashSet,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use flotilla_proto::methods::idempotent_methods;
use flotilla_proto::registry::v1::{
    EndpointSet, ServingStatus, WatchEndpointsRequest, registry_client::RegistryClient,
};
use semver::VersionReq;
use tonic::{Code, Streaming};

use crate::{
    channel::FleetChannel,
    error::ClientError,
    error::with_causes,
    fleet::Fleet,
    follow::{follow, subscribe},
    registry_channel::{RegistryChannel, split_urls},
};

/// How long a connection to one registry replica may take before the next is tried.
const REPLICA_CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long `connect` waits by default for the registry and a first endpoint set.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How many times an idempotent call is retried by default.
pub const DEFAULT_MAX_RETRIES: u32 = 2;

/// Where fleet clients start: `FleetClient::builder(registry_url, service)`.
#[derive(Debug, Clone, Copy)]
pub struct FleetClient;

impl FleetClient {
    /// A builder for a channel to `service`, found through the registry at `registry_url`
    /// (e.g. `http://127.0.0.1:50051`, or several replicas separated by commas, tried in turn:
    /// see [`RegistryChannel`]).
    pub fn builder(
        registry_url: impl Into<String>,
        service: impl Into<String>,
    ) -> FleetClientBuilder {
        FleetClientBuilder {
            registry_url: registry_url.into(),
            service: service.into(),
            requirement: VersionReq::STAR,
            caller_schema: None,
            idempotent_methods: Vec::new(),
            max_retries: DEFAULT_MAX_RETRIES,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            wait_for_endpoints: false,
        }
    }
}

/// Settings of a fleet client; [`FleetClientBuilder::connect`] makes the [`FleetChannel`].
#[derive(Debug, Clone)]
pub struct FleetClientBuilder {
    registry_url: String,
    service: String,
    requirement: VersionReq,
    caller_schema: Option<Bytes>,
    idempotent_methods: Vec<String>,
    max_retries: u32,
    connect_timeout: Duration,
    wait_for_endpoints: bool,
}

impl FleetClientBuilder {
    /// Only versions satisfying this semver requirement (e.g. `^1.1`); empty means any, the
    /// default.
    pub fn requirement(mut self, requirement: &str) -> Result<Self, ClientError> {
        self.requirement = if requirement.trim().is_empty() {
            VersionReq::STAR
        } else {
            VersionReq::parse(requirement).map_err(|source| ClientError::InvalidRequirement {
                requirement: requirement.to_owned(),
                source,
            })?
        };
        Ok(self)
    }

    /// The encoded FileDescriptorSet the caller was compiled against. The registry sends only
    /// instances of versions whose schema can serve it (no change that makes bytes mean something
    /// else), and its methods marked `idempotency_level = NO_SIDE_EFFECTS` or `IDEMPOTENT` (and
    /// not client-streaming) are retried. Decoded by `connect`.
    pub fn caller_schema(mut self, file_descriptor_set: impl Into<Bytes>) -> Self {
        self.caller_schema = Some(file_descriptor_set.into());
        self
    }

    /// Treats calls to `path` (`/package.Service/Method`) as idempotent, whatever the schema
    /// says. Their request bodies are buffered, so name only unary or server-streaming methods.
    pub fn idempotent_method(mut self, path: impl Into<String>) -> Self {
        self.idempotent_methods.push(path.into());
        self
    }

    /// How many times an idempotent call may be retried on another instance (default 2; 0
    /// turns retries off).
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = retries;
        self
    }

    /// How long `connect` may take in all (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// When true, `connect` also waits (within the connect timeout) until some instance is
    /// SERVING, and fails with [`ClientError::NoEndpoints`] otherwise. By default an empty
    /// first set is accepted and calls fail with UNAVAILABLE until instances appear.
    pub fn wait_for_endpoints(mut self, wait: bool) -> Self {
        self.wait_for_endpoints = wait;
        self
    }

    /// Connects to the registry, subscribes to the service's endpoint sets and waits for the
    /// first one, then follows the registry in the background. Needs a tokio runtime.
    pub async fn connect(self) -> Result<FleetChannel, ClientError> {
        let started = Instant::now();
        let deadline = self.connect_timeout;
        let mut idempotent: HashSet<String> = self.idempotent_methods.iter().cloned().collect();
        if let Some(schema) = &self.caller_schema {
            idempotent
                .extend(idempotent_methods(schema).map_err(ClientError::InvalidCallerSchema)?);
        }
        // Each replica gets its share of the deadline, so a hung first one leaves time for the rest.
        let replicas = split_urls(&self.registry_url).count().max(1);
        let per_replica = deadline / u32::try_from(replicas).unwrap_or(u32::MAX);
        let channel = RegistryChannel::new(&self.registry_url, |endpoint| {
            endpoint
                .tcp_nodelay(true)
                .connect_timeout(REPLICA_CONNECT_TIMEOUT.min(per_replica))
                .http2_keep_alive_interval(Duration::from_secs(10))
                .keep_alive_timeout(Duration::from_secs(5))
        })
        .map_err(|source| ClientError::InvalidRegistryUrl {
            url: self.registry_url.clone(),
            source,
        })?;
        let unreachable = |reason: String| ClientError::RegistryUnreachable {
            url: self.registry_url.clone(),
            reason,
        };
        let no_set = || ClientError::NoEndpointSet {
            service: self.service.clone(),
            url: self.registry_url.clone(),
            deadline,
        };

        let mut client = RegistryClient::new(channel.clone());
        let request = WatchEndpointsRequest {
            service: self.service.clone(),
            requirement: match self.requirement == VersionReq::STAR {
                true => String::new(),
                false => self.requirement.to_string(),
            },
            // The registry then leaves out versions whose schema would misread the caller's.
            client_schema: self
                .caller_schema
                .clone()
                .map(Vec::from)
                .unwrap_or_default(),
        };
        // One attempt per replica: an unreachable one moves the channel on to the next.
        let mut failures = Vec::new();
        let mut stream = loop {
            let within = per_replica.min(deadline.saturating_sub(started.elapsed()));
            let index = channel.current_index();
            let tried = channel.current_url().to_owned();
            match tokio::time::timeout(within, subscribe(&mut client, &request)).await {
                Ok(Ok(stream)) => break stream,
                Ok(Err(status)) if status.code() != Code::Unavailable => {
                    return Err(ClientError::Refused {
                        service: self.service.clone(),
                        status: Box::new(status),
                    });
                }
                Ok(Err(status)) => failures.push(format!(
                    "{tried}: {}",
                    with_causes(status.message(), std::error::Error::source(&status))
                )),
                Err(_) if started.elapsed() >= deadline => return Err(no_set()),
                Err(_) => {
                    // Given up on before it failed on its own: the channel must hear of it.
                    let reason = format!("no answer within {within:?}");
                    channel.fail_over(index, &reason);
                    failures.push(format!("{tried}: {reason}"));
                }
            }
            if failures.len() >= channel.replicas() || started.elapsed() >= deadline {
                return Err(unreachable(failures.join("; ")));
            }
        };

        let fleet = Arc::new(Fleet::new(
            self.service.clone(),
            self.requirement.clone(),
            self.max_retries,
            idempotent,
        ));
        let first = next_set(&mut stream, deadline.saturating_sub(started.elapsed()))
            .await
            .map_err(|e| match e {
                NextSet::Late => no_set(),
                NextSet::Broken(reason) => unreachable(reason),
            })?;
        let mut serving = count_serving(&first);
        fleet.apply(first);
        while self.wait_for_endpoints && serving == 0 {
            match next_set(&mut stream, deadline.saturating_sub(started.elapsed())).await {
                Ok(set) => {
                    serving = count_serving(&set);
                    fleet.apply(set);
                }
                Err(NextSet::Late) => {
                    return Err(ClientError::NoEndpoints {
                        service: self.service.clone(),
                        requirement: self.requirement.to_string(),
                        deadline,
                        known: fleet.serving_count().1,
                    });
                }
                Err(NextSet::Broken(reason)) => return Err(unreachable(reason)),
            }
        }

        let follower = tokio::spawn(follow(Arc::downgrade(&fleet), client, request, stream));
        fleet.set_follower(follower.abort_handle());
        Ok(FleetChannel::new(fleet))
    }
}

enum NextSet {
    Late,
    Broken(String),
}

async fn next_set(
    stream: &mut Streaming<EndpointSet>,
    within: Duration,
) -> Result<EndpointSet, NextSet> {
    match tokio::time::timeout(within, stream.message()).await {
        Err(_) => Err(NextSet::Late),
        Ok(Ok(Some(set))) => Ok(set),
        Ok(Ok(None)) => Err(NextSet::Broken("the endpoint watch ended".into())),
        Ok(Err(status)) => Err(NextSet::Broken(status.to_string())),
    }
}

fn count_serving(set: &EndpointSet) -> usize {
    set.endpoints
        .iter()
        .filter(|e| e.status() == ServingStatus::Serving)
        .count()
}
