//! The orchestrator's settings: flags, each with an environment fallback and a default that works
//! on a laptop.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, ValueEnum};
pub use flotilla_telemetry::traces::LogFormat;

use crate::{
    alerts::{WebhookConfigError, WebhookSettings, parse_event_kinds},
    analysis::MetricsSource,
    prometheus::{Prometheus, PrometheusUrlError},
};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:50061";
pub const DEFAULT_REGISTRY: &str = "http://127.0.0.1:50051";
pub const DEFAULT_DATA_FILE: &str = "flotilla-orchestrator.sqlite";
pub const DEFAULT_STATE_DIR: &str = "flotilla-instances";
pub const DEFAULT_DOCKER_INSTANCE_PORT: u16 = 50100;
pub const DEFAULT_LEASE_TTL_MS: u64 = 5_000;
pub const DEFAULT_SHUTDOWN_GRACE_MS: u64 = 10_000;
pub const DEFAULT_WEBHOOK_EVENTS: &str =
    "STARTED,STEP_COMPLETED,PAUSED,RESUMED,PROMOTED,HALTED,ABORT_REQUESTED,ABORTED,SUCCEEDED";
pub const DEFAULT_WEBHOOK_RETRY_FOR_MS: u64 = 15 * 60 * 1000;
pub const DEFAULT_WEBHOOK_MAX_BACKOFF_MS: u64 = 30_000;
/// How long one webhook attempt may take.
pub const WEBHOOK_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);
/// The scrape interval of the configuration Prometheus ships with.
pub const DEFAULT_PROMETHEUS_SCRAPE_INTERVAL_MS: u64 = 15_000;

/// The Flotilla rollout orchestrator.
#[derive(Debug, Clone, Parser)]
#[command(name = "rollout-orchestrator", version, about)]
pub struct Config {
    /// Address to serve gRPC on; port 0 picks a free port (the chosen address is printed).
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_LISTEN", default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,

    /// The version registry's URL, or several replicas' URLs separated by commas (tried in turn).
    #[arg(long, env = "FLOTILLA_REGISTRY", default_value = DEFAULT_REGISTRY)]
    pub registry: String,

    /// PostgreSQL URL for the rollout store. When unset, the embedded store is used.
    #[arg(long, env = "FLOTILLA_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// The embedded store's file, used when no database URL is given; ":memory:" keeps nothing.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_DATA_FILE", default_value = DEFAULT_DATA_FILE)]
    pub data_file: PathBuf,

    /// Where the local-process platform keeps a record and the log of each instance it starts.
    /// Orchestrators that share a store must share this directory too.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,

    /// Directories searched first for an artifact's program (then PATH).
    #[arg(
        long = "bin-dir",
        env = "FLOTILLA_ORCHESTRATOR_BIN_DIRS",
        value_delimiter = ':'
    )]
    pub bin_dirs: Vec<PathBuf>,

    /// A program the local platform may run, or a directory whose programs it may run;
    /// repeated, or separated by ':' in the environment. None by default: an artifact's
    /// command is the publisher's choice, and this host is not theirs to run anything on.
    #[arg(
        long = "allow-program",
        env = "FLOTILLA_ORCHESTRATOR_ALLOW_PROGRAMS",
        value_delimiter = ':'
    )]
    pub allow_programs: Vec<PathBuf>,

    /// An image pattern the Docker platform may run (`*` matches any characters, e.g.
    /// `flotilla/*`); repeated, or separated by ',' in the environment. None by default.
    #[arg(
        long = "allow-image",
        env = "FLOTILLA_ORCHESTRATOR_ALLOW_IMAGES",
        value_delimiter = ','
    )]
    pub allow_images: Vec<String>,

    /// Where instances run: local processes, or containers on a Docker Engine.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_PLATFORM", value_enum, default_value_t = PlatformKind::Local)]
    pub platform: PlatformKind,

    /// The Docker network the instances' containers join (with the registry and the callers,
    /// e.g. a compose network). Required with `--platform docker`.
    #[arg(
        long,
        env = "FLOTILLA_ORCHESTRATOR_DOCKER_NETWORK",
        required_if_eq("platform", "docker")
    )]
    pub docker_network: Option<String>,

    /// The port every instance's container listens on (each has its own address).
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_DOCKER_INSTANCE_PORT", default_value_t = DEFAULT_DOCKER_INSTANCE_PORT,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub docker_instance_port: u16,

    /// The host local instances listen on and are reached at.
    #[arg(
        long,
        env = "FLOTILLA_ORCHESTRATOR_INSTANCE_HOST",
        default_value = "127.0.0.1"
    )]
    pub instance_host: String,

    /// How long a service's lease lasts without renewal, in milliseconds: the longest a rollout
    /// waits for another orchestrator after its owner died.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_LEASE_TTL_MS", default_value_t = DEFAULT_LEASE_TTL_MS,
          value_parser = clap::value_parser!(u64).range(300..=300_000))]
    pub lease_ttl_ms: u64,

    /// This orchestrator's name in leases and events; default: host name, process id and a
    /// random suffix.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_ID")]
    pub id: Option<String>,

    /// A Prometheus server (`http://host:9090`) that scrapes the instances the registry lists
    /// at `/prometheus/targets`. When set, the analysis gate reads its figures from it by PromQL;
    /// otherwise it reads every instance's `/metrics` itself.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_PROMETHEUS_URL")]
    pub prometheus_url: Option<String>,

    /// How often that Prometheus scrapes the instances, in milliseconds. Queries span at least
    /// twice this, since a rate needs two samples in its range.
    #[arg(long, env = "FLOTILLA_ORCHESTRATOR_PROMETHEUS_SCRAPE_INTERVAL_MS",
          default_value_t = DEFAULT_PROMETHEUS_SCRAPE_INTERVAL_MS,
          value_parser = clap::value_parser!(u64).range(100..=3_600_000))]
    pub prometheus_scrape_interval_ms: u64,

    /// Webhooks to post rollout events to (http:// URLs), separated by commas.
    #[arg(long = "webhook", env = "FLOTILLA_WEBHOOKS", value_delimiter = ',')]
    pub webhooks: Vec<String>,

    /// The key each webhook request is signed with (HMAC-SHA256 in `Flotilla-Signature`);
    /// required with webhooks. Prefer the environment variable: arguments show in `ps`.
    #[arg(long, env = "FLOTILLA_WEBHOOK_SECRET", hide_env_values = true)]
    pub webhook_secret: Option<String>,

    /// The event kinds sent to webhooks, separated by commas, or "all".
    #[arg(long, env = "FLOTILLA_WEBHOOK_EVENTS", default_value = DEFAULT_WEBHOOK_EVENTS)]
    pub webhook_events: String,

    /// How long one event is retried (with backoff from 200 ms doubling to the maximum below)
    /// before it is given up,
    /// in milliseconds. Later events wait behind it, so they arrive in order.
    #[arg(long, env = "FLOTILLA_WEBHOOK_RETRY_FOR_MS", default_value_t = DEFAULT_WEBHOOK_RETRY_FOR_MS)]
    pub webhook_retry_for_ms: u64,

    /// The longest wait between two attempts to deliver one event, in milliseconds (waits
    /// double from 200 ms up to this).
    #[arg(long, env = "FLOTILLA_WEBHOOK_MAX_BACKOFF_MS", default_value_t = DEFAULT_WEBHOOK_MAX_BACKOFF_MS,
          value_parser = clap::value_parser!(u64).range(200..=3_600_000))]
    pub webhook_max_backoff_ms: u64,

    /// After SIGTERM/SIGINT, how long open calls may finish, in milliseconds.
    #[arg(long, env = "FLOTILLA_SHUTDOWN_GRACE_MS", default_value_t = DEFAULT_SHUTDOWN_GRACE_MS)]
    pub shutdown_grace_ms: u64,

    /// Log format on stderr.
    #[arg(long, env = "FLOTILLA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformKind {
    /// Local processes (the embedded default).
    Local,
    /// Containers on the Docker Engine at `DOCKER_HOST` (the local socket when unset).
    Docker,
}

impl Config {
    pub fn lease_ttl(&self) -> Duration {
        Duration::from_millis(self.lease_ttl_ms)
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_millis(self.shutdown_grace_ms)
    }

    /// Where the analysis gate reads its figures.
    pub fn metrics_source(&self) -> Result<MetricsSource, PrometheusUrlError> {
        match &self.prometheus_url {
            None => Ok(MetricsSource::default()),
            Some(url) => Ok(MetricsSource::Prometheus(Prometheus::new(
                url,
                Duration::from_millis(self.prometheus_scrape_interval_ms),
            )?)),
        }
    }

    /// Where rollout events are posted; `None` without webhooks.
    pub fn webhook_settings(&self) -> Result<Option<WebhookSettings>, WebhookConfigError> {
        if self.webhooks.is_empty() {
            return Ok(None);
        }
        Ok(Some(WebhookSettings {
            urls: self.webhooks.clone(),
            secret: self
                .webhook_secret
                .clone()
                .filter(|s| !s.is_empty())
                .ok_or(WebhookConfigError::NoSecret)?,
            events: parse_event_kinds(&self.webhook_events)?,
            retry_for: Duration::from_millis(self.webhook_retry_for_ms),
            attempt_timeout: WEBHOOK_ATTEMPT_TIMEOUT,
            max_backoff: Duration::from_millis(self.webhook_max_backoff_ms),
        }))
    }

    /// The name this process holds leases under.
    pub fn holder_id(&self) -> String {
        self.id.clone().unwrap_or_else(|| {
            let host = nix::unistd::gethostname()
                .ok()
                .and_then(|h| h.into_string().ok())
                .unwrap_or_else(|| "orchestrator".into());
            let suffix = &uuid::Uuid::new_v4().simple().to_string()[..8];
            format!("{host}/{}/{suffix}", std::process::id())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_work_on_a_laptop() {
        let config = Config::try_parse_from(["rollout-orchestrator"]).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.lease_ttl(), Duration::from_secs(5));
        assert!(config.database_url.is_none());
    }

    #[test]
    fn holder_ids_differ_between_processes_of_one_host() {
        let config = Config::try_parse_from(["rollout-orchestrator"]).unwrap();
        assert_ne!(config.holder_id(), config.holder_id());
        let named = Config::try_parse_from(["rollout-orchestrator", "--id", "a"]).unwrap();
        assert_eq!(named.holder_id(), "a");
    }

    #[test]
    fn analysis_reads_prometheus_only_when_a_url_is_given() {
        let config = Config::try_parse_from(["rollout-orchestrator"]).unwrap();
        assert!(matches!(
            config.metrics_source().unwrap(),
            MetricsSource::Instances(_)
        ));
        let config = Config::try_parse_from([
            "rollout-orchestrator",
            "--prometheus-url",
            "http://127.0.0.1:9090",
            "--prometheus-scrape-interval-ms",
            "1000",
        ])
        .unwrap();
        let MetricsSource::Prometheus(prometheus) = config.metrics_source().unwrap() else {
            panic!("a URL selects Prometheus");
        };
        assert_eq!(prometheus.range_seconds(Duration::from_millis(500)), 2);
        let config =
            Config::try_parse_from(["rollout-orchestrator", "--prometheus-url", "https://p"])
                .unwrap();
        assert!(config.metrics_source().is_err());
    }

    #[test]
    fn the_docker_platform_needs_a_network() {
        let config = Config::try_parse_from(["rollout-orchestrator"]).unwrap();
        assert_eq!(config.platform, PlatformKind::Local);
        assert!(Config::try_parse_from(["rollout-orchestrator", "--platform", "docker"]).is_err());
        let config = Config::try_parse_from([
            "rollout-orchestrator",
            "--platform",
            "docker",
            "--docker-network",
            "fleet",
        ])
        .unwrap();
        assert_eq!(config.platform, PlatformKind::Docker);
        assert_eq!(config.docker_network.as_deref(), Some("fleet"));
        assert_eq!(config.docker_instance_port, DEFAULT_DOCKER_INSTANCE_PORT);
    }

    #[test]
    fn webhooks_need_a_secret_and_known_event_kinds() {
        let config = Config::try_parse_from(["rollout-orchestrator"]).unwrap();
        assert!(config.webhook_settings().unwrap().is_none());
        let with = |args: &[&str]| {
            Config::try_parse_from(
                [
                    "rollout-orchestrator",
                    "--webhook",
                    "http://a/hook,http://b:8080/x",
                ]
                .iter()
                .chain(args),
            )
            .unwrap()
            .webhook_settings()
        };
        assert!(matches!(with(&[]), Err(WebhookConfigError::NoSecret)));
        let settings = with(&["--webhook-secret", "s3cret"]).unwrap().unwrap();
        assert_eq!(settings.urls, ["http://a/hook", "http://b:8080/x"]);
        assert_eq!(settings.events.len(), 9);
        assert!(
            !format!("{settings:?}").contains("s3cret"),
            "the secret is not logged"
        );
        let all = with(&["--webhook-secret", "s", "--webhook-events", "all"]);
        assert_eq!(all.unwrap().unwrap().events.len(), 16);
        let Err(WebhookConfigError::Kind(kind)) = with(&[
            "--webhook-secret",
            "s",
            "--webhook-events",
            "STARTED,FINISHED",
        ]) else {
            panic!("an unknown kind is refused");
        };
        assert_eq!(kind, "FINISHED");
    }

    #[test]
    fn a_lease_below_300_ms_is_refused() {
        assert!(Config::try_parse_from(["rollout-orchestrator", "--lease-ttl-ms", "10"]).is_err());
    }
}
