//! Runs the frontend: follow the greeter fleet, then serve through FleetServer.

use std::{future::Future, net::SocketAddr};

use flotilla_client::{ClientError, FleetClient};
use flotilla_proto::demo::{frontend::v1::frontend_server::FrontendServer, greeter::v1_1_0};
use flotilla_server::{FleetServer, ServerError};
use tokio::net::TcpListener;
use tonic::service::Routes;

use crate::{Config, frontend::FrontendService};

/// The program name, first in the published artifact's command.
pub const PROGRAM: &str = "demo-frontend";
/// The service name the frontend publishes under.
pub const SERVICE: &str = "frontend";

/// Why the frontend stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error("binding {address}: {source}")]
    Bind {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("following the greeter fleet: {0}")]
    Client(#[from] ClientError),
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Serves until `shutdown` completes. Prints `demo-frontend listening on ADDR` on stdout once
/// serving and registered.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Bind {
            address: config.listen,
            source,
        })?;
    // Greeters may start after the frontend: follow the fleet without waiting for a first
    // instance; calls fail UNAVAILABLE until one serves.
    let greeters = FleetClient::builder(&config.registry, &config.greeter_service)
        .requirement(&config.greeter_requirement)?
        .caller_schema(v1_1_0::DESCRIPTOR_SET)
        .wait_for_endpoints(false)
        .connect()
        .await?;

    let mut builder = FleetServer::builder(&config.registry, SERVICE, config.version.clone())
        .descriptor_set(flotilla_proto::demo::frontend::v1::DESCRIPTOR_SET)
        .artifact("", artifact_command(&config))
        .dependency(&config.greeter_service, &config.greeter_requirement)
        .owner("flotilla-demo")
        .lease_ttl(config.lease_ttl());
    if let Some(address) = &config.advertise {
        builder = builder.advertise(address);
    }
    let builder = builder.on_ready(|ready| {
        // On stdout, for scripts and tests that start the frontend on port 0.
        println!("{PROGRAM} listening on {}", ready.local_addr);
        tracing::info!(instance = %ready.instance_id, "ready");
    });
    let routes = Routes::new(FrontendServer::new(FrontendService::new(greeters)));
    tracing::info!(version = %config.version, greeter = %config.greeter_requirement, "starting");
    builder.serve(listener, routes, shutdown).await?;
    Ok(())
}

/// How to start this version again.
fn artifact_command(config: &Config) -> Vec<String> {
    vec![
        PROGRAM.to_owned(),
        "--version".to_owned(),
        config.version.to_string(),
        "--greeter-requirement".to_owned(),
        config.greeter_requirement.clone(),
    ]
}
