//! Strategies as text: in full, in the `--steps` syntax where they have steps, and by kind.

use flotilla_proto::rollout::v1 as pb;

use super::format::duration;

/// A stored rollout's strategy. It always names one, except the all-at-once kind: a first
/// deployment, or a rollback's emergency path.
pub(super) fn stored_strategy(r: &pb::Rollout) -> String {
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

pub(super) fn strategy_kind(strategy: Option<&pb::Strategy>) -> &'static str {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rollout::render::tests::canary;

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
        assert_eq!(
            crate::rollout::parse::steps(steps).unwrap().0,
            expected.steps
        );
    }
}
