//! The flotilla.rollout.v1.Orchestrator service. Commands are recorded on the rollout (with
//! compare-and-set, retried on a concurrent write); the controller holding the service's lease
//! carries them out.

use std::{pin::Pin, time::Duration};

use flotilla_model::{
    EventKind, Gate, Halt, NewRolloutEvent, Promotion, Rollout, RolloutId, RolloutState,
    ServiceName, Strategy, Timestamp, Version, parse_version,
};
use flotilla_proto::rollout::v1::{self as pb, orchestrator_server::Orchestrator};
use flotilla_store::{RolloutChange, RolloutQuery, StoreError};
use futures::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::{Request, Response, Status};

use crate::{context::Context, convert, error::ApiError, explain, plan, preflight};

/// How often a command retries after losing a race with the controller's write.
const COMMAND_ATTEMPTS: usize = 10;

#[derive(Debug, Clone)]
pub struct OrchestratorApi {
    ctx: Context,
    stop: watch::Receiver<bool>,
}

impl OrchestratorApi {
    pub fn new(ctx: Context, stop: watch::Receiver<bool>) -> Self {
        Self { ctx, stop }
    }

    async fn start(
        &self,
        request: pb::StartRolloutRequest,
        rollback_to: Option<u64>,
        strategy_override: Option<Strategy>,
    ) -> Result<Rollout, ApiError> {
        let service = ServiceName::parse("service", &request.service)?;
        let to_version = parse_version("version", &request.version)?;
        let strategy = match strategy_override {
            Some(strategy) => strategy,
            None => convert::strategy(request.strategy.as_ref())?,
        };
        let analysis = convert::analysis(request.analysis.as_ref())?;
        let (health_deadline_ms, progress_deadline_ms) = convert::deadlines(&request)?;
        let requested_replicas = convert::replicas(request.replicas)?;

        let target = self
            .ctx
            .registry
            .get_version(&service, &to_version)
            .await
            .map_err(ApiError::Registry)?;
        let artifact = target
            .artifact
            .clone()
            .map(|a| flotilla_model::Artifact {
                image: a.image,
                command: a.command,
            })
            .unwrap_or_default();
        self.ctx
            .platform
            .check(&service, &to_version, &artifact)
            .await?;
        let refusals = preflight::check(&self.ctx.registry, &service, &target, request.force)
            .await
            .map_err(ApiError::Registry)?;
        if !refusals.is_empty() {
            return Err(ApiError::Refused {
                service: service.to_string(),
                version: to_version.to_string(),
                refusals,
            });
        }

        let from_version = self.stable_version(&service).await?;
        if from_version.as_ref() == Some(&to_version) {
            return Err(ApiError::WrongState(format!(
                "{service}@{to_version} is already the stable version; nothing to roll out"
            )));
        }
        let stable_replicas = match &from_version {
            Some(from) => self
                .ctx
                .platform
                .list(&service)
                .await?
                .iter()
                .filter(|i| &i.version == from)
                .count() as u32,
            None => 0,
        };
        let replicas = requested_replicas.unwrap_or(stable_replicas.max(1));
        // A first deployment has no one to protect and nothing to compare with.
        let strategy = if from_version.is_none() {
            Strategy::Immediate
        } else {
            strategy
        };
        let skip_analysis = matches!(strategy, Strategy::Immediate);
        let plan = plan::expand(&strategy, from_version.is_some(), stable_replicas, replicas);
        let now = Timestamp::now();
        let first_step = plan[0];
        let rollout = Rollout {
            id: RolloutId::from_trusted(uuid::Uuid::new_v4().to_string()),
            service: service.clone(),
            from_version: from_version.clone(),
            to_version: to_version.clone(),
            strategy,
            replicas,
            stable_replicas,
            analysis,
            health_deadline_ms,
            progress_deadline_ms,
            skip_analysis,
            plan,
            state: RolloutState::Progressing,
            step_index: 0,
            step_started: now,
            pause_until: None,
            promotion: None,
            halt: None,
            instances: Vec::new(),
            weights: Vec::new(),
            last_analysis: None,
            revision: 0,
            rollback_to_revision: rollback_to,
            owner: None,
            status_message: format!("step 1: {first_step}"),
            created: now,
            updated: now,
            generation: 0,
            trace_parent: flotilla_telemetry::propagation::current_traceparent(),
        };
        let from = from_version.map_or_else(|| "nothing".to_owned(), |v| v.to_string());
        let started = NewRolloutEvent {
            time: now,
            kind: EventKind::Started,
            message: match rollback_to {
                Some(revision) => format!(
                    "rollback of {service} from {from} to revision {revision} ({to_version}){}",
                    if skip_analysis {
                        ", within the rollback window: no steps, no analysis"
                    } else {
                        ""
                    }
                ),
                None => format!(
                    "{service}: {from} → {to_version}, {} steps",
                    rollout.plan.len()
                ),
            },
            halt: None,
            step_index: 0,
        };
        let step = NewRolloutEvent {
            time: now,
            kind: EventKind::StepStarted,
            message: format!("step 1 of {}: {first_step}", rollout.plan.len()),
            halt: None,
            step_index: 0,
        };
        let stored = self
            .ctx
            .store
            .create_rollout(&rollout, &[started, step])
            .await?;
        self.ctx.wake.notify_one();
        Ok(stored)
    }

    /// The version a new rollout starts from: the current revision while the platform still
    /// runs it, else the version the platform runs most of, else the version most live
    /// instances in the registry run (instances this orchestrator did not start).
    async fn stable_version(&self, service: &ServiceName) -> Result<Option<Version>, ApiError> {
        let running = self.ctx.platform.list(service).await?;
        let revisions = self.ctx.store.list_revisions(service).await?;
        if let Some(current) = revisions.first()
            && running.iter().any(|i| i.version == current.version)
        {
            return Ok(Some(current.version.clone()));
        }
        let mut counts: Vec<(Version, usize)> = Vec::new();
        let registered = self
            .ctx
            .registry
            .instances(service)
            .await
            .map_err(ApiError::Registry)?;
        let versions: Vec<Version> = if running.is_empty() {
            registered
                .iter()
                .filter_map(|i| Version::parse(&i.version).ok())
                .collect()
        } else {
            running.into_iter().map(|i| i.version).collect()
        };
        for version in versions {
            match counts.iter_mut().find(|(v, _)| *v == version) {
                Some((_, n)) => *n += 1,
                None => counts.push((version, 1)),
            }
        }
        counts.sort_by(|(va, a), (vb, b)| b.cmp(a).then(vb.cmp(va)));
        Ok(counts.into_iter().next().map(|(v, _)| v))
    }

    /// Applies `change` to the stored rollout with compare-and-set, retrying when the controller
    /// wrote in between. `change` returns the events to record, or an error to leave it as is.
    async fn command(
        &self,
        id: &str,
        change: impl Fn(&mut Rollout) -> Result<Vec<NewRolloutEvent>, ApiError>,
    ) -> Result<Rollout, ApiError> {
        let id = RolloutId::parse("id", id)?;
        for _ in 0..COMMAND_ATTEMPTS {
            let mut rollout = self.ctx.store.get_rollout(&id).await?;
            let events = change(&mut rollout)?;
            if events.is_empty() {
                return Ok(rollout);
            }
            match self
                .ctx
                .store
                .update_rollout(&rollout, &events, None, Timestamp::now())
                .await
            {
                Ok(stored) => return Ok(stored),
                Err(StoreError::RolloutConflict { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(ApiError::Store(StoreError::Unavailable(format!(
            "rollout {id} kept changing; {COMMAND_ATTEMPTS} attempts lost the race"
        ))))
    }
}

fn event(
    rollout: &Rollout,
    kind: EventKind,
    message: String,
    halt: Option<Halt>,
) -> NewRolloutEvent {
    NewRolloutEvent {
        time: Timestamp::now(),
        kind,
        message,
        halt,
        step_index: rollout.step_index,
    }
}

fn ended(rollout: &Rollout, command: &str) -> ApiError {
    ApiError::WrongState(format!(
        "rollout {} already ended {}; {command} changed nothing",
        rollout.id, rollout.state
    ))
}

fn aborting(rollout: &Rollout, command: &str) -> ApiError {
    ApiError::WrongState(format!(
        "rollout {} is aborting; {command} changed nothing",
        rollout.id
    ))
}

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::RolloutUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl Orchestrator for OrchestratorApi {
    async fn start_rollout(
        &self,
        request: Request<pb::StartRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let rollout = self.start(request.into_inner(), None, None).await?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn get_rollout(
        &self,
        request: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let id = RolloutId::parse("id", &request.get_ref().id).map_err(ApiError::from)?;
        let rollout = self
            .ctx
            .store
            .get_rollout(&id)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn list_rollouts(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        let request = request.into_inner();
        let service = match request.service.as_str() {
            "" => None,
            name => Some(ServiceName::parse("service", name).map_err(ApiError::from)?),
        };
        let limit = match request.page_size {
            0 => 100,
            n @ 1..=1000 => n,
            n => {
                return Err(ApiError::Invalid(flotilla_model::InvalidField::new(
                    "page_size",
                    format!("{n} is more than 1000"),
                ))
                .into());
            }
        };
        let after = match request.page_token.as_str() {
            "" => None,
            token => Some(RolloutId::parse("page_token", token).map_err(ApiError::from)?),
        };
        let mut rollouts = self
            .ctx
            .store
            .list_rollouts(&RolloutQuery {
                service,
                active_only: request.active_only,
                after,
                limit: limit + 1,
            })
            .await
            .map_err(ApiError::from)?;
        let next_page_token = if rollouts.len() > limit as usize {
            rollouts.truncate(limit as usize);
            rollouts
                .last()
                .map(|r| r.id.to_string())
                .unwrap_or_default()
        } else {
            String::new()
        };
        Ok(Response::new(pb::ListRolloutsResponse {
            rollouts: rollouts.iter().map(convert::rollout).collect(),
            next_page_token,
        }))
    }

    type WatchRolloutStream = UpdateStream;

    async fn watch_rollout(
        &self,
        request: Request<pb::WatchRolloutRequest>,
    ) -> Result<Response<Self::WatchRolloutStream>, Status> {
        let id = RolloutId::parse("id", &request.get_ref().id).map_err(ApiError::from)?;
        // Subscribed before the first read, so no change between the two is missed.
        let mut changes = self.ctx.store.subscribe_rollouts();
        let rollout = self
            .ctx
            .store
            .get_rollout(&id)
            .await
            .map_err(ApiError::from)?;
        let events = self
            .ctx
            .store
            .rollout_events(&id, 0)
            .await
            .map_err(ApiError::from)?;
        let (tx, rx) = mpsc::channel(16);
        let store = self.ctx.store.clone();
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut seen = events.last().map_or(0, |e| e.sequence);
            let mut ended = !rollout.state.is_active();
            let first = pb::RolloutUpdate {
                rollout: Some(convert::rollout(&rollout)),
                events: events.iter().map(convert::event).collect(),
            };
            if tx.send(Ok(first)).await.is_err() {
                return;
            }
            let mut generation = rollout.generation;
            while !ended {
                tokio::select! {
                    () = crate::stop::stopped(&mut stop) => {
                        let _ = tx.send(Err(Status::unavailable("the orchestrator is shutting down"))).await;
                        return;
                    }
                    () = tx.closed() => return,
                    change = changes.recv() => match change {
                        Ok(RolloutChange::Rollout(changed)) if changed != id => continue,
                        Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => return,
                    },
                    // A slow safety net in case an announcement was lost.
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
                let read = async {
                    let rollout = store.get_rollout(&id).await?;
                    let events = store.rollout_events(&id, seen).await?;
                    Ok::<_, StoreError>((rollout, events))
                };
                let (rollout, events) = match read.await {
                    Ok(read) => read,
                    Err(error) => {
                        let _ = tx.send(Err(ApiError::from(error).into())).await;
                        return;
                    }
                };
                if rollout.generation == generation && events.is_empty() {
                    continue;
                }
                generation = rollout.generation;
                seen = events.last().map_or(seen, |e| e.sequence);
                ended = !rollout.state.is_active();
                let update = pb::RolloutUpdate {
                    rollout: Some(convert::rollout(&rollout)),
                    events: events.iter().map(convert::event).collect(),
                };
                if tx.send(Ok(update)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        let reason = request.reason.clone();
        let rollout = self
            .command(&request.id, |r| match r.state {
                RolloutState::Paused => Ok(Vec::new()),
                RolloutState::Progressing => {
                    r.state = RolloutState::Paused;
                    let why = if reason.is_empty() {
                        "paused by an operator".to_owned()
                    } else {
                        format!("paused by an operator: {reason}")
                    };
                    r.status_message = format!("{why} at step {}", r.step_index + 1);
                    Ok(vec![event(r, EventKind::Paused, why, None)])
                }
                RolloutState::Aborting => Err(aborting(r, "pause")),
                RolloutState::Aborted | RolloutState::Succeeded => Err(ended(r, "pause")),
            })
            .await?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let rollout = self
            .command(&request.get_ref().id, |r| match r.state {
                RolloutState::Progressing => Ok(Vec::new()),
                RolloutState::Paused => {
                    r.state = RolloutState::Progressing;
                    // An operator who resumes a halted rollout has looked at why it halted.
                    r.halt = None;
                    if let Some(analysis) = &mut r.last_analysis {
                        analysis.inconclusive_in_a_row = 0;
                    }
                    r.status_message = format!("resumed at step {}", r.step_index + 1);
                    Ok(vec![event(
                        r,
                        EventKind::Resumed,
                        "resumed by an operator".into(),
                        None,
                    )])
                }
                RolloutState::Aborting => Err(aborting(r, "resume")),
                RolloutState::Aborted | RolloutState::Succeeded => Err(ended(r, "resume")),
            })
            .await?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let full = request.get_ref().full;
        let rollout = self
            .command(&request.get_ref().id, |r| match r.state {
                RolloutState::Progressing | RolloutState::Paused => {
                    r.promotion = Some(Promotion {
                        step_index: r.step_index,
                        full,
                    });
                    if full {
                        r.skip_analysis = true;
                    }
                    r.state = RolloutState::Progressing;
                    // Promoting a halted rollout overrules its halt, as resuming does.
                    r.halt = None;
                    if let Some(analysis) = &mut r.last_analysis {
                        analysis.inconclusive_in_a_row = 0;
                    }
                    let message = if full {
                        "promoted fully: remaining pauses and analysis skipped".to_owned()
                    } else {
                        format!("promoted past step {}", r.step_index + 1)
                    };
                    Ok(vec![event(r, EventKind::Promoted, message, None)])
                }
                RolloutState::Aborting => Err(aborting(r, "promote")),
                RolloutState::Aborted | RolloutState::Succeeded => Err(ended(r, "promote")),
            })
            .await?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn abort(
        &self,
        request: Request<pb::AbortRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        let reason = if request.reason.is_empty() {
            "aborted by an operator".to_owned()
        } else {
            format!("aborted by an operator: {}", request.reason)
        };
        let rollout = self
            .command(&request.id, |r| match r.state {
                RolloutState::Aborting => Ok(Vec::new()),
                RolloutState::Progressing | RolloutState::Paused => {
                    let halt = Halt {
                        gate: Gate::Operator,
                        message: reason.clone(),
                        figures: Vec::new(),
                        query: String::new(),
                        time: Timestamp::now(),
                    };
                    r.state = RolloutState::Aborting;
                    r.status_message = format!("aborting: {reason}");
                    r.halt = Some(halt.clone());
                    Ok(vec![event(
                        r,
                        EventKind::AbortRequested,
                        reason.clone(),
                        Some(halt),
                    )])
                }
                RolloutState::Aborted | RolloutState::Succeeded => Err(ended(r, "abort")),
            })
            .await?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        let service = ServiceName::parse("service", &request.service).map_err(ApiError::from)?;
        let revisions = self
            .ctx
            .store
            .list_revisions(&service)
            .await
            .map_err(ApiError::from)?;
        let Some(current) = revisions.first() else {
            return Err(ApiError::WrongState(format!(
                "{service} has no revisions: no rollout of it has succeeded"
            ))
            .into());
        };
        let target = match request.revision {
            0 => revisions.get(1).ok_or_else(|| {
                ApiError::WrongState(format!(
                    "{service} has only revision {}; there is nothing earlier to roll back to",
                    current.number
                ))
            })?,
            n => revisions.iter().find(|r| r.number == n).ok_or_else(|| {
                ApiError::Invalid(flotilla_model::InvalidField::new(
                    "revision",
                    format!("{service} has no revision {n}"),
                ))
            })?,
        };
        if target.number == current.number {
            return Err(ApiError::WrongState(format!(
                "revision {} ({}) is the current one",
                target.number, target.version
            ))
            .into());
        }
        // Within the window after the current revision took over, the earlier one is known
        // good and time matters more than caution.
        let within_window = Timestamp::now().millis() - current.time.millis()
            <= self.ctx.rollback_window.as_millis() as i64;
        let start = pb::StartRolloutRequest {
            service: service.to_string(),
            version: target.version.to_string(),
            // A deprecated earlier revision may still be returned to.
            force: true,
            ..Default::default()
        };
        let strategy = within_window.then_some(Strategy::Immediate);
        let rollout = self.start(start, Some(target.number), strategy).await?;
        Ok(Response::new(convert::rollout(&rollout)))
    }

    async fn list_revisions(
        &self,
        request: Request<pb::ListRevisionsRequest>,
    ) -> Result<Response<pb::ListRevisionsResponse>, Status> {
        let service =
            ServiceName::parse("service", &request.get_ref().service).map_err(ApiError::from)?;
        let revisions = self
            .ctx
            .store
            .list_revisions(&service)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::ListRevisionsResponse {
            revisions: revisions.iter().map(convert::revision).collect(),
        }))
    }

    async fn explain_rollout(
        &self,
        request: Request<pb::ExplainRolloutRequest>,
    ) -> Result<Response<pb::RolloutExplanation>, Status> {
        let request = request.into_inner();
        let id = RolloutId::parse("id", &request.id).map_err(ApiError::from)?;
        let limit = match request.event_limit {
            0 => 10,
            n @ 1..=100 => n as usize,
            n => {
                return Err(ApiError::Invalid(flotilla_model::InvalidField::new(
                    "event_limit",
                    format!("{n} is more than 100"),
                ))
                .into());
            }
        };
        let rollout = self
            .ctx
            .store
            .get_rollout(&id)
            .await
            .map_err(ApiError::from)?;
        let mut events = self
            .ctx
            .store
            .rollout_events(&id, 0)
            .await
            .map_err(ApiError::from)?;
        let recent = events.split_off(events.len().saturating_sub(limit));
        let checked = futures::future::join_all(
            rollout
                .instances
                .iter()
                .map(|instance| explain::check_health(&instance.address)),
        )
        .await;
        let now = Timestamp::now();
        let holder = self
            .ctx
            .store
            .lease_holder(&rollout.service, now)
            .await
            .map_err(ApiError::from)?;
        Ok(Response::new(pb::RolloutExplanation {
            summary: explain::summary(&rollout, holder.as_deref(), now),
            gates: explain::gates(&rollout, now)
                .iter()
                .map(convert::gate_result)
                .collect(),
            recent_events: recent.iter().map(convert::event).collect(),
            instances: rollout
                .instances
                .iter()
                .zip(checked)
                .map(|(instance, (checked_health, error))| {
                    let mut recorded = convert::instance(instance);
                    // Only new instances are watched; the stable side is judged by its callers.
                    if instance.role == flotilla_model::Role::Stable {
                        recorded.health = explain::UNWATCHED.into();
                    }
                    pb::InstanceHealth {
                        instance: Some(recorded),
                        checked_health,
                        error: error.unwrap_or_default(),
                    }
                })
                .collect(),
            rollout: Some(convert::rollout(&rollout)),
        }))
    }
}
