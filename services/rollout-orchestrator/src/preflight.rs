//! The gates a rollout must pass before anything starts: the target's lifecycle, its schema
//! against every version still serving, and the requirement of every consumer with live
//! instances. A refusal lists every failed gate at once, so an operator fixes them in one go.

use std::collections::BTreeSet;

use flotilla_model::{Gate, ServiceName, Version, VersionReq};
use flotilla_proto::registry::v1 as pb;
use tonic::Status;

use crate::registry::Registry;

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
    registry: &Registry,
    service: &ServiceName,
    target: &pb::Version,
    force: bool,
) -> Result<Vec<Refusal>, Status> {
    let mut refusals = Vec::new();
    let subject = format!("{service}@{}", target.version);
    lifecycle(&subject, target, force, &mut refusals);

    let serving: BTreeSet<String> = registry
        .instances(service)
        .await?
        .into_iter()
        .map(|instance| instance.version)
        .filter(|version| *version != target.version)
        .collect();
    for version in serving {
        let Ok(parsed) = Version::parse(&version) else {
            continue;
        };
        let other = registry.get_version(service, &parsed).await?;
        let verdict = registry.compare(service, target, &other).await?;
        compatibility(service, target, &other, &verdict, &mut refusals);
    }

    let target_version = Version::parse(&target.version).map_err(|e| {
        Status::internal(format!(
            "the registry returned version {:?}: {e}",
            target.version
        ))
    })?;
    for consumer in registry.consumers(service).await? {
        if consumer.live_instances == 0 {
            continue;
        }
        let accepts = VersionReq::parse(&consumer.requirement)
            .map(|requirement| requirement.matches(&target_version))
            // An empty requirement means any version.
            .unwrap_or(consumer.requirement.trim().is_empty());
        if !accepts {
            refusals.push(Refusal {
                gate: Gate::Consumer,
                subject: format!("{}@{}", consumer.service, consumer.version),
                description: format!(
                    "requires {service} {}; {} does not satisfy it ({} live instance{})",
                    consumer.requirement,
                    target.version,
                    consumer.live_instances,
                    if consumer.live_instances == 1 {
                        ""
                    } else {
                        "s"
                    }
                ),
            });
        }
    }
    Ok(refusals)
}

fn lifecycle(subject: &str, target: &pb::Version, force: bool, refusals: &mut Vec<Refusal>) {
    let state =
        pb::LifecycleState::try_from(target.state).unwrap_or(pb::LifecycleState::Unspecified);
    let refusal = match state {
        pb::LifecycleState::Released => None,
        pb::LifecycleState::Deprecated if force => None,
        pb::LifecycleState::Deprecated => {
            Some("is DEPRECATED; pass force to roll it out anyway".to_owned())
        }
        pb::LifecycleState::Retired | pb::LifecycleState::Yanked => Some(format!(
            "is {}; it can never be rolled out",
            state.as_str_name().trim_start_matches("LIFECYCLE_STATE_")
        )),
        pb::LifecycleState::Unspecified => Some("has no lifecycle state".to_owned()),
    };
    if let Some(description) = refusal {
        refusals.push(Refusal {
            gate: Gate::Lifecycle,
            subject: subject.to_owned(),
            description,
        });
    }
}

/// A comparison with violations fails the gate unless it crosses a major version: a major bump
/// announces a break, and the consumer gate then decides whether anyone still needs the old API.
fn compatibility(
    service: &ServiceName,
    target: &pb::Version,
    serving: &pb::Version,
    verdict: &pb::CheckCompatibilityResponse,
    refusals: &mut Vec<Refusal>,
) {
    let breaking: Vec<String> = verdict
        .comparisons
        .iter()
        .filter(|c| !c.major_bump)
        .flat_map(|c| c.violations.iter())
        .map(|v| format!("{} {}: {}", v.rule, v.element, v.message))
        .collect();
    if breaking.is_empty() {
        return;
    }
    refusals.push(Refusal {
        gate: Gate::Compatibility,
        subject: format!("{service}@{}", serving.version),
        description: format!(
            "{} is still serving and {} breaks it without a major bump: {}",
            serving.version,
            target.version,
            breaking.join("; ")
        ),
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn version(text: &str, state: pb::LifecycleState) -> pb::Version {
        pb::Version {
            version: text.into(),
            state: state as i32,
            ..Default::default()
        }
    }

    #[test]
    fn only_released_versions_pass_the_lifecycle_gate_unless_forced_past_deprecation() {
        let mut refusals = Vec::new();
        lifecycle(
            "s@1",
            &version("1.0.0", pb::LifecycleState::Released),
            false,
            &mut refusals,
        );
        lifecycle(
            "s@1",
            &version("1.0.0", pb::LifecycleState::Deprecated),
            true,
            &mut refusals,
        );
        assert!(refusals.is_empty());
        lifecycle(
            "s@1",
            &version("1.0.0", pb::LifecycleState::Deprecated),
            false,
            &mut refusals,
        );
        lifecycle(
            "s@1",
            &version("1.0.0", pb::LifecycleState::Yanked),
            true,
            &mut refusals,
        );
        lifecycle(
            "s@1",
            &version("1.0.0", pb::LifecycleState::Retired),
            true,
            &mut refusals,
        );
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
    fn violations_fail_the_compatibility_gate_only_within_a_major_version() {
        let service = ServiceName::parse("service", "greeter").unwrap();
        let violation = pb::Violation {
            rule: "FIELD_SAME_TYPE".into(),
            element: "demo.HelloRequest.name".into(),
            message: "changed type".into(),
            ..Default::default()
        };
        let verdict = |major_bump| pb::CheckCompatibilityResponse {
            comparisons: vec![pb::Comparison {
                violations: vec![violation.clone()],
                major_bump,
                ..Default::default()
            }],
            ..Default::default()
        };
        let (target, serving) = (
            version("1.2.0", pb::LifecycleState::Released),
            version("1.1.0", pb::LifecycleState::Released),
        );
        let mut refusals = Vec::new();
        compatibility(&service, &target, &serving, &verdict(true), &mut refusals);
        assert!(refusals.is_empty());
        compatibility(&service, &target, &serving, &verdict(false), &mut refusals);
        assert_eq!(refusals.len(), 1);
        assert_eq!(refusals[0].subject, "greeter@1.1.0");
        assert!(
            refusals[0]
                .description
                .contains("FIELD_SAME_TYPE demo.HelloRequest.name: changed type"),
            "{}",
            refusals[0].description
        );
    }
}
