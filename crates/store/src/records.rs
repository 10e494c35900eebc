//! What both backends share: how records become columns, and the rules a transaction checks once
//! it has read the rows it needs.

use std::collections::BTreeMap;

use flotilla_model::{
    Artifact, CompatibilityMode, CompatibilityPolicy, Dependency, LifecycleState, NewInstance,
    NewRolloutEvent, NewVersion, Rollout, RolloutEvent, RolloutId, RolloutState, RuleCategory,
    ServiceName, ServingStatus, Timestamp, Version, VersionRecord, VersionReq, VersionWeight,
};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::{PublishGate, StoreError};

pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("stored {what} cannot be read: {detail}"))
}

// ---- columns ---------------------------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct ArtifactColumn {
    image: String,
    command: Vec<String>,
}

pub(crate) fn artifact_to_json(artifact: &Artifact) -> String {
    serde_json::to_string(&ArtifactColumn {
        image: artifact.image.clone(),
        command: artifact.command.clone(),
    })
    .expect("an artifact serializes")
}

pub(crate) fn artifact_from_json(text: &str) -> Result<Artifact, StoreError> {
    let column: ArtifactColumn = serde_json::from_str(text).map_err(|e| corrupt("artifact", e))?;
    Ok(Artifact {
        image: column.image,
        command: column.command,
    })
}

#[derive(Serialize, Deserialize)]
struct DependencyColumn {
    service: String,
    requirement: String,
}

pub(crate) fn dependencies_to_json(dependencies: &[Dependency]) -> String {
    let columns: Vec<_> = dependencies
        .iter()
        .map(|d| DependencyColumn {
            service: d.service.to_string(),
            requirement: d.requirement.to_string(),
        })
        .collect();
    serde_json::to_string(&columns).expect("dependencies serialize")
}

pub(crate) fn dependencies_from_json(text: &str) -> Result<Vec<Dependency>, StoreError> {
    let columns: Vec<DependencyColumn> =
        serde_json::from_str(text).map_err(|e| corrupt("dependencies", e))?;
    columns
        .into_iter()
        .map(|c| {
            Ok(Dependency {
                service: ServiceName::from_trusted(c.service),
                requirement: VersionReq::parse(&c.requirement)
                    .map_err(|e| corrupt("dependency requirement", e))?,
            })
        })
        .collect()
}

pub(crate) fn map_to_json(map: &BTreeMap<String, String>) -> String {
    serde_json::to_string(map).expect("a string map serializes")
}

pub(crate) fn map_from_json(text: &str) -> Result<BTreeMap<String, String>, StoreError> {
    serde_json::from_str(text).map_err(|e| corrupt("labels or metadata", e))
}

#[derive(Serialize, Deserialize)]
struct WeightColumn {
    version: String,
    weight: u32,
}

pub(crate) fn weights_to_json(weights: &[VersionWeight]) -> String {
    let columns: Vec<_> = weights
        .iter()
        .map(|w| WeightColumn {
            version: w.version.to_string(),
            weight: w.weight,
        })
        .collect();
    serde_json::to_string(&columns).expect("weights serialize")
}

pub(crate) fn weights_from_json(text: &str) -> Result<Vec<VersionWeight>, StoreError> {
    let columns: Vec<WeightColumn> =
        serde_json::from_str(text).map_err(|e| corrupt("route weights", e))?;
    columns
        .into_iter()
        .map(|c| {
            Ok(VersionWeight {
                version: parse_stored_version(&c.version)?,
                weight: c.weight,
            })
        })
        .collect()
}

pub(crate) fn parse_stored_version(text: &str) -> Result<Version, StoreError> {
    Version::parse(text).map_err(|e| corrupt("version", e))
}

pub(crate) fn parse_state(text: &str) -> Result<LifecycleState, StoreError> {
    LifecycleState::from_str_trusted(text).ok_or_else(|| corrupt("lifecycle state", text))
}

pub(crate) fn parse_status(text: &str) -> Result<ServingStatus, StoreError> {
    ServingStatus::from_str_trusted(text).ok_or_else(|| corrupt("serving status", text))
}

pub(crate) fn parse_policy(mode: &str, category: &str) -> Result<CompatibilityPolicy, StoreError> {
    Ok(CompatibilityPolicy {
        mode: CompatibilityMode::parse(mode).ok_or_else(|| corrupt("compatibility mode", mode))?,
        category: RuleCategory::parse(category)
            .ok_or_else(|| corrupt("rule category", category))?,
    })
}

pub(crate) fn new_instance_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

// ---- rollouts --------------------------------------------------------------------------------

/// The states of [`RolloutState::is_active`], as the SQL of both stores and their
/// `rollouts_one_active_per_service` index name them.
pub(crate) const ACTIVE_ROLLOUT_STATES: &str = "'PROGRESSING', 'PAUSED', 'ABORTING'";

/// The rows a page of `list_rollouts` holds when the query asks for 0, and the most it holds.
const DEFAULT_ROLLOUT_PAGE: u32 = 100;
const MAX_ROLLOUT_PAGE: u32 = 1000;

pub(crate) fn rollout_page_size(limit: u32) -> i64 {
    i64::from(match limit {
        0 => DEFAULT_ROLLOUT_PAGE,
        n => n.min(MAX_ROLLOUT_PAGE),
    })
}

/// A rollout as its `document` column holds it.
pub(crate) fn rollout_to_json(rollout: &Rollout) -> Result<String, StoreError> {
    let text = serde_json::to_string(rollout).map_err(|e| {
        StoreError::Internal(format!("rollout {} cannot be stored: {e}", rollout.id))
    })?;
    // serde_json writes a NaN or infinite figure as null, which does not read back as a number:
    // refusing the write keeps one bad measurement from making the rollout unreadable for good.
    if let Err(e) = serde_json::from_str::<Rollout>(&text) {
        return Err(StoreError::Internal(format!(
            "rollout {} cannot be stored: it would not read back ({e}); are all figures finite?",
            rollout.id
        )));
    }
    Ok(text)
}

/// A rollout from its `document` and `generation` columns. The column is the generation: the
/// store bumps it without rewriting anything else it does not have to.
pub(crate) fn rollout_from_json(text: &str, generation: i64) -> Result<Rollout, StoreError> {
    let mut rollout: Rollout = serde_json::from_str(text).map_err(|e| corrupt("rollout", e))?;
    rollout.generation = stored_count("rollout generation", generation)?;
    Ok(rollout)
}

pub(crate) fn event_to_json(event: &NewRolloutEvent) -> Result<String, StoreError> {
    let text = serde_json::to_string(event)
        .map_err(|e| StoreError::Internal(format!("a rollout event cannot be stored: {e}")))?;
    if let Err(e) = serde_json::from_str::<NewRolloutEvent>(&text) {
        return Err(StoreError::Internal(format!(
            "a rollout event cannot be stored: it would not read back ({e}); are all figures \
             finite?"
        )));
    }
    Ok(text)
}

pub(crate) fn event_from_json(text: &str, sequence: i64) -> Result<RolloutEvent, StoreError> {
    let event: NewRolloutEvent =
        serde_json::from_str(text).map_err(|e| corrupt("rollout event", e))?;
    Ok(RolloutEvent {
        sequence: stored_count("rollout event sequence", sequence)?,
        time: event.time,
        kind: event.kind,
        message: event.message,
        halt: event.halt,
        step_index: event.step_index,
    })
}

pub(crate) fn parse_rollout_state(text: &str) -> Result<RolloutState, StoreError> {
    RolloutState::parse(text).ok_or_else(|| corrupt("rollout state", text))
}

/// Puts a census in the order [`crate::Census`] promises (versions by semver, not text).
pub(crate) fn sort_census(census: &mut crate::Census) {
    census
        .versions
        .sort_by(|a, b| (&a.0, a.1.as_str()).cmp(&(&b.0, b.1.as_str())));
    census
        .instances
        .sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
}

/// A generation, sequence or revision number from a BIGINT column.
pub(crate) fn stored_count(what: &str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|e| corrupt(what, e))
}

/// A generation, sequence or revision number for a BIGINT column.
pub(crate) fn count_column(what: &str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Internal(format!("{what} {value} is out of range")))
}

/// What an update reads of the stored rollout, locked, before deciding.
pub(crate) struct StoredRollout {
    pub(crate) service: ServiceName,
    pub(crate) state: RolloutState,
    pub(crate) generation: u64,
}

/// What an update transaction writes, once [`plan_rollout_update`] accepted it.
pub(crate) struct RolloutUpdate {
    /// The rollout as stored, but for `revision` when `succeeds`.
    pub(crate) rollout: Rollout,
    /// The update makes the rollout succeed: record the service's next revision.
    pub(crate) succeeds: bool,
    /// The update makes the rollout active again: another active rollout of the service refuses
    /// it.
    pub(crate) reactivates: bool,
}

/// Decides an update from the stored rollout: compare-and-set on the generation.
pub(crate) fn plan_rollout_update(
    rollout: &Rollout,
    stored: &StoredRollout,
    now: Timestamp,
) -> Result<RolloutUpdate, StoreError> {
    if rollout.service != stored.service {
        return Err(StoreError::precondition(
            "service",
            format!(
                "rollout {} is of service {:?}; a rollout cannot move to another service",
                rollout.id,
                stored.service.as_str()
            ),
        ));
    }
    if rollout.generation != stored.generation {
        return Err(StoreError::RolloutConflict {
            id: rollout.id.clone(),
            expected: rollout.generation,
            found: stored.generation,
        });
    }
    let mut next = rollout.clone();
    next.generation = stored.generation + 1;
    next.updated = now;
    Ok(RolloutUpdate {
        succeeds: stored.state != RolloutState::Succeeded
            && rollout.state == RolloutState::Succeeded,
        reactivates: !stored.state.is_active() && rollout.state.is_active(),
        rollout: next,
    })
}

/// The refusal of a fenced write whose holder does not hold the service's lease.
pub(crate) fn lease_lost(service: &ServiceName, holder: &str) -> StoreError {
    StoreError::LeaseLost {
        service: service.clone(),
        holder: holder.to_owned(),
    }
}

pub(crate) fn rollout_active(service: &ServiceName, active: String) -> StoreError {
    StoreError::RolloutActive {
        service: service.clone(),
        active: RolloutId::from_trusted(active),
    }
}

// ---- rules -----------------------------------------------------------------------------------

/// What a publish transaction should do, decided from the rows it read.
pub(crate) enum PublishPlan {
    /// Identical content is already stored: return it.
    AlreadyPublished(Box<VersionRecord>),
    /// Insert the new version.
    Insert,
}

/// Decides a publish: immutability first, then the gate. `existing` is every stored version of the
/// service, highest first; `missing_dependency` is the index of the first dependency that names a
/// service that does not exist.
pub(crate) fn plan_publish(
    new: &NewVersion,
    service: &flotilla_model::Service,
    existing: &[VersionRecord],
    missing_dependency: Option<usize>,
    gate: &dyn PublishGate,
) -> Result<PublishPlan, StoreError> {
    if let Some(stored) = existing.iter().find(|v| v.version == new.version) {
        if new.same_content_as(stored) {
            return Ok(PublishPlan::AlreadyPublished(Box::new(stored.clone())));
        }
        return Err(StoreError::VersionConflict {
            service: new.service.clone(),
            version: new.version.clone(),
            differences: content_differences(new, stored).join(", "),
        });
    }
    if let Some(clash) = existing
        .iter()
        .find(|v| same_precedence(&v.version, &new.version))
    {
        return Err(StoreError::VersionConflict {
            service: new.service.clone(),
            version: new.version.clone(),
            differences: format!(
                "build metadata only: {} is already published, and semver gives both the same \
                 precedence",
                clash.version
            ),
        });
    }
    if let Some(index) = missing_dependency {
        let dependency = &new.dependencies[index];
        return Err(StoreError::precondition(
            format!("dependencies[{index}].service"),
            format!("service {:?} does not exist", dependency.service.as_str()),
        ));
    }
    gate.check(service, existing, new)
        .map_err(StoreError::Rejected)?;
    Ok(PublishPlan::Insert)
}

fn same_precedence(a: &Version, b: &Version) -> bool {
    a.major == b.major && a.minor == b.minor && a.patch == b.patch && a.pre == b.pre
}

fn content_differences(new: &NewVersion, stored: &VersionRecord) -> Vec<&'static str> {
    let mut differences = Vec::new();
    if new.schema.fingerprint() != stored.schema.fingerprint() {
        differences.push("file_descriptor_set");
    }
    if new.artifact != stored.artifact {
        differences.push("artifact");
    }
    if new.dependencies != stored.dependencies {
        differences.push("dependencies");
    }
    if new.labels != stored.labels {
        differences.push("labels");
    }
    differences
}

/// Checks a route against the service's versions.
pub(crate) fn check_route(
    weights: &[VersionWeight],
    versions: &[(Version, LifecycleState)],
) -> Result<(), StoreError> {
    for (i, w) in weights.iter().enumerate() {
        match versions.iter().find(|(v, _)| v == &w.version) {
            None => {
                return Err(StoreError::precondition(
                    format!("weights[{i}].version"),
                    format!("version {} is not published", w.version),
                ));
            }
            Some((_, state)) if w.weight > 0 && !state.is_resolvable() => {
                return Err(StoreError::precondition(
                    format!("weights[{i}].weight"),
                    format!(
                        "version {} is {state}; only RELEASED or DEPRECATED versions may get traffic",
                        w.version
                    ),
                ));
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// Checks that an instance may be registered for a version in `state` (None: not published).
pub(crate) fn check_register(
    new: &NewInstance,
    state: Option<LifecycleState>,
) -> Result<(), StoreError> {
    match state {
        None => Err(StoreError::precondition(
            "version",
            format!(
                "version {} of service {:?} is not published",
                new.version,
                new.service.as_str()
            ),
        )),
        Some(state) if !state.is_resolvable() => Err(StoreError::precondition(
            "version",
            format!(
                "version {} of service {:?} is {state}; instances may run only RELEASED or \
                 DEPRECATED versions",
                new.version,
                new.service.as_str()
            ),
        )),
        Some(_) => Ok(()),
    }
}

/// Audit details, as JSON objects.
pub(crate) mod detail {
    use super::*;

    pub(crate) fn service(owner: &str, policy: &CompatibilityPolicy) -> String {
        json!({"owner": owner, "mode": policy.mode.as_str(), "category": policy.category.as_str()})
            .to_string()
    }

    pub(crate) fn publish(new: &NewVersion) -> String {
        json!({
            "fingerprint": new.schema.fingerprint(),
            "artifact": new.artifact,
            "dependencies": new.dependencies.iter()
                .map(|d| format!("{} {}", d.service, d.requirement)).collect::<Vec<_>>(),
        })
        .to_string()
    }

    pub(crate) fn transition(from: LifecycleState, to: LifecycleState, reason: &str) -> String {
        json!({"from": from.as_str(), "to": to.as_str(), "reason": reason}).to_string()
    }

    pub(crate) fn instance(id: &str, address: &str) -> String {
        json!({"instance_id": id, "address": address}).to_string()
    }

    pub(crate) fn route(weights: &[VersionWeight]) -> String {
        let map: BTreeMap<String, u32> = weights
            .iter()
            .map(|w| (w.version.to_string(), w.weight))
            .collect();
        json!({"weights": map}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_active_states_in_sql_are_the_models() {
        let all = [
            RolloutState::Progressing,
            RolloutState::Paused,
            RolloutState::Aborting,
            RolloutState::Aborted,
            RolloutState::Succeeded,
        ];
        for state in all {
            assert_eq!(
                ACTIVE_ROLLOUT_STATES.contains(&format!("'{}'", state.as_str())),
                state.is_active(),
                "{state}"
            );
        }
    }

    #[test]
    fn rollout_pages_default_to_100_and_hold_at_most_1000() {
        assert_eq!(rollout_page_size(0), 100);
        assert_eq!(rollout_page_size(7), 7);
        assert_eq!(rollout_page_size(5000), 1000);
    }
}
