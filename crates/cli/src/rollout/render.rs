//! Rollouts, events and revisions as text. Pure: every function returns the string to print,
//! so tests assert on exactly what an operator sees. The live display of `watch` is
//! [`live_frame`] drawn over the previous one.

use std::fmt::{self, Write};

use flotilla_model::{Millis, Timestamp};
use flotilla_proto::rollout::v1 as pb;

use crate::report::Style;

/// Cells in a weight bar: 5% each.
const BAR_WIDTH: usize = 20;

/// Events kept under the live display: enough to see what just happened without pushing the
/// rollout off a small terminal.
pub const LIVE_EVENTS: usize = 8;

/// The label column of the rollout view.
const LABEL: usize = 10;

/// One rollout: headline, strategy, step, status, halt, weights, instances, analysis, settings.
/// Every line ends with a newline.
pub fn rollout(rollout: &pb::Rollout, style: Style) -> String {
    let mut out = String::new();
    write_rollout(&mut out, rollout, style).expect("a String takes any text");
    out
}

/// The live display of a watched rollout: the rollout view, its latest events (their halts are
/// in the view already), and how the watch stands.
pub fn live_frame(rollout: &pb::Rollout, recent: &[pb::RolloutEvent], style: Style) -> String {
    let mut out = self::rollout(rollout, style);
    if !recent.is_empty() {
        out.push_str("  events\n");
        for event in recent {
            out.push_str("    ");
            out.push_str(&event_text(event, rollout.plan.len(), false));
            out.push('\n');
        }
    }
    let footer = match rollout.state() {
        pb::RolloutState::Succeeded | pb::RolloutState::Aborted => ended_line(rollout),
        _ => style.paint(
            "watching; Ctrl-C stops watching, not the rollout",
            Style::DIM,
        ),
    };
    out.push_str(&footer);
    out.push('\n');
    out
}

/// The first line of an append-only watch: which rollout, what it does, where it is.
pub fn watch_header(rollout: &pb::Rollout) -> String {
    format!(
        "watching rollout {}: {}, {}, {} steps, {}",
        rollout.id,
        change(rollout),
        stored_strategy(rollout),
        rollout.plan.len(),
        state_name(rollout.state),
    )
}

/// The last line of an append-only watch, once the rollout has ended.
pub fn ended_line(rollout: &pb::Rollout) -> String {
    let state = state_name(rollout.state);
    match &rollout.halt {
        Some(halt) if rollout.state() == pb::RolloutState::Aborted => format!(
            "rollout {} ended {state}: {} gate: {}",
            rollout.id,
            gate_name(halt.gate),
            halt.message
        ),
        _ => format!(
            "rollout {} ended {state}: {}",
            rollout.id, rollout.status_message
        ),
    }
}

/// One event on one line, for logs: time, sequence, kind, the plan step it belongs to, the
/// message and, for halts and analyses, the gate, figures and query.
pub fn event_line(event: &pb::RolloutEvent, plan_len: usize) -> String {
    event_text(event, plan_len, true)
}

fn event_text(event: &pb::RolloutEvent, plan_len: usize, with_halt: bool) -> String {
    // Sequence and kind padded so that messages line up over the first ten thousand events.
    let mut line = format!(
        "{} {:<5} {:<16}",
        timestamp(event.time.as_ref()),
        format!("#{}", event.sequence),
        event.kind
    );
    if (event.step_index as usize) < plan_len {
        let _ = write!(line, " [{}/{plan_len}]", event.step_index + 1);
    }
    let _ = write!(line, " {}", event.message);
    if let Some(halt) = event.halt.as_ref().filter(|_| with_halt) {
        let _ = write!(line, " — gate {}", gate_name(halt.gate));
        if !halt.figures.is_empty() {
            let figures: Vec<String> = halt.figures.iter().map(figure_inline).collect();
            let _ = write!(line, "; {}", figures.join(", "));
        }
        if !halt.query.is_empty() {
            let _ = write!(line, "; query: {}", halt.query);
        }
    }
    line
}

/// An ExplainRollout answer: the summary, the gates with their figures, the instances checked
/// now, and the last events.
pub fn explanation(e: &pb::RolloutExplanation, style: Style) -> String {
    let mut out = String::new();
    write_explanation(&mut out, e, style).expect("a String takes any text");
    out
}

fn write_explanation(out: &mut String, e: &pb::RolloutExplanation, style: Style) -> fmt::Result {
    if let Some(r) = &e.rollout {
        writeln!(
            out,
            "{}",
            style.paint(&format!("rollout {}: {}", r.id, change(r)), Style::BOLD)
        )?;
    }
    writeln!(out, "  {}", e.summary)?;
    writeln!(out, "  gates")?;
    let name_w = e
        .gates
        .iter()
        .map(|g| gate_name(g.gate).len())
        .max()
        .unwrap_or(0);
    for gate in &e.gates {
        let verdict = format!("{:<12}", gate.verdict);
        writeln!(
            out,
            "    {:<name_w$}  {}  {}",
            gate_name(gate.gate),
            style.paint(&verdict, verdict_colour(&gate.verdict)),
            gate.message
        )?;
        for figure in &gate.figures {
            writeln!(
                out,
                "    {:<name_w$}  {:<12}    {}",
                "",
                "",
                figure_inline(figure)
            )?;
        }
        if !gate.query.is_empty() {
            writeln!(
                out,
                "    {:<name_w$}  {:<12}    query: {}",
                "", "", gate.query
            )?;
        }
    }
    if e.instances.is_empty() {
        writeln!(out, "  instances none")?;
    } else {
        writeln!(out, "  instances (health: last seen / checked now)")?;
        for checked in &e.instances {
            let Some(i) = &checked.instance else { continue };
            let mut line = format!(
                "    {} {:<6} {:<21} {} / {}",
                i.version,
                i.role,
                i.address,
                style.paint(&i.health, health_colour(&i.health)),
                style.paint(
                    &checked.checked_health,
                    health_colour(&checked.checked_health)
                ),
            );
            if !checked.error.is_empty() {
                let _ = write!(line, " ({})", checked.error);
            }
            writeln!(out, "{line}")?;
        }
    }
    if !e.recent_events.is_empty() {
        let plan_len = e.rollout.as_ref().map_or(0, |r| r.plan.len());
        writeln!(out, "  last events")?;
        for event in &e.recent_events {
            writeln!(out, "    {}", event_line(event, plan_len))?;
        }
    }
    Ok(())
}

/// Rollouts as a table, one per line.
pub fn rollout_table(rollouts: &[pb::Rollout]) -> String {
    if rollouts.is_empty() {
        return "no rollouts\n".to_owned();
    }
    let rows = rollouts
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                r.service.clone(),
                or_dash(&r.from_version),
                r.to_version.clone(),
                strategy_kind(r.strategy.as_ref()).to_owned(),
                state_name(r.state),
                step_fraction(r),
                timestamp(r.update_time.as_ref()),
            ]
        })
        .collect();
    table(
        &[
            "ID", "SERVICE", "FROM", "TO", "STRATEGY", "STATE", "STEP", "UPDATED",
        ],
        rows,
    )
}

/// A service's revisions as a table, newest first as the orchestrator sends them.
pub fn revision_table(service: &str, revisions: &[pb::Revision]) -> String {
    if revisions.is_empty() {
        return format!("{service} has no revisions yet\n");
    }
    let rows = revisions
        .iter()
        .map(|r| {
            vec![
                r.number.to_string(),
                r.version.clone(),
                r.rollout_id.clone(),
                timestamp(r.time.as_ref()),
                match &r.replaced_time {
                    Some(t) => timestamp(Some(t)),
                    None => "current".to_owned(),
                },
            ]
        })
        .collect();
    table(
        &["REVISION", "VERSION", "ROLLOUT", "FULL TRAFFIC", "REPLACED"],
        rows,
    )
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

/// `error_ratio[1.1.0]=0.04 (limit 0.011)`, as the orchestrator's own messages write figures.
fn figure_inline(figure: &pb::Figure) -> String {
    let mut text = format!(
        "{}[{}]={}",
        figure.name,
        figure.version,
        number(figure.value)
    );
    if figure.threshold != 0.0 {
        let _ = write!(text, " (limit {})", number(figure.threshold));
    }
    text
}

/// `greeter 1.0.0 → 1.1.0`, or `greeter → 1.0.0 (first deployment)`.
fn change(r: &pb::Rollout) -> String {
    if r.from_version.is_empty() {
        format!("{} → {} (first deployment)", r.service, r.to_version)
    } else {
        format!("{} {} → {}", r.service, r.from_version, r.to_version)
    }
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

/// `3/9`, or `9/9` once every step is done.
fn step_fraction(r: &pb::Rollout) -> String {
    let total = r.plan.len();
    format!("{}/{total}", (r.step_index as usize + 1).min(total))
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

/// A stored rollout's strategy. It always names one, except the all-at-once kind: a first
/// deployment, or a rollback's emergency path.
fn stored_strategy(r: &pb::Rollout) -> String {
    match &r.strategy {
        None => "all at once, no steps".to_owned(),
        Some(_) => strategy(r.strategy.as_ref()),
    }
}

/// The strategy in the `--steps` syntax where it has steps, so it can be pasted back.
pub fn strategy(strategy: Option<&pb::Strategy>) -> String {
    use pb::strategy::Kind;

    match strategy.and_then(|s| s.kind.as_ref()) {
        None => "canary, default steps".to_owned(),
        Some(Kind::Canary(canary)) if canary.steps.is_empty() => "canary, default steps".to_owned(),
        Some(Kind::Canary(canary)) => {
            let steps: Vec<String> = canary.steps.iter().map(canary_step).collect();
            format!("canary, steps {}", steps.join(","))
        }
        Some(Kind::Rolling(rolling)) => format!(
            "rolling, max surge {}, max unavailable {}",
            rolling.max_surge, rolling.max_unavailable
        ),
        Some(Kind::BlueGreen(blue_green)) => format!(
            "blue-green, {}, rollback window {}",
            match &blue_green.auto_promote_after {
                Some(d) => format!("promotes itself after {}", duration(d)),
                None => "waits for promote".to_owned(),
            },
            blue_green
                .rollback_window
                .as_ref()
                .map_or_else(|| "30s (default)".to_owned(), duration)
        ),
    }
}

fn strategy_kind(strategy: Option<&pb::Strategy>) -> &'static str {
    use pb::strategy::Kind;

    match strategy.and_then(|s| s.kind.as_ref()) {
        None => "at once",
        Some(Kind::Canary(_)) => "canary",
        Some(Kind::Rolling(_)) => "rolling",
        Some(Kind::BlueGreen(_)) => "blue-green",
    }
}

fn canary_step(step: &pb::CanaryStep) -> String {
    use pb::canary_step::Step;

    match &step.step {
        Some(Step::SetWeight(w)) => w.to_string(),
        Some(Step::Pause(pb::PauseStep { duration: None })) => "pause".to_owned(),
        Some(Step::Pause(pb::PauseStep { duration: Some(d) })) => {
            format!("pause:{}", duration(d))
        }
        Some(Step::Analysis(a)) => format!("analysis:{}", a.intervals),
        None => "?".to_owned(),
    }
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

/// `PAUSED`, without the enum's prefix; an unknown value as its number.
pub fn state_name(state: i32) -> String {
    match pb::RolloutState::try_from(state) {
        Ok(state) => state
            .as_str_name()
            .trim_start_matches("ROLLOUT_STATE_")
            .to_owned(),
        Err(_) => format!("STATE_{state}"),
    }
}

/// `ANALYSIS`, without the enum's prefix; an unknown value as its number.
pub fn gate_name(gate: i32) -> String {
    match pb::Gate::try_from(gate) {
        Ok(gate) => gate.as_str_name().trim_start_matches("GATE_").to_owned(),
        Err(_) => format!("GATE_{gate}"),
    }
}

fn state_colour(state: pb::RolloutState) -> &'static str {
    match state {
        pb::RolloutState::Succeeded => Style::GREEN,
        pb::RolloutState::Paused => Style::YELLOW,
        pb::RolloutState::Aborting | pb::RolloutState::Aborted => Style::RED,
        pb::RolloutState::Progressing | pb::RolloutState::Unspecified => Style::CYAN,
    }
}

fn health_colour(health: &str) -> &'static str {
    match health {
        "SERVING" => Style::GREEN,
        "NOT_SERVING" => Style::RED,
        _ => Style::YELLOW,
    }
}

fn verdict_colour(verdict: &str) -> &'static str {
    match verdict {
        "PASSED" => Style::GREEN,
        "FAILED" => Style::RED,
        _ => Style::YELLOW,
    }
}

/// A figure without noise: integers as integers, others to four decimals with trailing zeros
/// dropped, and tiny non-zero values in scientific notation rather than as 0.
pub fn number(value: f64) -> String {
    if value.fract() == 0.0 && value.abs() < 1e15 {
        return format!("{value:.0}");
    }
    if value != 0.0 && value.abs() < 1e-4 {
        return format!("{value:.1e}");
    }
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// RFC 3339 in UTC to the millisecond, or `-` when unset.
pub fn timestamp(time: Option<&prost_types::Timestamp>) -> String {
    match time {
        Some(t) => Timestamp(
            t.seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(t.nanos) / 1_000_000),
        )
        .to_string(),
        None => "-".to_owned(),
    }
}

/// `500ms`, `1.5s`, `2m`: the way the flags take durations.
pub fn duration(d: &prost_types::Duration) -> String {
    let ms = d
        .seconds
        .saturating_mul(1000)
        .saturating_add(i64::from(d.nanos) / 1_000_000);
    Millis(u64::try_from(ms).unwrap_or(0)).to_string()
}

fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn or_dash(text: &str) -> String {
    if text.is_empty() {
        "-".to_owned()
    } else {
        text.to_owned()
    }
}

/// Columns padded to their widest cell; the last one is not padded, so no line ends in spaces.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.iter().map(|h| h.to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows) {
        let last = row.len() - 1;
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<width$}  ");
            }
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use pb::plan_step::Action;

    use super::*;

    const PLAIN: Style = Style { colour: false };
    pub(crate) const ID: &str = "0f8fad5b-d9cb-469f-a165-70867728950e";

    pub(crate) fn at(seconds: i64) -> Option<prost_types::Timestamp> {
        // 2026-11-25T12:00:00Z, plus `seconds`.
        Some(prost_types::Timestamp {
            seconds: 1_795_608_000 + seconds,
            nanos: 0,
        })
    }

    fn plan_step(description: &str, action: Action) -> pb::PlanStep {
        pb::PlanStep {
            description: description.into(),
            action: Some(action),
        }
    }

    fn figure(name: &str, version: &str, value: f64, threshold: f64) -> pb::Figure {
        pb::Figure {
            name: name.into(),
            version: version.into(),
            value,
            threshold,
        }
    }

    fn instance(role: &str, version: &str, port: u16, health: &str) -> pb::InstanceStatus {
        pb::InstanceStatus {
            handle: format!("pid {port}"),
            version: version.into(),
            address: format!("127.0.0.1:{port}"),
            role: role.into(),
            health: health.into(),
        }
    }

    /// A canary of greeter 1.0.0 → 1.1.0 at its analysis step, 10% on the new version.
    pub(crate) fn canary() -> pb::Rollout {
        use pb::canary_step::Step;
        pb::Rollout {
            id: ID.into(),
            service: "greeter".into(),
            from_version: "1.0.0".into(),
            to_version: "1.1.0".into(),
            strategy: Some(pb::Strategy {
                kind: Some(pb::strategy::Kind::Canary(pb::Canary {
                    steps: vec![
                        pb::CanaryStep {
                            step: Some(Step::SetWeight(10)),
                        },
                        pb::CanaryStep {
                            step: Some(Step::Analysis(pb::AnalysisStep { intervals: 3 })),
                        },
                        pb::CanaryStep {
                            step: Some(Step::Pause(pb::PauseStep { duration: None })),
                        },
                        pb::CanaryStep {
                            step: Some(Step::SetWeight(100)),
                        },
                    ],
                })),
            }),
            replicas: 2,
            analysis: Some(pb::Analysis {
                interval: Some(prost_types::Duration {
                    seconds: 1,
                    nanos: 0,
                }),
                max_error_ratio_increase: Some(0.01),
                max_p99_ratio: Some(1.5),
                p99_floor: Some(prost_types::Duration {
                    seconds: 0,
                    nanos: 25_000_000,
                }),
                min_requests: 20,
                failure_limit: 0,
                inconclusive_limit: Some(5),
            }),
            state: pb::RolloutState::Progressing.into(),
            plan: vec![
                plan_step("run 1 new instance", Action::ScaleNew(1)),
                plan_step("weight 10% to the new version", Action::SetWeight(10)),
                plan_step(
                    "analysis: 3 passing intervals",
                    Action::Analysis(pb::AnalysisStep { intervals: 3 }),
                ),
                plan_step(
                    "pause until promoted",
                    Action::Pause(pb::PauseStep { duration: None }),
                ),
                plan_step("run 2 new instances", Action::ScaleNew(2)),
                plan_step("weight 100% to the new version", Action::SetWeight(100)),
                plan_step("run 0 stable instances", Action::ScaleStable(0)),
            ],
            step_index: 2,
            halt: None,
            instances: vec![
                instance("stable", "1.0.0", 50071, "SERVING"),
                instance("stable", "1.0.0", 50072, "SERVING"),
                instance("new", "1.1.0", 50073, "STARTING"),
            ],
            weights: vec![
                pb::VersionWeight {
                    version: "1.0.0".into(),
                    percent: 90,
                },
                pb::VersionWeight {
                    version: "1.1.0".into(),
                    percent: 10,
                },
            ],
            last_analysis: None,
            revision: 4,
            rollback_to_revision: 0,
            pause_until: None,
            owner: "orchestrator-a".into(),
            status_message: "analysing 1.1.0 against 1.0.0".into(),
            create_time: at(0),
            update_time: at(42),
            health_deadline: None,
            progress_deadline: None,
            skip_analysis: false,
        }
    }

    /// The canary halted by analysis: too few requests six intervals in a row.
    pub(crate) fn halted() -> pb::Rollout {
        let figures = vec![
            figure("requests", "1.1.0", 3.0, 20.0),
            figure("requests", "1.0.0", 41.0, 0.0),
        ];
        let query = "grpc_server_handled_total of 127.0.0.1:50073 against 127.0.0.1:50071, 127.0.0.1:50072 over 1s";
        pb::Rollout {
            state: pb::RolloutState::Paused.into(),
            status_message: "halted: 6 inconclusive intervals in a row".into(),
            halt: Some(pb::Halt {
                gate: pb::Gate::Analysis.into(),
                message:
                    "6 inconclusive intervals in a row (limit 5): too few requests to judge 1.1.0"
                        .into(),
                figures: figures.clone(),
                query: query.into(),
                time: at(40),
            }),
            last_analysis: Some(pb::AnalysisResult {
                verdict: "INCONCLUSIVE".into(),
                figures,
                query: query.into(),
                time: at(40),
                failures: 0,
                inconclusive_in_a_row: 6,
            }),
            ..canary()
        }
    }

    /// The canary aborted by a failed analysis, traffic back on 1.0.0.
    pub(crate) fn aborted() -> pb::Rollout {
        pb::Rollout {
            state: pb::RolloutState::Aborted.into(),
            status_message: "aborted; all traffic on 1.0.0".into(),
            halt: Some(pb::Halt {
                gate: pb::Gate::Analysis.into(),
                message: "error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01".into(),
                figures: vec![
                    figure("error_ratio", "1.1.0", 0.25, 0.0105),
                    figure("error_ratio", "1.0.0", 0.0005, 0.0),
                ],
                query: "grpc_server_handled_total{grpc_code!~\"OK|CANCELLED\"}".into(),
                time: at(50),
            }),
            instances: vec![
                instance("stable", "1.0.0", 50071, "SERVING"),
                instance("stable", "1.0.0", 50072, "SERVING"),
            ],
            weights: vec![
                pb::VersionWeight {
                    version: "1.0.0".into(),
                    percent: 100,
                },
                pb::VersionWeight {
                    version: "1.1.0".into(),
                    percent: 0,
                },
            ],
            revision: 0,
            update_time: at(55),
            ..canary()
        }
    }

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

    #[test]
    fn strategies() {
        use pb::strategy::Kind;
        assert_eq!(strategy(None), "canary, default steps");
        assert_eq!(
            strategy(Some(&pb::Strategy {
                kind: Some(Kind::Rolling(pb::Rolling {
                    max_surge: 1,
                    max_unavailable: 0
                }))
            })),
            "rolling, max surge 1, max unavailable 0"
        );
        assert_eq!(
            strategy(Some(&pb::Strategy {
                kind: Some(Kind::BlueGreen(pb::BlueGreen {
                    auto_promote_after: Some(prost_types::Duration {
                        seconds: 300,
                        nanos: 0
                    }),
                    rollback_window: None,
                }))
            })),
            "blue-green, promotes itself after 5m, rollback window 30s (default)"
        );
        // The canary's steps read back through the --steps parser.
        let text = strategy(canary().strategy.as_ref());
        let steps = text.strip_prefix("canary, steps ").unwrap();
        let Some(pb::strategy::Kind::Canary(expected)) = canary().strategy.unwrap().kind else {
            unreachable!()
        };
        assert_eq!(super::super::parse::steps(steps).unwrap().0, expected.steps);
    }

    #[test]
    fn events_are_one_line_each() {
        let step = pb::RolloutEvent {
            sequence: 7,
            time: at(3),
            kind: "STEP_STARTED".into(),
            message: "analysis: 3 passing intervals".into(),
            halt: None,
            step_index: 2,
        };
        assert_eq!(
            event_line(&step, 7),
            "2026-11-25T12:00:03.000Z #7    STEP_STARTED     [3/7] analysis: 3 passing intervals"
        );
        let halted = pb::RolloutEvent {
            sequence: 12,
            time: at(40),
            kind: "HALTED".into(),
            message: "paused: 6 inconclusive intervals in a row".into(),
            halt: halted().halt,
            step_index: 2,
        };
        let line = event_line(&halted, 7);
        assert!(!line.contains('\n'));
        assert_eq!(
            line,
            "2026-11-25T12:00:40.000Z #12   HALTED           [3/7] paused: 6 inconclusive intervals in a row \
             — gate ANALYSIS; requests[1.1.0]=3 (limit 20), requests[1.0.0]=41; \
             query: grpc_server_handled_total of 127.0.0.1:50073 against 127.0.0.1:50071, 127.0.0.1:50072 over 1s"
        );
        // Past the last step (SUCCEEDED), no step is named.
        let succeeded = pb::RolloutEvent {
            kind: "SUCCEEDED".into(),
            message: "all traffic on 1.1.0".into(),
            step_index: 7,
            ..step
        };
        assert_eq!(
            event_line(&succeeded, 7),
            "2026-11-25T12:00:03.000Z #7    SUCCEEDED        all traffic on 1.1.0"
        );
    }

    #[test]
    fn live_frame_is_the_rollout_and_its_latest_events() {
        let events = vec![pb::RolloutEvent {
            sequence: 1,
            time: at(0),
            kind: "STARTED".into(),
            message: "greeter 1.0.0 → 1.1.0".into(),
            halt: None,
            step_index: 0,
        }];
        let frame = live_frame(&canary(), &events, PLAIN);
        assert!(frame.starts_with(&rollout(&canary(), PLAIN)));
        assert!(frame.ends_with(
            "  events\n    2026-11-25T12:00:00.000Z #1    STARTED          [1/7] greeter 1.0.0 → 1.1.0\n\
             watching; Ctrl-C stops watching, not the rollout\n"
        ), "{frame}");

        // Once it has ended, the footer says how; an event's halt is not repeated, since the
        // view shows it above.
        let events = vec![pb::RolloutEvent {
            sequence: 9,
            time: at(50),
            kind: "ABORTED".into(),
            message: "all traffic back on 1.0.0".into(),
            halt: aborted().halt,
            step_index: 2,
        }];
        let frame = live_frame(&aborted(), &events, PLAIN);
        assert!(frame.ends_with(&format!(
            "  events\n    2026-11-25T12:00:50.000Z #9    ABORTED          [3/7] all traffic back on 1.0.0\n\
             rollout {ID} ended ABORTED: ANALYSIS gate: error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01\n"
        )), "{frame}");
    }

    #[test]
    fn tables() {
        let list = rollout_table(&[halted(), aborted()]);
        assert_eq!(
            list,
            format!(
                "ID                                    SERVICE  FROM   TO     STRATEGY  STATE    STEP  UPDATED\n\
                 {ID}  greeter  1.0.0  1.1.0  canary    PAUSED   3/7   2026-11-25T12:00:42.000Z\n\
                 {ID}  greeter  1.0.0  1.1.0  canary    ABORTED  3/7   2026-11-25T12:00:55.000Z\n"
            )
        );
        assert_eq!(rollout_table(&[]), "no rollouts\n");
        let revisions = revision_table(
            "greeter",
            &[
                pb::Revision {
                    number: 2,
                    version: "1.1.0".into(),
                    rollout_id: ID.into(),
                    time: at(60),
                    replaced_time: None,
                },
                pb::Revision {
                    number: 1,
                    version: "1.0.0".into(),
                    rollout_id: "r-1".into(),
                    time: at(0),
                    replaced_time: at(60),
                },
            ],
        );
        assert_eq!(
            revisions,
            format!(
                "REVISION  VERSION  ROLLOUT                               FULL TRAFFIC              REPLACED\n\
                 2         1.1.0    {ID}  2026-11-25T12:01:00.000Z  current\n\
                 1         1.0.0    r-1                                   2026-11-25T12:00:00.000Z  2026-11-25T12:01:00.000Z\n"
            )
        );
        assert_eq!(
            revision_table("greeter", &[]),
            "greeter has no revisions yet\n"
        );
    }

    #[test]
    fn numbers_durations_and_names() {
        assert_eq!(number(20.0), "20");
        assert_eq!(number(0.0105), "0.0105");
        assert_eq!(number(1.5), "1.5");
        assert_eq!(number(12.345_678), "12.3457");
        assert_eq!(number(0.00002), "2.0e-5");
        assert_eq!(number(0.0), "0");
        assert_eq!(
            duration(&prost_types::Duration {
                seconds: 1,
                nanos: 500_000_000
            }),
            "1.5s"
        );
        assert_eq!(state_name(pb::RolloutState::Aborting.into()), "ABORTING");
        assert_eq!(state_name(42), "STATE_42");
        assert_eq!(
            gate_name(pb::Gate::ProgressDeadline.into()),
            "PROGRESS_DEADLINE"
        );
        assert_eq!(timestamp(None), "-");
    }
}
