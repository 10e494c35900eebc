//! Lists as tables: rollouts, and a service's revisions.

use std::fmt::Write;

use flotilla_proto::rollout::v1 as pb;

use super::{
    format::{state_name, timestamp},
    strategy::strategy_kind,
};

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

/// `3/9`, or `9/9` once every step is done.
fn step_fraction(r: &pb::Rollout) -> String {
    let total = r.plan.len();
    format!("{}/{total}", (r.step_index as usize + 1).min(total))
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
mod tests {
    use super::*;
    use crate::rollout::render::tests::{ID, aborted, at, halted};

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
}
