//! Finds the rollouts in progress and runs a controller for each whose service's lease this
//! orchestrator can take. Several orchestrators may share one store: the lease decides who acts,
//! and a dead owner's rollouts pass to a survivor once its lease expires.

use std::collections::HashMap;

use flotilla_model::{RolloutId, Timestamp};
use flotilla_store::RolloutQuery;
use tokio::{sync::watch, task::JoinHandle};

use crate::{context::Context, controller::Controller};

pub async fn supervise(ctx: Context, stop: watch::Receiver<bool>) {
    let mut running: HashMap<RolloutId, JoinHandle<()>> = HashMap::new();
    let mut changes = ctx.store.subscribe_rollouts();
    let mut stop_signal = stop.clone();
    loop {
        running.retain(|_, task| !task.is_finished());
        if let Err(error) = adopt(&ctx, &mut running, &stop).await {
            tracing::warn!(%error, "looking for rollouts failed; trying again");
        }
        tokio::select! {
            () = crate::stop::stopped(&mut stop_signal) => break,
            _ = changes.recv() => {}
            () = ctx.wake.notified() => {}
            () = tokio::time::sleep(ctx.lease_ttl / 3) => {}
        }
    }
    // Controllers release their leases as they stop, so a peer takes over at once.
    for (_, task) in running {
        let _ = task.await;
    }
}

async fn adopt(
    ctx: &Context,
    running: &mut HashMap<RolloutId, JoinHandle<()>>,
    stop: &watch::Receiver<bool>,
) -> Result<(), flotilla_store::StoreError> {
    let active = ctx
        .store
        .list_rollouts(&RolloutQuery {
            active_only: true,
            limit: 1000,
            ..Default::default()
        })
        .await?;
    for rollout in active {
        if running.contains_key(&rollout.id) {
            continue;
        }
        let ttl = ctx.lease_ttl.as_millis() as u64;
        if !ctx
            .store
            .acquire_lease(&rollout.service, &ctx.holder, ttl, Timestamp::now())
            .await?
        {
            continue;
        }
        tracing::info!(rollout = %rollout.id, service = %rollout.service, step = rollout.step_index, "acting on rollout");
        let id = rollout.id.clone();
        let controller = Controller::new(ctx.clone(), rollout);
        let stop = stop.clone();
        running.insert(
            id.clone(),
            tokio::spawn(async move {
                if let Err(error) = controller.run(stop).await {
                    tracing::warn!(rollout = %id, %error, "controller stopped");
                }
            }),
        );
    }
    Ok(())
}
