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
    #[error("holds two different files named {0:?}")]
    ConflictingFile(String),
    #[error("is not self-contained or not valid protobuf: {0}")]
    Invalid(String),
}

/// A FileDescriptorSet that decodes, whose imports are all inside it and whose references all
/// resolve. It is kept in a canonical encoding (files in name order, duplicates dropped, each
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
        prost_reflect::DescriptorPool::decode(canonical.as_slice())
            .map_err(|e| SchemaError::Invalid(e.to_string()))?;
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

    proptest! {
        #[test]
        fn arbitrary_bytes_are_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Schema::from_bytes(&bytes);
        }
    }
}
