//! Replies: model types as flotilla.registry.v1 messages.

use flotilla_compat::{
    policy::{Direction, Evaluation},
    semver::Bump,
};
use flotilla_model::{
    self as model, CompatibilityMode, CompatibilityPolicy, LifecycleState, RuleCategory,
    ServiceName, ServingStatus,
};
use flotilla_proto::registry::v1 as pb;

fn policy_message(policy: CompatibilityPolicy) -> pb::CompatibilityPolicy {
    pb::CompatibilityPolicy {
        mode: mode(policy.mode) as i32,
        category: category(policy.category) as i32,
    }
}

pub fn service(s: model::Service) -> pb::Service {
    pb::Service {
        name: s.name.to_string(),
        owner: s.owner,
        policy: Some(policy_message(s.policy)),
        create_time: Some(s.created.into()),
        description: s.description,
    }
}

fn mode(mode: CompatibilityMode) -> pb::CompatibilityMode {
    match mode {
        CompatibilityMode::None => pb::CompatibilityMode::None,
        CompatibilityMode::Backward => pb::CompatibilityMode::Backward,
        CompatibilityMode::BackwardTransitive => pb::CompatibilityMode::BackwardTransitive,
        CompatibilityMode::Forward => pb::CompatibilityMode::Forward,
        CompatibilityMode::ForwardTransitive => pb::CompatibilityMode::ForwardTransitive,
        CompatibilityMode::Full => pb::CompatibilityMode::Full,
        CompatibilityMode::FullTransitive => pb::CompatibilityMode::FullTransitive,
    }
}

fn category(category: RuleCategory) -> pb::RuleCategory {
    match category {
        RuleCategory::File => pb::RuleCategory::File,
        RuleCategory::Package => pb::RuleCategory::Package,
        RuleCategory::WireJson => pb::RuleCategory::WireJson,
        RuleCategory::Wire => pb::RuleCategory::Wire,
    }
}

pub fn state(state: LifecycleState) -> pb::LifecycleState {
    match state {
        LifecycleState::Released => pb::LifecycleState::Released,
        LifecycleState::Deprecated => pb::LifecycleState::Deprecated,
        LifecycleState::Retired => pb::LifecycleState::Retired,
        LifecycleState::Yanked => pb::LifecycleState::Yanked,
    }
}

pub fn version(v: model::VersionRecord, include_schema: bool) -> pb::Version {
    pb::Version {
        service: v.service.to_string(),
        version: v.version.to_string(),
        file_descriptor_set: if include_schema {
            v.schema.bytes().to_vec()
        } else {
            Vec::new()
        },
        schema_fingerprint: v.schema.fingerprint().to_owned(),
        artifact: Some(pb::Artifact {
            image: v.artifact.image,
            command: v.artifact.command,
        }),
        dependencies: v
            .dependencies
            .into_iter()
            .map(|d| pb::Dependency {
                service: d.service.to_string(),
                requirement: d.requirement.to_string(),
            })
            .collect(),
        labels: v.labels.into_iter().collect(),
        state: state(v.state) as i32,
        history: v
            .history
            .into_iter()
            .map(|e| pb::LifecycleEvent {
                state: state(e.state) as i32,
                reason: e.reason,
                time: Some(e.at.into()),
                actor: e.actor,
            })
            .collect(),
        publish_time: Some(v.published.into()),
    }
}

pub fn rejection(r: model::Rejection) -> pb::Rejection {
    let reason = match r.reason {
        model::RejectionReason::RequirementMismatch => pb::RejectionReason::RequirementMismatch,
        model::RejectionReason::Yanked => pb::RejectionReason::Yanked,
        model::RejectionReason::Retired => pb::RejectionReason::Retired,
        model::RejectionReason::Superseded => pb::RejectionReason::Superseded,
        model::RejectionReason::SchemaIncompatible => pb::RejectionReason::SchemaIncompatible,
    };
    pb::Rejection {
        version: r.version.to_string(),
        reason: reason as i32,
        detail: r.detail,
    }
}

fn status(status: ServingStatus) -> pb::ServingStatus {
    match status {
        ServingStatus::Serving => pb::ServingStatus::Serving,
        ServingStatus::NotServing => pb::ServingStatus::NotServing,
    }
}

pub fn instance(i: model::Instance) -> pb::Instance {
    pb::Instance {
        id: i.id.to_string(),
        service: i.service.to_string(),
        version: i.version.to_string(),
        address: i.address,
        metadata: i.metadata.into_iter().collect(),
        status: status(i.status) as i32,
        register_time: Some(i.registered.into()),
        lease_expire_time: Some(i.expires.into()),
    }
}

pub fn route(service: &ServiceName, route: Option<model::Route>) -> pb::Route {
    match route {
        None => pb::Route {
            service: service.to_string(),
            weights: vec![],
            update_time: None,
        },
        Some(route) => pb::Route {
            service: route.service.to_string(),
            weights: route
                .weights
                .into_iter()
                .map(|w| pb::VersionWeight {
                    version: w.version.to_string(),
                    weight: w.weight,
                })
                .collect(),
            update_time: Some(route.updated.into()),
        },
    }
}

pub fn endpoint_set(
    service: &ServiceName,
    selected: &model::SelectedEndpoints,
    revision: u64,
) -> pb::EndpointSet {
    pb::EndpointSet {
        service: service.to_string(),
        endpoints: selected
            .endpoints
            .iter()
            .map(|e| pb::Endpoint {
                instance_id: e.instance.id.to_string(),
                address: e.instance.address.clone(),
                version: e.instance.version.to_string(),
                version_weight: e.version_weight,
                status: status(e.instance.status) as i32,
                metadata: e
                    .instance
                    .metadata
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
            })
            .collect(),
        revision,
        route_applied: selected.route_applied,
    }
}

pub fn audit_event(e: model::AuditEvent) -> pb::AuditEvent {
    pb::AuditEvent {
        id: e.id,
        time: Some(e.at.into()),
        actor: e.actor,
        action: e.action,
        service: e.service,
        version: e.version,
        detail_json: e.detail_json,
    }
}

fn bump(bump: Bump) -> pb::SemverBump {
    match bump {
        Bump::Patch => pb::SemverBump::Patch,
        Bump::Minor => pb::SemverBump::Minor,
        Bump::Major => pb::SemverBump::Major,
    }
}

fn violation(v: &flotilla_compat::Violation) -> pb::Violation {
    pb::Violation {
        rule: v.rule.to_owned(),
        categories: v.categories.iter().map(|c| category(*c) as i32).collect(),
        file: v.location.file.clone(),
        element: v.location.element.clone(),
        number: v.location.number.unwrap_or(0),
        message: v.message.clone(),
    }
}

/// A dry run's outcome. With no `version`, "compatible" means no comparison found a violation.
pub fn compatibility_response(
    evaluation: &Evaluation,
    policy: CompatibilityPolicy,
    version: Option<&model::Version>,
) -> pb::CheckCompatibilityResponse {
    let violations: usize = evaluation
        .comparisons
        .iter()
        .map(|c| c.report.violations.len())
        .sum();
    let (compatible, summary) = match version {
        Some(version) => (evaluation.accepted(), evaluation.summary(version)),
        None if violations == 0 => (
            true,
            format!(
                "no breaking changes in {} comparison(s); the changes call for a {} bump",
                evaluation.comparisons.len(),
                evaluation.required
            ),
        ),
        None => (
            false,
            format!(
                "{violations} breaking change(s) in {} comparison(s): publishing needs a major \
                 version bump",
                evaluation.comparisons.len()
            ),
        ),
    };
    pb::CheckCompatibilityResponse {
        compatible,
        summary,
        policy: Some(policy_message(policy)),
        comparisons: evaluation
            .comparisons
            .iter()
            .map(|c| pb::Comparison {
                against_version: c.against.to_string(),
                direction: match c.direction {
                    Direction::Backward => pb::Direction::Backward,
                    Direction::Forward => pb::Direction::Forward,
                } as i32,
                violations: c.report.violations.iter().map(violation).collect(),
                additions: c.report.additions.clone(),
                major_bump: c.major_bump,
            })
            .collect(),
        predecessor: evaluation
            .predecessor
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        required_bump: bump(evaluation.required) as i32,
        chosen_bump: match version {
            Some(_) if evaluation.predecessor.is_some() => bump(evaluation.chosen) as i32,
            _ => pb::SemverBump::Unspecified as i32,
        },
    }
}
