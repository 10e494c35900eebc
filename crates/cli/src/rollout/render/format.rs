//! Formatting shared by the views: numbers, times, durations, enum names, colours, figures.

use std::fmt::Write;

use flotilla_model::{Millis, Timestamp};
use flotilla_proto::rollout::v1 as pb;

use crate::report::Style;

/// `error_ratio[1.1.0]=0.04 (limit 0.011)`, as the orchestrator's own messages write figures.
pub(super) fn figure_inline(figure: &pb::Figure) -> String {
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
pub(super) fn change(r: &pb::Rollout) -> String {
    if r.from_version.is_empty() {
        format!("{} → {} (first deployment)", r.service, r.to_version)
    } else {
        format!("{} {} → {}", r.service, r.from_version, r.to_version)
    }
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

pub(super) fn state_colour(state: pb::RolloutState) -> &'static str {
    match state {
        pb::RolloutState::Succeeded => Style::GREEN,
        pb::RolloutState::Paused => Style::YELLOW,
        pb::RolloutState::Aborting | pb::RolloutState::Aborted => Style::RED,
        pb::RolloutState::Progressing | pb::RolloutState::Unspecified => Style::CYAN,
    }
}

pub(super) fn health_colour(health: &str) -> &'static str {
    match health {
        "SERVING" => Style::GREEN,
        "NOT_SERVING" => Style::RED,
        _ => Style::YELLOW,
    }
}

pub(super) fn verdict_colour(verdict: &str) -> &'static str {
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

pub(super) fn plural(n: u32) -> &'static str {
    if n == 1 { "" } else { "s" }
}

#[cfg(test)]
mod tests {
    use super::*;

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
