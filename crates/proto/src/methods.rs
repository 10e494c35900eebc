//! What a schema says of its methods' side effects, read from the `idempotency_level` option:
//! which methods a client may retry, and which change something (what the audit log records
//! and, on the suite's own APIs, what needs a permission beyond reading).

use prost::Message;
use prost_types::{FileDescriptorSet, MethodDescriptorProto, method_options::IdempotencyLevel};

/// Every method of an encoded FileDescriptorSet, as its request path
/// (`/package.Service/Method`) and descriptor.
fn methods(encoded: &[u8]) -> Result<Vec<(String, MethodDescriptorProto)>, prost::DecodeError> {
    let set = FileDescriptorSet::decode(encoded)?;
    let mut methods = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            let service_name = match package {
                "" => service.name().to_owned(),
                package => format!("{package}.{}", service.name()),
            };
            for method in &service.method {
                methods.push((format!("/{service_name}/{}", method.name()), method.clone()));
            }
        }
    }
    Ok(methods)
}

fn level(method: &MethodDescriptorProto) -> IdempotencyLevel {
    method
        .options
        .as_ref()
        .map(|o| o.idempotency_level())
        .unwrap_or(IdempotencyLevel::IdempotencyUnknown)
}

/// The request paths of the methods a client may retry: marked NO_SIDE_EFFECTS or IDEMPOTENT.
/// Client-streaming methods are left out even when marked: a retry needs the whole request
/// buffered, and a stream may not end.
pub fn idempotent_methods(encoded: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    Ok(methods(encoded)?
        .into_iter()
        .filter(|(_, m)| {
            matches!(
                level(m),
                IdempotencyLevel::NoSideEffects | IdempotencyLevel::Idempotent
            ) && !m.client_streaming()
        })
        .map(|(path, _)| path)
        .collect())
}

/// The request paths of the methods that may change something: every method not marked
/// NO_SIDE_EFFECTS (an unmarked method counts as a mutation, so a new RPC is never taken for a
/// read by omission).
pub fn mutating_methods(encoded: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    Ok(methods(encoded)?
        .into_iter()
        .filter(|(_, m)| level(m) != IdempotencyLevel::NoSideEffects)
        .map(|(path, _)| path)
        .collect())
}

#[cfg(test)]
mod tests {
    use prost_types::{
        FileDescriptorProto, MethodDescriptorProto, MethodOptions, ServiceDescriptorProto,
    };

    use super::*;

    fn method(
        name: &str,
        level: Option<IdempotencyLevel>,
        streaming: bool,
    ) -> MethodDescriptorProto {
        MethodDescriptorProto {
            name: Some(name.into()),
            input_type: Some(".google.protobuf.Empty".into()),
            output_type: Some(".google.protobuf.Empty".into()),
            options: level.map(|l| MethodOptions {
                idempotency_level: Some(l as i32),
                ..Default::default()
            }),
            client_streaming: Some(streaming),
            ..Default::default()
        }
    }

    #[test]
    fn marked_unary_methods_are_idempotent_and_the_rest_are_not() {
        let set = FileDescriptorSet {
            file: vec![
                FileDescriptorProto {
                    name: Some("a.proto".into()),
                    package: Some("shop.v1".into()),
                    service: vec![ServiceDescriptorProto {
                        name: Some("Cart".into()),
                        method: vec![
                            method("Get", Some(IdempotencyLevel::NoSideEffects), false),
                            method("Put", Some(IdempotencyLevel::Idempotent), false),
                            method("Add", None, false),
                            method("Unknown", Some(IdempotencyLevel::IdempotencyUnknown), false),
                            method("Upload", Some(IdempotencyLevel::Idempotent), true),
                        ],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                FileDescriptorProto {
                    name: Some("b.proto".into()),
                    service: vec![ServiceDescriptorProto {
                        name: Some("Bare".into()),
                        method: vec![method("Ping", Some(IdempotencyLevel::NoSideEffects), false)],
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            ],
        };
        let paths = idempotent_methods(&set.encode_to_vec()).unwrap();
        assert_eq!(
            paths,
            ["/shop.v1.Cart/Get", "/shop.v1.Cart/Put", "/Bare/Ping"]
        );
    }

    #[test]
    fn the_echo_schema_marks_echo_and_not_record() {
        let paths = idempotent_methods(crate::testing::v1::DESCRIPTOR_SET).unwrap();
        assert_eq!(paths, ["/flotilla.testing.v1.Echo/Echo"]);
    }

    #[test]
    fn the_suites_mutations_are_every_method_not_marked_as_a_read() {
        let names = |set| -> Vec<String> {
            mutating_methods(set)
                .unwrap()
                .into_iter()
                .map(|path| path.rsplit('/').next().unwrap().to_owned())
                .collect()
        };
        assert_eq!(
            names(crate::registry::v1::DESCRIPTOR_SET),
            [
                "CreateService",
                "SetCompatibilityPolicy",
                "PublishVersion",
                "TransitionVersion",
                "RegisterInstance",
                "Heartbeat",
                "DeregisterInstance",
                "SetRoute",
            ]
        );
        assert_eq!(
            names(crate::rollout::v1::DESCRIPTOR_SET),
            [
                "StartRollout",
                "Pause",
                "Resume",
                "Promote",
                "Abort",
                "Rollback"
            ]
        );
        // The reads are retried by the fleet client; no mutation is.
        let reads = idempotent_methods(crate::registry::v1::DESCRIPTOR_SET).unwrap();
        assert_eq!(reads.len(), 10);
        assert!(reads.contains(&"/flotilla.registry.v1.Registry/Resolve".to_owned()));
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(idempotent_methods(b"\x0a\x05hello-not-a-descriptor").is_err());
        assert!(mutating_methods(b"\x0a\x05hello-not-a-descriptor").is_err());
    }
}
