//! The oracle: flotilla-compat must report exactly the rule ids that the real `buf breaking`
//! reports, for every case of the corpus and every category.
//!
//! Each case is a directory `tests/oracle/cases/<NNN-name>/` with an `old/` and a `new/` tree of
//! .proto files. For each case and each [`Category`], the test compiles both trees with protox
//! and runs [`flotilla_compat::check`], runs buf on the two trees with that category alone, and
//! compares the two sets of rule ids. It gathers every disagreement over the whole corpus and
//! fails once at the end with a table of them. It also checks that the corpus makes buf report
//! every rule of [`RULES`] at least once, so that no rule goes untested.
//!
//! buf is run as (in `<case>/new`, with `BUF_CACHE_DIR` set to a fresh temporary directory):
//!
//! ```text
//! buf breaking . --against ../old --config C --against-config C --exclude-imports --error-format json
//! ```
//!
//! where `C` is `{"version":"v2","breaking":{"use":["<CATEGORY>"]}}`. `--exclude-imports` leaves
//! out the files that are only imported (the well-known types), which [`flotilla_compat::check`]
//! does not check either: without it, dropping the last import of
//! `google/protobuf/timestamp.proto` is a `FILE_NO_DELETE`.
//!
//! buf must be on PATH (`pip install buf-bin`). Without it the test is skipped with a message, or
//! fails under CI (`CI` set). `tests/oracle/expected.json` holds buf's answers for reading; the
//! test does not use it, it always asks buf.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use flotilla_compat::{Category, RULES};
use prost_types::FileDescriptorSet;

/// A deliberate difference between flotilla-compat and buf: on `case` under `category`, `rule`
/// is reported by one of them and not by the other, for `reason`. A listed difference is not a
/// failure; a listed difference that no longer shows up is one, so that the table stays true.
#[derive(Debug)]
struct KnownDifference {
    case: &'static str,
    category: Category,
    rule: &'static str,
    reason: &'static str,
}

/// Deliberate differences, for the rule engine's developers to fill in with a reason each.
const KNOWN_DIFFERENCES: &[KnownDifference] = &[];

/// How many buf processes run at once.
const BUF_PARALLELISM: usize = 4;

type RuleIds = BTreeSet<String>;

#[test]
fn every_case_compiles_with_protox() {
    let mut failures = Vec::new();
    for case in cases() {
        for side in ["old", "new"] {
            if let Err(error) = compile(&case.path.join(side)) {
                failures.push(format!("{}/{side}: {error}", case.name));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "protox rejects {} trees of the corpus:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn flotilla_reports_what_buf_reports() {
    let Some(buf) = find_buf() else {
        return;
    };
    // The corpus, its expected.json and the known differences were recorded with this buf;
    // another one may judge differently, and its answers would not be the oracle's.
    assert_eq!(
        buf_version(&buf),
        RECORDED_WITH,
        "the oracle corpus was recorded with buf {RECORDED_WITH} (deploy/local/test.sh pins it)"
    );
    let cases = cases();
    assert!(
        !cases.is_empty(),
        "no cases under {}",
        cases_dir().display()
    );
    check_known_differences_name_real_things(&cases);

    let started = Instant::now();
    let buf_answers = run_buf_on_corpus(&buf, &cases);
    eprintln!(
        "buf {}: {} runs ({} cases x {} categories) in {:.1?}",
        buf_version(&buf),
        buf_answers.len(),
        cases.len(),
        Category::ALL.len(),
        started.elapsed()
    );

    let started = Instant::now();
    let flotilla_answers = run_flotilla_on_corpus(&cases);
    eprintln!("flotilla-compat: {:.1?}", started.elapsed());

    let mut problems = Vec::new();
    problems.extend(buf_problems(&buf_answers));
    problems.extend(coverage_problems(&buf_answers));
    problems.extend(rule_table_problems(&buf_answers));
    problems.extend(flotilla_errors(&cases, &flotilla_answers));
    problems.extend(mismatches(&buf_answers, &flotilla_answers));
    assert!(problems.is_empty(), "\n{}", problems.join("\n\n"));
}

/// One case of the corpus.
#[derive(Debug)]
struct Case {
    name: String,
    path: PathBuf,
}

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracle/cases")
}

fn cases() -> Vec<Case> {
    let dir = cases_dir();
    let mut cases: Vec<Case> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|path| path.is_dir())
        .map(|path| Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            path,
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    for case in &cases {
        for side in ["old", "new"] {
            assert!(
                case.path.join(side).is_dir(),
                "case {} has no {side}/ directory",
                case.name
            );
        }
    }
    cases
}

/// The .proto files under `root`, as paths relative to it with `/` separators, sorted.
fn proto_files(root: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, found: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(root, &path, found);
            } else if path.extension().is_some_and(|ext| ext == "proto") {
                let relative = path.strip_prefix(root).expect("under the root");
                let parts: Vec<_> = relative
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect();
                found.push(parts.join("/"));
            }
        }
    }
    let mut found = Vec::new();
    walk(root, root, &mut found);
    found.sort();
    found
}

/// Compiles every .proto file under `dir`, as Flotilla's users do: imports included.
fn compile(dir: &Path) -> Result<FileDescriptorSet, String> {
    let files = proto_files(dir);
    if files.is_empty() {
        return Err("no .proto files".into());
    }
    let compiled = protox::Compiler::new([dir])
        .map_err(|e| e.to_string())?
        .include_imports(true)
        .include_source_info(true)
        .open_files(&files)
        .map_err(|e| format!("{e:?}"))?
        .file_descriptor_set();
    Ok(compiled)
}

/// The buf version the corpus was recorded with.
const RECORDED_WITH: &str = "1.75.0";

/// buf's path, or `None` (the test is skipped) when it is not on PATH outside CI.
fn find_buf() -> Option<PathBuf> {
    flotilla_testkit::tool("buf", "pip install buf-bin")
}

fn buf_version(buf: &Path) -> String {
    Command::new(buf)
        .arg("--version")
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("(--version failed: {e})"))
}

/// What one side answered for one (case, category): the rule ids, or why there are none.
type Answers = BTreeMap<(String, Category), Result<RuleIds, String>>;

fn run_buf_on_corpus(buf: &Path, cases: &[Case]) -> Answers {
    let cache = tempfile::tempdir().expect("a temporary directory for buf's cache");
    let jobs: Vec<(&Case, Category)> = cases
        .iter()
        .flat_map(|case| Category::ALL.map(|category| (case, category)))
        .collect();
    let next = AtomicUsize::new(0);
    let answers = Mutex::new(Answers::new());
    std::thread::scope(|scope| {
        for _ in 0..BUF_PARALLELISM {
            scope.spawn(|| {
                while let Some(&(case, category)) = jobs.get(next.fetch_add(1, Ordering::Relaxed)) {
                    let answer = run_buf(buf, cache.path(), &case.path, category);
                    answers
                        .lock()
                        .unwrap()
                        .insert((case.name.clone(), category), answer);
                }
            });
        }
    });
    answers.into_inner().unwrap()
}

/// Runs `buf breaking` on one case with one category; the rule ids it reports.
fn run_buf(buf: &Path, cache: &Path, case: &Path, category: Category) -> Result<RuleIds, String> {
    let config = format!(
        r#"{{"version":"v2","breaking":{{"use":["{}"]}}}}"#,
        category.as_str()
    );
    let output = Command::new(buf)
        .current_dir(case.join("new"))
        .args(["breaking", ".", "--against", "../old"])
        .args(["--config", &config, "--against-config", &config])
        .args(["--exclude-imports", "--error-format", "json"])
        .env("BUF_CACHE_DIR", cache)
        .output()
        .map_err(|e| format!("running {}: {e}", buf.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // 0: nothing breaks; 100: something does; anything else: buf could not compare.
    if !matches!(output.status.code(), Some(0 | 100)) {
        return Err(format!(
            "buf failed ({}): {}{}",
            output.status,
            stderr.trim(),
            stdout.trim()
        ));
    }
    let mut ids = RuleIds::new();
    for line in stdout.lines().filter(|line| !line.trim().is_empty()) {
        let annotation: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| format!("buf printed a line that is not JSON ({e}): {line}"))?;
        let id = annotation["type"]
            .as_str()
            .ok_or_else(|| format!("buf printed an annotation without a type: {line}"))?;
        ids.insert(id.to_owned());
    }
    if output.status.code() == Some(100) && ids.is_empty() {
        return Err(format!(
            "buf exited 100 and reported nothing: {}",
            stderr.trim()
        ));
    }
    Ok(ids)
}

fn run_flotilla_on_corpus(cases: &[Case]) -> Answers {
    let mut answers = Answers::new();
    for case in cases {
        let compiled = compile(&case.path.join("old"))
            .and_then(|old| compile(&case.path.join("new")).map(|new| (old, new)));
        for category in Category::ALL {
            let answer = match &compiled {
                Err(error) => Err(format!("protox: {error}")),
                Ok((old, new)) => flotilla_compat::check(old, new, category)
                    .map(|report| {
                        report
                            .violations
                            .iter()
                            .map(|v| v.rule.to_owned())
                            .collect()
                    })
                    .map_err(|e| format!("check failed: {e}")),
            };
            answers.insert((case.name.clone(), category), answer);
        }
    }
    answers
}

fn check_known_differences_name_real_things(cases: &[Case]) {
    for known in KNOWN_DIFFERENCES {
        assert!(
            cases.iter().any(|c| c.name == known.case),
            "KNOWN_DIFFERENCES names the case {:?}, which does not exist",
            known.case
        );
        assert!(
            RULES.iter().any(|r| r.id == known.rule),
            "KNOWN_DIFFERENCES names the rule {:?}, which is not in RULES",
            known.rule
        );
        assert!(
            !known.reason.trim().is_empty(),
            "KNOWN_DIFFERENCES: {} {} {} gives no reason",
            known.case,
            known.category,
            known.rule
        );
    }
}

/// The runs where buf itself failed: a case it cannot compile, say.
fn buf_problems(buf: &Answers) -> Vec<String> {
    let failed: Vec<String> = buf
        .iter()
        .filter_map(|((case, category), answer)| {
            answer
                .as_ref()
                .err()
                .map(|e| format!("  {case} {category}: {e}"))
        })
        .collect();
    if failed.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "buf could not compare {} (case, category) pairs:\n{}",
        failed.len(),
        failed.join("\n")
    )]
}

/// Every rule of RULES must be reported by buf somewhere in the corpus, and buf must report no
/// rule that RULES lacks.
fn coverage_problems(buf: &Answers) -> Vec<String> {
    let reported: RuleIds = buf.values().flatten().flatten().cloned().collect();
    let known: RuleIds = RULES.iter().map(|r| r.id.to_owned()).collect();
    let missing: Vec<_> = known.difference(&reported).cloned().collect();
    let unknown: Vec<_> = reported.difference(&known).cloned().collect();
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "coverage: no case makes buf report {} of the {} rules of RULES; add cases for:\n  {}",
            missing.len(),
            known.len(),
            missing.join("\n  ")
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "coverage: buf reports rules that RULES lacks:\n  {}",
            unknown.join("\n  ")
        ));
    }
    problems
}

/// buf must only report, under a category, rules that RULES puts in that category.
fn rule_table_problems(buf: &Answers) -> Vec<String> {
    let wrong: BTreeSet<String> = buf
        .iter()
        .filter_map(|((_, category), answer)| Some((category, answer.as_ref().ok()?)))
        .flat_map(|(category, ids)| ids.iter().map(move |id| (category, id)))
        .filter_map(|(category, id)| {
            let rule = RULES.iter().find(|r| r.id == id)?;
            (!rule.categories.contains(category))
                .then(|| format!("  buf reports {id} under {category}, not among its categories"))
        })
        .collect();
    if wrong.is_empty() {
        return Vec::new();
    }
    vec![format!(
        "RULES disagrees with buf on categories:\n{}",
        wrong.into_iter().collect::<Vec<_>>().join("\n")
    )]
}

/// The (case, category) pairs flotilla-compat could not answer, one line per case and error.
fn flotilla_errors(cases: &[Case], flotilla: &Answers) -> Vec<String> {
    let mut lines = Vec::new();
    for case in cases {
        let mut by_error: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for category in Category::ALL {
            if let Some(Err(error)) = flotilla.get(&(case.name.clone(), category)) {
                by_error
                    .entry(error.as_str())
                    .or_default()
                    .push(category.as_str());
            }
        }
        for (error, categories) in by_error {
            lines.push((case.name.as_str(), categories.join(","), error));
        }
    }
    if lines.is_empty() {
        return Vec::new();
    }
    let width = lines.iter().map(|(case, ..)| case.len()).max().unwrap_or(0);
    let cwidth = lines.iter().map(|(_, c, _)| c.len()).max().unwrap_or(0);
    let mut text = format!(
        "flotilla-compat gave no answer for {} cases:\n",
        lines
            .iter()
            .map(|(case, ..)| case)
            .collect::<BTreeSet<_>>()
            .len()
    );
    for (case, categories, error) in lines {
        let _ = writeln!(text, "  {case:width$}  {categories:cwidth$}  {error}");
    }
    vec![text.trim_end().to_owned()]
}

/// The (case, category) pairs where both answered and the rule ids differ, less the known
/// differences; and the known differences that no longer show up.
fn mismatches(buf: &Answers, flotilla: &Answers) -> Vec<String> {
    let mut rows = Vec::new();
    let mut used = vec![false; KNOWN_DIFFERENCES.len()];
    for ((case, category), buf_answer) in buf {
        let (Ok(buf_ids), Some(Ok(flotilla_ids))) =
            (buf_answer, flotilla.get(&(case.clone(), *category)))
        else {
            continue;
        };
        let mut excused = |id: &String| {
            let found = KNOWN_DIFFERENCES.iter().position(|k| {
                k.case == case.as_str() && k.category == *category && k.rule == id.as_str()
            });
            if let Some(index) = found {
                used[index] = true;
            }
            found.is_some()
        };
        let only_buf: Vec<&str> = buf_ids
            .difference(flotilla_ids)
            .filter(|id| !excused(id))
            .map(String::as_str)
            .collect();
        let only_flotilla: Vec<&str> = flotilla_ids
            .difference(buf_ids)
            .filter(|id| !excused(id))
            .map(String::as_str)
            .collect();
        if !only_buf.is_empty() || !only_flotilla.is_empty() {
            rows.push([
                case.clone(),
                category.to_string(),
                or_dash(&only_buf),
                or_dash(&only_flotilla),
            ]);
        }
    }
    let mut problems = Vec::new();
    if !rows.is_empty() {
        let header = [
            "case".to_owned(),
            "category".to_owned(),
            "only buf".to_owned(),
            "only flotilla".to_owned(),
        ];
        problems.push(format!(
            "flotilla-compat disagrees with buf on {} (case, category) pairs:\n{}",
            rows.len(),
            table(&header, &rows)
        ));
    }
    let stale: Vec<String> = KNOWN_DIFFERENCES
        .iter()
        .zip(&used)
        .filter(|(known, used)| {
            let answered = matches!(
                buf.get(&(known.case.to_owned(), known.category)),
                Some(Ok(_))
            ) && matches!(
                flotilla.get(&(known.case.to_owned(), known.category)),
                Some(Ok(_))
            );
            answered && !**used
        })
        .map(|(known, _)| {
            format!(
                "  {} {} {} ({})",
                known.case, known.category, known.rule, known.reason
            )
        })
        .collect();
    if !stale.is_empty() {
        problems.push(format!(
            "KNOWN_DIFFERENCES lists differences that no longer show up; remove them:\n{}",
            stale.join("\n")
        ));
    }
    problems
}

/// A table cell of rule ids, one a line.
fn or_dash(ids: &[&str]) -> String {
    if ids.is_empty() {
        "-".to_owned()
    } else {
        ids.join("\n")
    }
}

/// Aligned columns; a cell with several lines makes its row that tall.
fn table(header: &[String; 4], rows: &[[String; 4]]) -> String {
    let mut widths = [0; 4];
    for row in std::iter::once(header).chain(rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = cell.lines().map(str::len).fold(*width, usize::max);
        }
    }
    let mut text = String::new();
    for row in std::iter::once(header).chain(rows) {
        let height = row
            .iter()
            .map(|cell| cell.lines().count())
            .max()
            .unwrap_or(1);
        for index in 0..height {
            let mut line = String::from(" ");
            for (cell, width) in row.iter().zip(widths) {
                let part = cell.lines().nth(index).unwrap_or("");
                let _ = write!(line, " {part:width$} ");
            }
            let _ = writeln!(text, "{}", line.trim_end());
        }
    }
    text.trim_end().to_owned()
}
