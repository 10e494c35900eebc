use clap::Parser;
use flotilla_demo_frontend::{Config, run};
use flotilla_telemetry::traces::{self, ProcessIdentity};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let identity = ProcessIdentity::of("frontend", &config.version.to_string());
    let _telemetry = traces::init(&identity, traces::LogFormat::Text)?;
    run(config, flotilla_server::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
