//! What happens to a rollout, as recorded: events, and the revisions a rollout leaves.

use semver::Version;
use serde::{Deserialize, Serialize};

use super::{Halt, RolloutId};
use crate::{ServiceName, Timestamp};

/// What kind of thing happened to a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EventKind {
    Started,
    StepStarted,
    StepCompleted,
    InstanceStarted,
    InstanceReady,
    InstanceStopped,
    WeightsSet,
    Analysis,
    Paused,
    Resumed,
    Promoted,
    Halted,
    AbortRequested,
    Aborted,
    Succeeded,
    OwnerChanged,
}

impl EventKind {
    /// Every kind, in the order a rollout usually meets them.
    pub const ALL: [Self; 16] = [
        Self::Started,
        Self::StepStarted,
        Self::StepCompleted,
        Self::InstanceStarted,
        Self::InstanceReady,
        Self::InstanceStopped,
        Self::WeightsSet,
        Self::Analysis,
        Self::Paused,
        Self::Resumed,
        Self::Promoted,
        Self::Halted,
        Self::AbortRequested,
        Self::Aborted,
        Self::Succeeded,
        Self::OwnerChanged,
    ];

    /// The kind a name (as [`EventKind::as_str`] gives it) stands for.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "STARTED",
            Self::StepStarted => "STEP_STARTED",
            Self::StepCompleted => "STEP_COMPLETED",
            Self::InstanceStarted => "INSTANCE_STARTED",
            Self::InstanceReady => "INSTANCE_READY",
            Self::InstanceStopped => "INSTANCE_STOPPED",
            Self::WeightsSet => "WEIGHTS_SET",
            Self::Analysis => "ANALYSIS",
            Self::Paused => "PAUSED",
            Self::Resumed => "RESUMED",
            Self::Promoted => "PROMOTED",
            Self::Halted => "HALTED",
            Self::AbortRequested => "ABORT_REQUESTED",
            Self::Aborted => "ABORTED",
            Self::Succeeded => "SUCCEEDED",
            Self::OwnerChanged => "OWNER_CHANGED",
        }
    }
}

/// An event to append; the store gives it its sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRolloutEvent {
    pub time: Timestamp,
    pub kind: EventKind,
    pub message: String,
    pub halt: Option<Halt>,
    pub step_index: u32,
}

/// An event as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutEvent {
    /// From 1, per rollout.
    pub sequence: u64,
    pub time: Timestamp,
    pub kind: EventKind,
    pub message: String,
    pub halt: Option<Halt>,
    pub step_index: u32,
}

/// A version a rollout brought to full traffic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revision {
    pub service: ServiceName,
    /// From 1, per service.
    pub number: u64,
    pub version: Version,
    pub rollout_id: RolloutId,
    pub time: Timestamp,
    pub replaced: Option<Timestamp>,
}
