//! The rollout view: one rollout as labelled lines, from its headline to when it was updated.

use std::fmt::{self, Write};

use flotilla_proto::rollout::v1 as pb;

use super::{
    format::{
        change, duration, gate_name, health_colour, number, plural, state_colour, state_name,
        timestamp, verdict_colour,
    },
    strategy::stored_strategy,
};
use crate::report::Style;

/// Cells in a weight bar: 5% each.
const BAR_WIDTH: usize = 20;

/// The label column of the rollout view.
const LABEL: usize = 10;

/// One rollout: headline, strategy, step, status, halt, weights, instances, analysis, settings.
/// Every line ends with a newline.
pub fn rollout(rollout: &pb::Rollout, style: Style) -> String {
    let mut out = String::new();
    write_rollout(&mut out, rollout, style).expect("a String takes any text");
    out
}

fn write_rollout(out: &mut String, r: &pb::Rollout, style: Style) -> fmt::Result {
    let state = state_name(r.state);
    write!(
        out,
        "rollout {}  {}  {}",
        r.id,
        change(r),
        style.paint(&state, state_colour(r.state()))
    )?;
    if r.rollback_to_revision != 0 {
        write!(out, "  (rollback to revision {})", r.rollback_to_revision)?;
    }
    writeln!(out)?;

    let mut strategy = stored_strategy(r);
    if r.replicas != 0 {
        let _ = write!(strategy, "; {} replica{}", r.replicas, plural(r.replicas));
    }
    if r.skip_analysis && r.rollback_to_revision != 0 {
        strategy.push_str("; emergency path: no steps, no analysis");
    }
    field(out, "strategy", &strategy)?;
    field(out, "step", &step(r))?;
    if !r.status_message.is_empty() {
        field(out, "status", &r.status_message)?;
    }
    if let Some(halt) = &r.halt {
        field(
            out,
            "halt",
            &format!(
                "{} at {}: {}",
                style.paint(&gate_name(halt.gate), Style::RED),
                timestamp(halt.time.as_ref()),
                halt.message
            ),
        )?;
        figures(out, &halt.figures)?;
        query(out, &halt.query)?;
    }
    if let Some(pause) = pause(r) {
        field(out, "pause", &pause)?;
    }

    let version_width = r
        .weights
        .iter()
        .map(|w| version_with_role(r, &w.version).chars().count())
        .max()
        .unwrap_or(0);
    for (i, weight) in r.weights.iter().enumerate() {
        let label = if i == 0 { "weights" } else { "" };
        let version = version_with_role(r, &weight.version);
        field(
            out,
            label,
            &format!(
                "{version:<version_width$}  {}  {:>3}%",
                bar(weight.percent),
                weight.percent
            ),
        )?;
    }

    let columns = |f: fn(&pb::InstanceStatus) -> &str| {
        r.instances
            .iter()
            .map(|i| f(i).chars().count())
            .max()
            .unwrap_or(0)
    };
    let (role_w, version_w, address_w, health_w) = (
        columns(|i| &i.role),
        columns(|i| &i.version),
        columns(|i| &i.address),
        columns(|i| &i.health),
    );
    for (i, instance) in r.instances.iter().enumerate() {
        let label = if i == 0 { "instances" } else { "" };
        let health = format!("{:<health_w$}", instance.health);
        field(
            out,
            label,
            format!(
                "{:<role_w$}  {:<version_w$}  {:<address_w$}  {}  {}",
                instance.role,
                instance.version,
                instance.address,
                style.paint(&health, health_colour(&instance.health)),
                instance.handle
            )
            .trim_end(),
        )?;
    }
    if r.instances.is_empty() && !r.plan.is_empty() {
        field(out, "instances", "none")?;
    }

    if let Some(analysis) = &r.last_analysis {
        field(
            out,
            "analysis",
            &format!(
                "{} at {}; {} failed interval{} so far, {} inconclusive in a row",
                style.paint(&analysis.verdict, verdict_colour(&analysis.verdict)),
                timestamp(analysis.time.as_ref()),
                analysis.failures,
                plural(analysis.failures),
                analysis.inconclusive_in_a_row
            ),
        )?;
        figures(out, &analysis.figures)?;
        query(out, &analysis.query)?;
    }
    if let Some(settings) = r.analysis.as_ref().filter(|_| !r.skip_analysis) {
        field(out, "settings", &analysis_settings(settings))?;
    }
    let deadlines: Vec<String> = [
        ("health", r.health_deadline.as_ref()),
        ("progress", r.progress_deadline.as_ref()),
    ]
    .into_iter()
    .filter_map(|(name, d)| d.map(|d| format!("{name} {}", duration(d))))
    .collect();
    if !deadlines.is_empty() {
        field(out, "deadlines", &deadlines.join(", "))?;
    }
    if r.revision != 0 {
        field(out, "revision", &r.revision.to_string())?;
    }
    if !r.owner.is_empty() {
        field(out, "owner", &r.owner)?;
    }
    field(
        out,
        "updated",
        &format!(
            "{} (created {})",
            timestamp(r.update_time.as_ref()),
            timestamp(r.create_time.as_ref())
        ),
    )
}

/// `  label     value`, the labels in one column.
fn field(out: &mut String, label: &str, value: &str) -> fmt::Result {
    writeln!(out, "  {label:<LABEL$} {value}")
}

/// Figures in aligned columns under a field: name, version, value and, when one applies, the
/// limit it was held to.
fn figures(out: &mut String, figures: &[pb::Figure]) -> fmt::Result {
    let values: Vec<String> = figures.iter().map(|f| number(f.value)).collect();
    let name_w = figures.iter().map(|f| f.name.len()).max().unwrap_or(0);
    let version_w = figures.iter().map(|f| f.version.len()).max().unwrap_or(0);
    let value_w = values.iter().map(String::len).max().unwrap_or(0);
    for (figure, value) in figures.iter().zip(&values) {
        let mut line = format!(
            "{:<name_w$}  {:<version_w$}  {value:>value_w$}",
            figure.name, figure.version
        );
        if figure.threshold != 0.0 {
            let _ = write!(line, "  limit {}", number(figure.threshold));
        }
        field(out, "", &format!("  {line}"))?;
    }
    Ok(())
}

fn query(out: &mut String, query: &str) -> fmt::Result {
    if query.is_empty() {
        return Ok(());
    }
    field(out, "", &format!("query: {query}"))
}

/// `4/9  analysis: 3 passing intervals`: the step being carried out, counted from 1.
fn step(r: &pb::Rollout) -> String {
    let total = r.plan.len();
    match r.plan.get(r.step_index as usize) {
        Some(step) => format!("{}/{total}  {}", r.step_index + 1, step_description(step)),
        None if total == 0 => "no plan yet".to_owned(),
        None => format!("{total}/{total}  every step done"),
    }
}

/// The orchestrator's description, or one made from the action when it sent none.
fn step_description(step: &pb::PlanStep) -> String {
    use pb::plan_step::Action;

    if !step.description.is_empty() {
        return step.description.clone();
    }
    match &step.action {
        Some(Action::ScaleNew(n)) => format!("run {n} new instance{}", plural(*n)),
        Some(Action::ScaleStable(n)) => format!("run {n} stable instance{}", plural(*n)),
        Some(Action::SetWeight(w)) => format!("weight {w}% to the new version"),
        Some(Action::Pause(pause)) => match &pause.duration {
            Some(d) => format!("pause {}", duration(d)),
            None => "pause until promoted".to_owned(),
        },
        Some(Action::Analysis(a)) => format!(
            "analysis: {} passing interval{}",
            a.intervals,
            plural(a.intervals)
        ),
        Some(Action::WeightByInstances(_)) => "weights by serving instances".to_owned(),
        None => "(unknown step)".to_owned(),
    }
}

/// When the current pause ends: at a time, or when someone promotes.
fn pause(r: &pb::Rollout) -> Option<String> {
    if let Some(until) = &r.pause_until {
        return Some(format!("until {}", timestamp(Some(until))));
    }
    let waits_for_promote = matches!(
        r.plan
            .get(r.step_index as usize)
            .and_then(|s| s.action.as_ref()),
        Some(pb::plan_step::Action::Pause(pb::PauseStep {
            duration: None
        }))
    );
    (waits_for_promote && r.state() == pb::RolloutState::Progressing)
        .then(|| format!("until promoted: flotilla rollout promote {}", r.id))
}

fn analysis_settings(a: &pb::Analysis) -> String {
    let or_default = |v: Option<String>| v.unwrap_or_else(|| "default".to_owned());
    format!(
        "every {}; error ratio at most stable +{}; p99 at most stable ×{} (floor {}); \
         at least {} requests; tolerates {} failed, {} inconclusive in a row",
        or_default(a.interval.as_ref().map(duration)),
        or_default(a.max_error_ratio_increase.map(number)),
        or_default(a.max_p99_ratio.map(number)),
        or_default(a.p99_floor.as_ref().map(duration)),
        a.min_requests,
        a.failure_limit,
        or_default(a.inconclusive_limit.map(|n| n.to_string())),
    )
}

/// `1.1.0 (new)`, `1.0.0 (stable)`, or the version alone when it is neither.
fn version_with_role(r: &pb::Rollout, version: &str) -> String {
    if version == r.to_version {
        format!("{version} (new)")
    } else if version == r.from_version {
        format!("{version} (stable)")
    } else {
        version.to_owned()
    }
}

/// `████░░░░…`: the percentage in [`BAR_WIDTH`] cells, rounded to the nearest cell.
pub fn bar(percent: u32) -> String {
    let filled = ((percent.min(100) as usize * BAR_WIDTH) + 50) / 100;
    format!("{}{}", "█".repeat(filled), "░".repeat(BAR_WIDTH - filled))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::render::{
        ended_line,
        tests::{ID, PLAIN, aborted, at, canary, halted},
    };

    #[test]
    fn a_progressing_canary() {
        assert_eq!(
            rollout(&canary(), PLAIN),
            "rollout 0f8fad5b-d9cb-469f-a165-70867728950e  greeter 1.0.0 → 1.1.0  PROGRESSING\n\
             \x20 strategy   canary, steps 10,analysis:3,pause,100; 2 replicas\n\
             \x20 step       3/7  analysis: 3 passing intervals\n\
             \x20 status     analysing 1.1.0 against 1.0.0\n\
             \x20 weights    1.0.0 (stable)  ██████████████████░░   90%\n\
             \x20            1.1.0 (new)     ██░░░░░░░░░░░░░░░░░░   10%\n\
             \x20 instances  stable  1.0.0  127.0.0.1:50071  SERVING   pid 50071\n\
             \x20            stable  1.0.0  127.0.0.1:50072  SERVING   pid 50072\n\
             \x20            new     1.1.0  127.0.0.1:50073  STARTING  pid 50073\n\
             \x20 settings   every 1s; error ratio at most stable +0.01; p99 at most stable ×1.5 (floor 25ms); at least 20 requests; tolerates 0 failed, 5 inconclusive in a row\n\
             \x20 revision   4\n\
             \x20 owner      orchestrator-a\n\
             \x20 updated    2026-11-25T12:00:42.000Z (created 2026-11-25T12:00:00.000Z)\n"
        );
    }

    #[test]
    fn a_halted_rollout_shows_gate_figures_and_query() {
        let text = rollout(&halted(), PLAIN);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with("  PAUSED"), "{text}");
        let halt = lines
            .iter()
            .position(|l| l.starts_with("  halt "))
            .unwrap_or_else(|| panic!("no halt line:\n{text}"));
        assert_eq!(
            &lines[halt..halt + 4],
            &[
                "  halt       ANALYSIS at 2026-11-25T12:00:40.000Z: 6 inconclusive intervals in a row (limit 5): too few requests to judge 1.1.0",
                "               requests  1.1.0   3  limit 20",
                "               requests  1.0.0  41",
                "             query: grpc_server_handled_total of 127.0.0.1:50073 against 127.0.0.1:50071, 127.0.0.1:50072 over 1s",
            ]
        );
        // The last analysis, with its counts, and the same figures.
        assert!(
            text.contains(
                "\n  analysis   INCONCLUSIVE at 2026-11-25T12:00:40.000Z; 0 failed intervals so far, 6 inconclusive in a row\n\
                 \x20              requests  1.1.0   3  limit 20\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn an_aborted_rollout() {
        let text = rollout(&aborted(), PLAIN);
        assert!(text.starts_with(&format!("rollout {ID}  greeter 1.0.0 → 1.1.0  ABORTED\n")));
        assert!(
            text.contains(
                "  halt       ANALYSIS at 2026-11-25T12:00:50.000Z: error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01\n\
                 \x20              error_ratio  1.1.0    0.25  limit 0.0105\n\
                 \x20              error_ratio  1.0.0  0.0005\n"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "  weights    1.0.0 (stable)  ████████████████████  100%\n\
                 \x20            1.1.0 (new)     ░░░░░░░░░░░░░░░░░░░░    0%\n"
            ),
            "{text}"
        );
        assert!(!text.contains("new     1.1.0"), "{text}");
        assert!(!text.contains("revision"), "{text}");
        assert_eq!(
            ended_line(&aborted()),
            format!(
                "rollout {ID} ended ABORTED: ANALYSIS gate: error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01"
            )
        );
    }

    #[test]
    fn colour_marks_state_health_and_gate() {
        let text = rollout(&halted(), Style { colour: true });
        assert!(text.contains("\x1b[33mPAUSED\x1b[0m"), "{text}");
        assert!(text.contains("\x1b[31mANALYSIS\x1b[0m"), "{text}");
        assert!(text.contains("\x1b[32mSERVING \x1b[0m"), "{text}");
        assert!(text.contains("\x1b[33mINCONCLUSIVE\x1b[0m"), "{text}");
        assert!(!rollout(&halted(), PLAIN).contains('\x1b'));
    }

    #[test]
    fn weight_bars_round_to_the_nearest_cell() {
        assert_eq!(bar(0), "░".repeat(20));
        assert_eq!(bar(100), "█".repeat(20));
        assert_eq!(bar(50), format!("{}{}", "█".repeat(10), "░".repeat(10)));
        // A cell is 5%: 3% is nearer one cell than none, 2% nearer none.
        assert_eq!(bar(3).chars().filter(|&c| c == '█').count(), 1);
        assert_eq!(bar(2).chars().filter(|&c| c == '█').count(), 0);
        assert_eq!(bar(250), "█".repeat(20));
    }

    #[test]
    fn a_pause_waiting_for_promote_says_how() {
        let waiting = pb::Rollout {
            step_index: 3,
            ..canary()
        };
        assert!(
            rollout(&waiting, PLAIN).contains(&format!(
                "\n  step       4/7  pause until promoted\n\
                 \x20 status     analysing 1.1.0 against 1.0.0\n\
                 \x20 pause      until promoted: flotilla rollout promote {ID}\n"
            )),
            "{}",
            rollout(&waiting, PLAIN)
        );
        let timed = pb::Rollout {
            pause_until: at(65),
            ..canary()
        };
        assert!(rollout(&timed, PLAIN).contains("\n  pause      until 2026-11-25T12:01:05.000Z\n"));
        let done = pb::Rollout {
            step_index: 7,
            state: pb::RolloutState::Succeeded.into(),
            ..canary()
        };
        assert!(rollout(&done, PLAIN).contains("\n  step       7/7  every step done\n"));
    }

    #[test]
    fn a_first_deployment_and_a_rollback() {
        let first = pb::Rollout {
            from_version: String::new(),
            rollback_to_revision: 0,
            ..canary()
        };
        assert!(
            rollout(&first, PLAIN).contains("  greeter → 1.1.0 (first deployment)  PROGRESSING\n")
        );
        let rollback = pb::Rollout {
            from_version: "1.1.0".into(),
            to_version: "1.0.0".into(),
            rollback_to_revision: 3,
            skip_analysis: true,
            ..canary()
        };
        let text = rollout(&rollback, PLAIN);
        assert!(
            text.contains("greeter 1.1.0 → 1.0.0  PROGRESSING  (rollback to revision 3)\n"),
            "{text}"
        );
        assert!(
            text.contains("; emergency path: no steps, no analysis\n"),
            "{text}"
        );
        assert!(!text.contains("settings"), "{text}");
    }
}
