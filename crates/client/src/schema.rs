//! Which methods of the caller's schema may be retried: those whose `idempotency_level` is
//! NO_SIDE_EFFECTS or IDEMPOTENT.

use prost::Message;
use prost_types::{FileDescriptorSet, method_options::IdempotencyLevel};

/// The request paths (`/package.Service/Method`) of the idempotent methods in an encoded
/// FileDescriptorSet. Client-streaming methods are left out even when marked idempotent: a retry
/// needs the whole request buffered, and a stream may not end.
pub(crate) fn idempotent_methods(encoded: &[u8]) -> Result<Vec<String>, prost::DecodeError> {
    let set = FileDescriptorSet::decode(encoded)?;
    let mut paths = Vec::new();
    for file in &set.file {
        let package = file.package();
        for service in &file.service {
            let service_name = match package {
                "" => service.name().to_owned(),
                package => format!("{package}.{}", service.name()),
            };
            for method in &service.method {
                let level = method
                    .options
                    .as_ref()
                    .map(|o| o.idempotency_level())
                    .unwrap_or(IdempotencyLevel::IdempotencyUnknown);
                let idempotent = matches!(
                    level,
                    IdempotencyLevel::NoSideEffects | IdempotencyLevel::Idempotent
                );
                if idempotent && !method.client_streaming() {
                    paths.push(format!("/{service_name}/{}", method.name()));
                }
            }
        }
    }
    Ok(paths)
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
        let paths = idempotent_methods(flotilla_proto::testing::v1::DESCRIPTOR_SET).unwrap();
        assert_eq!(paths, ["/flotilla.testing.v1.Echo/Echo"]);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(idempotent_methods(b"\x0a\x05hello-not-a-descriptor").is_err());
    }
}
