//! Runs the greeter: bind, pick the release, arm the fault timers, serve through FleetServer.

use std::{future::Future, net::SocketAddr, sync::Arc};

use flotilla_server::{FleetServer, FleetServerBuilder, ServerError};
use tokio::net::TcpListener;

use crate::{
    Config,
    faults::{self, Faults},
    greeter::{self, Context},
};

/// The program name, first in the published artifact's command.
pub const PROGRAM: &str = "demo-greeter";

/// Why the greeter stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The listening address could not be bound.
    #[error("binding {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// Why it failed.
        source: std::io::Error,
    },
    /// Publishing, registering or serving failed.
    #[error(transparent)]
    Server(#[from] ServerError),
}

/// Serves the configured release until `shutdown` completes. Prints
/// `demo-greeter listening on ADDR` on stdout once serving and registered.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), AppError> {
    if config.publish_only {
        declare(&config).publish().await?;
        println!(
            "{PROGRAM} published {}@{}",
            config.service,
            config.published_version()
        );
        return Ok(());
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| AppError::Bind {
            address: config.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| AppError::Bind {
        address: config.listen,
        source,
    })?;
    let release = config.release;
    let version = config.published_version();
    let shown_address = config
        .advertise
        .clone()
        .unwrap_or_else(|| local.to_string());

    let context = Context {
        served_by: format!("{PROGRAM} {version} on {shown_address}"),
        faults: Arc::new(Faults::new(
            config.error_ratio,
            config.latency(),
            config.fault_seed,
        )),
    };
    let mut builder = declare(&config);
    if let Some(address) = &config.advertise {
        builder = builder.advertise(address);
    }
    let health = builder.health_handle();
    let (unhealthy_after, crash_after) = (config.unhealthy_after, config.crash_after);
    let builder = builder.on_ready(move |ready| {
        // On stdout, for scripts and tests that start the greeter on port 0.
        println!("{PROGRAM} listening on {}", ready.local_addr);
        tracing::info!(instance = %ready.instance_id, advertised = %ready.advertised, "ready");
        // The fault timers start once the instance is registered, so a test sees it serve first.
        if let Some(after) = unhealthy_after {
            tokio::spawn(faults::turn_unhealthy_after(after, health));
        }
        if let Some(after) = crash_after {
            tokio::spawn(faults::crash_after(after));
        }
    });

    tracing::info!(release = release.as_str(), %version, registry = %config.registry, "starting");
    builder
        .serve(listener, greeter::routes(release, context), shutdown)
        .await?;
    Ok(())
}

/// The version this process serves or publishes: schema, artifact, labels, lease.
fn declare(config: &Config) -> FleetServerBuilder {
    FleetServer::builder(
        &config.registry,
        &config.service,
        config.published_version(),
    )
    .descriptor_set(config.release.descriptor_set())
    .artifact(&config.image, artifact_command(config))
    .owner("flotilla-demo")
    .label("release", config.release.as_str())
    .lease_ttl(config.lease_ttl())
}

/// How to start this version again, as the orchestrator's platforms run it: the release, the
/// version, the fault flags and the image, with `{listen}`, `{advertise}` and `{registry}` for
/// the platform to fill in.
pub fn artifact_command(config: &Config) -> Vec<String> {
    let mut command: Vec<String> = [
        PROGRAM,
        "--release",
        config.release.as_str(),
        "--version",
        &config.published_version().to_string(),
    ]
    .map(str::to_owned)
    .to_vec();
    let mut flag = |name: &str, value: String| {
        command.push(format!("--{name}"));
        command.push(value);
    };
    if let Some(after) = config.unhealthy_after {
        flag("unhealthy-after", after.as_secs_f64().to_string());
    }
    if config.error_ratio > 0.0 {
        flag("error-ratio", config.error_ratio.to_string());
    }
    if config.latency_ms > 0 {
        flag("latency-ms", config.latency_ms.to_string());
    }
    if let Some(after) = config.crash_after {
        flag("crash-after", after.as_secs_f64().to_string());
    }
    if let Some(seed) = config.fault_seed {
        flag("fault-seed", seed.to_string());
    }
    // An instance publishes its version again at start: the same image keeps the content equal.
    if !config.image.is_empty() {
        flag("image", config.image.clone());
    }
    flag("listen", "{listen}".into());
    flag("advertise", "{advertise}".into());
    flag("registry", "{registry}".into());
    command
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_artifact_command_restarts_the_same_release_version_and_faults() {
        let config = Config::try_parse_from([
            "demo-greeter",
            "--release",
            "1.1.0",
            "--version",
            "1.2.0",
            "--error-ratio",
            "0.5",
        ])
        .unwrap();
        assert_eq!(
            artifact_command(&config),
            [
                "demo-greeter",
                "--release",
                "1.1.0",
                "--version",
                "1.2.0",
                "--error-ratio",
                "0.5",
                "--listen",
                "{listen}",
                "--advertise",
                "{advertise}",
                "--registry",
                "{registry}"
            ]
        );
        let parsed = Config::try_parse_from(artifact_command(&config).iter().map(|arg| {
            arg.replace("{listen}", "127.0.0.1:1")
                .replace("{registry}", "http://r")
        }))
        .unwrap();
        assert_eq!(parsed.error_ratio, 0.5);
        assert_eq!(parsed.published_version(), config.published_version());
    }

    #[tokio::test]
    async fn an_address_in_use_is_a_bind_error() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = taken.local_addr().unwrap().to_string();
        let config = Config::try_parse_from(["demo-greeter", "--listen", &address]).unwrap();
        let error = run(config, std::future::pending()).await.unwrap_err();
        assert!(matches!(error, AppError::Bind { .. }), "{error:?}");
    }
}
