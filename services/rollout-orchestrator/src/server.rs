//! Assembles the orchestrator: store, registry client, platform, supervisor, webhooks, the gRPC
//! API, health, reflection and `GET /metrics`.

use std::{future::Future, sync::Arc, time::Duration};

use flotilla_proto::rollout::v1::orchestrator_server::OrchestratorServer;
use flotilla_shell::{ServerShell, ShellError};
use flotilla_store::{PostgresConfig, PostgresStore, RolloutStore, SqliteStore, StoreError};
use tokio::{net::TcpListener, sync::watch};
use tonic::service::Routes;

use flotilla_telemetry::metrics::ServerMetrics;

use crate::{
    alerts::Alerts,
    analysis::MetricsSource,
    api::OrchestratorApi,
    config::{Config, PlatformKind},
    context::Context,
    health::GrpcHealth,
    metrics::OrchestratorMetrics,
    platform::{
        AllowListError, DockerConfig, DockerConnectError, DockerPlatform, ImageAllowList,
        LocalProcessPlatform, Platform, ProgramAllowList,
    },
    registry::GrpcRegistry,
    supervisor,
};

/// How long after a revision was replaced a rollback to it skips steps and analysis.
pub const ROLLBACK_WINDOW: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error("the registry URL: {0}")]
    Registry(flotilla_client::RegistryUrlError),
    #[error("the Prometheus URL: {0}")]
    Prometheus(#[from] crate::prometheus::PrometheusUrlError),
    #[error(transparent)]
    Webhooks(#[from] crate::alerts::WebhookConfigError),
    #[error("the Docker platform: {0}")]
    Docker(#[from] DockerConnectError),
    #[error(transparent)]
    AllowList(#[from] AllowListError),
    #[error(transparent)]
    Shell(#[from] ShellError),
}

/// Opens the store the configuration names: PostgreSQL when a URL is given, else the embedded
/// file.
pub async fn open_store(config: &Config) -> Result<Arc<dyn RolloutStore>, StoreError> {
    match &config.database_url {
        Some(url) => Ok(Arc::new(
            PostgresStore::connect(
                PostgresConfig::new(url).application_name("flotilla-orchestrator"),
            )
            .await?,
        )),
        None if config.data_file.as_os_str() == ":memory:" => {
            Ok(Arc::new(SqliteStore::open_in_memory().await?))
        }
        None => Ok(Arc::new(SqliteStore::open(&config.data_file).await?)),
    }
}

/// Serves the orchestrator on `listener` until `shutdown` completes. Controllers stop and
/// release their leases, so a peer orchestrator takes their rollouts over at once; the instances
/// keep running.
pub async fn serve(
    config: &Config,
    store: Arc<dyn RolloutStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let registry = Arc::new(GrpcRegistry::new(&config.registry).map_err(ServeError::Registry)?);
    let analysis_source = config.metrics_source()?;
    let mut exposition = prometheus_client::registry::Registry::default();
    let metrics = OrchestratorMetrics::register(&mut exposition);
    let alerts = match config.webhook_settings()? {
        Some(settings) => Alerts::start(settings, metrics.clone())?,
        None => Alerts::disabled(),
    };
    let platform: Arc<dyn Platform> = match config.platform {
        PlatformKind::Local => {
            let allowed = ProgramAllowList::new(&config.allow_programs)?;
            if allowed.is_empty() {
                tracing::warn!(
                    "no --allow-program: the local platform will refuse every artifact's program"
                );
            }
            Arc::new(LocalProcessPlatform::new(
                config.state_dir.clone(),
                config.bin_dirs.clone(),
                allowed,
                &config.instance_host,
                &config.registry,
            ))
        }
        PlatformKind::Docker => {
            let allowed_images = ImageAllowList::new(&config.allow_images);
            if allowed_images.is_empty() {
                tracing::warn!(
                    "no --allow-image: the Docker platform will refuse every artifact's image"
                );
            }
            Arc::new(
                DockerPlatform::connect(DockerConfig {
                    network: config.docker_network.clone().unwrap_or_default(),
                    registry: config.registry.clone(),
                    instance_port: config.docker_instance_port,
                    allowed_images,
                })
                .await?,
            )
        }
    };
    let ctx = Context {
        store,
        registry,
        platform,
        holder: config.holder_id(),
        lease_ttl: config.lease_ttl(),
        rollback_window: ROLLBACK_WINDOW,
        analysis_source,
        health: Arc::new(GrpcHealth),
        metrics,
        alerts,
        wake: Arc::default(),
    };
    let analysis = match &ctx.analysis_source {
        MetricsSource::Instances(_) => "instances' /metrics".to_owned(),
        MetricsSource::Prometheus(prometheus) => format!("Prometheus at {}", prometheus.url()),
    };
    tracing::info!(holder = %ctx.holder, registry = %config.registry, platform = ctx.platform.name(), %analysis, webhooks = ?ctx.alerts, "orchestrator starting");

    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(
        ctx.metrics
            .clone()
            .follow_rollouts(ctx.store.clone(), stop_rx.clone()),
    );
    tokio::spawn(
        ctx.alerts
            .clone()
            .follow(ctx.store.clone(), stop_rx.clone()),
    );
    let supervisor = tokio::spawn(supervisor::supervise(ctx.clone(), stop_rx.clone()));

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<OrchestratorServer<OrchestratorApi>>()
        .await;
    let api = OrchestratorServer::new(OrchestratorApi::new(ctx, stop_rx));
    let drain = async {
        shutdown.await;
        tracing::info!("shutting down: draining calls, releasing leases");
        health
            .set_not_serving::<OrchestratorServer<OrchestratorApi>>()
            .await;
        let _ = stop_tx.send(true);
    };
    let call_metrics = ServerMetrics::with_registry(exposition, env!("CARGO_PKG_VERSION"));
    ServerShell::new(
        Routes::new(health_service).add_service(api),
        call_metrics.layer(),
    )
    .reflect(flotilla_proto::rollout::v1::DESCRIPTOR_SET)
    .grace(config.shutdown_grace())
    .serve(listener, drain)
    .await?;
    let _ = supervisor.await;
    Ok(())
}
