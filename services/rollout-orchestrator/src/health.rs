//! The health gate's eyes: one follower per instance, by default a grpc.health.v1 Watch
//! stream (pushed, never polled, [`GrpcHealth`]), so a NOT_SERVING is seen the moment the
//! instance reports it. The [`HealthProbe`] trait lets a test play the instances.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;
use flotilla_model::Health;
use tokio::{
    sync::{Notify, watch},
    task::AbortHandle,
    time::Instant,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// Pause between attempts to reach an instance that is not listening (yet).
const RECONNECT: Duration = Duration::from_millis(100);

/// What the board knows about one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    pub health: Health,
    /// It has been SERVING at some point.
    pub served: bool,
    /// When it was first tracked.
    pub since: Instant,
}

#[derive(Debug)]
struct Watcher {
    status: watch::Receiver<Observed>,
    task: AbortHandle,
}

/// Follows one instance's health, reporting every status, for as long as it is watched (the
/// task running it is aborted when the instance is no longer watched).
#[async_trait]
pub trait HealthProbe: Send + Sync + fmt::Debug {
    async fn follow(&self, address: String, report: HealthReport);
}

/// Where a [`HealthProbe`] reports one instance's health.
#[derive(Debug)]
pub struct HealthReport {
    status: watch::Sender<Observed>,
    changed: Arc<Notify>,
}

impl HealthReport {
    pub fn set(&self, health: Health) {
        let updated = self.status.send_if_modified(|observed| {
            let before = *observed;
            observed.health = health;
            observed.served |= health == Health::Serving;
            before != *observed
        });
        if updated {
            self.changed.notify_one();
        }
    }

    /// The instance has been SERVING at some point.
    pub fn has_served(&self) -> bool {
        self.status.borrow().served
    }
}

/// Health of a set of instances, by address. `changed()` fires on every change.
#[derive(Debug)]
pub struct HealthBoard {
    probe: Arc<dyn HealthProbe>,
    watchers: HashMap<String, Watcher>,
    changed: Arc<Notify>,
}

impl HealthBoard {
    pub fn new(probe: Arc<dyn HealthProbe>) -> Self {
        Self {
            probe,
            watchers: HashMap::new(),
            changed: Arc::default(),
        }
    }

    /// Starts watching `address` unless it is watched already.
    pub fn track(&mut self, address: &str) {
        if self.watchers.contains_key(address) {
            return;
        }
        let (tx, rx) = watch::channel(Observed {
            health: Health::Starting,
            served: false,
            since: Instant::now(),
        });
        let report = HealthReport {
            status: tx,
            changed: self.changed.clone(),
        };
        let probe = self.probe.clone();
        let followed = address.to_owned();
        let task = tokio::spawn(async move { probe.follow(followed, report).await });
        self.watchers.insert(
            address.to_owned(),
            Watcher {
                status: rx,
                task: task.abort_handle(),
            },
        );
    }

    /// Stops watching `address` (before the instance is stopped, so its exit is not a failure).
    pub fn forget(&mut self, address: &str) {
        if let Some(watcher) = self.watchers.remove(address) {
            watcher.task.abort();
        }
    }

    /// Keeps only the addresses in `keep`.
    pub fn retain(&mut self, keep: &[&str]) {
        let gone: Vec<String> = self
            .watchers
            .keys()
            .filter(|address| !keep.contains(&address.as_str()))
            .cloned()
            .collect();
        for address in gone {
            self.forget(&address);
        }
    }

    pub fn observed(&self, address: &str) -> Option<Observed> {
        self.watchers.get(address).map(|w| *w.status.borrow())
    }

    /// Fires after any tracked instance's health changes.
    pub fn changed(&self) -> Arc<Notify> {
        self.changed.clone()
    }
}

impl Drop for HealthBoard {
    fn drop(&mut self) {
        for watcher in self.watchers.values() {
            watcher.task.abort();
        }
    }
}

/// grpc.health.v1 Watch of the server's overall health (the empty name, which every gRPC
/// server may report), reconnecting while the instance is not listening (yet).
#[derive(Debug, Clone, Copy, Default)]
pub struct GrpcHealth;

#[async_trait]
impl HealthProbe for GrpcHealth {
    async fn follow(&self, address: String, report: HealthReport) {
        watch_grpc_health(address, report).await;
    }
}

async fn watch_grpc_health(address: String, report: HealthReport) {
    let set = |health: Health| report.set(health);
    let Ok(endpoint) = tonic::transport::Endpoint::from_shared(format!("http://{address}")) else {
        set(Health::Unknown);
        return;
    };
    let endpoint = endpoint
        .connect_timeout(Duration::from_secs(1))
        .tcp_nodelay(true);
    loop {
        if let Ok(channel) = endpoint.connect().await {
            let mut client = HealthClient::new(channel);
            // The empty name is the server's overall health, which every gRPC server may report.
            match client
                .watch(HealthCheckRequest {
                    service: String::new(),
                })
                .await
            {
                Ok(response) => {
                    let mut stream = response.into_inner();
                    while let Ok(Some(reply)) = stream.message().await {
                        set(match ServingStatus::try_from(reply.status) {
                            Ok(ServingStatus::Serving) => Health::Serving,
                            Ok(ServingStatus::NotServing) => Health::NotServing,
                            _ => Health::Unknown,
                        });
                    }
                    set(Health::Unknown);
                }
                Err(_) => set(Health::Unknown),
            }
        } else if report.has_served() {
            // Reachable before and not now: the instance is gone or wedged.
            set(Health::Unknown);
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
