//! What a plan is: steps (add a service's target, retire one of its old versions, bake between
//! waves), each with the steps it waits for and why; and what a refusal says.

use std::fmt;

use flotilla_model::{ServiceName, Version};

use crate::fleet::VersionId;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    /// Start the service's target version beside what runs (a rollout, by its strategy).
    Add,
    /// Stop one old version of the service.
    Retire,
    /// Wait between waves, for the edges just changed to carry calls.
    Bake,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Add => "ADD",
            Self::Retire => "RETIRE",
            Self::Bake => "BAKE",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of a plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// Unique in the plan: `add-greeter`, `retire-greeter-1.1.0`, `bake-1`.
    pub id: String,
    pub action: Action,
    /// The service and version added or retired; `None` for a bake.
    pub target: Option<VersionId>,
    /// The steps that must have succeeded before this one starts.
    pub depends_on: Vec<String>,
    /// Why it waits for each of them, in words.
    pub reasons: Vec<String>,
    /// Its wave, from 1: steps of one wave may run at the same time.
    pub wave: u32,
}

/// Why one step must wait for another.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Constraint {
    pub before: String,
    pub after: String,
    pub reason: String,
}

/// An old version the plan leaves running beside its service's target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Beside {
    pub version: VersionId,
    pub reason: String,
}

/// A plan: its steps in the order they may start, and the constraints behind the order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub constraints: Vec<Constraint>,
    pub beside: Vec<Beside>,
}

impl Plan {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// The number of waves.
    pub fn waves(&self) -> u32 {
        self.steps.iter().map(|s| s.wave).max().unwrap_or(0)
    }
}

/// Why no plan is possible, and what would make one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no safe order exists: {}", .problems.join("; "))]
pub struct Refusal {
    /// What cannot be satisfied, in words.
    pub problems: Vec<String>,
    /// The constraints of a cycle, when the refusal is one.
    pub cycle: Vec<Constraint>,
    /// Changes that would make a plan possible.
    pub proposals: Vec<String>,
}

pub(crate) fn add_id(service: &ServiceName) -> String {
    format!("add-{service}")
}

pub(crate) fn retire_id(service: &ServiceName, version: &Version) -> String {
    format!("retire-{service}-{version}")
}
