//! Traffic: the weights a step sets, written to the registry's route, which every caller's
//! fleet client follows.

use flotilla_model::{EventKind, Halt, Version};

use super::{Controller, platform_halt, steps::Progress};

impl Controller {
    /// The split giving the new version `new_percent` and the stable one the rest.
    fn split(&self, new_percent: u32) -> Vec<(Version, u32)> {
        let to = self.rollout.to_version.clone();
        match &self.rollout.from_version {
            Some(from) => vec![(from.clone(), 100 - new_percent), (to, new_percent)],
            None => vec![(to, 100)],
        }
    }

    /// Writes `weights` to the route unless they are what this rollout last set.
    pub(super) async fn apply_weights(&mut self, weights: Vec<(Version, u32)>) -> Result<(), Halt> {
        if self.rollout.weights == weights {
            return Ok(());
        }
        self.ctx
            .registry
            .set_route(&self.rollout.service, &weights)
            .await
            .map_err(|e| platform_halt(format!("setting the route: {}", e.message), "registry"))?;
        let shown: Vec<String> = weights.iter().map(|(v, w)| format!("{v}: {w}%")).collect();
        self.event(
            EventKind::WeightsSet,
            format!("weights {}", shown.join(", ")),
            None,
        );
        self.rollout.weights = weights;
        Ok(())
    }

    pub(super) async fn set_weight(&mut self, percent: u32) -> Result<Progress, Halt> {
        let weights = self.split(percent);
        self.apply_weights(weights).await?;
        Ok(Progress::Done)
    }

    /// Weights in proportion to each side's serving instances (a rolling update's batches).
    pub(super) async fn weight_by_instances(&mut self) -> Result<Progress, Halt> {
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
}
