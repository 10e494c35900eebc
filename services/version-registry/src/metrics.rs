//! The registry's own metrics, served at `/metrics` beside its call metrics:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | [`VERSIONS`] | gauge | `service`, `state` (RELEASED, DEPRECATED, RETIRED, YANKED) |
//! | [`INSTANCES`] | gauge | `service`, `version`: live (unexpired) instances |
//! | [`WATCHERS`] | gauge | `service`: open WatchEndpoints streams on this replica |
//!
//! Versions and instances come from the store's census, read again after the store announces a
//! change (a burst of changes costs one read) and every [`CENSUS_INTERVAL`] in any case (a lease
//! lapses without an announcement until the reaper marks it). Watchers are counted in this
//! process as streams open and close, so each replica reports its own.

use std::{sync::Arc, time::Duration};

use flotilla_model::{ServiceName, Timestamp};
use flotilla_store::RegistryStore;
use flotilla_telemetry::snapshot_gauges::{SnapshotGauges, refresh_on_change};
use prometheus_client::{
    metrics::{family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::sync::watch;

pub const VERSIONS: &str = "flotilla_registry_versions";
pub const INSTANCES: &str = "flotilla_registry_instances";
pub const WATCHERS: &str = "flotilla_registry_watchers";
/// The longest the census goes unread.
pub const CENSUS_INTERVAL: Duration = Duration::from_secs(10);

type ServiceLabel = [(&'static str, String); 1];

/// The registry's gauges; cloning shares them.
#[derive(Debug, Clone)]
pub struct RegistryMetrics {
    versions: SnapshotGauges,
    instances: SnapshotGauges,
    watchers: Family<ServiceLabel, Gauge>,
}

impl RegistryMetrics {
    /// Registers the gauges in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let versions = SnapshotGauges::register(
            registry,
            VERSIONS,
            "Versions by service and lifecycle state",
            &["service", "state"],
        );
        let instances = SnapshotGauges::register(
            registry,
            INSTANCES,
            "Live instances by service and version",
            &["service", "version"],
        );
        let watchers = Family::<ServiceLabel, Gauge>::default();
        registry.register(
            WATCHERS,
            "Open WatchEndpoints streams on this replica, by service",
            watchers.clone(),
        );
        Self {
            versions,
            instances,
            watchers,
        }
    }

    /// Counts a watcher of `service` until the returned guard is dropped.
    pub fn watching(&self, service: &ServiceName) -> WatcherGuard {
        let gauge = self
            .watchers
            .get_or_create(&[("service", service.to_string())])
            .clone();
        gauge.inc();
        WatcherGuard { gauge }
    }

    /// Reads the census now, after every change the store announces and every
    /// [`CENSUS_INTERVAL`], until `stop` turns true.
    pub async fn follow_census(self, store: Arc<dyn RegistryStore>, stop: watch::Receiver<bool>) {
        let changes = store.subscribe();
        refresh_on_change(changes, CENSUS_INTERVAL, stop, || async {
            match store.census(Timestamp::now()).await {
                Ok(census) => {
                    self.versions.replace(census.versions.into_iter().map(
                        |(service, state, count)| {
                            (
                                vec![service.to_string(), state.as_str().to_owned()],
                                gauge_value(count),
                            )
                        },
                    ));
                    self.instances.replace(census.instances.into_iter().map(
                        |(service, version, count)| {
                            (
                                vec![service.to_string(), version.to_string()],
                                gauge_value(count),
                            )
                        },
                    ));
                }
                Err(error) => tracing::warn!(%error, "reading the census for metrics failed"),
            }
        })
        .await;
    }
}

fn gauge_value(count: u64) -> i64 {
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Counts one open watch stream; see [`RegistryMetrics::watching`].
#[derive(Debug)]
pub struct WatcherGuard {
    gauge: Gauge,
}

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}
