//! The rollout figures of the orchestrator's issue, on real processes, each against a baseline
//! measured in the same run:
//!
//! 1. time from a fault becoming visible to traffic back on stable (a faulty 1.2.0 at 20% under
//!    load, aborted by its analysis), median of 5 runs, against the same traffic move ordered by
//!    an operator's Abort at the moment of the first failure (the floor: moving traffic);
//! 2. failed frontend calls during a healthy canary under load;
//! 3. time for a full canary of 3 weight steps with 0-length pauses, against a first deployment
//!    of the same replicas (starting instances with no steps at all).
//!
//! `cargo build --release --bins && cargo bench -p flotilla-integration-tests --bench rollouts`

use std::time::{Duration, Instant};

use flotilla_integration_tests::rollout::{
    Answer, Load, RolloutFleet, canary, deploy, follow, prost_duration, rollout_request, tally,
};
use flotilla_proto::rollout::v1::{self as pb, canary_step::Step};

const RUNS: usize = 5;
const TIMEOUT: Duration = Duration::from_secs(120);

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// From the first failed call to the last call the faulty version answered (the only version
/// that fails, so a failed call is one of its answers too).
fn fault_to_stable(answers: &[Answer], faulty: &str) -> Option<Duration> {
    let first_failure = answers
        .iter()
        .filter(|a| a.outcome.is_err())
        .map(|a| a.at)
        .min()?;
    let last_faulty = answers
        .iter()
        .filter(|a| a.outcome.is_err() || a.outcome.as_deref() == Ok(faulty))
        .map(|a| a.at)
        .max()?;
    Some(last_faulty.saturating_duration_since(first_failure))
}

async fn faulty_rollout(operator_aborts: bool) -> anyhow::Result<Duration> {
    let mut fleet = RolloutFleet::start()?;
    fleet.publish_greeter("1.0.0", "1.0.0", &[])?;
    fleet.publish_greeter("1.1.0", "1.2.0", &["--error-ratio", "0.3"])?;
    deploy(&fleet, "1.0.0", 2).await?;
    let frontend = fleet.frontend("0.9.0", "^1.0")?;
    let load = Load::start(fleet.frontend_client(frontend).await?, 4);
    let mut client = fleet.client(0).await?;
    let mut request = rollout_request(
        "1.2.0",
        canary(&[
            Step::SetWeight(20),
            Step::Pause(pb::PauseStep { duration: None }),
        ]),
    );
    if operator_aborts {
        // The baseline: analysis off in effect (it would need a million calls), an operator
        // aborts the moment the first call fails.
        request.analysis = Some(pb::Analysis {
            interval: Some(prost_duration(Duration::from_secs(600))),
            ..Default::default()
        });
    }
    let rollout = client.start_rollout(request).await?.into_inner();
    if operator_aborts {
        wait_for_failure(&load).await;
        client
            .abort(pb::AbortRequest {
                id: rollout.id.clone(),
                reason: "baseline".into(),
            })
            .await?;
    }
    let (ended, _) = follow(&mut client, &rollout.id, TIMEOUT).await?;
    anyhow::ensure!(
        ended.state == pb::RolloutState::Aborted as i32,
        "the faulty rollout ended {}",
        ended.status_message
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = load.stop().await;
    fault_to_stable(&answers, "1.2.0")
        .ok_or_else(|| anyhow::anyhow!("no failure seen: {:?}", tally(&answers)))
}

/// Waits until the load has seen a failed call.
async fn wait_for_failure(load: &Load) {
    while load.first_failure().is_none() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn healthy_canary() -> anyhow::Result<(Duration, Duration, usize, usize)> {
    let mut fleet = RolloutFleet::start()?;
    fleet.publish_greeter("1.0.0", "1.0.0", &[])?;
    fleet.publish_greeter("1.1.0", "1.1.0", &[])?;
    let started = Instant::now();
    deploy(&fleet, "1.0.0", 2).await?;
    let deployment = started.elapsed();
    let frontend = fleet.frontend("0.9.0", "^1.0")?;
    let load = Load::start(fleet.frontend_client(frontend).await?, 4);
    let mut client = fleet.client(0).await?;
    let zero = || {
        Step::Pause(pb::PauseStep {
            duration: Some(prost_duration(Duration::ZERO)),
        })
    };
    let started = Instant::now();
    let rollout = client
        .start_rollout(rollout_request(
            "1.1.0",
            canary(&[
                Step::SetWeight(25),
                zero(),
                Step::SetWeight(50),
                zero(),
                Step::SetWeight(100),
            ]),
        ))
        .await?
        .into_inner();
    let (ended, _) = follow(&mut client, &rollout.id, TIMEOUT).await?;
    let canary_time = started.elapsed();
    anyhow::ensure!(
        ended.state == pb::RolloutState::Succeeded as i32,
        "{}",
        ended.status_message
    );
    let answers = load.stop().await;
    let failed = answers.iter().filter(|a| a.outcome.is_err()).count();
    Ok((canary_time, deployment, failed, answers.len()))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mut automatic = Vec::new();
    let mut operator = Vec::new();
    for run in 1..=RUNS {
        let auto = faulty_rollout(false).await?;
        let manual = faulty_rollout(true).await?;
        println!(
            "run {run}: fault to stable {auto:?} automatic, {manual:?} by an operator's abort"
        );
        automatic.push(auto);
        operator.push(manual);
    }
    let (auto, manual) = (median(automatic), median(operator));
    println!(
        "fault to stable, median of {RUNS}: automatic {auto:?}, operator abort at the first failure {manual:?}; ratio {:.2}",
        auto.as_secs_f64() / manual.as_secs_f64().max(1e-9)
    );

    let mut canaries = Vec::new();
    let mut deployments = Vec::new();
    let (mut failed, mut calls) = (0, 0);
    for run in 1..=RUNS {
        let (canary, deployment, f, n) = healthy_canary().await?;
        println!(
            "run {run}: canary of 3 steps {canary:?}, first deployment {deployment:?}, {f} of {n} calls failed"
        );
        canaries.push(canary);
        deployments.push(deployment);
        failed += f;
        calls += n;
    }
    let (canary, deployment) = (median(canaries), median(deployments));
    println!(
        "full canary of 3 steps with 0-length pauses, median of {RUNS}: {canary:?}; first deployment {deployment:?}; ratio {:.2}",
        canary.as_secs_f64() / deployment.as_secs_f64().max(1e-9)
    );
    println!("failed calls during healthy canaries: {failed} of {calls}");
    Ok(())
}
