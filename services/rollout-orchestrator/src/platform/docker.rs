//! The Docker platform: each instance is a container of the artifact's image, on one network
//! shared with the registry (a compose network), reached by its container name.
//!
//! Containers all listen on the same port, since each has its own address on the network. The
//! artifact's `command`, when given, becomes the container's command with `{listen}`
//! (`0.0.0.0:PORT`), `{advertise}` (`<container name>:PORT`, what callers dial), `{host}`,
//! `{port}` and `{registry}` filled in; `FLOTILLA_LISTEN`, `FLOTILLA_ADVERTISE` and
//! `FLOTILLA_REGISTRY` are set either way. Images are never pulled: a rollout is refused unless
//! its image is already on the Docker host, so what runs is what was built or loaded there.
//!
//! The driver keeps no state: every container carries labels (`io.flotilla.managed=true`,
//! service, version, rollout, address), and `list` reads them back, which is how a restarted
//! orchestrator finds its instances.

use std::{collections::HashMap, time::Duration};

use async_trait::async_trait;
use bollard::{
    Docker,
    errors::Error as DockerError,
    models::{ContainerCreateBody, ContainerSummaryStateEnum, EndpointSettings, NetworkingConfig},
    query_parameters::{
        CreateContainerOptionsBuilder, ListContainersOptionsBuilder, LogsOptionsBuilder,
        RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
    },
};
use flotilla_model::{Artifact, RolloutId, ServiceName, Version};
use futures::StreamExt;

use super::{InstanceSpec, Platform, PlatformError, PlatformInstance};

pub const LABEL_MANAGED: &str = "io.flotilla.managed";
pub const LABEL_SERVICE: &str = "io.flotilla.service";
pub const LABEL_VERSION: &str = "io.flotilla.version";
pub const LABEL_ROLLOUT: &str = "io.flotilla.rollout";
/// The address the instance was started with, so a restarted orchestrator configured with
/// another instance port still reports where the container really listens.
pub const LABEL_ADDRESS: &str = "io.flotilla.address";

/// The engine when `DOCKER_HOST` is unset.
pub const DEFAULT_DOCKER_HOST: &str = "unix:///var/run/docker.sock";
/// How long a stopped container may drain after SIGTERM before the engine kills it.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);
/// The engine's own timeout per request, in seconds; a stop waits out the grace period.
const REQUEST_TIMEOUT_SECS: u64 = 120;

/// How to reach the engine and how to run the containers.
#[derive(Debug, Clone)]
pub struct DockerConfig {
    /// The network the containers join; the registry and callers must be on it too.
    pub network: String,
    /// The registry's URL as seen from inside the network (`{registry}`).
    pub registry: String,
    /// The port every instance listens on inside its container.
    pub instance_port: u16,
    /// The images it may run (see [`super::allow`]).
    pub allowed_images: super::ImageAllowList,
}

#[derive(Debug, thiserror::Error)]
pub enum DockerConnectError {
    #[error("cannot reach the Docker Engine at {socket}: {source}")]
    Unreachable { socket: String, source: DockerError },
    #[error("the Docker network {network:?} does not exist on the engine at {socket}: {source}")]
    NoNetwork {
        network: String,
        socket: String,
        source: DockerError,
    },
}

#[derive(Debug, Clone)]
pub struct DockerPlatform {
    docker: Docker,
    config: DockerConfig,
    stop_grace: Duration,
    /// Exit status and last log lines of instances that exited, kept from when `list` removed
    /// their containers (the logs go with them), for [`Platform::exit_report`].
    exits: std::sync::Arc<super::ExitReports>,
}

impl DockerPlatform {
    /// Connects to the engine named by `DOCKER_HOST` (the local socket when unset), asks its API
    /// version (bollard then speaks no newer one; Engine 20.10's 1.41 is enough), and checks that
    /// the network exists, so a misconfigured orchestrator fails at startup rather than at its
    /// first rollout.
    pub async fn connect(config: DockerConfig) -> Result<Self, DockerConnectError> {
        let host = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|host| !host.is_empty())
            .unwrap_or_else(|| DEFAULT_DOCKER_HOST.to_owned());
        Self::connect_to(&host, config).await
    }

    /// [`connect`](Self::connect) to the engine at `socket` (`unix:///…`, `tcp://…`).
    pub async fn connect_to(
        socket: &str,
        config: DockerConfig,
    ) -> Result<Self, DockerConnectError> {
        let unreachable = |source| DockerConnectError::Unreachable {
            socket: socket.to_owned(),
            source,
        };
        let docker = Docker::connect_with_host(socket)
            .map_err(unreachable)?
            .with_timeout(Duration::from_secs(REQUEST_TIMEOUT_SECS));
        let docker = docker.negotiate_version().await.map_err(unreachable)?;
        docker
            .inspect_network(
                &config.network,
                None::<bollard::query_parameters::InspectNetworkOptions>,
            )
            .await
            .map_err(|source| DockerConnectError::NoNetwork {
                network: config.network.clone(),
                socket: socket.to_owned(),
                source,
            })?;
        tracing::info!(%socket, network = %config.network, port = config.instance_port, "Docker platform connected");
        Ok(Self {
            docker,
            config,
            stop_grace: DEFAULT_STOP_GRACE,
            exits: std::sync::Arc::default(),
        })
    }

    fn listen(&self) -> String {
        format!("0.0.0.0:{}", self.config.instance_port)
    }

    fn fill(&self, arg: &str, advertise: &str) -> String {
        arg.replace("{listen}", &self.listen())
            .replace("{advertise}", advertise)
            .replace("{host}", "0.0.0.0")
            .replace("{port}", &self.config.instance_port.to_string())
            .replace("{registry}", &self.config.registry)
    }

    /// How an exited container ended: its exit code (and whether the kernel killed it for
    /// memory) and its last log lines.
    async fn read_exit(&self, id: &str) -> String {
        let status = match self.docker.inspect_container(id, None).await {
            Ok(inspected) => {
                let state = inspected.state.unwrap_or_default();
                let mut text = format!("exit code {}", state.exit_code.unwrap_or(-1));
                if state.oom_killed == Some(true) {
                    text.push_str(", killed for lack of memory");
                }
                text
            }
            Err(e) => format!("exit status unreadable ({e})"),
        };
        let options = LogsOptionsBuilder::new()
            .stdout(true)
            .stderr(true)
            .tail(&super::EXIT_LOG_LINES.to_string())
            .build();
        let log: String = self
            .docker
            .logs(id, Some(options))
            .filter_map(|chunk| async move { chunk.ok() })
            .map(|chunk| String::from_utf8_lossy(&chunk.into_bytes()).into_owned())
            .collect()
            .await;
        super::exit_report(&status, &log)
    }

    /// Removes a container, whatever its state; one already gone (or going) is fine.
    async fn remove(&self, id: &str) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Err(e) if !(is_status(&e, 404) || is_status(&e, 409)) => Err(e),
            _ => Ok(()),
        }
    }
}

#[async_trait]
impl Platform for DockerPlatform {
    fn name(&self) -> &'static str {
        "docker"
    }

    async fn check(
        &self,
        service: &ServiceName,
        version: &Version,
        artifact: &Artifact,
    ) -> Result<(), PlatformError> {
        let unrunnable = |reason: String| PlatformError::Unrunnable {
            service: service.clone(),
            version: version.clone(),
            reason,
        };
        if artifact.image.trim().is_empty() {
            return Err(unrunnable(
                "its artifact names no image, and the Docker platform runs images".into(),
            ));
        }
        if !self.config.allowed_images.permits(&artifact.image) {
            return Err(unrunnable(format!(
                "its image {} is not allowed on this orchestrator: the Docker platform runs only \
                 images matching its operator's --allow-image patterns",
                flotilla_model::quote(&artifact.image)
            )));
        }
        match self.docker.inspect_image(&artifact.image).await {
            Ok(_) => Ok(()),
            Err(e) if is_status(&e, 404) => Err(unrunnable(format!(
                "its image {} is not on the Docker host, and the Docker platform never pulls \
                 images: build or load it there first",
                flotilla_model::quote(&artifact.image)
            ))),
            Err(e) => Err(unrunnable(format!(
                "inspecting its image {}: {e}",
                flotilla_model::quote(&artifact.image)
            ))),
        }
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<PlatformInstance, PlatformError> {
        self.check(&spec.service, &spec.version, &spec.artifact)
            .await?;
        let what = format!("{}@{}", spec.service, spec.version);
        let start_error = |e: DockerError| PlatformError::Start {
            what: what.clone(),
            source: std::io::Error::other(e),
        };
        let name = container_name(&spec.service, &spec.version);
        let advertise = format!("{name}:{}", self.config.instance_port);
        let labels = HashMap::from([
            (LABEL_MANAGED.to_owned(), "true".to_owned()),
            (LABEL_SERVICE.to_owned(), spec.service.to_string()),
            (LABEL_VERSION.to_owned(), spec.version.to_string()),
            (LABEL_ROLLOUT.to_owned(), spec.rollout.to_string()),
            (LABEL_ADDRESS.to_owned(), advertise.clone()),
        ]);
        let cmd = (!spec.artifact.command.is_empty()).then(|| {
            spec.artifact
                .command
                .iter()
                .map(|arg| self.fill(arg, &advertise))
                .collect::<Vec<_>>()
        });
        let body = ContainerCreateBody {
            image: Some(spec.artifact.image.clone()),
            cmd,
            hostname: Some(name.clone()),
            env: Some(
                [
                    format!("FLOTILLA_LISTEN={}", self.listen()),
                    format!("FLOTILLA_ADVERTISE={advertise}"),
                    format!("FLOTILLA_REGISTRY={}", self.config.registry),
                ]
                .into_iter()
                // The instance's startup joins the rollout's trace.
                .chain(traceparent_env())
                .collect(),
            ),
            labels: Some(labels),
            stop_signal: Some("SIGTERM".into()),
            stop_timeout: Some(self.stop_grace.as_secs() as i64),
            host_config: Some(bollard::models::HostConfig {
                network_mode: Some(self.config.network.clone()),
                ..Default::default()
            }),
            networking_config: Some(NetworkingConfig {
                endpoints_config: Some(HashMap::from([(
                    self.config.network.clone(),
                    EndpointSettings::default(),
                )])),
            }),
            ..Default::default()
        };
        let options = CreateContainerOptionsBuilder::new().name(&name).build();
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(start_error)?;
        if let Err(e) = self.docker.start_container(&created.id, None).await {
            // A created container that never ran would otherwise be left for `list` to sweep.
            if let Err(removal) = self.remove(&created.id).await {
                tracing::warn!(container = %name, error = %removal, "removing the container that failed to start");
            }
            return Err(start_error(e));
        }
        tracing::info!(%what, container = %name, id = %created.id, address = %advertise, "instance started");
        Ok(PlatformInstance {
            handle: created.id,
            service: spec.service.clone(),
            version: spec.version.clone(),
            address: advertise,
            rollout: Some(spec.rollout.clone()),
        })
    }

    async fn stop(&self, handle: &str) -> Result<(), PlatformError> {
        let stop_error = |e: DockerError| PlatformError::Stop {
            handle: handle.to_owned(),
            reason: e.to_string(),
        };
        // A handle comes from `start` or `list`, but the engine runs other containers too (the
        // registry, the orchestrator itself): never stop one that is not ours.
        match self.docker.inspect_container(handle, None).await {
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(stop_error(e)),
            Ok(container) => {
                let managed = container
                    .config
                    .and_then(|config| config.labels)
                    .is_some_and(|labels| {
                        labels.get(LABEL_MANAGED).map(String::as_str) == Some("true")
                    });
                if !managed {
                    return Err(PlatformError::Stop {
                        handle: handle.to_owned(),
                        reason: format!(
                            "not a container the orchestrator started (no {LABEL_MANAGED}=true \
                             label); left running"
                        ),
                    });
                }
            }
        }
        let options = StopContainerOptionsBuilder::new()
            .t(self.stop_grace.as_secs() as i32)
            .build();
        match self.docker.stop_container(handle, Some(options)).await {
            // 304: already stopped; 404: already gone.
            Err(e) if !(is_status(&e, 304) || is_status(&e, 404)) => return Err(stop_error(e)),
            _ => {}
        }
        self.remove(handle).await.map_err(stop_error)?;
        tracing::info!(container = %handle, "instance stopped");
        Ok(())
    }

    async fn exit_report(&self, handle: &str) -> Option<String> {
        self.exits.get(handle)
    }

    async fn list(&self, service: &ServiceName) -> Result<Vec<PlatformInstance>, PlatformError> {
        let filters = HashMap::from([(
            "label",
            vec![
                format!("{LABEL_MANAGED}=true"),
                format!("{LABEL_SERVICE}={service}"),
            ],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let containers = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| PlatformError::Records(format!("listing containers: {e}")))?;
        let mut live = Vec::new();
        for container in containers {
            let Some(id) = container.id else { continue };
            match container.state {
                Some(ContainerSummaryStateEnum::RUNNING) => {}
                // An instance that exited is not coming back (no restart policy); sweep it so
                // dead containers do not pile up across rollouts.
                Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD) => {
                    let report = self.read_exit(&id).await;
                    tracing::warn!(container = %id, %report, "an instance exited");
                    self.exits.insert(&id, report);
                    if let Err(e) = self.remove(&id).await {
                        tracing::warn!(container = %id, error = %e, "removing an exited instance");
                    }
                    continue;
                }
                // Created (another orchestrator may be starting it), paused, restarting: not
                // serving now, and not ours to remove.
                _ => continue,
            }
            let labels = container.labels.unwrap_or_default();
            let name = container
                .names
                .and_then(|names| names.into_iter().next())
                .map(|name| name.trim_start_matches('/').to_owned())
                .unwrap_or_else(|| id.clone());
            let Some(version) = labels
                .get(LABEL_VERSION)
                .and_then(|v| Version::parse(v).ok())
            else {
                tracing::warn!(container = %name, "a managed container without a valid version label; ignored");
                continue;
            };
            let address = labels
                .get(LABEL_ADDRESS)
                .cloned()
                .unwrap_or_else(|| format!("{name}:{}", self.config.instance_port));
            let rollout = labels
                .get(LABEL_ROLLOUT)
                .and_then(|r| RolloutId::parse(LABEL_ROLLOUT, r).ok());
            live.push(PlatformInstance {
                handle: id,
                service: service.clone(),
                version,
                address,
                rollout,
            });
        }
        live.sort_by(|a, b| a.version.cmp(&b.version).then(a.address.cmp(&b.address)));
        Ok(live)
    }
}

fn is_status(error: &DockerError, status: u16) -> bool {
    matches!(error, DockerError::DockerResponseServerError { status_code, .. } if *status_code == status)
}

/// `flotilla-<service>-<version>-<random>`, a valid container name and DNS label, since callers
/// dial it: the version's dots and anything else a host name cannot hold become dashes, and the
/// middle is cut so the whole fits in a label's 63 characters.
fn container_name(service: &ServiceName, version: &Version) -> String {
    const MIDDLE_MAX: usize = 63 - "flotilla-".len() - "-12345678".len();
    let middle: String = format!("{service}-{version}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .take(MIDDLE_MAX)
        .collect();
    let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("flotilla-{}-{suffix}", middle.trim_end_matches('-'))
}

/// `TRACEPARENT=<the current span's context>`, when there is one.
fn traceparent_env() -> Option<String> {
    flotilla_telemetry::propagation::current_traceparent().map(|traceparent| {
        format!(
            "{}={traceparent}",
            flotilla_telemetry::propagation::TRACEPARENT_ENV
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_names_are_host_names_and_differ_per_instance() {
        let service = ServiceName::parse("service", "greeter").unwrap();
        let version = Version::parse("1.2.0-rc.1+Build.5").unwrap();
        let a = container_name(&service, &version);
        let b = container_name(&service, &version);
        assert!(a.starts_with("flotilla-greeter-1-2-0-rc-1-build-5-"), "{a}");
        assert_eq!(a.len(), "flotilla-greeter-1-2-0-rc-1-build-5-".len() + 8);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
            "{a}"
        );
        assert_ne!(a, b);

        let long = ServiceName::parse("service", &format!("s{}", "-x".repeat(31))).unwrap();
        let name = container_name(&long, &version);
        assert_eq!(name.len(), 63, "{name}");
        assert!(!name.contains("--"), "{name}");
    }
}
