//! Why a rollout is where it is: a summary in words, every gate's result with its figures, and
//! each instance's health checked now. The judging is pure ([`summary`], [`gates`]) and reads only
//! the stored rollout, so any orchestrator replica explains any rollout the same way.

use std::time::Duration;

use flotilla_model::{
    Figure, Gate, Health, InstanceView, Millis, PlanStep, Role, Rollout, RolloutState, Strategy,
    Timestamp, Verdict,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

/// The recorded health of a stable instance in an explanation: the orchestrator watches only the
/// new version's instances.
pub const UNWATCHED: &str = "UNWATCHED";

/// How long the live health check of one instance may take.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(1);

/// A gate's standing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GateVerdict {
    Passed,
    Failed,
    Inconclusive,
    /// Not decided yet.
    Waiting,
    /// Does not apply to this rollout.
    Skipped,
}

impl GateVerdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Passed => "PASSED",
            Self::Failed => "FAILED",
            Self::Inconclusive => "INCONCLUSIVE",
            Self::Waiting => "WAITING",
            Self::Skipped => "SKIPPED",
        }
    }
}

/// One gate's result.
#[derive(Debug, Clone, PartialEq)]
pub struct GateResult {
    pub gate: Gate,
    pub verdict: GateVerdict,
    pub message: String,
    pub figures: Vec<Figure>,
    pub query: String,
    pub time: Option<Timestamp>,
}

impl GateResult {
    fn new(gate: Gate, verdict: GateVerdict, message: impl Into<String>) -> Self {
        Self {
            gate,
            verdict,
            message: message.into(),
            figures: Vec::new(),
            query: String::new(),
            time: None,
        }
    }
}

/// Where the rollout is, why, and what comes next, in a few sentences. `holder` is the
/// orchestrator holding the service's lease now, if any.
pub fn summary(rollout: &Rollout, holder: Option<&str>, now: Timestamp) -> String {
    let steps = rollout.plan.len();
    let step = |r: &Rollout| match r.current_step() {
        Some(step) => format!("step {} of {steps} ({step})", r.step_index + 1),
        None => format!("the end of its {steps} steps"),
    };
    let halt = rollout.halt.as_ref().map(|h| {
        format!(
            "the {} gate stopped it at {}: {}",
            h.gate,
            h.time,
            h.message.trim_end_matches('.')
        )
    });
    let traffic = weights(rollout);
    let owner = match holder {
        Some(holder) if rollout.state.is_active() => format!(" Carried out by {holder}."),
        None if rollout.state.is_active() => {
            " No orchestrator holds the service's lease: it goes on when one does.".to_owned()
        }
        _ => String::new(),
    };
    let body = match rollout.state {
        RolloutState::Progressing => {
            let next = match rollout.current_step() {
                Some(PlanStep::Pause { duration_ms: None }) => {
                    "waiting for an operator's Promote".to_owned()
                }
                Some(PlanStep::Pause { .. }) => match rollout.pause_until {
                    Some(until) => format!(
                        "the pause ends by itself in {}",
                        Millis(until.millis().saturating_sub(now.millis()).max(0) as u64)
                    ),
                    None => "pausing".to_owned(),
                },
                Some(PlanStep::Analysis { intervals }) => {
                    let passes = rollout
                        .last_analysis
                        .as_ref()
                        .map_or(0, |a| a.passes_in_a_row);
                    format!("{passes} of {intervals} analysis intervals passed in a row")
                }
                Some(_) => rollout.status_message.clone(),
                None => "finishing".to_owned(),
            };
            format!(
                "PROGRESSING at {}: {next}. Traffic: {traffic}.",
                step(rollout)
            )
        }
        RolloutState::Paused => match &halt {
            Some(halt) => format!(
                "PAUSED at {}: {halt}. Traffic stays as it is ({traffic}); resume to go on, or \
                 abort.",
                step(rollout)
            ),
            None => format!(
                "PAUSED by an operator at {}. Traffic stays as it is ({traffic}); resume to go \
                 on, or abort.",
                step(rollout)
            ),
        },
        RolloutState::Aborting => format!(
            "ABORTING: {}. Traffic goes back to {} first, then the new instances are removed.",
            halt.as_deref().unwrap_or("an abort was requested"),
            stable(rollout)
        ),
        RolloutState::Aborted => format!(
            "ABORTED at {}: {}. {}",
            step(rollout),
            halt.as_deref().unwrap_or("aborted"),
            match &rollout.from_version {
                Some(from) => format!("All traffic is on {from}."),
                None => "Nothing of it runs.".to_owned(),
            }
        ),
        RolloutState::Succeeded => format!(
            "SUCCEEDED at {}: all traffic on {}@{} (revision {}).",
            rollout.updated, rollout.service, rollout.to_version, rollout.revision
        ),
    };
    format!("{body}{owner}")
}

fn weights(rollout: &Rollout) -> String {
    if rollout.weights.is_empty() {
        return "not split yet".to_owned();
    }
    rollout
        .weights
        .iter()
        .map(|(version, percent)| format!("{version} {percent}%"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn stable(rollout: &Rollout) -> String {
    rollout
        .from_version
        .as_ref()
        .map_or_else(|| "no version".to_owned(), ToString::to_string)
}

/// Every gate, in the order a rollout meets them.
pub fn gates(rollout: &Rollout, now: Timestamp) -> Vec<GateResult> {
    let halted_by = |gate: Gate| rollout.halt.as_ref().filter(|h| h.gate == gate);
    let from_halt = |gate: Gate, verdict: GateVerdict| {
        halted_by(gate).map(|h| GateResult {
            gate,
            verdict,
            message: h.message.clone(),
            figures: h.figures.clone(),
            query: h.query.clone(),
            time: Some(h.time),
        })
    };
    let at_start = |gate: Gate, what: &str| GateResult {
        time: Some(rollout.created),
        ..GateResult::new(
            gate,
            GateVerdict::Passed,
            format!("{what} passed when the rollout was started (StartRollout refuses otherwise)"),
        )
    };
    let mut results = vec![
        at_start(Gate::Lifecycle, "the target's lifecycle state"),
        at_start(
            Gate::Compatibility,
            "schema compatibility with the versions serving",
        ),
        at_start(Gate::Consumer, "every live consumer's requirement"),
    ];
    results.push(from_halt(Gate::Health, GateVerdict::Failed).unwrap_or_else(|| health(rollout)));
    results.push(analysis(rollout));
    results.push(
        from_halt(Gate::ProgressDeadline, GateVerdict::Failed)
            .unwrap_or_else(|| progress(rollout, now)),
    );
    results.push(
        from_halt(Gate::Platform, GateVerdict::Failed).unwrap_or_else(|| {
            GateResult::new(
                Gate::Platform,
                GateVerdict::Passed,
                "every instance asked for was started or stopped",
            )
        }),
    );
    results.push(
        from_halt(Gate::Operator, GateVerdict::Failed).unwrap_or_else(|| {
            match (rollout.state, rollout.promotion) {
                (RolloutState::Paused, _) if rollout.halt.is_none() => GateResult::new(
                    Gate::Operator,
                    GateVerdict::Waiting,
                    "paused by an operator",
                ),
                (_, Some(promotion)) => GateResult::new(
                    Gate::Operator,
                    GateVerdict::Passed,
                    if promotion.full {
                        "promoted in full: the remaining steps and analysis are skipped"
                    } else {
                        "promoted: the current pause ends"
                    },
                ),
                _ => GateResult::new(Gate::Operator, GateVerdict::Passed, "no abort requested"),
            }
        }),
    );
    results
}

fn health(rollout: &Rollout) -> GateResult {
    if rollout.state == RolloutState::Aborted {
        return GateResult {
            query: "grpc.health.v1 Watch of each new instance".into(),
            ..GateResult::new(
                Gate::Health,
                GateVerdict::Passed,
                "no new instance failed its health check; the abort stopped them",
            )
        };
    }
    let new: Vec<&InstanceView> = rollout
        .instances
        .iter()
        .filter(|i| i.role == Role::New)
        .collect();
    let serving = new.iter().filter(|i| i.health == Health::Serving).count();
    let starting = new.iter().filter(|i| i.health == Health::Starting).count();
    let verdict =
        if rollout.state == RolloutState::Succeeded || (!new.is_empty() && serving == new.len()) {
            GateVerdict::Passed
        } else if new.is_empty() || starting > 0 {
            GateVerdict::Waiting
        } else {
            GateVerdict::Inconclusive
        };
    let message = match verdict {
        GateVerdict::Passed if new.is_empty() => "every new instance served".to_owned(),
        _ if new.is_empty() => "no new instance started yet".to_owned(),
        _ => format!(
            "{serving} of {} new instance{} SERVING{}; each must be within {}",
            new.len(),
            if new.len() == 1 { "" } else { "s" },
            if starting > 0 {
                format!(", {starting} starting")
            } else {
                String::new()
            },
            Millis(rollout.health_deadline_ms)
        ),
    };
    GateResult {
        figures: if new.is_empty() {
            Vec::new()
        } else {
            vec![Figure {
                name: "serving_instances".into(),
                version: rollout.to_version.to_string(),
                value: serving as f64,
                threshold: new.len() as f64,
            }]
        },
        query: "grpc.health.v1 Watch of each new instance".into(),
        ..GateResult::new(Gate::Health, verdict, message)
    }
}

fn analysis(rollout: &Rollout) -> GateResult {
    if let Some(halt) = rollout.halt.as_ref().filter(|h| h.gate == Gate::Analysis) {
        // An analysis halt either aborted (failed) or paused (inconclusive).
        let verdict = match rollout.state {
            RolloutState::Paused => GateVerdict::Inconclusive,
            _ => GateVerdict::Failed,
        };
        return GateResult {
            figures: halt.figures.clone(),
            query: halt.query.clone(),
            time: Some(halt.time),
            ..GateResult::new(Gate::Analysis, verdict, halt.message.clone())
        };
    }
    if rollout.skip_analysis {
        return GateResult::new(
            Gate::Analysis,
            GateVerdict::Skipped,
            if matches!(rollout.strategy, Strategy::Immediate) {
                "the emergency path (a rollback within its window) skips analysis"
            } else {
                "an operator promoted it in full: the remaining analysis is skipped"
            },
        );
    }
    let Some(last) = &rollout.last_analysis else {
        return GateResult::new(
            Gate::Analysis,
            if rollout.state == RolloutState::Succeeded {
                GateVerdict::Skipped
            } else {
                GateVerdict::Waiting
            },
            "no measurement yet: the first comes once the new version has traffic",
        );
    };
    let spec = &rollout.analysis;
    GateResult {
        figures: last.figures.clone(),
        query: last.query.clone(),
        time: Some(last.time),
        ..GateResult::new(
            Gate::Analysis,
            match last.verdict {
                Verdict::Passed => GateVerdict::Passed,
                Verdict::Failed => GateVerdict::Failed,
                Verdict::Inconclusive => GateVerdict::Inconclusive,
            },
            format!(
                "last interval {}; {} failed interval{} (the rollout aborts above {}), {} \
                 inconclusive in a row (it pauses above {})",
                last.verdict.as_str(),
                last.failures,
                if last.failures == 1 { "" } else { "s" },
                spec.failure_limit,
                last.inconclusive_in_a_row,
                spec.inconclusive_limit
            ),
        )
    }
}

fn progress(rollout: &Rollout, now: Timestamp) -> GateResult {
    let deadline = Millis(rollout.progress_deadline_ms);
    if !rollout.state.is_active() {
        return GateResult::new(
            Gate::ProgressDeadline,
            GateVerdict::Passed,
            format!("every step progressed within {deadline}"),
        );
    }
    let in_step_ms = now
        .millis()
        .saturating_sub(rollout.step_started.millis())
        .max(0) as u64;
    let waits_on_people = matches!(
        rollout.current_step(),
        Some(PlanStep::Pause { .. } | PlanStep::Analysis { .. })
    );
    let over = !waits_on_people && in_step_ms > rollout.progress_deadline_ms;
    let (verdict, message) = if waits_on_people {
        (
            GateVerdict::Passed,
            format!(
                "{} in this step; pauses and analysis steps are not held to the deadline",
                Millis(in_step_ms)
            ),
        )
    } else if over && rollout.state == RolloutState::Paused {
        (
            GateVerdict::Waiting,
            format!(
                "{} in this step, past the {deadline} allowed while paused: once resumed, the \
                 step must finish at once or the rollout aborts",
                Millis(in_step_ms)
            ),
        )
    } else {
        (
            GateVerdict::Passed,
            format!("{} in this step, of {deadline} allowed", Millis(in_step_ms)),
        )
    };
    GateResult {
        figures: vec![Figure {
            name: "seconds_in_step".into(),
            version: rollout.to_version.to_string(),
            value: in_step_ms as f64 / 1000.0,
            threshold: if waits_on_people {
                0.0
            } else {
                rollout.progress_deadline_ms as f64 / 1000.0
            },
        }],
        ..GateResult::new(Gate::ProgressDeadline, verdict, message)
    }
}

/// An instance's grpc.health.v1 status checked now: the status's name, or `UNREACHABLE` and why.
pub async fn check_health(address: &str) -> (String, Option<String>) {
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| e.to_string())?
            .connect_timeout(CHECK_TIMEOUT)
            .connect()
            .await
            .map_err(|e| {
                flotilla_client::with_causes(
                    &format!("connecting to {address}"),
                    std::error::Error::source(&e),
                )
            })?;
        let reply = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .map_err(|status| format!("{}: {}", status.code(), status.message()))?
            .into_inner();
        Ok::<_, String>(
            ServingStatus::try_from(reply.status)
                .map_or("UNKNOWN", |status| status.as_str_name())
                .to_owned(),
        )
    };
    match tokio::time::timeout(CHECK_TIMEOUT, check).await {
        Ok(Ok(status)) => (status, None),
        Ok(Err(error)) => ("UNREACHABLE".to_owned(), Some(error)),
        Err(_) => (
            "UNREACHABLE".to_owned(),
            Some(format!("no answer within {CHECK_TIMEOUT:?}")),
        ),
    }
}

#[cfg(test)]
mod tests;
