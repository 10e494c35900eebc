//! The rollout's rules: every move from one state to another, what it changes and the events
//! it records. The API's commands (pause, resume, promote, abort) and the controller's moves
//! (a gate halting it, a step done, the abort finished) are all here, so a rule lives in one
//! place whoever applies it; the callers only store what these return.

use super::{
    EventKind, Gate, Halt, NewRolloutEvent, PlanStep, Promotion, Rollout, RolloutId, RolloutState,
};
use crate::Timestamp;

/// Why a command left a rollout as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("rollout {id} already ended {state}; {command} changed nothing")]
    Ended {
        id: RolloutId,
        state: RolloutState,
        command: &'static str,
    },
    #[error("rollout {id} is aborting; {command} changed nothing")]
    Aborting {
        id: RolloutId,
        command: &'static str,
    },
}

/// The events a transition records, in order; empty when it changed nothing.
type Events = Vec<NewRolloutEvent>;

impl Rollout {
    fn record(
        &self,
        now: Timestamp,
        kind: EventKind,
        message: String,
        halt: Option<Halt>,
    ) -> NewRolloutEvent {
        NewRolloutEvent {
            time: now,
            kind,
            message,
            halt,
            step_index: self.step_index,
        }
    }

    /// The refusal of `command` in a state that has no move for it.
    fn refuse(&self, command: &'static str) -> TransitionError {
        match self.state {
            RolloutState::Aborting => TransitionError::Aborting {
                id: self.id.clone(),
                command,
            },
            state => TransitionError::Ended {
                id: self.id.clone(),
                state,
                command,
            },
        }
    }

    /// An operator's Pause: a progressing rollout holds at its step, traffic and instances as
    /// they are. Pausing a paused rollout changes nothing.
    pub fn pause(&mut self, reason: &str, now: Timestamp) -> Result<Events, TransitionError> {
        match self.state {
            RolloutState::Paused => Ok(Vec::new()),
            RolloutState::Progressing => {
                self.state = RolloutState::Paused;
                let why = match reason {
                    "" => "paused by an operator".to_owned(),
                    reason => format!("paused by an operator: {reason}"),
                };
                self.status_message = format!("{why} at step {}", self.step_index + 1);
                Ok(vec![self.record(now, EventKind::Paused, why, None)])
            }
            RolloutState::Aborting | RolloutState::Aborted | RolloutState::Succeeded => {
                Err(self.refuse("pause"))
            }
        }
    }

    /// An operator's Resume of a paused (or halted) rollout. An operator who resumes a halted
    /// rollout has looked at why it halted: the halt and the run of inconclusive intervals go.
    pub fn resume(&mut self, now: Timestamp) -> Result<Events, TransitionError> {
        match self.state {
            RolloutState::Progressing => Ok(Vec::new()),
            RolloutState::Paused => {
                self.state = RolloutState::Progressing;
                self.clear_halt();
                self.status_message = format!("resumed at step {}", self.step_index + 1);
                let message = "resumed by an operator".to_owned();
                Ok(vec![self.record(now, EventKind::Resumed, message, None)])
            }
            RolloutState::Aborting | RolloutState::Aborted | RolloutState::Succeeded => {
                Err(self.refuse("resume"))
            }
        }
    }

    /// An operator's Promote: past the current pause, or with `full` past every remaining pause
    /// and analysis. It overrules a halt, as resuming does.
    pub fn promote(&mut self, full: bool, now: Timestamp) -> Result<Events, TransitionError> {
        match self.state {
            RolloutState::Progressing | RolloutState::Paused => {
                self.promotion = Some(Promotion {
                    step_index: self.step_index,
                    full,
                });
                if full {
                    self.skip_analysis = true;
                }
                self.state = RolloutState::Progressing;
                self.clear_halt();
                let message = if full {
                    "promoted fully: remaining pauses and analysis skipped".to_owned()
                } else {
                    format!("promoted past step {}", self.step_index + 1)
                };
                Ok(vec![self.record(now, EventKind::Promoted, message, None)])
            }
            RolloutState::Aborting | RolloutState::Aborted | RolloutState::Succeeded => {
                Err(self.refuse("promote"))
            }
        }
    }

    /// An operator's Abort: the controller sends traffic back and removes the new instances.
    /// Aborting an aborting rollout changes nothing; an ended one cannot be aborted.
    pub fn abort(&mut self, reason: &str, now: Timestamp) -> Result<Events, TransitionError> {
        match self.state {
            RolloutState::Aborting => Ok(Vec::new()),
            RolloutState::Progressing | RolloutState::Paused => {
                let reason = match reason {
                    "" => "aborted by an operator".to_owned(),
                    reason => format!("aborted by an operator: {reason}"),
                };
                let halt = Halt {
                    gate: Gate::Operator,
                    message: reason.clone(),
                    figures: Vec::new(),
                    query: String::new(),
                    time: now,
                };
                self.state = RolloutState::Aborting;
                self.status_message = format!("aborting: {reason}");
                self.halt = Some(halt.clone());
                Ok(vec![self.record(
                    now,
                    EventKind::AbortRequested,
                    reason,
                    Some(halt),
                )])
            }
            RolloutState::Aborted | RolloutState::Succeeded => Err(self.refuse("abort")),
        }
    }

    fn clear_halt(&mut self) {
        self.halt = None;
        if let Some(analysis) = &mut self.last_analysis {
            analysis.inconclusive_in_a_row = 0;
        }
    }

    /// A gate failed: the rollout aborts, and the halt says why.
    pub fn halt(&mut self, halt: Halt, now: Timestamp) -> Events {
        self.state = RolloutState::Aborting;
        self.status_message = format!("aborting: {}", halt.message);
        let message = format!("{} gate failed: {}", halt.gate, halt.message);
        let event = self.record(now, EventKind::Halted, message, Some(halt.clone()));
        self.halt = Some(halt);
        vec![event]
    }

    /// The analysis cannot judge (too little data): the rollout pauses with the halt, for an
    /// operator to resume or abort. Missing data never passes a rollout.
    pub fn hold(&mut self, halt: Halt, now: Timestamp) -> Events {
        self.state = RolloutState::Paused;
        self.status_message = format!("halted: {}", halt.message);
        let event = self.record(
            now,
            EventKind::Halted,
            halt.message.clone(),
            Some(halt.clone()),
        );
        self.halt = Some(halt);
        vec![event]
    }

    /// The current step is done: the next one begins (a timed pause gets its deadline), or,
    /// after the last, the rollout succeeds.
    pub fn complete_step(&mut self, now: Timestamp) -> Events {
        let Some(done) = self.current_step() else {
            return Vec::new();
        };
        let mut events = vec![self.record(
            now,
            EventKind::StepCompleted,
            format!("step {} done: {done}", self.step_index + 1),
            None,
        )];
        self.step_index += 1;
        self.step_started = now;
        self.pause_until = None;
        if let Some(analysis) = &mut self.last_analysis {
            analysis.passes_in_a_row = 0;
        }
        match self.current_step() {
            Some(step) => {
                if let PlanStep::Pause {
                    duration_ms: Some(ms),
                } = step
                {
                    self.pause_until = Some(now.plus_millis(ms));
                }
                self.status_message = format!("step {}: {step}", self.step_index + 1);
                let message = format!(
                    "step {} of {}: {step}",
                    self.step_index + 1,
                    self.plan.len()
                );
                events.push(self.record(now, EventKind::StepStarted, message, None));
            }
            None => events.extend(self.succeed(now)),
        }
        events
    }

    /// Every step is done: all traffic on the new version.
    pub fn succeed(&mut self, now: Timestamp) -> Events {
        self.state = RolloutState::Succeeded;
        self.promotion = None;
        self.status_message = format!("all traffic on {}@{}", self.service, self.to_version);
        vec![self.record(now, EventKind::Succeeded, self.status_message.clone(), None)]
    }

    /// The abort is carried out: traffic is back on the stable version and the new instances
    /// are gone. The gate that caused it stays in the halt.
    pub fn finish_abort(&mut self, now: Timestamp) -> Events {
        self.state = RolloutState::Aborted;
        self.promotion = None;
        self.pause_until = None;
        let reason = self.halt.as_ref().map_or_else(
            || "aborted".to_owned(),
            |h| format!("{} gate: {}", h.gate, h.message),
        );
        self.status_message = match &self.from_version {
            Some(from) => format!("aborted; all traffic on {from}. {reason}"),
            None => format!("aborted. {reason}"),
        };
        vec![self.record(
            now,
            EventKind::Aborted,
            self.status_message.clone(),
            self.halt.clone(),
        )]
    }

    /// The gate an ended abort is counted under: the halt's, or the operator's.
    pub fn abort_gate(&self) -> Gate {
        self.halt.as_ref().map_or(Gate::Operator, |h| h.gate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AnalysisView, Verdict, fixtures};

    const ALL: [RolloutState; 5] = [
        RolloutState::Progressing,
        RolloutState::Paused,
        RolloutState::Aborting,
        RolloutState::Aborted,
        RolloutState::Succeeded,
    ];

    fn rollout(state: RolloutState) -> Rollout {
        let mut rollout = fixtures::canary_rollout(now());
        rollout.state = state;
        rollout
    }

    fn now() -> Timestamp {
        Timestamp(1_700_000_000_000)
    }

    fn kinds(events: &Events) -> Vec<EventKind> {
        events.iter().map(|e| e.kind).collect()
    }

    fn halt(gate: Gate) -> Halt {
        Halt {
            gate,
            message: "error_ratio[1.2.0]=0.2 (limit 0.01)".into(),
            figures: Vec::new(),
            query: String::new(),
            time: now(),
        }
    }

    #[test]
    fn pause_holds_a_progressing_rollout_and_nothing_else() {
        for state in ALL {
            let mut r = rollout(state);
            let result = r.pause("", now());
            match state {
                RolloutState::Progressing => {
                    assert_eq!(kinds(&result.unwrap()), [EventKind::Paused]);
                    assert_eq!(r.state, RolloutState::Paused);
                    assert_eq!(r.status_message, "paused by an operator at step 1");
                }
                RolloutState::Paused => assert_eq!(result, Ok(vec![])),
                RolloutState::Aborting => {
                    assert!(matches!(result, Err(TransitionError::Aborting { .. })))
                }
                _ => assert!(
                    matches!(result, Err(TransitionError::Ended { .. })),
                    "{state}"
                ),
            }
        }
        let mut r = rollout(RolloutState::Progressing);
        let events = r.pause("checking dashboards", now()).unwrap();
        assert_eq!(
            events[0].message,
            "paused by an operator: checking dashboards"
        );
    }

    #[test]
    fn resume_continues_a_paused_rollout_and_forgets_its_halt() {
        for state in ALL {
            let mut r = rollout(state);
            r.halt = Some(halt(Gate::Analysis));
            r.last_analysis = Some(AnalysisView {
                verdict: Verdict::Inconclusive,
                figures: vec![],
                query: String::new(),
                time: now(),
                failures: 0,
                inconclusive_in_a_row: 4,
                passes_in_a_row: 0,
            });
            let result = r.resume(now());
            match state {
                RolloutState::Paused => {
                    assert_eq!(kinds(&result.unwrap()), [EventKind::Resumed]);
                    assert_eq!(r.state, RolloutState::Progressing);
                    assert_eq!(r.halt, None);
                    assert_eq!(r.last_analysis.unwrap().inconclusive_in_a_row, 0);
                }
                RolloutState::Progressing => assert_eq!(result, Ok(vec![])),
                _ => {
                    assert!(result.is_err(), "{state}");
                    assert!(r.halt.is_some(), "a refused command touches nothing");
                }
            }
        }
    }

    #[test]
    fn promote_records_the_step_it_was_asked_at() {
        for state in ALL {
            let mut r = rollout(state);
            r.step_index = 2;
            let result = r.promote(false, now());
            match state {
                RolloutState::Progressing | RolloutState::Paused => {
                    assert_eq!(kinds(&result.unwrap()), [EventKind::Promoted]);
                    assert_eq!(
                        r.promotion,
                        Some(Promotion {
                            step_index: 2,
                            full: false
                        })
                    );
                    assert_eq!(r.state, RolloutState::Progressing);
                    assert!(!r.skip_analysis);
                }
                _ => assert!(result.is_err(), "{state}"),
            }
        }
        let mut r = rollout(RolloutState::Paused);
        let events = r.promote(true, now()).unwrap();
        assert!(r.skip_analysis, "a full promotion skips analysis");
        assert!(events[0].message.starts_with("promoted fully"));
    }

    #[test]
    fn abort_is_requested_once_and_refused_once_ended() {
        for state in ALL {
            let mut r = rollout(state);
            let result = r.abort("bad dashboards", now());
            match state {
                RolloutState::Progressing | RolloutState::Paused => {
                    let events = result.unwrap();
                    assert_eq!(kinds(&events), [EventKind::AbortRequested]);
                    assert_eq!(r.state, RolloutState::Aborting);
                    let halt = r.halt.as_ref().unwrap();
                    assert_eq!(halt.gate, Gate::Operator);
                    assert_eq!(halt.message, "aborted by an operator: bad dashboards");
                    assert_eq!(events[0].halt.as_ref(), Some(halt));
                }
                RolloutState::Aborting => assert_eq!(result, Ok(vec![])),
                _ => {
                    let error = result.unwrap_err();
                    assert_eq!(
                        error.to_string(),
                        format!(
                            "rollout {} already ended {state}; abort changed nothing",
                            r.id
                        )
                    );
                }
            }
        }
    }

    #[test]
    fn a_failed_gate_aborts_and_missing_data_pauses() {
        let mut r = rollout(RolloutState::Progressing);
        let events = r.halt(halt(Gate::Analysis), now());
        assert_eq!(r.state, RolloutState::Aborting);
        assert_eq!(events[0].kind, EventKind::Halted);
        assert!(events[0].message.starts_with("ANALYSIS gate failed: "));
        assert_eq!(r.abort_gate(), Gate::Analysis);

        let mut r = rollout(RolloutState::Progressing);
        let events = r.hold(halt(Gate::Analysis), now());
        assert_eq!(r.state, RolloutState::Paused);
        assert_eq!(kinds(&events), [EventKind::Halted]);
        assert!(r.status_message.starts_with("halted: "));
    }

    #[test]
    fn completing_steps_walks_the_plan_to_success() {
        let mut r = rollout(RolloutState::Progressing);
        r.plan = vec![
            PlanStep::SetWeight(10),
            PlanStep::Pause {
                duration_ms: Some(1500),
            },
            PlanStep::SetWeight(100),
        ];
        let events = r.complete_step(now());
        assert_eq!(
            kinds(&events),
            [EventKind::StepCompleted, EventKind::StepStarted]
        );
        assert_eq!(r.step_index, 1);
        assert_eq!(
            r.pause_until,
            Some(now().plus_millis(1500)),
            "a timed pause's deadline"
        );
        r.complete_step(now());
        assert_eq!(r.pause_until, None);
        let events = r.complete_step(now());
        assert_eq!(
            kinds(&events),
            [EventKind::StepCompleted, EventKind::Succeeded]
        );
        assert_eq!(r.state, RolloutState::Succeeded);
        assert!(
            r.complete_step(now()).is_empty(),
            "nothing after the last step"
        );
    }

    #[test]
    fn finishing_an_abort_says_where_traffic_is_and_why() {
        let mut r = rollout(RolloutState::Aborting);
        r.halt = Some(halt(Gate::Health));
        let events = r.finish_abort(now());
        assert_eq!(r.state, RolloutState::Aborted);
        assert_eq!(kinds(&events), [EventKind::Aborted]);
        assert!(
            r.status_message
                .starts_with("aborted; all traffic on 1.0.0. HEALTH gate: ")
        );
        let mut first = rollout(RolloutState::Aborting);
        first.from_version = None;
        first.finish_abort(now());
        assert_eq!(first.status_message, "aborted. aborted");
        assert_eq!(first.abort_gate(), Gate::Operator);
    }
}
