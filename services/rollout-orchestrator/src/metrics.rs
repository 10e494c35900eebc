//! The orchestrator's own metrics, served at `/metrics` on its gRPC port beside its call metrics:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | [`ROLLOUTS`] | gauge | `state`: rollouts in the store in each state |
//! | [`STEP_SECONDS`] | histogram ([`STEP_BUCKETS`]) | `step`: how long each completed plan step took, by kind |
//! | [`ABORTS`] | counter | `gate`: rollouts this orchestrator ended ABORTED, by the gate that stopped them |
//! | [`WEBHOOK_DELIVERIES`] | counter | `webhook`, `outcome`: `delivered`, `failed` (gave up), `dropped` (queue full) |
//! | [`WEBHOOK_FAILED_ATTEMPTS`] | counter | `webhook`: attempts that failed, whether retried or not |
//!
//! `webhook` is the URL without its query string. [`ROLLOUTS`] counts the whole store, so every
//! replica sharing it reports the same numbers: aggregate it across replicas with `max`, not
//! `sum`.
//!
//! Step durations and aborts are counted by the orchestrator whose write recorded them, once the
//! write committed: a write that lost a race to an operator's command counts nothing.

use std::{sync::Arc, time::Duration};

use flotilla_model::{Gate, PlanStep};
use flotilla_store::RolloutStore;
use flotilla_telemetry::snapshot_gauges::{SnapshotGauges, refresh_on_change};
use prometheus_client::{
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};
use tokio::sync::watch;

pub const ROLLOUTS: &str = "flotilla_orchestrator_rollouts";
pub const STEP_SECONDS: &str = "flotilla_orchestrator_step_duration_seconds";
/// Exposed with prometheus-client's `_total` suffix.
pub const ABORTS: &str = "flotilla_orchestrator_aborts";
/// Exposed with prometheus-client's `_total` suffix.
pub const WEBHOOK_DELIVERIES: &str = "flotilla_orchestrator_webhook_deliveries";
/// Exposed with prometheus-client's `_total` suffix.
pub const WEBHOOK_FAILED_ATTEMPTS: &str = "flotilla_orchestrator_webhook_failed_attempts";
/// Steps range from an instant weight change to a long analysis or a pause for an operator.
pub const STEP_BUCKETS: [f64; 12] = [
    0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];
/// The longest the rollouts gauge goes unread.
const ROLLOUTS_INTERVAL: Duration = Duration::from_secs(30);

type Labels = Vec<(&'static str, String)>;

/// What a webhook delivery came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Given up after its retries, or refused for good by the receiver.
    Failed,
    /// Never attempted: the webhook's queue was full.
    Dropped,
}

impl DeliveryOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }
}

/// The orchestrator's metrics; cloning shares them.
#[derive(Debug, Clone)]
pub struct OrchestratorMetrics {
    rollouts: SnapshotGauges,
    steps: Family<Labels, Histogram, fn() -> Histogram>,
    aborts: Family<Labels, Counter>,
    deliveries: Family<Labels, Counter>,
    failed_attempts: Family<Labels, Counter>,
}

fn step_histogram() -> Histogram {
    Histogram::new(STEP_BUCKETS)
}

impl OrchestratorMetrics {
    /// Registers the metrics in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let rollouts =
            SnapshotGauges::register(registry, ROLLOUTS, "Rollouts by state", &["state"]);
        let steps = Family::new_with_constructor(step_histogram as fn() -> Histogram);
        registry.register(
            STEP_SECONDS,
            "Seconds each completed plan step took, by kind of step",
            steps.clone(),
        );
        let aborts = Family::default();
        registry.register(
            ABORTS,
            "Rollouts ended ABORTED, by the gate that stopped them",
            aborts.clone(),
        );
        let deliveries = Family::default();
        registry.register(
            WEBHOOK_DELIVERIES,
            "Rollout events sent to webhooks, by outcome",
            deliveries.clone(),
        );
        let failed_attempts = Family::default();
        registry.register(
            WEBHOOK_FAILED_ATTEMPTS,
            "Webhook delivery attempts that failed and were retried or given up",
            failed_attempts.clone(),
        );
        Self {
            rollouts,
            steps,
            aborts,
            deliveries,
            failed_attempts,
        }
    }

    /// Metrics registered nowhere, for code run without a server.
    pub fn unregistered() -> Self {
        Self::register(&mut Registry::default())
    }

    pub fn step_done(&self, step: PlanStep, took: Duration) {
        self.steps
            .get_or_create(&vec![("step", step_kind(step).to_owned())])
            .observe(took.as_secs_f64());
    }

    pub fn aborted(&self, gate: Gate) {
        self.aborts
            .get_or_create(&vec![("gate", gate.as_str().to_owned())])
            .inc();
    }

    pub fn delivery(&self, webhook: &str, outcome: DeliveryOutcome) {
        self.deliveries
            .get_or_create(&vec![
                ("webhook", webhook.to_owned()),
                ("outcome", outcome.as_str().to_owned()),
            ])
            .inc();
    }

    pub fn failed_attempt(&self, webhook: &str) {
        self.failed_attempts
            .get_or_create(&vec![("webhook", webhook.to_owned())])
            .inc();
    }

    /// Counts the store's rollouts by state now, after every change it announces and every
    /// 30 s, until `stop` turns true.
    pub async fn follow_rollouts(self, store: Arc<dyn RolloutStore>, stop: watch::Receiver<bool>) {
        let changes = store.subscribe_rollouts();
        refresh_on_change(changes, ROLLOUTS_INTERVAL, stop, || async {
            match store.count_rollouts().await {
                Ok(counts) => self.rollouts.replace(counts.into_iter().map(|(state, n)| {
                    (
                        vec![state.as_str().to_owned()],
                        i64::try_from(n).unwrap_or(i64::MAX),
                    )
                })),
                Err(error) => tracing::warn!(%error, "counting rollouts for metrics failed"),
            }
        })
        .await;
    }
}

/// A step's kind, as the `step` label has it.
pub fn step_kind(step: PlanStep) -> &'static str {
    match step {
        PlanStep::ScaleNew(_) => "scale_new",
        PlanStep::ScaleStable(_) => "scale_stable",
        PlanStep::SetWeight(_) => "set_weight",
        PlanStep::WeightByInstances => "weight_by_instances",
        PlanStep::Pause { .. } => "pause",
        PlanStep::Analysis { .. } => "analysis",
    }
}
