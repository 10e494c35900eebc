use anyhow::Context;
use clap::Parser;
use flotilla_rollout_orchestrator::{Config, config::LogFormat, open_store, serve};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    init_logging(config.log_format);

    let store = open_store(&config).await.context("opening the store")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    // On stdout, for scripts and tests that start the orchestrator on port 0.
    println!("rollout-orchestrator listening on {address}");
    tracing::info!(%address, "serving gRPC");

    serve(&config, store, listener, flotilla_server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
