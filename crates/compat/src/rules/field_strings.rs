//! Rules on how string fields are handled: C++ string type, Java and general UTF-8 validation.

use prost_reflect::Kind;

use super::features::{CppStringType, EDITION_2024, Syntax, Utf8Validation};
use super::field::Field;
use super::fields::field_changes;
use super::pairs::{Diff, Finding};
use super::schema::Schema;

fn is_string(field: &Field) -> bool {
    matches!(field.kind(), Kind::String)
}

/// The C++ string type and whether it is the legacy `STRING_PIECE`. The `ctype` option wins
/// before edition 2024; otherwise the `(pb.cpp).string_type` feature decides.
fn cpp_string_type(schema: &Schema, field: &Field) -> (CppStringType, bool) {
    let file = field.file();
    let editions = schema.syntax(&file) == Syntax::Editions;
    let before_2024 = !editions || schema.edition(&file) < EDITION_2024;
    let ctype = field.proto().options.as_ref().and_then(|o| o.ctype);
    if before_2024 {
        match ctype {
            Some(1) => return (CppStringType::Cord, false),
            Some(2) => return (CppStringType::String, true),
            Some(0) => return (CppStringType::String, false),
            Some(_) if !editions => return (CppStringType::String, false),
            _ => {}
        }
    }
    (schema.field_features(field).cpp_string_type, false)
}

fn cpp_name((kind, piece): (CppStringType, bool)) -> &'static str {
    if piece { "STRING_PIECE" } else { kind.as_str() }
}

/// FIELD_SAME_CPP_STRING_TYPE: string and bytes fields outside map entries; moving from
/// `STRING_PIECE` to `STRING` is allowed.
pub(crate) fn same_cpp_string_type(diff: &Diff<'_>) -> Vec<Finding> {
    let stringy = |f: &Field| matches!(f.kind(), Kind::String | Kind::Bytes);
    field_changes(diff, |previous, current| {
        if (previous.in_map_entry() && current.in_map_entry())
            || !stringy(previous)
            || !stringy(current)
        {
            return None;
        }
        let before = cpp_string_type(diff.previous, previous);
        let after = cpp_string_type(diff.current, current);
        let allowed = before.1 && after.0 == CppStringType::String;
        (before != after && !allowed).then(|| {
            format!(
                "{} changed C++ string type from {:?} to {:?}.",
                current.describe(),
                cpp_name(before),
                cpp_name(after)
            )
        })
    })
}

/// Java's UTF-8 checking: the `java_string_check_utf8` file option where set (and always
/// outside editions), else the `(pb.java).utf8_validation` feature; VERIFY either way, or the
/// field's general UTF-8 validation.
fn java_utf8_validation(schema: &Schema, field: &Field) -> Utf8Validation {
    let features = schema.field_features(field);
    let file = field.file();
    let option = file
        .file_descriptor_proto()
        .options
        .as_ref()
        .and_then(|o| o.java_string_check_utf8);
    let verify = if schema.syntax(&file) != Syntax::Editions || option.is_some() {
        option.unwrap_or(false)
    } else {
        features.java_utf8_verify
    };
    if verify {
        Utf8Validation::Verify
    } else {
        features.utf8_validation
    }
}

/// FIELD_SAME_JAVA_UTF8_VALIDATION: string fields only.
pub(crate) fn same_java_utf8_validation(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        if !is_string(previous) || !is_string(current) {
            return None;
        }
        let before = java_utf8_validation(diff.previous, previous);
        let after = java_utf8_validation(diff.current, current);
        (before != after).then(|| {
            format!(
                "{} changed Java string UTF8 validation from {:?} to {:?}.",
                current.describe(),
                before.as_str(),
                after.as_str()
            )
        })
    })
}

/// FIELD_SAME_UTF8_VALIDATION: string fields only.
pub(crate) fn same_utf8_validation(diff: &Diff<'_>) -> Vec<Finding> {
    field_changes(diff, |previous, current| {
        if !is_string(previous) || !is_string(current) {
            return None;
        }
        let before = diff.previous.field_features(previous).utf8_validation;
        let after = diff.current.field_features(current).utf8_validation;
        (before != after).then(|| {
            format!(
                "{} changed UTF8 validation from {} to {}.",
                current.describe(),
                before.as_str(),
                after.as_str()
            )
        })
    })
}

#[cfg(test)]
mod tests {
    use crate::Category;
    use crate::rules::testing::{check, messages_of};

    #[test]
    fn ctype_changes_break_generated_cpp() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; message M { optional string a = 1 [ctype = STRING_PIECE]; optional bytes b = 2; optional int32 c = 3; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; message M { optional string a = 1; optional bytes b = 2 [ctype = CORD]; optional int32 c = 3; }",
        )];
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::Package),
                "FIELD_SAME_CPP_STRING_TYPE"
            ),
            [
                "Field \"2\" with name \"b\" on message \"M\" changed C++ string type from \"STRING\" to \"CORD\"."
            ]
        );
        assert_eq!(
            messages_of(
                &check(&new, &old, Category::Package),
                "FIELD_SAME_CPP_STRING_TYPE"
            ),
            [
                "Field \"1\" with name \"a\" on message \"M\" changed C++ string type from \"STRING\" to \"STRING_PIECE\".",
                "Field \"2\" with name \"b\" on message \"M\" changed C++ string type from \"CORD\" to \"STRING\".",
            ]
        );
    }

    #[test]
    fn java_utf8_checking_follows_the_file_option() {
        let old = [(
            "a.proto",
            "syntax = \"proto2\"; message M { optional string a = 1; optional bytes b = 2; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; option java_string_check_utf8 = true; message M { optional string a = 1; optional bytes b = 2; }",
        )];
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::File),
                "FIELD_SAME_JAVA_UTF8_VALIDATION"
            ),
            [
                "Field \"1\" with name \"a\" on message \"M\" changed Java string UTF8 validation from \"NONE\" to \"VERIFY\"."
            ]
        );
        assert!(check(&old, &new, Category::WireJson).violations.is_empty());
    }

    #[test]
    fn utf8_validation_follows_the_syntax() {
        let old = [(
            "a.proto",
            "syntax = \"proto3\"; message M { string a = 1; }",
        )];
        let new = [(
            "a.proto",
            "syntax = \"proto2\"; message M { optional string a = 1; }",
        )];
        assert_eq!(
            messages_of(
                &check(&old, &new, Category::File),
                "FIELD_SAME_UTF8_VALIDATION"
            ),
            [
                "Field \"1\" with name \"a\" on message \"M\" changed UTF8 validation from VERIFY to NONE."
            ]
        );
    }
}
