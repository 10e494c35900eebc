//! An operator's session with the real grpcurl against the registry binary: reflection, the main
//! calls, health, and the codes of bad inputs.

use base64::Engine;
use flotilla_integration_tests::{SuiteProcess, peers::Grpcurl};
use serde_json::json;

const REGISTRY: &str = "flotilla.registry.v1.Registry";

fn greeter_schema_base64(fields: u32) -> String {
    base64::engine::general_purpose::STANDARD
        .encode(flotilla_model::fixtures::greeter_schema_bytes(fields))
}

#[test]
fn an_operator_drives_the_registry_with_grpcurl() {
    let data = tempfile_dir();
    let data_file = data.join("registry.sqlite");
    let registry = SuiteProcess::registry(&["--data-file", data_file.to_str().unwrap()]).unwrap();
    let Some(grpcurl) = Grpcurl::find(&registry.authority()) else {
        return;
    };

    // Reflection: list and describe, with the proto's doc comments.
    let list = grpcurl.run(&[], &["list"]);
    assert!(list.success, "{list:?}");
    for service in [
        REGISTRY,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    ] {
        assert!(
            list.stdout.lines().any(|l| l == service),
            "{service} missing from {}",
            list.stdout
        );
    }
    let describe = grpcurl.run(&[], &["describe", REGISTRY]);
    assert!(
        describe.stdout.contains("rpc Resolve"),
        "{}",
        describe.stdout
    );
    assert!(
        describe
            .stdout
            .contains("Picks the highest eligible version"),
        "doc comments are served: {}",
        describe.stdout
    );
    let message = grpcurl.run(&[], &["describe", "flotilla.registry.v1.Version"]);
    assert!(
        message.stdout.contains("The semver 2.0 version"),
        "{}",
        message.stdout
    );

    // The main calls.
    let created = grpcurl.call(
        &format!("{REGISTRY}/CreateService"),
        &json!({"name": "greeter", "owner": "team-a", "policy": {"mode": "COMPATIBILITY_MODE_BACKWARD"}}),
    );
    assert!(created.success, "{created:?}");
    assert_eq!(
        created.json()["policy"]["mode"],
        "COMPATIBILITY_MODE_BACKWARD"
    );
    for (fields, version) in [(0, "1.0.0"), (1, "1.1.0"), (2, "2.0.0")] {
        let published = grpcurl.call(
            &format!("{REGISTRY}/PublishVersion"),
            &json!({
                "service": "greeter", "version": version,
                "fileDescriptorSet": greeter_schema_base64(fields),
                "artifact": {"command": ["demo-greeter", "--release", version]},
                "labels": {"git_sha": "4f1c2e9"}
            }),
        );
        assert!(published.success, "{published:?}");
        assert_eq!(published.json()["created"], true);
        assert_eq!(
            published.json()["version"]["state"],
            "LIFECYCLE_STATE_RELEASED"
        );
    }
    let again = grpcurl.call(
        &format!("{REGISTRY}/PublishVersion"),
        &json!({"service": "greeter", "version": "1.0.0", "fileDescriptorSet": greeter_schema_base64(0),
                "artifact": {"command": ["demo-greeter", "--release", "1.0.0"]}, "labels": {"git_sha": "4f1c2e9"}}),
    );
    assert!(again.success, "{again:?}");
    assert!(
        again.json().get("created").is_none(),
        "idempotent republish: created=false"
    );

    let resolved = grpcurl.call(
        &format!("{REGISTRY}/Resolve"),
        &json!({"service": "greeter", "requirement": "^1"}),
    );
    assert_eq!(
        resolved.json()["selected"]["version"],
        "1.1.0",
        "{resolved:?}"
    );
    let rejected = resolved.json()["rejected"].clone();
    assert_eq!(rejected[0]["version"], "2.0.0");
    assert_eq!(
        rejected[0]["reason"],
        "REJECTION_REASON_REQUIREMENT_MISMATCH"
    );

    let yanked = grpcurl.call(
        &format!("{REGISTRY}/TransitionVersion"),
        &json!({"service": "greeter", "version": "1.1.0", "state": "LIFECYCLE_STATE_YANKED", "reason": "faulty"}),
    );
    assert_eq!(
        yanked.json()["state"],
        "LIFECYCLE_STATE_YANKED",
        "{yanked:?}"
    );
    assert_eq!(yanked.json()["history"][1]["reason"], "faulty");
    let resolved = grpcurl.call(
        &format!("{REGISTRY}/Resolve"),
        &json!({"service": "greeter", "requirement": "^1"}),
    );
    assert_eq!(resolved.json()["selected"]["version"], "1.0.0");

    // Health, overall and per service.
    let health = grpcurl.call("grpc.health.v1.Health/Check", &json!({"service": REGISTRY}));
    assert_eq!(health.json()["status"], "SERVING", "{health:?}");
    let unknown = grpcurl.call("grpc.health.v1.Health/Check", &json!({"service": "nope"}));
    assert_eq!(unknown.code().as_deref(), Some("NotFound"), "{unknown:?}");

    // Bad inputs and their codes.
    let cases = [
        (
            "CreateService",
            json!({"name": "Not_A_Label"}),
            "InvalidArgument",
        ),
        ("CreateService", json!({"name": "greeter"}), "AlreadyExists"),
        (
            "PublishVersion",
            json!({"service": "greeter", "version": "1.0", "fileDescriptorSet": greeter_schema_base64(0)}),
            "InvalidArgument",
        ),
        (
            "PublishVersion",
            json!({"service": "greeter", "version": "3.0.0", "fileDescriptorSet": "bm90IGEgZGVzY3JpcHRvcg=="}),
            "InvalidArgument",
        ),
        (
            "PublishVersion",
            json!({"service": "greeter", "version": "1.0.0", "fileDescriptorSet": greeter_schema_base64(5)}),
            "AlreadyExists",
        ),
        (
            "Resolve",
            json!({"service": "greeter", "requirement": ">>1"}),
            "InvalidArgument",
        ),
        (
            "Resolve",
            json!({"service": "greeter", "requirement": "^5"}),
            "NotFound",
        ),
        ("GetService", json!({"name": "nobody"}), "NotFound"),
        (
            "TransitionVersion",
            json!({"service": "greeter", "version": "1.1.0", "state": "LIFECYCLE_STATE_DEPRECATED", "reason": "x"}),
            "FailedPrecondition",
        ),
        (
            "Heartbeat",
            json!({"instanceId": "67e55044-10b1-426f-9247-bb680e5fe0c8"}),
            "NotFound",
        ),
        (
            "RegisterInstance",
            json!({"service": "greeter", "version": "1.0.0", "address": "no-port"}),
            "InvalidArgument",
        ),
    ];
    for (method, body, code) in cases {
        let out = grpcurl.call(&format!("{REGISTRY}/{method}"), &body);
        assert!(!out.success, "{method} {body} should fail");
        assert_eq!(
            out.code().as_deref(),
            Some(code),
            "{method} {body}: {out:?}"
        );
    }
    // A breaking change without a major bump is refused, every violation a structured detail;
    // CheckCompatibility says the same without writing.
    let breaking = json!({"service": "greeter", "version": "2.1.0", "fileDescriptorSet": greeter_schema_base64(0)});
    let refused = grpcurl.call(&format!("{REGISTRY}/PublishVersion"), &breaking);
    assert_eq!(
        refused.code().as_deref(),
        Some("FailedPrecondition"),
        "{refused:?}"
    );
    assert!(
        refused
            .stderr
            .contains(r#""reason":"INCOMPATIBLE_VERSION""#),
        "{refused:?}"
    );
    for rule in [
        "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
        "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
    ] {
        assert!(
            refused.stderr.contains(&format!(r#""type":"{rule}""#)),
            "{rule}: {refused:?}"
        );
    }
    let dry_run = grpcurl.call(&format!("{REGISTRY}/CheckCompatibility"), &breaking);
    assert!(dry_run.success, "{dry_run:?}");
    assert!(
        dry_run.json().get("compatible").is_none(),
        "compatible=false is omitted in JSON"
    );
    assert_eq!(dry_run.json()["requiredBump"], "SEMVER_BUMP_MAJOR");
    assert_eq!(dry_run.json()["comparisons"][0]["againstVersion"], "2.0.0");

    // The google.rpc details are served by reflection, so grpcurl prints them decoded.
    let out = grpcurl.call(
        &format!("{REGISTRY}/Resolve"),
        &json!({"service": "greeter", "requirement": ">>1"}),
    );
    assert!(out.stderr.contains(r#""field":"requirement""#), "{out:?}");
    let out = grpcurl.call(
        &format!("{REGISTRY}/Heartbeat"),
        &json!({"instanceId": "67e55044-10b1-426f-9247-bb680e5fe0c8"}),
    );
    assert!(
        out.stderr.contains(r#""reason":"INSTANCE_NOT_FOUND""#),
        "{out:?}"
    );
    let _ = std::fs::remove_dir_all(data);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("flotilla-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
