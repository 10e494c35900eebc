//! The `demo-greeter` binary as a process against an in-process registry: what each release
//! answers and publishes, and what the fault knobs do.

use std::{process::Stdio, sync::Arc, time::Duration};

use flotilla_model::Schema;
use flotilla_proto::{
    demo::greeter::{v1_0_0, v1_1_0, v2_0_0},
    registry::v1::{self as pb, registry_client::RegistryClient},
};
use flotilla_store::SqliteStore;
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, BufReader},
    process::{Child, Command},
    sync::oneshot,
    time::Instant,
};
use tonic::transport::Channel;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client};

/// A registry on an ephemeral port with an in-memory store.
struct Registry {
    client: RegistryClient<Channel>,
    endpoint: String,
    _stop: oneshot::Sender<()>,
}

impl Registry {
    async fn start() -> Self {
        let config = flotilla_version_registry::Config::for_tests();
        let store = Arc::new(SqliteStore::open_in_memory().await.unwrap());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            flotilla_version_registry::serve(&config, store, listener, async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
        });
        let client = RegistryClient::connect(endpoint.clone()).await.unwrap();
        Self {
            client,
            endpoint,
            _stop: stop,
        }
    }

    async fn instances(&self) -> Vec<pb::Instance> {
        self.client
            .clone()
            .list_instances(pb::ListInstancesRequest {
                service: "greeter".into(),
                version: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .instances
    }

    async fn version(&self, version: &str) -> pb::Version {
        self.client
            .clone()
            .get_version(pb::GetVersionRequest {
                service: "greeter".into(),
                version: version.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }
}

/// A running `demo-greeter` and the address it printed.
struct Greeter {
    child: Child,
    address: String,
    channel: Channel,
}

impl Greeter {
    /// Starts the binary against `registry` with `args`, and waits for its ready line.
    async fn start(registry: &Registry, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut child = command(registry, args, env)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the greeter is ready within 20 s")
            .unwrap()
            .expect("the greeter printed its address");
        let address = line
            .strip_prefix("demo-greeter listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"));
        let channel = Channel::from_shared(format!("http://{address}"))
            .unwrap()
            .connect_lazy();
        Self {
            child,
            address: address.to_owned(),
            channel,
        }
    }

    fn client_1_1_0(&self) -> v1_1_0::greeter_client::GreeterClient<Channel> {
        v1_1_0::greeter_client::GreeterClient::new(self.channel.clone())
    }

    async fn health(&self, service: &str) -> ServingStatus {
        health_client::HealthClient::new(self.channel.clone())
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status()
    }

    /// Sends SIGTERM and waits for the exit status.
    async fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().unwrap().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("the greeter stops within 15 s of SIGTERM")
            .unwrap()
    }
}

/// The binary with `args` against `registry`; its logs go to the test's stderr (warnings only),
/// and it is killed if the test ends first.
fn command(registry: &Registry, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_demo-greeter"));
    command
        .args(["--registry", &registry.endpoint])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    command
}

/// Polls until `check` holds, failing after `within`.
async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn release_1_1_0_greets_by_locale_and_publishes_its_own_schema() {
    let registry = Registry::start().await;
    let greeter = Greeter::start(&registry, &["--release", "1.1.0"], &[]).await;

    let reply = greeter
        .client_1_1_0()
        .say_hello(v1_1_0::HelloRequest {
            name: "Ada".into(),
            locale: "fr".into(),
        })
        .await
        .unwrap();
    assert_eq!(reply.metadata().get("x-flotilla-version").unwrap(), "1.1.0");
    let reply = reply.into_inner();
    assert_eq!(reply.message, "Bonjour, Ada!");
    assert!(
        reply
            .served_by
            .starts_with("demo-greeter 1.1.0 on 127.0.0.1:"),
        "{}",
        reply.served_by
    );
    let bye = greeter
        .client_1_1_0()
        .say_goodbye(v1_1_0::GoodbyeRequest {
            name: "Ada".into(),
            locale: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bye.message, "Goodbye, Ada!");

    let version = registry.version("1.1.0").await;
    assert_eq!(
        version.schema_fingerprint,
        Schema::from_bytes(v1_1_0::DESCRIPTOR_SET)
            .unwrap()
            .fingerprint()
    );
    assert_eq!(
        version.artifact.unwrap().command,
        [
            "demo-greeter",
            "--release",
            "1.1.0",
            "--version",
            "1.1.0",
            "--listen",
            "{listen}",
            "--advertise",
            "{advertise}",
            "--registry",
            "{registry}"
        ]
    );
    assert!(version.dependencies.is_empty());
    assert_eq!(registry.instances().await.len(), 1);

    // SIGTERM: a clean exit that deregisters at once.
    assert!(greeter.terminate().await.success());
    assert!(registry.instances().await.is_empty());
}

#[tokio::test]
async fn unhealthy_after_turns_health_and_the_registry_not_serving() {
    let registry = Registry::start().await;
    let started = Instant::now();
    let greeter = Greeter::start(
        &registry,
        &["--release", "1.1.0", "--unhealthy-after", "1"],
        &[],
    )
    .await;
    for name in [
        "",
        "demo.greeter.v1.Greeter",
        "demo.greeter.v1.Greeter@1.1.0",
    ] {
        assert_eq!(greeter.health(name).await, ServingStatus::Serving, "{name}");
    }
    assert_eq!(
        registry.instances().await[0].status(),
        pb::ServingStatus::Serving
    );

    eventually(
        Duration::from_secs(5),
        "health turns NOT_SERVING",
        || async { greeter.health("demo.greeter.v1.Greeter").await == ServingStatus::NotServing },
    )
    .await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    eventually(
        Duration::from_secs(3),
        "the registry sees NOT_SERVING",
        || async { registry.instances().await[0].status() == pb::ServingStatus::NotServing },
    )
    .await;
    assert!(greeter.terminate().await.success());
}

#[tokio::test]
async fn crash_after_exits_with_status_1_and_the_lease_expires() {
    let registry = Registry::start().await;
    // The knob through its environment fallback, and a short lease so expiry comes quickly.
    let mut greeter = Greeter::start(
        &registry,
        &["--release", "1.0.0", "--lease-ttl-ms", "1000"],
        &[("FLOTILLA_GREETER_CRASH_AFTER", "1")],
    )
    .await;
    assert_eq!(registry.instances().await.len(), 1);

    let status = tokio::time::timeout(Duration::from_secs(10), greeter.child.wait())
        .await
        .expect("the greeter crashes within 10 s")
        .unwrap();
    assert_eq!(status.code(), Some(1));
    // No deregistration: the instance stays until its lease runs out.
    assert_eq!(registry.instances().await.len(), 1);
    eventually(Duration::from_secs(5), "the lease expires", || async {
        registry.instances().await.is_empty()
    })
    .await;
}

#[tokio::test]
async fn a_faulty_version_fails_calls_with_internal_after_the_added_latency() {
    let registry = Registry::start().await;
    let greeter = Greeter::start(
        &registry,
        &[
            "--release",
            "1.1.0",
            "--version",
            "1.2.0",
            "--error-ratio",
            "1",
            "--latency-ms",
            "150",
        ],
        &[],
    )
    .await;
    let started = Instant::now();
    let status = greeter
        .client_1_1_0()
        .say_hello(v1_1_0::HelloRequest::default())
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(status.code(), tonic::Code::Internal);
    assert_eq!(
        status.metadata().get("x-flotilla-version").unwrap(),
        "1.2.0"
    );

    // What a rollout's analysis reads from the instance: every call a server error, and the
    // added latency in the 100–250 ms bucket.
    let samples = flotilla_telemetry::scrape::fetch(&greeter.address, Duration::from_secs(5))
        .await
        .unwrap();
    let stats = flotilla_telemetry::scrape::CallStats::from_samples(&samples, "1.2.0");
    assert_eq!((stats.requests, stats.errors), (1.0, 1.0));
    let p50 = stats.quantile(0.5).unwrap();
    assert!((0.1..=0.25).contains(&p50), "{stats}");

    let version = registry.version("1.2.0").await;
    assert_eq!(
        version.schema_fingerprint,
        Schema::from_bytes(v1_1_0::DESCRIPTOR_SET)
            .unwrap()
            .fingerprint()
    );
    assert_eq!(version.labels["release"], "1.1.0");
    assert!(greeter.terminate().await.success());
}

#[tokio::test]
async fn releases_follow_one_another_and_a_breaking_minor_is_refused() {
    let registry = Registry::start().await;
    for (release, args) in [
        ("1.0.0", ["--release", "1.0.0"]),
        ("2.0.0", ["--release", "2.0.0"]),
    ] {
        let greeter = Greeter::start(&registry, &args, &[]).await;
        match release {
            "1.0.0" => {
                let reply = v1_0_0::greeter_client::GreeterClient::new(greeter.channel.clone())
                    .say_hello(v1_0_0::HelloRequest { name: "Ada".into() })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(reply.message, "Hello, Ada!");
            }
            _ => {
                let reply = v2_0_0::greeter_client::GreeterClient::new(greeter.channel.clone())
                    .say_hello(v2_0_0::HelloRequest {
                        name: "Ada".into(),
                        locale: "de".into(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                assert_eq!(reply.message.unwrap().text, "Hallo, Ada!");
            }
        }
        assert!(greeter.terminate().await.success());
    }

    // 2.0.0's schema under 1.3.0 breaks 1.0.0 without a major bump: the process fails to start
    // and says why.
    let mut child = command(
        &registry,
        &["--release", "2.0.0", "--version", "1.3.0"],
        &[],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("a refused greeter exits within 20 s")
        .unwrap();
    assert!(!status.success());
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    assert!(
        stdout.is_empty(),
        "a refused greeter never says it listens: {stdout}"
    );
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(
        stderr.contains("refused to publish greeter 1.3.0"),
        "{stderr}"
    );
    assert!(
        stderr.contains("FIELD_WIRE_JSON_COMPATIBLE_TYPE"),
        "{stderr}"
    );
}
