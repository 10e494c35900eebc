use flotilla_model::{AnalysisView, Halt, Version, fixtures::canary_rollout};

use super::*;

const T0: Timestamp = Timestamp(1_764_979_200_000);
const OWNER: Option<&str> = Some("orchestrator-a");

fn gate(rollout: &Rollout, gate: Gate, now: Timestamp) -> GateResult {
    gates(rollout, now)
        .into_iter()
        .find(|g| g.gate == gate)
        .expect("every gate is listed")
}

fn instance(version: &str, role: Role, health: Health) -> InstanceView {
    InstanceView {
        handle: "4242".into(),
        version: Version::parse(version).unwrap(),
        address: "127.0.0.1:7001".into(),
        role,
        health,
    }
}

fn at_pause(mut rollout: Rollout) -> Rollout {
    rollout.step_index = 3;
    rollout.weights = vec![(Version::new(1, 0, 0), 50), (Version::new(1, 1, 0), 50)];
    rollout.instances = vec![
        instance("1.1.0", Role::New, Health::Serving),
        instance("1.0.0", Role::Stable, Health::Serving),
    ];
    rollout
}

#[test]
fn every_gate_is_listed_in_the_order_a_rollout_meets_them() {
    let order: Vec<Gate> = gates(&canary_rollout(T0), T0)
        .iter()
        .map(|g| g.gate)
        .collect();
    assert_eq!(
        order,
        [
            Gate::Lifecycle,
            Gate::Compatibility,
            Gate::Consumer,
            Gate::Health,
            Gate::Analysis,
            Gate::ProgressDeadline,
            Gate::Platform,
            Gate::Operator
        ]
    );
}

#[test]
fn a_pause_for_promote_says_what_it_waits_for_and_the_traffic() {
    let rollout = at_pause(canary_rollout(T0));
    let text = summary(&rollout, OWNER, T0);
    assert_eq!(
        text,
        "PROGRESSING at step 4 of 6 (pause until promoted): waiting for an operator's Promote. \
         Traffic: 1.0.0 50%, 1.1.0 50%. Carried out by orchestrator-a."
    );
    let health = gate(&rollout, Gate::Health, T0);
    assert_eq!(health.verdict, GateVerdict::Passed);
    assert_eq!(health.figures[0].value, 1.0);
    assert_eq!(health.figures[0].threshold, 1.0);
    let progress = gate(&rollout, Gate::ProgressDeadline, T0.plus_millis(90_000));
    assert_eq!(progress.figures[0].value, 90.0);
    assert_eq!(
        progress.figures[0].threshold, 0.0,
        "a pause is not held to it"
    );
}

#[test]
fn a_timed_pause_says_when_it_ends() {
    let mut rollout = at_pause(canary_rollout(T0));
    rollout.plan[3] = PlanStep::Pause {
        duration_ms: Some(30_000),
    };
    rollout.pause_until = Some(T0.plus_millis(30_000));
    assert!(
        summary(&rollout, OWNER, T0.plus_millis(18_000))
            .contains("the pause ends by itself in 12s"),
        "{}",
        summary(&rollout, OWNER, T0.plus_millis(18_000))
    );
}

#[test]
fn an_analysis_halt_is_inconclusive_while_paused_and_failed_once_aborted() {
    let mut rollout = at_pause(canary_rollout(T0));
    rollout.state = RolloutState::Paused;
    rollout.halt = Some(Halt {
        gate: Gate::Analysis,
        message: "6 inconclusive intervals in a row (limit 5): too few calls to judge".into(),
        figures: vec![Figure {
            name: "requests".into(),
            version: "1.1.0".into(),
            value: 2.0,
            threshold: 5.0,
        }],
        query: "read from /metrics of 127.0.0.1:7001 (1.1.0)".into(),
        time: T0.plus_millis(5_000),
    });
    let text = summary(&rollout, OWNER, T0.plus_millis(6_000));
    assert!(
        text.starts_with(
            "PAUSED at step 4 of 6 (pause until promoted): the ANALYSIS gate stopped it at \
             2025-12-06T00:00:05.000Z: 6 inconclusive intervals"
        ),
        "{text}"
    );
    assert!(text.contains("resume to go on, or abort"), "{text}");
    let analysis = gate(&rollout, Gate::Analysis, T0);
    assert_eq!(analysis.verdict, GateVerdict::Inconclusive);
    assert_eq!(analysis.figures[0].name, "requests");
    assert!(analysis.query.contains("/metrics"));

    rollout.state = RolloutState::Aborted;
    assert_eq!(
        gate(&rollout, Gate::Analysis, T0).verdict,
        GateVerdict::Failed
    );
    let text = summary(&rollout, OWNER, T0);
    assert!(text.starts_with("ABORTED at step 4 of 6"), "{text}");
    assert!(text.ends_with("All traffic is on 1.0.0."), "{text}");
}

#[test]
fn the_last_analysis_shows_its_figures_and_how_close_the_limits_are() {
    let mut rollout = at_pause(canary_rollout(T0));
    rollout.last_analysis = Some(AnalysisView {
        verdict: Verdict::Failed,
        figures: vec![Figure {
            name: "error_ratio".into(),
            version: "1.1.0".into(),
            value: 0.3,
            threshold: 0.01,
        }],
        query: "read from /metrics".into(),
        time: T0,
        failures: 1,
        inconclusive_in_a_row: 0,
        passes_in_a_row: 0,
    });
    rollout.analysis.failure_limit = 2;
    let analysis = gate(&rollout, Gate::Analysis, T0);
    assert_eq!(analysis.verdict, GateVerdict::Failed);
    assert_eq!(
        analysis.message,
        "last interval FAILED; 1 failed interval (the rollout aborts above 2), 0 inconclusive in \
         a row (it pauses above 5)"
    );
    assert_eq!(analysis.figures[0].value, 0.3);
}

#[test]
fn new_instances_not_yet_serving_keep_the_health_gate_waiting() {
    let mut rollout = canary_rollout(T0);
    rollout.step_index = 1;
    assert_eq!(
        gate(&rollout, Gate::Health, T0).message,
        "no new instance started yet"
    );
    rollout.instances = vec![
        instance("1.1.0", Role::New, Health::Serving),
        instance("1.1.0", Role::New, Health::Starting),
    ];
    let health = gate(&rollout, Gate::Health, T0);
    assert_eq!(health.verdict, GateVerdict::Waiting);
    assert_eq!(
        health.message,
        "1 of 2 new instances SERVING, 1 starting; each must be within 20s"
    );
}

#[test]
fn an_operators_abort_and_pause_are_the_operator_gate() {
    let mut rollout = at_pause(canary_rollout(T0));
    rollout.state = RolloutState::Paused;
    assert_eq!(
        gate(&rollout, Gate::Operator, T0).verdict,
        GateVerdict::Waiting
    );
    assert!(summary(&rollout, OWNER, T0).starts_with("PAUSED by an operator at step 4 of 6"));
    rollout.state = RolloutState::Aborting;
    rollout.halt = Some(Halt {
        gate: Gate::Operator,
        message: "aborted by alice: a customer reported a bug".into(),
        figures: Vec::new(),
        query: String::new(),
        time: T0,
    });
    let operator = gate(&rollout, Gate::Operator, T0);
    assert_eq!(operator.verdict, GateVerdict::Failed);
    assert!(operator.message.contains("a customer reported a bug"));
    assert!(summary(&rollout, OWNER, T0).starts_with("ABORTING: the OPERATOR gate stopped it"));
}

#[test]
fn a_finished_rollout_names_its_revision_and_an_unowned_one_says_it_waits() {
    let mut rollout = canary_rollout(T0);
    rollout.state = RolloutState::Succeeded;
    rollout.step_index = 6;
    rollout.revision = 4;
    assert_eq!(
        summary(&rollout, OWNER, T0),
        "SUCCEEDED at 2025-12-06T00:00:00.000Z: all traffic on greeter@1.1.0 (revision 4)."
    );
    let rollout = canary_rollout(T0);
    assert!(
        summary(&rollout, None, T0)
            .ends_with("No orchestrator holds the service's lease: it goes on when one does."),
        "{}",
        summary(&rollout, None, T0)
    );
}

#[tokio::test]
async fn a_health_check_of_nothing_listening_is_unreachable_with_the_reason() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap().to_string();
    drop(listener);
    let (health, error) = check_health(&address).await;
    assert_eq!(health, "UNREACHABLE");
    let error = error.unwrap();
    assert!(error.contains(&address), "{error}");
}

#[test]
fn a_full_promotion_is_why_analysis_is_skipped_and_a_paused_step_past_its_deadline_is_flagged() {
    let mut rollout = at_pause(canary_rollout(T0));
    rollout.skip_analysis = true;
    assert!(
        gate(&rollout, Gate::Analysis, T0)
            .message
            .contains("promoted it in full")
    );
    rollout.strategy = Strategy::Immediate;
    assert!(
        gate(&rollout, Gate::Analysis, T0)
            .message
            .contains("emergency path")
    );

    let mut rollout = canary_rollout(T0);
    rollout.step_index = 1; // run 1 new instance: held to the deadline
    rollout.state = RolloutState::Paused;
    let progress = gate(&rollout, Gate::ProgressDeadline, T0.plus_millis(700_000));
    assert_eq!(progress.verdict, GateVerdict::Waiting);
    assert!(
        progress.message.contains("once resumed"),
        "{}",
        progress.message
    );
    rollout.state = RolloutState::Progressing;
    let progress = gate(&rollout, Gate::ProgressDeadline, T0.plus_millis(60_000));
    assert_eq!(progress.verdict, GateVerdict::Passed);
    assert_eq!(progress.figures[0].threshold, 600.0);
}
