//! Reads what `prost-types` drops from encoded descriptors: each file's edition and the
//! `features` set on files, messages, fields, oneofs and enums (with the C++ and Java feature
//! extensions). The structs below mirror only those parts of `descriptor.proto`; every other
//! field is skipped as unknown.

use prost::Message;

use super::features::{ExplicitFeatures, FeatureTable};

#[derive(Clone, PartialEq, Message)]
struct RawSet {
    #[prost(message, repeated, tag = "1")]
    file: Vec<RawFile>,
}

#[derive(Clone, PartialEq, Message)]
struct RawFile {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(string, optional, tag = "2")]
    package: Option<String>,
    #[prost(message, repeated, tag = "4")]
    message_type: Vec<RawMessage>,
    #[prost(message, repeated, tag = "5")]
    enum_type: Vec<RawEnum>,
    #[prost(message, repeated, tag = "7")]
    extension: Vec<RawNamed>,
    #[prost(message, optional, tag = "8")]
    options: Option<FileOptions>,
    #[prost(int32, optional, tag = "14")]
    edition: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct RawMessage {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, repeated, tag = "2")]
    field: Vec<RawNamed>,
    #[prost(message, repeated, tag = "3")]
    nested_type: Vec<RawMessage>,
    #[prost(message, repeated, tag = "4")]
    enum_type: Vec<RawEnum>,
    #[prost(message, repeated, tag = "6")]
    extension: Vec<RawNamed>,
    #[prost(message, optional, tag = "7")]
    options: Option<MessageOptions>,
    #[prost(message, repeated, tag = "8")]
    oneof_decl: Vec<RawOneof>,
}

/// A field or an extension: its options are at tag 8.
#[derive(Clone, PartialEq, Message)]
struct RawNamed {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "8")]
    options: Option<FieldOptions>,
}

#[derive(Clone, PartialEq, Message)]
struct RawOneof {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "2")]
    options: Option<OneofOptions>,
}

#[derive(Clone, PartialEq, Message)]
struct RawEnum {
    #[prost(string, optional, tag = "1")]
    name: Option<String>,
    #[prost(message, optional, tag = "3")]
    options: Option<EnumOptions>,
}

#[derive(Clone, PartialEq, Message)]
struct FileOptions {
    #[prost(message, optional, tag = "50")]
    features: Option<RawFeatures>,
}

#[derive(Clone, PartialEq, Message)]
struct MessageOptions {
    #[prost(message, optional, tag = "12")]
    features: Option<RawFeatures>,
}

#[derive(Clone, PartialEq, Message)]
struct FieldOptions {
    #[prost(message, optional, tag = "21")]
    features: Option<RawFeatures>,
}

#[derive(Clone, PartialEq, Message)]
struct OneofOptions {
    #[prost(message, optional, tag = "1")]
    features: Option<RawFeatures>,
}

#[derive(Clone, PartialEq, Message)]
struct EnumOptions {
    #[prost(message, optional, tag = "7")]
    features: Option<RawFeatures>,
}

/// `google.protobuf.FeatureSet`, with `pb.cpp` (1000) and `pb.java` (1001) read as fields.
#[derive(Clone, PartialEq, Message)]
struct RawFeatures {
    #[prost(int32, optional, tag = "1")]
    field_presence: Option<i32>,
    #[prost(int32, optional, tag = "2")]
    enum_type: Option<i32>,
    #[prost(int32, optional, tag = "4")]
    utf8_validation: Option<i32>,
    #[prost(int32, optional, tag = "5")]
    message_encoding: Option<i32>,
    #[prost(int32, optional, tag = "6")]
    json_format: Option<i32>,
    #[prost(message, optional, tag = "1000")]
    cpp: Option<LanguageFeatures>,
    #[prost(message, optional, tag = "1001")]
    java: Option<LanguageFeatures>,
}

/// `pb.CppFeatures.string_type` and `pb.JavaFeatures.utf8_validation` are both field 2.
#[derive(Clone, PartialEq, Message)]
struct LanguageFeatures {
    #[prost(int32, optional, tag = "2")]
    second: Option<i32>,
}

impl RawFeatures {
    fn explicit(&self) -> ExplicitFeatures {
        ExplicitFeatures {
            field_presence: self.field_presence,
            enum_type: self.enum_type,
            utf8_validation: self.utf8_validation,
            message_encoding: self.message_encoding,
            json_format: self.json_format,
            cpp_string_type: self.cpp.as_ref().and_then(|c| c.second),
            java_utf8_validation: self.java.as_ref().and_then(|j| j.second),
        }
    }
}

/// The editions and explicit features of an encoded `FileDescriptorSet`; empty when the bytes
/// do not decode this way (the caller reports decoding errors itself).
pub(crate) fn read(bytes: &[u8]) -> FeatureTable {
    let mut table = FeatureTable::default();
    let Ok(set) = RawSet::decode(bytes) else {
        return table;
    };
    for file in &set.file {
        let name = file.name.clone().unwrap_or_default();
        if let Some(edition) = file.edition {
            table.editions.insert(name.clone(), edition);
        }
        let features = file.options.as_ref().and_then(|o| o.features.as_ref());
        if let Some(features) = features {
            table.files.insert(name, features.explicit());
        }
        let scope = file.package.clone().unwrap_or_default();
        add_enums(&mut table, &scope, &file.enum_type);
        add_fields(&mut table, &scope, &file.extension);
        for message in &file.message_type {
            add_message(&mut table, &scope, message);
        }
    }
    table
}

fn qualify(scope: &str, name: Option<&String>) -> String {
    let name = name.map(String::as_str).unwrap_or_default();
    if scope.is_empty() {
        name.to_owned()
    } else {
        format!("{scope}.{name}")
    }
}

fn add(table: &mut FeatureTable, full_name: String, features: Option<&RawFeatures>) {
    if let Some(features) = features {
        let explicit = features.explicit();
        if !explicit.is_empty() {
            table.elements.insert(full_name, explicit);
        }
    }
}

fn add_message(table: &mut FeatureTable, scope: &str, message: &RawMessage) {
    let full_name = qualify(scope, message.name.as_ref());
    let features = message.options.as_ref().and_then(|o| o.features.as_ref());
    add(table, full_name.clone(), features);
    add_fields(table, &full_name, &message.field);
    add_fields(table, &full_name, &message.extension);
    add_enums(table, &full_name, &message.enum_type);
    for oneof in &message.oneof_decl {
        let features = oneof.options.as_ref().and_then(|o| o.features.as_ref());
        add(table, qualify(&full_name, oneof.name.as_ref()), features);
    }
    for nested in &message.nested_type {
        add_message(table, &full_name, nested);
    }
}

fn add_fields(table: &mut FeatureTable, scope: &str, fields: &[RawNamed]) {
    for field in fields {
        let features = field.options.as_ref().and_then(|o| o.features.as_ref());
        add(table, qualify(scope, field.name.as_ref()), features);
    }
}

fn add_enums(table: &mut FeatureTable, scope: &str, enums: &[RawEnum]) {
    for e in enums {
        let features = e.options.as_ref().and_then(|o| o.features.as_ref());
        add(table, qualify(scope, e.name.as_ref()), features);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_and_editions_are_read_by_full_name() {
        let features = RawFeatures {
            field_presence: Some(2),
            cpp: Some(LanguageFeatures { second: Some(2) }),
            ..Default::default()
        };
        let set = RawSet {
            file: vec![RawFile {
                name: Some("a.proto".into()),
                package: Some("p".into()),
                edition: Some(1001),
                options: Some(FileOptions {
                    features: Some(RawFeatures {
                        json_format: Some(2),
                        ..Default::default()
                    }),
                }),
                message_type: vec![RawMessage {
                    name: Some("M".into()),
                    field: vec![RawNamed {
                        name: Some("f".into()),
                        options: Some(FieldOptions {
                            features: Some(features),
                        }),
                    }],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let table = read(&set.encode_to_vec());
        assert_eq!(table.edition("a.proto"), 1001);
        assert_eq!(table.file("a.proto").json_format, Some(2));
        let field = table.element("p.M.f");
        assert_eq!(field.field_presence, Some(2));
        assert_eq!(field.cpp_string_type, Some(2));
        assert!(table.element("p.M").is_empty());
    }

    #[test]
    fn undecodable_bytes_give_an_empty_table() {
        let table = read(&[0xff, 0xff, 0xff]);
        assert!(table.files.is_empty() && table.elements.is_empty());
    }
}
