//! The Docker platform against a real Docker Engine. Nothing is pulled: the instances run an
//! image imported from a tarball of Debian's static busybox (`busybox-static`, at /bin/busybox).
//! Without the engine or busybox the tests skip with a message, and fail under CI (`CI` set).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use bollard::{
    Docker,
    models::{ContainerCreateBody, HostConfig, NetworkCreateRequest},
    query_parameters::{
        CreateContainerOptionsBuilder, CreateImageOptionsBuilder, ListContainersOptionsBuilder,
        RemoveContainerOptionsBuilder,
    },
};
use flotilla_model::{Artifact, RolloutId, ServiceName, Version};
use flotilla_rollout_orchestrator::platform::{
    DockerConfig, DockerPlatform, ImageAllowList, InstanceSpec, Platform,
};
use futures::TryStreamExt;

const IMAGE_REPO: &str = "flotilla-test/busybox";
/// Bump when the image's contents change: an image already on the host is reused.
const IMAGE_TAG: &str = "1";
const PORT: u16 = 50100;
const BUSYBOX: &str = "/bin/busybox";

fn image() -> String {
    format!("{IMAGE_REPO}:{IMAGE_TAG}")
}

/// Skips outside CI, fails under it: a missing peer must not turn CI green.
fn unavailable(what: &str) {
    flotilla_testkit::missing(what, "a Docker Engine at DOCKER_HOST and busybox-static");
}

async fn engine() -> Option<Docker> {
    let connected = match Docker::connect_with_defaults() {
        Ok(docker) => docker.negotiate_version().await,
        Err(e) => Err(e),
    };
    match connected {
        Ok(docker) => Some(docker),
        Err(e) => {
            unavailable(&format!(
                "the Docker Engine is unreachable ({e}); start it or set DOCKER_HOST"
            ));
            None
        }
    }
}

fn busybox() -> Option<PathBuf> {
    let path = PathBuf::from(BUSYBOX);
    if path.is_file() {
        Some(path)
    } else {
        unavailable(&format!(
            "{BUSYBOX} is missing (apt-get install busybox-static)"
        ));
        None
    }
}

/// `docker import` of a root file system holding only busybox and a page for its httpd.
async fn import_image(docker: &Docker, busybox: &Path) {
    if docker.inspect_image(&image()).await.is_ok() {
        return;
    }
    let root = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(root.path().join("bin")).unwrap();
    std::fs::create_dir_all(root.path().join("www")).unwrap();
    std::fs::copy(busybox, root.path().join("bin/busybox")).unwrap();
    std::fs::write(root.path().join("www/index.html"), "ok\n").unwrap();
    let tar = std::process::Command::new("tar")
        .arg("-C")
        .arg(root.path())
        .args(["--owner=0", "--group=0", "-cf", "-", "bin", "www"])
        .output()
        .expect("tar runs");
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    let options = CreateImageOptionsBuilder::new()
        .from_src("-")
        .repo(IMAGE_REPO)
        .tag(IMAGE_TAG)
        .build();
    docker
        .create_image(
            Some(options),
            Some(bollard::body_full(tar.stdout.into())),
            None,
        )
        .try_collect::<Vec<_>>()
        .await
        .expect("the image imports");
}

/// Removes the run's containers and network however the test ends. Drop cannot await, so it
/// runs the removal on a runtime of its own thread.
struct Cleanup {
    service: String,
    network: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let service = self.service.clone();
        let network = self.network.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let Ok(docker) = Docker::connect_with_defaults() else {
                    return;
                };
                let Ok(docker) = docker.negotiate_version().await else {
                    return;
                };
                for container in containers_of(&docker, &service).await {
                    let _ = docker
                        .remove_container(
                            &container,
                            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                        )
                        .await;
                }
                // Probes and the bystander are on the network but carry no service label.
                for container in containers_on(&docker, &network).await {
                    let _ = docker
                        .remove_container(
                            &container,
                            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
                        )
                        .await;
                }
                let _ = docker.remove_network(&network).await;
            });
        })
        .join();
    }
}

/// Every container of `service`, whatever its state (`docker ps -a`).
async fn containers_of(docker: &Docker, service: &str) -> Vec<String> {
    list_ids(docker, "label", format!("io.flotilla.service={service}")).await
}

async fn containers_on(docker: &Docker, network: &str) -> Vec<String> {
    list_ids(docker, "network", network.to_owned()).await
}

async fn list_ids(docker: &Docker, filter: &str, value: String) -> Vec<String> {
    let filters = HashMap::from([(filter.to_owned(), vec![value])]);
    let options = ListContainersOptionsBuilder::new()
        .all(true)
        .filters(&filters)
        .build();
    docker
        .list_containers(Some(options))
        .await
        .expect("containers list")
        .into_iter()
        .filter_map(|c| c.id)
        .collect()
}

/// Asks `address` for a page from a throwaway container on `network`, as a caller on the
/// compose network would; true when it answered 200. (nc, since the static busybox's wget
/// crashes without the libc's name service modules.)
async fn fetch_from_network(docker: &Docker, network: &str, address: &str) -> bool {
    let (host, port) = address.rsplit_once(':').expect("host:port");
    let script = format!(
        "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | {BUSYBOX} nc {host} {port} \
         | {BUSYBOX} grep -q '200 OK'"
    );
    let body = ContainerCreateBody {
        image: Some(image()),
        cmd: Some([BUSYBOX, "sh", "-c", &script].map(String::from).to_vec()),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("{network}-probe-{}", &uuid_suffix());
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .expect("the probe is created");
    docker
        .start_container(&created.id, None)
        .await
        .expect("the probe starts");
    // A non-zero exit arrives as an error carrying the code; either way the probe is done.
    let exit = docker
        .wait_container(&created.id, None)
        .try_collect::<Vec<_>>()
        .await;
    let _ = docker
        .remove_container(
            &created.id,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    matches!(exit, Ok(responses) if responses.iter().all(|r| r.status_code == 0))
}

/// A running container on the network without Flotilla's labels (removed by [`Cleanup`]).
async fn start_bystander(docker: &Docker, network: &str) -> String {
    let body = ContainerCreateBody {
        image: Some(image()),
        cmd: Some([BUSYBOX, "sleep", "300"].map(String::from).to_vec()),
        host_config: Some(HostConfig {
            network_mode: Some(network.to_owned()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("{network}-bystander");
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::new().name(&name).build()),
            body,
        )
        .await
        .expect("the bystander is created");
    docker
        .start_container(&created.id, None)
        .await
        .expect("the bystander starts");
    created.id
}

fn uuid_suffix() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_owned()
}

fn spec(service: &ServiceName, version: &str, command: &[&str]) -> InstanceSpec {
    spec_with(
        service,
        version,
        Artifact {
            image: image(),
            command: command.iter().map(|s| s.to_string()).collect(),
        },
    )
}

fn spec_with(service: &ServiceName, version: &str, artifact: Artifact) -> InstanceSpec {
    InstanceSpec {
        service: service.clone(),
        version: Version::parse(version).unwrap(),
        artifact,
        rollout: RolloutId::parse("rollout", &uuid::Uuid::new_v4().to_string()).unwrap(),
    }
}

/// An instance that serves busybox's httpd on `{listen}` and leaves promptly on SIGTERM, as a
/// Flotilla server drains and exits.
const SERVE: &[&str] = &[
    BUSYBOX,
    "sh",
    "-c",
    "trap 'exit 0' TERM; /bin/busybox httpd -f -h /www -p \"$0\" & \
     while :; do /bin/busybox sleep 1; done",
    "{listen}",
];

#[tokio::test]
async fn containers_are_started_found_after_a_restart_and_stopped() {
    let Some(busybox) = busybox() else { return };
    let Some(docker) = engine().await else { return };
    import_image(&docker, &busybox).await;

    let run = uuid_suffix();
    let service = ServiceName::parse("service", &format!("dockertest-{run}")).unwrap();
    let network = format!("flotilla-test-{run}");
    let _cleanup = Cleanup {
        service: service.to_string(),
        network: network.clone(),
    };
    docker
        .create_network(NetworkCreateRequest {
            name: network.clone(),
            ..Default::default()
        })
        .await
        .expect("the test network is created");
    let config = DockerConfig {
        network: network.clone(),
        registry: "http://registry:50051".into(),
        instance_port: PORT,
        allowed_images: ImageAllowList::new(&[
            format!("{IMAGE_REPO}:*"),
            "flotilla-test/no-such-*".into(),
        ]),
    };
    let platform = DockerPlatform::connect(config.clone())
        .await
        .expect("connects");
    assert_eq!(platform.name(), "docker");

    // Nothing is pulled: an image that is not on the host is refused before anything starts.
    let missing = Artifact {
        image: format!("flotilla-test/no-such-image-{run}:1"),
        command: Vec::new(),
    };
    let v1 = Version::parse("1.0.0").unwrap();
    let error = platform
        .check(&service, &v1, &missing)
        .await
        .expect_err("a missing image is refused")
        .to_string();
    assert!(error.contains(&missing.image), "{error}");
    assert!(error.contains("never pulls"), "{error}");
    // An image the operator did not allow is refused before the engine is asked anything,
    // even one that is on the host.
    for image in ["busybox:latest".to_owned(), format!("{IMAGE_REPO}-other:1")] {
        let refused = Artifact {
            image: image.clone(),
            command: vec!["/bin/busybox".into(), "sh".into()],
        };
        let error = platform
            .check(&service, &v1, &refused)
            .await
            .expect_err("a disallowed image is refused")
            .to_string();
        assert!(
            error.contains(&format!("{image:?} is not allowed")),
            "{error}"
        );
        let error = platform
            .start(&spec_with(&service, "1.0.0", refused.clone()))
            .await
            .expect_err("and never started")
            .to_string();
        assert!(error.contains("not allowed"), "{error}");
    }
    assert!(containers_of(&docker, service.as_str()).await.is_empty());
    let error = platform
        .check(&service, &v1, &Artifact::default())
        .await
        .expect_err("an artifact without an image is refused")
        .to_string();
    assert!(error.contains("names no image"), "{error}");
    platform
        .check(&service, &v1, &spec(&service, "1.0.0", SERVE).artifact)
        .await
        .expect("a local image passes");

    let started = Instant::now();
    let a = platform
        .start(&spec(&service, "1.0.0", SERVE))
        .await
        .expect("the first instance starts");
    let b = platform
        .start(&spec(&service, "1.1.0-rc.1", SERVE))
        .await
        .expect("the second instance starts");
    eprintln!("two containers started in {:?}", started.elapsed());
    assert_ne!(a.handle, b.handle);

    for (instance, version_part) in [(&a, "1-0-0"), (&b, "1-1-0-rc-1")] {
        let inspected = docker
            .inspect_container(&instance.handle, None)
            .await
            .expect("the container exists");
        let name = inspected.name.unwrap().trim_start_matches('/').to_owned();
        assert!(
            name.starts_with(&format!("flotilla-{service}-{version_part}-")),
            "{name}"
        );
        assert_eq!(instance.address, format!("{name}:{PORT}"));
        let config = inspected.config.unwrap();
        let labels = config.labels.unwrap();
        assert_eq!(labels["io.flotilla.managed"], "true");
        assert_eq!(labels["io.flotilla.service"], service.as_str());
        assert_eq!(labels["io.flotilla.version"], instance.version.to_string());
        assert_eq!(
            labels["io.flotilla.rollout"],
            instance.rollout.as_ref().unwrap().as_str()
        );
        assert_eq!(
            config.cmd.unwrap().last().map(String::as_str),
            Some("0.0.0.0:50100"),
            "{{listen}} is filled in"
        );
        let env = config.env.unwrap();
        for expected in [
            "FLOTILLA_LISTEN=0.0.0.0:50100".to_owned(),
            format!("FLOTILLA_ADVERTISE={}", instance.address),
            "FLOTILLA_REGISTRY=http://registry:50051".to_owned(),
        ] {
            assert!(env.contains(&expected), "{expected} not in {env:?}");
        }
        let networks = inspected.network_settings.unwrap().networks.unwrap();
        assert!(networks.contains_key(&network), "{networks:?}");

        // The advertised address is what a caller on the network dials.
        let deadline = Instant::now() + Duration::from_secs(15);
        while !fetch_from_network(&docker, &network, &instance.address).await {
            assert!(
                Instant::now() < deadline,
                "{} never answered",
                instance.address
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    let mut expected = vec![a.clone(), b.clone()];
    expected.sort_by(|x, y| x.version.cmp(&y.version));
    assert_eq!(platform.list(&service).await.unwrap(), expected);
    let other = ServiceName::parse("service", &format!("dockertest-other-{run}")).unwrap();
    assert!(platform.list(&other).await.unwrap().is_empty());

    // A restarted orchestrator holds nothing in memory: it finds the instances by their labels.
    let restarted = DockerPlatform::connect(config).await.expect("connects");
    assert_eq!(restarted.list(&service).await.unwrap(), expected);

    // An instance that exited is neither listed nor left behind, but how it ended is kept.
    let exits = platform
        .start(&spec(
            &service,
            "1.2.0",
            &[
                BUSYBOX,
                "sh",
                "-c",
                "echo 'listening on {listen}'; echo 'error: port taken' >&2; exit 3",
            ],
        ))
        .await
        .expect("a short-lived instance starts");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let state = docker
            .inspect_container(&exits.handle, None)
            .await
            .expect("the exited container is still there until listed")
            .state
            .unwrap();
        if state.running == Some(false) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short-lived instance kept running"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(restarted.list(&service).await.unwrap(), expected);
    assert!(
        !containers_of(&docker, service.as_str())
            .await
            .contains(&exits.handle),
        "the exited container was removed"
    );
    let report = restarted
        .exit_report(&exits.handle)
        .await
        .expect("the driver that removed it reports how it ended");
    assert!(report.contains("exit code 3"), "{report}");
    assert!(report.contains("listening on 0.0.0.0:50100"), "{report}");
    assert!(report.contains("error: port taken"), "{report}");
    assert_eq!(platform.exit_report(&a.handle).await, None);

    // SIGTERM first: the instances leave at once instead of being killed after the grace period.
    let stopping = Instant::now();
    let (stop_a, stop_b) = tokio::join!(restarted.stop(&a.handle), restarted.stop(&b.handle));
    stop_a.expect("stops");
    stop_b.expect("stops");
    let took = stopping.elapsed();
    eprintln!("two containers stopped in {took:?}");
    assert!(took < Duration::from_secs(8), "stopping took {took:?}");
    assert!(platform.list(&service).await.unwrap().is_empty());
    assert!(
        containers_of(&docker, service.as_str()).await.is_empty(),
        "docker ps -a still shows the service's containers"
    );

    // Containers the orchestrator did not start are never stopped, whatever handle it is given.
    let bystander = start_bystander(&docker, &network).await;
    let error = platform
        .stop(&bystander)
        .await
        .expect_err("an unmanaged container is refused")
        .to_string();
    assert!(error.contains("io.flotilla.managed"), "{error}");
    let state = docker
        .inspect_container(&bystander, None)
        .await
        .expect("the bystander is still there")
        .state
        .unwrap();
    assert_eq!(state.running, Some(true), "the bystander keeps running");

    // Stopping what is gone succeeds: the controller may retry a stop after a restart.
    platform
        .stop(&a.handle)
        .await
        .expect("stopping again succeeds");
    platform
        .stop(&format!("flotilla-no-such-container-{run}"))
        .await
        .expect("stopping an unknown container succeeds");
}

#[tokio::test]
async fn connecting_names_the_socket_or_the_missing_network() {
    let config = DockerConfig {
        network: "flotilla-no-such-network".into(),
        registry: "http://registry:50051".into(),
        instance_port: PORT,
        allowed_images: ImageAllowList::new(&[
            format!("{IMAGE_REPO}:*"),
            "flotilla-test/no-such-*".into(),
        ]),
    };
    let error = DockerPlatform::connect_to("unix:///nonexistent/docker.sock", config.clone())
        .await
        .expect_err("no engine there")
        .to_string();
    assert!(error.contains("unix:///nonexistent/docker.sock"), "{error}");

    if engine().await.is_none() {
        return;
    }
    let error = DockerPlatform::connect(config)
        .await
        .expect_err("the network does not exist")
        .to_string();
    assert!(error.contains("flotilla-no-such-network"), "{error}");
}
