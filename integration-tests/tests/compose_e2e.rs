//! The whole suite in docker compose (deploy/compose), end to end: the images built here with no
//! registry, PostgreSQL, two registry replicas, the orchestrator running the greeter fleet as
//! containers through the Docker Engine, and a frontend calling greeter under load from the host.
//!
//! One test, scenes in order, since they share one suite that takes a minute to bring up:
//! a canary that succeeds; a breaking release its consumer refuses (through grpcurl); a faulty
//! release aborted by itself; then faults: an instance container killed mid-rollout, a registry
//! replica killed (the other serves, a rollout goes through), the orchestrator restarted
//! mid-rollout (it resumes), and PostgreSQL stopped for 10 s (UNAVAILABLE, then recovery, no
//! acknowledged write lost). The figures are printed at the end (`--no-capture` shows them).
//!
//! It runs alone, after the rest: ignored by default (plain `cargo test` too), it is run by
//! `cargo nextest run --profile e2e --run-ignored only` (see .config/nextest.toml).

use std::{
    fmt::Write as _,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use flotilla_integration_tests::{
    compose::{self, ComposeSuite, FRONTEND, ORCHESTRATOR, REGISTRY_A, REGISTRY_B},
    peers::Grpcurl,
    rollout::{Answer, Load, canary, follow, prost_duration, rollout_request, state, tally},
};
use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::{
    demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient},
    registry::v1::{self as registry_pb, registry_client::RegistryClient},
    rollout::v1::{self as pb, canary_step::Step, orchestrator_client::OrchestratorClient},
};
use tonic::{Code, transport::Channel};

/// Calls in flight through the frontend during each scene.
const LOAD_CONCURRENCY: usize = 2;

/// The figures the closing note reports, one line each.
#[derive(Default)]
struct Figures(String);

impl Figures {
    fn add(&mut self, line: impl std::fmt::Display) {
        eprintln!("figure: {line}");
        let _ = writeln!(self.0, "  {line}");
    }
}

/// A channel that connects on first use and again after the server restarts.
fn lazy(url: &'static str) -> Channel {
    Channel::from_static(url)
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy()
}

fn orchestrator() -> OrchestratorClient<Channel> {
    OrchestratorClient::new(lazy(ORCHESTRATOR))
}

fn frontend() -> FrontendClient<Channel> {
    FrontendClient::new(lazy(FRONTEND))
}

fn failed(answers: &[Answer]) -> usize {
    answers.iter().filter(|a| a.outcome.is_err()).count()
}

fn pause(duration: Duration) -> Step {
    Step::Pause(pb::PauseStep {
        duration: Some(prost_duration(duration)),
    })
}

/// Whether the orchestrator may be restarting while a rollout is followed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Restarts {
    /// Any failed call is the test's failure.
    None,
    /// A call broken by the restart is tried again.
    RideOut,
}

/// A rollout's state by polling GetRollout until the rollout ends or `timeout` passes, riding
/// out an orchestrator that restarts when told to.
async fn until_ended(
    id: &str,
    timeout: Duration,
    restarts: Restarts,
) -> anyhow::Result<pb::Rollout> {
    let mut client = orchestrator();
    let deadline = Instant::now() + timeout;
    let mut last = None;
    while Instant::now() < deadline {
        match client
            .get_rollout(pb::GetRolloutRequest { id: id.into() })
            .await
        {
            Ok(rollout) => {
                let rollout = rollout.into_inner();
                if matches!(
                    state(&rollout),
                    pb::RolloutState::Succeeded | pb::RolloutState::Aborted
                ) {
                    return Ok(rollout);
                }
                last = Some(rollout);
            }
            Err(status) if restarts == Restarts::RideOut && restarting(&status) => {}
            Err(status) => bail!("GetRollout {id}: {status}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "rollout {id} did not end within {timeout:?}; last seen: {:?}",
        last.map(|r| (state(&r), r.step_index, r.status_message))
    )
}

/// Whether a failed call is what a restarting server gives: UNAVAILABLE, or a connection broken
/// under the call, which tonic reports with the transport error beneath and a code that depends
/// on the moment (UNKNOWN for a broken pipe, CANCELLED for a closed connection).
fn restarting(status: &tonic::Status) -> bool {
    match status.code() {
        Code::Unavailable => true,
        Code::Unknown | Code::Cancelled => std::error::Error::source(status).is_some(),
        _ => false,
    }
}

/// Waits until the rollout is at plan step `step` with a running container of `version`.
async fn until_at_step(
    suite: &ComposeSuite,
    id: &str,
    step: u32,
    version: &str,
) -> anyhow::Result<()> {
    let mut client = orchestrator();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let rollout = client
            .get_rollout(pb::GetRolloutRequest { id: id.into() })
            .await?
            .into_inner();
        if state(&rollout) != pb::RolloutState::Progressing {
            bail!(
                "rollout {id} is {:?} before step {step}: {}",
                state(&rollout),
                rollout.status_message
            );
        }
        if rollout.step_index >= step && !suite.running(version)?.is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!("rollout {id} did not reach step {step} within 60 s")
}

/// Starts a rollout of greeter `version` and returns its id.
async fn start(request: pb::StartRolloutRequest) -> anyhow::Result<String> {
    let rollout = orchestrator()
        .start_rollout(request)
        .await
        .context("StartRollout")?
        .into_inner();
    Ok(rollout.id)
}

/// One greeting through the frontend: the greeter version that answered.
async fn greeted_by() -> anyhow::Result<String> {
    let reply = frontend()
        .greet(GreetRequest {
            name: "e2e".into(),
            locale: String::new(),
        })
        .await?
        .into_inner();
    Ok(reply.greeter_version)
}

/// The steady canary the scenes use: half the traffic, a pause, all of it.
fn steady_canary(version: &str, hold: Duration) -> pb::StartRolloutRequest {
    let mut request = rollout_request(
        version,
        canary(&[Step::SetWeight(50), pause(hold), Step::SetWeight(100)]),
    );
    // The analysis reads each instance's metrics across the compose network; on two cores that
    // also run a dozen containers, an interval of a second leaves room for enough calls.
    if let Some(analysis) = request.analysis.as_mut() {
        analysis.interval = Some(prost_duration(Duration::from_secs(1)));
    }
    request
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the machine to itself: cargo nextest run --profile e2e --run-ignored only"]
async fn the_suite_in_compose_rolls_out_and_survives_its_faults() {
    if !compose::available() {
        eprintln!("skipped: no Docker engine or docker-compose here");
        return;
    }
    let grpcurl = Grpcurl::find("127.0.0.1:50061").expect("grpcurl");
    let mut figures = Figures::default();

    let built = compose::build_images().expect("the images build");
    figures.add(format_args!("images built in {:.1} s", built.as_secs_f64()));
    let (suite, up) = ComposeSuite::up().expect("the suite comes up");
    figures.add(format_args!(
        "suite up and healthy with greeter 1.0.0 x2 deployed in {:.1} s",
        up.as_secs_f64()
    ));
    assert_eq!(suite.running("1.0.0").unwrap().len(), 2);
    assert_eq!(greeted_by().await.unwrap(), "1.0.0");
    // Healthy releases beyond the demo's, for the fault scenes.
    for version in ["1.1.1", "1.1.2"] {
        suite.publish_greeter("1.1.0", version, &[]).unwrap();
    }

    canary_succeeds(&suite, &mut figures).await;
    breaking_release_is_refused(&suite, &grpcurl, &mut figures).await;
    faulty_release_aborts_itself(&suite, &mut figures).await;
    killed_instance_aborts_the_rollout(&suite, &mut figures).await;
    killed_registry_replica_leaves_the_other_serving(&suite, &mut figures).await;
    restarted_orchestrator_resumes_its_rollout(&suite, &mut figures).await;
    stopped_postgres_loses_no_acknowledged_write(&suite, &mut figures).await;

    eprintln!("compose e2e figures:\n{}", figures.0);
    drop(suite);
}

/// 1.0.0 → 1.1.0 by canary under load: all traffic moves, the containers are replaced, no call
/// fails; grpcurl from the host sees the new version answer.
async fn canary_succeeds(suite: &ComposeSuite, figures: &mut Figures) {
    let load = Load::start(frontend(), LOAD_CONCURRENCY);
    let started = Instant::now();
    let id = start(steady_canary("1.1.0", Duration::from_secs(2)))
        .await
        .unwrap();
    let rollout = until_ended(&id, Duration::from_secs(120), Restarts::None)
        .await
        .unwrap();
    let took = started.elapsed();
    let answers = load.stop().await;
    assert_eq!(
        state(&rollout),
        pb::RolloutState::Succeeded,
        "{}",
        rollout.status_message
    );
    figures.add(format_args!(
        "canary 1.0.0 -> 1.1.0 (50%, 2 s pause, 100%): {:.1} s; calls {:?}",
        took.as_secs_f64(),
        tally(&answers)
    ));
    assert_eq!(failed(&answers), 0, "{:?}", tally(&answers));
    assert_eq!(suite.running("1.1.0").unwrap().len(), 2);
    assert!(suite.running("1.0.0").unwrap().is_empty());

    let through_grpcurl = Grpcurl::find("127.0.0.1:50081").unwrap().call(
        "demo.frontend.v1.Frontend/Greet",
        &serde_json::json!({"name": "grpcurl"}),
    );
    assert!(through_grpcurl.success, "{through_grpcurl:?}");
    assert_eq!(through_grpcurl.json()["greeterVersion"], "1.1.0");
}

/// 2.0.0 breaks the frontend's `^1.0`: StartRollout through grpcurl is FAILED_PRECONDITION naming
/// the consumer, and nothing starts.
async fn breaking_release_is_refused(
    suite: &ComposeSuite,
    grpcurl: &Grpcurl,
    figures: &mut Figures,
) {
    let refused = grpcurl.call(
        "flotilla.rollout.v1.Orchestrator/StartRollout",
        &serde_json::json!({
            "service": "greeter",
            "version": "2.0.0",
            "strategy": {"canary": {"steps": [{"setWeight": 50}]}},
        }),
    );
    assert!(!refused.success, "{refused:?}");
    assert_eq!(
        refused.code().as_deref(),
        Some("FailedPrecondition"),
        "{refused:?}"
    );
    assert!(
        refused.stderr.contains("frontend@0.9.0"),
        "the refusal names the consumer: {}",
        refused.stderr
    );
    assert!(suite.running("2.0.0").unwrap().is_empty());
    figures.add(
        "breaking 2.0.0 refused (FAILED_PRECONDITION naming frontend@0.9.0), 0 containers started",
    );
}

/// 1.2.0 fails 30% of its calls: the analysis aborts the canary at its first step and traffic
/// goes back to 1.1.0. The first step is 10%: through the compose network the load makes about
/// 150 calls a second, so each one-second interval sees some 15 calls of the canary, well above
/// the analysis's minimum of 5 (fewer would be inconclusive and pause the rollout instead).
async fn faulty_release_aborts_itself(suite: &ComposeSuite, figures: &mut Figures) {
    let load = Load::start(frontend(), LOAD_CONCURRENCY);
    let mut request = rollout_request(
        "1.2.0",
        canary(&[
            Step::SetWeight(10),
            Step::Analysis(pb::AnalysisStep { intervals: 5 }),
            Step::SetWeight(100),
        ]),
    );
    if let Some(analysis) = request.analysis.as_mut() {
        analysis.interval = Some(prost_duration(Duration::from_secs(1)));
    }
    let id = start(request).await.unwrap();
    let rollout = until_ended(&id, Duration::from_secs(120), Restarts::None)
        .await
        .unwrap();
    let answers = load.stop().await;
    assert_eq!(
        state(&rollout),
        pb::RolloutState::Aborted,
        "{}",
        rollout.status_message
    );
    let halt = rollout.halt.clone().expect("an aborted rollout says why");
    assert_eq!(halt.gate, pb::Gate::Analysis as i32, "{halt:?}");
    let failed = failed(&answers);
    figures.add(format_args!(
        "faulty 1.2.0 (30% errors) at 10%: aborted by the ANALYSIS gate ({}); {failed} of {} calls failed",
        halt.message,
        answers.len()
    ));
    // At 10% of the traffic with 30% errors, about 3% of the calls fail while the canary has
    // traffic, and the scene's load runs longer than that; both shares are random, so the bound
    // leaves room: twice the expected share would mean traffic was not moved back.
    assert!(
        failed * 100 <= answers.len() * 6,
        "{failed} of {} calls failed",
        answers.len()
    );
    assert!(suite.running("1.2.0").unwrap().is_empty());
    assert_eq!(greeted_by().await.unwrap(), "1.1.0");
}

/// The canary's container is killed while it takes half the traffic: the HEALTH gate aborts the
/// rollout and the stable version takes all traffic again.
async fn killed_instance_aborts_the_rollout(suite: &ComposeSuite, figures: &mut Figures) {
    let load = Load::start(frontend(), LOAD_CONCURRENCY);
    let id = start(steady_canary("1.1.1", Duration::from_secs(120)))
        .await
        .unwrap();
    until_at_step(suite, &id, 1, "1.1.1").await.unwrap();
    let victim = suite.running("1.1.1").unwrap().remove(0);
    let killed_at = Instant::now();
    compose::docker(&["kill", &victim.id]).unwrap();
    let rollout = until_ended(&id, Duration::from_secs(60), Restarts::None)
        .await
        .unwrap();
    let aborted_in = killed_at.elapsed();
    let answers = load.stop().await;
    assert_eq!(
        state(&rollout),
        pb::RolloutState::Aborted,
        "{}",
        rollout.status_message
    );
    let halt = rollout.halt.clone().expect("an aborted rollout says why");
    assert_eq!(halt.gate, pb::Gate::Health as i32, "{halt:?}");
    let failed = failed(&answers);
    figures.add(format_args!(
        "1.1.1 canary container killed at 50%: aborted by the HEALTH gate {:.1} s later ({}); {failed} of {} calls failed",
        aborted_in.as_secs_f64(),
        halt.message,
        answers.len()
    ));
    assert_eq!(suite.running("1.1.0").unwrap().len(), 2);
    assert!(suite.running("1.1.1").unwrap().is_empty());
    assert_eq!(greeted_by().await.unwrap(), "1.1.0");
}

/// Registry replica A is killed: the greeters keep their leases through B, the frontend keeps
/// calling, grpcurl reads from B, and a rollout (the orchestrator now on B) goes through.
async fn killed_registry_replica_leaves_the_other_serving(
    suite: &ComposeSuite,
    figures: &mut Figures,
) {
    let load = Load::start(frontend(), LOAD_CONCURRENCY);
    tokio::time::sleep(Duration::from_secs(1)).await;
    suite.kill("registry-a").unwrap();
    // Two lease lengths (3 s): a lease renewed only through A would have lapsed.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let mut through_b = RegistryClient::new(lazy(REGISTRY_B));
    let live = through_b
        .list_instances(registry_pb::ListInstancesRequest {
            service: "greeter".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .instances;
    assert_eq!(
        live.len(),
        2,
        "both greeters kept their leases through B: {live:?}"
    );
    let resolved = Grpcurl::find("127.0.0.1:50052").unwrap().call(
        "flotilla.registry.v1.Registry/Resolve",
        &serde_json::json!({"service": "greeter", "requirement": "~1.1.0"}),
    );
    assert!(resolved.success, "{resolved:?}");

    let started = Instant::now();
    let id = start(steady_canary("1.1.1", Duration::from_secs(1)))
        .await
        .unwrap();
    let rollout = until_ended(&id, Duration::from_secs(120), Restarts::None)
        .await
        .unwrap();
    let took = started.elapsed();
    let answers = load.stop().await;
    assert_eq!(
        state(&rollout),
        pb::RolloutState::Succeeded,
        "{}",
        rollout.status_message
    );
    let failed = failed(&answers);
    figures.add(format_args!(
        "registry-a killed: greeter leases kept through registry-b, canary 1.1.0 -> 1.1.1 succeeded in {:.1} s meanwhile; {failed} of {} calls failed",
        took.as_secs_f64(),
        answers.len()
    ));
    assert_eq!(failed, 0, "{:?}", tally(&answers));
    suite.start("registry-a").unwrap();
    suite
        .wait_healthy("registry-a", Duration::from_secs(60))
        .await
        .unwrap();
}

/// The orchestrator's container is restarted while its canary pauses at 50%: the new process
/// takes the rollout over and finishes it, starting no instance twice.
async fn restarted_orchestrator_resumes_its_rollout(suite: &ComposeSuite, figures: &mut Figures) {
    let load = Load::start(frontend(), LOAD_CONCURRENCY);
    let id = start(steady_canary("1.1.2", Duration::from_secs(8)))
        .await
        .unwrap();
    until_at_step(suite, &id, 1, "1.1.2").await.unwrap();
    let restarted_at = Instant::now();
    suite.restart("orchestrator").unwrap();
    let restart_took = restarted_at.elapsed();
    let rollout = until_ended(&id, Duration::from_secs(120), Restarts::RideOut)
        .await
        .unwrap();
    let answers = load.stop().await;
    assert_eq!(
        state(&rollout),
        pb::RolloutState::Succeeded,
        "{}",
        rollout.status_message
    );
    let (_, events) = follow(&mut orchestrator(), &id, Duration::from_secs(10))
        .await
        .unwrap();
    let started_instances = events
        .iter()
        .filter(|e| e.kind == "INSTANCE_STARTED")
        .count();
    let owners = events.iter().filter(|e| e.kind == "OWNER_CHANGED").count();
    let failed = failed(&answers);
    figures.add(format_args!(
        "orchestrator restarted at the 50% pause (docker restart {:.1} s): rollout resumed and succeeded, {started_instances} instances started for 2 replicas, {owners} owner change(s); {failed} of {} calls failed",
        restart_took.as_secs_f64(),
        answers.len()
    ));
    assert_eq!(
        started_instances, 2,
        "no instance started twice: {events:?}"
    );
    assert_eq!(suite.running("1.1.2").unwrap().len(), 2);
    assert!(suite.running("1.1.1").unwrap().is_empty());
    assert_eq!(failed, 0, "{:?}", tally(&answers));
}

/// The outcome of one write to the registry during the PostgreSQL scene.
struct Write {
    version: String,
    at: Instant,
    code: Code,
}

/// Publishes `ledger` versions 0.1.0, 0.1.1, ... one after another through `url` until `stop`,
/// recording each answer.
async fn write_ledger(
    url: &'static str,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> Vec<Write> {
    let mut client = RegistryClient::new(lazy(url));
    let mut writes = Vec::new();
    let mut patch = 0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let version = format!("0.1.{patch}");
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            client.publish_version(registry_pb::PublishVersionRequest {
                service: "ledger".into(),
                version: version.clone(),
                file_descriptor_set: greeter_schema_bytes(0),
                ..Default::default()
            }),
        )
        .await;
        let code = match answer {
            Ok(Ok(_)) => Code::Ok,
            Ok(Err(status)) => status.code(),
            Err(_) => Code::DeadlineExceeded,
        };
        // A version the registry refused is tried again; one it acknowledged is not rewritten.
        if code == Code::Ok {
            patch += 1;
        }
        writes.push(Write {
            version,
            at: Instant::now(),
            code,
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    writes
}

/// PostgreSQL is stopped for 10 s under writes and calls: the registry answers UNAVAILABLE
/// (nothing else), recovers once it is back, and every version it acknowledged is there.
async fn stopped_postgres_loses_no_acknowledged_write(suite: &ComposeSuite, figures: &mut Figures) {
    let mut through_a = RegistryClient::new(lazy(REGISTRY_A));
    through_a
        .create_service(registry_pb::CreateServiceRequest {
            name: "ledger".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let revisions_before = orchestrator()
        .list_revisions(pb::ListRevisionsRequest {
            service: "greeter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .revisions
        .len();

    let load = Load::start(frontend(), LOAD_CONCURRENCY);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = tokio::spawn(write_ledger(REGISTRY_B, stop.clone()));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopping = Instant::now();
    suite.stop("postgres").unwrap();
    let stopped_at = Instant::now();
    let stop_took = stopped_at - stopping;
    tokio::time::sleep(Duration::from_secs(10)).await;
    suite.start("postgres").unwrap();
    let started_at = Instant::now();
    suite
        .wait_healthy("postgres", Duration::from_secs(60))
        .await
        .unwrap();
    // Writes go on until several have been acknowledged after the restart.
    let recovered = async {
        loop {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if through_a
                .get_service(registry_pb::GetServiceRequest {
                    name: "ledger".into(),
                })
                .await
                .is_ok()
            {
                return;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(60), recovered)
        .await
        .expect("the registry answers again within 60 s of PostgreSQL's return");
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let writes = writer.await.unwrap();
    let answers = load.stop().await;

    let acknowledged: Vec<&str> = writes
        .iter()
        .filter(|w| w.code == Code::Ok)
        .map(|w| w.version.as_str())
        .collect();
    let refused: Vec<(&str, Code)> = writes
        .iter()
        .filter(|w| w.code != Code::Ok)
        .map(|w| (w.version.as_str(), w.code))
        .collect();
    let first_after = writes
        .iter()
        .find(|w| w.at > started_at && w.code == Code::Ok)
        .map(|w| w.at - started_at);
    let last_before = writes
        .iter()
        .rfind(|w| w.at <= stopped_at && w.code == Code::Ok)
        .map(|w| w.version.clone());

    let stored: Vec<String> = through_a
        .list_versions(registry_pb::ListVersionsRequest {
            service: "ledger".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .versions
        .into_iter()
        .map(|v| v.version)
        .collect();
    let lost: Vec<&&str> = acknowledged
        .iter()
        .filter(|v| !stored.iter().any(|s| s == **v))
        .collect();
    let revisions_after = orchestrator()
        .list_revisions(pb::ListRevisionsRequest {
            service: "greeter".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .revisions
        .len();
    let failed = failed(&answers);
    figures.add(format_args!(
        "PostgreSQL stopped (docker stop {:.1} s) for 10 s: {} writes acknowledged (last before the outage {:?}), {} refused with {:?}, first acknowledged {:.1} s after PostgreSQL was started again; {} acknowledged versions lost; greeter revisions {revisions_before} before, {revisions_after} after; frontend: {failed} of {} calls failed",
        stop_took.as_secs_f64(),
        acknowledged.len(),
        last_before,
        refused.len(),
        refused.iter().map(|(_, c)| format!("{c:?}")).collect::<std::collections::BTreeSet<_>>(),
        first_after.unwrap_or_default().as_secs_f64(),
        lost.len(),
        answers.len()
    ));
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    assert!(
        !refused.is_empty(),
        "the registry refused writes while PostgreSQL was down"
    );
    assert!(
        refused.iter().all(|(_, code)| *code == Code::Unavailable),
        "every refusal is UNAVAILABLE: {refused:?}"
    );
    assert!(first_after.is_some(), "writes were acknowledged again");
    assert_eq!(revisions_before, revisions_after);
    // The registry renews the leases the outage kept it from renewing, so no greeter left the
    // frontend's endpoint set and no call through it failed.
    assert_eq!(failed, 0, "{:?}", tally(&answers));
    // The fleet is whole again: the orchestrator healthy and the frontend answering.
    suite
        .wait_healthy("orchestrator", Duration::from_secs(60))
        .await
        .unwrap();
    let mut answered = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while answered < 20 && Instant::now() < deadline {
        if greeted_by().await.is_ok() {
            answered += 1;
        }
    }
    assert_eq!(answered, 20, "the frontend answers again after the outage");
}
