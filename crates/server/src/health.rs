//! The server's health: the app's switch ([`HealthHandle`]) and the names it is reported under.

use std::sync::Arc;

use prost::Message;
use prost_types::FileDescriptorSet;
use tokio::sync::watch;
use tonic_health::{ServingStatus, server::HealthReporter};

/// The app's switch for its own health: cheap to clone, usable before and while serving.
///
/// Turning it NOT_SERVING sets every health name of the server (`""`, each service's full name
/// and `<full name>@<version>`) NOT_SERVING, and the next heartbeat (sent at once) reports
/// NOT_SERVING to the registry, so callers stop picking this instance.
#[derive(Debug, Clone)]
pub struct HealthHandle {
    serving: Arc<watch::Sender<bool>>,
}

impl HealthHandle {
    /// A switch that starts SERVING.
    pub(crate) fn new() -> Self {
        Self {
            serving: Arc::new(watch::Sender::new(true)),
        }
    }

    /// Reports the server as ready for calls.
    pub fn set_serving(&self) {
        self.set(true);
    }

    /// Reports the server as running but not ready: health checks answer NOT_SERVING and the
    /// registry takes the instance out of endpoint sets.
    pub fn set_not_serving(&self) {
        self.set(false);
    }

    /// Whether the app currently reports itself SERVING.
    pub fn is_serving(&self) -> bool {
        *self.serving.borrow()
    }

    /// Follows the switch: the health mirror and the heartbeat each watch it.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.serving.subscribe()
    }

    fn set(&self, serving: bool) {
        // Watchers are woken only by a real change, so a repeated call sends no extra heartbeat.
        self.serving.send_if_modified(|current| {
            let changed = *current != serving;
            *current = serving;
            changed
        });
    }
}

/// Every name the server's health is reported under, and the reporter that serves them.
#[derive(Debug, Clone)]
pub(crate) struct HealthBoard {
    reporter: HealthReporter,
    names: Arc<[String]>,
}

impl HealthBoard {
    /// The board for `names`; nothing is reported until [`HealthBoard::set`].
    pub(crate) fn new(reporter: HealthReporter, names: Vec<String>) -> Self {
        Self {
            reporter,
            names: names.into(),
        }
    }

    /// Reports every name as SERVING or NOT_SERVING.
    pub(crate) async fn set(&self, serving: bool) {
        let status = if serving {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        for name in self.names.iter() {
            self.reporter.set_service_status(name, status).await;
        }
    }

    /// Keeps the board in step with the app's switch; runs until the switch is dropped.
    pub(crate) async fn mirror(&self, mut switch: watch::Receiver<bool>) {
        while switch.changed().await.is_ok() {
            let serving = *switch.borrow_and_update();
            tracing::info!(serving, "health changed");
            self.set(serving).await;
        }
    }
}

/// The names health is reported under for a server of `version` serving the services of
/// `descriptor_set`: `""` (the whole server), each service's full name, and each full name with
/// `@<version>`, so a caller or grpcurl can ask which version serves.
pub(crate) fn health_names(
    descriptor_set: &[u8],
    version: &semver::Version,
) -> Result<Vec<String>, prost::DecodeError> {
    let set = FileDescriptorSet::decode(descriptor_set)?;
    let mut names = vec![String::new()];
    for service in service_names(&set) {
        names.push(format!("{service}@{version}"));
        names.push(service);
    }
    Ok(names)
}

/// The full names of the gRPC services declared in `set`, e.g. `demo.greeter.v1.Greeter`.
fn service_names(set: &FileDescriptorSet) -> Vec<String> {
    set.file
        .iter()
        .flat_map(|file| {
            file.service
                .iter()
                .map(move |service| match file.package() {
                    "" => service.name().to_owned(),
                    package => format!("{package}.{}", service.name()),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use flotilla_proto::demo::greeter::v1_1_0;

    #[test]
    fn names_cover_the_server_each_service_and_each_versioned_service() {
        let version = semver::Version::new(1, 1, 0);
        let names = health_names(v1_1_0::DESCRIPTOR_SET, &version).unwrap();
        assert_eq!(
            names,
            [
                "",
                "demo.greeter.v1.Greeter@1.1.0",
                "demo.greeter.v1.Greeter"
            ]
        );
    }

    #[test]
    fn services_without_a_package_keep_their_bare_name() {
        let set = FileDescriptorSet {
            file: vec![prost_types::FileDescriptorProto {
                name: Some("bare.proto".into()),
                service: vec![prost_types::ServiceDescriptorProto {
                    name: Some("Bare".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        assert_eq!(service_names(&set), ["Bare"]);
    }

    #[test]
    fn garbage_is_not_a_descriptor_set() {
        let version = semver::Version::new(1, 0, 0);
        assert!(health_names(b"\xff\xff\xff", &version).is_err());
    }

    #[tokio::test]
    async fn the_switch_wakes_watchers_only_on_a_change() {
        let handle = HealthHandle::new();
        let mut watcher = handle.subscribe();
        assert!(handle.is_serving());
        handle.set_serving();
        assert!(!watcher.has_changed().unwrap());
        handle.clone().set_not_serving();
        assert!(watcher.has_changed().unwrap());
        assert!(!*watcher.borrow_and_update());
        assert!(!handle.is_serving());
    }

    #[tokio::test]
    async fn the_board_mirrors_the_switch_under_every_name() {
        let reporter = HealthReporter::new();
        let service = tonic_health::server::HealthService::from_health_reporter(reporter.clone());
        let board = HealthBoard::new(reporter, vec!["".into(), "a.B".into(), "a.B@1.0.0".into()]);
        board.set(true).await;
        let handle = HealthHandle::new();
        let mirror = tokio::spawn({
            let board = board.clone();
            let switch = handle.subscribe();
            async move { board.mirror(switch).await }
        });
        handle.set_not_serving();

        use tonic_health::pb::{HealthCheckRequest, health_check_response, health_server::Health};
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
        for name in ["", "a.B", "a.B@1.0.0"] {
            loop {
                let reply = service
                    .check(tonic::Request::new(HealthCheckRequest {
                        service: name.into(),
                    }))
                    .await
                    .unwrap()
                    .into_inner();
                if reply.status() == health_check_response::ServingStatus::NotServing {
                    break;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "{name:?} still {:?}",
                    reply.status()
                );
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
        }
        mirror.abort();
    }
}
