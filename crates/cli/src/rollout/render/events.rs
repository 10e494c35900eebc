//! Events one to a line, with the plan step each belongs to and, for logs, its halt.

use std::fmt::Write;

use flotilla_proto::rollout::v1 as pb;

use super::format::{figure_inline, gate_name, timestamp};

/// One event on one line, for logs: time, sequence, kind, the plan step it belongs to, the
/// message and, for halts and analyses, the gate, figures and query.
pub fn event_line(event: &pb::RolloutEvent, plan_len: usize) -> String {
    event_text(event, plan_len, true)
}

pub(super) fn event_text(event: &pb::RolloutEvent, plan_len: usize, with_halt: bool) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::render::tests::{at, halted};

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
}
