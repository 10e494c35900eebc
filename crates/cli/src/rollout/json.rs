//! Rollouts, events and revisions as JSON, for scripts.
//!
//! The output is proto3 JSON that any protobuf JSON parser reads back into the same messages:
//! the proto field names (as `preserving_proto_field_name` prints them), enum values by their
//! full names (`ROLLOUT_STATE_PAUSED`), durations as `"1.500s"`, timestamps in RFC 3339. Two
//! choices for scripts: every field is present (unset messages as `null`), and 64-bit integers
//! are numbers rather than strings (revisions and sequence numbers stay far below 2^53).
//!
//! prost's types do not derive serde, and a serde derive on generated code would need a build
//! step of its own; these few messages are converted by hand.

use flotilla_proto::rollout::v1 as pb;
use serde_json::{Value, json};

use super::render;

/// Pretty-printed, with a final newline: the form of one-shot commands.
pub fn pretty(value: &Value) -> String {
    let mut text = serde_json::to_string_pretty(value).expect("a Value always serialises");
    text.push('\n');
    text
}

/// One line, with a final newline: the form of each watch update.
pub fn line(value: &Value) -> String {
    let mut text = value.to_string();
    text.push('\n');
    text
}

pub fn rollouts(rollouts: &[pb::Rollout]) -> Value {
    json!({ "rollouts": rollouts.iter().map(rollout).collect::<Vec<_>>() })
}

pub fn revisions(revisions: &[pb::Revision]) -> Value {
    json!({ "revisions": revisions.iter().map(revision).collect::<Vec<_>>() })
}

pub fn update(update: &pb::RolloutUpdate) -> Value {
    json!({
        "rollout": update.rollout.as_ref().map(rollout),
        "events": update.events.iter().map(event).collect::<Vec<_>>(),
    })
}

pub fn rollout(r: &pb::Rollout) -> Value {
    json!({
        "id": r.id,
        "service": r.service,
        "from_version": r.from_version,
        "to_version": r.to_version,
        "strategy": r.strategy.as_ref().map(strategy),
        "replicas": r.replicas,
        "analysis": r.analysis.as_ref().map(analysis),
        "state": enum_name(pb::RolloutState::try_from(r.state).map(|s| s.as_str_name()), r.state),
        "plan": r.plan.iter().map(plan_step).collect::<Vec<_>>(),
        "step_index": r.step_index,
        "halt": r.halt.as_ref().map(halt),
        "instances": r.instances.iter().map(instance).collect::<Vec<_>>(),
        "weights": r.weights.iter().map(|w| json!({"version": w.version, "percent": w.percent})).collect::<Vec<_>>(),
        "last_analysis": r.last_analysis.as_ref().map(analysis_result),
        "revision": r.revision,
        "rollback_to_revision": r.rollback_to_revision,
        "pause_until": r.pause_until.as_ref().map(timestamp),
        "owner": r.owner,
        "status_message": r.status_message,
        "create_time": r.create_time.as_ref().map(timestamp),
        "update_time": r.update_time.as_ref().map(timestamp),
        "health_deadline": r.health_deadline.as_ref().map(duration),
        "progress_deadline": r.progress_deadline.as_ref().map(duration),
        "skip_analysis": r.skip_analysis,
    })
}

pub fn event(e: &pb::RolloutEvent) -> Value {
    json!({
        "sequence": e.sequence,
        "time": e.time.as_ref().map(timestamp),
        "kind": e.kind,
        "message": e.message,
        "halt": e.halt.as_ref().map(halt),
        "step_index": e.step_index,
    })
}

pub fn revision(r: &pb::Revision) -> Value {
    json!({
        "number": r.number,
        "version": r.version,
        "rollout_id": r.rollout_id,
        "time": r.time.as_ref().map(timestamp),
        "replaced_time": r.replaced_time.as_ref().map(timestamp),
    })
}

/// A oneof is its one set field, as in proto3 JSON: `{"canary": {"steps": [...]}}`.
fn strategy(s: &pb::Strategy) -> Value {
    use pb::strategy::Kind;

    match &s.kind {
        None => json!({}),
        Some(Kind::Canary(c)) => {
            json!({"canary": {"steps": c.steps.iter().map(canary_step).collect::<Vec<_>>()}})
        }
        Some(Kind::Rolling(r)) => json!({"rolling": {
            "max_surge": r.max_surge,
            "max_unavailable": r.max_unavailable,
        }}),
        Some(Kind::BlueGreen(b)) => json!({"blue_green": {
            "auto_promote_after": b.auto_promote_after.as_ref().map(duration),
            "rollback_window": b.rollback_window.as_ref().map(duration),
        }}),
    }
}

fn canary_step(s: &pb::CanaryStep) -> Value {
    use pb::canary_step::Step;

    match &s.step {
        None => json!({}),
        Some(Step::SetWeight(w)) => json!({"set_weight": w}),
        Some(Step::Pause(p)) => json!({"pause": pause(p)}),
        Some(Step::Analysis(a)) => json!({"analysis": {"intervals": a.intervals}}),
    }
}

fn pause(p: &pb::PauseStep) -> Value {
    json!({"duration": p.duration.as_ref().map(duration)})
}

fn plan_step(s: &pb::PlanStep) -> Value {
    use pb::plan_step::Action;

    let mut value = json!({"description": s.description});
    let (name, action) = match &s.action {
        None => return value,
        Some(Action::ScaleNew(n)) => ("scale_new", json!(n)),
        Some(Action::ScaleStable(n)) => ("scale_stable", json!(n)),
        Some(Action::SetWeight(w)) => ("set_weight", json!(w)),
        Some(Action::Pause(p)) => ("pause", pause(p)),
        Some(Action::Analysis(a)) => ("analysis", json!({"intervals": a.intervals})),
        Some(Action::WeightByInstances(b)) => ("weight_by_instances", json!(b)),
    };
    value[name] = action;
    value
}

fn analysis(a: &pb::Analysis) -> Value {
    json!({
        "interval": a.interval.as_ref().map(duration),
        "max_error_ratio_increase": a.max_error_ratio_increase,
        "max_p99_ratio": a.max_p99_ratio,
        "p99_floor": a.p99_floor.as_ref().map(duration),
        "min_requests": a.min_requests,
        "failure_limit": a.failure_limit,
        "inconclusive_limit": a.inconclusive_limit,
    })
}

fn halt(h: &pb::Halt) -> Value {
    json!({
        "gate": enum_name(pb::Gate::try_from(h.gate).map(|g| g.as_str_name()), h.gate),
        "message": h.message,
        "figures": h.figures.iter().map(figure).collect::<Vec<_>>(),
        "query": h.query,
        "time": h.time.as_ref().map(timestamp),
    })
}

fn figure(f: &pb::Figure) -> Value {
    json!({"name": f.name, "version": f.version, "value": f.value, "threshold": f.threshold})
}

fn instance(i: &pb::InstanceStatus) -> Value {
    json!({
        "handle": i.handle,
        "version": i.version,
        "address": i.address,
        "role": i.role,
        "health": i.health,
    })
}

fn analysis_result(a: &pb::AnalysisResult) -> Value {
    json!({
        "verdict": a.verdict,
        "figures": a.figures.iter().map(figure).collect::<Vec<_>>(),
        "query": a.query,
        "time": a.time.as_ref().map(timestamp),
        "failures": a.failures,
        "inconclusive_in_a_row": a.inconclusive_in_a_row,
    })
}

/// An ExplainRollout answer.
pub fn explanation(e: &pb::RolloutExplanation) -> Value {
    json!({
        "rollout": e.rollout.as_ref().map(rollout),
        "summary": e.summary,
        "gates": e.gates.iter().map(|g| json!({
            "gate": enum_name(pb::Gate::try_from(g.gate).map(|g| g.as_str_name()), g.gate),
            "verdict": g.verdict,
            "message": g.message,
            "figures": g.figures.iter().map(figure).collect::<Vec<_>>(),
            "query": g.query,
            "time": g.time.as_ref().map(timestamp),
        })).collect::<Vec<_>>(),
        "recent_events": e.recent_events.iter().map(event).collect::<Vec<_>>(),
        "instances": e.instances.iter().map(|i| json!({
            "instance": i.instance.as_ref().map(instance),
            "checked_health": i.checked_health,
            "error": i.error,
        })).collect::<Vec<_>>(),
    })
}

/// Proto3 JSON writes an enum value it does not know as its number.
fn enum_name<E>(name: Result<&'static str, E>, number: i32) -> Value {
    match name {
        Ok(name) => json!(name),
        Err(_) => json!(number),
    }
}

fn timestamp(t: &prost_types::Timestamp) -> Value {
    json!(render::timestamp(Some(t)))
}

/// `"1.500s"`: proto3 JSON's form, seconds with 0, 3, 6 or 9 decimals.
fn duration(d: &prost_types::Duration) -> Value {
    let (seconds, nanos) = (d.seconds, d.nanos);
    let sign = if seconds < 0 || nanos < 0 { "-" } else { "" };
    let (seconds, nanos) = (seconds.unsigned_abs(), nanos.unsigned_abs());
    let text = if nanos == 0 {
        format!("{sign}{seconds}s")
    } else if nanos % 1_000_000 == 0 {
        format!("{sign}{seconds}.{:03}s", nanos / 1_000_000)
    } else if nanos % 1_000 == 0 {
        format!("{sign}{seconds}.{:06}s", nanos / 1_000)
    } else {
        format!("{sign}{seconds}.{nanos:09}s")
    };
    json!(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::render::tests::{ID, aborted, canary};

    #[test]
    fn a_rollout_in_proto_json() {
        let json = rollout(&aborted());
        assert_eq!(json["id"], ID);
        assert_eq!(json["state"], "ROLLOUT_STATE_ABORTED");
        assert_eq!(json["halt"]["gate"], "GATE_ANALYSIS");
        assert_eq!(
            json["halt"]["figures"][0],
            json!({"name": "error_ratio", "version": "1.1.0", "value": 0.25, "threshold": 0.0105})
        );
        assert_eq!(json["halt"]["time"], "2026-11-25T12:00:50.000Z");
        assert_eq!(
            json["strategy"]["canary"]["steps"],
            json!([{"set_weight": 10}, {"analysis": {"intervals": 3}}, {"pause": {"duration": null}}, {"set_weight": 100}])
        );
        assert_eq!(
            json["plan"][2],
            json!({"description": "analysis: 3 passing intervals", "analysis": {"intervals": 3}})
        );
        assert_eq!(
            json["plan"][0],
            json!({"description": "run 1 new instance", "scale_new": 1})
        );
        assert_eq!(json["analysis"]["p99_floor"], "0.025s");
        assert_eq!(json["analysis"]["interval"], "1s");
        assert_eq!(json["analysis"]["inconclusive_limit"], 5);
        assert_eq!(
            json["weights"][0],
            json!({"version": "1.0.0", "percent": 100})
        );
        assert_eq!(json["last_analysis"], Value::Null);
        assert_eq!(json["pause_until"], Value::Null);
        assert_eq!(json["skip_analysis"], false);
        // Every field of the message, set or not.
        assert_eq!(json.as_object().unwrap().len(), 24);
    }

    #[test]
    fn unknown_enum_values_are_numbers() {
        let r = pb::Rollout {
            state: 42,
            ..canary()
        };
        assert_eq!(rollout(&r)["state"], 42);
    }

    #[test]
    fn durations_in_proto_json_form() {
        let d = |seconds, nanos| duration(&prost_types::Duration { seconds, nanos });
        assert_eq!(d(30, 0), "30s");
        assert_eq!(d(1, 500_000_000), "1.500s");
        assert_eq!(d(0, 1_000), "0.000001s");
        assert_eq!(d(0, 1), "0.000000001s");
        assert_eq!(d(-1, -500_000_000), "-1.500s");
    }

    #[test]
    fn updates_are_single_lines() {
        let u = pb::RolloutUpdate {
            rollout: Some(canary()),
            events: vec![pb::RolloutEvent {
                sequence: 1,
                kind: "STARTED".into(),
                ..Default::default()
            }],
        };
        let text = line(&update(&u));
        assert_eq!(text.matches('\n').count(), 1);
        assert!(text.ends_with("}\n"));
        let back: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back["events"][0]["kind"], "STARTED");
        assert_eq!(back["events"][0]["time"], Value::Null);
        assert_eq!(back["rollout"]["state"], "ROLLOUT_STATE_PROGRESSING");
    }

    #[test]
    fn revisions_and_lists_are_wrapped_like_their_responses() {
        let json = revisions(&[pb::Revision {
            number: 3,
            version: "1.1.0".into(),
            rollout_id: ID.into(),
            time: None,
            replaced_time: None,
        }]);
        assert_eq!(
            json,
            json!({"revisions": [{"number": 3, "version": "1.1.0", "rollout_id": ID, "time": null, "replaced_time": null}]})
        );
        assert_eq!(rollouts(&[])["rollouts"], json!([]));
        assert!(pretty(&json).ends_with("}\n"));
    }
}
