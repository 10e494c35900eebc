//! The demo greeter's release snapshots: each compiled on its own, each descriptor set holding
//! its own API, and the compatibility between releases that the sample fleet relies on.

use flotilla_compat::{Category, check_encoded};
use flotilla_proto::demo::greeter::{v1_0_0, v1_1_0, v2_0_0};
use prost::Message;
use prost_types::FileDescriptorSet;

/// The full names of the rpcs of the `Greeter` service in a descriptor set.
fn greeter_methods(descriptor_set: &[u8]) -> Vec<String> {
    let set = FileDescriptorSet::decode(descriptor_set).unwrap();
    let file = set
        .file
        .iter()
        .find(|f| f.name() == "demo/greeter/v1/greeter.proto")
        .expect("the greeter file is in the set");
    assert_eq!(file.package(), "demo.greeter.v1");
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "Greeter")
        .expect("the Greeter service is in the file");
    service.method.iter().map(|m| m.name().to_owned()).collect()
}

#[test]
fn each_release_has_its_own_descriptor_set() {
    assert_eq!(greeter_methods(v1_0_0::DESCRIPTOR_SET), ["SayHello"]);
    assert_eq!(
        greeter_methods(v1_1_0::DESCRIPTOR_SET),
        ["SayHello", "SayGoodbye"]
    );
    assert_eq!(
        greeter_methods(v2_0_0::DESCRIPTOR_SET),
        ["SayHello", "SayGoodbye"]
    );
}

#[test]
fn descriptor_sets_keep_doc_comments_for_reflection() {
    let set = FileDescriptorSet::decode(v1_1_0::DESCRIPTOR_SET).unwrap();
    let comments: Vec<_> = set.file[0]
        .source_code_info
        .as_ref()
        .expect("source info is kept")
        .location
        .iter()
        .filter_map(|l| l.leading_comments.clone())
        .collect();
    assert!(comments.iter().any(|c| c.contains("New in 1.1.0")));
}

#[test]
fn the_generated_types_differ_per_release() {
    // 1.1.0 adds fields to 1.0.0's messages; 2.0.0 makes HelloReply.message a message.
    let reply = v1_1_0::HelloReply {
        message: "Bonjour, Ada!".into(),
        served_by: "test".into(),
    };
    let old = v1_0_0::HelloReply::decode(reply.encode_to_vec().as_slice()).unwrap();
    assert_eq!(old.message, "Bonjour, Ada!");
    assert!(v2_0_0::HelloReply::decode(reply.encode_to_vec().as_slice()).is_err());
}

#[test]
fn release_1_1_0_is_compatible_with_1_0_0_and_2_0_0_breaks_1_1_0() {
    let additions = check_encoded(
        v1_0_0::DESCRIPTOR_SET,
        v1_1_0::DESCRIPTOR_SET,
        Category::WireJson,
    )
    .unwrap();
    assert!(
        additions.violations.is_empty(),
        "{:?}",
        additions.violations
    );
    assert!(
        additions
            .additions
            .contains(&"demo.greeter.v1.Greeter.SayGoodbye".to_owned())
    );

    let breaking = check_encoded(
        v1_1_0::DESCRIPTOR_SET,
        v2_0_0::DESCRIPTOR_SET,
        Category::WireJson,
    )
    .unwrap();
    let rules: Vec<_> = breaking.violations.iter().map(|v| v.rule).collect();
    assert_eq!(rules, ["FIELD_WIRE_JSON_COMPATIBLE_TYPE"]);
    assert_eq!(
        breaking.violations[0].location.element,
        "demo.greeter.v1.HelloReply.message"
    );
}
