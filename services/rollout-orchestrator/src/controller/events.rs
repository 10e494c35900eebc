//! The events a controller records, and the halts it makes of failed calls.

use flotilla_model::{EventKind, Gate, Halt, NewRolloutEvent, Timestamp};

use super::Controller;

impl Controller {
    /// Adds one event of this controller's own to the tick's.
    pub(super) fn event(&mut self, kind: EventKind, message: String, halt: Option<Halt>) {
        let event = NewRolloutEvent {
            time: Timestamp::now(),
            kind,
            message,
            halt,
            step_index: self.rollout.step_index,
        };
        self.record(vec![event]);
    }

    /// Adds events (a transition's) to the tick's, logging each.
    pub(super) fn record(&mut self, events: Vec<NewRolloutEvent>) {
        for event in &events {
            tracing::info!(rollout = %self.rollout.id, service = %self.rollout.service, kind = event.kind.as_str(), "{}", event.message);
        }
        self.events.extend(events);
    }
}

/// A halt for a platform's (or the registry's) failure to do what a step asked.
pub(super) fn platform_halt(message: String, platform: &str) -> Halt {
    Halt {
        gate: Gate::Platform,
        message,
        figures: Vec::new(),
        query: format!("platform: {platform}"),
        time: Timestamp::now(),
    }
}
