//! Replays schema pairs that the real buf judged (tests/fixtures/buf) and expects the same
//! violations, rule by rule and word for word, in every category.

use std::path::{Path, PathBuf};

use flotilla_compat::{Category, check_encoded};

fn cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buf");
    let mut cases: Vec<_> = std::fs::read_dir(&root)
        .expect("the fixtures directory")
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .collect();
    cases.sort();
    cases
}

/// `CATEGORY\tRULE\tMESSAGE` lines for every category, sorted, as in `expected.txt`.
fn ours(case: &Path) -> Vec<String> {
    let read = |name: &str| std::fs::read(case.join(name)).expect("a fixture image");
    let (old, new) = (read("old.binpb"), read("new.binpb"));
    let mut lines = Vec::new();
    for category in Category::ALL {
        let report = check_encoded(&old, &new, category).expect("valid fixture schemas");
        for v in report.violations {
            lines.push(format!("{category}\t{}\t{}", v.rule, v.message));
        }
    }
    lines.sort();
    lines.dedup();
    lines
}

fn expected(case: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(case.join("expected.txt")).expect("expected.txt");
    let mut lines: Vec<String> = text
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    lines.sort();
    lines
}

#[test]
fn every_case_matches_buf() {
    let cases = cases();
    assert!(cases.len() >= 10, "fixtures missing: {cases:?}");
    for case in cases {
        let (ours, buf) = (ours(&case), expected(&case));
        let missing: Vec<_> = buf.iter().filter(|l| !ours.contains(l)).collect();
        let extra: Vec<_> = ours.iter().filter(|l| !buf.contains(l)).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{}: missing {missing:#?}, extra {extra:#?}",
            case.display()
        );
    }
}

#[test]
fn without_the_encoding_editions_features_are_unknown_but_nothing_fails() {
    // check() gets prost-types descriptors, which have lost the explicit features: it still
    // judges what the descriptors hold (names, numbers, types) and errs on nothing.
    let case =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/buf/editions_2023_features");
    let decode = |name: &str| {
        let bytes = std::fs::read(case.join(name)).expect("a fixture image");
        <prost_types::FileDescriptorSet as prost::Message>::decode(bytes.as_slice()).expect("a set")
    };
    let (old, new) = (decode("old.binpb"), decode("new.binpb"));
    let report = flotilla_compat::check(&old, &new, Category::File).expect("valid schemas");
    let rules: Vec<_> = report.violations.iter().map(|v| v.rule).collect();
    assert!(!rules.contains(&"ENUM_SAME_TYPE"), "{rules:?}");
    assert!(rules.contains(&"FIELD_SAME_DEFAULT"), "{rules:?}");
    let full = check_encoded(
        &std::fs::read(case.join("old.binpb")).expect("image"),
        &std::fs::read(case.join("new.binpb")).expect("image"),
        Category::File,
    )
    .expect("valid schemas");
    assert!(full.violations.len() > report.violations.len());
}
