use anyhow::Context;
use clap::Parser;
use flotilla_rollout_orchestrator::{Config, config::LogFormat, open_store, serve};
use flotilla_telemetry::traces::{self, ProcessIdentity, TelemetryGuard};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let _telemetry = init_telemetry(config.log_format)?;

    let store = open_store(&config).await.context("opening the store")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    // On stdout, for scripts and tests that start the orchestrator on port 0.
    println!("rollout-orchestrator listening on {address}");
    tracing::info!(%address, "serving gRPC");

    serve(&config, store, listener, flotilla_shell::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_telemetry(format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    let identity = ProcessIdentity::of("rollout-orchestrator", env!("CARGO_PKG_VERSION"));
    traces::init(&identity, format).context("setting up logs and traces")
}
