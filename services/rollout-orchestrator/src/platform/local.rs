//! The embedded platform: each instance is a local process started from the artifact's command.
//! It runs only programs the operator allowed (see [`super::allow`]), found in the `--bin-dir`
//! directories or on PATH, and never through a shell: the command is the program and its
//! arguments, as an exec takes them.
//!
//! The command's arguments may name `{listen}` (the IP address and port to bind), `{advertise}`
//! (host:port, what callers dial), `{host}`, `{port}` and `{registry}`; the driver picks a free
//! port, fills them in, and also sets `FLOTILLA_LISTEN`, `FLOTILLA_ADVERTISE` and
//! `FLOTILLA_REGISTRY`. They differ when the instance host is a name (in a container, the
//! container's host name): a socket binds an address, callers dial the name. Each instance leaves a record in `<state dir>/records/<service>/<pid>.json`
//! (with the process's start time, so a reused pid is not mistaken for it) and its output in
//! `<state dir>/logs/`. The records are how a restarted orchestrator finds the instances it
//! started: processes outlive the orchestrator, as pods outlive a Kubernetes controller.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use flotilla_model::{Artifact, RolloutId, ServiceName, Version};
use nix::{sys::signal::Signal, unistd::Pid};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{InstanceSpec, Platform, PlatformError, PlatformInstance, allow::ProgramAllowList};

/// How long a stopped instance may drain before it is killed.
const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// How long `exit_report` waits for the reaper of a process that has just exited.
const EXIT_REPORT_WAIT: Duration = Duration::from_secs(2);

/// How often a process we did not start (found after a restart) is checked for exit.
const EXIT_POLL: Duration = Duration::from_millis(25);

#[derive(Debug, Clone)]
pub struct LocalProcessPlatform {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    state_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
    allowed: ProgramAllowList,
    host: String,
    registry: String,
    stop_grace: Duration,
    /// Exit flags of the processes this orchestrator spawned (and so must reap).
    children: Mutex<HashMap<u32, watch::Receiver<bool>>>,
    /// How the processes this orchestrator spawned ended, by pid, for [`Platform::exit_report`].
    exits: super::ExitReports,
}

/// What the driver remembers about an instance, on disk.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    pid: u32,
    /// Clock ticks since boot when the process started (/proc/PID/stat field 22).
    start_ticks: u64,
    service: ServiceName,
    version: Version,
    address: String,
    rollout: Option<RolloutId>,
    command: Vec<String>,
}

impl LocalProcessPlatform {
    pub fn new(
        state_dir: PathBuf,
        bin_dirs: Vec<PathBuf>,
        allowed: ProgramAllowList,
        host: &str,
        registry: &str,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                state_dir,
                bin_dirs,
                allowed,
                host: host.to_owned(),
                registry: registry.to_owned(),
                stop_grace: DEFAULT_STOP_GRACE,
                children: Mutex::new(HashMap::new()),
                exits: super::ExitReports::default(),
            }),
        }
    }

    fn records_dir(&self, service: &ServiceName) -> PathBuf {
        self.inner.state_dir.join("records").join(service.as_str())
    }

    /// The file `program` names: itself when it is a path, else the first match in the
    /// `--bin-dir` directories, then on PATH.
    fn find_program(&self, program: &str) -> Option<PathBuf> {
        if program.contains('/') {
            let path = PathBuf::from(program);
            return path.is_file().then_some(path);
        }
        let path_dirs = std::env::var_os("PATH")
            .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
            .unwrap_or_default();
        self.inner
            .bin_dirs
            .iter()
            .chain(&path_dirs)
            .map(|dir| dir.join(program))
            .find(|candidate| candidate.is_file())
    }

    /// The canonical path of the program an artifact runs, if it exists and is allowed.
    fn allowed_program(
        &self,
        service: &ServiceName,
        version: &Version,
        artifact: &Artifact,
    ) -> Result<PathBuf, PlatformError> {
        let unrunnable = |reason: String| PlatformError::Unrunnable {
            service: service.clone(),
            version: version.clone(),
            reason,
        };
        let Some(program) = artifact.command.first() else {
            return Err(unrunnable(
                "its artifact has no command, and the local platform runs commands".into(),
            ));
        };
        let Some(found) = self.find_program(program) else {
            return Err(unrunnable(format!(
                "its artifact's program {} is not in the orchestrator's --bin-dir \
                 directories or PATH",
                flotilla_model::quote(program)
            )));
        };
        self.inner.allowed.permits(&found).ok_or_else(|| {
            unrunnable(format!(
                "its artifact's program {} is not allowed on this orchestrator: the local \
                 platform runs only programs its operator allowed with --allow-program",
                flotilla_model::quote(program)
            ))
        })
    }

    async fn find_record(&self, pid: u32) -> Result<Option<(PathBuf, Record)>, PlatformError> {
        let records = self.inner.state_dir.join("records");
        let mut services = match tokio::fs::read_dir(&records).await {
            Ok(dir) => dir,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(records_error(&records, e)),
        };
        while let Some(entry) = services
            .next_entry()
            .await
            .map_err(|e| records_error(&records, e))?
        {
            let path = entry.path().join(format!("{pid}.json"));
            if let Some(record) = read_record(&path).await? {
                return Ok(Some((path, record)));
            }
        }
        Ok(None)
    }

    async fn wait_for_exit(&self, pid: u32, within: Duration) -> bool {
        let child = self
            .inner
            .children
            .lock()
            .ok()
            .and_then(|c| c.get(&pid).cloned());
        let exited = async {
            match child {
                Some(mut exited) => {
                    let _ = exited.wait_for(|exited| *exited).await;
                }
                None => {
                    while process_alive(pid, None) {
                        tokio::time::sleep(EXIT_POLL).await;
                    }
                }
            }
        };
        tokio::time::timeout(within, exited).await.is_ok()
    }
}

#[async_trait]
impl Platform for LocalProcessPlatform {
    fn name(&self) -> &'static str {
        "local"
    }

    async fn check(
        &self,
        service: &ServiceName,
        version: &Version,
        artifact: &Artifact,
    ) -> Result<(), PlatformError> {
        self.allowed_program(service, version, artifact).map(drop)
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<PlatformInstance, PlatformError> {
        let program_path = self.allowed_program(&spec.service, &spec.version, &spec.artifact)?;
        let what = format!("{}@{}", spec.service, spec.version);
        let start_error = |source| PlatformError::Start {
            what: what.clone(),
            source,
        };
        let bind = free_address(&self.inner.host).await.map_err(start_error)?;
        let port = bind.port();
        let listen = bind.to_string();
        let advertise = format!("{}:{port}", self.inner.host);
        let command: Vec<String> = spec
            .artifact
            .command
            .iter()
            .map(|arg| {
                arg.replace("{listen}", &listen)
                    .replace("{advertise}", &advertise)
                    .replace("{host}", &self.inner.host)
                    .replace("{port}", &port.to_string())
                    .replace("{registry}", &self.inner.registry)
            })
            .collect();

        let logs = self.inner.state_dir.join("logs");
        let records = self.records_dir(&spec.service);
        for dir in [&logs, &records] {
            tokio::fs::create_dir_all(dir).await.map_err(start_error)?;
        }
        let log_path = logs.join(format!("{}-{}-{port}.log", spec.service, spec.version));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(start_error)?;
        let log_err = log.try_clone().map_err(start_error)?;

        // The path that was checked is the one run; the program keeps the name it was given
        // as argv[0] (a multi-call binary such as busybox dispatches on it).
        let mut program = tokio::process::Command::new(&program_path);
        program.arg0(&command[0]);
        // The instance's startup joins the rollout's trace.
        if let Some(traceparent) = flotilla_telemetry::propagation::current_traceparent() {
            program.env(
                flotilla_telemetry::propagation::TRACEPARENT_ENV,
                traceparent,
            );
        }
        let mut child = program
            .args(&command[1..])
            .env("FLOTILLA_LISTEN", &listen)
            .env("FLOTILLA_ADVERTISE", &advertise)
            .env("FLOTILLA_REGISTRY", &self.inner.registry)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            // Instances outlive the orchestrator, like pods outlive their controller.
            .kill_on_drop(false)
            .spawn()
            .map_err(start_error)?;
        let pid = child.id().ok_or_else(|| {
            start_error(std::io::Error::other(
                "the process exited before it was seen",
            ))
        })?;
        let start_ticks = process_start_ticks(pid).unwrap_or(0);

        let (exited_tx, exited_rx) = watch::channel(false);
        if let Ok(mut children) = self.inner.children.lock() {
            children.insert(pid, exited_rx);
        }
        let inner = self.inner.clone();
        let log_of_exit = log_path.clone();
        tokio::spawn(async move {
            let status = child.wait().await;
            tracing::info!(pid, ?status, "instance process exited");
            let report = super::exit_report(&describe_exit(&status), &log_tail(&log_of_exit).await);
            inner.exits.insert(&pid.to_string(), report);
            let _ = exited_tx.send(true);
            if let Ok(mut children) = inner.children.lock() {
                children.remove(&pid);
            }
        });

        let record = Record {
            pid,
            start_ticks,
            service: spec.service.clone(),
            version: spec.version.clone(),
            address: advertise.clone(),
            rollout: Some(spec.rollout.clone()),
            command,
        };
        write_record(&records.join(format!("{pid}.json")), &record)
            .await
            .map_err(start_error)?;
        tracing::info!(%what, pid, address = %advertise, log = %log_path.display(), "instance started");
        Ok(record.into_instance())
    }

    async fn stop(&self, handle: &str) -> Result<(), PlatformError> {
        let pid: u32 = handle.parse().map_err(|_| PlatformError::Stop {
            handle: handle.to_owned(),
            reason: "not a process id".into(),
        })?;
        let Some((path, record)) = self.find_record(pid).await? else {
            return Ok(());
        };
        if process_alive(pid, Some(record.start_ticks)) {
            signal(pid, Signal::SIGTERM);
            if !self.wait_for_exit(pid, self.inner.stop_grace).await {
                tracing::warn!(pid, grace = ?self.inner.stop_grace, "instance did not stop; killing it");
                signal(pid, Signal::SIGKILL);
                if !self.wait_for_exit(pid, Duration::from_secs(5)).await {
                    return Err(PlatformError::Stop {
                        handle: handle.to_owned(),
                        reason: "still running 5 s after SIGKILL".into(),
                    });
                }
            }
        }
        remove_record(&path).await;
        tracing::info!(pid, service = %record.service, version = %record.version, "instance stopped");
        Ok(())
    }

    async fn exit_report(&self, handle: &str) -> Option<String> {
        let pid: u32 = handle.parse().ok()?;
        // `list` may see the process gone before its reaper has written the report: wait for
        // the reaper of a process this driver started (it reports before it flags the exit).
        let exited = self
            .inner
            .children
            .lock()
            .ok()
            .and_then(|children| children.get(&pid).cloned());
        if let Some(mut exited) = exited {
            let _ = tokio::time::timeout(EXIT_REPORT_WAIT, exited.wait_for(|exited| *exited)).await;
        }
        self.inner.exits.get(handle)
    }

    async fn list(&self, service: &ServiceName) -> Result<Vec<PlatformInstance>, PlatformError> {
        let dir = self.records_dir(service);
        let mut entries = match tokio::fs::read_dir(&dir).await {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(records_error(&dir, e)),
        };
        let mut live = Vec::new();
        while let Some(entry) = entries
            .next_entry()
            .await
            .map_err(|e| records_error(&dir, e))?
        {
            let path = entry.path();
            let Some(record) = read_record(&path).await? else {
                continue;
            };
            if process_alive(record.pid, Some(record.start_ticks)) {
                live.push(record.into_instance());
            } else {
                remove_record(&path).await;
            }
        }
        live.sort_by(|a, b| a.version.cmp(&b.version).then(a.address.cmp(&b.address)));
        Ok(live)
    }
}

impl Record {
    fn into_instance(self) -> PlatformInstance {
        PlatformInstance {
            handle: self.pid.to_string(),
            service: self.service,
            version: self.version,
            address: self.address,
            rollout: self.rollout,
        }
    }
}

/// "exit code 3", "killed by signal 9".
fn describe_exit(status: &std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        Ok(status) => match (status.code(), status.signal()) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => status.to_string(),
        },
        Err(e) => format!("exit status unreadable ({e})"),
    }
}

/// The end of a log file (its last 8 KiB), for an exit report.
async fn log_tail(path: &Path) -> String {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    const TAIL_BYTES: u64 = 8 * 1024;
    let Ok(mut file) = tokio::fs::File::open(path).await else {
        return String::new();
    };
    let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
    if file
        .seek(std::io::SeekFrom::Start(len.saturating_sub(TAIL_BYTES)))
        .await
        .is_err()
    {
        return String::new();
    }
    let mut bytes = Vec::new();
    let _ = file.read_to_end(&mut bytes).await;
    String::from_utf8_lossy(&bytes).into_owned()
}

fn records_error(path: &Path, error: std::io::Error) -> PlatformError {
    PlatformError::Records(format!("{}: {error}", path.display()))
}

async fn read_record(path: &Path) -> Result<Option<Record>, PlatformError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| PlatformError::Records(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(records_error(path, e)),
    }
}

/// Written to a temporary name and renamed, so a crash never leaves half a record.
async fn write_record(path: &Path, record: &Record) -> std::io::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let bytes = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
    tokio::fs::write(&temporary, bytes).await?;
    tokio::fs::rename(&temporary, path).await
}

async fn remove_record(path: &Path) {
    if let Err(error) = tokio::fs::remove_file(path).await
        && error.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), %error, "cannot remove an instance record");
    }
}

/// An address of `host` with a port nobody listens on now. Another process could take the port
/// before the instance binds it; the instance then exits and the health gate reports it.
async fn free_address(host: &str) -> std::io::Result<std::net::SocketAddr> {
    let listener = tokio::net::TcpListener::bind((host, 0)).await?;
    listener.local_addr()
}

fn signal(pid: u32, signal: Signal) {
    let Ok(raw) = i32::try_from(pid) else { return };
    if let Err(error) = nix::sys::signal::kill(Pid::from_raw(raw), signal) {
        tracing::debug!(pid, %error, ?signal, "signal not delivered");
    }
}

/// /proc/PID/stat after the command name: state is the first field, start time the 20th.
fn stat_fields(pid: u32) -> Option<(char, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let start_ticks = fields.nth(18)?.parse().ok()?;
    Some((state, start_ticks))
}

fn process_start_ticks(pid: u32) -> Option<u64> {
    stat_fields(pid).map(|(_, ticks)| ticks)
}

/// Alive, not a zombie, and (when known) the same process that was started, not a reused pid.
fn process_alive(pid: u32, start_ticks: Option<u64>) -> bool {
    match stat_fields(pid) {
        Some(('Z' | 'X', _)) | None => false,
        Some((_, ticks)) => start_ticks.is_none_or(|expected| expected == 0 || expected == ticks),
    }
}

#[cfg(test)]
mod tests;
