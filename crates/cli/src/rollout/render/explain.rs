//! An ExplainRollout answer: why a rollout is where it is.

use std::fmt::{self, Write};

use flotilla_proto::rollout::v1 as pb;

use super::{
    events::event_line,
    format::{change, figure_inline, gate_name, health_colour, verdict_colour},
};
use crate::report::Style;

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
