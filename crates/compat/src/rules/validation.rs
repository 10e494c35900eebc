//! What a valid schema is: the one rule the registry applies on publish, the compatibility check
//! applies to both sides, and `flotilla compat check` applies to what it compiled.
//!
//! A valid schema decodes as a `FileDescriptorSet`; every file has a name and a syntax protoc
//! knows (proto2, proto3, or editions with a supported edition); every import is in the set and
//! no file imports itself, directly or through others; and every reference resolves
//! (prost-reflect builds a pool of it).
//!
//! prost-reflect 0.16 is reached only through [`validated_pool`], with the guards it needs: it
//! does not know editions, panics while reporting an unknown syntax, recurses without end on a
//! cycle of public imports, and refuses two fields with the same default JSON name even where
//! protoc allows them (proto2, and editions with `json_format = LEGACY_BEST_EFFORT`). Inputs it
//! would choke on are refused here first, and a panic it raises anyway is an error, not a crash.

use std::collections::HashMap;

use prost_reflect::DescriptorPool;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};

use super::features::{EDITION_2023, EDITION_2024, FeatureTable};

/// `FeatureSet.JsonFormat.LEGACY_BEST_EFFORT`.
const JSON_FORMAT_LEGACY_BEST_EFFORT: i32 = 2;

/// A validated pool, and what the pool's copy of the descriptors changed to get past
/// prost-reflect: the real JSON name of each field given a stand-in (by full name).
#[derive(Debug)]
pub(crate) struct Validated {
    pub pool: DescriptorPool,
    pub json_names: HashMap<String, String>,
}

/// The descriptor pool of `set`, or why `set` is not a valid, self-contained schema.
/// `features` holds what was read from the encoding (editions, explicit features); when the set
/// did not come from bytes it is empty, and what only the encoding can tell is not checked.
pub(crate) fn validated_pool(
    set: &FileDescriptorSet,
    features: &FeatureTable,
) -> Result<Validated, String> {
    let mut copy = set.clone();
    for file in &mut copy.file {
        check_file_header(file, features)?;
        check_default_values(file)?;
    }
    refuse_import_cycles(&copy)?;
    let mut json_names = HashMap::new();
    for file in &mut copy.file {
        give_stand_in_json_names(file, features, &mut json_names);
    }
    let pool = build_pool(copy)?;
    Ok(Validated { pool, json_names })
}

/// The name, syntax and edition of one file; rewrites the copy's syntax to one prost-reflect
/// knows: editions files and files whose syntax is the empty string (proto2 for protoc and buf)
/// are declared proto2. Any other syntax is refused, because prost-reflect panics reporting one.
fn check_file_header(
    file: &mut FileDescriptorProto,
    features: &FeatureTable,
) -> Result<(), String> {
    if file.name().is_empty() {
        return Err("a file has no name".to_owned());
    }
    let name = crate::quote(file.name());
    match file.syntax.as_deref() {
        None | Some("proto2" | "proto3") => {}
        Some("") => file.syntax = Some("proto2".to_owned()),
        Some("editions") => {
            if let Some(&edition) = features.editions.get(file.name())
                && !SUPPORTED_EDITIONS.contains(&edition)
            {
                return Err(format!(
                    "{name} declares edition {edition}; the supported editions are 2023 ({EDITION_2023}) \
                     and 2024 ({EDITION_2024})"
                ));
            }
            file.syntax = Some("proto2".to_owned());
        }
        Some(other) => {
            return Err(format!(
                "{name} has an unknown syntax {}; use \"proto2\", \"proto3\" or \"editions\"",
                crate::quote(other)
            ));
        }
    }
    Ok(())
}

/// Refuses a bytes field whose default value has an octal escape above `\377`, which protoc
/// never writes and prost-reflect 0.16 overflows on while unescaping.
fn check_default_values(file: &FileDescriptorProto) -> Result<(), String> {
    let bytes_fields = file.extension.iter().chain(
        all_messages(&file.message_type)
            .into_iter()
            .flat_map(|m| m.field.iter().chain(&m.extension)),
    );
    for field in bytes_fields {
        let is_bytes =
            field.r#type == Some(prost_types::field_descriptor_proto::Type::Bytes as i32);
        if let (true, Some(default)) = (is_bytes, field.default_value.as_deref())
            && has_octal_escape_above_255(default)
        {
            return Err(format!(
                "field {} of {} has a default value with an octal escape above \\377",
                crate::quote(field.name()),
                crate::quote(file.name())
            ));
        }
    }
    Ok(())
}

/// Every message of a file, nested ones included.
fn all_messages(top: &[DescriptorProto]) -> Vec<&DescriptorProto> {
    let mut all = Vec::new();
    let mut pending: Vec<&DescriptorProto> = top.iter().collect();
    while let Some(message) = pending.pop() {
        pending.extend(&message.nested_type);
        all.push(message);
    }
    all
}

/// Whether a C-escaped string holds `\ooo` with a value above 255.
fn has_octal_escape_above_255(escaped: &str) -> bool {
    let bytes = escaped.as_bytes();
    let mut at = 0;
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        at += 1;
        let digits = bytes[at..]
            .iter()
            .take(3)
            .take_while(|b| (b'0'..=b'7').contains(b))
            .fold(0u32, |value, b| value * 8 + u32::from(b - b'0'));
        if digits > 255 {
            return true;
        }
        at += 1; // the escaped character, or the first digit
    }
    false
}

/// The editions protoc and buf compile today.
const SUPPORTED_EDITIONS: [i32; 2] = [EDITION_2023, EDITION_2024];

/// Refuses a set whose files import one another in a cycle, a file importing itself included
/// (protoc refuses those too).
fn refuse_import_cycles(set: &FileDescriptorSet) -> Result<(), String> {
    let imports: HashMap<&str, Vec<&str>> = set
        .file
        .iter()
        .map(|f| (f.name(), f.dependency.iter().map(String::as_str).collect()))
        .collect();
    // Iterative depth-first search, so that a long import chain cannot overflow the stack.
    let mut done: HashMap<&str, bool> = HashMap::new(); // false: on the current path
    let mut starts: Vec<&str> = imports.keys().copied().collect();
    starts.sort_unstable(); // the same cycle is reported on every run
    for start in starts {
        if done.contains_key(start) {
            continue;
        }
        let mut stack = vec![(start, 0usize)];
        done.insert(start, false);
        while let Some((file, next)) = stack.pop() {
            let deps = imports.get(file).map(Vec::as_slice).unwrap_or_default();
            let Some(dep) = deps.get(next) else {
                done.insert(file, true);
                continue;
            };
            stack.push((file, next + 1));
            match done.get(dep) {
                Some(false) if *dep == file => {
                    return Err(format!("{} imports itself", crate::quote(file)));
                }
                Some(false) => {
                    return Err(format!(
                        "{} imports {}, which imports it back",
                        crate::quote(file),
                        crate::quote(dep)
                    ));
                }
                Some(true) => {}
                None => {
                    done.insert(dep, false);
                    stack.push((dep, 0));
                }
            }
        }
    }
    Ok(())
}

/// The JSON name protoc gives a field that sets none: lowerCamelCase of its name.
pub fn default_json_name(field_name: &str) -> String {
    let mut name = String::with_capacity(field_name.len());
    let mut upper_next = false;
    for c in field_name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            name.push(c.to_ascii_uppercase());
            upper_next = false;
        } else {
            name.push(c);
        }
    }
    name
}

/// The fields of `message` (indexes into `message.field`) whose default JSON name is already
/// the default JSON name of an earlier field: the collisions protoc accepts where JSON names
/// need not be unique. A field with a JSON name of its own is never one of them.
pub fn default_json_name_collisions(message: &DescriptorProto) -> Vec<usize> {
    let mut seen: HashMap<String, bool> = HashMap::new(); // JSON name → is a default name
    let mut collisions = Vec::new();
    for (index, field) in message.field.iter().enumerate() {
        let default = default_json_name(field.name());
        let is_default = field.json_name.as_deref().is_none_or(|n| n == default);
        let json = field.json_name.clone().unwrap_or(default);
        match seen.get(&json) {
            Some(true) if is_default => collisions.push(index),
            Some(_) => {}
            None => {
                seen.insert(json, is_default);
            }
        }
    }
    collisions
}

/// In the pool's copy, gives each field whose default JSON name collides where protoc allows it
/// a stand-in prost-reflect accepts, and records its real name. The stand-in starts with a NUL,
/// which no name protoc writes holds.
fn give_stand_in_json_names(
    file: &mut FileDescriptorProto,
    features: &FeatureTable,
    real: &mut HashMap<String, String>,
) {
    let file_name = file.name().to_owned();
    // An editions file read without its encoding is taken as lenient: the check may be laxer
    // than validation at publish, never stricter.
    let editions = features.editions.contains_key(&file_name);
    let lenient_by_syntax = match file.syntax.as_deref() {
        // The copy's syntax: editions files were rewritten to proto2 above.
        Some("proto3") => false,
        _ => !editions,
    };
    let file_legacy = features.file(&file_name).json_format == Some(JSON_FORMAT_LEGACY_BEST_EFFORT);
    let scope = file.package().to_owned();
    for message in &mut file.message_type {
        stand_ins_in_message(
            message,
            &scope,
            lenient_by_syntax,
            editions.then_some(file_legacy),
            features,
            real,
        );
    }
}

/// `editions_legacy`: for an editions file, whether the enclosing scope's `json_format` is
/// LEGACY_BEST_EFFORT; `None` outside editions.
fn stand_ins_in_message(
    message: &mut DescriptorProto,
    scope: &str,
    lenient_by_syntax: bool,
    editions_legacy: Option<bool>,
    features: &FeatureTable,
    real: &mut HashMap<String, String>,
) {
    let full_name = if scope.is_empty() {
        message.name().to_owned()
    } else {
        format!("{scope}.{}", message.name())
    };
    let editions_legacy =
        editions_legacy.map(|inherited| match features.element(&full_name).json_format {
            Some(format) => format == JSON_FORMAT_LEGACY_BEST_EFFORT,
            None => inherited,
        });
    if lenient_by_syntax || editions_legacy == Some(true) {
        for index in default_json_name_collisions(message) {
            let field = &mut message.field[index];
            real.insert(
                format!("{full_name}.{}", field.name()),
                default_json_name(field.name()),
            );
            field.json_name = Some(format!("\u{0}{index}"));
        }
    }
    for nested in &mut message.nested_type {
        stand_ins_in_message(
            nested,
            &full_name,
            lenient_by_syntax,
            editions_legacy,
            features,
            real,
        );
    }
}

/// Builds the pool, turning a panic inside prost-reflect into an error: validation promises
/// `Ok` or `Err` for any decoded input, whatever the library does with odd descriptors.
fn build_pool(set: FileDescriptorSet) -> Result<DescriptorPool, String> {
    let built = std::panic::catch_unwind(|| DescriptorPool::from_file_descriptor_set(set));
    match built {
        Ok(pool) => pool.map_err(|e| crate::bounded(&e.to_string())),
        Err(_) => Err("the descriptors could not be validated".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use prost_types::FieldDescriptorProto;

    use super::*;

    fn file(name: &str, imports: &[&str], public: bool) -> FileDescriptorProto {
        FileDescriptorProto {
            name: Some(name.into()),
            dependency: imports.iter().map(|i| (*i).to_owned()).collect(),
            public_dependency: if public { vec![0] } else { vec![] },
            ..Default::default()
        }
    }

    fn validate(set: &FileDescriptorSet) -> Result<Validated, String> {
        validated_pool(set, &FeatureTable::default())
    }

    #[test]
    fn a_cycle_of_public_imports_is_refused() {
        let set = FileDescriptorSet {
            file: vec![
                file("a.proto", &["b.proto"], true),
                file("b.proto", &["c.proto"], true),
                file("c.proto", &["a.proto"], true),
            ],
        };
        assert!(validate(&set).is_err_and(|e| e.contains("imports it back")));
    }

    #[test]
    fn a_file_importing_itself_is_refused() {
        let set = FileDescriptorSet {
            file: vec![file("a.proto", &["a.proto"], false)],
        };
        assert_eq!(validate(&set).unwrap_err(), "\"a.proto\" imports itself");
    }

    #[test]
    fn shared_imports_are_no_cycle() {
        let set = FileDescriptorSet {
            file: vec![
                file("c.proto", &[], false),
                file("b.proto", &["c.proto"], false),
                file("a.proto", &["b.proto", "c.proto"], false),
            ],
        };
        assert!(validate(&set).is_ok());
    }

    #[test]
    fn unknown_syntaxes_are_refused_and_empty_is_proto2() {
        let with_syntax = |syntax: &str| FileDescriptorSet {
            file: vec![FileDescriptorProto {
                syntax: Some(syntax.into()),
                ..file("a.proto", &[], false)
            }],
        };
        assert!(validate(&with_syntax("proto4")).is_err_and(|e| e.contains("\"proto4\"")));
        assert!(validate(&with_syntax("")).is_ok());
        assert!(validate(&with_syntax("editions")).is_ok());
    }

    #[test]
    fn only_the_supported_editions_are_valid() {
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto {
                syntax: Some("editions".into()),
                ..file("a.proto", &[], false)
            }],
        };
        let with_edition = |edition: i32| {
            let mut features = FeatureTable::default();
            features.editions.insert("a.proto".into(), edition);
            validated_pool(&set, &features)
        };
        assert!(with_edition(EDITION_2023).is_ok());
        assert!(with_edition(EDITION_2024).is_ok());
        for bad in [0, 998, 999, 1002, 99_997, i32::MAX, -1] {
            assert!(
                with_edition(bad).is_err_and(|e| e.contains("supported editions")),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_bytes_default_with_an_octal_escape_above_377_is_refused() {
        // What the fuzzer found: prost-reflect overflows unescaping "\\577".
        let with_default = |default: &str| FileDescriptorSet {
            file: vec![FileDescriptorProto {
                message_type: vec![DescriptorProto {
                    name: Some("M".into()),
                    nested_type: vec![DescriptorProto {
                        name: Some("N".into()),
                        field: vec![FieldDescriptorProto {
                            r#type: Some(12),
                            default_value: Some(default.into()),
                            ..field("b", 1, None)
                        }],
                        ..Default::default()
                    }],
                    ..Default::default()
                }],
                ..file("a.proto", &[], false)
            }],
        };
        assert!(validate(&with_default("\\001\\577")).is_err_and(|e| e.contains("octal")));
        assert!(
            validate(&with_default("\\001\\377\\\\577")).is_ok(),
            "an escaped backslash"
        );
        assert!(validate(&with_default("\\x7f\\0")).is_ok());
    }

    #[test]
    fn a_nameless_file_is_refused() {
        let set = FileDescriptorSet {
            file: vec![FileDescriptorProto::default()],
        };
        assert!(validate(&set).is_err_and(|e| e.contains("no name")));
    }

    fn field(name: &str, number: i32, json_name: Option<&str>) -> FieldDescriptorProto {
        FieldDescriptorProto {
            name: Some(name.into()),
            number: Some(number),
            label: Some(1),
            r#type: Some(9),
            json_name: json_name.map(str::to_owned),
            ..Default::default()
        }
    }

    fn one_message(syntax: &str, fields: Vec<FieldDescriptorProto>) -> FileDescriptorSet {
        FileDescriptorSet {
            file: vec![FileDescriptorProto {
                syntax: Some(syntax.into()),
                package: Some("demo".into()),
                message_type: vec![DescriptorProto {
                    name: Some("Owner".into()),
                    field: fields,
                    ..Default::default()
                }],
                ..file("a.proto", &[], false)
            }],
        }
    }

    #[test]
    fn proto2_allows_colliding_default_json_names_and_proto3_does_not() {
        // As protoc writes them: every field carries its JSON name.
        let fields = || {
            vec![
                field("ownerId", 1, Some("ownerId")),
                field("owner_id", 2, Some("ownerId")),
            ]
        };
        let proto2 = validate(&one_message("proto2", fields())).expect("protoc accepts it");
        assert_eq!(
            proto2
                .json_names
                .get("demo.Owner.owner_id")
                .map(String::as_str),
            Some("ownerId")
        );
        assert!(validate(&one_message("proto3", fields())).is_err());
        // A JSON name of its own that collides is refused in proto2 too, as protoc does.
        let custom = vec![field("a", 1, Some("same")), field("b", 2, Some("same"))];
        assert!(validate(&one_message("proto2", custom)).is_err());
    }

    #[test]
    fn editions_allow_colliding_json_names_only_under_legacy_best_effort() {
        let set = one_message(
            "editions",
            vec![field("ownerId", 1, None), field("owner_id", 2, None)],
        );
        let mut features = FeatureTable::default();
        features.editions.insert("a.proto".into(), EDITION_2023);
        assert!(validated_pool(&set, &features).is_err(), "ALLOW by default");
        features.files.insert(
            "a.proto".into(),
            super::super::features::ExplicitFeatures {
                json_format: Some(JSON_FORMAT_LEGACY_BEST_EFFORT),
                ..Default::default()
            },
        );
        assert!(validated_pool(&set, &features).is_ok());
    }

    #[test]
    fn default_json_names_are_lower_camel_case() {
        assert_eq!(default_json_name("owner_id"), "ownerId");
        assert_eq!(default_json_name("a__b_"), "aB");
        assert_eq!(default_json_name("URL"), "URL");
    }
}
