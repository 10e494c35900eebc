//! The controller against in-memory fakes of the registry, the platform, the instances' health
//! and their metrics, on the embedded store in memory: no process, port or database server.
//! Every fake writes what it was asked into one log, so the order of effects is checkable.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use async_trait::async_trait;
use flotilla_model::{
    AnalysisSpec, Artifact, EventKind, Gate, Health, LifecycleState, PlanStep, Rollout,
    RolloutState, ServiceName, Timestamp, Verdict, Version, fixtures,
};
use flotilla_store::{Fence, RolloutStore, SqliteStore};
use flotilla_telemetry::scrape::Sample;
use tokio::sync::watch;

use super::{Controller, ControllerError};
use crate::{
    alerts::Alerts,
    analysis::{InstanceMetrics, MetricsSource},
    context::Context,
    health::{HealthProbe, HealthReport},
    metrics::OrchestratorMetrics,
    platform::{InstanceSpec, Platform, PlatformError, PlatformInstance},
    registry::{Consumer, PublishedVersion, RegisteredInstance, Registry, RegistryError},
};

/// The fleet as the fakes see it: what runs, how healthy it is, what it answered.
#[derive(Debug)]
struct World {
    running: BTreeMap<String, PlatformInstance>,
    started: u32,
    /// Every effect, in order: `start 1.1.0`, `stop 1.1.0 (h3)`, `route 1.0.0=100 1.1.0=0`.
    log: Vec<String>,
    /// Health reported for instances not named in `health`.
    default_health: Health,
    health: BTreeMap<String, Health>,
    /// Calls each version's instances answer between two metric reads (0: no traffic).
    calls_per_read: u64,
    reads: BTreeMap<String, u64>,
}

#[derive(Debug, Clone)]
struct Fake {
    world: Arc<Mutex<World>>,
    health_changed: watch::Sender<()>,
}

impl Fake {
    fn new() -> Self {
        Self {
            world: Arc::new(Mutex::new(World {
                running: BTreeMap::new(),
                started: 0,
                log: Vec::new(),
                default_health: Health::Serving,
                health: BTreeMap::new(),
                calls_per_read: 100,
                reads: BTreeMap::new(),
            })),
            health_changed: watch::channel(()).0,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut World) -> T) -> T {
        f(&mut self.world.lock().unwrap())
    }

    fn log(&self) -> Vec<String> {
        self.with(|w| w.log.clone())
    }

    fn set_default_health(&self, health: Health) {
        self.with(|w| w.default_health = health);
        self.health_changed.send_replace(());
    }

    /// Instances of `version` already running (started by someone before the rollout).
    fn run(&self, version: &str, count: u32) {
        for _ in 0..count {
            self.with(|w| {
                let n = w.running.len() + 100;
                w.running.insert(
                    format!("h{n}"),
                    PlatformInstance {
                        handle: format!("h{n}"),
                        service: service(),
                        version: Version::parse(version).unwrap(),
                        address: format!("10.0.0.{n}:7000"),
                        rollout: None,
                    },
                );
            });
        }
    }
}

fn service() -> ServiceName {
    ServiceName::parse("service", "greeter").unwrap()
}

#[async_trait]
impl Platform for Fake {
    fn name(&self) -> &'static str {
        "fake"
    }

    async fn check(&self, _: &ServiceName, _: &Version, _: &Artifact) -> Result<(), PlatformError> {
        Ok(())
    }

    async fn start(&self, spec: &InstanceSpec) -> Result<PlatformInstance, PlatformError> {
        Ok(self.with(|w| {
            w.started += 1;
            let n = w.started;
            let instance = PlatformInstance {
                handle: format!("h{n}"),
                service: spec.service.clone(),
                version: spec.version.clone(),
                address: format!("10.0.1.{n}:7000"),
                rollout: Some(spec.rollout.clone()),
            };
            w.log.push(format!("start {}", spec.version));
            w.running.insert(instance.handle.clone(), instance.clone());
            instance
        }))
    }

    async fn stop(&self, handle: &str) -> Result<(), PlatformError> {
        self.with(|w| {
            if let Some(instance) = w.running.remove(handle) {
                w.log.push(format!("stop {} ({handle})", instance.version));
            }
        });
        Ok(())
    }

    async fn list(&self, _: &ServiceName) -> Result<Vec<PlatformInstance>, PlatformError> {
        Ok(self.with(|w| w.running.values().cloned().collect()))
    }
}

#[async_trait]
impl Registry for Fake {
    async fn version(
        &self,
        _: &ServiceName,
        version: &Version,
    ) -> Result<PublishedVersion, RegistryError> {
        Ok(PublishedVersion {
            version: version.clone(),
            state: LifecycleState::Released,
            artifact: Artifact {
                image: String::new(),
                command: vec!["demo-greeter".into()],
            },
            schema: Vec::new(),
        })
    }

    /// Every running instance registers itself and serves.
    async fn instances(&self, _: &ServiceName) -> Result<Vec<RegisteredInstance>, RegistryError> {
        Ok(self.with(|w| {
            w.running
                .values()
                .map(|i| RegisteredInstance {
                    version: i.version.clone(),
                    address: i.address.clone(),
                    serving: true,
                })
                .collect()
        }))
    }

    async fn set_route(
        &self,
        _: &ServiceName,
        weights: &[(Version, u32)],
    ) -> Result<(), RegistryError> {
        let shown: Vec<String> = weights.iter().map(|(v, w)| format!("{v}={w}")).collect();
        self.with(|w| w.log.push(format!("route {}", shown.join(" "))));
        Ok(())
    }

    async fn unannounced_breaks(
        &self,
        _: &ServiceName,
        _: &PublishedVersion,
        _: &PublishedVersion,
    ) -> Result<Vec<String>, RegistryError> {
        Ok(Vec::new())
    }

    async fn consumers(&self, _: &ServiceName) -> Result<Vec<Consumer>, RegistryError> {
        Ok(Vec::new())
    }
}

#[async_trait]
impl HealthProbe for Fake {
    async fn follow(&self, address: String, report: HealthReport) {
        let mut changed = self.health_changed.subscribe();
        loop {
            let health = self.with(|w| w.health.get(&address).copied().unwrap_or(w.default_health));
            report.set(health);
            if changed.changed().await.is_err() {
                return;
            }
        }
    }
}

#[async_trait]
impl InstanceMetrics for Fake {
    /// Counters that grow by `calls_per_read` successful calls at every read, all fast.
    async fn read(&self, address: &str) -> Result<Vec<Sample>, String> {
        let (version, total) = self.with(|w| {
            let version = w
                .running
                .values()
                .find(|i| i.address == address)
                .map(|i| i.version.to_string())
                .unwrap_or_default();
            let per_read = w.calls_per_read;
            let total = w.reads.entry(address.to_owned()).or_insert(0);
            *total += per_read;
            (version, *total)
        });
        let text = format!(
            "flotilla_grpc_server_handled_total{{grpc_code=\"OK\",version=\"{version}\"}} {total}\n\
             flotilla_grpc_server_handling_seconds_bucket{{le=\"0.005\",version=\"{version}\"}} {total}\n\
             flotilla_grpc_server_handling_seconds_bucket{{le=\"+Inf\",version=\"{version}\"}} {total}\n"
        );
        flotilla_telemetry::scrape::parse(&text).map_err(|e| e.to_string())
    }
}

/// A store in memory and a context whose every outside party is `fake`.
async fn context(fake: &Fake, holder: &str, store: Arc<dyn RolloutStore>) -> Context {
    Context {
        store,
        registry: Arc::new(fake.clone()),
        platform: Arc::new(fake.clone()),
        holder: holder.into(),
        lease_ttl: Duration::from_secs(3),
        rollback_window: Duration::from_secs(600),
        analysis_source: MetricsSource::Instances(Arc::new(fake.clone())),
        health: Arc::new(fake.clone()),
        metrics: OrchestratorMetrics::unregistered(),
        alerts: Alerts::disabled(),
        wake: Arc::default(),
    }
}

/// A canary greeter 1.0.0 → 1.1.0 over `plan`, stored, with analysis every 20 ms.
async fn stored(store: &Arc<dyn RolloutStore>, plan: Vec<PlanStep>) -> Rollout {
    let mut rollout = fixtures::canary_rollout(Timestamp::now());
    rollout.plan = plan;
    rollout.owner = None;
    rollout.analysis = AnalysisSpec {
        interval_ms: 20,
        inconclusive_limit: 2,
        ..AnalysisSpec::default()
    };
    store.create_rollout(&rollout, &[]).await.unwrap()
}

/// Runs a controller holding the lease as `holder` until it ends, or until `stop` is sent.
fn spawn(
    ctx: Context,
    rollout: Rollout,
) -> (
    tokio::task::JoinHandle<Result<(), ControllerError>>,
    watch::Sender<bool>,
) {
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(async move {
        let held = ctx
            .store
            .acquire_lease(&rollout.service, &ctx.holder, 3_000, Timestamp::now())
            .await?;
        assert!(held, "the lease is free");
        Controller::new(ctx, rollout).run(stopped).await
    });
    (task, stop)
}

/// Waits (up to 20 s, a liveness bound) until the stored rollout satisfies `done`.
async fn until(
    store: &Arc<dyn RolloutStore>,
    rollout: &Rollout,
    done: impl Fn(&Rollout) -> bool,
) -> Rollout {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let current = store.get_rollout(&rollout.id).await.unwrap();
        if done(&current) {
            return current;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never reached: {} at step {} ({})",
            current.state,
            current.step_index,
            current.status_message
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn memory_store() -> Arc<dyn RolloutStore> {
    Arc::new(SqliteStore::open_in_memory().await.unwrap())
}

fn kinds(events: &[flotilla_model::RolloutEvent], kind: EventKind) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.kind == kind)
        .map(|e| e.message.clone())
        .collect()
}

#[tokio::test]
async fn a_canary_carries_out_its_steps_in_order() {
    let fake = Fake::new();
    fake.run("1.0.0", 2);
    let store = memory_store().await;
    let plan = vec![
        PlanStep::SetWeight(0),
        PlanStep::ScaleNew(1),
        PlanStep::SetWeight(50),
        PlanStep::Analysis { intervals: 2 },
        PlanStep::ScaleNew(2),
        PlanStep::SetWeight(100),
        PlanStep::ScaleStable(0),
    ];
    let rollout = stored(&store, plan.clone()).await;
    let (task, _stop) = spawn(
        context(&fake, "test-a", store.clone()).await,
        rollout.clone(),
    );
    let done = until(&store, &rollout, |r| !r.state.is_active()).await;
    task.await.unwrap().unwrap();

    assert_eq!(
        done.state,
        RolloutState::Succeeded,
        "{}",
        done.status_message
    );
    let events = store.rollout_events(&rollout.id, 0).await.unwrap();
    let completed = kinds(&events, EventKind::StepCompleted);
    let expected: Vec<String> = plan
        .iter()
        .enumerate()
        .map(|(i, step)| format!("step {} done: {step}", i + 1))
        .collect();
    assert_eq!(completed, expected);
    let analysis = done.last_analysis.expect("analysis ran");
    assert_eq!(analysis.verdict, Verdict::Passed);
    assert_eq!(
        fake.log(),
        [
            "route 1.0.0=100 1.1.0=0",
            "start 1.1.0",
            "route 1.0.0=50 1.1.0=50",
            "start 1.1.0",
            "route 1.0.0=0 1.1.0=100",
            "stop 1.0.0 (h100)",
            "stop 1.0.0 (h101)",
        ]
    );
}

#[tokio::test]
async fn an_abort_moves_traffic_back_before_it_stops_anything() {
    let fake = Fake::new();
    fake.run("1.0.0", 2);
    let store = memory_store().await;
    let rollout = stored(
        &store,
        vec![
            PlanStep::SetWeight(0),
            PlanStep::ScaleNew(1),
            PlanStep::SetWeight(50),
            PlanStep::Pause { duration_ms: None },
            PlanStep::SetWeight(100),
        ],
    )
    .await;
    let (task, _stop) = spawn(
        context(&fake, "test-a", store.clone()).await,
        rollout.clone(),
    );
    let paused = until(&store, &rollout, |r| r.step_index == 3).await;
    assert_eq!(fake.log().last().unwrap(), "route 1.0.0=50 1.1.0=50");

    assert_eq!(paused.state, RolloutState::Progressing);
    // An operator's abort, as the API writes it: compare-and-set, again after a lost race.
    loop {
        let mut current = store.get_rollout(&rollout.id).await.unwrap();
        let events = current.abort("bad dashboards", Timestamp::now()).unwrap();
        match store
            .update_rollout(&current, &events, None, Timestamp::now())
            .await
        {
            Ok(_) => break,
            Err(flotilla_store::StoreError::RolloutConflict { .. }) => continue,
            Err(error) => panic!("{error}"),
        }
    }
    let done = until(&store, &rollout, |r| !r.state.is_active()).await;
    task.await.unwrap().unwrap();

    assert_eq!(done.state, RolloutState::Aborted);
    assert_eq!(done.halt.unwrap().gate, Gate::Operator);
    let log = fake.log();
    let back = log
        .iter()
        .position(|e| e == "route 1.0.0=100 1.1.0=0")
        .unwrap();
    let stopped = log
        .iter()
        .position(|e| e.starts_with("stop 1.1.0"))
        .unwrap();
    assert!(back < stopped, "traffic first: {log:?}");
    assert_eq!(
        log.iter().filter(|e| e.starts_with("stop 1.0.0")).count(),
        0,
        "{log:?}"
    );
}

#[tokio::test]
async fn missing_analysis_data_halts_the_rollout_and_never_passes_it() {
    let fake = Fake::new();
    fake.run("1.0.0", 1);
    fake.with(|w| w.calls_per_read = 0);
    let store = memory_store().await;
    let rollout = stored(
        &store,
        vec![
            PlanStep::ScaleNew(1),
            PlanStep::SetWeight(10),
            PlanStep::Analysis { intervals: 1 },
            PlanStep::SetWeight(100),
        ],
    )
    .await;
    let (task, stop) = spawn(
        context(&fake, "test-a", store.clone()).await,
        rollout.clone(),
    );
    let held = until(&store, &rollout, |r| r.state == RolloutState::Paused).await;
    let halt = held.halt.expect("the hold says why");
    assert_eq!(halt.gate, Gate::Analysis);
    assert!(
        halt.message.contains("missing data never passes"),
        "{}",
        halt.message
    );
    assert_eq!(held.step_index, 2, "still at the analysis step");
    assert_eq!(held.last_analysis.unwrap().verdict, Verdict::Inconclusive);
    let events = store.rollout_events(&rollout.id, 0).await.unwrap();
    assert!(
        !kinds(&events, EventKind::StepCompleted)
            .iter()
            .any(|m| m.starts_with("step 3 done")),
        "the analysis step never passed"
    );
    assert!(!fake.log().iter().any(|e| e.contains("1.1.0=100")));
    stop.send_replace(true);
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn a_lost_lease_stops_every_write() {
    let fake = Fake::new();
    fake.run("1.0.0", 1);
    let store = memory_store().await;
    let rollout = stored(
        &store,
        vec![
            PlanStep::ScaleNew(1),
            PlanStep::Pause { duration_ms: None },
            PlanStep::SetWeight(100),
        ],
    )
    .await;
    let (task, _stop) = spawn(
        context(&fake, "test-a", store.clone()).await,
        rollout.clone(),
    );
    until(&store, &rollout, |r| r.step_index == 1).await;

    // Another orchestrator holds the lease now, and writes under it.
    store.release_lease(&service(), "test-a").await.unwrap();
    assert!(
        store
            .acquire_lease(&service(), "test-b", 60_000, Timestamp::now())
            .await
            .unwrap()
    );
    let mut theirs = store.get_rollout(&rollout.id).await.unwrap();
    theirs.owner = Some("test-b".into());
    let events = theirs.promote(false, Timestamp::now()).unwrap();
    let theirs = store
        .update_rollout(
            &theirs,
            &events,
            Some(Fence { holder: "test-b" }),
            Timestamp::now(),
        )
        .await
        .unwrap();

    let ended = tokio::time::timeout(Duration::from_secs(20), task)
        .await
        .expect("the controller stops")
        .unwrap();
    assert!(
        matches!(ended, Err(ControllerError::LeaseLost(_))),
        "{ended:?}"
    );
    let after = store.get_rollout(&rollout.id).await.unwrap();
    assert_eq!(
        after.generation, theirs.generation,
        "nothing written after the loss"
    );
    assert_eq!(after.owner.as_deref(), Some("test-b"));
    assert!(
        !fake.log().iter().any(|e| e.contains("1.1.0=100")),
        "{:?}",
        fake.log()
    );
}

#[tokio::test]
async fn a_restart_in_the_middle_of_a_step_does_not_start_instances_twice() {
    let fake = Fake::new();
    fake.run("1.0.0", 2);
    // The new instances start but are not SERVING yet, so the scale step waits.
    fake.set_default_health(Health::Starting);
    let store = memory_store().await;
    let rollout = stored(
        &store,
        vec![
            PlanStep::SetWeight(0),
            PlanStep::ScaleNew(2),
            PlanStep::SetWeight(100),
        ],
    )
    .await;
    let (task, stop) = spawn(
        context(&fake, "test-a", store.clone()).await,
        rollout.clone(),
    );
    until(&store, &rollout, |r| {
        r.step_index == 1 && r.status_message.contains("0 of 2 instance(s)")
    })
    .await;
    assert_eq!(fake.with(|w| w.started), 2);
    stop.send_replace(true);
    task.await.unwrap().unwrap();

    // A successor takes the same stored rollout over.
    let current = store.get_rollout(&rollout.id).await.unwrap();
    let (task, _stop) = spawn(context(&fake, "test-b", store.clone()).await, current);
    until(&store, &rollout, |r| r.owner.as_deref() == Some("test-b")).await;
    fake.set_default_health(Health::Serving);
    let done = until(&store, &rollout, |r| !r.state.is_active()).await;
    task.await.unwrap().unwrap();
    assert_eq!(
        done.state,
        RolloutState::Succeeded,
        "{}",
        done.status_message
    );
    assert_eq!(
        fake.with(|w| w.started),
        2,
        "found, not started again: {:?}",
        fake.log()
    );
    let events = store.rollout_events(&rollout.id, 0).await.unwrap();
    assert!(
        kinds(&events, EventKind::OwnerChanged)
            .iter()
            .any(|m| m == "test-b took over at step 2 of 3"),
        "{events:?}"
    );
}
