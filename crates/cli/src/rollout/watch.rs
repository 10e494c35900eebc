//! Following a rollout: what to print for each update of WatchRollout, and when the watch is
//! over. The stream loop itself is in the dispatch; this part is pure, so each mode's output is
//! tested update by update.

use std::collections::VecDeque;

use flotilla_proto::rollout::v1 as pb;

use super::{Console, Outcome, RolloutError, json, render};
use crate::{cli::OutputFormat, report::Style};

/// Moves the cursor home and clears the screen: each frame replaces the last one whole, which
/// stays right however long its lines are and however they wrap.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// How updates are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// On a terminal: the rollout redrawn in place after each update.
    Live(Style),
    /// Into a pipe or a log: a header, one line per event, a last line when it ends.
    Lines,
    /// `--format json`: each update as one JSON object on one line.
    Json,
}

impl Mode {
    pub fn new(console: Console, format: OutputFormat) -> Self {
        match format {
            OutputFormat::Json => Self::Json,
            OutputFormat::Text if console.live => Self::Live(console.style),
            OutputFormat::Text => Self::Lines,
        }
    }
}

/// What one update led to: the text to print and, once the rollout has ended, the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub output: String,
    pub ended: Option<Outcome>,
}

/// The state of a watch between updates.
#[derive(Debug)]
pub struct Follow {
    mode: Mode,
    /// The rollout as last seen.
    last: Option<pb::Rollout>,
    /// The latest events, for the live display.
    recent: VecDeque<pb::RolloutEvent>,
}

impl Follow {
    pub fn new(mode: Mode) -> Self {
        Self {
            mode,
            last: None,
            recent: VecDeque::with_capacity(render::LIVE_EVENTS),
        }
    }

    pub fn update(&mut self, update: &pb::RolloutUpdate) -> Step {
        let first = self.last.is_none();
        // An update without a rollout (which the orchestrator does not send) still carries events.
        if let Some(rollout) = &update.rollout {
            self.last = Some(rollout.clone());
        }
        let Some(rollout) = &self.last else {
            return Step {
                output: String::new(),
                ended: None,
            };
        };
        let ended = match rollout.state() {
            pb::RolloutState::Succeeded => Some(Outcome::Succeeded),
            pb::RolloutState::Aborted => Some(Outcome::Aborted),
            _ => None,
        };

        let output = match self.mode {
            Mode::Json => json::line(&json::update(update)),
            Mode::Live(style) => {
                for event in &update.events {
                    if self.recent.len() == render::LIVE_EVENTS {
                        self.recent.pop_front();
                    }
                    self.recent.push_back(event.clone());
                }
                let recent: Vec<pb::RolloutEvent> = self.recent.iter().cloned().collect();
                format!("{CLEAR}{}", render::live_frame(rollout, &recent, style))
            }
            Mode::Lines => {
                let mut out = String::new();
                if first {
                    out.push_str(&render::watch_header(rollout));
                    out.push('\n');
                }
                for event in &update.events {
                    out.push_str(&render::event_line(event, rollout.plan.len()));
                    out.push('\n');
                }
                if ended.is_some() {
                    out.push_str(&render::ended_line(rollout));
                    out.push('\n');
                }
                out
            }
        };
        Step { output, ended }
    }

    /// The error for a stream that closed while the rollout was still going.
    pub fn ended_early(&self, id: &str) -> RolloutError {
        RolloutError::StreamEnded {
            id: id.to_owned(),
            last_seen: match &self.last {
                Some(rollout) => format!("last seen {}", render::state_name(rollout.state)),
                None => "no update received".to_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::render::tests::{ID, aborted, at, canary, halted};

    fn event(sequence: u64, kind: &str, message: &str, step_index: u32) -> pb::RolloutEvent {
        pb::RolloutEvent {
            sequence,
            time: at(sequence as i64),
            kind: kind.into(),
            message: message.into(),
            halt: None,
            step_index,
        }
    }

    fn update(rollout: pb::Rollout, events: Vec<pb::RolloutEvent>) -> pb::RolloutUpdate {
        pb::RolloutUpdate {
            rollout: Some(rollout),
            events,
        }
    }

    #[test]
    fn lines_are_appended_and_the_end_is_told() {
        let mut follow = Follow::new(Mode::Lines);
        let first = follow.update(&update(
            canary(),
            vec![
                event(1, "STARTED", "greeter 1.0.0 → 1.1.0", 0),
                event(2, "STEP_STARTED", "run 1 new instance", 0),
            ],
        ));
        assert_eq!(first.ended, None);
        assert_eq!(
            first.output,
            format!(
                "watching rollout {ID}: greeter 1.0.0 → 1.1.0, canary, steps 10,analysis:3,pause,100, 7 steps, PROGRESSING\n\
                 2026-11-25T12:00:01.000Z #1    STARTED          [1/7] greeter 1.0.0 → 1.1.0\n\
                 2026-11-25T12:00:02.000Z #2    STEP_STARTED     [1/7] run 1 new instance\n"
            )
        );
        let last = follow.update(&update(
            aborted(),
            vec![event(3, "ABORTED", "all traffic back on 1.0.0", 2)],
        ));
        assert_eq!(last.ended, Some(Outcome::Aborted));
        assert_eq!(Outcome::Aborted.exit_code(), 1);
        assert_eq!(
            last.output,
            format!(
                "2026-11-25T12:00:03.000Z #3    ABORTED          [3/7] all traffic back on 1.0.0\n\
                 rollout {ID} ended ABORTED: ANALYSIS gate: error ratio of 1.1.0 exceeds 1.0.0's by more than 0.01\n"
            )
        );
        assert!(!last.output.contains('\x1b'));
    }

    #[test]
    fn succeeded_ends_the_watch_with_0() {
        let mut follow = Follow::new(Mode::Lines);
        let done = pb::Rollout {
            state: pb::RolloutState::Succeeded.into(),
            step_index: 7,
            status_message: "all traffic on 1.1.0".into(),
            ..canary()
        };
        let step = follow.update(&update(done, vec![]));
        assert_eq!(step.ended, Some(Outcome::Succeeded));
        assert_eq!(Outcome::Succeeded.exit_code(), 0);
        assert!(
            step.output.ends_with(&format!(
                "rollout {ID} ended SUCCEEDED: all traffic on 1.1.0\n"
            )),
            "{}",
            step.output
        );
        // A paused rollout has not ended.
        assert_eq!(
            Follow::new(Mode::Lines)
                .update(&update(halted(), vec![]))
                .ended,
            None
        );
    }

    #[test]
    fn live_redraws_the_whole_frame_with_the_latest_events() {
        let mut follow = Follow::new(Mode::Live(Style { colour: false }));
        let events: Vec<_> = (1..=10)
            .map(|n| event(n, "ANALYSIS", &format!("interval {n}"), 2))
            .collect();
        let step = follow.update(&update(canary(), events));
        assert!(step.output.starts_with(CLEAR));
        let frame = &step.output[CLEAR.len()..];
        assert!(frame.starts_with(&render::rollout(&canary(), Style { colour: false })));
        // Only the last LIVE_EVENTS events are kept.
        assert!(!frame.contains("interval 2\n"), "{frame}");
        assert!(frame.contains("interval 3\n"), "{frame}");
        assert!(frame.contains("interval 10\n"), "{frame}");

        let step = follow.update(&update(
            halted(),
            vec![event(11, "HALTED", "paused: inconclusive", 2)],
        ));
        assert_eq!(step.output.matches(CLEAR).count(), 1);
        assert!(!step.output.contains("interval 3\n"));
        assert!(step.output.contains("interval 4\n"));
        assert!(step.output.contains("#11   HALTED"));
        assert!(step.output.contains("  halt       ANALYSIS at"));
    }

    #[test]
    fn json_mode_prints_each_update_as_a_line() {
        let mut follow = Follow::new(Mode::Json);
        let step = follow.update(&update(aborted(), vec![event(9, "ABORTED", "back", 2)]));
        assert_eq!(step.ended, Some(Outcome::Aborted));
        assert_eq!(step.output.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(&step.output).unwrap();
        assert_eq!(value["rollout"]["state"], "ROLLOUT_STATE_ABORTED");
        assert_eq!(value["events"][0]["sequence"], 9);
    }

    #[test]
    fn the_mode_follows_the_terminal_and_the_format() {
        let live = Console {
            live: true,
            style: Style { colour: true },
        };
        assert_eq!(
            Mode::new(live, OutputFormat::Text),
            Mode::Live(Style { colour: true })
        );
        assert_eq!(Mode::new(live, OutputFormat::Json), Mode::Json);
        assert_eq!(Mode::new(Console::PLAIN, OutputFormat::Text), Mode::Lines);
    }

    #[test]
    fn a_stream_that_ends_early_says_what_was_last_seen() {
        let mut follow = Follow::new(Mode::Lines);
        assert_eq!(
            follow.ended_early(ID).to_string(),
            format!("the watch of rollout {ID} ended before the rollout did (no update received)")
        );
        follow.update(&update(canary(), vec![]));
        let error = follow.ended_early(ID);
        assert_eq!(
            error.to_string(),
            format!(
                "the watch of rollout {ID} ended before the rollout did (last seen PROGRESSING)"
            )
        );
        assert_eq!(error.exit_code(), 2);
    }
}
