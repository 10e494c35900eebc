//! The health gate's eyes: one grpc.health.v1 Watch stream per instance (pushed, never polled),
//! so a NOT_SERVING is seen the moment the instance reports it.

use std::{collections::HashMap, sync::Arc, time::Duration};

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

/// Health of a set of instances, by address. `changed()` fires on every change.
#[derive(Debug, Default)]
pub struct HealthBoard {
    watchers: HashMap<String, Watcher>,
    changed: Arc<Notify>,
}

impl HealthBoard {
    pub fn new() -> Self {
        Self::default()
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
        let task = tokio::spawn(follow(address.to_owned(), tx, self.changed.clone()));
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

async fn follow(address: String, status: watch::Sender<Observed>, changed: Arc<Notify>) {
    let set = |health: Health| {
        let updated = status.send_if_modified(|observed| {
            let before = *observed;
            observed.health = health;
            observed.served |= health == Health::Serving;
            before != *observed
        });
        if updated {
            changed.notify_one();
        }
    };
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
        } else if status.borrow().served {
            // Reachable before and not now: the instance is gone or wedged.
            set(Health::Unknown);
        }
        tokio::time::sleep(RECONNECT).await;
    }
}
