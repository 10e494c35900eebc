//! The sample fleet on real processes: calls follow route weights and requirements, and survive
//! an instance killed under load.

use std::time::{Duration, Instant};

use flotilla_integration_tests::fleet::{Fleet, count_answers, share};
use flotilla_proto::demo::frontend::v1::GreetRequest;

/// How far a measured share may stray from the route's, in absolute terms (the issue's ±5%).
const TOLERANCE: f64 = 0.05;

/// Long enough for a pushed route change to reach a frontend's fleet client (it takes ms).
const SETTLE: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frontend_calls_follow_the_route_weights_and_their_changes() {
    let mut fleet = Fleet::start().unwrap();
    fleet.greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.greeter("1.1.0", "1.1.0", &[]).unwrap();
    // An older frontend release that still accepts greeter ^1.0, so both versions can answer.
    let frontend = fleet.frontend("0.9.0", "^1.0").unwrap();
    let client = fleet.frontend_client(frontend).await.unwrap();

    fleet
        .set_route(&[("1.0.0", 30), ("1.1.0", 70)])
        .await
        .unwrap();
    tokio::time::sleep(SETTLE).await;
    let counts = count_answers(&client, 2_000, 8).await;
    eprintln!("route 30/70: {counts:?}");
    assert_eq!(counts.values().sum::<usize>(), 2_000);
    assert!(
        (share(&counts, "1.0.0") - 0.30).abs() <= TOLERANCE,
        "{counts:?}"
    );
    assert!(
        (share(&counts, "1.1.0") - 0.70).abs() <= TOLERANCE,
        "{counts:?}"
    );

    fleet
        .set_route(&[("1.0.0", 80), ("1.1.0", 20)])
        .await
        .unwrap();
    tokio::time::sleep(SETTLE).await;
    let counts = count_answers(&client, 2_000, 8).await;
    eprintln!("route 80/20: {counts:?}");
    assert!(
        (share(&counts, "1.0.0") - 0.80).abs() <= TOLERANCE,
        "{counts:?}"
    );
    assert!(
        (share(&counts, "1.1.0") - 0.20).abs() <= TOLERANCE,
        "{counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_requiring_1_1_never_reaches_1_0_or_2_0() {
    let mut fleet = Fleet::start().unwrap();
    fleet.greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet.greeter("2.0.0", "2.0.0", &[]).unwrap();
    let frontend = fleet.frontend("1.0.0", "^1.1").unwrap();
    let client = fleet.frontend_client(frontend).await.unwrap();
    // Even a route that prefers the others leaves this caller on what it accepts.
    fleet
        .set_route(&[("1.0.0", 50), ("1.1.0", 1), ("2.0.0", 50)])
        .await
        .unwrap();
    tokio::time::sleep(SETTLE).await;
    let counts = count_answers(&client, 500, 4).await;
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts.get("1.1.0"), Some(&500), "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_under_load_costs_no_call() {
    let mut fleet = Fleet::start().unwrap();
    let doomed = fleet.greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet.greeter("1.1.0", "1.1.0", &[]).unwrap();
    let frontend = fleet.frontend("1.0.0", "^1.1").unwrap();
    let client = fleet.frontend_client(frontend).await.unwrap();
    // Learn each instance's id from the answers.
    let doomed_address = fleet.processes[doomed].authority();
    let instances = fleet
        .registry_client()
        .await
        .unwrap()
        .list_instances(flotilla_proto::registry::v1::ListInstancesRequest {
            service: "greeter".into(),
            version: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .instances;
    let doomed_id = instances
        .iter()
        .find(|i| i.address == doomed_address)
        .expect("the doomed greeter is registered")
        .id
        .clone();

    let started = Instant::now();
    let load = Duration::from_secs(8);
    let callers: Vec<_> = (0..4)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let mut answers = Vec::new();
                while started.elapsed() < load {
                    let at = started.elapsed();
                    let outcome = client
                        .greet(GreetRequest {
                            name: "load".into(),
                            locale: String::new(),
                        })
                        .await
                        .map(|reply| reply.into_inner().greeter_instance)
                        .map_err(|status| status.code());
                    answers.push((at, outcome));
                }
                answers
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let killed_at = started.elapsed();
    fleet.processes[doomed].kill().unwrap();

    let mut answers = Vec::new();
    for caller in callers {
        answers.extend(caller.await.unwrap());
    }
    let failed: Vec<_> = answers
        .iter()
        .filter(|(_, outcome)| outcome.is_err())
        .collect();
    let before = answers
        .iter()
        .filter(|(at, outcome)| {
            *at < killed_at && outcome.as_ref().is_ok_and(|id| *id == doomed_id)
        })
        .count();
    let late = answers
        .iter()
        .filter(|(at, outcome)| {
            // A liveness bound on leaving the dead instance (the product says within a second;
            // a busy machine may take longer, and must not fail the test for it).
            *at > killed_at + Duration::from_secs(4)
                && outcome.as_ref().is_ok_and(|id| *id == doomed_id)
        })
        .count();
    eprintln!(
        "{} calls, {} failed, {before} answered by the doomed instance before the kill",
        answers.len(),
        failed.len()
    );
    assert!(
        before > 0,
        "the doomed instance took calls before it was killed"
    );
    assert!(failed.is_empty(), "no idempotent call may fail: {failed:?}");
    assert_eq!(
        late, 0,
        "no call reaches the killed instance a second after the kill"
    );
}
