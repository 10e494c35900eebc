//! Assembles the registry: store, background tasks, the gRPC service, health, reflection,
//! `GET /metrics` and `GET /prometheus/targets`.

use std::{future::Future, sync::Arc, time::Duration};

use flotilla_model::Timestamp;
use flotilla_proto::registry::v1::registry_server::RegistryServer;
use flotilla_store::{
    PostgresConfig, PostgresStore, PublishGate, RegistryStore, SqliteStore, StoreError,
};
use flotilla_telemetry::metrics::ServerMetrics;
use tokio::{net::TcpListener, sync::watch};
use tonic::transport::server::TcpIncoming;
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
    #[error("building reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
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

    let reflection_v1 = reflection().build_v1()?;
    let reflection_v1alpha = reflection().build_v1alpha()?;

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

    let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
    let drain = async {
        shutdown.await;
        tracing::info!("shutting down: draining calls");
        health
            .set_not_serving::<RegistryServer<RegistryApi>>()
            .await;
        let _ = stop_tx.send(true);
        let _ = draining_tx.send(());
    };
    let metrics = ServerMetrics::with_registry(metrics_registry, env!("CARGO_PKG_VERSION"));
    let discovery = store.clone();
    let layer = metrics.layer().endpoint(TARGETS_PATH, move || {
        let store = discovery.clone();
        async move { targets::answer(store.as_ref()).await }
    });
    let server = tonic::transport::Server::builder()
        // Prometheus scrapes `/metrics` and discovers targets over HTTP/1.1 on the gRPC port;
        // gRPC stays HTTP/2.
        .accept_http1(true)
        .layer(flotilla_telemetry::propagation::TraceLayer)
        .layer(layer)
        // Innermost, so a panic is logged in the call's span and counted as INTERNAL.
        .layer(flotilla_shell::GuardLayer)
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(registry)
        .serve_with_incoming_shutdown(incoming(listener), drain);
    // A client that never closes its connection must not hold the process past the grace period.
    let grace = config.shutdown_grace();
    let grace_expired = async {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        served = server => served?,
        _ = grace_expired => {
            tracing::warn!(?grace, "connections still open after the grace period; closing them");
        }
    }
    Ok(())
}

/// Accepted connections with Nagle's algorithm off: a unary reply is written as several small
/// frames (headers, data, trailers), and Nagle plus delayed ACKs would stall each by up to 40 ms.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

/// Reflection for the registry, health, and the google.rpc error details the registry sends, so
/// grpcurl can print those details decoded.
fn reflection() -> tonic_reflection::server::Builder<'static> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(flotilla_proto::registry::v1::DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
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
