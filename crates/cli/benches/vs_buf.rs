//! `flotilla compat check` against `buf breaking`, whole process against whole process, on the
//! same generated schemas.
//!
//! For each size (messages in the schema) the bench writes an old and a new version as encoded
//! FileDescriptorSets, then runs, alternately, A B A B:
//!
//!   flotilla compat check new.binpb --against old.binpb --format json
//!   buf breaking new.binpb --against old.binpb --error-format json \
//!       --config '{"version":"v2","breaking":{"use":["WIRE_JSON"]}}'
//!
//! Each run's stdout and stderr go to pipes the bench drains (`Command::output`), and the time
//! is from spawn to exit. The first run of each is a warm-up, not counted, that also checks the
//! answer: flotilla must exit 0 or 1 and buf 0 or 100, else the row says so instead of timing
//! an error path. The table gives each tool's median with its min and max, and buf/flotilla on
//! the medians (above 1: flotilla is faster), and the number of violations each reported.
//!
//! `cargo bench -p flotilla-cli --bench vs_buf -- [--runs 7] [--sizes 10,500,5000]`
//!
//! The flotilla binary is the one cargo builds for this bench, with the bench profile (release
//! optimisations). buf is found on PATH, or `BUF=/path/to/buf`; a wrapper script such as a pyenv
//! shim is resolved to the binary behind it, so its start-up is not counted against buf.

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Output, Stdio},
    time::{Duration, Instant},
};

use prost::Message;

const DEFAULT_RUNS: usize = 7;
const DEFAULT_SIZES: &[usize] = &[10, 500, 5_000];
const BUF_CONFIG: &str = r#"{"version":"v2","breaking":{"use":["WIRE_JSON"]}}"#;
/// Messages per generated .proto file, so the large schemas look like many files, not one.
const MESSAGES_PER_FILE: usize = 250;

fn main() -> anyhow::Result<()> {
    let options = Options::from_args();
    let flotilla = flotilla_binary()?;
    let buf = buf_binary();
    println!("flotilla: {}", flotilla.display());
    match &buf {
        Some(buf) => println!("buf:      {} ({})", buf.display(), buf_version(buf)),
        None => {
            println!("buf:      not found on PATH (set BUF=/path/to/buf); timing flotilla alone")
        }
    }
    println!(
        "{} timed runs of each after one warm-up, alternating flotilla and buf; category WIRE_JSON\n",
        options.runs
    );

    let work = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for &size in &options.sizes {
        let pair = write_schema_pair(work.path(), size)?;
        let flotilla_command = || {
            let mut command = Command::new(&flotilla);
            command
                .args(["compat", "check"])
                .arg(&pair.new)
                .arg("--against")
                .arg(&pair.old)
                .args(["--format", "json"]);
            command
        };
        let buf_command = |buf: &Path| {
            let mut command = Command::new(buf);
            command
                .arg("breaking")
                .arg(&pair.new)
                .arg("--against")
                .arg(&pair.old)
                .args(["--config", BUF_CONFIG, "--error-format", "json"]);
            command
        };

        let mut flotilla_side = Side::new("flotilla", &[0, 1], count_flotilla_violations);
        let mut buf_side = Side::new("buf", &[0, 100], count_buf_violations);
        flotilla_side.warm_up(flotilla_command())?;
        if let Some(buf) = &buf {
            buf_side.warm_up(buf_command(buf))?;
        }
        for _ in 0..options.runs {
            flotilla_side.timed(flotilla_command())?;
            if let Some(buf) = &buf {
                buf_side.timed(buf_command(buf))?;
            }
        }
        rows.push(Row {
            size,
            files: pair.files,
            bytes: pair.bytes,
            flotilla: flotilla_side.result(),
            buf: buf.as_ref().map(|_| buf_side.result()),
        });
    }
    print_table(&rows);
    Ok(())
}

struct Options {
    runs: usize,
    sizes: Vec<usize>,
}

impl Options {
    /// `cargo bench` adds `--bench` to the arguments; anything not recognised is ignored.
    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        let value = |flag: &str| {
            args.iter()
                .position(|a| a == flag)
                .and_then(|i| args.get(i + 1))
        };
        let runs = value("--runs")
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(DEFAULT_RUNS);
        let sizes = value("--sizes")
            .map(|v| v.split(',').filter_map(|s| s.trim().parse().ok()).collect())
            .filter(|sizes: &Vec<usize>| !sizes.is_empty())
            .unwrap_or_else(|| DEFAULT_SIZES.to_vec());
        Options { runs, sizes }
    }
}

// ---------------------------------------------------------------------------------------------
// Finding the two programs.

/// The binary cargo built for this bench target, with the same profile.
fn flotilla_binary() -> anyhow::Result<PathBuf> {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_flotilla"));
    anyhow::ensure!(
        path.is_file(),
        "{} is missing: run `cargo build --release -p flotilla-cli --bin flotilla`, or run this \
         bench with `cargo bench -p flotilla-cli --bench vs_buf`, which builds it",
        path.display()
    );
    if !path.components().any(|c| c.as_os_str() == "release") {
        println!(
            "warning: {} is not a release build; run with `cargo bench` for meaningful times",
            path.display()
        );
    }
    Ok(path)
}

/// buf's own executable: `BUF`, or the first `buf` on PATH. A script on PATH (a pyenv shim, as
/// `pip install buf-bin` leaves one) is resolved with `pyenv which`, because its interpreter
/// start-up would otherwise be counted as buf's time.
fn buf_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BUF") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("buf"))
        .find(|candidate| candidate.is_file())?;
    let is_script = fs::read(&on_path).is_ok_and(|bytes| bytes.starts_with(b"#!"));
    if !is_script {
        return Some(on_path);
    }
    let resolved = Command::new("pyenv")
        .args(["which", "buf"])
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
    match resolved {
        Some(binary) if binary.is_file() => Some(binary),
        _ => {
            println!(
                "warning: {} is a script and could not be resolved; its start-up counts as buf's",
                on_path.display()
            );
            Some(on_path)
        }
    }
}

fn buf_version(buf: &Path) -> String {
    Command::new(buf)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|e| format!("version unknown: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Timing.

/// One program's runs at one size.
struct Side {
    name: &'static str,
    /// The exit statuses that mean "compared": anything else is an error path, not a verdict.
    verdict_codes: &'static [i32],
    count_violations: fn(&[u8]) -> usize,
    violations: Option<usize>,
    failure: Option<String>,
    times: Vec<Duration>,
}

/// What one side measured, or why it measured nothing.
enum SideResult {
    Timed {
        times: Vec<Duration>,
        violations: usize,
    },
    Failed(String),
}

impl Side {
    fn new(
        name: &'static str,
        verdict_codes: &'static [i32],
        count_violations: fn(&[u8]) -> usize,
    ) -> Self {
        Side {
            name,
            verdict_codes,
            count_violations,
            violations: None,
            failure: None,
            times: Vec::new(),
        }
    }

    fn warm_up(&mut self, command: Command) -> anyhow::Result<()> {
        let (_, output) = run(command)?;
        match output.status.code() {
            Some(code) if self.verdict_codes.contains(&code) => {
                self.violations = Some((self.count_violations)(&output.stdout));
            }
            code => {
                let failure = describe_failure(code, &output);
                println!("{} did not give a verdict: {failure}", self.name);
                self.failure = Some(failure);
            }
        }
        Ok(())
    }

    /// Times one run, unless the warm-up showed this side cannot give a verdict. A run whose
    /// answer differs from the warm-up's spoils the row: its time is of something else.
    fn timed(&mut self, command: Command) -> anyhow::Result<()> {
        if self.failure.is_some() {
            return Ok(());
        }
        let (elapsed, output) = run(command)?;
        let answer = output
            .status
            .code()
            .filter(|code| self.verdict_codes.contains(code))
            .map(|_| (self.count_violations)(&output.stdout));
        if answer != self.violations {
            self.failure = Some(format!(
                "a timed run answered differently from the warm-up: {}",
                describe_failure(output.status.code(), &output)
            ));
        }
        self.times.push(elapsed);
        Ok(())
    }

    fn result(self) -> SideResult {
        match (self.failure, self.violations) {
            (Some(failure), _) => SideResult::Failed(failure),
            (None, Some(violations)) => SideResult::Timed {
                times: self.times,
                violations,
            },
            (None, None) => SideResult::Failed("no warm-up".into()),
        }
    }
}

/// Runs a command to its end with stdin closed and stdout and stderr drained through pipes
/// (`output` reads both concurrently), and times it from spawn to exit.
fn run(mut command: Command) -> anyhow::Result<(Duration, Output)> {
    command.stdin(Stdio::null());
    let start = Instant::now();
    let output = command.output()?;
    Ok((start.elapsed(), output))
}

fn describe_failure(code: Option<i32>, output: &Output) -> String {
    let status = code.map_or("killed by a signal".to_owned(), |c| format!("exit {c}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first_line = stderr.lines().next().unwrap_or("(nothing on stderr)");
    format!("{status}: {first_line}")
}

/// flotilla's JSON report: one object with a `violations` array.
fn count_flotilla_violations(stdout: &[u8]) -> usize {
    serde_json::from_slice::<serde_json::Value>(stdout)
        .ok()
        .and_then(|json| json["violations"].as_array().map(Vec::len))
        .unwrap_or(0)
}

/// buf's `--error-format json`: one JSON object a line per violation.
fn count_buf_violations(stdout: &[u8]) -> usize {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|line| line.trim_start().starts_with('{'))
        .count()
}

// ---------------------------------------------------------------------------------------------
// The table.

struct Row {
    size: usize,
    files: usize,
    bytes: (usize, usize),
    flotilla: SideResult,
    buf: Option<SideResult>,
}

struct Summary {
    median: Duration,
    min: Duration,
    max: Duration,
}

fn summarise(times: &[Duration]) -> Summary {
    let mut sorted = times.to_vec();
    sorted.sort();
    let middle = sorted.len() / 2;
    let median = if sorted.len().is_multiple_of(2) {
        (sorted[middle - 1] + sorted[middle]) / 2
    } else {
        sorted[middle]
    };
    Summary {
        median,
        min: sorted[0],
        max: sorted[sorted.len() - 1],
    }
}

fn millis(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1e3;
    if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

fn cell(result: &SideResult) -> (String, Option<Duration>, String) {
    match result {
        SideResult::Timed { times, violations } => {
            let s = summarise(times);
            (
                format!(
                    "{} ms ({}..{})",
                    millis(s.median),
                    millis(s.min),
                    millis(s.max)
                ),
                Some(s.median),
                violations.to_string(),
            )
        }
        SideResult::Failed(_) => ("no verdict".into(), None, "-".into()),
    }
}

fn print_table(rows: &[Row]) {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\n{:>8} {:>6} {:>21}  {:<28} {:<28} {:>12} {:>16}",
        "messages",
        "files",
        "binpb old/new (KiB)",
        "flotilla median (min..max)",
        "buf median (min..max)",
        "buf/flotilla",
        "violations f/buf"
    );
    for row in rows {
        let (flotilla, flotilla_median, flotilla_violations) = cell(&row.flotilla);
        let (buf, buf_median, buf_violations) = match &row.buf {
            Some(result) => cell(result),
            None => ("not run".into(), None, "-".into()),
        };
        let ratio = match (flotilla_median, buf_median) {
            (Some(f), Some(b)) => format!("{:.1}x", b.as_secs_f64() / f.as_secs_f64()),
            _ => "-".into(),
        };
        let _ = writeln!(
            out,
            "{:>8} {:>6} {:>21}  {:<28} {:<28} {:>12} {:>16}",
            row.size,
            row.files,
            format!("{}/{}", row.bytes.0 / 1024, row.bytes.1 / 1024),
            flotilla,
            buf,
            ratio,
            format!("{flotilla_violations}/{buf_violations}")
        );
    }
    for row in rows {
        if let (
            SideResult::Timed {
                violations: ours, ..
            },
            Some(SideResult::Timed {
                violations: bufs, ..
            }),
        ) = (&row.flotilla, &row.buf)
            && ours != bufs
        {
            let _ = writeln!(
                out,
                "{} messages: the answers differ, flotilla {ours} violations and buf {bufs}: \
                 the times are not of the same work",
                row.size
            );
        }
        for (name, result) in [("flotilla", Some(&row.flotilla)), ("buf", row.buf.as_ref())] {
            if let Some(SideResult::Failed(why)) = result {
                let _ = writeln!(out, "{} messages: {name} gave no verdict: {why}", row.size);
            }
        }
    }
    print!("{out}");
}

// ---------------------------------------------------------------------------------------------
// The schemas.

/// An old and a new schema of one size, encoded.
struct SchemaPair {
    old: PathBuf,
    new: PathBuf,
    files: usize,
    bytes: (usize, usize),
}

fn write_schema_pair(work: &Path, size: usize) -> anyhow::Result<SchemaPair> {
    let dir = work.join(size.to_string());
    let encode = |version: Version| -> anyhow::Result<(PathBuf, usize, usize)> {
        let root = dir.join(version.name());
        let files = generate(size, version);
        for (name, text) in &files {
            let path = root.join(name);
            fs::create_dir_all(path.parent().expect("generated names have a directory"))?;
            fs::write(path, text)?;
        }
        // As `buf build -o` writes an image: imports and source info included.
        let set = protox::Compiler::new([&root])?
            .include_imports(true)
            .include_source_info(true)
            .open_files(files.iter().map(|(name, _)| name))?
            .file_descriptor_set();
        let bytes = set.encode_to_vec();
        let out = dir.join(format!("{}.binpb", version.name()));
        fs::write(&out, &bytes)?;
        Ok((out, files.len(), bytes.len()))
    };
    let (old, files, old_bytes) = encode(Version::Old)?;
    let (new, _, new_bytes) = encode(Version::New)?;
    Ok(SchemaPair {
        old,
        new,
        files,
        bytes: (old_bytes, new_bytes),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    Old,
    New,
}

impl Version {
    fn name(self) -> &'static str {
        match self {
            Self::Old => "old",
            Self::New => "new",
        }
    }
}

/// `size` messages in package `bench.v1`, spread over files of [`MESSAGES_PER_FILE`]. Each
/// message has a handful of fields of mixed kinds (scalars, repeated, an enum, a message from
/// the well-known types, a map, a reference to its neighbour, a oneof); every tenth message
/// comes with an enum, and each file has a service with an rpc for every fifth message.
///
/// The new version breaks in a few places, at the first, middle and last messages, so the
/// changes are spread through the schema: a field deleted, a field's type changed, a field
/// renamed (its JSON name with it), an enum value deleted. It also adds a field, an enum value,
/// an rpc and a message, which are compatible.
fn generate(size: usize, version: Version) -> Vec<(String, String)> {
    let new = version == Version::New;
    let (first, middle, last) = (0, size / 2, size - 1);
    let file_count = size.div_ceil(MESSAGES_PER_FILE);
    let mut files = Vec::with_capacity(file_count);
    for file_index in 0..file_count {
        let start = file_index * MESSAGES_PER_FILE;
        let end = (start + MESSAGES_PER_FILE).min(size);
        let mut text = String::new();
        let _ = writeln!(
            text,
            "syntax = \"proto3\";\n\npackage bench.v1;\n\nimport \"google/protobuf/timestamp.proto\";\n"
        );
        for i in start..end {
            if i % 10 == 0 {
                // Enum value names share their package's scope, hence the enum's prefix.
                let _ = writeln!(text, "enum Kind{i} {{");
                let _ = writeln!(text, "  KIND{i}_UNSPECIFIED = 0;");
                let _ = writeln!(text, "  KIND{i}_SMALL = 1;");
                let _ = writeln!(text, "  KIND{i}_MEDIUM = 2;");
                if !(new && i == first) {
                    let _ = writeln!(text, "  KIND{i}_LARGE = 3;");
                }
                if new && i == middle - middle % 10 {
                    let _ = writeln!(text, "  KIND{i}_HUGE = 4;");
                }
                let _ = writeln!(text, "}}\n");
            }
            let kind = i - i % 10;
            let _ = writeln!(text, "// Item {i}: a record with a bit of everything.");
            let _ = writeln!(text, "message Item{i} {{");
            let name = if new && i == last { "title" } else { "name" };
            let _ = writeln!(text, "  string {name} = 1;");
            let id_type = if new && i == middle {
                "string"
            } else {
                "int64"
            };
            let _ = writeln!(text, "  {id_type} id = 2;");
            let _ = writeln!(text, "  repeated string tags = 3;");
            let _ = writeln!(text, "  Kind{kind} kind = 4;");
            if !(new && i == first) {
                let _ = writeln!(text, "  double score = 5;");
            }
            let _ = writeln!(text, "  bool active = 6;");
            let _ = writeln!(text, "  google.protobuf.Timestamp updated_at = 7;");
            let _ = writeln!(text, "  map<string, int32> counts = 8;");
            if i > start {
                let _ = writeln!(text, "  Item{} previous = 9;", i - 1);
            }
            let _ = writeln!(
                text,
                "  oneof payload {{\n    string text = 10;\n    bytes blob = 11;\n  }}"
            );
            if new && i == middle {
                let _ = writeln!(text, "  string note = 12;");
            }
            let _ = writeln!(text, "}}\n");
        }
        if new && file_index == file_count - 1 {
            let _ = writeln!(text, "message Added {{\n  string reason = 1;\n}}\n");
        }
        let _ = writeln!(text, "service Part{file_index}Service {{");
        for i in (start..end).step_by(5) {
            let reply = (i + 1).min(end - 1);
            let _ = writeln!(text, "  rpc Get{i}(Item{i}) returns (Item{reply});");
        }
        if new && file_index == file_count - 1 {
            let _ = writeln!(text, "  rpc Explain(Item{start}) returns (Added);");
        }
        let _ = writeln!(text, "}}");
        files.push((format!("bench/v1/part_{file_index:03}.proto"), text));
    }
    files
}
