//! Where versions run. The orchestrator asks a [`Platform`] to start and stop instances of a
//! version from its published artifact; traffic moves separately, through the registry's routes.
//!
//! The trait is shaped for drivers beyond the local one: a Docker driver maps an instance to a
//! container (handle = container id, labels = service/version/rollout), a Kubernetes driver to a
//! pod. Every method is idempotent, and `list` recovers the instances after a restart, so no
//! driver keeps state the orchestrator depends on in memory.

pub mod allow;
pub mod docker;
pub mod local;

use async_trait::async_trait;
use flotilla_model::{Artifact, RolloutId, ServiceName, Version};

pub use allow::{AllowListError, ImageAllowList, ProgramAllowList};
pub use docker::{DockerConfig, DockerConnectError, DockerPlatform};
pub use local::LocalProcessPlatform;

/// How many log lines of an exited instance its exit report keeps.
const EXIT_LOG_LINES: usize = 5;

/// An exit report: how an instance ended (`status`, e.g. "exit code 3") and the last
/// [`EXIT_LOG_LINES`] non-empty lines of its log, colours removed, on one line.
fn exit_report(status: &str, log: &str) -> String {
    let clean = strip_ansi(log);
    let lines: Vec<&str> = clean
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .collect();
    let last = &lines[lines.len().saturating_sub(EXIT_LOG_LINES)..];
    match last.is_empty() {
        true => format!("{status}; it logged nothing"),
        false => format!("{status}; its last log lines: {}", last.join(" | ")),
    }
}

/// Text without ANSI escape sequences (coloured log lines).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC '[' parameters, ended by a byte in '@'..='~'.
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// How many exit reports a driver keeps; the oldest go first.
const MAX_EXIT_REPORTS: usize = 256;

/// The exit reports a driver keeps, by handle, for [`Platform::exit_report`]: bounded, the
/// oldest dropped first, and the first report of an instance kept (a later reader of a container
/// already removed would only know less).
#[derive(Debug, Default)]
struct ExitReports {
    inner: std::sync::Mutex<ExitReportsInner>,
}

#[derive(Debug, Default)]
struct ExitReportsInner {
    by_handle: std::collections::HashMap<String, String>,
    order: std::collections::VecDeque<String>,
}

impl ExitReports {
    fn insert(&self, handle: &str, report: String) {
        let mut inner = self.inner.lock().expect("not poisoned");
        if inner.by_handle.contains_key(handle) {
            return;
        }
        if inner.order.len() >= MAX_EXIT_REPORTS
            && let Some(oldest) = inner.order.pop_front()
        {
            inner.by_handle.remove(&oldest);
        }
        inner.order.push_back(handle.to_owned());
        inner.by_handle.insert(handle.to_owned(), report);
    }

    fn get(&self, handle: &str) -> Option<String> {
        self.inner
            .lock()
            .expect("not poisoned")
            .by_handle
            .get(handle)
            .cloned()
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct InstanceSpec {
    pub service: ServiceName,
    pub version: Version,
    pub artifact: Artifact,
    /// The rollout starting it, recorded with the instance.
    pub rollout: RolloutId,
}

/// An instance a platform runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformInstance {
    /// The platform's handle: what `stop` takes.
    pub handle: String,
    pub service: ServiceName,
    pub version: Version,
    /// "host:port" where it listens; the address it registers in the registry.
    pub address: String,
    /// The rollout that started it.
    pub rollout: Option<RolloutId>,
}

#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// The artifact cannot run on this platform (e.g. no command for the local driver).
    #[error("{service}@{version}: {reason}")]
    Unrunnable {
        service: ServiceName,
        version: Version,
        reason: String,
    },
    #[error("starting {what}: {source}")]
    Start {
        what: String,
        source: std::io::Error,
    },
    #[error("stopping instance {handle}: {reason}")]
    Stop { handle: String, reason: String },
    #[error("reading the platform's records: {0}")]
    Records(String),
}

#[async_trait]
pub trait Platform: Send + Sync + std::fmt::Debug {
    /// The platform's name, for events and logs ("local", "docker").
    fn name(&self) -> &'static str;

    /// Checks, before a rollout starts, that `artifact` can run here. Async because a driver
    /// may have to ask its engine (does the image exist?).
    async fn check(
        &self,
        service: &ServiceName,
        version: &Version,
        artifact: &Artifact,
    ) -> Result<(), PlatformError>;

    /// Starts one instance. It registers itself with the registry; the orchestrator waits for
    /// that and for its health.
    async fn start(&self, spec: &InstanceSpec) -> Result<PlatformInstance, PlatformError>;

    /// Stops an instance gracefully (SIGTERM, so it deregisters and drains), forcefully after a
    /// grace period. Stopping an instance that is already gone succeeds.
    async fn stop(&self, handle: &str) -> Result<(), PlatformError>;

    /// The live instances of a service, whoever started them on this platform.
    async fn list(&self, service: &ServiceName) -> Result<Vec<PlatformInstance>, PlatformError>;

    /// How an instance that has left `list` ended, as far as the platform still knows (exit
    /// status, last log lines), for the halt that reports it. `None` when it cannot tell.
    async fn exit_report(&self, _handle: &str) -> Option<String> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_reports_keep_the_first_report_and_drop_the_oldest() {
        let reports = ExitReports::default();
        reports.insert("a", "exit code 3".into());
        reports.insert("a", "exit status unreadable".into());
        assert_eq!(reports.get("a").as_deref(), Some("exit code 3"));
        for n in 0..MAX_EXIT_REPORTS {
            reports.insert(&n.to_string(), String::new());
        }
        assert_eq!(reports.get("a"), None, "the oldest went first");
        assert!(reports.get("0").is_some());
        assert!(reports.get(&(MAX_EXIT_REPORTS - 1).to_string()).is_some());
    }

    #[test]
    fn an_exit_report_keeps_the_last_lines_without_colours() {
        let log = "one\n\n\u{1b}[2mtwo\u{1b}[0m\nthree\nfour\nfive\n  six  \n";
        assert_eq!(
            exit_report("exit code 3", log),
            "exit code 3; its last log lines: two | three | four | five | six"
        );
        assert_eq!(
            exit_report("exit code 0", " \n"),
            "exit code 0; it logged nothing"
        );
    }
}
