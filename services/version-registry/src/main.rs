use anyhow::Context;
use clap::Parser;
use flotilla_telemetry::traces::{self, ProcessIdentity, TelemetryGuard};
use flotilla_version_registry::{Config, config::LogFormat, open_store, serve};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = init_telemetry(config.log_format)?;

    let store = open_store(&config).await.context("opening the store")?;
    tracing::info!(store = ?store, "store ready");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    // On stdout, for scripts and tests that start the registry on port 0.
    println!("version-registry listening on {address}");
    tracing::info!(%address, "serving gRPC");

    serve(&config, store, listener, flotilla_shell::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

/// The share of traces starting at the registry that are sampled, unless `OTEL_TRACES_SAMPLER`
/// says otherwise.
const ROOT_SAMPLING_RATIO: f64 = 0.1;

fn init_telemetry(format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let identity = ProcessIdentity::of("version-registry", env!("CARGO_PKG_VERSION"));
    // Heartbeats, resolves and watches from untraced callers would each start a trace of one
    // span; one in ten is kept. Calls that carry a trace (a rollout's) are kept with it.
    traces::init_with_root_sampling(&identity, format, ROOT_SAMPLING_RATIO)
        .context("setting up logs and traces")
}
