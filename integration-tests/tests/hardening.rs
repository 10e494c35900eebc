//! What a hostile or careless client found, each class checked on real processes with the exact
//! inputs that broke it: schemas that panicked prost-reflect, a schema that poisoned a service,
//! one invalid schema getting four codes, error replies too large for grpc-core clients, an
//! artifact that ran a shell on the orchestrator's host, and a proto2 file the CLI refused.

use std::{process::Command, time::Duration};

use flotilla_integration_tests::{
    SuiteProcess,
    process::binary,
    rollout::{RolloutFleet, canary, rollout_request},
};
use flotilla_model::fixtures::greeter_schema_bytes;
use flotilla_proto::{
    registry::v1::{self as pb, registry_client::RegistryClient},
    rollout::v1 as rollout_pb,
};
use prost::Message;
use prost_types::{FileDescriptorProto, FileDescriptorSet};
use tonic::{Code, Status, transport::Channel};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tonic_types::StatusExt;

/// An encoded set of one file, with `extra` appended to the file's bytes (what prost-types
/// cannot say, such as `edition`, field 14).
fn one_file(file: FileDescriptorProto, extra: &[u8]) -> Vec<u8> {
    let mut bytes = file.encode_to_vec();
    bytes.extend_from_slice(extra);
    FileDescriptorSetBytes(bytes).encode()
}

struct FileDescriptorSetBytes(Vec<u8>);

impl FileDescriptorSetBytes {
    fn encode(self) -> Vec<u8> {
        let mut set = vec![0x0a]; // field 1, length-delimited
        prost::encoding::encode_varint(self.0.len() as u64, &mut set);
        set.extend(self.0);
        set
    }
}

fn file(name: &str) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some(name.into()),
        package: Some("demo".into()),
        ..Default::default()
    }
}

/// The inputs that panicked inside prost-reflect, and the one that poisoned a service.
fn invalid_schemas() -> Vec<(&'static str, Vec<u8>)> {
    let mut edition = vec![14 << 3];
    prost::encoding::encode_varint(99_999, &mut edition);
    vec![
        (
            "syntax proto4",
            one_file(
                FileDescriptorProto {
                    syntax: Some("proto4".into()),
                    ..file("a.proto")
                },
                &[],
            ),
        ),
        (
            "edition 99999",
            one_file(
                FileDescriptorProto {
                    syntax: Some("editions".into()),
                    ..file("a.proto")
                },
                &edition,
            ),
        ),
        (
            "a file importing itself",
            FileDescriptorSet {
                file: vec![FileDescriptorProto {
                    dependency: vec!["a.proto".into()],
                    ..file("a.proto")
                }],
            }
            .encode_to_vec(),
        ),
    ]
}

fn assert_invalid_field(result: Result<impl std::fmt::Debug, Status>, field: &str, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    let details = status.get_error_details();
    let bad = details
        .bad_request()
        .unwrap_or_else(|| panic!("{what}: no BadRequest in {status:?}"));
    assert_eq!(bad.field_violations[0].field, field, "{what}");
}

async fn assert_serving(address: &str) {
    let channel = Channel::from_shared(address.to_owned())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let answer = health
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("the server still answers health")
        .into_inner();
    assert_eq!(answer.status, 1, "SERVING");
}

fn publish(service: &str, version: &str, schema: Vec<u8>) -> pb::PublishVersionRequest {
    pb::PublishVersionRequest {
        service: service.into(),
        version: version.into(),
        file_descriptor_set: schema,
        ..Default::default()
    }
}

async fn create(client: &mut RegistryClient<Channel>, name: &str) {
    client
        .create_service(pb::CreateServiceRequest {
            name: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn every_path_refuses_an_invalid_schema_with_invalid_argument_and_stays_up() {
    let registry = SuiteProcess::registry(&["--data-file", ":memory:"]).unwrap();
    let mut client = RegistryClient::connect(registry.endpoint()).await.unwrap();
    create(&mut client, "greeter").await;
    client
        .publish_version(publish("greeter", "1.0.0", greeter_schema_bytes(1)))
        .await
        .unwrap();

    for (i, (what, schema)) in invalid_schemas().into_iter().enumerate() {
        // The first version of a new service, and a later version of an existing one.
        let fresh = format!("fresh-{i}");
        create(&mut client, &fresh).await;
        assert_invalid_field(
            client
                .publish_version(publish(&fresh, "1.0.0", schema.clone()))
                .await,
            "file_descriptor_set",
            what,
        );
        assert_invalid_field(
            client
                .publish_version(publish("greeter", "1.1.0", schema.clone()))
                .await,
            "file_descriptor_set",
            what,
        );
        assert_invalid_field(
            client
                .check_compatibility(pb::CheckCompatibilityRequest {
                    service: "greeter".into(),
                    file_descriptor_set: schema.clone(),
                    ..Default::default()
                })
                .await,
            "file_descriptor_set",
            what,
        );
        assert_invalid_field(
            client
                .resolve(pb::ResolveRequest {
                    service: "greeter".into(),
                    requirement: "^1".into(),
                    client_schema: schema.clone(),
                })
                .await,
            "client_schema",
            what,
        );
        assert_invalid_field(
            client
                .watch_endpoints(pb::WatchEndpointsRequest {
                    service: "greeter".into(),
                    requirement: "^1".into(),
                    client_schema: schema.clone(),
                })
                .await
                .map(drop),
            "client_schema",
            what,
        );
        // Nothing was stored: the service is as healthy as before, and takes a valid version.
        client
            .publish_version(publish(&fresh, "1.0.0", greeter_schema_bytes(1)))
            .await
            .unwrap_or_else(|e| panic!("{what}: the service was poisoned: {e:?}"));
        client
            .publish_version(publish(&fresh, "1.1.0", greeter_schema_bytes(2)))
            .await
            .unwrap_or_else(|e| panic!("{what}: the service was poisoned: {e:?}"));
        let resolved = client
            .resolve(pb::ResolveRequest {
                service: fresh.clone(),
                requirement: "^1".into(),
                client_schema: greeter_schema_bytes(1),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resolved.selected.unwrap().version, "1.1.0");
        assert_serving(&registry.endpoint()).await;
    }
}

/// The bytes an error reply's status takes in headers: `grpc-message` percent-encoded, and
/// `grpc-status-details-bin` in base64.
fn status_metadata_bytes(status: &Status) -> usize {
    let message: usize = status
        .message()
        .bytes()
        .map(|b| if (0x20..0x7f).contains(&b) { 1 } else { 3 })
        .sum();
    message + status.details().len().div_ceil(3) * 4
}

#[tokio::test]
async fn error_replies_stay_under_8_kib_whatever_the_input() {
    let registry = SuiteProcess::registry(&["--data-file", ":memory:"]).unwrap();
    let mut client = RegistryClient::connect(registry.endpoint())
        .await
        .unwrap()
        .max_encoding_message_size(64 * 1024 * 1024);
    let long = "a".repeat(100_000);
    let huge = "é".repeat(5 * 1024 * 1024 / 2);
    for value in [&long, &huge] {
        let replies = [
            client
                .create_service(pb::CreateServiceRequest {
                    name: value.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            client
                .get_version(pb::GetVersionRequest {
                    service: "greeter".into(),
                    version: value.clone(),
                })
                .await
                .map(drop),
            client
                .register_instance(pb::RegisterInstanceRequest {
                    service: "greeter".into(),
                    version: "1.0.0".into(),
                    address: value.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
            client
                .publish_version(pb::PublishVersionRequest {
                    labels: [(value.clone(), "x".into())].into(),
                    ..publish("greeter", "1.0.0", greeter_schema_bytes(1))
                })
                .await
                .map(drop),
        ];
        for reply in replies {
            let status = reply.expect_err("an invalid request");
            assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
            let bytes = status_metadata_bytes(&status);
            assert!(bytes < 8 * 1024, "{bytes} bytes: {}", status.message());
            assert!(
                status
                    .message()
                    .contains(&format!("({} characters)", value.chars().count())),
                "the value is quoted with its length: {}",
                status.message()
            );
        }
    }
    assert_serving(&registry.endpoint()).await;
}

/// The same, as a grpc-core client sees it: Python's grpcio refuses metadata over 16 KiB, and
/// used to report RESOURCE_EXHAUSTED instead of the registry's INVALID_ARGUMENT.
#[test]
fn a_grpc_core_client_reads_the_error_of_a_100000_character_name() {
    if !flotilla_integration_tests::peers::python_with_grpc() {
        return;
    }
    let registry = SuiteProcess::registry(&["--data-file", ":memory:"]).unwrap();
    // CreateServiceRequest { name: "a" × 100000 }, encoded by hand: nothing is generated.
    let script = r#"
import sys, grpc
name = b"a" * 100000
length, varint = len(name), b""
while True:
    byte = length & 0x7F
    length >>= 7
    varint += bytes([byte | (0x80 if length else 0)])
    if not length:
        break
request = b"\x0a" + varint + name
channel = grpc.insecure_channel(sys.argv[1])
call = channel.unary_unary("/flotilla.registry.v1.Registry/CreateService")
try:
    call(request, timeout=10)
    print("OK")
except grpc.RpcError as error:
    print(error.code().name)
    print(error.details()[:200])
"#;
    let output = Command::new("python3")
        .args(["-c", script, &registry.authority()])
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("INVALID_ARGUMENT"), "{stdout}");
    assert!(
        lines.next().unwrap_or_default().starts_with("name: \"aaaa"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_artifact_that_runs_a_shell_is_refused_before_anything_starts() {
    let fleet = RolloutFleet::start().unwrap();
    let mut registry = RegistryClient::connect(fleet.registry.endpoint())
        .await
        .unwrap();
    let marker = fleet.dir.path().join("the-shell-ran");
    create(&mut registry, "hostile").await;
    registry
        .publish_version(pb::PublishVersionRequest {
            artifact: Some(pb::Artifact {
                image: String::new(),
                command: vec![
                    "/bin/sh".into(),
                    "-c".into(),
                    format!("touch {}", marker.display()),
                ],
            }),
            ..publish("hostile", "1.0.0", greeter_schema_bytes(1))
        })
        .await
        .unwrap();
    let mut orchestrator = fleet.client(0).await.unwrap();
    let refused = orchestrator
        .start_rollout(rollout_pb::StartRolloutRequest {
            service: "hostile".into(),
            ..rollout_request("1.0.0", canary(&[]))
        })
        .await
        .expect_err("a program the operator did not allow");
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    assert!(
        refused.message().contains("\"/bin/sh\" is not allowed"),
        "{}",
        refused.message()
    );
    let listed = orchestrator
        .list_rollouts(rollout_pb::ListRolloutsRequest {
            service: "hostile".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(listed.rollouts.is_empty(), "no rollout was recorded");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!marker.exists(), "the shell never ran");
    assert!(fleet.instance_pids().is_empty(), "nothing was started");
}

#[test]
fn compat_check_compiles_proto2_fields_sharing_a_default_json_name() {
    let dir = tempfile::tempdir().unwrap();
    for side in ["old", "new"] {
        let path = dir.path().join(side).join("demo");
        std::fs::create_dir_all(&path).unwrap();
        std::fs::write(
            path.join("owner.proto"),
            "syntax = \"proto2\";\npackage demo;\n\
             message Owner { optional string ownerId = 1; optional string owner_id = 2; }\n",
        )
        .unwrap();
    }
    let output = Command::new(binary("flotilla"))
        .args(["compat", "check"])
        .arg(dir.path().join("new"))
        .arg("--against")
        .arg(dir.path().join("old"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stdout).contains("compatible"));
}
