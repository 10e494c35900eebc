//! Instances: what the platform runs of both versions (and what exited on its own), starting
//! and stopping them, and the scale steps that bring each side to its count.

use flotilla_model::{Artifact, EventKind, Halt, Health, InstanceView, Role, Version};

use super::{Controller, TickError, platform_halt, steps::Progress};
use crate::platform::{InstanceSpec, PlatformInstance};

impl Controller {
    /// A version's artifact, read from the registry once per controller.
    async fn artifact(&mut self, version: &Version) -> Result<Artifact, String> {
        if let Some(artifact) = self.artifacts.get(version) {
            return Ok(artifact.clone());
        }
        let record = self
            .ctx
            .registry
            .version(&self.rollout.service, version)
            .await
            .map_err(|e| format!("reading {version} from the registry: {}", e.message))?;
        self.artifacts
            .insert(version.clone(), record.artifact.clone());
        Ok(record.artifact)
    }

    /// The platform's instances of both sides, the health board following the new ones, and the
    /// rollout's instance view refreshed.
    pub(super) async fn observe(
        &mut self,
    ) -> Result<(Vec<PlatformInstance>, Vec<PlatformInstance>), TickError> {
        let all = self.ctx.platform.list(&self.rollout.service).await?;
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

    pub(super) async fn start_instance(
        &mut self,
        version: &Version,
    ) -> Result<PlatformInstance, Halt> {
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

    pub(super) async fn stop_instance(&mut self, instance: &PlatformInstance) -> Result<(), Halt> {
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

    /// Addresses the registry lists as serving for `version`.
    pub(super) async fn registered(&self, version: &Version) -> Result<Vec<String>, Halt> {
        self.ctx
            .registry
            .serving(&self.rollout.service, version)
            .await
            .map_err(|e| {
                platform_halt(
                    format!("listing instances in the registry: {}", e.message),
                    "registry",
                )
            })
    }

    /// The new side at `wanted` instances, each SERVING and registered.
    pub(super) async fn scale_new(
        &mut self,
        wanted: u32,
        new: &[PlatformInstance],
    ) -> Result<Progress, Halt> {
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

    /// The stable side at `wanted` instances. Stable instances another platform (or nobody)
    /// started are left running and said so once: they get no traffic.
    pub(super) async fn scale_stable(
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
}
