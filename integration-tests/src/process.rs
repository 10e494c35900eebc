//! The suite's binaries as child processes.

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

use anyhow::{Context, bail};

/// The directory cargo put this workspace's binaries in: the test executable lives in its `deps/`.
pub fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let deps = exe.parent().expect("the test executable is in a directory");
    deps.parent().unwrap_or(deps).to_path_buf()
}

/// The path of one of the suite's binaries, which must be built (`cargo build --workspace --bins`;
/// `cargo test --workspace` and nextest build them too).
pub fn binary(name: &str) -> PathBuf {
    let path = binary_dir().join(name);
    assert!(
        path.exists(),
        "{} is not built; run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// A running process of one of the suite's binaries, killed when dropped. Every suite binary
/// prints `<binary> listening on <address>` on stdout once it serves; that line is awaited.
#[derive(Debug)]
pub struct SuiteProcess {
    child: Option<Child>,
    pub address: SocketAddr,
    /// What the process wrote to stderr so far is forwarded to the test's stderr.
    _stderr: std::thread::JoinHandle<()>,
}

impl SuiteProcess {
    /// Starts the registry on an ephemeral loopback port with `args`.
    pub fn registry(args: &[&str]) -> anyhow::Result<Self> {
        let mut all = vec!["--listen", "127.0.0.1:0"];
        all.extend_from_slice(args);
        Self::start("version-registry", &all)
    }

    /// Starts `binary` with `args` and waits until it announces its address.
    pub fn start(binary: &str, args: &[&str]) -> anyhow::Result<Self> {
        Self::start_with_env(binary, args, &[])
    }

    /// [`Self::start`] with extra environment variables.
    pub fn start_with_env(
        binary: &str,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let mut child = Command::new(self::binary(binary))
            .args(args)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {binary}"))?;
        let stdout = child.stdout.take().expect("stdout is piped");
        let stderr = child.stderr.take().expect("stderr is piped");
        let label = format!("[{binary} {}]", child.id());
        let stderr_thread = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("{label} {line}");
            }
        });
        let (tx, rx) = mpsc::channel();
        let announcement = format!("{binary} listening on ");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(address) = line.strip_prefix(&announcement) {
                    let _ = tx.send(address.to_owned());
                }
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(address) => address.parse().context("parsing the announced address")?,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait()?;
                bail!("{binary} did not announce its address within 30 s ({status})");
            }
        };
        Ok(Self {
            child: Some(child),
            address,
            _stderr: stderr_thread,
        })
    }

    /// Kills the process at once (SIGKILL), as a crash would, and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let mut child = self.child.take().context("already stopped")?;
        child.kill()?;
        child.wait()?;
        Ok(())
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `host:port`, as grpcurl wants it.
    pub fn authority(&self) -> String {
        self.address.to_string()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the process is running").id()
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns its exit status.
    pub fn terminate(&mut self, timeout: Duration) -> anyhow::Result<std::process::ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()?;
        if !status.success() {
            bail!("kill -TERM failed");
        }
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                bail!("the process did not exit within {timeout:?} of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for SuiteProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
