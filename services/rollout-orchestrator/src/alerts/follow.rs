//! Which events reach the webhooks: those of the rollouts this orchestrator carries out, read
//! from the store as it announces their changes — as the metrics follow the store — so the
//! controllers never read their own events back.
//!
//! A controller says when it starts carrying a rollout out ([`Alerts::carry`], answered once
//! the first event to send is known, before the controller writes anything) and when it stops
//! ([`Alerts::finish`] after the rollout ended: what is left is sent; [`Alerts::release`] after
//! the lease was lost: the new owner sends from its takeover on).

use std::{collections::HashMap, sync::Arc, time::Duration};

use flotilla_model::{Rollout, RolloutId};
use flotilla_store::{RolloutChange, RolloutStore, StoreError};
use tokio::sync::{broadcast, oneshot, watch};

use super::Alerts;

/// How soon a read that failed is tried again, even without a new announcement.
const RETRY: Duration = Duration::from_secs(1);

/// What a controller tells the follower.
#[derive(Debug)]
pub(super) enum Command {
    Carry {
        id: RolloutId,
        /// No orchestrator has carried it out yet.
        unowned: bool,
        done: oneshot::Sender<()>,
    },
    Finish(RolloutId),
    Release(RolloutId),
}

impl Alerts {
    /// This orchestrator starts carrying `rollout` out (as read, before the controller names
    /// itself its owner): its events from now on go to the webhooks. Returns once the follower
    /// knows where to start — from the first event of a rollout no orchestrator has carried
    /// out yet, after the last stored event of one taken over from another orchestrator (which
    /// sent its own), and where it was for one this process carried out already.
    pub async fn carry(&self, rollout: &Rollout) {
        let Some(commands) = self.commands() else {
            return;
        };
        let (done, known) = oneshot::channel();
        let sent = commands.send(Command::Carry {
            id: rollout.id.clone(),
            unowned: rollout.owner.is_none(),
            done,
        });
        if sent.is_ok() {
            let _ = known.await;
        }
    }

    /// The rollout ended: its last events are sent, then it is forgotten.
    pub fn finish(&self, rollout: &RolloutId) {
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::Finish(rollout.clone()));
        }
    }

    /// This orchestrator no longer carries the rollout out (its lease was lost, or it stops).
    pub fn release(&self, rollout: &RolloutId) {
        if let Some(commands) = self.commands() {
            let _ = commands.send(Command::Release(rollout.clone()));
        }
    }

    /// Hands the events of the rollouts carried out here to the webhooks as the store announces
    /// them, until `stop` turns true. Does nothing without webhooks.
    pub async fn follow(self, store: Arc<dyn RolloutStore>, mut stop: watch::Receiver<bool>) {
        let Some(mut commands) = self.take_commands() else {
            return;
        };
        let mut changes = store.subscribe_rollouts();
        // The last event handed over, per rollout carried out here.
        let mut cursors: HashMap<RolloutId, u64> = HashMap::new();
        let mut retry: Vec<RolloutId> = Vec::new();
        loop {
            let due: Vec<RolloutId> = tokio::select! {
                () = crate::stop::stopped(&mut stop) => return,
                command = commands.recv() => match command {
                    None => return,
                    Some(Command::Carry { id, unowned, done }) => {
                        if !cursors.contains_key(&id) {
                            match start_of(store.as_ref(), &id, unowned).await {
                                Ok(start) => {
                                    cursors.insert(id.clone(), start);
                                }
                                Err(error) => {
                                    // Sent from the first event rather than not at all.
                                    tracing::warn!(rollout = %id, %error, "reading events for webhooks failed");
                                    cursors.insert(id.clone(), 0);
                                }
                            }
                        }
                        let _ = done.send(());
                        vec![id]
                    }
                    Some(Command::Finish(id)) => {
                        self.send_new(store.as_ref(), &id, &mut cursors, &mut retry).await;
                        cursors.remove(&id);
                        retry.retain(|r| *r != id);
                        continue;
                    }
                    Some(Command::Release(id)) => {
                        cursors.remove(&id);
                        retry.retain(|r| *r != id);
                        continue;
                    }
                },
                change = changes.recv() => match change {
                    Ok(RolloutChange::Rollout(id)) if cursors.contains_key(&id) => vec![id],
                    Ok(_) => continue,
                    // Announcements were missed: every rollout carried out here is read again.
                    Err(broadcast::error::RecvError::Lagged(_)) => cursors.keys().cloned().collect(),
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                () = tokio::time::sleep(RETRY), if !retry.is_empty() => std::mem::take(&mut retry),
            };
            for id in due {
                self.send_new(store.as_ref(), &id, &mut cursors, &mut retry)
                    .await;
            }
        }
    }

    /// Queues the events of `id` stored after its cursor, with the rollout as stored with (or
    /// after) them; a failed read is tried again later.
    async fn send_new(
        &self,
        store: &dyn RolloutStore,
        id: &RolloutId,
        cursors: &mut HashMap<RolloutId, u64>,
        retry: &mut Vec<RolloutId>,
    ) {
        let Some(&through) = cursors.get(id) else {
            return;
        };
        let read = async {
            let events = store.rollout_events(id, through).await?;
            let rollout = store.get_rollout(id).await?;
            Ok::<_, StoreError>((events, rollout))
        };
        match read.await {
            Ok((events, rollout)) => {
                if let Some(last) = events.last() {
                    cursors.insert(id.clone(), last.sequence);
                    self.notify(&rollout, &events);
                }
            }
            Err(error) => {
                tracing::warn!(rollout = %id, %error, "reading events for webhooks failed; trying again");
                if !retry.contains(id) {
                    retry.push(id.clone());
                }
            }
        }
    }
}

/// Where a rollout's notifications start when this process begins carrying it out.
async fn start_of(
    store: &dyn RolloutStore,
    id: &RolloutId,
    unowned: bool,
) -> Result<u64, StoreError> {
    if unowned {
        return Ok(0);
    }
    Ok(store
        .rollout_events(id, 0)
        .await?
        .last()
        .map_or(0, |event| event.sequence))
}
