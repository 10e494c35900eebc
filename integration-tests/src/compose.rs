//! The whole suite in docker compose, driven from the host: deploy/compose's own scripts build
//! the images and bring the project up (so the tests exercise what a user runs), and the tests
//! then reach the suite through its published ports and the Docker CLI.
//!
//! [`ComposeSuite`] takes everything down when dropped, a failing test included, after printing
//! the containers' last log lines when the test is failing.

use std::{
    path::PathBuf,
    process::{Command, Output},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// The published ports of deploy/compose/docker-compose.yml, as URLs from the host.
pub const REGISTRY_A: &str = "http://127.0.0.1:50051";
pub const REGISTRY_B: &str = "http://127.0.0.1:50052";
pub const ORCHESTRATOR: &str = "http://127.0.0.1:50061";
pub const FRONTEND: &str = "http://127.0.0.1:50081";

/// The compose project's name, which the compose file's network name depends on.
const PROJECT: &str = "flotilla";

/// The suite's compose services, for logs and health.
pub const SERVICES: [&str; 5] = [
    "postgres",
    "registry-a",
    "registry-b",
    "orchestrator",
    "frontend",
];

/// The directory of the compose file and its scripts.
pub fn compose_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/compose")
}

/// Whether this machine can run the compose suite: a Docker engine that answers and
/// docker-compose. Under `CI` a missing one fails instead.
pub fn available() -> bool {
    let answers = |program: &str, args: &[&str]| {
        Command::new(program)
            .args(args)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let ok = answers("docker", &["info", "--format", "{{.ServerVersion}}"])
        && answers("docker-compose", &["version"]);
    if !ok {
        flotilla_testkit::missing(
            "the Docker engine or docker-compose",
            "apt-get install docker-compose",
        );
    }
    ok
}

/// Runs a command to completion; a failure is an error carrying its output.
fn run(command: &mut Command) -> anyhow::Result<Output> {
    let output = command
        .output()
        .with_context(|| format!("running {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(output)
}

/// Runs a script of deploy/compose with its output passed through to the test's, so a slow
/// build or a failing step shows as it happens.
fn script(name: &str, env: &[(&str, &str)]) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let status = Command::new("bash")
        .arg(compose_dir().join(name))
        .envs(env.iter().copied())
        .status()
        .with_context(|| format!("running {name}"))?;
    if !status.success() {
        bail!("{name} failed ({status})");
    }
    Ok(started.elapsed())
}

/// `docker ARGS`, its standard output trimmed.
pub fn docker(args: &[&str]) -> anyhow::Result<String> {
    let output = run(Command::new("docker").args(args))?;
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Builds every image the compose file uses (deploy/compose/build-images.sh); returns how long
/// it took.
pub fn build_images() -> anyhow::Result<Duration> {
    script("build-images.sh", &[])
}

/// A container of the fleet that the orchestrator runs, as its labels describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedContainer {
    pub id: String,
    pub name: String,
    pub version: String,
    pub running: bool,
}

/// The suite brought up by deploy/compose/up.sh; taken down by down.sh when dropped.
#[derive(Debug)]
pub struct ComposeSuite {
    _private: (),
}

impl ComposeSuite {
    /// Takes down whatever an earlier run left, then runs up.sh on images already built: the
    /// suite healthy with greeter 1.0.0 ×2 deployed and the frontend serving. Returns the suite
    /// and how long up.sh took.
    pub fn up() -> anyhow::Result<(Self, Duration)> {
        script("down.sh", &[])?;
        // From here on, a failure still takes the project down.
        let suite = Self { _private: () };
        let took = script("up.sh", &[("FLOTILLA_IMAGES_BUILT", "1")])?;
        Ok((suite, took))
    }

    fn compose(&self, args: &[&str]) -> anyhow::Result<String> {
        let file = compose_dir().join("docker-compose.yml");
        let output = run(Command::new("docker-compose")
            .args(["-p", PROJECT, "-f"])
            .arg(file)
            .args(args))?;
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }

    /// The id of a compose service's container.
    pub fn container(&self, service: &str) -> anyhow::Result<String> {
        let id = self.compose(&["ps", "-q", service])?;
        if id.is_empty() {
            bail!("compose service {service} has no container");
        }
        Ok(id)
    }

    /// `docker kill` of a compose service's container (SIGKILL: no drain, no goodbye).
    pub fn kill(&self, service: &str) -> anyhow::Result<()> {
        docker(&["kill", &self.container(service)?]).map(drop)
    }

    /// `docker stop` of a compose service's container (SIGTERM, then SIGKILL after 10 s).
    pub fn stop(&self, service: &str) -> anyhow::Result<()> {
        docker(&["stop", &self.container(service)?]).map(drop)
    }

    /// `docker start` of a compose service's stopped or killed container.
    pub fn start(&self, service: &str) -> anyhow::Result<()> {
        docker(&["start", &self.container(service)?]).map(drop)
    }

    /// `docker restart` of a compose service's container.
    pub fn restart(&self, service: &str) -> anyhow::Result<()> {
        docker(&["restart", &self.container(service)?]).map(drop)
    }

    /// A container's health as its health check last judged it ("healthy", "starting", ...).
    pub fn health(&self, service: &str) -> anyhow::Result<String> {
        docker(&[
            "inspect",
            "-f",
            "{{.State.Health.Status}}",
            &self.container(service)?,
        ])
    }

    /// Waits until the service's health check passes; returns how long that took.
    pub async fn wait_healthy(&self, service: &str, timeout: Duration) -> anyhow::Result<Duration> {
        let started = Instant::now();
        loop {
            let health = self.health(service)?;
            if health == "healthy" {
                return Ok(started.elapsed());
            }
            if started.elapsed() > timeout {
                bail!("{service} is {health} after {timeout:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Runs a command in the orchestrator's container (it has every binary of the suite and
    /// the compose network's names).
    pub fn exec_in_orchestrator(&self, command: &[&str]) -> anyhow::Result<String> {
        let mut args = vec!["exec", "-T", "orchestrator"];
        args.extend_from_slice(command);
        self.compose(&args)
    }

    /// Publishes a greeter release to the registry under `version` (with extra flags, e.g. a
    /// fault), runnable by the orchestrator as a container of the suite's image.
    pub fn publish_greeter(
        &self,
        release: &str,
        version: &str,
        extra: &[&str],
    ) -> anyhow::Result<()> {
        let mut command = vec![
            "demo-greeter",
            "--publish-only",
            "--registry",
            "http://registry-a:50051,http://registry-b:50051",
            "--image",
            "flotilla/suite:dev",
            "--release",
            release,
            "--version",
            version,
        ];
        command.extend_from_slice(extra);
        self.exec_in_orchestrator(&command).map(drop)
    }

    /// The greeter containers the orchestrator started, running or not.
    pub fn managed_containers(&self) -> anyhow::Result<Vec<ManagedContainer>> {
        let listing = docker(&[
            "ps",
            "-a",
            "--filter",
            "label=io.flotilla.managed=true",
            "--format",
            "{{.ID}}\t{{.Names}}\t{{.Label \"io.flotilla.version\"}}\t{{.State}}",
        ])?;
        Ok(listing
            .lines()
            .filter_map(|line| {
                let mut fields = line.split('\t');
                Some(ManagedContainer {
                    id: fields.next()?.to_owned(),
                    name: fields.next()?.to_owned(),
                    version: fields.next()?.to_owned(),
                    running: fields.next()? == "running",
                })
            })
            .collect())
    }

    /// The running greeter containers of `version`.
    pub fn running(&self, version: &str) -> anyhow::Result<Vec<ManagedContainer>> {
        Ok(self
            .managed_containers()?
            .into_iter()
            .filter(|c| c.running && c.version == version)
            .collect())
    }

    /// Every container's last log lines, for a failing test's output.
    fn dump_logs(&self) {
        for service in SERVICES {
            if let Ok(logs) = self.compose(&["logs", "--no-color", "--tail", "60", service]) {
                eprintln!("---- {service} (last lines)\n{logs}");
            }
        }
        for container in self.managed_containers().unwrap_or_default() {
            let logs = Command::new("docker")
                .args(["logs", "--tail", "30", &container.id])
                .output()
                .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
                .unwrap_or_default();
            eprintln!("---- {} (last lines)\n{logs}", container.name);
        }
    }
}

impl Drop for ComposeSuite {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        if let Err(error) = script("down.sh", &[]) {
            eprintln!("taking the compose suite down failed: {error:#}");
        }
    }
}
