//! Running a declared version: publish, serve, register, heartbeat, and drain on shutdown.

use std::{
    future::Future,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use flotilla_model::{Schema, ServiceName, parse_address};
use flotilla_proto::registry::v1 as pb;
use flotilla_shell::{ServerShell, ShellError};
use flotilla_telemetry::metrics::ServerMetrics;
use http::HeaderValue;
use tokio::{net::TcpListener, sync::watch, time::Instant};
use tonic::service::Routes;
use tracing::Instrument;

use crate::{
    FleetServerBuilder, Ready, ServerError,
    health::{HealthBoard, health_names},
    lease::{InstanceSpec, Lease},
    metadata::fleet_headers,
    registry::Registry,
};

/// The leases the registry grants.
const LEASE_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(300);

/// See [`FleetServerBuilder::publish`].
pub(crate) async fn publish(builder: FleetServerBuilder) -> Result<(), ServerError> {
    let FleetServerBuilder {
        registry_endpoint,
        service,
        version,
        descriptor_set,
        artifact,
        dependencies,
        labels,
        owner,
        registry_wait,
        ..
    } = builder;
    check_service_name(&service)?;
    let descriptor_set = required_descriptor_set(descriptor_set)?;
    Schema::from_bytes(&descriptor_set)?;
    let version_text = version.to_string();
    let registry = Registry::new(&registry_endpoint, &format!("{service}@{version_text}"))?;
    let request = publish_request(
        &service,
        &version_text,
        &descriptor_set,
        artifact,
        dependencies,
        labels,
    );
    let started = Instant::now();
    let deadline = started + registry_wait;
    registry
        .ensure_service(&service, &owner, deadline, started)
        .await?;
    registry.publish(request, deadline, started).await
}

fn check_service_name(service: &str) -> Result<(), ServerError> {
    ServiceName::parse("service", service).map_err(|e| ServerError::InvalidSetting {
        field: "service",
        reason: e.message,
    })?;
    Ok(())
}

fn required_descriptor_set<T>(descriptor_set: Option<T>) -> Result<T, ServerError> {
    descriptor_set.ok_or(ServerError::InvalidSetting {
        field: "descriptor_set",
        reason: "is required".into(),
    })
}

fn publish_request(
    service: &str,
    version: &str,
    descriptor_set: &[u8],
    artifact: Option<(String, Vec<String>)>,
    dependencies: Vec<(String, String)>,
    labels: impl IntoIterator<Item = (String, String)>,
) -> pb::PublishVersionRequest {
    pb::PublishVersionRequest {
        service: service.to_owned(),
        version: version.to_owned(),
        file_descriptor_set: descriptor_set.to_vec(),
        artifact: artifact.map(|(image, command)| pb::Artifact { image, command }),
        dependencies: dependencies
            .into_iter()
            .map(|(service, requirement)| pb::Dependency {
                service,
                requirement,
            })
            .collect(),
        labels: labels.into_iter().collect(),
    }
}

/// See [`FleetServerBuilder::serve`].
pub(crate) async fn serve(
    builder: FleetServerBuilder,
    listener: TcpListener,
    routes: Routes,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServerError> {
    let FleetServerBuilder {
        registry_endpoint,
        service,
        version,
        descriptor_set,
        artifact,
        dependencies,
        labels,
        owner,
        advertise,
        lease_ttl,
        registry_wait,
        shutdown_grace,
        health,
        on_ready,
    } = builder;

    // Everything that can be judged locally is, before the registry is bothered.
    check_service_name(&service)?;
    if !LEASE_RANGE.contains(&lease_ttl) {
        return Err(ServerError::InvalidSetting {
            field: "lease_ttl",
            reason: format!("{lease_ttl:?} is outside the registry's 1 s to 300 s"),
        });
    }
    let descriptor_set = required_descriptor_set(descriptor_set)?;
    let schema = Schema::from_bytes(&descriptor_set)?;
    let names = health_names(&descriptor_set, &version)
        .map_err(|e| ServerError::Schema(flotilla_model::SchemaError::Decode(e.to_string())))?;
    let local_addr = listener.local_addr().map_err(ServerError::Listener)?;
    let advertised = advertised_address(advertise.as_deref(), local_addr)?;
    let version_text = version.to_string();
    let header = |field, text: &str| {
        HeaderValue::from_str(text).map_err(|_| ServerError::InvalidSetting {
            field,
            reason: format!("{text:?} cannot be sent as a header"),
        })
    };
    let version_header = header("version", &version_text)?;
    let schema_header = header("descriptor_set", schema.fingerprint())?;

    let registry = Registry::new(&registry_endpoint, &format!("{service}@{version_text}"))?;
    let publish = publish_request(
        &service,
        &version_text,
        &descriptor_set,
        artifact,
        dependencies,
        labels,
    );

    let mut shutdown = std::pin::pin!(shutdown);
    let started = Instant::now();
    let deadline = started + registry_wait;
    // Publishing and registering, as one span; a child of the rollout that started this
    // instance when the orchestrator handed its context down (TRACEPARENT).
    let startup_span = tracing::info_span!(
        "instance.startup",
        otel.name = %format!("start {service}@{version_text}"),
    );
    flotilla_telemetry::propagation::continue_trace_from_env(&startup_span);
    let startup = async {
        registry
            .ensure_service(&service, &owner, deadline, started)
            .await?;
        registry.publish(publish, deadline, started).await
    }
    .instrument(startup_span.clone());
    tokio::select! {
        published = startup => published?,
        () = &mut shutdown => {
            tracing::info!("shutdown before the version was published");
            return Ok(());
        }
    }

    let (reporter, health_service) = tonic_health::server::health_reporter();
    let board = HealthBoard::new(reporter, names);
    // Each follower subscribes before reading the switch, so a flip in between is not lost.
    let mut mirror_switch = health.subscribe();
    let serving = *mirror_switch.borrow_and_update();
    board.set(serving).await;
    let routes = routes.add_service(health_service);
    let (instance_tx, instance_rx) = watch::channel(None);
    let (drain_tx, drain_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = ServerMetrics::new(&version_text);
    let server = ServerShell::new(routes, metrics.layer())
        .reflect(descriptor_set.clone())
        .response_headers(fleet_headers(version_header, schema_header, instance_rx))
        .grace(shutdown_grace)
        .serve(listener, async {
            let _ = drain_rx.await;
        });
    let mut server = std::pin::pin!(server);
    tracing::info!(%local_addr, %advertised, %service, version = %version_text, "serving");

    let mut lease = Lease::new(
        registry,
        InstanceSpec {
            service,
            version: version_text,
            address: advertised.clone(),
            ttl: lease_ttl,
        },
        instance_tx,
    );
    // Registered only once the server is being polled, so the first caller the registry sends is
    // answered.
    let mut lease_switch = health.subscribe();
    let serving = *lease_switch.borrow_and_update();
    let registered = tokio::select! {
        registered = lease.register(serving).instrument(startup_span.clone()) => {
            registered?;
            true
        }
        () = &mut shutdown => false,
        served = &mut server => return stopped_early(served),
    };

    drop(startup_span);
    let stopped_by_itself = if registered {
        if let (Some(callback), Some(instance_id)) = (on_ready, lease.id()) {
            callback(&Ready {
                local_addr,
                advertised,
                instance_id: instance_id.to_owned(),
                schema_fingerprint: schema.fingerprint().to_owned(),
            });
        }
        let mirror = async {
            board.mirror(mirror_switch).await;
            // The switch outlives this function (`health` is held here), so this is not reached;
            // if it were, the board would simply stop following it.
            std::future::pending::<()>().await
        };
        tokio::select! {
            never = lease.keep_alive(lease_switch) => match never {},
            () = mirror => None,
            () = &mut shutdown => None,
            served = &mut server => Some(served),
        }
    } else {
        None
    };

    // Callers are told first (health, then the registry's endpoint sets), so they move away
    // before the connections close.
    tracing::info!("shutting down: NOT_SERVING, deregistering, draining calls");
    board.set(false).await;
    lease.deregister().await;
    if let Some(served) = stopped_by_itself {
        return stopped_early(served);
    }
    let _ = drain_tx.send(());
    // The shell lets open calls finish for the grace period, then closes what is left.
    (&mut server).await?;
    Ok(())
}

/// The gRPC server ended without being asked to: its error, or a warning saying so.
fn stopped_early(served: Result<(), ShellError>) -> Result<(), ServerError> {
    served?;
    tracing::warn!("the gRPC server stopped before shutdown was asked for");
    Ok(())
}

/// The address to register: the one set, validated, or the listener's, with an unspecified IP
/// replaced by loopback (nobody can dial `0.0.0.0`; loopback at least works on this machine).
fn advertised_address(setting: Option<&str>, local: SocketAddr) -> Result<String, ServerError> {
    match setting {
        Some(text) => parse_address("advertise", text).map_err(|e| ServerError::InvalidSetting {
            field: "advertise",
            reason: e.message,
        }),
        None if local.ip().is_unspecified() => {
            let loopback = match local.ip() {
                IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
            };
            let address = SocketAddr::new(loopback, local.port());
            tracing::warn!(%local, %address,
                "listening on an unspecified address without an advertised one; registering loopback");
            Ok(address.to_string())
        }
        None => Ok(local.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_address_is_advertised_by_default() {
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(advertised_address(None, local).unwrap(), "127.0.0.1:4000");
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(advertised_address(None, v6).unwrap(), "[::1]:4000");
    }

    #[test]
    fn an_unspecified_listener_address_advertises_loopback() {
        let any: SocketAddr = "0.0.0.0:4000".parse().unwrap();
        assert_eq!(advertised_address(None, any).unwrap(), "127.0.0.1:4000");
        let any6: SocketAddr = "[::]:4000".parse().unwrap();
        assert_eq!(advertised_address(None, any6).unwrap(), "[::1]:4000");
    }

    #[test]
    fn a_set_address_is_validated() {
        let local: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        assert_eq!(
            advertised_address(Some("greeter.internal:7000"), local).unwrap(),
            "greeter.internal:7000"
        );
        assert!(matches!(
            advertised_address(Some("no-port"), local),
            Err(ServerError::InvalidSetting {
                field: "advertise",
                ..
            })
        ));
    }
}
