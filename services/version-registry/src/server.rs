//! Assembles the registry: store, background tasks, the gRPC service and health, served in the
//! suite's server shell (reflection, `GET /metrics`) with `GET /prometheus/targets`.

use std::{future::Future, sync::Arc, time::Duration};

use flotilla_model::Timestamp;
use flotilla_proto::registry::v1::registry_server::RegistryServer;
use flotilla_shell::{ServerShell, ShellError};
use flotilla_store::{
    PostgresConfig, PostgresStore, PublishGate, RegistryStore, SqliteStore, StoreError,
};
use flotilla_telemetry::metrics::ServerMetrics;
use tokio::{net::TcpListener, sync::watch};
use tonic::service::Routes;
use tonic_health::server::HealthReporter;

use crate::{
    api::RegistryApi,
    config::Config,
    gate::CompatibilityGate,
    hub::EndpointHub,
    metrics::RegistryMetrics,
    targets::{self, TARGETS_PATH},
};

/// How often the store is pinged to keep the health status true.
const STORE_PROBE_INTERVAL: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("opening the store: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Shell(#[from] ShellError),
}

/// Opens the store the configuration names: PostgreSQL when a URL is given, else the embedded
/// file.
pub async fn open_store(config: &Config) -> Result<Arc<dyn RegistryStore>, StoreError> {
    match &config.database_url {
        Some(url) => Ok(Arc::new(
            PostgresStore::connect(
                PostgresConfig::new(url)
                    .application_name("flotilla-registry")
                    .renew_leases_after_outage(true),
            )
            .await?,
        )),
        None if config.data_file.as_os_str() == ":memory:" => {
            Ok(Arc::new(SqliteStore::open_in_memory().await?))
        }
        None => Ok(Arc::new(SqliteStore::open(&config.data_file).await?)),
    }
}

/// Serves the registry on `listener` until `shutdown` completes, then drains: health turns
/// NOT_SERVING, watch streams end with UNAVAILABLE, in-flight calls finish.
pub async fn serve(
    config: &Config,
    store: Arc<dyn RegistryStore>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    serve_with_gate(
        config,
        store,
        Arc::new(CompatibilityGate),
        listener,
        shutdown,
    )
    .await
}

/// [`serve`] with a chosen publish gate.
pub async fn serve_with_gate(
    config: &Config,
    store: Arc<dyn RegistryStore>,
    gate: Arc<dyn PublishGate>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let hub = EndpointHub::start(store.clone(), stop_rx.clone());
    tokio::spawn(reap_expired_leases(
        store.clone(),
        config.reap_interval(),
        stop_rx.clone(),
    ));

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<RegistryServer<RegistryApi>>().await;
    tokio::spawn(probe_store(store.clone(), health.clone(), stop_rx.clone()));

    let mut metrics_registry = prometheus_client::registry::Registry::default();
    let registry_metrics = RegistryMetrics::register(&mut metrics_registry);
    tokio::spawn(
        registry_metrics
            .clone()
            .follow_census(store.clone(), stop_rx.clone()),
    );
    let api = RegistryApi::new(store.clone(), gate, hub, registry_metrics, stop_rx);
    let registry = RegistryServer::new(api)
        .max_decoding_message_size(config.max_message_bytes)
        .max_encoding_message_size(config.max_message_bytes);

    let drain = async {
        shutdown.await;
        tracing::info!("shutting down: draining calls");
        health
            .set_not_serving::<RegistryServer<RegistryApi>>()
            .await;
        let _ = stop_tx.send(true);
    };
    let metrics = ServerMetrics::with_registry(metrics_registry, env!("CARGO_PKG_VERSION"));
    let discovery = store.clone();
    let layer = metrics.layer().endpoint(TARGETS_PATH, move || {
        let store = discovery.clone();
        async move { targets::answer(store.as_ref()).await }
    });
    let routes = Routes::new(health_service).add_service(registry);
    ServerShell::new(routes, layer)
        .reflect(flotilla_proto::registry::v1::DESCRIPTOR_SET)
        .grace(config.shutdown_grace())
        .serve(listener, drain)
        .await?;
    Ok(())
}

/// Expires leases that ran out, so they leave endpoint sets by push.
async fn reap_expired_leases(
    store: Arc<dyn RegistryStore>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = crate::stop::stopped(&mut stop) => return,
            _ = tick.tick() => {}
        }
        match store.expire_instances(Timestamp::now()).await {
            Ok(expired) => {
                for instance in expired {
                    tracing::info!(
                        service = %instance.service, version = %instance.version,
                        id = %instance.id, address = %instance.address, "lease expired"
                    );
                }
            }
            Err(error) => tracing::warn!(%error, "expiring leases failed"),
        }
    }
}

/// Keeps the registry's health status in step with its store.
async fn probe_store(
    store: Arc<dyn RegistryStore>,
    health: HealthReporter,
    mut stop: watch::Receiver<bool>,
) {
    let mut serving = true;
    loop {
        tokio::select! {
            _ = crate::stop::stopped(&mut stop) => return,
            _ = tokio::time::sleep(STORE_PROBE_INTERVAL) => {}
        }
        match (store.ping().await, serving) {
            (Err(error), true) => {
                tracing::error!(%error, "store unreachable: NOT_SERVING");
                health
                    .set_not_serving::<RegistryServer<RegistryApi>>()
                    .await;
                serving = false;
            }
            (Ok(()), false) => {
                tracing::info!("store reachable again: SERVING");
                health.set_serving::<RegistryServer<RegistryApi>>().await;
                serving = true;
            }
            _ => {}
        }
    }
}
