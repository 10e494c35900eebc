//! The compatibility check of publishing, and its dry run.

use flotilla_compat::{
    CompatError,
    policy::{Against, Earlier, Evaluation, evaluate},
};
use flotilla_model::{
    CompatibilityPolicy, LifecycleState, NewVersion, Schema, Service, Version, VersionRecord,
};
use flotilla_store::{GateRejection, GateViolation, PublishGate};
use prost_types::FileDescriptorSet;

/// Refuses a version whose schema breaks an earlier version it does not leave by a major bump,
/// under the service's policy. Runs inside the publish transaction.
#[derive(Debug, Default)]
pub struct CompatibilityGate;

impl PublishGate for CompatibilityGate {
    fn check(
        &self,
        service: &Service,
        earlier: &[VersionRecord],
        candidate: &NewVersion,
    ) -> Result<(), GateRejection> {
        let evaluation = evaluate_against(
            service.policy,
            &Against::Policy,
            &candidate.version,
            &candidate.schema,
            earlier,
        )
        .map_err(|e| GateRejection {
            summary: failure_summary(&e, earlier),
            violations: vec![],
        })?;
        if evaluation.accepted() {
            return Ok(());
        }
        Err(GateRejection {
            summary: evaluation.summary(&candidate.version),
            violations: evaluation
                .refusing()
                .flat_map(|comparison| {
                    comparison.report.violations.iter().map(|v| GateViolation {
                        rule: v.rule.to_owned(),
                        subject: format!(
                            "{} against {} ({})",
                            v.location,
                            comparison.against,
                            format!("{:?}", comparison.direction).to_lowercase()
                        ),
                        description: v.message.clone(),
                    })
                })
                .collect(),
        })
    }
}

/// Why a comparison with stored versions could not be made, in words an operator can act on.
/// The candidate was validated when the request was read, so a schema the engine refuses is a
/// stored one: accepted before validation was what it is now. Yanking that version takes it out
/// of every later comparison.
pub fn failure_summary(error: &CompatError, stored: &[VersionRecord]) -> String {
    match error {
        CompatError::InvalidSchema {
            which: flotilla_compat::Side::Previous,
            ..
        }
        | CompatError::Decode {
            which: flotilla_compat::Side::Previous,
            ..
        } => {
            let invalid = stored.iter().find_map(|r| {
                let problem = flotilla_compat::validate_encoded(r.schema.bytes()).err()?;
                (r.state != LifecycleState::Yanked).then_some((r, problem))
            });
            match invalid {
                Some((record, problem)) => format!(
                    "the stored schema of {} {} {problem}; yank that version to publish past it",
                    record.service, record.version
                ),
                None => format!("the compatibility check failed: {error}"),
            }
        }
        _ => format!("the compatibility check failed: {error}"),
    }
}

/// Evaluates `candidate` at `version` against the stored versions that matter: yanked versions
/// are left out (a fix for a yanked release must not be held to it), and with the policy's
/// choice of a non-transitive mode only the latest earlier version is decoded.
pub fn evaluate_against(
    policy: CompatibilityPolicy,
    against: &Against,
    version: &Version,
    candidate: &Schema,
    stored: &[VersionRecord],
) -> Result<Evaluation, CompatError> {
    let mut usable: Vec<&VersionRecord> = stored
        .iter()
        .filter(|r| r.state != LifecycleState::Yanked)
        .collect();
    usable.sort_by(|a, b| b.version.cmp(&a.version));
    if *against == Against::Policy && !policy.mode.is_transitive() {
        // The predecessor is all a non-transitive policy compares with.
        usable.retain(|r| &r.version < version);
        usable.truncate(1);
    }
    let decoded: Vec<(Version, FileDescriptorSet)> = usable
        .iter()
        .map(|r| (r.version.clone(), r.schema.descriptor_set()))
        .collect();
    let earlier: Vec<Earlier<'_>> = decoded
        .iter()
        .map(|(version, schema)| Earlier { version, schema })
        .collect();
    evaluate(
        policy,
        against,
        version,
        &candidate.descriptor_set(),
        &earlier,
    )
}

/// Why a caller compiled against `caller` cannot call `server`'s version, if it cannot: the first
/// of the changes that would make it misread bytes (see
/// [`flotilla_compat::policy::caller_compatibility`]).
pub fn caller_incompatibility(
    caller: &FileDescriptorSet,
    server: &VersionRecord,
) -> Option<String> {
    match flotilla_compat::policy::caller_compatibility(caller, &server.schema.descriptor_set()) {
        Ok(report) => report.violations.first().map(|v| {
            let more = report.violations.len() - 1;
            let suffix = if more > 0 {
                format!(" (and {more} more)")
            } else {
                String::new()
            };
            format!("{}: {}{suffix}", v.rule, v.message)
        }),
        Err(error) => Some(error.to_string()),
    }
}

/// The version a dry run without a version assumes: one patch above the highest stored version
/// that is not yanked (0.0.0 when there is none), so every stored version counts as earlier.
pub fn after_highest(stored: &[VersionRecord]) -> Version {
    stored
        .iter()
        .filter(|r| r.state != LifecycleState::Yanked)
        .map(|r| &r.version)
        .max()
        .map_or_else(
            || Version::new(0, 0, 0),
            |v| Version::new(v.major, v.minor, v.patch + 1),
        )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use flotilla_model::{
        Artifact, CompatibilityMode, LifecycleEvent, RuleCategory, ServiceName, Timestamp, fixtures,
    };

    use super::*;

    fn service(mode: CompatibilityMode) -> Service {
        Service {
            name: ServiceName::from_trusted("greeter".into()),
            owner: String::new(),
            description: String::new(),
            policy: CompatibilityPolicy {
                mode,
                category: RuleCategory::WireJson,
            },
            created: Timestamp(0),
        }
    }

    fn record(version: &str, schema: Schema, state: LifecycleState) -> VersionRecord {
        VersionRecord {
            service: ServiceName::from_trusted("greeter".into()),
            version: Version::parse(version).unwrap(),
            schema,
            artifact: Artifact::default(),
            dependencies: vec![],
            labels: BTreeMap::new(),
            state,
            history: vec![LifecycleEvent {
                state,
                reason: String::new(),
                at: Timestamp(0),
                actor: String::new(),
            }],
            published: Timestamp(0),
        }
    }

    fn candidate(version: &str, schema: Schema) -> NewVersion {
        NewVersion {
            service: ServiceName::from_trusted("greeter".into()),
            version: Version::parse(version).unwrap(),
            schema,
            artifact: Artifact::default(),
            dependencies: vec![],
            labels: BTreeMap::new(),
        }
    }

    #[test]
    fn removing_fields_without_a_major_bump_is_refused_with_every_violation() {
        // Fixture 3 has fields extra_0..extra_2 that fixture 1 lacks: going back deletes two.
        let earlier = [record(
            "1.0.0",
            fixtures::greeter_schema(3),
            LifecycleState::Released,
        )];
        let gate = CompatibilityGate;
        let refused = gate
            .check(
                &service(CompatibilityMode::Backward),
                &earlier,
                &candidate("1.1.0", fixtures::greeter_schema(1)),
            )
            .unwrap_err();
        assert!(
            refused.summary.contains("needs a major version bump"),
            "{}",
            refused.summary
        );
        let rules: Vec<_> = refused.violations.iter().map(|v| v.rule.as_str()).collect();
        assert!(!rules.is_empty());
        assert!(
            refused
                .violations
                .iter()
                .all(|v| v.subject.contains("against 1.0.0"))
        );
        assert!(
            gate.check(
                &service(CompatibilityMode::Backward),
                &earlier,
                &candidate("2.0.0", fixtures::greeter_schema(1)),
            )
            .is_ok(),
            "a major bump allows it"
        );
        assert!(
            gate.check(
                &service(CompatibilityMode::None),
                &earlier,
                &candidate("1.1.0", fixtures::greeter_schema(1)),
            )
            .is_ok(),
            "NONE checks nothing"
        );
    }

    #[test]
    fn yanked_versions_are_not_held_against_a_fix() {
        let earlier = [
            record(
                "1.0.0",
                fixtures::greeter_schema(1),
                LifecycleState::Released,
            ),
            record("1.1.0", fixtures::greeter_schema(3), LifecycleState::Yanked),
        ];
        let fix = candidate("1.1.1", fixtures::greeter_schema(1));
        assert!(
            CompatibilityGate
                .check(
                    &service(CompatibilityMode::BackwardTransitive),
                    &earlier,
                    &fix
                )
                .is_ok()
        );
    }
}
