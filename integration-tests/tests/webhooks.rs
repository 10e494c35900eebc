//! Rollout events reach a webhook: every event, in order, signed, also those that happened while
//! the receiver was down (the rollout did not wait for it); and the orchestrator's metrics count
//! rollouts, steps, aborts and deliveries.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    rollout::{
        RolloutFleet, at_pause, canary, deploy, follow, prost_duration, rollout_request,
        run_to_end, state, wait_until,
    },
    webhook::{ReceivedHook, WebhookReceiver},
};
use flotilla_proto::rollout::v1::{self as pb, canary_step::Step};
use flotilla_telemetry::scrape::{Sample, fetch};
use hmac::{Hmac, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_integration";
const TIMEOUT: Duration = Duration::from_secs(60);

/// The hooks of rollout `id` answered 200, once there are `count` of them.
async fn delivered(receiver: &WebhookReceiver, id: &str, count: usize) -> Vec<ReceivedHook> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let hooks: Vec<ReceivedHook> = receiver
            .received()
            .into_iter()
            .filter(|h| h.status == 200 && h.json()["rollout"]["id"] == id)
            .collect();
        if hooks.len() >= count {
            return hooks;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {count} events of {id} delivered within 60 s: {:#?}",
            hooks.len(),
            receiver.received()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Checks the signature as a receiver would, with its own HMAC (not the orchestrator's code).
fn assert_signed(hook: &ReceivedHook) {
    let header = hook
        .header("flotilla-signature")
        .expect("a signature header");
    let (t, v1) = header
        .split_once(',')
        .and_then(|(t, v1)| Some((t.strip_prefix("t=")?, v1.strip_prefix("v1=")?)))
        .unwrap_or_else(|| panic!("signature {header:?} is t=…,v1=…"));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&hook.body);
    mac.verify_slice(&hex::decode(v1).unwrap())
        .unwrap_or_else(|_| panic!("signature {header:?} does not match its body"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(t.parse().unwrap()) < 300, "signed at {t}");
}

/// The hooks are exactly the rollout's events, in order, each signed and once.
fn assert_every_event_in_order(hooks: &[ReceivedHook], id: &str, events: &[pb::RolloutEvent]) {
    let ids: Vec<String> = hooks
        .iter()
        .map(|h| h.header("flotilla-event-id").unwrap_or_default().to_owned())
        .collect();
    let expected: Vec<String> = events
        .iter()
        .map(|e| format!("{id}:{}", e.sequence))
        .collect();
    assert_eq!(ids, expected, "every event once, in order");
    for (hook, event) in hooks.iter().zip(events) {
        assert_signed(hook);
        assert_eq!(hook.path, "/hooks/flotilla");
        assert_eq!(hook.header("content-type"), Some("application/json"));
        let json = hook.json();
        assert_eq!(json["event"]["kind"], event.kind);
        assert_eq!(json["event"]["message"], event.message);
        assert_eq!(
            json["type"],
            format!("rollout.{}", event.kind.to_ascii_lowercase())
        );
    }
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| s.name == name && labels.iter().all(|(k, v)| s.label(k) == Some(v)))
        .map(|s| s.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_gets_every_event_in_order_signed_even_those_from_while_it_was_down() {
    let mut receiver = WebhookReceiver::start().await.unwrap();
    let env = vec![
        (
            "FLOTILLA_WEBHOOKS".to_owned(),
            receiver.url("/hooks/flotilla"),
        ),
        ("FLOTILLA_WEBHOOK_SECRET".to_owned(), SECRET.to_owned()),
        ("FLOTILLA_WEBHOOK_EVENTS".to_owned(), "all".to_owned()),
        // Retries at most 1 s apart, so the events come soon after the receiver is back however
        // long the rollout took meanwhile (the default lets waits grow to 30 s).
        (
            "FLOTILLA_WEBHOOK_MAX_BACKOFF_MS".to_owned(),
            "1000".to_owned(),
        ),
    ];
    let mut fleet = RolloutFleet::with_env(None, env).unwrap();
    fleet.start_orchestrator().unwrap();
    for version in ["1.0.0", "1.1.0", "1.2.0"] {
        fleet.publish_greeter("1.0.0", version, &[]).unwrap();
    }
    let mut client = fleet.client(0).await.unwrap();

    // 1. A first deployment, the receiver up.
    let first = deploy(&fleet, "1.0.0", 1).await.unwrap();
    let (_, first_events) = follow(&mut client, &first.id, TIMEOUT).await.unwrap();
    let hooks = delivered(&receiver, &first.id, first_events.len()).await;
    assert_every_event_in_order(&hooks, &first.id, &first_events);
    assert_eq!(hooks[0].json()["type"], "rollout.started");

    // 2. A canary while the receiver is down: the rollout goes on and succeeds without it.
    receiver.go_down();
    let (ended, events) = run_to_end(
        &mut client,
        rollout_request(
            "1.1.0",
            canary(&[
                Step::SetWeight(50),
                Step::Pause(pb::PauseStep {
                    duration: Some(prost_duration(Duration::from_secs(1))),
                }),
            ]),
        ),
        TIMEOUT,
    )
    .await
    .unwrap();
    let canary_rollout = ended.clone();
    assert_eq!(
        state(&ended),
        pb::RolloutState::Succeeded,
        "{}",
        ended.status_message
    );
    assert!(
        !receiver
            .received()
            .iter()
            .any(|h| h.json()["rollout"]["id"] == canary_rollout.id),
        "nothing could be delivered while the receiver was down"
    );
    // Back up, and failing once more with a 503, which is retried too.
    receiver.answer_next(&[503]);
    receiver.resume().await.unwrap();
    let hooks = delivered(&receiver, &canary_rollout.id, events.len()).await;
    assert_every_event_in_order(&hooks, &canary_rollout.id, &events);
    let refused: Vec<_> = receiver
        .received()
        .into_iter()
        .filter(|h| h.status == 503)
        .collect();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        refused[0].header("flotilla-event-id"),
        Some(format!("{}:1", canary_rollout.id).as_str()),
        "the first event waited, and the rest behind it"
    );

    // 3. An operator's abort, with its reason in the event.
    let aborted = client
        .start_rollout(rollout_request(
            "1.2.0",
            canary(&[
                Step::SetWeight(50),
                Step::Pause(pb::PauseStep { duration: None }),
            ]),
        ))
        .await
        .unwrap()
        .into_inner();
    wait_until(&mut client, &aborted.id, TIMEOUT, at_pause)
        .await
        .unwrap();
    client
        .abort(pb::AbortRequest {
            id: aborted.id.clone(),
            reason: "a customer reported a bug in 1.2.0".into(),
        })
        .await
        .unwrap();
    let (ended, events) = follow(&mut client, &aborted.id, TIMEOUT).await.unwrap();
    assert_eq!(state(&ended), pb::RolloutState::Aborted);
    let hooks = delivered(&receiver, &aborted.id, events.len()).await;
    assert_every_event_in_order(&hooks, &aborted.id, &events);
    let last = hooks.last().unwrap().json();
    assert_eq!(last["type"], "rollout.aborted");
    assert_eq!(last["rollout"]["state"], "ABORTED");
    assert_eq!(last["event"]["halt"]["gate"], "OPERATOR");
    assert!(
        last["event"]["halt"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("a customer reported a bug"),
        "{last:#}"
    );

    // The orchestrator's own metrics, on its gRPC port.
    let total: usize = receiver
        .received()
        .iter()
        .filter(|h| h.status == 200)
        .count();
    let deadline = Instant::now() + Duration::from_secs(5);
    let samples = loop {
        let samples = fetch(&fleet.orchestrator(0).authority(), Duration::from_secs(5))
            .await
            .unwrap();
        let counted = |state| {
            value(
                &samples,
                "flotilla_orchestrator_rollouts",
                &[("state", state)],
            )
        };
        // The receiver records a delivery a moment before the orchestrator counts it.
        let delivered = value(
            &samples,
            "flotilla_orchestrator_webhook_deliveries_total",
            &[("outcome", "delivered")],
        );
        if (counted("SUCCEEDED"), counted("ABORTED"), delivered)
            == (Some(2.0), Some(1.0), Some(total as f64))
            || Instant::now() > deadline
        {
            break samples;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let rollouts = |state| {
        value(
            &samples,
            "flotilla_orchestrator_rollouts",
            &[("state", state)],
        )
    };
    assert_eq!(rollouts("SUCCEEDED"), Some(2.0));
    assert_eq!(rollouts("ABORTED"), Some(1.0));
    assert_eq!(
        value(
            &samples,
            "flotilla_orchestrator_aborts_total",
            &[("gate", "OPERATOR")]
        ),
        Some(1.0)
    );
    let pauses = value(
        &samples,
        "flotilla_orchestrator_step_duration_seconds_count",
        &[("step", "pause")],
    );
    assert_eq!(
        pauses,
        Some(1.0),
        "one pause completed (the aborted one did not)"
    );
    let paused_for = value(
        &samples,
        "flotilla_orchestrator_step_duration_seconds_sum",
        &[("step", "pause")],
    )
    .unwrap();
    assert!(
        (1.0..10.0).contains(&paused_for),
        "the 1 s pause took {paused_for} s"
    );
    assert_eq!(
        value(
            &samples,
            "flotilla_orchestrator_webhook_deliveries_total",
            &[("outcome", "delivered")]
        ),
        Some(total as f64)
    );
    let failed_attempts = value(
        &samples,
        "flotilla_orchestrator_webhook_failed_attempts_total",
        &[],
    )
    .unwrap_or(0.0);
    assert!(
        failed_attempts >= 2.0,
        "refused connections and the 503: {failed_attempts}"
    );
    assert_eq!(
        value(
            &samples,
            "flotilla_grpc_server_handled_total",
            &[("grpc_method", "StartRollout"), ("grpc_code", "OK")]
        ),
        Some(3.0)
    );
}
