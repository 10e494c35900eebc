//! The gates a rollout must pass before anything starts: the target's lifecycle, its schema
//! against every version still serving, and the requirement of every consumer with live
//! instances. A refusal lists every failed gate at once, so an operator fixes them in one go.

use std::collections::BTreeSet;

use flotilla_model::{Gate, LifecycleState, ServiceName, Version, VersionReq};

use crate::registry::{Consumer, PublishedVersion, Registry, RegistryError};

/// One reason a rollout may not start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub gate: Gate,
    /// What it is about, e.g. `frontend@1.0.0`.
    pub subject: String,
    pub description: String,
}

/// Runs every gate; the refusals are empty when the rollout may start.
pub async fn check(
    registry: &dyn Registry,
    service: &ServiceName,
    target: &PublishedVersion,
    force: bool,
) -> Result<Vec<Refusal>, RegistryError> {
    let mut refusals = Vec::new();
    let subject = format!("{service}@{}", target.version);
    refusals.extend(lifecycle(&subject, target.state, force));

    let serving: BTreeSet<Version> = registry
        .instances(service)
        .await?
        .into_iter()
        .map(|instance| instance.version)
        .filter(|version| *version != target.version)
        .collect();
    for version in serving {
        let other = registry.version(service, &version).await?;
        let breaks = registry.unannounced_breaks(service, target, &other).await?;
        refusals.extend(compatibility(service, target, &other, &breaks));
    }

    for consumer in registry.consumers(service).await? {
        refusals.extend(consumer_refusal(service, &target.version, &consumer));
    }
    Ok(refusals)
}

fn lifecycle(subject: &str, state: LifecycleState, force: bool) -> Option<Refusal> {
    let description = match state {
        LifecycleState::Released => return None,
        LifecycleState::Deprecated if force => return None,
        LifecycleState::Deprecated => "is DEPRECATED; pass force to roll it out anyway".to_owned(),
        LifecycleState::Retired | LifecycleState::Yanked => {
            format!("is {state}; it can never be rolled out")
        }
    };
    Some(Refusal {
        gate: Gate::Lifecycle,
        subject: subject.to_owned(),
        description,
    })
}

/// Breaking changes the registry found fail the gate unless a major version lies between the
/// two (those it has left out): a major bump announces a break, and the consumer gate then
/// decides whether anyone still needs the old API.
fn compatibility(
    service: &ServiceName,
    target: &PublishedVersion,
    serving: &PublishedVersion,
    breaks: &[String],
) -> Option<Refusal> {
    if breaks.is_empty() {
        return None;
    }
    Some(Refusal {
        gate: Gate::Compatibility,
        subject: format!("{service}@{}", serving.version),
        description: format!(
            "{} is still serving and {} breaks it without a major bump: {}",
            serving.version,
            target.version,
            breaks.join("; ")
        ),
    })
}

/// A consumer with live instances whose requirement the target does not satisfy.
fn consumer_refusal(
    service: &ServiceName,
    target: &Version,
    consumer: &Consumer,
) -> Option<Refusal> {
    if consumer.live_instances == 0 {
        return None;
    }
    let accepts = VersionReq::parse(&consumer.requirement)
        .map(|requirement| requirement.matches(target))
        // An empty requirement means any version.
        .unwrap_or(consumer.requirement.trim().is_empty());
    if accepts {
        return None;
    }
    let plural = if consumer.live_instances == 1 {
        ""
    } else {
        "s"
    };
    Some(Refusal {
        gate: Gate::Consumer,
        subject: format!("{}@{}", consumer.service, consumer.version),
        description: format!(
            "requires {service} {}; {target} does not satisfy it ({} live instance{plural})",
            consumer.requirement, consumer.live_instances,
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str, state: LifecycleState) -> PublishedVersion {
        PublishedVersion {
            version: Version::parse(text).unwrap(),
            state,
            artifact: Default::default(),
            schema: Vec::new(),
        }
    }

    #[test]
    fn only_released_versions_pass_the_lifecycle_gate_unless_forced_past_deprecation() {
        assert!(lifecycle("s@1", LifecycleState::Released, false).is_none());
        assert!(lifecycle("s@1", LifecycleState::Deprecated, true).is_none());
        let refusals: Vec<Refusal> = [
            lifecycle("s@1", LifecycleState::Deprecated, false),
            lifecycle("s@1", LifecycleState::Yanked, true),
            lifecycle("s@1", LifecycleState::Retired, true),
        ]
        .into_iter()
        .flatten()
        .collect();
        let descriptions: Vec<_> = refusals.iter().map(|r| r.description.as_str()).collect();
        assert_eq!(
            descriptions,
            [
                "is DEPRECATED; pass force to roll it out anyway",
                "is YANKED; it can never be rolled out",
                "is RETIRED; it can never be rolled out",
            ]
        );
        assert!(refusals.iter().all(|r| r.gate == Gate::Lifecycle));
    }

    #[test]
    fn unannounced_breaks_fail_the_compatibility_gate() {
        let service = ServiceName::parse("service", "greeter").unwrap();
        let (target, serving) = (
            version("1.2.0", LifecycleState::Released),
            version("1.1.0", LifecycleState::Released),
        );
        assert!(compatibility(&service, &target, &serving, &[]).is_none());
        let breaks = ["FIELD_SAME_TYPE demo.HelloRequest.name: changed type".to_owned()];
        let refusal = compatibility(&service, &target, &serving, &breaks).unwrap();
        assert_eq!(refusal.subject, "greeter@1.1.0");
        assert!(
            refusal
                .description
                .contains("FIELD_SAME_TYPE demo.HelloRequest.name: changed type"),
            "{}",
            refusal.description
        );
    }

    #[test]
    fn a_live_consumer_whose_requirement_the_target_misses_refuses_it() {
        let service = ServiceName::parse("service", "greeter").unwrap();
        let consumer = |requirement: &str, live| Consumer {
            service: "frontend".into(),
            version: "1.0.0".into(),
            requirement: requirement.into(),
            live_instances: live,
        };
        let target = Version::new(2, 0, 0);
        let refusal = consumer_refusal(&service, &target, &consumer("^1.1", 2)).unwrap();
        assert_eq!(refusal.gate, Gate::Consumer);
        assert_eq!(refusal.subject, "frontend@1.0.0");
        assert_eq!(
            refusal.description,
            "requires greeter ^1.1; 2.0.0 does not satisfy it (2 live instances)"
        );
        assert!(consumer_refusal(&service, &target, &consumer("^1.1", 0)).is_none());
        assert!(consumer_refusal(&service, &target, &consumer("^2", 1)).is_none());
        assert!(consumer_refusal(&service, &target, &consumer("", 1)).is_none());
    }
}
