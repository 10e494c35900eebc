//! Verdicts on the greeter fixtures: exit 0 when compatible, 1 when breaking, the text and JSON
//! reports, and the same answers from directories and from encoded descriptor sets.
//!
//! The expected rule ids are the ones `buf breaking` 1.75 reports for the same fixtures (with
//! `breaking: use: [CATEGORY]`), since flotilla-compat implements buf's rules.
//!
//! These need the rule engine's verdicts: until it lands, `flotilla_compat::check` refuses every
//! comparison and these tests fail with exit status 2.

mod common;

use std::collections::BTreeSet;

use common::{check, compile_to_binpb, str};

const COMPATIBLE: i32 = 0;
const BREAKING: i32 = 1;

/// What `buf breaking v2-breaking --against v1` reports under WIRE_JSON.
const BREAKING_UNDER_WIRE_JSON: &[&str] = &[
    "ENUM_VALUE_NO_DELETE_UNLESS_NAME_RESERVED",
    "ENUM_VALUE_NO_DELETE_UNLESS_NUMBER_RESERVED",
    "FIELD_NO_DELETE_UNLESS_NAME_RESERVED",
    "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED",
    "FIELD_WIRE_JSON_COMPATIBLE_TYPE",
];

fn rules(json: &serde_json::Value) -> BTreeSet<String> {
    json["violations"]
        .as_array()
        .expect("violations is an array")
        .iter()
        .map(|v| v["rule"].as_str().expect("rule is a string").to_owned())
        .collect()
}

fn set(rules: &[&str]) -> BTreeSet<String> {
    rules.iter().map(|r| r.to_string()).collect()
}

#[test]
fn a_schema_is_compatible_with_itself() {
    let run = check("v1", "v1", &[]);
    assert_eq!(run.code, COMPATIBLE, "{run:?}");
    assert_eq!(
        run.stdout,
        "✓ compatible (WIRE_JSON): no breaking changes in v1 against v1; no additions\n"
    );
}

#[test]
fn additions_are_compatible_and_listed() {
    let run = check("v2-additive", "v1", &[]);
    assert_eq!(run.code, COMPATIBLE, "{run:?}");
    assert!(
        run.stdout.starts_with(
            "✓ compatible (WIRE_JSON): no breaking changes in v2-additive against v1; "
        ),
        "{run:?}"
    );
    for added in [
        "greet.v1.HelloRequest.repeat",
        "greet.v1.Mood.MOOD_SLEEPY",
        "greet.v1.Greeter.SayGoodbye",
        "greet.v1.GoodbyeRequest",
    ] {
        assert!(
            run.stdout.contains(&format!("  + {added}\n")),
            "{added}: {run:?}"
        );
    }
}

#[test]
fn breaking_changes_exit_1_and_the_text_names_each_rule() {
    let run = check("v2-breaking", "v1", &[]);
    assert_eq!(run.code, BREAKING, "{run:?}");
    let mut lines = run.stdout.lines();
    let heading = lines.next().unwrap_or_default();
    assert!(
        heading.starts_with("✗ ")
            && heading.ends_with(" breaking changes (WIRE_JSON) in v2-breaking against v1:"),
        "{run:?}"
    );
    for rule in BREAKING_UNDER_WIRE_JSON {
        assert!(
            run.stdout.contains(&format!("  {rule} ")),
            "{rule}: {run:?}"
        );
    }
    assert!(
        run.stdout
            .contains("greet/v1/greeter.proto:greet.v1.HelloRequest"),
        "{run:?}"
    );
    assert!(!run.stdout.contains('\x1b'), "no colour into a pipe");
    assert_eq!(run.stderr, "");
}

#[test]
fn breaking_changes_in_json() {
    let run = check("v2-breaking", "v1", &["--format", "json"]);
    assert_eq!(run.code, BREAKING, "{run:?}");
    let json = run.json();
    assert_eq!(json["compatible"], false);
    assert_eq!(json["category"], "WIRE_JSON");
    assert!(json["additions"].is_array(), "{json}");
    assert_eq!(rules(&json), set(BREAKING_UNDER_WIRE_JSON));

    for violation in json["violations"].as_array().unwrap() {
        assert_eq!(violation["category"], "WIRE_JSON", "{violation}");
        let categories = violation["categories"].as_array().unwrap();
        assert!(categories.contains(&"WIRE_JSON".into()), "{violation}");
        assert!(violation["location"]["file"].is_string(), "{violation}");
        assert!(violation["location"]["element"].is_string(), "{violation}");
        assert!(!violation["message"].as_str().unwrap().is_empty());
    }
    let deleted_field = json["violations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["rule"] == "FIELD_NO_DELETE_UNLESS_NUMBER_RESERVED")
        .unwrap();
    assert_eq!(
        deleted_field["location"]["file"], "greet/v1/greeter.proto",
        "{deleted_field}"
    );
    assert!(
        deleted_field["location"]["element"]
            .as_str()
            .unwrap()
            .starts_with("greet.v1.HelloRequest"),
        "{deleted_field}"
    );
    assert_eq!(deleted_field["location"]["number"], 2, "{deleted_field}");
}

#[test]
fn compatible_in_json() {
    let run = check("v2-additive", "v1", &["--format", "json"]);
    assert_eq!(run.code, COMPATIBLE, "{run:?}");
    let json = run.json();
    assert_eq!(json["compatible"], true);
    assert_eq!(json["violations"], serde_json::json!([]));
    assert!(
        json["additions"]
            .as_array()
            .unwrap()
            .contains(&"greet.v1.Greeter.SayGoodbye".into()),
        "{json}"
    );
}

#[test]
fn encoded_descriptor_sets_give_the_same_answer_as_directories() {
    let dir = tempfile::tempdir().unwrap();
    let old = compile_to_binpb("v1", dir.path(), true);
    let new = compile_to_binpb("v2-breaking", dir.path(), true);

    let from_directories = check("v2-breaking", "v1", &["--format", "json"]);
    let from_binpb = check(str(&new), str(&old), &["--format", "json"]);
    let mixed = check("v2-breaking", str(&old), &["--format", "json"]);
    assert_eq!(from_binpb.code, BREAKING, "{from_binpb:?}");
    assert_eq!(from_binpb.json(), from_directories.json());
    assert_eq!(mixed.code, BREAKING, "{mixed:?}");
    assert_eq!(mixed.json(), from_directories.json());
}

#[test]
fn the_category_decides_what_breaks() {
    // A renamed field keeps its number and type: the binary encoding does not change, JSON does.
    let wire = check(
        "v2-renamed",
        "v1",
        &["--category", "wire", "--format", "json"],
    );
    assert_eq!(wire.code, COMPATIBLE, "{wire:?}");
    assert_eq!(wire.json()["category"], "WIRE");

    let wire_json = check("v2-renamed", "v1", &["--format", "json"]);
    assert_eq!(wire_json.code, BREAKING, "{wire_json:?}");
    assert_eq!(
        rules(&wire_json.json()),
        set(&["FIELD_SAME_JSON_NAME", "FIELD_SAME_NAME"])
    );

    let file = check(
        "v2-breaking",
        "v1",
        &["--category", "File", "--format", "json"],
    );
    assert_eq!(file.code, BREAKING, "{file:?}");
    assert_eq!(
        rules(&file.json()),
        set(&["ENUM_VALUE_NO_DELETE", "FIELD_NO_DELETE", "FIELD_SAME_TYPE"])
    );
}

#[test]
fn a_descriptor_set_missing_its_imports_is_refused_naming_old() {
    // Without its imports the set refers to google/protobuf/timestamp.proto, which it lacks:
    // it decodes, but it is not a self-contained schema.
    let dir = tempfile::tempdir().unwrap();
    let old = compile_to_binpb("v1", dir.path(), false);

    let run = check("v1", str(&old), &[]);
    assert_eq!(run.code, 2, "{run:?}");
    assert!(run.stderr.contains("OLD "), "{run:?}");
    assert!(!run.stderr.contains("NEW "), "{run:?}");
}
