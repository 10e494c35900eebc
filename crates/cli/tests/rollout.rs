//! `flotilla rollout …` against a stand-in orchestrator served by this test process.
//!
//! The stand-in implements `flotilla.rollout.v1.Orchestrator` with fixed answers: canned
//! rollouts, a two-page list, scripted watch streams (one that succeeds, one that is aborted, one
//! that breaks off) and, for StartRollout of version 2.0.0, the FAILED_PRECONDITION refusal with
//! google.rpc.PreconditionFailure details the real orchestrator sends. It knows nothing of how
//! rollouts behave. So these tests check the CLI's side of the wire — the requests it builds from
//! its flags, paging, following a stream to its end, decoding rich error details, what it prints
//! and its exit statuses — and not the orchestrator, which has end-to-end tests of its own.

use std::{
    net::SocketAddr,
    pin::Pin,
    sync::{Arc, Mutex},
};

use clap::Parser;
use flotilla_cli::{
    cli::{Cli, Command},
    rollout::{self, Console, Outcome, RolloutError},
};
use flotilla_proto::rollout::v1::{
    self as pb,
    orchestrator_server::{Orchestrator, OrchestratorServer},
};
use tokio_stream::{Stream, wrappers::TcpListenerStream};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// A rollout whose watch ends SUCCEEDED.
const SUCCEEDS: &str = "11111111-1111-4111-8111-111111111111";
/// A rollout whose watch ends ABORTED by the analysis gate.
const ABORTS: &str = "22222222-2222-4222-8222-222222222222";
/// A rollout whose watch stream closes while it is still progressing.
const BREAKS_OFF: &str = "33333333-3333-4333-8333-333333333333";

/// Every request the stand-in received, in order.
#[derive(Debug, Clone, PartialEq)]
enum Received {
    Start(pb::StartRolloutRequest),
    Get(pb::GetRolloutRequest),
    List(pb::ListRolloutsRequest),
    Watch(pb::WatchRolloutRequest),
    Pause(pb::PauseRequest),
    Resume(pb::ResumeRequest),
    Promote(pb::PromoteRequest),
    Abort(pb::AbortRequest),
    Rollback(pb::RollbackRequest),
    Revisions(pb::ListRevisionsRequest),
    Explain(pb::ExplainRolloutRequest),
}

#[derive(Debug, Clone, Default)]
struct StandIn {
    received: Arc<Mutex<Vec<Received>>>,
}

impl StandIn {
    fn record(&self, request: Received) {
        self.received.lock().unwrap().push(request);
    }
}

fn at(seconds: i64) -> Option<prost_types::Timestamp> {
    // 2026-11-25T12:00:00Z, plus `seconds`.
    Some(prost_types::Timestamp {
        seconds: 1_795_608_000 + seconds,
        nanos: 0,
    })
}

fn plan_step(description: &str, action: pb::plan_step::Action) -> pb::PlanStep {
    pb::PlanStep {
        description: description.into(),
        action: Some(action),
    }
}

/// greeter 1.0.0 → `to`, a canary of three steps, at its second (10% on the new version).
fn rollout(id: &str, to: &str, state: pb::RolloutState) -> pb::Rollout {
    use pb::plan_step::Action;
    pb::Rollout {
        id: id.into(),
        service: "greeter".into(),
        from_version: "1.0.0".into(),
        to_version: to.into(),
        // As the orchestrator stores it: the canary's steps, defaults left to it.
        strategy: Some(pb::Strategy {
            kind: Some(pb::strategy::Kind::Canary(pb::Canary::default())),
        }),
        state: state.into(),
        plan: vec![
            plan_step("run 1 new instance", Action::ScaleNew(1)),
            plan_step("weight 10% to the new version", Action::SetWeight(10)),
            plan_step("weight 100% to the new version", Action::SetWeight(100)),
        ],
        step_index: 1,
        instances: vec![
            pb::InstanceStatus {
                handle: "4240".into(),
                version: "1.0.0".into(),
                address: "127.0.0.1:50071".into(),
                role: "stable".into(),
                health: "SERVING".into(),
            },
            pb::InstanceStatus {
                handle: "4242".into(),
                version: to.into(),
                address: "127.0.0.1:50073".into(),
                role: "new".into(),
                health: "SERVING".into(),
            },
        ],
        weights: vec![
            pb::VersionWeight {
                version: "1.0.0".into(),
                percent: 90,
            },
            pb::VersionWeight {
                version: to.into(),
                percent: 10,
            },
        ],
        status_message: "10% on the new version".into(),
        create_time: at(0),
        update_time: at(5),
        ..Default::default()
    }
}

fn event(sequence: u64, kind: &str, message: &str, step_index: u32) -> pb::RolloutEvent {
    pb::RolloutEvent {
        sequence,
        time: at(sequence as i64),
        kind: kind.into(),
        message: message.into(),
        halt: None,
        step_index,
    }
}

fn analysis_halt() -> pb::Halt {
    pb::Halt {
        gate: pb::Gate::Analysis.into(),
        message: "error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01".into(),
        figures: vec![
            pb::Figure {
                name: "error_ratio".into(),
                version: "1.1.0".into(),
                value: 0.2,
                threshold: 0.0105,
            },
            pb::Figure {
                name: "error_ratio".into(),
                version: "1.0.0".into(),
                value: 0.0005,
                threshold: 0.0,
            },
        ],
        query: "grpc_server_handled_total of 127.0.0.1:50073 against 127.0.0.1:50071 over 1s"
            .into(),
        time: at(4),
    }
}

/// The updates a watch of `id` is sent, after which the stream closes.
fn script(id: &str) -> Option<Vec<pb::RolloutUpdate>> {
    let progressing = rollout(id, "1.1.0", pb::RolloutState::Progressing);
    let first = pb::RolloutUpdate {
        rollout: Some(progressing.clone()),
        events: vec![
            event(1, "STARTED", "greeter 1.0.0 → 1.1.0", 0),
            event(2, "STEP_STARTED", "weight 10% to the new version", 1),
        ],
    };
    match id {
        SUCCEEDS => Some(vec![
            first,
            pb::RolloutUpdate {
                rollout: Some(pb::Rollout {
                    state: pb::RolloutState::Succeeded.into(),
                    step_index: 3,
                    status_message: "all traffic on 1.1.0".into(),
                    revision: 2,
                    ..progressing
                }),
                events: vec![
                    event(3, "STEP_STARTED", "weight 100% to the new version", 2),
                    event(4, "SUCCEEDED", "all traffic on 1.1.0; revision 2", 3),
                ],
            },
        ]),
        ABORTS => Some(vec![
            first,
            pb::RolloutUpdate {
                rollout: Some(pb::Rollout {
                    state: pb::RolloutState::Aborted.into(),
                    status_message: "aborted; all traffic on 1.0.0".into(),
                    halt: Some(analysis_halt()),
                    ..progressing
                }),
                events: vec![pb::RolloutEvent {
                    halt: Some(analysis_halt()),
                    ..event(
                        3,
                        "ABORTED",
                        "analysis failed; all traffic back on 1.0.0",
                        1,
                    )
                }],
            },
        ]),
        BREAKS_OFF => Some(vec![first]),
        _ => None,
    }
}

fn not_found(id: &str) -> Status {
    let mut details = ErrorDetails::new();
    details.set_resource_info("flotilla.rollout.v1.Rollout", id, "", "not found");
    Status::with_error_details(Code::NotFound, format!("no rollout {id}"), details)
}

#[tonic::async_trait]
impl Orchestrator for StandIn {
    async fn start_rollout(
        &self,
        request: Request<pb::StartRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Start(request.clone()));
        if request.version == "2.0.0" {
            let mut details = ErrorDetails::new();
            details
                .add_precondition_failure_violation(
                    "CONSUMER",
                    "frontend@1.0.0",
                    "requires greeter ^1.1; 2.0.0 does not satisfy it",
                )
                .add_precondition_failure_violation(
                    "CONSUMER",
                    "frontend@0.9.0",
                    "requires greeter ^1.0; 2.0.0 does not satisfy it",
                );
            return Err(Status::with_error_details(
                Code::FailedPrecondition,
                "rollout of greeter 2.0.0 refused: 2 consumers would break",
                details,
            ));
        }
        Ok(Response::new(rollout(
            SUCCEEDS,
            &request.version,
            pb::RolloutState::Progressing,
        )))
    }

    async fn get_rollout(
        &self,
        request: Request<pb::GetRolloutRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Get(request.clone()));
        if request.id != SUCCEEDS {
            return Err(not_found(&request.id));
        }
        Ok(Response::new(rollout(
            SUCCEEDS,
            "1.1.0",
            pb::RolloutState::Progressing,
        )))
    }

    /// Three rollouts, served `page_size` at a time with the offset as the token.
    async fn list_rollouts(
        &self,
        request: Request<pb::ListRolloutsRequest>,
    ) -> Result<Response<pb::ListRolloutsResponse>, Status> {
        let request = request.into_inner();
        self.record(Received::List(request.clone()));
        let all = [
            rollout(BREAKS_OFF, "1.2.0", pb::RolloutState::Progressing),
            rollout(ABORTS, "1.1.1", pb::RolloutState::Aborted),
            rollout(SUCCEEDS, "1.1.0", pb::RolloutState::Succeeded),
        ];
        let start: usize = match request.page_token.as_str() {
            "" => 0,
            token => token
                .strip_prefix("offset-")
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| Status::invalid_argument("bad page token"))?,
        };
        let size = (request.page_size as usize).clamp(1, 2);
        let end = (start + size).min(all.len());
        Ok(Response::new(pb::ListRolloutsResponse {
            rollouts: all[start..end].to_vec(),
            next_page_token: if end < all.len() {
                format!("offset-{end}")
            } else {
                String::new()
            },
        }))
    }

    type WatchRolloutStream = Pin<Box<dyn Stream<Item = Result<pb::RolloutUpdate, Status>> + Send>>;

    async fn watch_rollout(
        &self,
        request: Request<pb::WatchRolloutRequest>,
    ) -> Result<Response<Self::WatchRolloutStream>, Status> {
        let request = request.into_inner();
        self.record(Received::Watch(request.clone()));
        let updates = script(&request.id).ok_or_else(|| not_found(&request.id))?;
        Ok(Response::new(Box::pin(tokio_stream::iter(
            updates.into_iter().map(Ok),
        ))))
    }

    async fn pause(
        &self,
        request: Request<pb::PauseRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Pause(request.clone()));
        Ok(Response::new(rollout(
            &request.id,
            "1.1.0",
            pb::RolloutState::Paused,
        )))
    }

    async fn resume(
        &self,
        request: Request<pb::ResumeRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Resume(request.clone()));
        Ok(Response::new(rollout(
            &request.id,
            "1.1.0",
            pb::RolloutState::Progressing,
        )))
    }

    async fn promote(
        &self,
        request: Request<pb::PromoteRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Promote(request.clone()));
        Ok(Response::new(rollout(
            &request.id,
            "1.1.0",
            pb::RolloutState::Progressing,
        )))
    }

    async fn abort(
        &self,
        request: Request<pb::AbortRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Abort(request.clone()));
        Ok(Response::new(rollout(
            &request.id,
            "1.1.0",
            pb::RolloutState::Aborting,
        )))
    }

    async fn rollback(
        &self,
        request: Request<pb::RollbackRequest>,
    ) -> Result<Response<pb::Rollout>, Status> {
        let request = request.into_inner();
        self.record(Received::Rollback(request.clone()));
        Ok(Response::new(pb::Rollout {
            from_version: "1.1.0".into(),
            rollback_to_revision: request.revision.max(1),
            skip_analysis: true,
            ..rollout(SUCCEEDS, "1.0.0", pb::RolloutState::Progressing)
        }))
    }

    async fn explain_rollout(
        &self,
        request: Request<pb::ExplainRolloutRequest>,
    ) -> Result<Response<pb::RolloutExplanation>, Status> {
        let request = request.into_inner();
        self.record(Received::Explain(request.clone()));
        if request.id != ABORTS {
            return Err(not_found(&request.id));
        }
        let halt = analysis_halt();
        Ok(Response::new(pb::RolloutExplanation {
            rollout: Some(rollout(ABORTS, "1.1.1", pb::RolloutState::Aborted)),
            summary: "ABORTED at step 2 of 3 (weight 10% to the new version): the ANALYSIS gate \
                      stopped it. All traffic is on 1.0.0."
                .into(),
            gates: vec![
                pb::GateResult {
                    gate: pb::Gate::Health.into(),
                    verdict: "PASSED".into(),
                    message: "1 of 1 new instance SERVING".into(),
                    ..Default::default()
                },
                pb::GateResult {
                    gate: pb::Gate::Analysis.into(),
                    verdict: "FAILED".into(),
                    message: halt.message.clone(),
                    figures: halt.figures.clone(),
                    query: halt.query.clone(),
                    time: halt.time,
                },
            ],
            recent_events: vec![event(
                3,
                "ABORTED",
                "analysis failed; all traffic back on 1.0.0",
                1,
            )],
            instances: vec![pb::InstanceHealth {
                instance: Some(pb::InstanceStatus {
                    handle: "4242".into(),
                    version: "1.0.0".into(),
                    address: "127.0.0.1:7001".into(),
                    role: "stable".into(),
                    health: "UNWATCHED".into(),
                }),
                checked_health: "UNREACHABLE".into(),
                error: "connecting to 127.0.0.1:7001: Connection refused".into(),
            }],
        }))
    }

    async fn list_revisions(
        &self,
        request: Request<pb::ListRevisionsRequest>,
    ) -> Result<Response<pb::ListRevisionsResponse>, Status> {
        let request = request.into_inner();
        self.record(Received::Revisions(request.clone()));
        Ok(Response::new(pb::ListRevisionsResponse {
            revisions: vec![
                pb::Revision {
                    number: 2,
                    version: "1.1.0".into(),
                    rollout_id: SUCCEEDS.into(),
                    time: at(60),
                    replaced_time: None,
                },
                pb::Revision {
                    number: 1,
                    version: "1.0.0".into(),
                    rollout_id: ABORTS.into(),
                    time: at(0),
                    replaced_time: at(60),
                },
            ],
        }))
    }
}

/// The stand-in on a free loopback port, served until the test's runtime ends.
async fn serve() -> (String, StandIn) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let stand_in = StandIn::default();
    let service = OrchestratorServer::new(stand_in.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (format!("http://{address}"), stand_in)
}

/// What one command did through the library entry point, as the binary would print it.
#[derive(Debug)]
struct Run {
    code: u8,
    stdout: String,
    /// The error, as the binary prints it after `flotilla: error: ` (without its causes).
    error: Option<String>,
}

async fn flotilla(url: &str, args: &[&str]) -> Run {
    let mut argv = vec!["flotilla", "rollout", "--orchestrator", url];
    argv.extend_from_slice(args);
    let Command::Rollout(args) = Cli::try_parse_from(argv).unwrap().command else {
        panic!("not a rollout command");
    };
    let mut stdout = Vec::new();
    let result: Result<Outcome, RolloutError> =
        rollout::run(&args, Console::PLAIN, &mut stdout).await;
    Run {
        code: match &result {
            Ok(outcome) => outcome.exit_code(),
            Err(error) => error.exit_code(),
        },
        stdout: String::from_utf8(stdout).unwrap(),
        error: result.err().map(|e| e.to_string()),
    }
}

/// The real binary, for what only it does: stderr, exit status, the environment variable.
async fn binary(env_url: Option<&str>, args: &[&str]) -> (i32, String, String) {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_flotilla"));
    command
        .args(args)
        .env_remove("FLOTILLA_ORCHESTRATOR")
        .env_remove("CLICOLOR_FORCE");
    if let Some(url) = env_url {
        command.env("FLOTILLA_ORCHESTRATOR", url);
    }
    let output = command.output().await.expect("the flotilla binary runs");
    (
        output.status.code().expect("exited, not killed"),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const REFUSAL: &str = "StartRollout failed: FAILED_PRECONDITION: rollout of greeter 2.0.0 refused: 2 consumers would break\n\
    \x20 CONSUMER frontend@1.0.0: requires greeter ^1.1; 2.0.0 does not satisfy it\n\
    \x20 CONSUMER frontend@0.9.0: requires greeter ^1.0; 2.0.0 does not satisfy it";

#[tokio::test]
async fn a_refused_start_lists_each_violation_and_exits_2() {
    let (url, _) = serve().await;
    let run = flotilla(&url, &["start", "greeter", "2.0.0"]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.error.as_deref(), Some(REFUSAL));

    // The binary prints the same on stderr, and nothing on stdout.
    let (code, stdout, stderr) = binary(
        None,
        &[
            "rollout",
            "start",
            "greeter",
            "2.0.0",
            "--orchestrator",
            &url,
        ],
    )
    .await;
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    assert_eq!(stderr, format!("flotilla: error: {REFUSAL}\n"));
}

#[tokio::test]
async fn start_sends_what_the_flags_say_and_prints_the_rollout() {
    use pb::canary_step::Step;

    let (url, stand_in) = serve().await;
    let run = flotilla(
        &url,
        &[
            "start",
            "greeter",
            "1.1.0",
            "--steps",
            "10,pause:5s,analysis:3,100",
            "--max-error-ratio-increase",
            "0.02",
            "--health-deadline",
            "20s",
        ],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let step = |step| pb::CanaryStep { step: Some(step) };
    assert_eq!(
        stand_in.received.lock().unwrap().as_slice(),
        &[Received::Start(pb::StartRolloutRequest {
            service: "greeter".into(),
            version: "1.1.0".into(),
            strategy: Some(pb::Strategy {
                kind: Some(pb::strategy::Kind::Canary(pb::Canary {
                    steps: vec![
                        step(Step::SetWeight(10)),
                        step(Step::Pause(pb::PauseStep {
                            duration: Some(prost_types::Duration {
                                seconds: 5,
                                nanos: 0
                            })
                        })),
                        step(Step::Analysis(pb::AnalysisStep { intervals: 3 })),
                        step(Step::SetWeight(100)),
                    ]
                }))
            }),
            analysis: Some(pb::Analysis {
                max_error_ratio_increase: Some(0.02),
                ..Default::default()
            }),
            health_deadline: Some(prost_types::Duration {
                seconds: 20,
                nanos: 0
            }),
            ..Default::default()
        })]
    );
    assert_eq!(
        run.stdout,
        format!(
            "started: rollout {SUCCEEDS}  greeter 1.0.0 → 1.1.0  PROGRESSING\n\
             \x20 strategy   canary, default steps\n\
             \x20 step       2/3  weight 10% to the new version\n\
             \x20 status     10% on the new version\n\
             \x20 weights    1.0.0 (stable)  ██████████████████░░   90%\n\
             \x20            1.1.0 (new)     ██░░░░░░░░░░░░░░░░░░   10%\n\
             \x20 instances  stable  1.0.0  127.0.0.1:50071  SERVING  4240\n\
             \x20            new     1.1.0  127.0.0.1:50073  SERVING  4242\n\
             \x20 updated    2026-11-25T12:00:05.000Z (created 2026-11-25T12:00:00.000Z)\n"
        )
    );
}

#[tokio::test]
async fn watch_follows_a_rollout_to_success_and_exits_0() {
    let (url, stand_in) = serve().await;
    let run = flotilla(&url, &["watch", SUCCEEDS]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        run.stdout,
        format!(
            "watching rollout {SUCCEEDS}: greeter 1.0.0 → 1.1.0, canary, default steps, 3 steps, PROGRESSING\n\
             2026-11-25T12:00:01.000Z #1    STARTED          [1/3] greeter 1.0.0 → 1.1.0\n\
             2026-11-25T12:00:02.000Z #2    STEP_STARTED     [2/3] weight 10% to the new version\n\
             2026-11-25T12:00:03.000Z #3    STEP_STARTED     [3/3] weight 100% to the new version\n\
             2026-11-25T12:00:04.000Z #4    SUCCEEDED        all traffic on 1.1.0; revision 2\n\
             rollout {SUCCEEDS} ended SUCCEEDED: all traffic on 1.1.0\n"
        )
    );
    assert_eq!(
        stand_in.received.lock().unwrap().as_slice(),
        &[Received::Watch(pb::WatchRolloutRequest {
            id: SUCCEEDS.into()
        })]
    );
}

#[tokio::test]
async fn watching_an_aborted_rollout_exits_1_with_the_halt() {
    let (url, _) = serve().await;
    // The binary, with the address from the environment; its stdout is a pipe, so one line per
    // event.
    let (code, stdout, stderr) = binary(Some(&url), &["rollout", "watch", ABORTS]).await;
    assert_eq!(code, 1, "{stdout}{stderr}");
    assert_eq!(stderr, "");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert_eq!(
        lines[3],
        "2026-11-25T12:00:03.000Z #3    ABORTED          [2/3] analysis failed; all traffic back on 1.0.0 \
         — gate ANALYSIS; error_ratio[1.1.0]=0.2 (limit 0.0105), error_ratio[1.0.0]=0.0005; \
         query: grpc_server_handled_total of 127.0.0.1:50073 against 127.0.0.1:50071 over 1s"
    );
    assert_eq!(
        lines[4],
        format!(
            "rollout {ABORTS} ended ABORTED: ANALYSIS gate: error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01"
        )
    );
}

#[tokio::test]
async fn a_watch_that_breaks_off_is_an_error_after_what_it_saw() {
    let (url, _) = serve().await;
    let run = flotilla(&url, &["watch", BREAKS_OFF]).await;
    assert_eq!(run.code, 2, "{run:?}");
    assert_eq!(run.stdout.lines().count(), 3, "{run:?}");
    assert_eq!(
        run.error,
        Some(format!(
            "the watch of rollout {BREAKS_OFF} ended before the rollout did (last seen PROGRESSING)"
        ))
    );
    let run = flotilla(&url, &["watch", "no-such-rollout"]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.error.as_deref(),
        Some(
            "WatchRollout failed: NOT_FOUND: no rollout no-such-rollout\n\
             \x20 flotilla.rollout.v1.Rollout \"no-such-rollout\": not found"
        )
    );
}

#[tokio::test]
async fn start_with_watch_follows_the_new_rollout() {
    let (url, stand_in) = serve().await;
    let run = flotilla(&url, &["start", "greeter", "1.1.0", "--watch"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with(&format!(
            "started: rollout {SUCCEEDS}  greeter 1.0.0 → 1.1.0  PROGRESSING\n"
        )),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout.contains(&format!(
            "\n\nwatching rollout {SUCCEEDS}: greeter 1.0.0 → 1.1.0"
        )),
        "{}",
        run.stdout
    );
    assert!(run.stdout.ends_with(&format!(
        "rollout {SUCCEEDS} ended SUCCEEDED: all traffic on 1.1.0\n"
    )));
    let received = stand_in.received.lock().unwrap();
    assert!(
        matches!(received.as_slice(), [Received::Start(_), Received::Watch(w)] if w.id == SUCCEEDS)
    );
}

#[tokio::test]
async fn start_watch_json_prints_one_object_per_update() {
    let (url, _) = serve().await;
    let run = flotilla(
        &url,
        &["start", "greeter", "1.1.0", "--watch", "--format", "json"],
    )
    .await;
    assert_eq!(run.code, 0, "{run:?}");
    let updates: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(updates.len(), 2, "{}", run.stdout);
    assert_eq!(updates[0]["rollout"]["state"], "ROLLOUT_STATE_PROGRESSING");
    assert_eq!(updates[0]["events"][0]["kind"], "STARTED");
    assert_eq!(updates[1]["rollout"]["state"], "ROLLOUT_STATE_SUCCEEDED");
    assert_eq!(updates[1]["rollout"]["revision"], 2);
}

#[tokio::test]
async fn list_follows_every_page_or_stops_at_the_limit() {
    let (url, stand_in) = serve().await;
    let run = flotilla(&url, &["list", "--service", "greeter", "--active"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{}", run.stdout);
    assert!(lines[0].starts_with("ID  "));
    for (line, id) in lines[1..].iter().zip([BREAKS_OFF, ABORTS, SUCCEEDS]) {
        assert!(line.starts_with(id), "{line}");
    }
    let tokens: Vec<(String, bool, String)> = stand_in
        .received
        .lock()
        .unwrap()
        .iter()
        .map(|r| match r {
            Received::List(l) => (l.service.clone(), l.active_only, l.page_token.clone()),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        tokens,
        [
            ("greeter".into(), true, String::new()),
            ("greeter".into(), true, "offset-2".into()),
        ]
    );

    let (url, stand_in) = serve().await;
    let run = flotilla(&url, &["list", "--limit", "1", "--format", "json"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(json["rollouts"].as_array().unwrap().len(), 1);
    assert_eq!(json["rollouts"][0]["id"], BREAKS_OFF);
    assert_eq!(
        stand_in.received.lock().unwrap().as_slice(),
        &[Received::List(pb::ListRolloutsRequest {
            page_size: 1,
            ..Default::default()
        })]
    );
}

#[tokio::test]
async fn status_shows_the_rollout_or_the_missing_resource() {
    let (url, _) = serve().await;
    let run = flotilla(&url, &["status", SUCCEEDS]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert!(
        run.stdout.starts_with(&format!(
            "rollout {SUCCEEDS}  greeter 1.0.0 → 1.1.0  PROGRESSING\n"
        )),
        "{}",
        run.stdout
    );
    let run = flotilla(&url, &["status", ABORTS]).await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.error,
        Some(format!(
            "GetRollout failed: NOT_FOUND: no rollout {ABORTS}\n\
             \x20 flotilla.rollout.v1.Rollout \"{ABORTS}\": not found"
        ))
    );
}

#[tokio::test]
async fn operator_commands_send_their_requests() {
    let (url, stand_in) = serve().await;
    for (args, headline) in [
        (
            &["pause", SUCCEEDS, "--reason", "freeze"][..],
            "pause recorded: ",
        ),
        (&["resume", SUCCEEDS], "resume recorded: "),
        (
            &["promote", SUCCEEDS, "--full"],
            "full promotion recorded: ",
        ),
        (&["abort", SUCCEEDS], "abort recorded: "),
        (&["rollback", "greeter", "--revision", "1"], "started: "),
    ] {
        let run = flotilla(&url, args).await;
        assert_eq!(run.code, 0, "{args:?}: {run:?}");
        assert!(
            run.stdout
                .starts_with(&format!("{headline}rollout {SUCCEEDS}")),
            "{args:?}: {}",
            run.stdout
        );
    }
    let run = flotilla(&url, &["revisions", "greeter"]).await;
    assert_eq!(
        run.stdout.lines().nth(1),
        Some(format!("2         1.1.0    {SUCCEEDS}  2026-11-25T12:01:00.000Z  current").as_str())
    );
    let id = || SUCCEEDS.to_owned();
    assert_eq!(
        stand_in.received.lock().unwrap().as_slice(),
        &[
            Received::Pause(pb::PauseRequest {
                id: id(),
                reason: "freeze".into()
            }),
            Received::Resume(pb::ResumeRequest { id: id() }),
            Received::Promote(pb::PromoteRequest {
                id: id(),
                full: true
            }),
            Received::Abort(pb::AbortRequest {
                id: id(),
                reason: String::new()
            }),
            Received::Rollback(pb::RollbackRequest {
                service: "greeter".into(),
                revision: 1
            }),
            Received::Revisions(pb::ListRevisionsRequest {
                service: "greeter".into()
            }),
        ]
    );
}

#[tokio::test]
async fn an_unreachable_orchestrator_and_a_usage_error_exit_2_before_any_rpc() {
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    let (code, stdout, stderr) = binary(
        None,
        &[
            "rollout",
            "status",
            SUCCEEDS,
            "--orchestrator",
            "http://127.0.0.1:1",
        ],
    )
    .await;
    assert_eq!(code, 2);
    assert_eq!(stdout, "");
    assert!(
        stderr
            .starts_with("flotilla: error: cannot reach the orchestrator at http://127.0.0.1:1: "),
        "{stderr}"
    );

    let (url, stand_in) = serve().await;
    let run = flotilla(
        &url,
        &[
            "start",
            "greeter",
            "1.1.0",
            "--strategy",
            "rolling",
            "--steps",
            "50,100",
        ],
    )
    .await;
    assert_eq!(run.code, 2);
    assert_eq!(
        run.error.as_deref(),
        Some("--steps is for --strategy canary, not rolling")
    );
    assert!(stand_in.received.lock().unwrap().is_empty());
}

#[tokio::test]
async fn explain_prints_the_summary_gates_instances_and_events() {
    let (url, stand_in) = serve().await;
    let run = flotilla(&url, &["explain", ABORTS, "--events", "5"]).await;
    assert_eq!(run.code, 0, "{run:?}");
    assert_eq!(
        stand_in.received.lock().unwrap().as_slice(),
        &[Received::Explain(pb::ExplainRolloutRequest {
            id: ABORTS.into(),
            event_limit: 5
        })]
    );
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], format!("rollout {ABORTS}: greeter 1.0.0 → 1.1.1"));
    assert!(
        lines[1].starts_with("  ABORTED at step 2 of 3"),
        "{}",
        run.stdout
    );
    assert_eq!(lines[2], "  gates");
    assert_eq!(
        lines[3],
        "    HEALTH    PASSED        1 of 1 new instance SERVING"
    );
    assert_eq!(
        lines[4],
        "    ANALYSIS  FAILED        error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01"
    );
    assert_eq!(
        lines[5],
        "                              error_ratio[1.1.0]=0.2 (limit 0.0105)"
    );
    assert!(
        run.stdout.contains(
            "    1.0.0 stable 127.0.0.1:7001        UNWATCHED / UNREACHABLE (connecting to \
             127.0.0.1:7001: Connection refused)"
        ),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("  last events\n"), "{}", run.stdout);
    assert!(run.stdout.contains("ABORTED"), "{}", run.stdout);

    let json = flotilla(&url, &["--format", "json", "explain", ABORTS]).await;
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value["gates"][1]["gate"], "GATE_ANALYSIS");
    assert_eq!(value["gates"][1]["figures"][0]["value"], 0.2);
    assert_eq!(value["instances"][0]["checked_health"], "UNREACHABLE");

    let missing = flotilla(&url, &["explain", SUCCEEDS]).await;
    assert_eq!(missing.code, 2, "{missing:?}");
}
