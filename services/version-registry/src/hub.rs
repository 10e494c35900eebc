//! Fan-out of endpoint changes to watchers.
//!
//! One snapshot per watched service is kept in a `tokio::sync::watch` channel. A single task
//! listens to the store's announcements and reloads the snapshot of a changed service once,
//! however many watchers it has; each watcher then filters the shared snapshot by its own
//! requirement. So a change costs one store read, not one per watcher.

use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
    time::Duration,
};

use flotilla_model::{EndpointSnapshot, ServiceName, Timestamp};
use flotilla_store::{Change, RegistryStore, StoreError};
use tokio::sync::{Mutex, broadcast, watch};

/// How often reloads that failed (store unavailable) are retried, and idle channels dropped.
const RETRY_INTERVAL: Duration = Duration::from_secs(1);

type Snapshot = Arc<EndpointSnapshot>;

/// Shares one live endpoint snapshot per service among all its watchers.
#[derive(Debug, Clone)]
pub struct EndpointHub {
    store: Arc<dyn RegistryStore>,
    channels: Arc<Mutex<HashMap<ServiceName, watch::Sender<Snapshot>>>>,
}

impl EndpointHub {
    /// Starts the hub's reload task, which runs until `shutdown` turns true.
    pub fn start(store: Arc<dyn RegistryStore>, shutdown: watch::Receiver<bool>) -> Self {
        let hub = Self {
            store,
            channels: Arc::default(),
        };
        // Subscribe before anything is loaded, so no announcement falls between a load and the
        // subscription.
        let changes = hub.store.subscribe();
        tokio::spawn(hub.clone().reload_loop(changes, shutdown));
        hub
    }

    /// A receiver of the service's snapshots, holding the current one.
    pub async fn subscribe(
        &self,
        service: &ServiceName,
    ) -> Result<watch::Receiver<Snapshot>, StoreError> {
        // The map lock is held across the first load: the reload task takes the same lock to
        // find a channel, so a change committed after this load is reloaded into the new channel.
        let mut channels = self.channels.lock().await;
        if let Some(sender) = channels.get(service) {
            return Ok(sender.subscribe());
        }
        let snapshot = self
            .store
            .endpoint_snapshot(service, Timestamp::now())
            .await?;
        let (sender, receiver) = watch::channel(Arc::new(snapshot));
        channels.insert(service.clone(), sender);
        Ok(receiver)
    }

    async fn reload_loop(
        self,
        mut changes: broadcast::Receiver<Change>,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut failed: HashSet<ServiceName> = HashSet::new();
        let mut tick = tokio::time::interval(RETRY_INTERVAL);
        loop {
            let due: Vec<ServiceName> = tokio::select! {
                _ = crate::stop::stopped(&mut shutdown) => return,
                change = changes.recv() => match change {
                    Ok(Change::Service(service)) => vec![service],
                    Ok(Change::All) | Err(broadcast::error::RecvError::Lagged(_)) => self.all_services().await,
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => {
                    self.drop_idle_channels().await;
                    failed.drain().collect()
                }
            };
            for service in due {
                if let Err(error) = self.reload(&service).await {
                    tracing::warn!(%service, %error, "endpoint reload failed; retrying");
                    failed.insert(service);
                }
            }
        }
    }

    async fn all_services(&self) -> Vec<ServiceName> {
        self.channels.lock().await.keys().cloned().collect()
    }

    async fn reload(&self, service: &ServiceName) -> Result<(), StoreError> {
        let Some(sender) = self.channels.lock().await.get(service).cloned() else {
            return Ok(());
        };
        let snapshot = self
            .store
            .endpoint_snapshot(service, Timestamp::now())
            .await?;
        sender.send_if_modified(|current| {
            let modified = **current != snapshot;
            if modified {
                *current = Arc::new(snapshot);
            }
            modified
        });
        Ok(())
    }

    async fn drop_idle_channels(&self) {
        self.channels
            .lock()
            .await
            .retain(|_, sender| sender.receiver_count() > 0);
    }
}
