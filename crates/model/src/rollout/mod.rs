//! Rollouts as the orchestrator persists them: what was asked for, the plan it expanded into,
//! where it is, and why it stopped.
//!
//! A rollout is stored whole after every transition (as a serde document beside a few indexed
//! columns), so these types are the storage format: a field added later needs `#[serde(default)]`.

use std::fmt;

use semver::Version;
use serde::{Deserialize, Serialize};

use crate::{
    ServiceName, Timestamp,
    validate::{InvalidField, quote},
};

mod events;
mod transitions;

pub use events::{EventKind, NewRolloutEvent, Revision, RolloutEvent};
pub use transitions::TransitionError;

/// A rollout's id: a lowercase UUID.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RolloutId(String);

impl RolloutId {
    pub fn parse(field: &str, text: &str) -> Result<Self, InvalidField> {
        if text.is_empty() {
            return Err(InvalidField::new(field, "is required"));
        }
        if !crate::names::is_lowercase_uuid(text) {
            return Err(InvalidField::new(
                field,
                format!("{} is not a rollout id (a lowercase UUID)", quote(text)),
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// For ids the orchestrator generates or reads back from storage.
    pub fn from_trusted(text: String) -> Self {
        Self(text)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RolloutId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How a rollout moves traffic and instances, as requested.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Rolling {
        max_surge: u32,
        max_unavailable: u32,
    },
    Canary {
        steps: Vec<CanaryStep>,
    },
    BlueGreen {
        auto_promote_after_ms: Option<u64>,
        rollback_window_ms: u64,
    },
    /// Everything at once with no analysis: a first deployment, or the emergency path of a
    /// rollback within its window.
    Immediate,
}

/// One step of a canary, as requested.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CanaryStep {
    SetWeight(u32),
    Pause { duration_ms: Option<u64> },
    Analysis { intervals: u32 },
}

/// One step of a rollout's plan: what the strategy expanded into. Each is idempotent, so a
/// restarted orchestrator can carry out the current step again from the start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanStep {
    /// Run this many instances of the new version, each SERVING.
    ScaleNew(u32),
    /// Run this many instances of the stable version.
    ScaleStable(u32),
    /// Give the new version this percentage of traffic.
    SetWeight(u32),
    /// Split traffic by the serving instances of each version.
    WeightByInstances,
    /// Wait, for a duration or until promoted.
    Pause { duration_ms: Option<u64> },
    /// Wait for this many passing analysis intervals in a row.
    Analysis { intervals: u32 },
}

impl fmt::Display for PlanStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ScaleNew(n) => write!(f, "run {n} new instance{}", plural(*n)),
            Self::ScaleStable(n) => write!(f, "run {n} stable instance{}", plural(*n)),
            Self::SetWeight(w) => write!(f, "weight {w}% to the new version"),
            Self::WeightByInstances => f.write_str("weights by serving instances"),
            Self::Pause { duration_ms: None } => f.write_str("pause until promoted"),
            Self::Pause {
                duration_ms: Some(ms),
            } => write!(f, "pause {}", Millis(*ms)),
            Self::Analysis { intervals } => {
                write!(
                    f,
                    "analysis: {intervals} passing interval{}",
                    plural(*intervals)
                )
            }
        }
    }
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// A duration in milliseconds, printed the way people say it ("1.5s", "250ms", "2m").
#[derive(Debug, Clone, Copy)]
pub struct Millis(pub u64);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        if ms < 1000 {
            write!(f, "{ms}ms")
        } else if ms < 60_000 || !ms.is_multiple_of(1000) {
            write!(f, "{}s", ms as f64 / 1000.0)
        } else if ms.is_multiple_of(60_000) {
            write!(f, "{}m", ms / 60_000)
        } else {
            write!(f, "{}s", ms / 1000)
        }
    }
}

/// How the new version is judged against the stable one. See `flotilla.rollout.v1.Analysis`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AnalysisSpec {
    pub interval_ms: u64,
    pub max_error_ratio_increase: f64,
    pub max_p99_ratio: f64,
    pub p99_floor_ms: f64,
    pub min_requests: u64,
    pub failure_limit: u32,
    pub inconclusive_limit: u32,
}

impl Default for AnalysisSpec {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            max_error_ratio_increase: 0.01,
            max_p99_ratio: 1.5,
            p99_floor_ms: 25.0,
            min_requests: 20,
            failure_limit: 0,
            inconclusive_limit: 5,
        }
    }
}

/// A rollout's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolloutState {
    Progressing,
    Paused,
    Aborting,
    Aborted,
    Succeeded,
}

impl RolloutState {
    /// Still in progress: the orchestrator holding the service's lease acts on it.
    pub fn is_active(self) -> bool {
        matches!(self, Self::Progressing | Self::Paused | Self::Aborting)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Progressing => "PROGRESSING",
            Self::Paused => "PAUSED",
            Self::Aborting => "ABORTING",
            Self::Aborted => "ABORTED",
            Self::Succeeded => "SUCCEEDED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Progressing,
            Self::Paused,
            Self::Aborting,
            Self::Aborted,
            Self::Succeeded,
        ]
        .into_iter()
        .find(|s| s.as_str() == text)
    }
}

impl fmt::Display for RolloutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rollout is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Gate {
    Lifecycle,
    Compatibility,
    Consumer,
    Health,
    Analysis,
    ProgressDeadline,
    Platform,
    Operator,
}

impl Gate {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lifecycle => "LIFECYCLE",
            Self::Compatibility => "COMPATIBILITY",
            Self::Consumer => "CONSUMER",
            Self::Health => "HEALTH",
            Self::Analysis => "ANALYSIS",
            Self::ProgressDeadline => "PROGRESS_DEADLINE",
            Self::Platform => "PLATFORM",
            Self::Operator => "OPERATOR",
        }
    }
}

impl fmt::Display for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One measured figure and the limit it was held to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub version: String,
    pub value: f64,
    /// 0 when no limit applies (figures of the stable version).
    pub threshold: f64,
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}[{}]={}", self.name, self.version, Number(self.value))?;
        if self.threshold != 0.0 {
            write!(f, " (limit {})", Number(self.threshold))?;
        }
        Ok(())
    }
}

/// A figure's number: at most four decimals, without trailing zeros (`119`, `0.2`, `0.0147`).
struct Number(f64);

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = format!("{:.4}", self.0);
        let text = if text.contains('.') {
            text.trim_end_matches('0').trim_end_matches('.')
        } else {
            &text
        };
        f.write_str(text)
    }
}

/// Why a rollout halted or ended early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Halt {
    pub gate: Gate,
    pub message: String,
    pub figures: Vec<Figure>,
    /// Where the figures came from.
    pub query: String,
    pub time: Timestamp,
}

/// Which side of a rollout an instance is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    New,
    Stable,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::New => "new",
            Self::Stable => "stable",
        }
    }
}

/// An instance's grpc.health.v1 status as the orchestrator last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// Started; no answer yet.
    Starting,
    Serving,
    NotServing,
    /// The health stream failed or the status is unknown.
    Unknown,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "STARTING",
            Self::Serving => "SERVING",
            Self::NotServing => "NOT_SERVING",
            Self::Unknown => "UNKNOWN",
        }
    }
}

/// An instance a rollout manages.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceView {
    /// The platform's handle (a process id, a container id).
    pub handle: String,
    pub version: Version,
    pub address: String,
    pub role: Role,
    pub health: Health,
}

/// An analysis verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Verdict {
    Passed,
    Failed,
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::Inconclusive => "INCONCLUSIVE",
        }
    }
}

/// One analysis measurement, with the running counts that decide when the rollout stops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisView {
    pub verdict: Verdict,
    pub figures: Vec<Figure>,
    pub query: String,
    pub time: Timestamp,
    pub failures: u32,
    pub inconclusive_in_a_row: u32,
    /// Passing intervals in a row, for analysis steps.
    #[serde(default)]
    pub passes_in_a_row: u32,
}

/// An operator's Promote, waiting for the orchestrator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    /// The step it was asked at: a promotion ends that step's pause only.
    pub step_index: u32,
    /// Skip every remaining step and analysis.
    pub full: bool,
}

/// A rollout: the request, the plan, and where it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: RolloutId,
    pub service: ServiceName,
    /// None for a service's first deployment.
    pub from_version: Option<Version>,
    pub to_version: Version,
    pub strategy: Strategy,
    pub replicas: u32,
    /// Instances of the stable version when it started: what an abort restores.
    #[serde(default)]
    pub stable_replicas: u32,
    pub analysis: AnalysisSpec,
    pub health_deadline_ms: u64,
    pub progress_deadline_ms: u64,
    /// The emergency path: no analysis at all.
    pub skip_analysis: bool,
    pub plan: Vec<PlanStep>,
    pub state: RolloutState,
    pub step_index: u32,
    /// When the current step began (reset when it is begun again after a restart).
    pub step_started: Timestamp,
    /// When the current pause step ends by itself.
    pub pause_until: Option<Timestamp>,
    pub promotion: Option<Promotion>,
    pub halt: Option<Halt>,
    pub instances: Vec<InstanceView>,
    /// The split this rollout last set, in percent.
    pub weights: Vec<(Version, u32)>,
    pub last_analysis: Option<AnalysisView>,
    /// The service's revision this rollout became; 0 until it succeeds.
    pub revision: u64,
    pub rollback_to_revision: Option<u64>,
    /// The orchestrator acting on it.
    pub owner: Option<String>,
    pub status_message: String,
    pub created: Timestamp,
    pub updated: Timestamp,
    /// Bumped by the store on every write; a write names the generation it read, so two writers
    /// never overwrite each other unseen.
    pub generation: u64,
    /// The W3C `traceparent` of the call that started it: the spans of its steps, whichever
    /// orchestrator runs them, are children of that call's span, so one rollout is one trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_parent: Option<String>,
}

impl Rollout {
    /// The step being carried out; None once every step is done.
    pub fn current_step(&self) -> Option<PlanStep> {
        self.plan.get(self.step_index as usize).copied()
    }

    /// The percentage of traffic the new version has at the current step: the last weight step
    /// at or before it.
    pub fn planned_weight(&self) -> u32 {
        self.plan[..(self.step_index as usize).min(self.plan.len())]
            .iter()
            .rev()
            .find_map(|step| match step {
                PlanStep::SetWeight(w) => Some(*w),
                _ => None,
            })
            .unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rollout_ids_are_lowercase_uuids() {
        assert!(RolloutId::parse("id", "0f8fad5b-d9cb-469f-a165-70867728950e").is_ok());
        for bad in ["", "nope", "0F8FAD5B-D9CB-469F-A165-70867728950E"] {
            assert_eq!(RolloutId::parse("id", bad).unwrap_err().field, "id");
        }
    }

    #[test]
    fn plan_steps_describe_themselves() {
        assert_eq!(
            PlanStep::SetWeight(10).to_string(),
            "weight 10% to the new version"
        );
        assert_eq!(
            PlanStep::Pause {
                duration_ms: Some(1500)
            }
            .to_string(),
            "pause 1.5s"
        );
        assert_eq!(
            PlanStep::Pause {
                duration_ms: Some(120_000)
            }
            .to_string(),
            "pause 2m"
        );
        assert_eq!(PlanStep::ScaleNew(1).to_string(), "run 1 new instance");
    }

    #[test]
    fn figures_print_without_trailing_zeros() {
        let figure = Figure {
            name: "error_ratio".into(),
            version: "1.2.0".into(),
            value: 0.2,
            threshold: 0.0147,
        };
        assert_eq!(figure.to_string(), "error_ratio[1.2.0]=0.2 (limit 0.0147)");
        let count = Figure {
            name: "requests".into(),
            version: "1.2.0".into(),
            value: 119.0,
            threshold: 0.0,
        };
        assert_eq!(count.to_string(), "requests[1.2.0]=119");
    }

    #[test]
    fn states_round_trip_through_their_names() {
        for state in [
            RolloutState::Progressing,
            RolloutState::Paused,
            RolloutState::Aborting,
            RolloutState::Aborted,
            RolloutState::Succeeded,
        ] {
            assert_eq!(RolloutState::parse(state.as_str()), Some(state));
        }
        assert!(RolloutState::Paused.is_active());
        assert!(!RolloutState::Aborted.is_active());
    }
}
