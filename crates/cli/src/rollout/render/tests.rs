//! Rollouts to render in tests, shared with the tests of `json` and `watch`.

use flotilla_proto::rollout::v1 as pb;
use pb::plan_step::Action;

use crate::report::Style;

pub(crate) const PLAIN: Style = Style { colour: false };
pub(crate) const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

pub(crate) fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    // 2026-11-25T12:00:00Z, plus `seconds`.
    Some(prost_types::Timestamp {
        seconds: 1_795_608_000 + seconds,
        nanos: 0,
    })
}

fn plan_step(description: &str, action: Action) -> pb::PlanStep {
    pb::PlanStep {
        description: description.into(),
        action: Some(action),
    }
}

fn figure(name: &str, version: &str, value: f64, threshold: f64) -> pb::Figure {
    pb::Figure {
        name: name.into(),
        version: version.into(),
        value,
        threshold,
    }
}

fn instance(role: &str, version: &str, port: u16, health: &str) -> pb::InstanceStatus {
    pb::InstanceStatus {
        handle: format!("pid {port}"),
        version: version.into(),
        address: format!("127.0.0.1:{port}"),
        role: role.into(),
        health: health.into(),
    }
}

/// A canary of greeter 1.0.0 → 1.1.0 at its analysis step, 10% on the new version.
pub(crate) fn canary() -> pb::Rollout {
    use pb::canary_step::Step;
    pb::Rollout {
        id: ID.into(),
        service: "greeter".into(),
        from_version: "1.0.0".into(),
        to_version: "1.1.0".into(),
        strategy: Some(pb::Strategy {
            kind: Some(pb::strategy::Kind::Canary(pb::Canary {
                steps: vec![
                    pb::CanaryStep {
                        step: Some(Step::SetWeight(10)),
                    },
                    pb::CanaryStep {
                        step: Some(Step::Analysis(pb::AnalysisStep { intervals: 3 })),
                    },
                    pb::CanaryStep {
                        step: Some(Step::Pause(pb::PauseStep { duration: None })),
                    },
                    pb::CanaryStep {
                        step: Some(Step::SetWeight(100)),
                    },
                ],
            })),
        }),
        replicas: 2,
        analysis: Some(pb::Analysis {
            interval: Some(prost_types::Duration {
                seconds: 1,
                nanos: 0,
            }),
            max_error_ratio_increase: Some(0.01),
            max_p99_ratio: Some(1.5),
            p99_floor: Some(prost_types::Duration {
                seconds: 0,
                nanos: 25_000_000,
            }),
            min_requests: 20,
            failure_limit: 0,
            inconclusive_limit: Some(5),
        }),
        state: pb::RolloutState::Progressing.into(),
        plan: vec![
            plan_step("run 1 new instance", Action::ScaleNew(1)),
            plan_step("weight 10% to the new version", Action::SetWeight(10)),
            plan_step(
                "analysis: 3 passing intervals",
                Action::Analysis(pb::AnalysisStep { intervals: 3 }),
            ),
            plan_step(
                "pause until promoted",
                Action::Pause(pb::PauseStep { duration: None }),
            ),
            plan_step("run 2 new instances", Action::ScaleNew(2)),
            plan_step("weight 100% to the new version", Action::SetWeight(100)),
            plan_step("run 0 stable instances", Action::ScaleStable(0)),
        ],
        step_index: 2,
        halt: None,
        instances: vec![
            instance("stable", "1.0.0", 50071, "SERVING"),
            instance("stable", "1.0.0", 50072, "SERVING"),
            instance("new", "1.1.0", 50073, "STARTING"),
        ],
        weights: vec![
            pb::VersionWeight {
                version: "1.0.0".into(),
                percent: 90,
            },
            pb::VersionWeight {
                version: "1.1.0".into(),
                percent: 10,
            },
        ],
        last_analysis: None,
        revision: 4,
        rollback_to_revision: 0,
        pause_until: None,
        owner: "orchestrator-a".into(),
        status_message: "analysing 1.1.0 against 1.0.0".into(),
        create_time: at(0),
        update_time: at(42),
        health_deadline: None,
        progress_deadline: None,
        skip_analysis: false,
    }
}

/// The canary halted by analysis: too few requests six intervals in a row.
pub(crate) fn halted() -> pb::Rollout {
    let figures = vec![
        figure("requests", "1.1.0", 3.0, 20.0),
        figure("requests", "1.0.0", 41.0, 0.0),
    ];
    let query = "grpc_server_handled_total of 127.0.0.1:50073 against 127.0.0.1:50071, 127.0.0.1:50072 over 1s";
    pb::Rollout {
        state: pb::RolloutState::Paused.into(),
        status_message: "halted: 6 inconclusive intervals in a row".into(),
        halt: Some(pb::Halt {
            gate: pb::Gate::Analysis.into(),
            message: "6 inconclusive intervals in a row (limit 5): too few requests to judge 1.1.0"
                .into(),
            figures: figures.clone(),
            query: query.into(),
            time: at(40),
        }),
        last_analysis: Some(pb::AnalysisResult {
            verdict: "INCONCLUSIVE".into(),
            figures,
            query: query.into(),
            time: at(40),
            failures: 0,
            inconclusive_in_a_row: 6,
        }),
        ..canary()
    }
}

/// The canary aborted by a failed analysis, traffic back on 1.0.0.
pub(crate) fn aborted() -> pb::Rollout {
    pb::Rollout {
        state: pb::RolloutState::Aborted.into(),
        status_message: "aborted; all traffic on 1.0.0".into(),
        halt: Some(pb::Halt {
            gate: pb::Gate::Analysis.into(),
            message: "error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01".into(),
            figures: vec![
                figure("error_ratio", "1.1.0", 0.25, 0.0105),
                figure("error_ratio", "1.0.0", 0.0005, 0.0),
            ],
            query: "grpc_server_handled_total{grpc_code!~\"OK|CANCELLED\"}".into(),
            time: at(50),
        }),
        instances: vec![
            instance("stable", "1.0.0", 50071, "SERVING"),
            instance("stable", "1.0.0", 50072, "SERVING"),
        ],
        weights: vec![
            pb::VersionWeight {
                version: "1.0.0".into(),
                percent: 100,
            },
            pb::VersionWeight {
                version: "1.1.0".into(),
                percent: 0,
            },
        ],
        revision: 0,
        update_time: at(55),
        ..canary()
    }
}
