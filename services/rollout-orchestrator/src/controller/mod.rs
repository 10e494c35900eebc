//! Drives one rollout, step by step, while this orchestrator holds the service's lease.
//!
//! The controller is level-triggered: each tick it reads where the rollout is (the stored record,
//! the platform's instances, the registry's registrations, the health board) and does what the
//! current step still needs. Every step is idempotent, so after a crash the successor simply runs
//! the current step again: instances that were started are found, not started twice; a pause
//! keeps its stored deadline. Every write is fenced by the lease and compare-and-set on the
//! rollout's generation, so an operator's command (written by any replica) is never lost.
//!
//! This module is the loop: the lease, the tick, the save. What a tick does is in the others:
//! [`steps`] (which step runs, and the pause and analysis steps), [`scaling`] (instances),
//! [`traffic`] (weights), [`gates`] (health and analysis), [`abort`], and [`spans`] (each step
//! one span of the rollout's trace). The rules of each move are the model's
//! ([`Rollout`]'s transitions); the controller carries them out and stores what they return.

mod abort;
mod error;
mod events;
mod gates;
mod scaling;
mod spans;
mod steps;
mod traffic;

#[cfg(test)]
mod tests;

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use flotilla_model::{
    Artifact, Gate, NewRolloutEvent, PlanStep, Rollout, RolloutState, Timestamp, Version,
};
use flotilla_store::{Fence, RolloutChange, StoreError};
use tokio::{sync::watch, time::Instant};
use tracing::Instrument;

pub use error::{ControllerError, TickError};
use events::platform_halt;

use crate::{
    analysis::Analyzer, context::Context, health::HealthBoard, platform::PlatformInstance,
};

/// The longest the controller sleeps without looking again.
const TICK: Duration = Duration::from_millis(200);

/// One rollout's controller; see the module documentation.
pub struct Controller {
    ctx: Context,
    rollout: Rollout,
    health: HealthBoard,
    analyzer: Analyzer,
    artifacts: HashMap<Version, Artifact>,
    /// Events of this tick, stored with its write.
    events: Vec<NewRolloutEvent>,
    lease_renewed: Instant,
    next_analysis: Instant,
    /// Unmanaged stable instances were reported once already.
    reported_unmanaged: bool,
    /// New instances whose readiness is in the events already.
    announced_ready: HashSet<String>,
    /// Instances this controller started and has not stopped, by handle. One that leaves the
    /// platform's list on its own has exited: the health gate fails rather than the step
    /// starting another, which would loop for as long as the release crashes.
    launched: HashMap<String, PlatformInstance>,
    /// Launched instances that exited on their own, seen by the last observation, each with the
    /// platform's report of how it ended when it has one.
    exited: Vec<(PlatformInstance, Option<String>)>,
    /// The span of the step being carried out (or of the abort).
    step_span: Option<(spans::SpanKey, tracing::Span)>,
    /// What the next committed write counts in the metrics; dropped with the write if it loses
    /// a race, since the tick is then redone.
    observations: Vec<Observation>,
}

/// Something the metrics count once the write recording it commits.
#[derive(Debug, Clone, Copy)]
enum Observation {
    StepDone(PlanStep, Duration),
    Aborted(Gate),
}

impl std::fmt::Debug for Controller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Controller")
            .field("rollout", &self.rollout.id)
            .field("state", &self.rollout.state)
            .field("step", &self.rollout.step_index)
            .finish_non_exhaustive()
    }
}

impl Controller {
    /// A controller for `rollout`, whose service's lease the caller has just taken.
    pub fn new(ctx: Context, rollout: Rollout) -> Self {
        let analyzer = Analyzer::new(
            rollout.analysis,
            ctx.analysis_source.clone(),
            rollout.service.clone(),
        );
        Self {
            health: HealthBoard::new(ctx.health.clone()),
            ctx,
            rollout,
            analyzer,
            artifacts: HashMap::new(),
            events: Vec::new(),
            lease_renewed: Instant::now(),
            next_analysis: Instant::now(),
            reported_unmanaged: false,
            announced_ready: HashSet::new(),
            launched: HashMap::new(),
            exited: Vec::new(),
            step_span: None,
            observations: Vec::new(),
        }
    }

    /// Runs until the rollout ends, the lease is lost, or `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), ControllerError> {
        let mut changes = self.ctx.store.subscribe_rollouts();
        let health_changed = self.health.changed();
        // Before this controller names itself the owner: the webhooks start where it takes over.
        self.ctx.alerts.carry(&self.rollout).await;
        let ended = self
            .carry_out(&mut changes, &health_changed, &mut stop)
            .await;
        let _ = self
            .ctx
            .store
            .release_lease(&self.rollout.service, &self.ctx.holder)
            .await;
        if self.rollout.state.is_active() {
            self.ctx.alerts.release(&self.rollout.id);
        } else {
            self.ctx.alerts.finish(&self.rollout.id);
            tracing::info!(rollout = %self.rollout.id, state = %self.rollout.state, "rollout ended");
        }
        ended
    }

    async fn carry_out(
        &mut self,
        changes: &mut tokio::sync::broadcast::Receiver<RolloutChange>,
        health_changed: &tokio::sync::Notify,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ControllerError> {
        let resumed = self.rollout.owner.as_deref() != Some(self.ctx.holder.as_str())
            && self.rollout.generation > 1;
        self.rollout.owner = Some(self.ctx.holder.clone());
        let message = if resumed {
            format!(
                "{} took over at step {} of {}",
                self.ctx.holder,
                self.rollout.step_index + 1,
                self.rollout.plan.len()
            )
        } else {
            format!("{} is carrying it out", self.ctx.holder)
        };
        self.event(flotilla_model::EventKind::OwnerChanged, message, None);
        self.save_or_reload().await?;

        while self.rollout.state.is_active() {
            self.renew_lease().await?;
            let span = self.step_span();
            let outcome = async {
                match self.rollout.state {
                    RolloutState::Aborting => self.abort().await,
                    RolloutState::Progressing => self.progress().await,
                    RolloutState::Paused => self.watch_while_paused().await,
                    RolloutState::Aborted | RolloutState::Succeeded => Ok(()),
                }
            }
            .instrument(span)
            .await;
            if let Err(error) = outcome {
                tracing::warn!(rollout = %self.rollout.id, %error, "tick failed; trying again");
            }
            self.save_or_reload().await?;
            if !self.rollout.state.is_active() {
                break;
            }
            let wait = self.wait_time();
            tokio::select! {
                () = crate::stop::stopped(stop) => return Ok(()),
                change = changes.recv() => match change {
                    Ok(RolloutChange::Rollout(id)) if id != self.rollout.id => {}
                    _ => self.reload().await?,
                },
                () = health_changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        Ok(())
    }

    /// Until the next analysis, the end of a timed pause, or a tick, whichever comes first.
    fn wait_time(&self) -> Duration {
        let until_analysis = self.next_analysis.saturating_duration_since(Instant::now());
        let until_pause = self
            .rollout
            .pause_until
            .map(|until| {
                Duration::from_millis(
                    until
                        .millis()
                        .saturating_sub(Timestamp::now().millis())
                        .max(0) as u64,
                )
            })
            .unwrap_or(TICK);
        TICK.min(until_analysis).min(until_pause)
    }

    /// Renews the lease every third of its term. In between, the holder is read back: another
    /// orchestrator whose clock runs ahead may already see it expired and take it, and this
    /// one must then stop before acting on the platform or the registry, not only at its next
    /// (fenced) write.
    async fn renew_lease(&mut self) -> Result<(), ControllerError> {
        let lost = || ControllerError::LeaseLost(self.rollout.service.to_string());
        if self.lease_renewed.elapsed() < self.ctx.lease_ttl / 3 {
            let holder = self
                .ctx
                .store
                .lease_holder(&self.rollout.service, Timestamp::now())
                .await?;
            return match holder {
                Some(holder) if holder == self.ctx.holder => Ok(()),
                _ => Err(lost()),
            };
        }
        let held = self
            .ctx
            .store
            .acquire_lease(
                &self.rollout.service,
                &self.ctx.holder,
                self.ctx.lease_ttl.as_millis() as u64,
                Timestamp::now(),
            )
            .await?;
        if !held {
            return Err(lost());
        }
        self.lease_renewed = Instant::now();
        Ok(())
    }

    /// Writes the rollout if anything changed. A concurrent write (an operator's command) makes
    /// this one void: the record is read again and the next tick redoes the work on top of it.
    async fn save_or_reload(&mut self) -> Result<(), ControllerError> {
        let stored = self.ctx.store.get_rollout(&self.rollout.id).await?;
        let unchanged = self.events.is_empty() && {
            let mut mine = self.rollout.clone();
            mine.updated = stored.updated;
            mine == stored
        };
        if unchanged {
            return Ok(());
        }
        let fence = Fence {
            holder: &self.ctx.holder,
        };
        match self
            .ctx
            .store
            .update_rollout(&self.rollout, &self.events, Some(fence), Timestamp::now())
            .await
        {
            Ok(stored) => {
                self.rollout = stored;
                self.events.clear();
                for observation in self.observations.drain(..) {
                    match observation {
                        Observation::StepDone(step, took) => self.ctx.metrics.step_done(step, took),
                        Observation::Aborted(gate) => self.ctx.metrics.aborted(gate),
                    }
                }
                Ok(())
            }
            Err(StoreError::RolloutConflict { .. }) => {
                tracing::info!(rollout = %self.rollout.id, "changed by a command; reading it again");
                self.events.clear();
                self.observations.clear();
                self.reload().await
            }
            Err(StoreError::LeaseLost { service, .. }) => {
                Err(ControllerError::LeaseLost(service.to_string()))
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Takes the stored record, keeping what only this controller knows (its observations).
    async fn reload(&mut self) -> Result<(), ControllerError> {
        let stored = self.ctx.store.get_rollout(&self.rollout.id).await?;
        if stored.generation != self.rollout.generation {
            let observed = (self.rollout.instances.clone(), self.rollout.owner.clone());
            self.rollout = stored;
            self.rollout.instances = observed.0;
            self.rollout.owner = observed.1;
        }
        Ok(())
    }
}
