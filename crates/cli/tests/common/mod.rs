//! Running the real `flotilla` binary on the fixtures under `tests/fixtures/`.

#![allow(dead_code)] // Each test file uses its own share of these helpers.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use prost::Message;

/// What one run of the binary did.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON value ({e}): {self:?}"))
    }
}

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Runs `flotilla ARGS` in the fixtures directory, so fixtures are named as `v1`, `v2-breaking`.
pub fn flotilla(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_flotilla"))
        .args(args)
        .current_dir(fixtures())
        // Colour is only for terminals; make sure nothing in the environment asks otherwise.
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("the flotilla binary runs");
    Run {
        code: output
            .status
            .code()
            .expect("exited, not killed by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// `flotilla compat check NEW --against OLD EXTRA…`
pub fn check(new: &str, old: &str, extra: &[&str]) -> Run {
    let mut args = vec!["compat", "check", new, "--against", old];
    args.extend_from_slice(extra);
    flotilla(&args)
}

/// Compiles a fixture directory with protox, as `buf build -o` would, and writes the encoded
/// FileDescriptorSet to `out_dir/NAME.binpb`. Returns the file's absolute path.
pub fn compile_to_binpb(fixture: &str, out_dir: &Path, include_imports: bool) -> PathBuf {
    let root = fixtures().join(fixture);
    let set = protox::Compiler::new([&root])
        .unwrap()
        .include_imports(include_imports)
        .include_source_info(true)
        .open_files(["greet/v1/mood.proto", "greet/v1/greeter.proto"])
        .unwrap()
        .file_descriptor_set();
    let path = out_dir.join(format!("{fixture}.binpb"));
    std::fs::write(&path, set.encode_to_vec()).unwrap();
    path
}

pub fn str(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}
