//! Test helpers: schemas compiled from inline `.proto` text with protox.

use std::path::Path;

use prost_types::FileDescriptorSet;

use crate::{Category, Report};

/// Compiles `files` (name, text) as one schema, imports and source info included.
pub(crate) fn compile<S: AsRef<str>>(files: &[(&str, S)]) -> FileDescriptorSet {
    let dir = tempfile::tempdir().expect("a temporary directory");
    for (name, text) in files {
        let path = dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("a directory for the file");
        }
        std::fs::write(&path, text.as_ref()).expect("the file written");
    }
    compile_dir(dir.path(), files.iter().map(|(name, _)| *name))
}

fn compile_dir<'a>(dir: &Path, names: impl Iterator<Item = &'a str>) -> FileDescriptorSet {
    protox::Compiler::new([dir])
        .expect("a compiler")
        .include_imports(true)
        .include_source_info(true)
        .open_files(names)
        .unwrap_or_else(|e| panic!("the test schema compiles: {e:?}"))
        .file_descriptor_set()
}

/// Compares two inline schemas under `category`.
pub(crate) fn check<A: AsRef<str>, B: AsRef<str>>(
    previous: &[(&str, A)],
    current: &[(&str, B)],
    category: Category,
) -> Report {
    crate::check(&compile(previous), &compile(current), category).expect("valid schemas")
}

/// The messages of one rule's violations, in report order.
pub(crate) fn messages_of(report: &Report, rule: &str) -> Vec<String> {
    report
        .violations
        .iter()
        .filter(|v| v.rule == rule)
        .map(|v| v.message.clone())
        .collect()
}

/// The distinct rules a report names, sorted.
pub(crate) fn rules_of(report: &Report) -> Vec<&'static str> {
    let mut rules: Vec<_> = report.violations.iter().map(|v| v.rule).collect();
    rules.sort_unstable();
    rules.dedup();
    rules
}
