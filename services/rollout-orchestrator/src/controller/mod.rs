//! Drives one rollout, step by step, while this orchestrator holds the service's lease.
//!
//! The controller is level-triggered: each tick it reads where the rollout is (the stored record,
//! the platform's instances, the registry's registrations, the health board) and does what the
//! current step still needs. Every step is idempotent, so after a crash the successor simply runs
//! the current step again: instances that were started are found, not started twice; a pause
//! keeps its stored deadline. Every write is fenced by the lease and compare-and-set on the
//! rollout's generation, so an operator's command (written by any replica) is never lost.

use std::{collections::HashMap, time::Duration};

use flotilla_model::{
    Artifact, EventKind, Gate, Halt, Health, InstanceView, Millis, NewRolloutEvent, PlanStep, Role,
    Rollout, RolloutState, Timestamp, Verdict, Version,
};
use flotilla_proto::registry::v1 as pb;
use flotilla_store::{Fence, RolloutChange, StoreError};
use tokio::{sync::watch, time::Instant};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    analysis::Analyzer,
    context::Context,
    health::HealthBoard,
    platform::{InstanceSpec, PlatformInstance},
};

/// The longest the controller sleeps without looking again.
const TICK: Duration = Duration::from_millis(200);

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("lost the lease on service {0}")]
    LeaseLost(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a step reported this tick.
enum Progress {
    Done,
    Waiting(String),
}

pub struct Controller {
    ctx: Context,
    rollout: Rollout,
    health: HealthBoard,
    analyzer: Analyzer,
    artifacts: HashMap<Version, Artifact>,
    events: Vec<NewRolloutEvent>,
    lease_renewed: Instant,
    next_analysis: Instant,
    /// Unmanaged stable instances were reported once already.
    reported_unmanaged: bool,
    /// New instances whose readiness is in the events already.
    announced_ready: std::collections::HashSet<String>,
    /// Instances this controller started and has not stopped, by handle. One that leaves the
    /// platform's list on its own has exited: the health gate fails rather than the step
    /// starting another, which would loop for as long as the release crashes.
    launched: HashMap<String, PlatformInstance>,
    /// Launched instances that exited on their own, seen by the last `observe`, each with the
    /// platform's report of how it ended when it has one.
    exited: Vec<(PlatformInstance, Option<String>)>,
    /// The span of the step being carried out (or of the abort), a child of the call that
    /// started the rollout; ended when the rollout moves on.
    step_span: Option<(SpanKey, tracing::Span)>,
    /// What the next committed write counts in the metrics; dropped with the write if it loses
    /// a race, since the tick is then redone.
    observations: Vec<Observation>,
    /// The sequence number of the last event handed to the webhooks.
    notified_through: u64,
    /// The rollout's generation when its events were last read for the webhooks.
    notified_generation: u64,
}

/// Something the metrics count once the write recording it commits.
#[derive(Debug, Clone, Copy)]
enum Observation {
    StepDone(PlanStep, Duration),
    Aborted(Gate),
}

/// What a step span covers: a plan step, or the abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SpanKey {
    Step(u32),
    Abort,
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
            ctx,
            rollout,
            health: HealthBoard::new(),
            analyzer,
            artifacts: HashMap::new(),
            events: Vec::new(),
            lease_renewed: Instant::now(),
            next_analysis: Instant::now(),
            reported_unmanaged: false,
            announced_ready: Default::default(),
            launched: HashMap::new(),
            exited: Vec::new(),
            step_span: None,
            observations: Vec::new(),
            notified_through: 0,
            notified_generation: 0,
        }
    }

    /// The span this tick's work runs in: that of the current step (or of the abort), opened
    /// the first time the step is worked on and ended when the rollout moves past it.
    fn step_span(&mut self) -> tracing::Span {
        let key = match self.rollout.state {
            RolloutState::Aborting => SpanKey::Abort,
            _ => SpanKey::Step(self.rollout.step_index),
        };
        if let Some((current, span)) = &self.step_span
            && *current == key
        {
            return span.clone();
        }
        let name = match key {
            SpanKey::Abort => format!("rollout {} abort", self.rollout.service),
            SpanKey::Step(index) => format!(
                "rollout {} step {}: {}",
                self.rollout.service,
                index + 1,
                self.rollout
                    .plan
                    .get(index as usize)
                    .map_or_else(String::new, ToString::to_string)
            ),
        };
        let span = tracing::info_span!(
            "rollout.step",
            otel.name = %name,
            rollout = %self.rollout.id,
            service = %self.rollout.service,
            to_version = %self.rollout.to_version,
        );
        if let Some(traceparent) = &self.rollout.trace_parent {
            let _ = span.set_parent(flotilla_telemetry::propagation::context_of_traceparent(
                traceparent,
            ));
        }
        self.step_span = Some((key, span.clone()));
        span
    }

    /// Runs until the rollout ends, the lease is lost, or `stop` turns true.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) -> Result<(), ControllerError> {
        let mut changes = self.ctx.store.subscribe_rollouts();
        let health_changed = self.health.changed();
        let resumed = self.rollout.owner.as_deref() != Some(self.ctx.holder.as_str())
            && self.rollout.generation > 1;
        self.notified_through = self.first_event_to_notify().await?;
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
        self.event(EventKind::OwnerChanged, message, None);
        self.save_or_reload().await?;
        self.notify_new_events().await;

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
            self.notify_new_events().await;
            if !self.rollout.state.is_active() {
                break;
            }
            let wait = self.wait_time();
            tokio::select! {
                () = crate::stop::stopped(&mut stop) => {
                    let _ = self.ctx.store.release_lease(&self.rollout.service, &self.ctx.holder).await;
                    return Ok(());
                }
                change = changes.recv() => match change {
                    Ok(RolloutChange::Rollout(id)) if id != self.rollout.id => {}
                    _ => {
                        self.reload().await?;
                        self.notify_new_events().await;
                    }
                },
                () = health_changed.notified() => {}
                () = tokio::time::sleep(wait) => {}
            }
        }
        let _ = self
            .ctx
            .store
            .release_lease(&self.rollout.service, &self.ctx.holder)
            .await;
        self.ctx.alerts.forget(&self.rollout.id);
        tracing::info!(rollout = %self.rollout.id, state = %self.rollout.state, "rollout ended");
        Ok(())
    }

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

    async fn renew_lease(&mut self) -> Result<(), ControllerError> {
        if self.lease_renewed.elapsed() < self.ctx.lease_ttl / 3 {
            return Ok(());
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
            return Err(ControllerError::LeaseLost(self.rollout.service.to_string()));
        }
        self.lease_renewed = Instant::now();
        Ok(())
    }

    fn event(&mut self, kind: EventKind, message: String, halt: Option<Halt>) {
        tracing::info!(rollout = %self.rollout.id, service = %self.rollout.service, kind = kind.as_str(), "{message}");
        self.events.push(NewRolloutEvent {
            time: Timestamp::now(),
            kind,
            message,
            halt,
            step_index: self.rollout.step_index,
        });
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

    /// Where this controller's webhook notifications start: after what this process already
    /// handed over (a controller restarted after an error); from the first event of a rollout no
    /// orchestrator has carried out yet (started here or elsewhere, perhaps already paused by an
    /// operator); after the last stored event of one taken over from another orchestrator, which
    /// sent its own.
    async fn first_event_to_notify(&self) -> Result<u64, ControllerError> {
        if !self.ctx.alerts.is_enabled() {
            return Ok(0);
        }
        if let Some(sent) = self.ctx.alerts.notified_through(&self.rollout.id) {
            return Ok(sent);
        }
        if self.rollout.owner.is_none() {
            return Ok(0);
        }
        Ok(self
            .ctx
            .store
            .rollout_events(&self.rollout.id, 0)
            .await?
            .last()
            .map_or(0, |event| event.sequence))
    }

    /// Hands the events stored since the last call to the webhooks (which only queues them).
    /// Events are written only with the rollout, so nothing is read while its generation stands.
    async fn notify_new_events(&mut self) {
        if !self.ctx.alerts.is_enabled() || self.notified_generation == self.rollout.generation {
            return;
        }
        let id = self.rollout.id.clone();
        let read = async {
            let events = self
                .ctx
                .store
                .rollout_events(&id, self.notified_through)
                .await?;
            // The rollout as stored with (or after) these events: an operator's command may
            // have been written since this controller's last write.
            let current = self.ctx.store.get_rollout(&id).await?;
            Ok::<_, StoreError>((events, current))
        };
        match read.await {
            Ok((events, current)) => {
                self.notified_generation = self.rollout.generation;
                if let Some(last) = events.last() {
                    self.notified_through = last.sequence;
                    self.ctx.alerts.notify(&current, &events);
                }
            }
            // Tried again after the next write or change.
            Err(error) => {
                tracing::warn!(rollout = %id, %error, "reading events for webhooks failed");
            }
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

    async fn artifact(&mut self, version: &Version) -> Result<Artifact, String> {
        if let Some(artifact) = self.artifacts.get(version) {
            return Ok(artifact.clone());
        }
        let record = self
            .ctx
            .registry
            .get_version(&self.rollout.service, version)
            .await
            .map_err(|status| {
                format!("reading {version} from the registry: {}", status.message())
            })?;
        let artifact = record
            .artifact
            .map(|a| Artifact {
                image: a.image,
                command: a.command,
            })
            .unwrap_or_default();
        self.artifacts.insert(version.clone(), artifact.clone());
        Ok(artifact)
    }

    /// The platform's instances of both sides, the health board following the new ones, and the
    /// rollout's instance view refreshed.
    async fn observe(&mut self) -> Result<(Vec<PlatformInstance>, Vec<PlatformInstance>), String> {
        let all = self
            .ctx
            .platform
            .list(&self.rollout.service)
            .await
            .map_err(|e| e.to_string())?;
        let gone: Vec<String> = self
            .launched
            .keys()
            .filter(|handle| !all.iter().any(|i| &i.handle == *handle))
            .cloned()
            .collect();
        for handle in gone {
            if let Some(instance) = self.launched.remove(&handle) {
                let report = self.ctx.platform.exit_report(&handle).await;
                self.exited.push((instance, report));
            }
        }
        let to = self.rollout.to_version.clone();
        let from = self.rollout.from_version.clone();
        let new: Vec<PlatformInstance> = all.iter().filter(|i| i.version == to).cloned().collect();
        let stable: Vec<PlatformInstance> = all
            .iter()
            .filter(|i| Some(&i.version) == from.as_ref())
            .cloned()
            .collect();
        for instance in &new {
            self.health.track(&instance.address);
        }
        let keep: Vec<&str> = new.iter().map(|i| i.address.as_str()).collect();
        self.health.retain(&keep);
        let mut views: Vec<InstanceView> = new
            .iter()
            .map(|i| InstanceView {
                handle: i.handle.clone(),
                version: i.version.clone(),
                address: i.address.clone(),
                role: Role::New,
                health: self
                    .health
                    .observed(&i.address)
                    .map_or(Health::Unknown, |o| o.health),
            })
            .chain(stable.iter().map(|i| InstanceView {
                handle: i.handle.clone(),
                version: i.version.clone(),
                address: i.address.clone(),
                role: Role::Stable,
                // The stable side is judged by its callers; only the new side is watched.
                health: Health::Serving,
            }))
            .collect();
        views.sort_by(|a, b| (a.role as u8, &a.address).cmp(&(b.role as u8, &b.address)));
        self.rollout.instances = views;
        Ok((new, stable))
    }

    /// The health gate over the new instances: one that served and then stopped serving, or
    /// that is not serving by its deadline, fails the rollout.
    fn health_gate(&self, new: &[PlatformInstance]) -> Option<Halt> {
        if let Some((exited, report)) = self.exited.first() {
            let how = match report {
                Some(report) => format!(": {report}"),
                None => " (the platform's log of it says why)".to_owned(),
            };
            return Some(Halt {
                gate: Gate::Health,
                message: format!(
                    "instance {} of {} at {} exited on its own{how}",
                    exited.handle, exited.version, exited.address
                ),
                figures: Vec::new(),
                query: format!("platform: {}", self.ctx.platform.name()),
                time: Timestamp::now(),
            });
        }
        let deadline = Duration::from_millis(self.rollout.health_deadline_ms);
        for instance in new {
            let Some(observed) = self.health.observed(&instance.address) else {
                continue;
            };
            let failed = match (observed.served, observed.health) {
                (true, Health::NotServing | Health::Unknown) => Some(format!(
                    "instance {} of {} at {} went {} after serving",
                    instance.handle,
                    instance.version,
                    instance.address,
                    observed.health.as_str()
                )),
                (false, _) if observed.since.elapsed() > deadline => Some(format!(
                    "instance {} of {} at {} was not SERVING within {} (last seen {})",
                    instance.handle,
                    instance.version,
                    instance.address,
                    Millis(self.rollout.health_deadline_ms),
                    observed.health.as_str()
                )),
                _ => None,
            };
            if let Some(message) = failed {
                return Some(Halt {
                    gate: Gate::Health,
                    message,
                    figures: Vec::new(),
                    query: format!("grpc.health.v1.Health/Watch(\"\") on {}", instance.address),
                    time: Timestamp::now(),
                });
            }
        }
        None
    }

    fn begin_abort(&mut self, halt: Halt) {
        self.rollout.state = RolloutState::Aborting;
        self.rollout.status_message = format!("aborting: {}", halt.message);
        self.event(
            EventKind::Halted,
            format!("{} gate failed: {}", halt.gate, halt.message),
            Some(halt.clone()),
        );
        self.rollout.halt = Some(halt);
    }

    async fn watch_while_paused(&mut self) -> Result<(), String> {
        let (new, _) = self.observe().await?;
        // A paused rollout still has new instances taking traffic; a failing one is still pulled.
        if let Some(halt) = self.health_gate(&new) {
            self.begin_abort(halt);
        }
        Ok(())
    }

    async fn progress(&mut self) -> Result<(), String> {
        let (new, stable) = self.observe().await?;
        if let Some(halt) = self.health_gate(&new) {
            self.begin_abort(halt);
            return Ok(());
        }
        self.analyze(&new, &stable).await;
        if self.rollout.state != RolloutState::Progressing {
            return Ok(());
        }

        let Some(step) = self.rollout.current_step() else {
            self.succeed();
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
            Ok(Progress::Done) => self.advance(step),
            Ok(Progress::Waiting(why)) => {
                self.rollout.status_message =
                    format!("step {}: {why}", self.rollout.step_index + 1);
                let stuck_for = Timestamp::now().millis() - self.rollout.step_started.millis();
                let waits_on_people =
                    matches!(step, PlanStep::Pause { .. } | PlanStep::Analysis { .. });
                if !waits_on_people && stuck_for > self.rollout.progress_deadline_ms as i64 {
                    self.begin_abort(Halt {
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
            Err(halt) => self.begin_abort(halt),
        }
        Ok(())
    }

    fn advance(&mut self, done: PlanStep) {
        let took = Timestamp::now()
            .millis()
            .saturating_sub(self.rollout.step_started.millis());
        self.observations.push(Observation::StepDone(
            done,
            Duration::from_millis(u64::try_from(took).unwrap_or(0)),
        ));
        self.event(
            EventKind::StepCompleted,
            format!("step {} done: {done}", self.rollout.step_index + 1),
            None,
        );
        self.rollout.step_index += 1;
        self.rollout.step_started = Timestamp::now();
        self.rollout.pause_until = None;
        if let Some(analysis) = &mut self.rollout.last_analysis {
            analysis.passes_in_a_row = 0;
        }
        match self.rollout.current_step() {
            Some(step) => {
                if let PlanStep::Pause {
                    duration_ms: Some(ms),
                } = step
                {
                    self.rollout.pause_until = Some(Timestamp::now().plus_millis(ms));
                }
                self.rollout.status_message =
                    format!("step {}: {step}", self.rollout.step_index + 1);
                self.event(
                    EventKind::StepStarted,
                    format!(
                        "step {} of {}: {step}",
                        self.rollout.step_index + 1,
                        self.rollout.plan.len()
                    ),
                    None,
                );
            }
            None => self.succeed(),
        }
    }

    fn succeed(&mut self) {
        self.rollout.state = RolloutState::Succeeded;
        self.rollout.promotion = None;
        self.rollout.status_message = format!(
            "all traffic on {}@{}",
            self.rollout.service, self.rollout.to_version
        );
        let message = self.rollout.status_message.clone();
        self.event(EventKind::Succeeded, message, None);
    }

    async fn start_instance(&mut self, version: &Version) -> Result<PlatformInstance, Halt> {
        let artifact = self
            .artifact(version)
            .await
            .map_err(|message| platform_halt(message, self.ctx.platform.name()))?;
        let spec = InstanceSpec {
            service: self.rollout.service.clone(),
            version: version.clone(),
            artifact,
            rollout: self.rollout.id.clone(),
        };
        let started = self
            .ctx
            .platform
            .start(&spec)
            .await
            .map_err(|e| platform_halt(e.to_string(), self.ctx.platform.name()))?;
        self.event(
            EventKind::InstanceStarted,
            format!(
                "started {}@{} as {} at {}",
                started.service, started.version, started.handle, started.address
            ),
            None,
        );
        self.launched
            .insert(started.handle.clone(), started.clone());
        Ok(started)
    }

    async fn stop_instance(&mut self, instance: &PlatformInstance) -> Result<(), Halt> {
        self.health.forget(&instance.address);
        self.launched.remove(&instance.handle);
        self.ctx
            .platform
            .stop(&instance.handle)
            .await
            .map_err(|e| platform_halt(e.to_string(), self.ctx.platform.name()))?;
        self.event(
            EventKind::InstanceStopped,
            format!(
                "stopped {}@{} ({} at {})",
                instance.service, instance.version, instance.handle, instance.address
            ),
            None,
        );
        Ok(())
    }

    /// Addresses the registry lists as SERVING for `version`.
    async fn registered(&self, version: &Version) -> Result<Vec<String>, Halt> {
        let instances = self
            .ctx
            .registry
            .instances(&self.rollout.service)
            .await
            .map_err(|s| {
                platform_halt(
                    format!("listing instances in the registry: {}", s.message()),
                    "registry",
                )
            })?;
        Ok(instances
            .into_iter()
            .filter(|i| i.version == version.to_string())
            .filter(|i| i.status != pb::ServingStatus::NotServing as i32)
            .map(|i| i.address)
            .collect())
    }

    async fn scale_new(&mut self, wanted: u32, new: &[PlatformInstance]) -> Result<Progress, Halt> {
        let to = self.rollout.to_version.clone();
        if (new.len() as u32) < wanted {
            for _ in new.len() as u32..wanted {
                let started = self.start_instance(&to).await?;
                self.health.track(&started.address);
            }
            return Ok(Progress::Waiting(format!(
                "starting {wanted} instance(s) of {to}"
            )));
        }
        for extra in new.iter().skip(wanted as usize) {
            self.stop_instance(extra).await?;
        }
        let registered = self.registered(&to).await?;
        let ready = new
            .iter()
            .take(wanted as usize)
            .filter(|i| {
                registered.contains(&i.address)
                    && self
                        .health
                        .observed(&i.address)
                        .is_some_and(|o| o.health == Health::Serving)
            })
            .count() as u32;
        if ready < wanted {
            return Ok(Progress::Waiting(format!(
                "{ready} of {wanted} instance(s) of {to} SERVING and registered"
            )));
        }
        for instance in new.iter().take(wanted as usize) {
            if self.announced_ready.insert(instance.address.clone()) {
                self.event(
                    EventKind::InstanceReady,
                    format!("{} at {} is SERVING", instance.handle, instance.address),
                    None,
                );
            }
        }
        Ok(Progress::Done)
    }

    async fn scale_stable(
        &mut self,
        wanted: u32,
        stable: &[PlatformInstance],
    ) -> Result<Progress, Halt> {
        let Some(from) = self.rollout.from_version.clone() else {
            return Ok(Progress::Done);
        };
        for extra in stable.iter().skip(wanted as usize) {
            self.stop_instance(extra).await?;
        }
        if (stable.len() as u32) < wanted {
            for _ in stable.len() as u32..wanted {
                self.start_instance(&from).await?;
            }
            return Ok(Progress::Waiting(format!(
                "starting {wanted} instance(s) of {from}"
            )));
        }
        if wanted == 0 && !self.reported_unmanaged {
            let unmanaged = self
                .registered(&from)
                .await?
                .len()
                .saturating_sub(stable.len().min(wanted as usize));
            let managed_left = stable.len().min(wanted as usize);
            if unmanaged > managed_left {
                self.reported_unmanaged = true;
                self.event(
                    EventKind::StepCompleted,
                    format!(
                        "{unmanaged} instance(s) of {from} were not started by the {} platform and \
                         are left running; they get no traffic",
                        self.ctx.platform.name()
                    ),
                    None,
                );
            }
        }
        Ok(Progress::Done)
    }

    fn split(&self, new_percent: u32) -> Vec<(Version, u32)> {
        let to = self.rollout.to_version.clone();
        match &self.rollout.from_version {
            Some(from) => vec![(from.clone(), 100 - new_percent), (to, new_percent)],
            None => vec![(to, 100)],
        }
    }

    async fn apply_weights(&mut self, weights: Vec<(Version, u32)>) -> Result<(), Halt> {
        if self.rollout.weights == weights {
            return Ok(());
        }
        self.ctx
            .registry
            .set_route(&self.rollout.service, &weights)
            .await
            .map_err(|s| {
                platform_halt(format!("setting the route: {}", s.message()), "registry")
            })?;
        let shown: Vec<String> = weights.iter().map(|(v, w)| format!("{v}: {w}%")).collect();
        self.event(
            EventKind::WeightsSet,
            format!("weights {}", shown.join(", ")),
            None,
        );
        self.rollout.weights = weights;
        Ok(())
    }

    async fn set_weight(&mut self, percent: u32) -> Result<Progress, Halt> {
        let weights = self.split(percent);
        self.apply_weights(weights).await?;
        Ok(Progress::Done)
    }

    async fn weight_by_instances(&mut self) -> Result<Progress, Halt> {
        let new = self
            .registered(&self.rollout.to_version.clone())
            .await?
            .len() as u32;
        let old = match self.rollout.from_version.clone() {
            Some(from) => self.registered(&from).await?.len() as u32,
            None => 0,
        };
        if new + old == 0 {
            return Ok(Progress::Waiting("no serving instances to weigh".into()));
        }
        let percent = (new * 100 + (new + old) / 2) / (new + old);
        let weights = self.split(percent);
        self.apply_weights(weights).await?;
        Ok(Progress::Done)
    }

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

    /// Background analysis: while the new version takes traffic, every interval compares it with
    /// the stable one. Failures beyond the limit abort; missing data beyond its limit halts.
    async fn analyze(&mut self, new: &[PlatformInstance], stable: &[PlatformInstance]) {
        let active = !self.rollout.skip_analysis
            && !self.rollout.promotion.is_some_and(|p| p.full)
            && !new.is_empty()
            && self
                .rollout
                .weights
                .iter()
                .any(|(v, w)| *v == self.rollout.to_version && *w > 0);
        if !active {
            self.analyzer.reset();
            return;
        }
        if Instant::now() < self.next_analysis {
            return;
        }
        self.next_analysis =
            Instant::now() + Duration::from_millis(self.rollout.analysis.interval_ms);
        let targets: Vec<(Version, String)> = new
            .iter()
            .chain(stable.iter())
            .map(|i| (i.version.clone(), i.address.clone()))
            .collect();
        let view = self
            .analyzer
            .measure(
                self.rollout.from_version.as_ref(),
                &self.rollout.to_version,
                &targets,
                self.rollout.last_analysis.as_ref(),
            )
            .await;
        let Some(view) = view else {
            // The first scrape only sets the baseline.
            return;
        };
        let spec = self.rollout.analysis;
        let figures: Vec<String> = view.figures.iter().map(ToString::to_string).collect();
        let summary = format!("{}: {}", view.verdict.as_str(), figures.join(", "));
        let halt = |message: String| Halt {
            gate: Gate::Analysis,
            message,
            figures: view.figures.clone(),
            query: view.query.clone(),
            time: view.time,
        };
        match view.verdict {
            Verdict::Failed if view.failures > spec.failure_limit => {
                // The message names what failed; the halt carries every figure.
                let failing: Vec<String> = view
                    .figures
                    .iter()
                    .filter(|f| f.name != "requests" && f.threshold > 0.0 && f.value > f.threshold)
                    .map(ToString::to_string)
                    .collect();
                let h = halt(format!(
                    "{} failed interval{} (limit {}): {}",
                    view.failures,
                    if view.failures == 1 { "" } else { "s" },
                    spec.failure_limit,
                    failing.join(", ")
                ));
                self.rollout.last_analysis = Some(view);
                self.begin_abort(h);
            }
            Verdict::Inconclusive if view.inconclusive_in_a_row > spec.inconclusive_limit => {
                let h = halt(format!(
                    "{} inconclusive intervals in a row (limit {}): too few calls to judge, and \
                     missing data never passes a rollout; resume or abort it",
                    view.inconclusive_in_a_row, spec.inconclusive_limit,
                ));
                self.rollout.last_analysis = Some(view);
                self.rollout.state = RolloutState::Paused;
                self.rollout.status_message = format!("halted: {}", h.message);
                self.event(EventKind::Halted, h.message.clone(), Some(h.clone()));
                self.rollout.halt = Some(h);
            }
            _ => {
                // Every interval is an event only when the verdict changes, so the history stays
                // readable; the last measurement is always on the rollout itself.
                let changed = self
                    .rollout
                    .last_analysis
                    .as_ref()
                    .is_none_or(|last| last.verdict != view.verdict);
                if changed {
                    self.event(EventKind::Analysis, summary, None);
                }
                self.rollout.last_analysis = Some(view);
            }
        }
    }

    /// Traffic back to stable first, then the stable side back to its size, then the new
    /// instances removed. Each part is idempotent, so an abort interrupted by a crash completes.
    async fn abort(&mut self) -> Result<(), String> {
        let (new, stable) = self.observe().await?;
        if let Some(from) = self.rollout.from_version.clone() {
            if let Err(halt) = self
                .apply_weights(vec![
                    (from.clone(), 100),
                    (self.rollout.to_version.clone(), 0),
                ])
                .await
            {
                return Err(halt.message);
            }
            let wanted = self.rollout.stable_replicas;
            if (stable.len() as u32) < wanted {
                for _ in stable.len() as u32..wanted {
                    self.start_instance(&from).await.map_err(|h| h.message)?;
                }
                return Ok(());
            }
            // The new instances keep serving until the restored stable ones can take their calls,
            // or until the health deadline says they never will.
            let serving = self.registered(&from).await.map_err(|h| h.message)?.len() as u32;
            let since_halt = self
                .rollout
                .halt
                .as_ref()
                .map_or(0, |h| Timestamp::now().millis() - h.time.millis());
            if serving < wanted && since_halt < self.rollout.health_deadline_ms as i64 {
                return Ok(());
            }
        }
        for instance in &new {
            self.stop_instance(instance).await.map_err(|h| h.message)?;
        }
        self.rollout.state = RolloutState::Aborted;
        self.rollout.promotion = None;
        self.rollout.pause_until = None;
        let reason = self.rollout.halt.as_ref().map_or_else(
            || "aborted".to_owned(),
            |h| format!("{} gate: {}", h.gate, h.message),
        );
        self.rollout.status_message = match &self.rollout.from_version {
            Some(from) => format!("aborted; all traffic on {from}. {reason}"),
            None => format!("aborted. {reason}"),
        };
        let message = self.rollout.status_message.clone();
        let halt = self.rollout.halt.clone();
        self.observations.push(Observation::Aborted(
            halt.as_ref().map_or(Gate::Operator, |h| h.gate),
        ));
        self.event(EventKind::Aborted, message, halt);
        self.observe().await?;
        Ok(())
    }
}

fn platform_halt(message: String, platform: &str) -> Halt {
    Halt {
        gate: Gate::Platform,
        message,
        figures: Vec::new(),
        query: format!("platform: {platform}"),
        time: Timestamp::now(),
    }
}
