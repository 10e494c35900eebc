//! Loading the two schemas a check compares. Each is either a directory of .proto files, compiled
//! with protox (no protoc needed) with the directory as the include path, or a file holding an
//! encoded `FileDescriptorSet`, as `buf build -o x.binpb` or `protoc --include_imports -o x.pb`
//! write it.

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
};

use miette::{Diagnostic, SourceCode};

mod json_names;
use prost::Message;
use prost_types::FileDescriptorSet;

/// Which input of the command a schema is, named as the usage line names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    New,
    Old,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::New => "NEW",
            Self::Old => "OLD",
        })
    }
}

/// Why an input could not be turned into a `FileDescriptorSet`. Every message starts with the
/// role and the path, so that a CI log says which side to fix.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("{role} {}: no such file or directory", path.display())]
    NotFound { role: Role, path: PathBuf },

    #[error("{role} {}: cannot read it", path.display())]
    Read {
        role: Role,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("{role} {}: the directory holds no .proto file", path.display())]
    NoProtoFiles { role: Role, path: PathBuf },

    #[error("{role} {}: the .proto files do not compile:\n{diagnostics}", path.display())]
    Compile {
        role: Role,
        path: PathBuf,
        /// protox's messages, one a line, each starting with `file:line:column:` when known.
        diagnostics: String,
    },

    #[error(
        "{role} {}: a single .proto file; pass the directory that is its include path instead",
        path.display()
    )]
    SingleProtoFile { role: Role, path: PathBuf },

    #[error(
        "{role} {}: not a binary FileDescriptorSet ({reason}); pass a directory of .proto files, \
         or a file made by `buf build -o x.binpb` or `protoc --include_imports -o x.pb`",
        path.display()
    )]
    NotADescriptorSet {
        role: Role,
        path: PathBuf,
        reason: String,
    },
}

/// Loads the schema at `path`: compiles it when it is a directory, decodes it otherwise.
pub fn load(path: &Path, role: Role) -> Result<FileDescriptorSet, InputError> {
    let metadata = fs::metadata(path).map_err(|source| match source.kind() {
        io::ErrorKind::NotFound => InputError::NotFound {
            role,
            path: path.to_owned(),
        },
        _ => InputError::Read {
            role,
            path: path.to_owned(),
            source,
        },
    })?;
    if metadata.is_dir() {
        compile_directory(path, role)
    } else {
        decode_file(path, role)
    }
}

/// Compiles every .proto file under `dir`, with `dir` as the only include path besides the
/// well-known types protox ships. Imports and source info are kept, as `buf build` keeps them:
/// the checker needs the imports to resolve types, and source info to say where a change is.
fn compile_directory(dir: &Path, role: Role) -> Result<FileDescriptorSet, InputError> {
    let names = proto_file_names(dir).map_err(|source| InputError::Read {
        role,
        path: dir.to_owned(),
        source,
    })?;
    if names.is_empty() {
        return Err(InputError::NoProtoFiles {
            role,
            path: dir.to_owned(),
        });
    }
    let compile_error = |error: protox::Error| InputError::Compile {
        role,
        path: dir.to_owned(),
        diagnostics: describe_compile_error(&error, dir),
    };
    let resolver = json_names::TolerantResolver::new(dir);
    let stand_ins = resolver.stand_ins();
    let mut set = protox::Compiler::with_file_resolver(resolver)
        .include_imports(true)
        .include_source_info(true)
        // Names relative to the include path, so protox finds each file as an import would.
        .open_files(&names)
        .map_err(compile_error)?
        .file_descriptor_set();
    json_names::restore(&mut set, &stand_ins);
    Ok(set)
}

/// The .proto files under `dir`, as names relative to it with `/` separators, sorted so that
/// protox reports the same first error on every machine. Symlinked directories are not entered,
/// which keeps a link cycle from looping.
fn proto_file_names(dir: &Path) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        for entry in fs::read_dir(dir.join(&relative))? {
            let entry = entry?;
            let file_type = entry.file_type()?;
            let child = relative.join(entry.file_name());
            if file_type.is_dir() {
                pending.push(child);
            } else if child.extension().is_some_and(|e| e == "proto")
                && fs::metadata(entry.path())?.is_file()
            {
                let name = child
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/");
                names.push(name);
            }
        }
    }
    names.sort();
    Ok(names)
}

/// protox's error as lines of `path:line:column: message`, the first for the error itself and
/// one for each related error a parse reports with it.
fn describe_compile_error(error: &protox::Error, dir: &Path) -> String {
    let file = error.file().map(|name| dir.join(name));
    let source = error.source_code();
    let mut lines = vec![describe_diagnostic(error, source, file.as_deref())];
    if let Some(related) = error.related() {
        lines.extend(related.map(|d| describe_diagnostic(d, source, file.as_deref())));
    }
    lines
        .into_iter()
        .map(|line| format!("  {line}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn describe_diagnostic(
    diagnostic: &dyn Diagnostic,
    parent_source: Option<&dyn SourceCode>,
    file: Option<&Path>,
) -> String {
    // Related diagnostics carry spans into their parent's source, not a source of their own.
    let source = diagnostic.source_code().or(parent_source);
    let position = diagnostic
        .labels()
        .and_then(|mut labels| labels.next())
        .and_then(|label| source?.read_span(label.inner(), 0, 0).ok())
        .map(|span| (span.line() + 1, span.column() + 1));
    let mut text = match (file, position) {
        (Some(file), Some((line, column))) => format!("{}:{line}:{column}: ", file.display()),
        (Some(file), None) => format!("{}: ", file.display()),
        (None, _) => String::new(),
    };
    text.push_str(&diagnostic.to_string());
    if let Some(help) = diagnostic.help() {
        text.push_str(&format!(" (help: {help})"));
    }
    text
}

/// Decodes an encoded `FileDescriptorSet`. Protobuf decoding skips fields it does not know, so
/// many byte strings decode to something; a set without files, or with a nameless file, is taken
/// as proof the bytes were never a descriptor set.
fn decode_file(path: &Path, role: Role) -> Result<FileDescriptorSet, InputError> {
    if path.extension().is_some_and(|e| e == "proto") {
        return Err(InputError::SingleProtoFile {
            role,
            path: path.to_owned(),
        });
    }
    let bytes = fs::read(path).map_err(|source| InputError::Read {
        role,
        path: path.to_owned(),
        source,
    })?;
    let not_a_set = |reason: String| InputError::NotADescriptorSet {
        role,
        path: path.to_owned(),
        reason,
    };
    let set = FileDescriptorSet::decode(bytes.as_slice()).map_err(|e| not_a_set(e.to_string()))?;
    if set.file.is_empty() {
        return Err(not_a_set("it holds no file descriptor".into()));
    }
    if let Some(index) = set.file.iter().position(|f| f.name().is_empty()) {
        return Err(not_a_set(format!("file descriptor #{index} has no name")));
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }

    const TYPES: &str =
        "syntax = \"proto3\";\npackage demo.v1;\nmessage Name { string value = 1; }\n";
    const GREETER: &str = "syntax = \"proto3\";\npackage demo.v1;\n\
        import \"demo/v1/types.proto\";\nimport \"google/protobuf/timestamp.proto\";\n\
        message Hello { Name name = 1; google.protobuf.Timestamp at = 2; }\n\
        service Greeter { rpc Greet(Hello) returns (Hello); }\n";

    #[test]
    fn compiles_every_proto_file_under_the_directory_with_imports_and_source_info() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "demo/v1/types.proto", TYPES);
        write(dir.path(), "demo/v1/greeter.proto", GREETER);
        write(dir.path(), "demo/v1/README.md", "not a proto file");

        let set = load(dir.path(), Role::New).unwrap();
        let mut names: Vec<_> = set.file.iter().map(|f| f.name()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "demo/v1/greeter.proto",
                "demo/v1/types.proto",
                "google/protobuf/timestamp.proto"
            ]
        );
        // protox's built-in well-known types come without source info; the directory's have it.
        let ours = set.file.iter().filter(|f| f.name().starts_with("demo/"));
        assert!(
            ours.clone().count() == 2 && ours.into_iter().all(|f| f.source_code_info.is_some())
        );
    }

    #[test]
    fn decodes_an_encoded_descriptor_set() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "src/demo/v1/types.proto", TYPES);
        let compiled = load(&dir.path().join("src"), Role::Old).unwrap();
        let file = dir.path().join("old.binpb");
        fs::write(&file, compiled.encode_to_vec()).unwrap();

        assert_eq!(load(&file, Role::Old).unwrap(), compiled);
    }

    #[test]
    fn a_missing_path_names_the_role() {
        let error = load(Path::new("/nonexistent/flotilla"), Role::Old).unwrap_err();
        assert!(matches!(
            error,
            InputError::NotFound {
                role: Role::Old,
                ..
            }
        ));
        assert_eq!(
            error.to_string(),
            "OLD /nonexistent/flotilla: no such file or directory"
        );
    }

    #[test]
    fn a_directory_without_proto_files_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "notes.txt", "hello");
        let error = load(dir.path(), Role::New).unwrap_err();
        assert!(matches!(
            error,
            InputError::NoProtoFiles {
                role: Role::New,
                ..
            }
        ));
    }

    #[test]
    fn a_syntax_error_gives_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "demo/v1/bad.proto",
            "syntax = \"proto3\";\npackage demo.v1;\nmessage Bad {\n  string name = 1\n  int32 id = 2;\n}\n",
        );
        let error = load(dir.path(), Role::New).unwrap_err();
        let InputError::Compile { diagnostics, .. } = &error else {
            panic!("{error:?}");
        };
        let expected = format!("{}:5:3: ", dir.path().join("demo/v1/bad.proto").display());
        assert!(diagnostics.contains(&expected), "{diagnostics}");
    }

    #[test]
    fn an_unknown_type_gives_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "demo/v1/bad.proto",
            "syntax = \"proto3\";\npackage demo.v1;\nmessage Bad {\n  Missing thing = 1;\n}\n",
        );
        let error = load(dir.path(), Role::Old).unwrap_err();
        let InputError::Compile { diagnostics, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(diagnostics.contains("bad.proto:4:"), "{diagnostics}");
        assert!(diagnostics.contains("Missing"), "{diagnostics}");
    }

    #[test]
    fn bytes_that_are_not_a_descriptor_set_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in [
            ("empty.binpb", &b""[..]),
            ("garbage.binpb", &[0xff, 0xff, 0xff, 0xff, 0x0f][..]),
            ("text.pb", &b"hello, this is text"[..]),
        ] {
            let file = dir.path().join(name);
            fs::write(&file, bytes).unwrap();
            let error = load(&file, Role::Old).unwrap_err();
            assert!(
                matches!(
                    error,
                    InputError::NotADescriptorSet {
                        role: Role::Old,
                        ..
                    }
                ),
                "{name}: {error:?}"
            );
        }
    }

    #[test]
    fn proto2_fields_may_share_a_default_json_name_as_protoc_allows() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "demo/owner.proto",
            "syntax = \"proto2\";\npackage demo;\n\
             message Owner { optional string ownerId = 1; optional string owner_id = 2;\n\
               message Nested { optional int32 a_b = 1; optional int32 aB = 2; } }\n",
        );
        let set = load(dir.path(), Role::New).unwrap();
        let owner = &set.file[0].message_type[0];
        let json: Vec<_> = owner.field.iter().map(|f| f.json_name()).collect();
        assert_eq!(json, ["ownerId", "ownerId"], "protoc's JSON names");
        let nested: Vec<_> = owner.nested_type[0]
            .field
            .iter()
            .map(|f| f.json_name())
            .collect();
        assert_eq!(nested, ["aB", "aB"]);
        // The set is a valid schema by the registry's rule too.
        assert!(flotilla_compat::validate_encoded(&set.encode_to_vec()).is_ok());
    }

    #[test]
    fn proto3_fields_may_not_share_a_json_name_and_the_error_names_it() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "demo/owner.proto",
            "syntax = \"proto3\";\npackage demo;\nmessage Owner { string ownerId = 1; string owner_id = 2; }\n",
        );
        let error = load(dir.path(), Role::New).unwrap_err();
        let InputError::Compile { diagnostics, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(diagnostics.contains("owner.proto"), "{diagnostics}");
        assert!(diagnostics.contains("'ownerId'"), "{diagnostics}");
    }

    #[test]
    fn a_single_proto_file_gets_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "types.proto", TYPES);
        let error = load(&dir.path().join("types.proto"), Role::New).unwrap_err();
        assert!(error.to_string().contains("include path"), "{error}");
    }
}
