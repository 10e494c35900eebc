//! WatchEndpoints streams: each watcher follows its service's snapshots (from the hub) and is
//! sent an endpoint set only when what it sees changes, filtered by its schema when it sent one.

use std::{collections::HashMap, sync::Arc};

use flotilla_model::{self as model, select_endpoints};
use flotilla_proto::registry::v1 as pb;
use flotilla_store::RegistryStore;
use tokio::sync::watch;
use tonic::Status;

use crate::{convert, error::RegistryError, gate, metrics::WatcherGuard};

/// What a WatchEndpoints stream follows.
pub(crate) struct EndpointStream {
    /// Counts this stream in the watchers gauge while it lives.
    pub counted: WatcherGuard,
    pub service: model::ServiceName,
    pub requirement: model::VersionReq,
    pub snapshots: watch::Receiver<Arc<model::EndpointSnapshot>>,
    pub shutdown: watch::Receiver<bool>,
    pub caller: Option<CallerFilter>,
}

impl EndpointStream {
    /// The endpoint sets: the current one, then one each time what this watcher sees changes;
    /// UNAVAILABLE when the registry shuts down.
    pub fn into_stream(
        self,
    ) -> impl futures::Stream<Item = Result<pb::EndpointSet, Status>> + Send + 'static {
        let state = WatchState {
            _counted: self.counted,
            service: self.service,
            requirement: self.requirement,
            snapshots: self.snapshots,
            shutdown: self.shutdown,
            last_sent: None,
            revision: 0,
            done: false,
            caller: self.caller,
        };
        futures::stream::unfold(state, WatchState::next)
    }
}

/// One watcher's stream: it wakes on every new snapshot of its service and sends an endpoint
/// set only when what this watcher sees has changed.
struct WatchState {
    _counted: WatcherGuard,
    service: model::ServiceName,
    requirement: model::VersionReq,
    snapshots: watch::Receiver<Arc<model::EndpointSnapshot>>,
    shutdown: watch::Receiver<bool>,
    last_sent: Option<pb::EndpointSet>,
    revision: u64,
    done: bool,
    caller: Option<CallerFilter>,
}

/// A watcher's schema, and which versions can serve it. Published schemas never change, so each
/// version is judged once per watcher.
pub(crate) struct CallerFilter {
    schema: prost_types::FileDescriptorSet,
    store: Arc<dyn RegistryStore>,
    verdicts: HashMap<model::Version, bool>,
}

impl CallerFilter {
    pub fn new(schema: prost_types::FileDescriptorSet, store: Arc<dyn RegistryStore>) -> Self {
        Self {
            schema,
            store,
            verdicts: HashMap::new(),
        }
    }

    /// `snapshot` without the versions the caller cannot talk to. A version whose schema cannot
    /// be read now is left out and judged again on the next change.
    async fn filter(
        &mut self,
        snapshot: &model::EndpointSnapshot,
        requirement: &model::VersionReq,
    ) -> model::EndpointSnapshot {
        let mut filtered = snapshot.clone();
        let mut keep = Vec::new();
        for (version, state) in &snapshot.versions {
            if !requirement.matches(version) || !state.is_resolvable() {
                continue;
            }
            let verdict = match self.verdicts.get(version) {
                Some(verdict) => Some(*verdict),
                None => match self.store.get_version(&snapshot.service, version).await {
                    Ok(record) => {
                        let ok = gate::caller_incompatibility(&self.schema, &record).is_none();
                        self.verdicts.insert(version.clone(), ok);
                        Some(ok)
                    }
                    Err(error) => {
                        tracing::warn!(%version, %error, "cannot read a schema to judge a watcher");
                        None
                    }
                },
            };
            if verdict == Some(true) {
                keep.push(version.clone());
            }
        }
        filtered.versions.retain(|(v, _)| keep.contains(v));
        filtered
    }
}

impl WatchState {
    async fn next(mut self) -> Option<(Result<pb::EndpointSet, Status>, Self)> {
        if self.done {
            return None;
        }
        loop {
            if self.last_sent.is_some() {
                let stopping = tokio::select! {
                    changed = self.snapshots.changed() => {
                        if changed.is_err() {
                            return None;
                        }
                        false
                    }
                    _ = crate::stop::stopped(&mut self.shutdown) => true,
                };
                if stopping {
                    self.done = true;
                    return Some((Err(RegistryError::ShuttingDown.into()), self));
                }
            }
            if *self.shutdown.borrow() {
                return None;
            }
            let mut snapshot = self.snapshots.borrow_and_update().clone();
            if let Some(caller) = &mut self.caller {
                snapshot = Arc::new(caller.filter(&snapshot, &self.requirement).await);
            }
            let selected = select_endpoints(&snapshot, &self.requirement);
            let mut set = convert::endpoint_set(&self.service, &selected, 0);
            let unchanged = self.last_sent.as_ref().is_some_and(|last| {
                last.endpoints == set.endpoints && last.route_applied == set.route_applied
            });
            if unchanged {
                continue;
            }
            self.revision += 1;
            set.revision = self.revision;
            self.last_sent = Some(set.clone());
            return Some((Ok(set), self));
        }
    }
}
