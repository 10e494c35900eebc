//! Rollouts whose analysis reads a real Prometheus server: Prometheus discovers the instances
//! from the registry's `/prometheus/targets` and scrapes them every second, and the orchestrator
//! (`--prometheus-url`) judges each interval by PromQL instead of reading the instances.

use std::time::{Duration, Instant};

use flotilla_integration_tests::{
    peers::Prometheus,
    rollout::{
        Load, RolloutFleet, canary, deploy, follow, prost_duration, rollout_request, state, tally,
    },
};
use flotilla_proto::rollout::v1::{self as pb, canary_step::Step};

const ROLLOUT_TIMEOUT: Duration = Duration::from_secs(120);

/// A registry, a Prometheus discovering from it, an orchestrator reading that Prometheus, and
/// greeter 1.0.0 ×2 deployed, with a frontend under load and both stable instances scraped.
/// None when Prometheus is not installed (outside CI).
async fn fleet_with_prometheus(
    releases: &[(&str, &str, &[&str])],
) -> Option<(RolloutFleet, Prometheus, Load)> {
    let mut fleet = RolloutFleet::without_orchestrator(None).unwrap();
    let prometheus = Prometheus::start(&fleet.registry.authority()).unwrap()?;
    fleet.orchestrator_args = vec![
        "--prometheus-url".into(),
        prometheus.url(),
        "--prometheus-scrape-interval-ms".into(),
        Prometheus::SCRAPE_INTERVAL.as_millis().to_string(),
    ];
    fleet.start_orchestrator().unwrap();
    fleet.publish_greeter("1.0.0", "1.0.0", &[]).unwrap();
    for (release, version, faults) in releases {
        fleet.publish_greeter(release, version, faults).unwrap();
    }
    deploy(&fleet, "1.0.0", 2).await.unwrap();
    let frontend = fleet.frontend("0.9.0", "^1.0").unwrap();
    let load = Load::start(fleet.frontend_client(frontend).await.unwrap(), 4);

    // Discovery works before any rollout leans on it: both stable instances (and the frontend,
    // which the registry lists too) are scraped, labelled with what they serve.
    let stable = ("greeter".to_owned(), "1.0.0".to_owned());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let targets = prometheus.healthy_targets().unwrap();
        if targets.iter().filter(|t| **t == stable).count() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus did not scrape both greeter 1.0.0 instances: {targets:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Some((fleet, prometheus, load))
}

/// A canary request judged every 2 s, with room for the intervals before Prometheus has
/// discovered and scraped the new instance twice (missing data, so INCONCLUSIVE).
fn request(version: &str, steps: &[Step]) -> pb::StartRolloutRequest {
    let mut request = rollout_request(version, canary(steps));
    let analysis = request.analysis.as_mut().unwrap();
    analysis.interval = Some(prost_duration(Duration::from_secs(2)));
    analysis.min_requests = 5;
    analysis.inconclusive_limit = Some(10);
    request
}

/// One instant query, as a test reads Prometheus independently of the orchestrator.
fn instant(prometheus: &Prometheus, promql: &str) -> Option<f64> {
    let encoded: String = promql
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    let (status, body) = prometheus
        .get(&format!("/api/v1/query?query={encoded}"))
        .unwrap();
    assert_eq!(status, 200, "{body}");
    let answer: serde_json::Value = serde_json::from_str(&body).unwrap();
    answer["data"]["result"][0]["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulty_canary_is_aborted_on_the_figures_prometheus_gives() {
    let Some((fleet, prometheus, load)) =
        fleet_with_prometheus(&[("1.1.0", "1.2.0", &["--error-ratio", "0.3"])]).await
    else {
        return;
    };
    let mut client = fleet.client(0).await.unwrap();
    let rollout = client
        .start_rollout(request(
            "1.2.0",
            &[
                Step::SetWeight(20),
                Step::Analysis(pb::AnalysisStep { intervals: 10 }),
                Step::SetWeight(100),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    let (rollout, events) = follow(&mut client, &rollout.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    let answers = load.stop().await;
    eprintln!("answers {:?}", tally(&answers));

    assert_eq!(
        state(&rollout),
        pb::RolloutState::Aborted,
        "{}",
        rollout.status_message
    );
    let halt = rollout.halt.as_ref().expect("an aborted rollout says why");
    assert_eq!(halt.gate, pb::Gate::Analysis as i32, "{halt:?}");
    // The query is the PromQL sent to this Prometheus, not a read of the instances.
    assert!(
        halt.query
            .starts_with(&format!("PromQL at {}/api/v1/query: ", prometheus.url())),
        "{}",
        halt.query
    );
    assert!(
        halt.query.contains("flotilla_grpc_server_handled_total"),
        "{}",
        halt.query
    );
    assert!(
        halt.query.contains("flotilla_version=\"1.2.0\""),
        "{}",
        halt.query
    );
    assert!(!halt.query.contains("/metrics"), "{}", halt.query);
    let ratio = halt
        .figures
        .iter()
        .find(|f| f.name == "error_ratio" && f.version == "1.2.0")
        .expect("the failing figure is shown");
    assert!(ratio.value > ratio.threshold, "{halt:?}");
    // About the injected 30%: Prometheus's increase() extrapolates, but not by that much.
    assert!((0.1..0.6).contains(&ratio.value), "{halt:?}");
    assert!(events.iter().any(|e| e.kind == "ABORTED"), "{events:#?}");
    assert_eq!(
        rollout
            .weights
            .iter()
            .find(|w| w.version == "1.0.0")
            .map(|w| w.percent),
        Some(100)
    );
    assert_eq!(fleet.running_versions(), ["1.0.0", "1.0.0"]);

    // Prometheus itself holds 1.2.0's server errors, under the labels discovery gave them.
    let errors = instant(
        &prometheus,
        "sum(flotilla_grpc_server_handled_total{flotilla_service=\"greeter\",\
         flotilla_version=\"1.2.0\",grpc_code!=\"OK\"})",
    );
    assert!(errors.is_some_and(|e| e > 0.0), "{errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_passes_on_prometheus_figures_with_no_failed_call() {
    let Some((fleet, prometheus, load)) = fleet_with_prometheus(&[("1.1.0", "1.1.0", &[])]).await
    else {
        return;
    };
    let mut client = fleet.client(0).await.unwrap();
    let rollout = client
        .start_rollout(request(
            "1.1.0",
            &[
                Step::SetWeight(20),
                Step::Analysis(pb::AnalysisStep { intervals: 2 }),
                Step::SetWeight(100),
            ],
        ))
        .await
        .unwrap()
        .into_inner();
    let (rollout, events) = follow(&mut client, &rollout.id, ROLLOUT_TIMEOUT)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let answers = load.stop().await;
    let counts = tally(&answers);
    eprintln!("answers {counts:?}");

    assert_eq!(
        state(&rollout),
        pb::RolloutState::Succeeded,
        "{}",
        rollout.status_message
    );
    assert!(!answers.is_empty());
    assert!(
        counts.keys().all(|k| !k.starts_with("<failed")),
        "{counts:?}"
    );
    assert!(counts.get("1.1.0").copied().unwrap_or(0) > 0, "{counts:?}");
    // The analysis step passed on Prometheus's figures, not on the instances'.
    let passed: Vec<&pb::RolloutEvent> = events
        .iter()
        .filter(|e| e.kind == "ANALYSIS" && e.message.starts_with("PASSED"))
        .collect();
    assert!(!passed.is_empty(), "{events:#?}");
    let last = rollout
        .last_analysis
        .as_ref()
        .expect("the last measurement is kept");
    assert!(
        last.query
            .starts_with(&format!("PromQL at {}", prometheus.url())),
        "{}",
        last.query
    );
    assert!(
        last.query.contains("flotilla_version=\"1.1.0\""),
        "{}",
        last.query
    );
    assert_eq!(fleet.running_versions(), ["1.1.0", "1.1.0"]);
}
