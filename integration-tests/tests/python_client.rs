//! A second-language caller: Python's grpcio checks the greeter's health and calls it with the
//! descriptors its reflection serves, with nothing generated and nothing changed on the server.

use std::process::Command;

use flotilla_integration_tests::{fleet::Fleet, peers::python_with_grpc};

#[test]
fn python_grpcio_checks_health_and_calls_greeter_through_reflection() {
    if !python_with_grpc() {
        return;
    }
    let mut fleet = Fleet::start().unwrap();
    let greeter = fleet.greeter("1.1.0", "1.1.0", &[]).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/python/greeter_client.py");
    let output = Command::new("python3")
        .args([script, &fleet.processes[greeter].authority(), "Ada"])
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(answer["health"]["(server)"], "SERVING", "{answer}");
    assert_eq!(
        answer["health"]["demo.greeter.v1.Greeter"], "SERVING",
        "{answer}"
    );
    assert_eq!(
        answer["methods"],
        serde_json::json!(["SayGoodbye", "SayHello"])
    );
    let message = answer["reply"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("Ada"), "{answer}");
    assert_eq!(
        answer["version"], "1.1.0",
        "the fleet headers reach Python too"
    );
}
