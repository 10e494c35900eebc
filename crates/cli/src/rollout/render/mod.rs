//! Rollouts, events and revisions as text. Pure: every function returns the string to print,
//! so tests assert on exactly what an operator sees. The live display of `watch` is
//! [`live_frame`] drawn over the previous one.
//!
//! One module per view: the rollout (`view`), its events (`events`), a watch's lines (`watch`),
//! an explanation (`explain`), the lists (`tables`), with strategies (`strategy`) and the
//! formatting they share (`format`) beside them.

mod events;
mod explain;
mod format;
mod strategy;
mod tables;
mod view;
mod watch;

pub use self::{
    events::event_line,
    explain::explanation,
    format::{duration, gate_name, number, state_name, timestamp},
    strategy::strategy,
    tables::{revision_table, rollout_table},
    view::{bar, rollout},
    watch::{LIVE_EVENTS, ended_line, live_frame, watch_header},
};

#[cfg(test)]
pub(crate) mod tests;
