//! Instances that die or report NOT_SERVING stop getting calls within a second, long before
//! their registry lease runs out; idempotent calls caught by a crash are retried elsewhere.

mod support;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use flotilla_client::{FleetChannel, Snapshot};
use flotilla_proto::testing::v1::{EchoReply, EchoRequest, echo_client::EchoClient};
use support::{
    AttemptLog, EchoInstance, TRACEPARENT, TRACESTATE, TestRegistry, echo_channel, eventually,
    traced,
};
use tokio::task::JoinHandle;
use tonic::Status;

/// A generous liveness bound on the product's promise (a dead or NOT_SERVING instance gets no
/// calls within a second): the tests check that it is left at all, and print how long it took;
/// a busy CI machine must not fail them for being slow.
const WITHIN: Duration = Duration::from_secs(5);

/// Each call the load made: when it started, and who answered or why it failed.
type Outcomes = Arc<Mutex<Vec<(Instant, Result<String, Status>)>>>;

/// Concurrent callers looping idempotent Echo calls until stopped.
struct Load {
    stop: Arc<AtomicBool>,
    outcomes: Outcomes,
    callers: Vec<JoinHandle<()>>,
}

impl Load {
    fn start(channel: &FleetChannel, callers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let outcomes = Outcomes::default();
        let callers = (0..callers)
            .map(|_| {
                let mut client = EchoClient::new(channel.clone());
                let (stop, outcomes) = (stop.clone(), outcomes.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let started = Instant::now();
                        let outcome = client
                            .echo(EchoRequest::default())
                            .await
                            .map(|r| r.into_inner().instance_id);
                        outcomes.lock().unwrap().push((started, outcome));
                    }
                })
            })
            .collect();
        Self {
            stop,
            outcomes,
            callers,
        }
    }

    /// Instances that answered calls started after `after`.
    fn answered_after(&self, after: Instant) -> Vec<String> {
        self.outcomes
            .lock()
            .unwrap()
            .iter()
            .filter(|(started, _)| *started > after)
            .filter_map(|(_, outcome)| outcome.as_ref().ok().cloned())
            .collect()
    }

    async fn finish(self) -> Vec<(Instant, Result<String, Status>)> {
        self.stop.store(true, Ordering::SeqCst);
        for caller in self.callers {
            caller.await.unwrap();
        }
        Arc::try_unwrap(self.outcomes)
            .unwrap()
            .into_inner()
            .unwrap()
    }
}

fn pickable(snapshot: &Snapshot, instance_id: &str) -> bool {
    snapshot
        .endpoint(instance_id)
        .is_some_and(|e| e.share > 0.0)
}

/// Sends held calls of `method` (1.5 s each) until one is being held by `target`; returns its
/// call id and the call. Calls that land elsewhere are left to finish.
async fn hold_on(
    channel: &FleetChannel,
    log: &AttemptLog,
    target: &str,
    method: &'static str,
) -> (String, JoinHandle<Result<EchoReply, Status>>) {
    for n in 0..200 {
        let call_id = format!("{method}-{n}");
        let mut client = EchoClient::new(channel.clone());
        let request = traced(
            &call_id,
            EchoRequest {
                hold_ms: 1_500,
                ..Default::default()
            },
        );
        let call = tokio::spawn(async move {
            match method {
                "Echo" => client.echo(request).await,
                _ => client.record(request).await,
            }
            .map(|r| r.into_inner())
        });
        eventually(Duration::from_secs(5), "the held call arrives", || {
            !log.of(&call_id).is_empty()
        })
        .await;
        if log.of(&call_id)[0].instance_id == target {
            return (call_id, call);
        }
    }
    panic!("no {method} call landed on {target} in 200 tries");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_gets_no_calls_within_a_second_and_no_idempotent_call_fails() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let log = AttemptLog::default();
    let mut victim = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let _others = [
        EchoInstance::start(&registry.url, "1.0.0", &log).await,
        EchoInstance::start(&registry.url, "1.0.0", &log).await,
    ];
    let channel = echo_channel(&registry, "", 3).await;

    let load = Load::start(&channel, 4);
    eventually(
        Duration::from_secs(5),
        "the load reaches the victim",
        || victim.served() >= 20,
    )
    .await;
    let (held_echo_id, held_echo) = hold_on(&channel, &log, &victim.id, "Echo").await;
    let (held_record_id, held_record) = hold_on(&channel, &log, &victim.id, "Record").await;

    victim.kill().await;
    let noticed = eventually(
        WITHIN,
        "the client stops picking the killed instance",
        || !pickable(&channel.snapshot(), &victim.id),
    )
    .await;
    let left_at = Instant::now();
    // It stays out while the load goes on (its lease still lists it in the registry's set), and
    // the load runs on past the bound, so there are calls after it to inspect.
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until {
        let snapshot = channel.snapshot();
        assert!(!pickable(&snapshot, &victim.id), "{snapshot}");
        assert!(snapshot.endpoint(&victim.id).is_some(), "{snapshot}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // No call started once the client left it may reach it.
    let late = load.answered_after(left_at);
    let outcomes = load.finish().await;

    let failed: Vec<_> = outcomes.iter().filter(|(_, o)| o.is_err()).collect();
    assert!(failed.is_empty(), "idempotent calls failed: {failed:?}");
    assert!(!late.is_empty(), "the load went on after the kill");
    assert!(
        !late.contains(&victim.id),
        "a call reached the dead instance"
    );
    eprintln!(
        "noticed the kill after {noticed:?}; {} calls in all",
        outcomes.len()
    );

    // The idempotent call the victim was holding was retried elsewhere, with its trace context.
    let reply = held_echo.await.unwrap().expect("the held Echo is retried");
    assert_ne!(reply.instance_id, victim.id);
    let attempts = log.of(&held_echo_id);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0].instance_id, victim.id);
    assert_eq!(attempts[1].instance_id, reply.instance_id);
    assert!(
        attempts
            .iter()
            .all(|a| a.traceparent.as_deref() == Some(TRACEPARENT)
                && a.tracestate.as_deref() == Some(TRACESTATE)),
        "{attempts:?}"
    );

    // The non-idempotent one failed with its instance, and was not sent anywhere else.
    let status = held_record
        .await
        .unwrap()
        .expect_err("the held Record dies with its instance");
    let attempts = log.of(&held_record_id);
    assert_eq!(attempts.len(), 1, "retried: {attempts:?} ({status})");
    assert_eq!(attempts[0].instance_id, victim.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_not_serving_instance_gets_no_calls_within_a_second_and_comes_back() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let log = AttemptLog::default();
    let target = EchoInstance::start(&registry.url, "1.0.0", &log).await;
    let _others = [
        EchoInstance::start(&registry.url, "1.0.0", &log).await,
        EchoInstance::start(&registry.url, "1.0.0", &log).await,
    ];
    let channel = echo_channel(&registry, "", 3).await;

    let load = Load::start(&channel, 2);
    eventually(
        Duration::from_secs(5),
        "the load reaches the target",
        || target.served() >= 10,
    )
    .await;

    let not_serving_at = Instant::now();
    target.set_health(false).await;
    let noticed = eventually(WITHIN, "the client stops picking it", || {
        !pickable(&channel.snapshot(), &target.id)
    })
    .await;
    let left_at = Instant::now();
    eprintln!(
        "left the NOT_SERVING instance {:?} after it said so ({noticed:?} of waiting)",
        left_at - not_serving_at
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let answered = load.answered_after(left_at);
    assert!(!answered.is_empty(), "the load went on");
    assert!(
        !answered.contains(&target.id),
        "a NOT_SERVING instance got a call started after the client left it"
    );

    let serving_again_at = Instant::now();
    target.set_health(true).await;
    eventually(Duration::from_secs(5), "it gets calls again", || {
        load.answered_after(serving_again_at).contains(&target.id)
    })
    .await;
    let outcomes = load.finish().await;
    assert!(outcomes.iter().all(|(_, o)| o.is_ok()));
    assert!(pickable(&channel.snapshot(), &target.id));
}
