//! What the API, the supervisor and every controller share.

use std::{sync::Arc, time::Duration};

use flotilla_store::RolloutStore;
use tokio::sync::Notify;

use crate::{
    alerts::Alerts, analysis::MetricsSource, health::HealthProbe, metrics::OrchestratorMetrics,
    platform::Platform, registry::Registry,
};

#[derive(Debug, Clone)]
pub struct Context {
    pub store: Arc<dyn RolloutStore>,
    pub registry: Arc<dyn Registry>,
    pub platform: Arc<dyn Platform>,
    /// This orchestrator's name in leases and events.
    pub holder: String,
    pub lease_ttl: Duration,
    /// How long after a revision was replaced a rollback to it takes the emergency path.
    pub rollback_window: Duration,
    /// Where the analysis gate reads its figures.
    pub analysis_source: MetricsSource,
    /// How the health gate follows each new instance.
    pub health: Arc<dyn HealthProbe>,
    /// What this orchestrator exposes at `/metrics`.
    pub metrics: OrchestratorMetrics,
    /// Where rollout events are posted.
    pub alerts: Alerts,
    /// Wakes the supervisor (a rollout was created here).
    pub wake: Arc<Notify>,
}
