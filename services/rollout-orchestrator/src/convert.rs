//! Between the wire (flotilla.rollout.v1) and the model. Requests are validated here, each
//! failure naming its field.

use std::time::Duration;

use flotilla_model::{
    AnalysisSpec, AnalysisView, CanaryStep, Figure, Gate, Halt, InstanceView, InvalidField,
    PlanStep, Revision, Rollout, RolloutEvent, RolloutState, ServiceName, Strategy, Timestamp,
    parse_version,
};
use flotilla_proto::rollout::v1 as pb;

use crate::{
    explain::GateResult,
    launch::{Launch, Settings},
    plan::{DEFAULT_ROLLBACK_WINDOW_MS, default_canary_steps},
};

pub const DEFAULT_HEALTH_DEADLINE_MS: u64 = 30_000;
pub const DEFAULT_PROGRESS_DEADLINE_MS: u64 = 600_000;
const MAX_REPLICAS: u32 = 100;
const MAX_STEPS: usize = 100;

pub fn timestamp(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.millis().div_euclid(1000),
        nanos: (t.millis().rem_euclid(1000) * 1_000_000) as i32,
    }
}

pub fn duration(ms: u64) -> prost_types::Duration {
    prost_types::Duration {
        seconds: (ms / 1000) as i64,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

/// A duration field in milliseconds, within `range`; unset gives `default`.
fn millis(
    field: &str,
    value: Option<&prost_types::Duration>,
    default: Option<u64>,
    range: std::ops::RangeInclusive<u64>,
) -> Result<Option<u64>, InvalidField> {
    let Some(value) = value else {
        return Ok(default);
    };
    let ms = Duration::try_from(*value)
        .map_err(|_| InvalidField::new(field, "must be a non-negative duration"))?
        .as_millis();
    let ms = u64::try_from(ms).unwrap_or(u64::MAX);
    if !range.contains(&ms) {
        return Err(InvalidField::new(
            field,
            format!(
                "{ms} ms is outside {} ms to {} ms",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(Some(ms))
}

pub fn strategy(request: Option<&pb::Strategy>) -> Result<Strategy, InvalidField> {
    let Some(kind) = request.and_then(|s| s.kind.as_ref()) else {
        return Ok(Strategy::Canary {
            steps: default_canary_steps(),
        });
    };
    Ok(match kind {
        pb::strategy::Kind::Rolling(rolling) => Strategy::Rolling {
            max_surge: rolling.max_surge.min(MAX_REPLICAS),
            max_unavailable: rolling.max_unavailable.min(MAX_REPLICAS),
        },
        pb::strategy::Kind::Canary(canary) => {
            if canary.steps.len() > MAX_STEPS {
                return Err(InvalidField::new(
                    "strategy.canary.steps",
                    format!("{} steps is more than {MAX_STEPS}", canary.steps.len()),
                ));
            }
            let mut steps = Vec::new();
            for (i, step) in canary.steps.iter().enumerate() {
                let field = format!("strategy.canary.steps[{i}]");
                let step = match &step.step {
                    None => return Err(InvalidField::new(field, "names no step")),
                    Some(pb::canary_step::Step::SetWeight(w)) if !(1..=100).contains(w) => {
                        return Err(InvalidField::new(
                            format!("{field}.set_weight"),
                            format!("{w} is outside 1 to 100"),
                        ));
                    }
                    Some(pb::canary_step::Step::SetWeight(w)) => CanaryStep::SetWeight(*w),
                    Some(pb::canary_step::Step::Pause(pause)) => CanaryStep::Pause {
                        duration_ms: millis(
                            &format!("{field}.pause.duration"),
                            pause.duration.as_ref(),
                            None,
                            0..=7 * 24 * 3_600_000,
                        )?,
                    },
                    Some(pb::canary_step::Step::Analysis(a))
                        if !(1..=100).contains(&a.intervals) =>
                    {
                        return Err(InvalidField::new(
                            format!("{field}.analysis.intervals"),
                            format!("{} is outside 1 to 100", a.intervals),
                        ));
                    }
                    Some(pb::canary_step::Step::Analysis(a)) => CanaryStep::Analysis {
                        intervals: a.intervals,
                    },
                };
                steps.push(step);
            }
            if steps.is_empty() {
                steps = default_canary_steps();
            }
            Strategy::Canary { steps }
        }
        pb::strategy::Kind::BlueGreen(blue_green) => Strategy::BlueGreen {
            auto_promote_after_ms: millis(
                "strategy.blue_green.auto_promote_after",
                blue_green.auto_promote_after.as_ref(),
                None,
                0..=7 * 24 * 3_600_000,
            )?,
            rollback_window_ms: millis(
                "strategy.blue_green.rollback_window",
                blue_green.rollback_window.as_ref(),
                Some(DEFAULT_ROLLBACK_WINDOW_MS),
                0..=24 * 3_600_000,
            )?
            .unwrap_or(DEFAULT_ROLLBACK_WINDOW_MS),
        },
    })
}

pub fn analysis(request: Option<&pb::Analysis>) -> Result<AnalysisSpec, InvalidField> {
    let defaults = AnalysisSpec::default();
    let Some(a) = request else {
        return Ok(defaults);
    };
    let ratio =
        |field: &str, value: Option<f64>, default: f64, range: std::ops::RangeInclusive<f64>| {
            let value = value.unwrap_or(default);
            if !value.is_finite() || !range.contains(&value) {
                return Err(InvalidField::new(
                    field,
                    format!("{value} is outside {} to {}", range.start(), range.end()),
                ));
            }
            Ok(value)
        };
    Ok(AnalysisSpec {
        interval_ms: millis(
            "analysis.interval",
            a.interval.as_ref(),
            Some(defaults.interval_ms),
            100..=600_000,
        )?
        .unwrap_or(defaults.interval_ms),
        max_error_ratio_increase: ratio(
            "analysis.max_error_ratio_increase",
            a.max_error_ratio_increase,
            defaults.max_error_ratio_increase,
            0.0..=1.0,
        )?,
        max_p99_ratio: ratio(
            "analysis.max_p99_ratio",
            a.max_p99_ratio,
            defaults.max_p99_ratio,
            1.0..=1000.0,
        )?,
        p99_floor_ms: millis(
            "analysis.p99_floor",
            a.p99_floor.as_ref(),
            None,
            0..=600_000,
        )?
        .map_or(defaults.p99_floor_ms, |ms| ms as f64),
        min_requests: if a.min_requests == 0 {
            defaults.min_requests
        } else {
            u64::from(a.min_requests)
        },
        failure_limit: a.failure_limit,
        inconclusive_limit: a.inconclusive_limit.unwrap_or(defaults.inconclusive_limit),
    })
}

pub fn deadlines(request: &pb::StartRolloutRequest) -> Result<(u64, u64), InvalidField> {
    let health = millis(
        "health_deadline",
        request.health_deadline.as_ref(),
        Some(DEFAULT_HEALTH_DEADLINE_MS),
        100..=3_600_000,
    )?
    .unwrap_or(DEFAULT_HEALTH_DEADLINE_MS);
    let progress = millis(
        "progress_deadline",
        request.progress_deadline.as_ref(),
        Some(DEFAULT_PROGRESS_DEADLINE_MS),
        1_000..=24 * 3_600_000,
    )?
    .unwrap_or(DEFAULT_PROGRESS_DEADLINE_MS);
    Ok((health, progress))
}

/// A StartRollout request as what the launch needs.
pub fn launch(request: &pb::StartRolloutRequest) -> Result<Launch, InvalidField> {
    Ok(Launch {
        service: ServiceName::parse("service", &request.service)?,
        version: parse_version("version", &request.version)?,
        settings: settings(request)?,
        force: request.force,
        rollback_to: None,
    })
}

/// How a requested rollout goes: strategy, analysis, deadlines and replicas.
pub fn settings(request: &pb::StartRolloutRequest) -> Result<Settings, InvalidField> {
    let (health_deadline_ms, progress_deadline_ms) = deadlines(request)?;
    Ok(Settings {
        strategy: strategy(request.strategy.as_ref())?,
        analysis: analysis(request.analysis.as_ref())?,
        health_deadline_ms,
        progress_deadline_ms,
        replicas: replicas(request.replicas)?,
    })
}

pub fn replicas(requested: u32) -> Result<Option<u32>, InvalidField> {
    match requested {
        0 => Ok(None),
        n if n <= MAX_REPLICAS => Ok(Some(n)),
        n => Err(InvalidField::new(
            "replicas",
            format!("{n} is more than {MAX_REPLICAS}"),
        )),
    }
}

fn strategy_to_wire(strategy: &Strategy) -> Option<pb::Strategy> {
    let kind = match strategy {
        Strategy::Rolling {
            max_surge,
            max_unavailable,
        } => pb::strategy::Kind::Rolling(pb::Rolling {
            max_surge: *max_surge,
            max_unavailable: *max_unavailable,
        }),
        Strategy::Canary { steps } => pb::strategy::Kind::Canary(pb::Canary {
            steps: steps
                .iter()
                .map(|step| pb::CanaryStep {
                    step: Some(match *step {
                        CanaryStep::SetWeight(w) => pb::canary_step::Step::SetWeight(w),
                        CanaryStep::Pause { duration_ms } => {
                            pb::canary_step::Step::Pause(pause(duration_ms))
                        }
                        CanaryStep::Analysis { intervals } => {
                            pb::canary_step::Step::Analysis(pb::AnalysisStep { intervals })
                        }
                    }),
                })
                .collect(),
        }),
        Strategy::BlueGreen {
            auto_promote_after_ms,
            rollback_window_ms,
        } => pb::strategy::Kind::BlueGreen(pb::BlueGreen {
            auto_promote_after: auto_promote_after_ms.map(duration),
            rollback_window: Some(duration(*rollback_window_ms)),
        }),
        // The emergency path has no wire form: it shows as an empty strategy with skip_analysis.
        Strategy::Immediate => return None,
    };
    Some(pb::Strategy { kind: Some(kind) })
}

fn pause(duration_ms: Option<u64>) -> pb::PauseStep {
    pb::PauseStep {
        duration: duration_ms.map(duration),
    }
}

fn plan_step(step: &PlanStep) -> pb::PlanStep {
    use pb::plan_step::Action;
    let action = match *step {
        PlanStep::ScaleNew(n) => Action::ScaleNew(n),
        PlanStep::ScaleStable(n) => Action::ScaleStable(n),
        PlanStep::SetWeight(w) => Action::SetWeight(w),
        PlanStep::WeightByInstances => Action::WeightByInstances(true),
        PlanStep::Pause { duration_ms } => Action::Pause(pause(duration_ms)),
        PlanStep::Analysis { intervals } => Action::Analysis(pb::AnalysisStep { intervals }),
    };
    pb::PlanStep {
        description: step.to_string(),
        action: Some(action),
    }
}

pub fn gate(gate: Gate) -> pb::Gate {
    match gate {
        Gate::Lifecycle => pb::Gate::Lifecycle,
        Gate::Compatibility => pb::Gate::Compatibility,
        Gate::Consumer => pb::Gate::Consumer,
        Gate::Health => pb::Gate::Health,
        Gate::Analysis => pb::Gate::Analysis,
        Gate::ProgressDeadline => pb::Gate::ProgressDeadline,
        Gate::Platform => pb::Gate::Platform,
        Gate::Operator => pb::Gate::Operator,
    }
}

fn figure(f: &Figure) -> pb::Figure {
    pb::Figure {
        name: f.name.clone(),
        version: f.version.clone(),
        value: f.value,
        threshold: f.threshold,
    }
}

fn halt(h: &Halt) -> pb::Halt {
    pb::Halt {
        gate: gate(h.gate) as i32,
        message: h.message.clone(),
        figures: h.figures.iter().map(figure).collect(),
        query: h.query.clone(),
        time: Some(timestamp(h.time)),
    }
}

fn analysis_view(a: &AnalysisView) -> pb::AnalysisResult {
    pb::AnalysisResult {
        verdict: a.verdict.as_str().into(),
        figures: a.figures.iter().map(figure).collect(),
        query: a.query.clone(),
        time: Some(timestamp(a.time)),
        failures: a.failures,
        inconclusive_in_a_row: a.inconclusive_in_a_row,
    }
}

pub fn state(state: RolloutState) -> pb::RolloutState {
    match state {
        RolloutState::Progressing => pb::RolloutState::Progressing,
        RolloutState::Paused => pb::RolloutState::Paused,
        RolloutState::Aborting => pb::RolloutState::Aborting,
        RolloutState::Aborted => pb::RolloutState::Aborted,
        RolloutState::Succeeded => pb::RolloutState::Succeeded,
    }
}

fn spec_to_wire(a: &AnalysisSpec) -> pb::Analysis {
    pb::Analysis {
        interval: Some(duration(a.interval_ms)),
        max_error_ratio_increase: Some(a.max_error_ratio_increase),
        max_p99_ratio: Some(a.max_p99_ratio),
        p99_floor: Some(duration(a.p99_floor_ms as u64)),
        min_requests: a.min_requests as u32,
        failure_limit: a.failure_limit,
        inconclusive_limit: Some(a.inconclusive_limit),
    }
}

pub fn rollout(r: &Rollout) -> pb::Rollout {
    pb::Rollout {
        id: r.id.to_string(),
        service: r.service.to_string(),
        from_version: r
            .from_version
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        to_version: r.to_version.to_string(),
        strategy: strategy_to_wire(&r.strategy),
        replicas: r.replicas,
        analysis: Some(spec_to_wire(&r.analysis)),
        state: state(r.state) as i32,
        plan: r.plan.iter().map(plan_step).collect(),
        step_index: r.step_index,
        halt: r.halt.as_ref().map(halt),
        instances: r.instances.iter().map(instance).collect(),
        weights: r
            .weights
            .iter()
            .map(|(version, percent)| pb::VersionWeight {
                version: version.to_string(),
                percent: *percent,
            })
            .collect(),
        last_analysis: r.last_analysis.as_ref().map(analysis_view),
        revision: r.revision,
        rollback_to_revision: r.rollback_to_revision.unwrap_or(0),
        pause_until: r.pause_until.map(timestamp),
        owner: r.owner.clone().unwrap_or_default(),
        status_message: r.status_message.clone(),
        create_time: Some(timestamp(r.created)),
        update_time: Some(timestamp(r.updated)),
        health_deadline: Some(duration(r.health_deadline_ms)),
        progress_deadline: Some(duration(r.progress_deadline_ms)),
        skip_analysis: r.skip_analysis,
    }
}

pub fn instance(i: &InstanceView) -> pb::InstanceStatus {
    pb::InstanceStatus {
        handle: i.handle.clone(),
        version: i.version.to_string(),
        address: i.address.clone(),
        role: i.role.as_str().into(),
        health: i.health.as_str().into(),
    }
}

pub fn gate_result(g: &GateResult) -> pb::GateResult {
    pb::GateResult {
        gate: gate(g.gate) as i32,
        verdict: g.verdict.as_str().into(),
        message: g.message.clone(),
        figures: g.figures.iter().map(figure).collect(),
        query: g.query.clone(),
        time: g.time.map(timestamp),
    }
}

pub fn event(e: &RolloutEvent) -> pb::RolloutEvent {
    pb::RolloutEvent {
        sequence: e.sequence,
        time: Some(timestamp(e.time)),
        kind: e.kind.as_str().into(),
        message: e.message.clone(),
        halt: e.halt.as_ref().map(halt),
        step_index: e.step_index,
    }
}

pub fn revision(r: &Revision) -> pb::Revision {
    pb::Revision {
        number: r.number,
        version: r.version.to_string(),
        rollout_id: r.rollout_id.to_string(),
        time: Some(timestamp(r.time)),
        replaced_time: r.replaced.map(timestamp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(step: pb::canary_step::Step) -> pb::CanaryStep {
        pb::CanaryStep { step: Some(step) }
    }

    #[test]
    fn canary_steps_are_checked_and_named_by_index() {
        let canary = |steps| pb::Strategy {
            kind: Some(pb::strategy::Kind::Canary(pb::Canary { steps })),
        };
        let good = canary(vec![
            step(pb::canary_step::Step::SetWeight(10)),
            step(pb::canary_step::Step::Pause(pb::PauseStep {
                duration: Some(duration(1500)),
            })),
            step(pb::canary_step::Step::Analysis(pb::AnalysisStep {
                intervals: 2,
            })),
        ]);
        assert_eq!(
            strategy(Some(&good)).unwrap(),
            Strategy::Canary {
                steps: vec![
                    CanaryStep::SetWeight(10),
                    CanaryStep::Pause {
                        duration_ms: Some(1500)
                    },
                    CanaryStep::Analysis { intervals: 2 },
                ]
            }
        );
        let bad = canary(vec![
            step(pb::canary_step::Step::SetWeight(10)),
            step(pb::canary_step::Step::SetWeight(101)),
        ]);
        let error = strategy(Some(&bad)).unwrap_err();
        assert_eq!(error.field, "strategy.canary.steps[1].set_weight");
        let empty = canary(vec![pb::CanaryStep { step: None }]);
        assert_eq!(
            strategy(Some(&empty)).unwrap_err().field,
            "strategy.canary.steps[0]"
        );
    }

    #[test]
    fn analysis_defaults_fill_unset_fields_and_bad_values_name_theirs() {
        let spec = analysis(Some(&pb::Analysis {
            min_requests: 5,
            ..Default::default()
        }))
        .unwrap();
        assert_eq!(spec.min_requests, 5);
        assert_eq!(spec.interval_ms, AnalysisSpec::default().interval_ms);
        let error = analysis(Some(&pb::Analysis {
            max_error_ratio_increase: Some(1.5),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(error.field, "analysis.max_error_ratio_increase");
        let error = analysis(Some(&pb::Analysis {
            interval: Some(duration(10)),
            ..Default::default()
        }))
        .unwrap_err();
        assert_eq!(error.field, "analysis.interval");
    }

    #[test]
    fn replicas_are_bounded() {
        assert_eq!(replicas(0).unwrap(), None);
        assert_eq!(replicas(3).unwrap(), Some(3));
        assert_eq!(replicas(101).unwrap_err().field, "replicas");
    }
}
