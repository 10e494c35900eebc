//! Inputs that cannot be compared, and command lines that are wrong: exit status 2, nothing on
//! stdout, and a message on stderr that names the input at fault. None of these reach the rule
//! engine, so they hold whatever its verdicts are.

mod common;

use common::{check, compile_to_binpb, flotilla, str};

const BAD_INPUT: i32 = 2;

#[test]
fn a_missing_new_path_is_named() {
    let run = check("v9-nonexistent", "v1", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(
        run.stderr
            .contains("NEW v9-nonexistent: no such file or directory"),
        "{run:?}"
    );
    assert_eq!(run.stdout, "");
}

#[test]
fn a_missing_old_path_is_named() {
    let run = check("v1", "v0-nonexistent", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(
        run.stderr
            .contains("OLD v0-nonexistent: no such file or directory"),
        "{run:?}"
    );
}

#[test]
fn garbage_bytes_are_not_a_descriptor_set() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("old.binpb");
    std::fs::write(&garbage, [0xff, 0xff, 0xff, 0xff, 0xff, 0x0f]).unwrap();

    let run = check("v1", str(&garbage), &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(run.stderr.contains("OLD "), "{run:?}");
    assert!(
        run.stderr.contains("not a binary FileDescriptorSet"),
        "{run:?}"
    );
}

#[test]
fn text_that_happens_to_decode_is_still_not_a_descriptor_set() {
    // Protobuf skips unknown fields, so some text decodes; it holds no named file, though.
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("new.pb");
    std::fs::write(&text, "hello").unwrap();

    let run = check(str(&text), "v1", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(
        run.stderr.contains("NEW ") && run.stderr.contains("not a binary FileDescriptorSet"),
        "{run:?}"
    );
}

#[test]
fn errors_in_json_mode_stay_on_stderr() {
    let run = check("v9-nonexistent", "v1", &["--format", "json"]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert_eq!(run.stdout, "", "stdout must stay clean for a JSON reader");
    assert!(run.stderr.contains("NEW v9-nonexistent"), "{run:?}");
}

#[test]
fn a_syntax_error_gives_protox_message_with_file_and_line() {
    let run = check("broken-syntax", "v1", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(
        run.stderr
            .contains("NEW broken-syntax: the .proto files do not compile"),
        "{run:?}"
    );
    // Line 7 is the line after the missing semicolon, where protox finds the next token.
    assert!(
        run.stderr
            .contains("broken-syntax/greet/v1/greeter.proto:7:3: expected"),
        "{run:?}"
    );
}

#[test]
fn a_syntax_error_in_old_names_old() {
    let run = check("v1", "broken-syntax", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(run.stderr.contains("OLD broken-syntax"), "{run:?}");
    assert!(!run.stderr.contains("NEW"), "{run:?}");
}

#[test]
fn a_directory_without_proto_files_is_refused() {
    let run = check("no-protos", "v1", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(
        run.stderr
            .contains("NEW no-protos: the directory holds no .proto file"),
        "{run:?}"
    );
}

#[test]
fn a_single_proto_file_is_refused_with_a_hint() {
    let run = check("v1/greet/v1/greeter.proto", "v1", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(run.stderr.contains("include path"), "{run:?}");
}

#[test]
fn a_valid_binpb_loads_so_the_error_is_about_the_other_input() {
    let dir = tempfile::tempdir().unwrap();
    let new = compile_to_binpb("v2-additive", dir.path(), true);

    let run = check(str(&new), "v0-nonexistent", &[]);
    assert_eq!(run.code, BAD_INPUT, "{run:?}");
    assert!(run.stderr.contains("OLD v0-nonexistent"), "{run:?}");
    assert!(!run.stderr.contains("NEW"), "{run:?}");
}

#[test]
fn usage_errors_exit_2() {
    let missing_against = flotilla(&["compat", "check", "v1"]);
    assert_eq!(missing_against.code, 2, "{missing_against:?}");
    assert!(
        missing_against.stderr.contains("--against"),
        "{missing_against:?}"
    );

    let unknown_category = check("v1", "v1", &["--category", "CSR"]);
    assert_eq!(unknown_category.code, 2, "{unknown_category:?}");
    assert!(
        unknown_category.stderr.contains("invalid value 'CSR'")
            && unknown_category.stderr.contains("WIRE_JSON"),
        "{unknown_category:?}"
    );

    let unknown_format = check("v1", "v1", &["--format", "xml"]);
    assert_eq!(unknown_format.code, 2, "{unknown_format:?}");

    let no_command = flotilla(&[]);
    assert_eq!(no_command.code, 2, "{no_command:?}");
}

#[test]
fn help_lists_the_commands() {
    let top = flotilla(&["--help"]);
    assert_eq!(top.code, 0, "{top:?}");
    assert!(top.stdout.contains("compat"), "{top:?}");

    let check_help = flotilla(&["compat", "check", "--help"]);
    assert_eq!(check_help.code, 0, "{check_help:?}");
    for needle in [
        "--against",
        "--category",
        "--format",
        "WIRE_JSON",
        "Exit status",
    ] {
        assert!(
            check_help.stdout.contains(needle),
            "{needle}: {check_help:?}"
        );
    }
}
