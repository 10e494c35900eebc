//! A fleet with a rollout orchestrator: a registry, the greeter's releases published (not run),
//! an orchestrator that runs them through its local-process platform, frontends, and load.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use flotilla_proto::{
    demo::frontend::v1::{GreetRequest, frontend_client::FrontendClient},
    rollout::v1::{self as pb, orchestrator_client::OrchestratorClient},
};
use tonic::transport::Channel;

use crate::{SuiteProcess, process::binary_dir};

/// A registry (in memory), an orchestrator (embedded store in a temporary directory) and the
/// processes started beside them. Dropping it kills every instance the orchestrator started, too.
#[derive(Debug)]
pub struct RolloutFleet {
    pub registry: SuiteProcess,
    pub orchestrators: Vec<Option<SuiteProcess>>,
    pub frontends: Vec<SuiteProcess>,
    pub dir: tempfile::TempDir,
    /// The orchestrators' PostgreSQL database; None for the embedded store.
    pub database_url: Option<String>,
    /// Given to every orchestrator started from now on, after the fleet's own flags.
    pub orchestrator_args: Vec<String>,
    /// Environment of every process the fleet starts (e.g. where to export traces); the
    /// orchestrator hands it on to the instances it starts.
    pub env: Vec<(String, String)>,
}

impl RolloutFleet {
    pub fn start() -> anyhow::Result<Self> {
        Self::start_on(None)
    }

    /// With `database_url`, the orchestrators keep their rollouts in that PostgreSQL database.
    pub fn start_on(database_url: Option<String>) -> anyhow::Result<Self> {
        let mut fleet = Self::without_orchestrator(database_url)?;
        fleet.start_orchestrator()?;
        Ok(fleet)
    }

    /// The registry alone, for a test that starts what the orchestrator needs (a Prometheus
    /// discovering from this registry) and sets `orchestrator_args` before `start_orchestrator`.
    pub fn without_orchestrator(database_url: Option<String>) -> anyhow::Result<Self> {
        Self::with_env(database_url, Vec::new())
    }

    /// A registry started with `env`, which every process the fleet starts later gets too.
    pub fn with_env(
        database_url: Option<String>,
        env: Vec<(String, String)>,
    ) -> anyhow::Result<Self> {
        let env_refs: Vec<(&str, &str)> =
            env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let registry = SuiteProcess::start_with_env(
            "version-registry",
            &["--listen", "127.0.0.1:0", "--data-file", ":memory:"],
            &env_refs,
        )?;
        Ok(Self {
            registry,
            orchestrators: Vec::new(),
            frontends: Vec::new(),
            dir: tempfile::tempdir()?,
            database_url,
            orchestrator_args: Vec::new(),
            env,
        })
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("instances")
    }

    /// Starts one more orchestrator on the same store and state directory; returns its index.
    pub fn start_orchestrator(&mut self) -> anyhow::Result<usize> {
        let registry = self.registry.endpoint();
        let data = self.dir.path().join("orchestrator.sqlite");
        let state = self.state_dir();
        let bin = binary_dir();
        let (greeter, frontend) = (bin.join("demo-greeter"), bin.join("demo-frontend"));
        let store = match &self.database_url {
            Some(url) => ["--database-url", url.as_str()],
            None => [
                "--data-file",
                data.to_str().context("a UTF-8 temporary path")?,
            ],
        };
        let mut args = vec![
            "--listen",
            "127.0.0.1:0",
            "--registry",
            &registry,
            store[0],
            store[1],
            "--state-dir",
            state.to_str().context("a UTF-8 temporary path")?,
            "--bin-dir",
            bin.to_str().context("a UTF-8 binary path")?,
            // The fleet's own binaries, and nothing else.
            "--allow-program",
            greeter.to_str().context("a UTF-8 binary path")?,
            "--allow-program",
            frontend.to_str().context("a UTF-8 binary path")?,
            // Short, so a successor takes over quickly after a kill.
            "--lease-ttl-ms",
            "1500",
        ];
        args.extend(self.orchestrator_args.iter().map(String::as_str));
        let env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        self.orchestrators.push(Some(SuiteProcess::start_with_env(
            "rollout-orchestrator",
            &args,
            &env,
        )?));
        Ok(self.orchestrators.len() - 1)
    }

    pub fn orchestrator(&self, index: usize) -> &SuiteProcess {
        self.orchestrators[index]
            .as_ref()
            .expect("the orchestrator runs")
    }

    pub async fn client(&self, index: usize) -> anyhow::Result<OrchestratorClient<Channel>> {
        Ok(OrchestratorClient::connect(self.orchestrator(index).endpoint()).await?)
    }

    /// Publishes a greeter release as `version` (with fault flags in its artifact), not running it.
    pub fn publish_greeter(
        &self,
        release: &str,
        version: &str,
        faults: &[&str],
    ) -> anyhow::Result<()> {
        let registry = self.registry.endpoint();
        let mut args = vec![
            "--publish-only",
            "--registry",
            &registry,
            "--release",
            release,
            "--version",
            version,
        ];
        args.extend_from_slice(faults);
        let output = std::process::Command::new(crate::process::binary("demo-greeter"))
            .args(&args)
            .output()?;
        if !output.status.success() {
            bail!(
                "publishing greeter {version} failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }

    pub fn frontend(&mut self, version: &str, requirement: &str) -> anyhow::Result<usize> {
        let registry = self.registry.endpoint();
        let args = [
            "--registry",
            &registry,
            "--version",
            version,
            "--greeter-requirement",
            requirement,
        ];
        self.frontends
            .push(SuiteProcess::start("demo-frontend", &args)?);
        Ok(self.frontends.len() - 1)
    }

    pub async fn frontend_client(&self, index: usize) -> anyhow::Result<FrontendClient<Channel>> {
        Ok(FrontendClient::connect(self.frontends[index].endpoint()).await?)
    }

    /// Process ids of the instances the orchestrators started, from the platform's records.
    pub fn instance_pids(&self) -> Vec<u32> {
        let mut pids = Vec::new();
        let records = self.state_dir().join("records");
        for service in std::fs::read_dir(records).into_iter().flatten().flatten() {
            for record in std::fs::read_dir(service.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Some(pid) = record
                    .path()
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .and_then(|s| s.parse().ok())
                {
                    pids.push(pid);
                }
            }
        }
        pids
    }

    /// The versions of the greeter instances the platform runs, sorted.
    pub fn running_versions(&self) -> Vec<String> {
        let mut versions: Vec<String> = self
            .instance_pids()
            .into_iter()
            .filter(|pid| Path::new(&format!("/proc/{pid}")).exists())
            .filter_map(|pid| {
                let path = self
                    .state_dir()
                    .join("records/greeter")
                    .join(format!("{pid}.json"));
                let record: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
                record["version"].as_str().map(str::to_owned)
            })
            .collect();
        versions.sort();
        versions
    }
}

impl Drop for RolloutFleet {
    fn drop(&mut self) {
        // The orchestrators first, so none starts anything while the instances go.
        for orchestrator in self.orchestrators.iter_mut().flatten() {
            let _ = orchestrator.kill();
        }
        for pid in self.instance_pids() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

/// A request for a rollout of greeter to `version` with `strategy` and quick analysis.
pub fn rollout_request(version: &str, strategy: pb::strategy::Kind) -> pb::StartRolloutRequest {
    pb::StartRolloutRequest {
        service: "greeter".into(),
        version: version.into(),
        strategy: Some(pb::Strategy {
            kind: Some(strategy),
        }),
        analysis: Some(pb::Analysis {
            interval: Some(prost_duration(Duration::from_millis(500))),
            min_requests: 5,
            // Two cores run the whole suite and its load: scheduler stalls reach tens of ms, so
            // latency is judged only far above that noise.
            p99_floor: Some(prost_duration(Duration::from_millis(250))),
            ..Default::default()
        }),
        health_deadline: Some(prost_duration(Duration::from_secs(20))),
        ..Default::default()
    }
}

pub fn canary(steps: &[pb::canary_step::Step]) -> pb::strategy::Kind {
    pb::strategy::Kind::Canary(pb::Canary {
        steps: steps
            .iter()
            .map(|step| pb::CanaryStep { step: Some(*step) })
            .collect(),
    })
}

pub fn prost_duration(d: Duration) -> prost_types::Duration {
    prost_types::Duration::try_from(d).expect("a small duration converts")
}

/// A rollout's state as the enum (UNSPECIFIED for a value this build does not know).
pub fn state(rollout: &pb::Rollout) -> pb::RolloutState {
    pb::RolloutState::try_from(rollout.state).unwrap_or(pb::RolloutState::Unspecified)
}

/// Follows a rollout until it ends (or `timeout`), returning its last state and every event.
pub async fn follow(
    client: &mut OrchestratorClient<Channel>,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<(pb::Rollout, Vec<pb::RolloutEvent>)> {
    let mut stream = client
        .watch_rollout(pb::WatchRolloutRequest { id: id.into() })
        .await?
        .into_inner();
    let mut events = Vec::new();
    let mut last = None;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, stream.message()).await {
            Err(_) => bail!(
                "rollout {id} did not end within {timeout:?}; last: {:?}",
                last.as_ref()
                    .map(|r: &pb::Rollout| (&r.state, &r.status_message))
            ),
            Ok(Ok(Some(update))) => {
                events.extend(update.events);
                last = update.rollout;
            }
            Ok(Ok(None)) => break,
            Ok(Err(status)) => bail!("watching {id}: {status}"),
        }
    }
    let rollout = last.context("the watch sent nothing")?;
    Ok((rollout, events))
}

/// Starts a rollout and follows it until it ends (or `timeout`): its last state and every event.
pub async fn run_to_end(
    client: &mut OrchestratorClient<Channel>,
    request: pb::StartRolloutRequest,
    timeout: Duration,
) -> anyhow::Result<(pb::Rollout, Vec<pb::RolloutEvent>)> {
    let started = client.start_rollout(request).await?.into_inner();
    follow(client, &started.id, timeout).await
}

/// Polls a rollout until `done` holds for it, and returns it then; an error after `timeout`.
pub async fn wait_until(
    client: &mut OrchestratorClient<Channel>,
    id: &str,
    timeout: Duration,
    done: impl Fn(&pb::Rollout) -> bool,
) -> anyhow::Result<pb::Rollout> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let now = client
            .get_rollout(pb::GetRolloutRequest { id: id.into() })
            .await?
            .into_inner();
        if done(&now) {
            return Ok(now);
        }
        if tokio::time::Instant::now() > deadline {
            bail!(
                "rollout {id} not there within {timeout:?}: {} {}",
                now.state,
                now.status_message
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True while the rollout's current step is a pause.
pub fn at_pause(rollout: &pb::Rollout) -> bool {
    rollout
        .plan
        .get(rollout.step_index as usize)
        .is_some_and(|step| matches!(step.action, Some(pb::plan_step::Action::Pause(_))))
}

/// Deploys greeter `version` as the first revision (×`replicas`) and waits until it serves.
pub async fn deploy(
    fleet: &RolloutFleet,
    version: &str,
    replicas: u32,
) -> anyhow::Result<pb::Rollout> {
    let mut client = fleet.client(0).await?;
    let mut request = rollout_request(version, canary(&[]));
    request.replicas = replicas;
    let (rollout, _) = run_to_end(&mut client, request, Duration::from_secs(60)).await?;
    if rollout.state != pb::RolloutState::Succeeded as i32 {
        bail!(
            "deploying {version} ended {:?}: {}",
            rollout.state,
            rollout.status_message
        );
    }
    Ok(rollout)
}

/// One call's outcome, as the load saw it.
#[derive(Debug, Clone)]
pub struct Answer {
    pub at: Instant,
    /// The greeter version that answered, or the failure's code.
    pub outcome: Result<String, tonic::Code>,
}

/// Calls through a frontend from `concurrency` tasks until stopped.
#[derive(Debug)]
pub struct Load {
    stop: Arc<AtomicBool>,
    answers: Arc<Mutex<Vec<Answer>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    pub fn start(client: FrontendClient<Channel>, concurrency: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let answers = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..concurrency)
            .map(|_| {
                let (mut client, stop, answers) = (client.clone(), stop.clone(), answers.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let outcome = client
                            .greet(GreetRequest {
                                name: "load".into(),
                                locale: String::new(),
                            })
                            .await
                            .map(|reply| reply.into_inner().greeter_version)
                            .map_err(|status| status.code());
                        answers.lock().expect("not poisoned").push(Answer {
                            at: Instant::now(),
                            outcome,
                        });
                        // Steady, not flat out: two cores also run the suite.
                        tokio::time::sleep(Duration::from_millis(2)).await;
                    }
                })
            })
            .collect();
        Self {
            stop,
            answers,
            tasks,
        }
    }

    /// When the first failed call so far was answered.
    pub fn first_failure(&self) -> Option<Instant> {
        self.answers
            .lock()
            .expect("not poisoned")
            .iter()
            .find(|a| a.outcome.is_err())
            .map(|a| a.at)
    }

    pub async fn stop(self) -> Vec<Answer> {
        self.stop.store(true, Ordering::Relaxed);
        for task in self.tasks {
            let _ = task.await;
        }
        self.answers.lock().expect("not poisoned").clone()
    }
}

/// Answers by version, failures under `"<failed: CODE>"`.
pub fn tally(answers: &[Answer]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for answer in answers {
        let key = match &answer.outcome {
            Ok(version) => version.clone(),
            Err(code) => format!("<failed: {code:?}>"),
        };
        *counts.entry(key).or_default() += 1;
    }
    counts
}
