//! Rollouts on real processes: the orchestrator starts greeter releases through its local-process
//! platform, moves traffic through the registry, and aborts by itself when a gate fails, while a
//! frontend keeps calling.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    postgres::{TestDatabase, admin_url},
    rollout::{
        self, Load, RolloutFleet, canary, deploy, follow, prost_duration, rollout_request,
        run_to_end, state, tally,
    },
};
use flotilla_proto::rollout::v1::{
    self as pb, canary_step::Step, orchestrator_client::OrchestratorClient,
};
use tonic::transport::Channel;
use tonic_types::StatusExt;

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(90);

/// Polls the rollout until `done` holds for it; fails the test after the rollout timeout.
async fn wait_until(
    client: &mut OrchestratorClient<Channel>,
    id: &str,
    done: impl Fn(&pb::Rollout) -> bool,
) -> pb::Rollout {
    rollout::wait_until(client, id, ROLLOUT_TIMEOUT, done)
        .await
        .unwrap()
}

fn analysis_step(intervals: u32) -> Step {
    Step::Analysis(pb::AnalysisStep { intervals })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_under_load_finishes_with_no_failed_call() {
    let mut fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 2).await.unwrap();
    assert_eq!(fleet.running_versions(), ["1.0.0", "1.0.0"]);

    // A frontend that accepts both, so the canary's share is visible in its answers.
    let frontend = fleet.frontend("0.9.0", "^1.0").unwrap();
    let load = Load::start(fleet.frontend_client(frontend).await.unwrap(), 4);
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut client = fleet.client(0).await.unwrap();
    let started = Instant::now();
    let rollout = client
        .start_rollout(rollout_request(
            "1.1.0",
            canary(&[
                Step::SetWeight(20),
                analysis_step(2),
                Step::SetWeight(50),
                analysis_step(2),
                Step::SetWeight(100),
            ]),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rollout.from_version, "1.0.0");
    let (rollout, events) = follow(&mut client, &rollout.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    let took = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = load.stop().await;
    let counts = tally(&answers);
    eprintln!("canary took {took:?}; answers {counts:?}");

    assert_eq!(
        state(&rollout),
        pb::RolloutState::Succeeded,
        "{}",
        rollout.status_message
    );
    assert_eq!(rollout.revision, 2);
    assert!(
        counts.keys().all(|k| !k.starts_with("<failed")),
        "{counts:?}"
    );
    assert!(counts.get("1.1.0").copied().unwrap_or(0) > 0, "{counts:?}");
    // Both analysis steps saw passing intervals on real traffic.
    assert!(
        events
            .iter()
            .any(|e| e.kind == "ANALYSIS" && e.message.starts_with("PASSED")),
        "{events:#?}"
    );
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.1.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_release_is_aborted_by_itself_and_traffic_returns_to_stable() {
    let mut fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    // The faulty 1.2.0: release 1.1.0's API, failing 30% of its calls.
    fleet
        .publish_greeter("1.1.0", "1.2.0", &["--error-ratio", "0.3"])
        .unwrap();
    deploy(&fleet, "1.0.0", 2).await.unwrap();
    let frontend = fleet.frontend("0.9.0", "^1.0").unwrap();
    let load = Load::start(fleet.frontend_client(frontend).await.unwrap(), 4);

    let mut client = fleet.client(0).await.unwrap();
    let (rollout, events) = run_to_end(
        &mut client,
        rollout_request(
            "1.2.0",
            // A first step of 2%: whatever the timing, at most 2% × 30% of calls can fail.
            canary(&[Step::SetWeight(2), analysis_step(10), Step::SetWeight(100)]),
        ),
        ROLLOUT_TIMEOUT,
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = load.stop().await;

    assert_eq!(
        state(&rollout),
        pb::RolloutState::Aborted,
        "{}",
        rollout.status_message
    );
    let halt = rollout.halt.as_ref().expect("an aborted rollout says why");
    assert_eq!(halt.gate, pb::Gate::Analysis as i32);
    let ratio = halt
        .figures
        .iter()
        .find(|f| f.name == "error_ratio" && f.version == "1.2.0")
        .expect("the failing figure is shown");
    assert!(ratio.value > ratio.threshold, "{halt:?}");
    assert!(halt.query.contains("/metrics"), "{}", halt.query);
    assert!(events.iter().any(|e| e.kind == "ABORTED"), "{events:#?}");
    assert_eq!(
        rollout
            .weights
            .iter()
            .find(|w| w.version == "1.0.0")
            .map(|w| w.percent),
        Some(100)
    );
    assert_eq!(fleet.running_versions(), ["1.0.0", "1.0.0"]);

    // From the first failed call to the last call 1.2.0 answered: the fault was visible, the
    // orchestrator saw it, and traffic went back.
    let first_failure = answers
        .iter()
        .filter(|a| a.outcome.is_err())
        .map(|a| a.at)
        .min()
        .expect("the faulty release failed some calls");
    let last_faulty = answers
        .iter()
        // Only 1.2.0 fails, so a failed call is one of its answers too.
        .filter(|a| a.outcome.is_err() || a.outcome.as_deref() == Ok("1.2.0"))
        .map(|a| a.at)
        .max()
        .unwrap_or(first_failure);
    let back_after = last_faulty.saturating_duration_since(first_failure);
    let failed = answers.iter().filter(|a| a.outcome.is_err()).count();
    let during: Vec<_> = answers.iter().filter(|a| a.at >= first_failure).collect();
    eprintln!(
        "fault to stable: {back_after:?}; failed {failed} of {} calls ({:?})",
        answers.len(),
        tally(&answers)
    );
    assert!(back_after < Duration::from_secs(3), "{back_after:?}");
    assert!(
        (failed as f64) < 0.01 * answers.len() as f64,
        "{failed} of {} calls failed ({} after the first failure)",
        answers.len(),
        during.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_stops_serving_aborts_the_rollout() {
    let fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet
        .publish_greeter("1.1.0", "1.2.0", &["--unhealthy-after", "2"])
        .unwrap();
    deploy(&fleet, "1.0.0", 1).await.unwrap();
    let mut client = fleet.client(0).await.unwrap();
    let (rollout, _) = run_to_end(
        &mut client,
        rollout_request(
            "1.2.0",
            canary(&[
                Step::SetWeight(10),
                Step::Pause(pb::PauseStep { duration: None }),
            ]),
        ),
        ROLLOUT_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(state(&rollout), pb::RolloutState::Aborted);
    let halt = rollout.halt.unwrap();
    assert_eq!(halt.gate, pb::Gate::Health as i32, "{}", halt.message);
    assert!(halt.message.contains("NOT_SERVING"), "{}", halt.message);
    assert_eq!(fleet.running_versions(), ["1.0.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_breaking_release_is_refused_before_any_instance_starts_naming_the_consumer() {
    let mut fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet.publish_greeter("2.0.0", "2.0.0", &[]).unwrap();
    deploy(&fleet, "1.1.0", 1).await.unwrap();
    fleet.frontend("1.0.0", "^1.1").unwrap();

    let mut client = fleet.client(0).await.unwrap();
    let status = client
        .start_rollout(rollout_request("2.0.0", canary(&[])))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("frontend@1.0.0"),
        "{}",
        status.message()
    );
    assert!(status.message().contains("^1.1"), "{}", status.message());
    let violations = status
        .get_details_precondition_failure()
        .unwrap()
        .violations;
    let consumer = violations
        .iter()
        .find(|v| v.r#type == "CONSUMER")
        .expect("a consumer violation");
    assert_eq!(consumer.subject, "frontend@1.0.0");
    assert!(
        consumer.description.contains("requires greeter ^1.1"),
        "{consumer:?}"
    );

    assert_eq!(fleet.running_versions(), ["1.1.0"]);
    let active = client
        .list_rollouts(pb::ListRolloutsRequest {
            active_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(active.rollouts.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_switches_at_once_and_an_abort_in_its_window_switches_back() {
    let fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.2.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 2).await.unwrap();
    let mut client = fleet.client(0).await.unwrap();
    let blue_green = |window_ms: u64| {
        pb::strategy::Kind::BlueGreen(pb::BlueGreen {
            auto_promote_after: Some(prost_duration(Duration::ZERO)),
            rollback_window: Some(prost_duration(Duration::from_millis(window_ms))),
        })
    };

    let (done, events) = run_to_end(
        &mut client,
        rollout_request("1.1.0", blue_green(500)),
        ROLLOUT_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(
        state(&done),
        pb::RolloutState::Succeeded,
        "{}",
        done.status_message
    );
    // One switch: the weights went from all-stable straight to all-new.
    let weights: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "WEIGHTS_SET")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(
        weights,
        [
            "weights 1.0.0: 100%, 1.1.0: 0%",
            "weights 1.0.0: 0%, 1.1.0: 100%"
        ]
    );
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.1.0"]);

    // A long window, aborted inside it: all traffic returns to the warm old set.
    let rollout = client
        .start_rollout(rollout_request("1.2.0", blue_green(600_000)))
        .await
        .unwrap()
        .into_inner();
    wait_until(&mut client, &rollout.id, |r| {
        r.weights
            .iter()
            .any(|w| w.version == "1.2.0" && w.percent == 100)
    })
    .await;
    assert_eq!(
        fleet.running_versions(),
        ["1.1.0", "1.1.0", "1.2.0", "1.2.0"]
    );
    client
        .abort(pb::AbortRequest {
            id: rollout.id.clone(),
            reason: "test".into(),
        })
        .await
        .unwrap();
    let (aborted, _) = follow(&mut client, &rollout.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(state(&aborted), pb::RolloutState::Aborted);
    assert_eq!(aborted.halt.unwrap().gate, pb::Gate::Operator as i32);
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.1.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_replaces_instances_in_batches_and_an_abort_restores_the_old_set() {
    let fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet
        .publish_greeter("1.1.0", "1.2.0", &["--unhealthy-after", "0"])
        .unwrap();
    deploy(&fleet, "1.0.0", 2).await.unwrap();
    let mut client = fleet.client(0).await.unwrap();
    let rolling = pb::strategy::Kind::Rolling(pb::Rolling {
        max_surge: 1,
        max_unavailable: 0,
    });

    let (done, events) = run_to_end(
        &mut client,
        rollout_request("1.1.0", rolling.clone()),
        ROLLOUT_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(
        state(&done),
        pb::RolloutState::Succeeded,
        "{}",
        done.status_message
    );
    let started = events
        .iter()
        .filter(|e| e.kind == "INSTANCE_STARTED")
        .count();
    let stopped = events
        .iter()
        .filter(|e| e.kind == "INSTANCE_STOPPED")
        .count();
    assert_eq!((started, stopped), (2, 2), "{events:#?}");
    // One at a time: the first old instance stops before the second new one starts.
    let order: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "INSTANCE_STARTED" || e.kind == "INSTANCE_STOPPED")
        .map(|e| e.kind.as_str())
        .collect();
    assert_eq!(
        order,
        [
            "INSTANCE_STARTED",
            "INSTANCE_STOPPED",
            "INSTANCE_STARTED",
            "INSTANCE_STOPPED"
        ]
    );
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.1.0"]);

    // 1.2.0 turns NOT_SERVING as soon as it registers: whether the orchestrator saw it serve
    // for a moment or never, the health gate aborts the rolling update, and the abort brings the
    // old set back to two.
    let mut request = rollout_request("1.2.0", rolling);
    request.health_deadline = Some(prost_duration(Duration::from_secs(5)));
    let rollout = client.start_rollout(request).await.unwrap().into_inner();
    let (aborted, _) = follow(&mut client, &rollout.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        state(&aborted),
        pb::RolloutState::Aborted,
        "{}",
        aborted.status_message
    );
    assert_eq!(aborted.halt.unwrap().gate, pb::Gate::Health as i32);
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.1.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_orchestrator_is_restarted_and_the_rollout_finishes_without_redoing_steps() {
    takeover(RolloutFleet::start().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orchestrators_sharing_postgresql_hand_a_rollout_over_after_a_kill() {
    let Some(admin) = admin_url() else { return };
    let db = TestDatabase::create(&admin).await.unwrap();
    takeover(RolloutFleet::start_on(Some(db.url.clone())).unwrap()).await;
    db.drop_database().await.unwrap();
}

/// Two orchestrators on one store, only one acting; the acting one is killed (-9) mid-canary and
/// started again; the rollout is finished, by the survivor or the restarted one, without redoing
/// its steps.
async fn takeover(mut fleet: RolloutFleet) {
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 1).await.unwrap();
    // A second orchestrator on the same store: it must not act while the first holds the lease.
    fleet.start_orchestrator().unwrap();

    let mut client = fleet.client(0).await.unwrap();
    let rollout = client
        .start_rollout(rollout_request(
            "1.1.0",
            canary(&[
                Step::SetWeight(50),
                Step::Pause(pb::PauseStep {
                    duration: Some(prost_duration(Duration::from_secs(3))),
                }),
                Step::SetWeight(100),
            ]),
        ))
        .await
        .unwrap()
        .into_inner();
    // Wait until the canary instance serves at 50%, in the timed pause.
    let before_kill = wait_until(&mut client, &rollout.id, |r| {
        r.weights
            .iter()
            .any(|w| w.version == "1.1.0" && w.percent == 50)
    })
    .await;
    let owner = before_kill.owner.clone();
    // Holders are named host/pid/suffix: find the process that acts.
    let owner_pid: u32 = owner.split('/').nth(1).unwrap().parse().unwrap();
    let acting = (0..fleet.orchestrators.len())
        .find(|&i| fleet.orchestrator(i).pid() == owner_pid)
        .expect("the owner is one of ours");
    let idle = 1 - acting;
    // While both run, only one has ever acted on the rollout.
    let mut watch = fleet
        .client(idle)
        .await
        .unwrap()
        .watch_rollout(pb::WatchRolloutRequest {
            id: rollout.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let so_far = watch.message().await.unwrap().unwrap().events;
    let owners_so_far = so_far.iter().filter(|e| e.kind == "OWNER_CHANGED").count();
    assert_eq!(owners_so_far, 1, "{so_far:#?}");
    drop(watch);

    // kill -9 the acting one mid-canary, and start it again.
    fleet.orchestrators[acting]
        .as_mut()
        .unwrap()
        .kill()
        .unwrap();
    fleet.orchestrators[acting] = None;
    let restarted = fleet.start_orchestrator().unwrap();

    let mut peer_client = fleet.client(restarted).await.unwrap();
    let (done, events) = follow(&mut peer_client, &rollout.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        state(&done),
        pb::RolloutState::Succeeded,
        "{}",
        done.status_message
    );
    assert_ne!(done.owner, owner);
    // Each canary instance was started once: the successor found it rather than starting another.
    let started: Vec<_> = events
        .iter()
        .filter(|e| e.kind == "INSTANCE_STARTED")
        .collect();
    assert_eq!(started.len(), 1, "{started:#?}");
    let owners: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == "OWNER_CHANGED")
        .map(|e| e.message.as_str())
        .collect();
    assert_eq!(owners.len(), 2, "{owners:?}");
    assert!(owners[1].contains("took over at step"), "{owners:?}");
    assert_eq!(fleet.running_versions(), ["1.1.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_without_traffic_halts_inconclusive_and_never_passes() {
    let fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 1).await.unwrap();
    let mut client = fleet.client(0).await.unwrap();
    // No caller at all: the analysis step can never see enough calls.
    let mut request = rollout_request(
        "1.1.0",
        canary(&[Step::SetWeight(10), analysis_step(2), Step::SetWeight(100)]),
    );
    let analysis = request.analysis.as_mut().unwrap();
    analysis.interval = Some(prost_duration(Duration::from_millis(200)));
    analysis.inconclusive_limit = Some(2);
    let rollout = client.start_rollout(request).await.unwrap().into_inner();

    let halted = wait_until(&mut client, &rollout.id, |r| {
        state(r) != pb::RolloutState::Progressing
    })
    .await;
    assert_eq!(
        state(&halted),
        pb::RolloutState::Paused,
        "{}",
        halted.status_message
    );
    let halt = halted.halt.as_ref().expect("a halt says why");
    assert_eq!(halt.gate, pb::Gate::Analysis as i32);
    assert!(halt.message.contains("inconclusive"), "{}", halt.message);
    assert!(
        halt.message.contains("missing data never passes"),
        "{}",
        halt.message
    );
    let requests = halt
        .figures
        .iter()
        .find(|f| f.name == "requests")
        .expect("the call count is shown");
    assert!(requests.value < requests.threshold, "{requests:?}");
    let last = halted.last_analysis.as_ref().unwrap();
    assert_eq!(last.verdict, "INCONCLUSIVE");
    // It stays halted at its analysis step: the 100% step never comes.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let still = client
        .get_rollout(pb::GetRolloutRequest {
            id: rollout.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(state(&still), pb::RolloutState::Paused);
    assert_eq!(still.step_index, halted.step_index);
    assert!(
        !still
            .weights
            .iter()
            .any(|w| w.version == "1.1.0" && w.percent == 100)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rollback_within_its_window_takes_the_emergency_path() {
    let fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 2).await.unwrap();
    let mut client = fleet.client(0).await.unwrap();
    let (done, _) = run_to_end(
        &mut client,
        rollout_request(
            "1.1.0",
            canary(&[Step::SetWeight(50), Step::SetWeight(100)]),
        ),
        ROLLOUT_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(state(&done), pb::RolloutState::Succeeded);

    let back = client
        .rollback(pb::RollbackRequest {
            service: "greeter".into(),
            revision: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.to_version, "1.0.0");
    assert_eq!(back.rollback_to_revision, 1);
    assert!(back.skip_analysis, "within the window: no analysis");
    assert!(
        back.plan.iter().all(|s| !matches!(
            s.action,
            Some(pb::plan_step::Action::Pause(_) | pb::plan_step::Action::Analysis(_))
        )),
        "{:?}",
        back.plan
    );
    let (ended, events) = follow(&mut client, &back.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    assert_eq!(
        state(&ended),
        pb::RolloutState::Succeeded,
        "{}",
        ended.status_message
    );
    assert_eq!(ended.revision, 3);
    assert!(
        events[0].message.contains("within the rollback window"),
        "{}",
        events[0].message
    );
    assert_eq!(fleet.running_versions(), ["1.0.0", "1.0.0"]);
    let revisions = client
        .list_revisions(pb::ListRevisionsRequest {
            service: "greeter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .revisions;
    let versions: Vec<&str> = revisions.iter().map(|r| r.version.as_str()).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0", "1.0.0"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_exits_fails_the_health_gate_and_is_not_started_again() {
    let fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    // Exits as soon as it has registered: a release that crashes on start.
    fleet
        .publish_greeter("1.1.0", "1.2.0", &["--crash-after", "0"])
        .unwrap();
    deploy(&fleet, "1.0.0", 1).await.unwrap();
    let mut client = fleet.client(0).await.unwrap();
    let (ended, events) = run_to_end(
        &mut client,
        rollout_request(
            "1.2.0",
            canary(&[Step::SetWeight(10), Step::SetWeight(100)]),
        ),
        ROLLOUT_TIMEOUT,
    )
    .await
    .unwrap();
    assert_eq!(
        state(&ended),
        pb::RolloutState::Aborted,
        "{}",
        ended.status_message
    );
    let halt = ended.halt.unwrap();
    assert_eq!(halt.gate, pb::Gate::Health as i32, "{}", halt.message);
    // Seen as an exit (rather than first as a broken health watch), the halt says how it ended.
    if halt.message.contains("exited on its own") {
        assert!(
            halt.message.contains("exit code") && halt.message.contains("its last log lines"),
            "{}",
            halt.message
        );
    }
    let started = events
        .iter()
        .filter(|e| e.kind == "INSTANCE_STARTED")
        .count();
    assert_eq!(
        started, 1,
        "a crashing release is not restarted in a loop: {events:#?}"
    );
    assert_eq!(fleet.running_versions(), ["1.0.0"]);
}
