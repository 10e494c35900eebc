//! What the planner is given: the fleet as it runs now, what every version requires of the
//! others, where a caller schema would misread a provider, and the versions to reach.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
};

use flotilla_model::{ServiceName, Version, VersionReq};

/// One version of one service.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VersionId {
    pub service: ServiceName,
    pub version: Version,
}

impl VersionId {
    pub fn new(service: ServiceName, version: Version) -> Self {
        Self { service, version }
    }
}

impl fmt::Display for VersionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.service, self.version)
    }
}

/// What a version requires of another service (a published dependency).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub provider: ServiceName,
    pub requirement: VersionReq,
}

/// Everything a plan is derived from.
#[derive(Debug, Clone, Default)]
pub struct Fleet {
    /// The versions each service runs now (with live instances).
    pub live: BTreeMap<ServiceName, BTreeSet<Version>>,
    /// What each version that runs or is a target requires of other services.
    pub requirements: BTreeMap<VersionId, Vec<Requirement>>,
    /// Pairs (consumer version, provider version) where the consumer's caller schema would
    /// misread the provider on the wire, with why: the provider's version satisfies the
    /// requirement, yet the consumer must not be sent to it.
    pub misreads: BTreeMap<(VersionId, VersionId), String>,
}

impl Fleet {
    /// The requirements of `version` (none when it declares none).
    pub fn requirements_of(&self, version: &VersionId) -> &[Requirement] {
        self.requirements.get(version).map_or(&[], Vec::as_slice)
    }

    /// Whether `consumer` may call `provider`: `provider` satisfies the consumer's requirement
    /// on its service, and the consumer's schema (if it sent one) reads it; with the reason
    /// when not.
    pub fn accepts(&self, consumer: &VersionId, provider: &VersionId) -> Result<(), String> {
        let requirement = self
            .requirements_of(consumer)
            .iter()
            .find(|r| r.provider == provider.service);
        if let Some(r) = requirement
            && !r.requirement.matches(&provider.version)
        {
            return Err(format!(
                "{consumer} requires {} {}",
                provider.service, r.requirement
            ));
        }
        if let Some(why) = self.misreads.get(&(consumer.clone(), provider.clone())) {
            return Err(format!("{consumer} would misread {provider}: {why}"));
        }
        Ok(())
    }

    /// The first version in `live` (the versions each service would run) that finds no version
    /// it accepts of a service it requires, with that requirement; `None` when every live
    /// version finds one.
    pub fn unmet(
        &self,
        live: &BTreeMap<ServiceName, BTreeSet<Version>>,
    ) -> Option<(VersionId, Requirement)> {
        for (service, versions) in live {
            for version in versions {
                let consumer = VersionId::new(service.clone(), version.clone());
                for requirement in self.requirements_of(&consumer) {
                    let met = live.get(&requirement.provider).is_some_and(|provided| {
                        provided.iter().any(|v| {
                            self.accepts(
                                &consumer,
                                &VersionId::new(requirement.provider.clone(), v.clone()),
                            )
                            .is_ok()
                        })
                    });
                    if !met {
                        return Some((consumer, requirement.clone()));
                    }
                }
            }
        }
        None
    }
}
