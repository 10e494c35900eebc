//! The operator CLI against a real orchestrator: `flotilla rollout` starts, pauses, resumes,
//! promotes, watches and aborts, with the exit statuses scripts rely on, and shows a refusal's
//! details.

use std::{
    process::{Command, Output},
    time::{Duration, Instant},
};

use flotilla_integration_tests::{
    process::binary,
    rollout::{RolloutFleet, deploy},
};

struct Cli {
    orchestrator: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(binary("flotilla"))
            .arg("rollout")
            .args(["--orchestrator", &self.orchestrator])
            .args(args)
            .output()
            .expect("flotilla runs")
    }

    fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--format", "json"];
        all.extend_from_slice(args);
        let output = self.run(&all);
        assert!(output.status.success(), "{}", text(&output));
        serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&output)))
    }

    fn state(&self, id: &str) -> String {
        self.json(&["status", id])["state"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    fn wait_for_pause(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let rollout = self.json(&["status", id]);
            let index = rollout["step_index"].as_u64().unwrap_or(0) as usize;
            if rollout["plan"][index]["description"] == "pause until promoted" {
                return;
            }
            assert!(Instant::now() < deadline, "never paused: {rollout:#}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_drives_rollouts_with_the_cli() {
    let mut fleet = RolloutFleet::start().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.1.0", &[]).unwrap();
    fleet.publish_greeter("1.1.0", "1.2.0", &[]).unwrap();
    fleet.publish_greeter("2.0.0", "2.0.0", &[]).unwrap();
    deploy(&fleet, "1.0.0", 1).await.unwrap();
    let cli = Cli {
        orchestrator: fleet.orchestrator(0).endpoint(),
    };

    let started = cli.json(&[
        "start",
        "greeter",
        "1.1.0",
        "--steps",
        "50,pause,100",
        "--analysis-interval",
        "500ms",
        "--min-requests",
        "1",
        "--p99-floor",
        "250ms",
    ]);
    let id = started["id"].as_str().unwrap().to_owned();
    assert_eq!(started["from_version"], "1.0.0");
    cli.wait_for_pause(&id);

    // Explain says where it waits and why, with every gate, and checks the instances now.
    let explained = cli.run(&["explain", &id]);
    assert!(explained.status.success(), "{}", text(&explained));
    let report = String::from_utf8_lossy(&explained.stdout);
    assert!(
        report.contains(
            "PROGRESSING at step 4 of 6 (pause until promoted): waiting for an operator's Promote"
        ),
        "{report}"
    );
    assert!(report.contains("Traffic: 1.0.0 50%, 1.1.0 50%"), "{report}");
    for gate in [
        "LIFECYCLE",
        "COMPATIBILITY",
        "CONSUMER",
        "HEALTH",
        "ANALYSIS",
        "PROGRESS_DEADLINE",
        "PLATFORM",
        "OPERATOR",
    ] {
        assert!(report.contains(gate), "{gate} missing from:\n{report}");
    }
    assert!(
        report.contains("serving_instances[1.1.0]=1 (limit 1)"),
        "{report}"
    );
    let explanation = cli.json(&["explain", &id, "--events", "3"]);
    assert_eq!(
        explanation["recent_events"].as_array().map(Vec::len),
        Some(3)
    );
    let instances = explanation["instances"].as_array().unwrap();
    assert_eq!(instances.len(), 2, "{explanation:#}");
    for instance in instances {
        assert_eq!(instance["checked_health"], "SERVING", "{explanation:#}");
        let recorded = match instance["instance"]["role"].as_str() {
            Some("new") => "SERVING",
            _ => "UNWATCHED",
        };
        assert_eq!(instance["instance"]["health"], recorded, "{explanation:#}");
    }
    let bad = cli.run(&["explain", "not-an-id"]);
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("id"),
        "{}",
        text(&bad)
    );

    let paused = cli.run(&["pause", &id, "--reason", "checking dashboards"]);
    assert!(paused.status.success(), "{}", text(&paused));
    assert_eq!(cli.state(&id), "ROLLOUT_STATE_PAUSED");
    let resumed = cli.run(&["resume", &id]);
    assert!(resumed.status.success(), "{}", text(&resumed));
    assert_eq!(cli.state(&id), "ROLLOUT_STATE_PROGRESSING");
    let promoted = cli.run(&["promote", &id]);
    assert!(promoted.status.success(), "{}", text(&promoted));

    // Into a pipe, watch prints one line per event and exits 0 on success.
    let watched = cli.run(&["watch", &id]);
    assert_eq!(watched.status.code(), Some(0), "{}", text(&watched));
    let log = String::from_utf8_lossy(&watched.stdout);
    for kind in ["PAUSED", "RESUMED", "PROMOTED", "SUCCEEDED"] {
        assert!(log.contains(kind), "{kind} missing from:\n{log}");
    }
    assert_eq!(fleet.running_versions(), ["1.1.0"]);

    // A consumer that needs ^1.1 now runs: 2.0.0 is refused, the consumer and requirement named.
    fleet.frontend("1.0.0", "^1.1").unwrap();
    let refused = cli.run(&["start", "greeter", "2.0.0"]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("FAILED_PRECONDITION") || stderr.contains("FailedPrecondition"),
        "{stderr}"
    );
    assert!(stderr.contains("CONSUMER frontend@1.0.0"), "{stderr}");
    assert!(stderr.contains("^1.1"), "{stderr}");

    // Abort: the watch ends with 1, and a second abort changes nothing and says so.
    let second = cli.json(&["start", "greeter", "1.2.0", "--steps", "50,pause"]);
    let second_id = second["id"].as_str().unwrap().to_owned();
    cli.wait_for_pause(&second_id);
    let aborted = cli.run(&["abort", &second_id, "--reason", "enough"]);
    assert!(aborted.status.success(), "{}", text(&aborted));
    let watched = cli.run(&["watch", &second_id]);
    assert_eq!(watched.status.code(), Some(1), "{}", text(&watched));
    assert!(
        String::from_utf8_lossy(&watched.stdout).contains("aborted by an operator: enough"),
        "{}",
        text(&watched)
    );
    let explained = cli.run(&["explain", &second_id]);
    let report = String::from_utf8_lossy(&explained.stdout);
    assert!(report.contains("ABORTED at step"), "{}", text(&explained));
    assert!(report.contains("the OPERATOR gate stopped it"), "{report}");
    assert!(report.contains("enough"), "{report}");
    let again = cli.run(&["abort", &second_id]);
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already ended ABORTED"),
        "{}",
        text(&again)
    );
    assert_eq!(fleet.running_versions(), ["1.1.0"]);

    let revisions = cli.run(&["revisions", "greeter"]);
    assert!(revisions.status.success(), "{}", text(&revisions));
    let listing = String::from_utf8_lossy(&revisions.stdout);
    assert!(
        listing.contains("1.0.0") && listing.contains("1.1.0"),
        "{listing}"
    );
}
