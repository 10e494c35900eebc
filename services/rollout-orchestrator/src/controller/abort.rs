//! The abort: traffic back to stable first, then the stable side back to its size, then the
//! new instances removed. Each part is idempotent, so an abort interrupted by a crash completes.

use flotilla_model::Timestamp;

use super::{Controller, Observation, TickError};

impl Controller {
    pub(super) async fn abort(&mut self) -> Result<(), TickError> {
        let (new, stable) = self.observe().await?;
        if let Some(from) = self.rollout.from_version.clone() {
            self.apply_weights(vec![
                (from.clone(), 100),
                (self.rollout.to_version.clone(), 0),
            ])
            .await?;
            let wanted = self.rollout.stable_replicas;
            if (stable.len() as u32) < wanted {
                for _ in stable.len() as u32..wanted {
                    self.start_instance(&from).await?;
                }
                return Ok(());
            }
            // The new instances keep serving until the restored stable ones can take their calls,
            // or until the health deadline says they never will.
            let serving = self.registered(&from).await?.len() as u32;
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
            self.stop_instance(instance).await?;
        }
        let events = self.rollout.finish_abort(Timestamp::now());
        self.observations
            .push(Observation::Aborted(self.rollout.abort_gate()));
        self.record(events);
        self.observe().await?;
        Ok(())
    }
}
