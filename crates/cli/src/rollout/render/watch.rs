//! The text of a watch: the live frame redrawn on a terminal, and the first and last lines of
//! an append-only one.

use flotilla_proto::rollout::v1 as pb;

use super::{
    events::event_text,
    format::{change, gate_name, state_name},
    strategy::stored_strategy,
};
use crate::report::Style;

/// Events kept under the live display: enough to see what just happened without pushing the
/// rollout off a small terminal.
pub const LIVE_EVENTS: usize = 8;

/// The live display of a watched rollout: the rollout view, its latest events (their halts are
/// in the view already), and how the watch stands.
pub fn live_frame(rollout: &pb::Rollout, recent: &[pb::RolloutEvent], style: Style) -> String {
    let mut out = super::rollout(rollout, style);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::render::{
        rollout,
        tests::{ID, PLAIN, aborted, at, canary},
    };

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
}
