//! Which step runs, what a tick while paused does, and the steps that wait: pauses and
//! analysis steps. A step that does not finish reports why; one stuck past the progress
//! deadline aborts the rollout.

use std::time::Duration;

use flotilla_model::{Gate, Halt, Millis, PlanStep, RolloutState, Timestamp};

use super::{Controller, Observation, TickError};

/// What a step reported this tick.
pub(super) enum Progress {
    Done,
    Waiting(String),
}

impl Controller {
    /// A paused rollout still has new instances taking traffic: a failing one is still pulled.
    pub(super) async fn watch_while_paused(&mut self) -> Result<(), TickError> {
        let (new, _) = self.observe().await?;
        if let Some(halt) = self.health_gate(&new) {
            self.halt(halt);
        }
        Ok(())
    }

    /// One tick of a progressing rollout: the gates, then the current step.
    pub(super) async fn progress(&mut self) -> Result<(), TickError> {
        let (new, stable) = self.observe().await?;
        if let Some(halt) = self.health_gate(&new) {
            self.halt(halt);
            return Ok(());
        }
        self.analyze(&new, &stable).await;
        if self.rollout.state != RolloutState::Progressing {
            return Ok(());
        }

        let Some(step) = self.rollout.current_step() else {
            let events = self.rollout.succeed(Timestamp::now());
            self.record(events);
            return Ok(());
        };
        let outcome = match step {
            PlanStep::ScaleNew(n) => self.scale_new(n, &new).await,
            PlanStep::ScaleStable(n) => self.scale_stable(n, &stable).await,
            PlanStep::SetWeight(w) => self.set_weight(w).await,
            PlanStep::WeightByInstances => self.weight_by_instances().await,
            PlanStep::Pause { .. } => Ok(self.pause()),
            PlanStep::Analysis { intervals } => Ok(self.analysis_step(intervals)),
        };
        match outcome {
            Ok(Progress::Done) => self.complete_step(step),
            Ok(Progress::Waiting(why)) => {
                self.rollout.status_message =
                    format!("step {}: {why}", self.rollout.step_index + 1);
                let stuck_for = Timestamp::now().millis() - self.rollout.step_started.millis();
                let waits_on_people =
                    matches!(step, PlanStep::Pause { .. } | PlanStep::Analysis { .. });
                if !waits_on_people && stuck_for > self.rollout.progress_deadline_ms as i64 {
                    self.halt(Halt {
                        gate: Gate::ProgressDeadline,
                        message: format!(
                            "step {} ({step}) made no progress for {}: {why}",
                            self.rollout.step_index + 1,
                            Millis(self.rollout.progress_deadline_ms)
                        ),
                        figures: Vec::new(),
                        query: String::new(),
                        time: Timestamp::now(),
                    });
                }
            }
            Err(halt) => self.halt(halt),
        }
        Ok(())
    }

    /// A gate failed: the model's halt, recorded.
    pub(super) fn halt(&mut self, halt: Halt) {
        let events = self.rollout.halt(halt, Timestamp::now());
        self.record(events);
    }

    /// The step is done: its time counted once the write commits, the next step begun.
    fn complete_step(&mut self, done: PlanStep) {
        let now = Timestamp::now();
        let took = now
            .millis()
            .saturating_sub(self.rollout.step_started.millis());
        self.observations.push(Observation::StepDone(
            done,
            Duration::from_millis(u64::try_from(took).unwrap_or(0)),
        ));
        let events = self.rollout.complete_step(now);
        self.record(events);
    }

    /// A pause ends at its deadline or when promoted past (a full promotion passes them all).
    fn pause(&mut self) -> Progress {
        let index = self.rollout.step_index;
        if let Some(promotion) = self.rollout.promotion
            && (promotion.full || promotion.step_index == index)
        {
            if !promotion.full {
                self.rollout.promotion = None;
            }
            return Progress::Done;
        }
        match self.rollout.pause_until {
            Some(until) if Timestamp::now() >= until => Progress::Done,
            Some(until) => Progress::Waiting(format!("paused until {until}")),
            None => Progress::Waiting("paused until promoted".into()),
        }
    }

    /// An analysis step ends after its count of passing intervals in a row.
    fn analysis_step(&mut self, intervals: u32) -> Progress {
        if self.rollout.skip_analysis || self.rollout.promotion.is_some_and(|p| p.full) {
            return Progress::Done;
        }
        let passes = self
            .rollout
            .last_analysis
            .as_ref()
            .map_or(0, |a| a.passes_in_a_row);
        if passes >= intervals {
            Progress::Done
        } else {
            Progress::Waiting(format!(
                "analysis: {passes} of {intervals} passing intervals"
            ))
        }
    }
}
