//! The flotilla.rollout.v1.Orchestrator service. Commands are recorded on the rollout (with
//! compare-and-set, retried on a concurrent write); the controller holding the service's lease
//! carries them out.

use std::{pin::Pin, time::Duration};

use flotilla_model::{
    NewRolloutEvent, Rollout, RolloutId, ServiceName, Timestamp, TransitionError,
};
use flotilla_proto::rollout::v1::{self as pb, orchestrator_server::Orchestrator};
use flotilla_store::{RolloutChange, RolloutQuery, StoreError};
use futures::Stream;
use tokio::sync::{broadcast, mpsc, watch};
use tonic::{Request, Response, Status};

use crate::{context::Context, convert, error::ApiError, explain, launch};

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

    /// An operator's command: the model's transition, applied to the stored rollout and the
    /// reply encoded.
    async fn transition(
        &self,
        id: &str,
        transition: impl Fn(&mut Rollout, Timestamp) -> Result<Vec<NewRolloutEvent>, TransitionError>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let rollout = self
            .command(id, |r| Ok(transition(r, Timestamp::now())?))
            .await?;
        Ok(Response::new(convert::rollout(&rollout)))
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

type UpdateStream = Pin<Box<dyn Stream<Item = Result<pb::RolloutUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl Orchestrator for OrchestratorApi {
    async fn start_rollout(
        &self,
        request: Request<pb::StartRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let launch = convert::launch(request.get_ref()).map_err(ApiError::from)?;
        let rollout = launch::launch(&self.ctx, launch).await?;
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
        self.transition(&request.id, |r, now| r.pause(&request.reason, now))
            .await
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        self.transition(&request.get_ref().id, |r, now| r.resume(now))
            .await
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.transition(&request.id, |r, now| r.promote(request.full, now))
            .await
    }

    async fn abort(
        &self,
        request: Request<pb::AbortRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.transition(&request.id, |r, now| r.abort(&request.reason, now))
            .await
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        let service = ServiceName::parse("service", &request.service).map_err(ApiError::from)?;
        // A rollback goes as a rollout with every default.
        let settings =
            convert::settings(&pb::StartRolloutRequest::default()).map_err(ApiError::from)?;
        let rollout = launch::rollback(&self.ctx, service, request.revision, settings).await?;
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
