//! The local platform against real processes (sh, sleep) in a temporary directory.

use super::*;

/// A platform that may run the shell and sleep, which these tests start.
fn platform(dir: &Path) -> LocalProcessPlatform {
    let allowed = ProgramAllowList::new(&["/bin/sh".into(), "/bin/sleep".into()]).unwrap();
    LocalProcessPlatform::new(
        dir.to_path_buf(),
        Vec::new(),
        allowed,
        "127.0.0.1",
        "http://127.0.0.1:1",
    )
}

fn spec(command: &[&str]) -> InstanceSpec {
    InstanceSpec {
        service: ServiceName::parse("service", "sleeper").unwrap(),
        version: Version::new(1, 0, 0),
        artifact: Artifact {
            image: String::new(),
            command: command.iter().map(|s| s.to_string()).collect(),
        },
        rollout: RolloutId::from_trusted("0f8fad5b-d9cb-469f-a165-70867728950e".into()),
    }
}

#[tokio::test]
async fn starts_lists_and_stops_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(dir.path());
    // `sh -c` sees the filled-in placeholders as its positional parameters.
    let started = platform
        .start(&spec(&[
            "sh",
            "-c",
            "echo listening on $0 for $1; exec sleep 30",
            "{listen}",
            "{registry}",
        ]))
        .await
        .unwrap();
    let service = ServiceName::parse("service", "sleeper").unwrap();
    let listed = platform.list(&service).await.unwrap();
    assert_eq!(listed, vec![started.clone()]);
    assert!(started.address.starts_with("127.0.0.1:"));

    // The shell writes its line before it execs into sleep; on a busy machine that can take
    // a while, and a SIGTERM before it would leave the log empty.
    let log = std::fs::read_dir(dir.path().join("logs"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(&log).unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "nothing logged");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    platform.stop(&started.handle).await.unwrap();
    assert!(platform.list(&service).await.unwrap().is_empty());
    let pid: u32 = started.handle.parse().unwrap();
    assert!(!process_alive(pid, None));
    // Stopping again is not an error.
    platform.stop(&started.handle).await.unwrap();

    let output = std::fs::read_to_string(log).unwrap();
    assert_eq!(
        output.trim(),
        format!("listening on {} for http://127.0.0.1:1", started.address)
    );
}

#[tokio::test]
async fn a_restarted_driver_finds_and_stops_what_an_earlier_one_started() {
    let dir = tempfile::tempdir().unwrap();
    let started = platform(dir.path())
        .start(&spec(&["sleep", "30"]))
        .await
        .unwrap();
    let successor = platform(dir.path());
    let service = ServiceName::parse("service", "sleeper").unwrap();
    assert_eq!(
        successor.list(&service).await.unwrap(),
        vec![started.clone()]
    );
    successor.stop(&started.handle).await.unwrap();
    assert!(successor.list(&service).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_exited_process_leaves_the_list_and_reports_how_it_ended() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(dir.path());
    let started = platform
        .start(&spec(&[
            "sh",
            "-c",
            "echo 'bind {listen}: address in use' >&2; exit 3",
        ]))
        .await
        .unwrap();
    let service = ServiceName::parse("service", "sleeper").unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !platform.list(&service).await.unwrap().is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "still listed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Asked once, the moment the list no longer has it, as the controller asks.
    let report = platform
        .exit_report(&started.handle)
        .await
        .expect("a report for a process this driver started");
    assert!(
        report.starts_with("exit code 3; its last log lines: bind 127.0.0.1:"),
        "{report}"
    );
    assert!(report.ends_with(": address in use"), "{report}");
}

#[tokio::test]
async fn an_artifact_without_a_command_or_program_is_refused_before_start() {
    let dir = tempfile::tempdir().unwrap();
    let platform = platform(dir.path());
    let s = spec(&[]);
    let error = platform
        .check(&s.service, &s.version, &s.artifact)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("has no command"), "{error}");
    let s = spec(&["no-such-program-anywhere"]);
    let error = platform
        .check(&s.service, &s.version, &s.artifact)
        .await
        .unwrap_err();
    assert!(
        error.to_string().contains("no-such-program-anywhere"),
        "{error}"
    );
}

#[tokio::test]
async fn a_program_the_operator_did_not_allow_is_refused_before_anything_starts() {
    let dir = tempfile::tempdir().unwrap();
    let platform = LocalProcessPlatform::new(
        dir.path().to_path_buf(),
        Vec::new(),
        ProgramAllowList::new(&["/bin/sleep".into()]).unwrap(),
        "127.0.0.1",
        "http://127.0.0.1:1",
    );
    let marker = dir.path().join("ran");
    let hostile = spec(&["/bin/sh", "-c", &format!("touch {}", marker.display())]);
    for result in [
        platform
            .check(&hostile.service, &hostile.version, &hostile.artifact)
            .await
            .map(drop),
        platform.start(&hostile).await.map(drop),
    ] {
        let error = result.unwrap_err();
        assert!(
            error.to_string().contains("\"/bin/sh\" is not allowed"),
            "{error}"
        );
    }
    // By its bare name, through PATH, it is the same program and refused the same way.
    let by_name = spec(&["sh", "-c", "true"]);
    assert!(platform.start(&by_name).await.is_err());
    assert!(!marker.exists(), "nothing ran");
    assert!(
        !dir.path().join("logs").exists(),
        "nothing was prepared either"
    );
    assert!(platform.start(&spec(&["sleep", "0"])).await.is_ok());
}
