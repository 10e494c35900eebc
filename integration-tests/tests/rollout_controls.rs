//! An operator drives rollouts with grpcurl alone (reflection, JSON): start, pause, resume,
//! promote, abort, and an abort of an ended rollout that changes nothing.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    peers::{Grpcurl, GrpcurlOutput},
    rollout::{RolloutFleet, deploy},
};
use serde_json::json;

const ORCHESTRATOR: &str = "flotilla.rollout.v1.Orchestrator";

fn call(grpcurl: &Grpcurl, method: &str, body: serde_json::Value) -> GrpcurlOutput {
    grpcurl.call(&format!("{ORCHESTRATOR}/{method}"), &body)
}

fn ok(output: GrpcurlOutput) -> serde_json::Value {
    assert!(output.success, "{}\n{}", output.stdout, output.stderr);
    output.json()
}

/// Polls GetRollout until `done` holds for it.
fn wait_until(
    grpcurl: &Grpcurl,
    id: &str,
    what: &str,
    done: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let rollout = ok(call(grpcurl, "GetRollout", json!({ "id": id })));
        if done(&rollout) {
            return rollout;
        }
        assert!(Instant::now() < deadline, "never {what}: {rollout:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn at_indefinite_pause(rollout: &serde_json::Value) -> bool {
    let index = rollout["stepIndex"].as_u64().unwrap_or(0) as usize;
    rollout["plan"][index]["description"] == "pause until promoted"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_promote_and_abort_through_grpcurl() {
    let fleet = RolloutFleet::start().unwrap();
    let Some(grpcurl) = Grpcurl::find(&fleet.orchestrator(0).authority()) else {
        return;
    };
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.2.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 1).await.unwrap();

    let services = grpcurl.run(&[], &["list"]);
    assert!(
        services.stdout.contains(ORCHESTRATOR),
        "{}",
        services.stdout
    );

    let started = ok(call(
        &grpcurl,
        "StartRollout",
        json!({
            "service": "greeter",
            "version": "1.1.0",
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}, {"setWeight": 100}]}},
            "analysis": {"interval": "0.5s", "minRequests": 1, "p99Floor": "0.25s"}
        }),
    ));
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["state"], "ROLLOUT_STATE_PROGRESSING");
    assert_eq!(started["fromVersion"], "1.0.0");

    let rollout = wait_until(&grpcurl, &id, "reached the pause", at_indefinite_pause);
    assert_eq!(rollout["statusMessage"], "step 4: paused until promoted");

    let paused = ok(call(
        &grpcurl,
        "Pause",
        json!({ "id": id, "reason": "looking" }),
    ));
    assert_eq!(paused["state"], "ROLLOUT_STATE_PAUSED");
    // Pausing twice changes nothing and is no error.
    assert_eq!(
        ok(call(&grpcurl, "Pause", json!({ "id": id })))["state"],
        "ROLLOUT_STATE_PAUSED"
    );
    let resumed = ok(call(&grpcurl, "Resume", json!({ "id": id })));
    assert_eq!(resumed["state"], "ROLLOUT_STATE_PROGRESSING");
    // Still at the indefinite pause: resuming is not promoting.
    std::thread::sleep(Duration::from_millis(500));
    assert!(at_indefinite_pause(&ok(call(
        &grpcurl,
        "GetRollout",
        json!({ "id": id })
    ))));

    ok(call(&grpcurl, "Promote", json!({ "id": id })));
    let done = wait_until(&grpcurl, &id, "succeeded", |r| {
        r["state"] == "ROLLOUT_STATE_SUCCEEDED"
    });
    assert_eq!(done["revision"], "2");
    assert_eq!(fleet.running_versions(), ["1.1.0"]);

    let second = ok(call(
        &grpcurl,
        "StartRollout",
        json!({
            "service": "greeter",
            "version": "1.2.0",
            "strategy": {"canary": {"steps": [{"setWeight": 50}, {"pause": {}}]}},
        }),
    ));
    let second_id = second["id"].as_str().unwrap().to_owned();
    wait_until(
        &grpcurl,
        &second_id,
        "reached the pause",
        at_indefinite_pause,
    );
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.2.0"]);
    let aborting = ok(call(
        &grpcurl,
        "Abort",
        json!({ "id": second_id, "reason": "enough" }),
    ));
    assert!(
        aborting["state"] == "ROLLOUT_STATE_ABORTING"
            || aborting["state"] == "ROLLOUT_STATE_ABORTED",
        "{aborting:#}"
    );
    let aborted = wait_until(&grpcurl, &second_id, "aborted", |r| {
        r["state"] == "ROLLOUT_STATE_ABORTED"
    });
    assert_eq!(aborted["halt"]["gate"], "GATE_OPERATOR");
    assert_eq!(aborted["halt"]["message"], "aborted by an operator: enough");
    assert_eq!(fleet.running_versions(), ["1.1.0"]);

    // Abort with no rollout in progress touches nothing.
    let again = call(&grpcurl, "Abort", json!({ "id": second_id }));
    assert!(!again.success);
    assert_eq!(
        again.code().as_deref(),
        Some("FailedPrecondition"),
        "{}",
        again.stderr
    );
    assert!(
        again.stderr.contains("already ended ABORTED"),
        "{}",
        again.stderr
    );
    let unchanged = ok(call(&grpcurl, "GetRollout", json!({ "id": second_id })));
    assert_eq!(unchanged["updateTime"], aborted["updateTime"]);
    assert_eq!(fleet.running_versions(), ["1.1.0"]);

    // Bad input names its field.
    let bad = call(&grpcurl, "GetRollout", json!({ "id": "nope" }));
    assert_eq!(
        bad.code().as_deref(),
        Some("InvalidArgument"),
        "{}",
        bad.stderr
    );
    assert!(bad.stderr.contains("id"), "{}", bad.stderr);
}
