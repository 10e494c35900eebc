//! Command-line arguments into orchestrator requests. Pure: what is sent follows from the flags
//! alone, and an unset flag is left unset so the orchestrator's default applies.

use flotilla_proto::rollout::v1 as pb;

use super::{ListArgs, RollbackArgs, StartArgs, StrategyKind, parse::proto_duration};

/// The largest page ListRollouts serves.
const MAX_PAGE: u32 = 1000;

/// StartRollout's request. The strategy is the one asked for, or the one the strategy-specific
/// flags imply; flags of two strategies together are refused, naming them.
pub fn start(args: &StartArgs) -> Result<pb::StartRolloutRequest, String> {
    use pb::strategy::Kind;

    let strategy = strategy_kind(args)?.map(|kind| pb::Strategy {
        kind: Some(match kind {
            StrategyKind::Canary => Kind::Canary(pb::Canary {
                steps: args.steps.clone().map(|s| s.0).unwrap_or_default(),
            }),
            StrategyKind::Rolling => Kind::Rolling(pb::Rolling {
                max_surge: args.max_surge.unwrap_or(0),
                max_unavailable: args.max_unavailable.unwrap_or(0),
            }),
            StrategyKind::BlueGreen => Kind::BlueGreen(pb::BlueGreen {
                auto_promote_after: args.auto_promote_after.map(proto_duration),
                rollback_window: args.rollback_window.map(proto_duration),
            }),
        }),
    });

    let analysis_asked = args.analysis_interval.is_some()
        || args.max_error_ratio_increase.is_some()
        || args.max_p99_ratio.is_some()
        || args.p99_floor.is_some()
        || args.min_requests.is_some()
        || args.failure_limit.is_some()
        || args.inconclusive_limit.is_some();
    let analysis = analysis_asked.then(|| pb::Analysis {
        interval: args.analysis_interval.map(proto_duration),
        max_error_ratio_increase: args.max_error_ratio_increase,
        max_p99_ratio: args.max_p99_ratio,
        p99_floor: args.p99_floor.map(proto_duration),
        // 0 means the default on the wire; clap refuses --min-requests 0.
        min_requests: args.min_requests.unwrap_or(0),
        failure_limit: args.failure_limit.unwrap_or(0),
        inconclusive_limit: args.inconclusive_limit,
    });

    Ok(pb::StartRolloutRequest {
        service: args.service.clone(),
        version: args.version.clone(),
        strategy,
        replicas: args.replicas.unwrap_or(0),
        analysis,
        health_deadline: args.health_deadline.map(proto_duration),
        progress_deadline: args.progress_deadline.map(proto_duration),
        force: args.force,
    })
}

/// `--strategy`, or the strategy the other flags imply, or none (the orchestrator's default).
fn strategy_kind(args: &StartArgs) -> Result<Option<StrategyKind>, String> {
    let implied: Vec<(&str, StrategyKind)> = [
        (args.steps.is_some(), "--steps", StrategyKind::Canary),
        (
            args.max_surge.is_some(),
            "--max-surge",
            StrategyKind::Rolling,
        ),
        (
            args.max_unavailable.is_some(),
            "--max-unavailable",
            StrategyKind::Rolling,
        ),
        (
            args.auto_promote_after.is_some(),
            "--auto-promote-after",
            StrategyKind::BlueGreen,
        ),
        (
            args.rollback_window.is_some(),
            "--rollback-window",
            StrategyKind::BlueGreen,
        ),
    ]
    .into_iter()
    .filter(|(given, _, _)| *given)
    .map(|(_, flag, kind)| (flag, kind))
    .collect();

    match args.strategy {
        Some(chosen) => match implied.iter().find(|(_, kind)| *kind != chosen) {
            Some((flag, kind)) => Err(format!(
                "{flag} is for --strategy {}, not {}",
                kind.as_str(),
                chosen.as_str()
            )),
            None => Ok(Some(chosen)),
        },
        None => {
            let Some(&(first_flag, first)) = implied.first() else {
                return Ok(None);
            };
            match implied.iter().find(|(_, kind)| *kind != first) {
                Some((flag, kind)) => Err(format!(
                    "{first_flag} is for a {} rollout and {flag} for a {} one; choose one \
                     with --strategy",
                    first.as_str(),
                    kind.as_str()
                )),
                None => Ok(Some(first)),
            }
        }
    }
}

/// The next page of ListRollouts, or None once `--limit` rollouts are in hand.
pub fn list_page(
    args: &ListArgs,
    page_token: String,
    fetched: usize,
) -> Option<pb::ListRolloutsRequest> {
    let page_size = match args.limit {
        Some(limit) => {
            let left = (limit as usize).checked_sub(fetched).filter(|&n| n > 0)?;
            u32::try_from(left).unwrap_or(MAX_PAGE).min(MAX_PAGE)
        }
        // The largest page: fewest round trips when following every page.
        None => MAX_PAGE,
    };
    Some(pb::ListRolloutsRequest {
        service: args.service.clone().unwrap_or_default(),
        active_only: args.active,
        page_size,
        page_token,
    })
}

pub fn pause(id: &str, reason: Option<&str>) -> pb::PauseRequest {
    pb::PauseRequest {
        id: id.to_owned(),
        reason: reason.unwrap_or_default().to_owned(),
    }
}

pub fn abort(id: &str, reason: Option<&str>) -> pb::AbortRequest {
    pb::AbortRequest {
        id: id.to_owned(),
        reason: reason.unwrap_or_default().to_owned(),
    }
}

pub fn rollback(args: &RollbackArgs) -> pb::RollbackRequest {
    pb::RollbackRequest {
        service: args.service.clone(),
        // 0 asks for the revision before the current one.
        revision: args.revision.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use pb::{canary_step::Step, strategy::Kind};

    use super::*;
    use crate::{
        cli::{Cli, Command},
        rollout::{RolloutArgs, RolloutCommand},
    };

    fn parse(args: &[&str]) -> RolloutArgs {
        let cli = Cli::try_parse_from(["flotilla", "rollout"].iter().chain(args).copied())
            .unwrap_or_else(|e| panic!("{args:?}: {e}"));
        match cli.command {
            Command::Rollout(rollout) => rollout,
            other => panic!("{other:?}"),
        }
    }

    fn start_args(args: &[&str]) -> StartArgs {
        let mut full = vec!["start", "greeter", "1.1.0"];
        full.extend_from_slice(args);
        match parse(&full).command {
            RolloutCommand::Start(start) => *start,
            other => panic!("{other:?}"),
        }
    }

    fn secs(seconds: i64, millis: i32) -> Option<prost_types::Duration> {
        Some(prost_types::Duration {
            seconds,
            nanos: millis * 1_000_000,
        })
    }

    #[test]
    fn a_bare_start_leaves_everything_to_the_orchestrator() {
        assert_eq!(
            start(&start_args(&[])).unwrap(),
            pb::StartRolloutRequest {
                service: "greeter".into(),
                version: "1.1.0".into(),
                ..Default::default()
            }
        );
    }

    #[test]
    fn a_canary_with_steps_and_thresholds() {
        let args = start_args(&[
            "--steps",
            "10,pause:5s,analysis:3,50,pause,100",
            "--replicas",
            "3",
            "--analysis-interval",
            "500ms",
            "--max-error-ratio-increase",
            "0.02",
            "--max-p99-ratio",
            "1.25",
            "--p99-floor",
            "10ms",
            "--min-requests",
            "50",
            "--failure-limit",
            "1",
            "--inconclusive-limit",
            "0",
            "--health-deadline",
            "20s",
            "--progress-deadline",
            "2m",
            "--force",
        ]);
        let step = |step| pb::CanaryStep { step: Some(step) };
        assert_eq!(
            start(&args).unwrap(),
            pb::StartRolloutRequest {
                service: "greeter".into(),
                version: "1.1.0".into(),
                strategy: Some(pb::Strategy {
                    kind: Some(Kind::Canary(pb::Canary {
                        steps: vec![
                            step(Step::SetWeight(10)),
                            step(Step::Pause(pb::PauseStep {
                                duration: secs(5, 0)
                            })),
                            step(Step::Analysis(pb::AnalysisStep { intervals: 3 })),
                            step(Step::SetWeight(50)),
                            step(Step::Pause(pb::PauseStep { duration: None })),
                            step(Step::SetWeight(100)),
                        ]
                    }))
                }),
                replicas: 3,
                analysis: Some(pb::Analysis {
                    interval: secs(0, 500),
                    max_error_ratio_increase: Some(0.02),
                    max_p99_ratio: Some(1.25),
                    p99_floor: secs(0, 10),
                    min_requests: 50,
                    failure_limit: 1,
                    // Explicitly 0: the first inconclusive interval halts.
                    inconclusive_limit: Some(0),
                }),
                health_deadline: secs(20, 0),
                progress_deadline: secs(120, 0),
                force: true,
            }
        );
    }

    #[test]
    fn one_analysis_flag_sends_only_that_setting() {
        let request = start(&start_args(&["--max-p99-ratio", "2"])).unwrap();
        assert_eq!(
            request.analysis,
            Some(pb::Analysis {
                max_p99_ratio: Some(2.0),
                ..Default::default()
            })
        );
        assert_eq!(request.strategy, None);
    }

    #[test]
    fn rolling_and_blue_green() {
        assert_eq!(
            start(&start_args(&["--strategy", "rolling", "--max-surge", "2"]))
                .unwrap()
                .strategy,
            Some(pb::Strategy {
                kind: Some(Kind::Rolling(pb::Rolling {
                    max_surge: 2,
                    max_unavailable: 0
                }))
            })
        );
        // Implied by its flag.
        assert_eq!(
            start(&start_args(&["--auto-promote-after", "1m"]))
                .unwrap()
                .strategy,
            Some(pb::Strategy {
                kind: Some(Kind::BlueGreen(pb::BlueGreen {
                    auto_promote_after: secs(60, 0),
                    rollback_window: None,
                }))
            })
        );
        assert_eq!(
            start(&start_args(&["--strategy", "blue-green"]))
                .unwrap()
                .strategy,
            Some(pb::Strategy {
                kind: Some(Kind::BlueGreen(pb::BlueGreen::default()))
            })
        );
        assert_eq!(
            start(&start_args(&["--strategy", "canary"]))
                .unwrap()
                .strategy,
            Some(pb::Strategy {
                kind: Some(Kind::Canary(pb::Canary { steps: vec![] }))
            })
        );
    }

    #[test]
    fn flags_of_another_strategy_are_refused_by_name() {
        assert_eq!(
            start(&start_args(&["--strategy", "rolling", "--steps", "50,100"])).unwrap_err(),
            "--steps is for --strategy canary, not rolling"
        );
        assert_eq!(
            start(&start_args(&[
                "--max-unavailable",
                "1",
                "--rollback-window",
                "1m"
            ]))
            .unwrap_err(),
            "--max-unavailable is for a rolling rollout and --rollback-window for a blue-green \
             one; choose one with --strategy"
        );
    }

    #[test]
    fn bad_values_are_usage_errors_naming_the_flag() {
        for (args, flag, why) in [
            (
                &["--steps", "10,pause:5"][..],
                "--steps",
                "step 2 \"pause:5\"",
            ),
            (&["--steps", "150"], "--steps", "a weight is 1 to 100"),
            (
                &["--health-deadline", "30"],
                "--health-deadline",
                "has no unit",
            ),
            (
                &["--p99-floor", "5us"],
                "--p99-floor",
                "unknown unit \"us\"",
            ),
            (&["--min-requests", "0"], "--min-requests", "0"),
            (&["--strategy", "linear"], "--strategy", "linear"),
        ] {
            let mut full = vec!["flotilla", "rollout", "start", "greeter", "1.1.0"];
            full.extend_from_slice(args);
            let error = Cli::try_parse_from(full).unwrap_err();
            let message = error.to_string();
            assert_eq!(error.exit_code(), 2, "{message}");
            assert!(
                message.contains(&format!("'{flag} <")) || message.contains(&format!("'{flag}")),
                "{args:?}: {message}"
            );
            assert!(message.contains(why), "{args:?}: {message}");
        }
    }

    #[test]
    fn list_pages_until_the_limit() {
        let all = ListArgs {
            service: Some("greeter".into()),
            active: true,
            limit: None,
        };
        assert_eq!(
            list_page(&all, "t2".into(), 2000),
            Some(pb::ListRolloutsRequest {
                service: "greeter".into(),
                active_only: true,
                page_size: 1000,
                page_token: "t2".into(),
            })
        );
        let limited = ListArgs {
            service: None,
            active: false,
            limit: Some(1500),
        };
        assert_eq!(
            list_page(&limited, String::new(), 0).map(|r| r.page_size),
            Some(1000)
        );
        assert_eq!(
            list_page(&limited, "t".into(), 1000).map(|r| r.page_size),
            Some(500)
        );
        assert_eq!(list_page(&limited, "t".into(), 1500), None);
    }

    #[test]
    fn the_other_commands() {
        assert_eq!(
            pause("r1", Some("waiting for the 5pm freeze")),
            pb::PauseRequest {
                id: "r1".into(),
                reason: "waiting for the 5pm freeze".into()
            }
        );
        assert_eq!(abort("r1", None).reason, "");
        let RolloutCommand::Rollback(args) =
            parse(&["rollback", "greeter", "--revision", "3"]).command
        else {
            panic!("not a rollback");
        };
        assert_eq!(
            rollback(&args),
            pb::RollbackRequest {
                service: "greeter".into(),
                revision: 3
            }
        );
    }

    #[test]
    fn the_orchestrator_flag_and_environment() {
        let args = parse(&["status", "r1"]);
        // The default unless FLOTILLA_ORCHESTRATOR is set where the tests run.
        if std::env::var_os("FLOTILLA_ORCHESTRATOR").is_none() {
            assert_eq!(args.orchestrator, super::super::DEFAULT_ORCHESTRATOR);
        }
        // Global: accepted after the command too.
        let args = parse(&[
            "status",
            "r1",
            "--orchestrator",
            "http://o:1",
            "--format",
            "json",
        ]);
        assert_eq!(args.orchestrator, "http://o:1");
        assert_eq!(args.format, crate::cli::OutputFormat::Json);
    }
}
