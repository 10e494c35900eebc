//! Schemas and rollouts built in code, for tests and benchmarks of every crate (feature
//! `fixtures`).

use prost::Message;
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet,
    MethodDescriptorProto, ServiceDescriptorProto,
    field_descriptor_proto::{Label, Type},
};

use crate::Schema;

/// A `demo.greeter` API whose `HelloRequest` has `extra_fields` string fields beyond `name`, so
/// that each count gives a different (and compatible, additive) schema.
pub fn greeter_descriptor_set(extra_fields: u32) -> FileDescriptorSet {
    let string_field = |name: &str, number: i32| FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(Label::Optional as i32),
        r#type: Some(Type::String as i32),
        json_name: Some(name.into()),
        ..Default::default()
    };
    let mut request_fields = vec![string_field("name", 1)];
    for i in 0..extra_fields {
        request_fields.push(string_field(&format!("extra_{i}"), 2 + i as i32));
    }
    FileDescriptorSet {
        file: vec![FileDescriptorProto {
            name: Some("demo/greeter.proto".into()),
            package: Some("demo".into()),
            syntax: Some("proto3".into()),
            message_type: vec![
                DescriptorProto {
                    name: Some("HelloRequest".into()),
                    field: request_fields,
                    ..Default::default()
                },
                DescriptorProto {
                    name: Some("HelloReply".into()),
                    field: vec![string_field("message", 1)],
                    ..Default::default()
                },
            ],
            service: vec![ServiceDescriptorProto {
                name: Some("Greeter".into()),
                method: vec![MethodDescriptorProto {
                    name: Some("SayHello".into()),
                    input_type: Some(".demo.HelloRequest".into()),
                    output_type: Some(".demo.HelloReply".into()),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// [`greeter_descriptor_set`] with `HelloRequest.name` an `int64`: bytes that a caller of the
/// string version would misread (a breaking change under every buf category).
pub fn greeter_schema_bytes_retyped() -> Vec<u8> {
    let mut set = greeter_descriptor_set(0);
    set.file[0].message_type[0].field[0].r#type = Some(Type::Int64 as i32);
    set.encode_to_vec()
}

/// [`greeter_descriptor_set`] encoded.
pub fn greeter_schema_bytes(extra_fields: u32) -> Vec<u8> {
    greeter_descriptor_set(extra_fields).encode_to_vec()
}

/// [`greeter_descriptor_set`] as a validated [`Schema`].
pub fn greeter_schema(extra_fields: u32) -> Schema {
    Schema::from_bytes(&greeter_schema_bytes(extra_fields))
        .expect("the greeter fixture is a valid schema")
}

/// A canary rollout of greeter from 1.0.0 to 1.1.0 (2 replicas), PROGRESSING at its first step,
/// created at `now`: weight 0, run 1 new instance, weight 50%, pause until promoted, weight 100%,
/// no stable instances.
pub fn canary_rollout(now: crate::Timestamp) -> crate::Rollout {
    use crate::{
        AnalysisSpec, CanaryStep, PlanStep, Rollout, RolloutId, RolloutState, ServiceName,
        Strategy, Version,
    };
    Rollout {
        id: RolloutId::from_trusted("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
        service: ServiceName::parse("service", "greeter").expect("a valid name"),
        from_version: Some(Version::new(1, 0, 0)),
        to_version: Version::new(1, 1, 0),
        strategy: Strategy::Canary {
            steps: vec![
                CanaryStep::SetWeight(50),
                CanaryStep::Pause { duration_ms: None },
            ],
        },
        replicas: 2,
        stable_replicas: 2,
        analysis: AnalysisSpec::default(),
        health_deadline_ms: 20_000,
        progress_deadline_ms: 600_000,
        skip_analysis: false,
        plan: vec![
            PlanStep::SetWeight(0),
            PlanStep::ScaleNew(1),
            PlanStep::SetWeight(50),
            PlanStep::Pause { duration_ms: None },
            PlanStep::SetWeight(100),
            PlanStep::ScaleStable(0),
        ],
        state: RolloutState::Progressing,
        step_index: 0,
        step_started: now,
        pause_until: None,
        promotion: None,
        halt: None,
        instances: Vec::new(),
        weights: Vec::new(),
        last_analysis: None,
        revision: 0,
        rollback_to_revision: None,
        owner: Some("orchestrator-a".into()),
        status_message: "step 1: weight 0% to the new version".into(),
        created: now,
        updated: now,
        generation: 1,
        trace_parent: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_variant_is_valid_and_distinct() {
        let a = greeter_schema(0);
        let b = greeter_schema(3);
        assert_ne!(a.fingerprint(), b.fingerprint());
        assert_eq!(a, greeter_schema(0));
    }
}
