//! A version's protobuf schema: a validated FileDescriptorSet in canonical form.

use std::sync::Arc;

use crate::wire;

use prost::Message;
use prost_types::FileDescriptorSet;
use sha2::{Digest, Sha256};

/// Why bytes are not a usable schema.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    #[error("is not a serialized google.protobuf.FileDescriptorSet: {0}")]
    Decode(String),
    #[error("holds no files")]
    Empty,
    #[error("holds two different files named {}", flotilla_compat::quote(.0))]
    ConflictingFile(String),
    #[error("is not self-contained or not valid protobuf: {0}")]
    Invalid(String),
}

/// A FileDescriptorSet valid by [`flotilla_compat::validate_encoded`]: it decodes, its files
/// declare a known syntax, its imports are all inside it (none of a file to itself) and its
/// references all resolve. It is kept in a canonical encoding (files in name order, duplicates dropped, each
/// file's bytes untouched, so custom options survive) and fingerprinted without source info, so
/// the same schema compiled twice, or with its files in another order or its comments reworded,
/// has the same fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schema {
    canonical: Arc<[u8]>,
    fingerprint: Arc<str>,
}

/// `FileDescriptorSet.file` and `FileDescriptorProto.name` / `.source_code_info`.
const SET_FILE: u64 = 1;
const FILE_NAME: u64 = 1;
const FILE_SOURCE_CODE_INFO: u64 = 9;

impl Schema {
    /// Validates `bytes` and puts them in canonical form.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, SchemaError> {
        let mut files = split_files(bytes)?;
        if files.is_empty() {
            return Err(SchemaError::Empty);
        }
        files.sort_by(|a, b| a.0.cmp(&b.0));
        let mut canonical = Vec::with_capacity(bytes.len());
        let mut stripped = Vec::with_capacity(bytes.len());
        let mut previous: Option<(&str, &[u8])> = None;
        for (name, file) in &files {
            match previous {
                Some((p, content)) if p == name => {
                    if content != *file {
                        return Err(SchemaError::ConflictingFile(name.clone()));
                    }
                    continue;
                }
                _ => previous = Some((name, file)),
            }
            wire::write_len_field(&mut canonical, SET_FILE, file);
            wire::write_len_field(&mut stripped, SET_FILE, &without_source_info(file)?);
        }
        // The one rule of what a valid schema is, so that the compatibility check of a later
        // publish, and every resolve and watch with a caller schema, can read this one.
        flotilla_compat::validate_encoded(&canonical).map_err(|e| match e {
            flotilla_compat::InvalidSchema::Decode(reason) => SchemaError::Decode(reason),
            flotilla_compat::InvalidSchema::Invalid(reason) => SchemaError::Invalid(reason),
        })?;
        Ok(Self {
            canonical: canonical.into(),
            fingerprint: hex::encode(Sha256::digest(&stripped)).into(),
        })
    }

    /// For a schema read back from storage: bytes and fingerprint as [`Schema::bytes`] and
    /// [`Schema::fingerprint`] gave them when it was stored. Nothing is decoded or hashed again.
    pub fn from_stored(canonical: Vec<u8>, fingerprint: String) -> Self {
        Self {
            canonical: canonical.into(),
            fingerprint: fingerprint.into(),
        }
    }

    /// The canonical encoding.
    pub fn bytes(&self) -> &[u8] {
        &self.canonical
    }

    /// Lowercase hex SHA-256 of the canonical encoding without source info.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// The decoded descriptor set. Custom options are not part of prost-types' model and are
    /// dropped here; [`Schema::bytes`] keeps them.
    pub fn descriptor_set(&self) -> FileDescriptorSet {
        FileDescriptorSet::decode(&*self.canonical)
            .expect("a Schema holds a FileDescriptorSet that decoded when it was made")
    }
}

/// The files of an encoded set, each with its name, as the bytes they were sent as.
fn split_files(set: &[u8]) -> Result<Vec<(String, &[u8])>, SchemaError> {
    let decode_error = |e: wire::WireError| SchemaError::Decode(e.to_string());
    let mut files = Vec::new();
    for field in wire::fields(set).map_err(decode_error)? {
        if field.number != SET_FILE || field.wire_type != 2 {
            return Err(SchemaError::Decode(format!(
                "unexpected field {} in a FileDescriptorSet",
                field.number
            )));
        }
        let name = wire::fields(field.payload)
            .map_err(decode_error)?
            .into_iter()
            .find(|f| f.number == FILE_NAME && f.wire_type == 2)
            .map(|f| String::from_utf8(f.payload.to_vec()))
            .transpose()
            .map_err(|_| SchemaError::Decode("a file name is not UTF-8".into()))?
            .filter(|name| !name.is_empty())
            .ok_or_else(|| SchemaError::Invalid("a file has no name".into()))?;
        files.push((name, field.payload));
    }
    Ok(files)
}

fn without_source_info(file: &[u8]) -> Result<Vec<u8>, SchemaError> {
    let fields = wire::fields(file).map_err(|e| SchemaError::Decode(e.to_string()))?;
    Ok(fields
        .iter()
        .filter(|f| f.number != FILE_SOURCE_CODE_INFO)
        .flat_map(|f| f.raw.iter().copied())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compile(files: &[(&str, &str)]) -> FileDescriptorSet {
        let dir = std::env::temp_dir().join(format!(
            "flotilla-schema-test-{}-{}",
            std::process::id(),
            files.iter().map(|f| f.1.len()).sum::<usize>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let set = protox::Compiler::new([&dir])
            .unwrap()
            .include_imports(true)
            .include_source_info(true)
            .open_files(files.iter().map(|f| f.0))
            .unwrap()
            .file_descriptor_set();
        std::fs::remove_dir_all(&dir).unwrap();
        set
    }

    const GREETER: &str = "syntax = \"proto3\";\npackage demo;\nimport \"google/protobuf/timestamp.proto\";\n\
        // Says hello.\nmessage Hello { string name = 1; google.protobuf.Timestamp at = 2; }\n\
        service Greeter { rpc Greet(Hello) returns (Hello); }\n";

    #[test]
    fn file_order_and_comments_do_not_change_the_fingerprint() {
        let set = compile(&[("greeter.proto", GREETER)]);
        assert_eq!(set.file.len(), 2, "the import is included");
        let mut reversed = set.clone();
        reversed.file.reverse();
        let reworded = compile(&[("greeter.proto", &GREETER.replace("Says hello.", "Greets."))]);

        let a = Schema::from_bytes(&set.encode_to_vec()).unwrap();
        let b = Schema::from_bytes(&reversed.encode_to_vec()).unwrap();
        let c = Schema::from_bytes(&reworded.encode_to_vec()).unwrap();
        assert_eq!(a.bytes(), b.bytes());
        assert_eq!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.fingerprint().len(), 64);

        let changed = compile(&[("greeter.proto", &GREETER.replace("name = 1", "name = 3"))]);
        let d = Schema::from_bytes(&changed.encode_to_vec()).unwrap();
        assert_ne!(a.fingerprint(), d.fingerprint());
    }

    #[test]
    fn a_missing_import_is_rejected() {
        let mut set = compile(&[("greeter.proto", GREETER)]);
        set.file.retain(|f| f.name() == "greeter.proto");
        let err = Schema::from_bytes(&set.encode_to_vec()).unwrap_err();
        assert!(matches!(err, SchemaError::Invalid(_)), "{err}");
    }

    #[test]
    fn conflicting_duplicates_and_empty_sets_are_rejected() {
        assert_eq!(Schema::from_bytes(&[]), Err(SchemaError::Empty));
        let set = compile(&[("greeter.proto", GREETER)]);
        let mut twice = set.clone();
        let mut other = set.file[1].clone();
        other.package = Some("other".into());
        twice.file.push(other);
        let err = Schema::from_bytes(&twice.encode_to_vec()).unwrap_err();
        assert!(matches!(err, SchemaError::ConflictingFile(_)), "{err}");
        let mut same_twice = set.clone();
        same_twice.file.push(set.file[0].clone());
        assert!(Schema::from_bytes(&same_twice.encode_to_vec()).is_ok());
    }

    #[test]
    fn the_canonical_form_round_trips_through_storage() {
        let set = compile(&[("greeter.proto", GREETER)]);
        let a = Schema::from_bytes(&set.encode_to_vec()).unwrap();
        let b = Schema::from_stored(a.bytes().to_vec(), a.fingerprint().to_owned());
        assert_eq!(a, b);
        assert_eq!(b.descriptor_set().file.len(), 2);
    }

    #[test]
    fn custom_options_survive_canonicalisation() {
        let dir =
            std::env::temp_dir().join(format!("flotilla-schema-options-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("owned.proto"),
            "syntax = \"proto3\";\npackage demo;\nimport \"google/protobuf/descriptor.proto\";\n\
             extend google.protobuf.MessageOptions { string owner = 50001; }\n\
             message Hello { option (owner) = \"team-zebra-42\"; string name = 1; }\n",
        )
        .unwrap();
        let bytes = protox::Compiler::new([&dir])
            .unwrap()
            .include_imports(true)
            .open_files(["owned.proto"])
            .unwrap()
            .encode_file_descriptor_set();
        std::fs::remove_dir_all(&dir).unwrap();
        let needle = b"team-zebra-42";
        let contains = |haystack: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&bytes), "protox encodes the custom option");
        let schema = Schema::from_bytes(&bytes).unwrap();
        assert!(contains(schema.bytes()), "the canonical form keeps it");
    }

    /// A set of one file, encoded, with `extra` appended to the file's bytes (fields prost-types
    /// does not know, such as `edition`).
    fn one_file(file: prost_types::FileDescriptorProto, extra: &[u8]) -> Vec<u8> {
        let mut file = file.encode_to_vec();
        file.extend_from_slice(extra);
        let mut set = Vec::new();
        wire::write_len_field(&mut set, SET_FILE, &file);
        set
    }

    fn named(name: &str) -> prost_types::FileDescriptorProto {
        prost_types::FileDescriptorProto {
            name: Some(name.into()),
            package: Some("demo".into()),
            ..Default::default()
        }
    }

    /// `FileDescriptorProto.edition` (field 14, a varint).
    fn edition(value: i32) -> Vec<u8> {
        let mut bytes = vec![14 << 3];
        prost::encoding::encode_varint(value as i64 as u64, &mut bytes);
        bytes
    }

    #[test]
    fn an_unknown_syntax_or_edition_is_invalid_not_a_panic() {
        let proto4 = one_file(
            prost_types::FileDescriptorProto {
                syntax: Some("proto4".into()),
                ..named("a.proto")
            },
            &[],
        );
        let err = Schema::from_bytes(&proto4).unwrap_err();
        assert!(
            matches!(err, SchemaError::Invalid(ref r) if r.contains("\"proto4\"")),
            "{err}"
        );
        let editions = |value| {
            one_file(
                prost_types::FileDescriptorProto {
                    syntax: Some("editions".into()),
                    ..named("a.proto")
                },
                &edition(value),
            )
        };
        assert!(Schema::from_bytes(&editions(1000)).is_ok(), "edition 2023");
        for bad in [99_999, -5, 0, 1_000_000] {
            let err = Schema::from_bytes(&editions(bad)).unwrap_err();
            assert!(matches!(err, SchemaError::Invalid(_)), "{bad}: {err}");
        }
    }

    #[test]
    fn a_file_that_imports_itself_is_invalid() {
        let selfish = one_file(
            prost_types::FileDescriptorProto {
                dependency: vec!["a.proto".into()],
                ..named("a.proto")
            },
            &[],
        );
        let err = Schema::from_bytes(&selfish).unwrap_err();
        assert_eq!(
            err.to_string(),
            "is not self-contained or not valid protobuf: \"a.proto\" imports itself"
        );
    }

    #[test]
    fn proto2_fields_may_share_a_default_json_name() {
        // What protoc writes: every field with its JSON name.
        let set = FileDescriptorSet {
            file: vec![prost_types::FileDescriptorProto {
                syntax: Some("proto2".into()),
                message_type: vec![prost_types::DescriptorProto {
                    name: Some("Owner".into()),
                    field: ["ownerId", "owner_id"]
                        .iter()
                        .zip(1..)
                        .map(|(name, number)| prost_types::FieldDescriptorProto {
                            name: Some((*name).into()),
                            number: Some(number),
                            label: Some(1),
                            r#type: Some(9),
                            json_name: Some("ownerId".into()),
                            ..Default::default()
                        })
                        .collect(),
                    ..Default::default()
                }],
                ..named("owner.proto")
            }],
        };
        let schema = Schema::from_bytes(&set.encode_to_vec()).expect("protoc accepts it");
        let report = flotilla_compat::check(
            &schema.descriptor_set(),
            &schema.descriptor_set(),
            flotilla_compat::Category::WireJson,
        )
        .expect("the check reads what publish accepted");
        assert!(report.violations.is_empty());
    }

    /// Mutations of a valid set, as a careless or hostile publisher would send them.
    fn mutated_set() -> impl Strategy<Value = Vec<u8>> {
        let base = crate::fixtures::greeter_schema_bytes(2);
        (
            proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
            proptest::option::of(prop_oneof![
                Just("proto4".to_owned()),
                Just("editions".to_owned()),
                Just(String::new()),
                "[a-z0-9]{0,8}",
            ]),
            proptest::option::of(any::<i32>()),
            any::<bool>(),
        )
            .prop_map(move |(flips, syntax, edition_value, self_import)| {
                let mut set = FileDescriptorSet::decode(base.as_slice()).unwrap();
                let last = set.file.len() - 1;
                if let Some(syntax) = syntax {
                    set.file[last].syntax = Some(syntax);
                }
                if self_import {
                    let name = set.file[last].name().to_owned();
                    set.file[last].dependency.push(name);
                }
                let mut encoded = Vec::new();
                for (i, file) in set.file.iter().enumerate() {
                    let mut bytes = file.encode_to_vec();
                    if i == last
                        && let Some(value) = edition_value
                    {
                        bytes.extend(edition(value));
                    }
                    wire::write_len_field(&mut encoded, SET_FILE, &bytes);
                }
                for (index, byte) in flips {
                    let at = index.index(encoded.len());
                    encoded[at] ^= byte;
                }
                encoded
            })
    }

    proptest! {
        /// One rule: whatever publish accepts, every comparison reads.
        #[test]
        fn what_a_schema_accepts_every_check_reads(bytes in mutated_set()) {
            if let Ok(schema) = Schema::from_bytes(&bytes) {
                let set = schema.descriptor_set();
                for category in flotilla_compat::Category::ALL {
                    prop_assert!(flotilla_compat::check(&set, &set, category).is_ok());
                    prop_assert!(
                        flotilla_compat::check_encoded(schema.bytes(), schema.bytes(), category).is_ok()
                    );
                }
                prop_assert!(flotilla_compat::policy::caller_compatibility(&set, &set).is_ok());
            }
        }

        #[test]
        fn arbitrary_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Schema::from_bytes(&bytes);
        }
    }
}
