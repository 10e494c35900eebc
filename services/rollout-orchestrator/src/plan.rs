//! Strategies expand into plans: a list of idempotent [`PlanStep`]s the controller carries out in
//! order. Keeping the plan explicit (and stored) means a restarted orchestrator needs no memory of
//! how it got to a step, and an operator sees every step before it happens.
//!
//! Every plan that has a stable version starts by pinning all traffic to it: a service with no
//! route splits traffic by instance count, and the first new instance would otherwise take its
//! share before any gate has looked at it.

use flotilla_model::{CanaryStep, PlanStep, Strategy};

/// The canary steps used when a request names none.
pub fn default_canary_steps() -> Vec<CanaryStep> {
    vec![
        CanaryStep::SetWeight(10),
        CanaryStep::Analysis { intervals: 3 },
        CanaryStep::SetWeight(50),
        CanaryStep::Analysis { intervals: 3 },
        CanaryStep::SetWeight(100),
    ]
}

/// How long blue-green keeps the old set after the switch when the request names no window.
pub const DEFAULT_ROLLBACK_WINDOW_MS: u64 = 30_000;

/// The plan for moving `stable_replicas` instances of the stable version (none for a first
/// deployment) to `replicas` instances of the new one.
pub fn expand(
    strategy: &Strategy,
    has_stable: bool,
    stable_replicas: u32,
    replicas: u32,
) -> Vec<PlanStep> {
    let mut plan = Vec::new();
    if !has_stable {
        // A first deployment has no one to protect: start, then route.
        plan.push(PlanStep::ScaleNew(replicas));
        plan.push(PlanStep::SetWeight(100));
        return plan;
    }
    plan.push(PlanStep::SetWeight(0));
    match strategy {
        Strategy::Immediate => {
            plan.push(PlanStep::ScaleNew(replicas));
        }
        Strategy::Canary { steps } => {
            let mut running = 0;
            for step in steps {
                match *step {
                    CanaryStep::SetWeight(weight) => {
                        let needed = canary_instances(replicas, weight);
                        if needed > running {
                            plan.push(PlanStep::ScaleNew(needed));
                            running = needed;
                        }
                        plan.push(PlanStep::SetWeight(weight));
                    }
                    CanaryStep::Pause { duration_ms } => plan.push(PlanStep::Pause { duration_ms }),
                    CanaryStep::Analysis { intervals } => {
                        plan.push(PlanStep::Analysis { intervals })
                    }
                }
            }
            if running < replicas {
                plan.push(PlanStep::ScaleNew(replicas));
            }
        }
        Strategy::BlueGreen {
            auto_promote_after_ms,
            rollback_window_ms,
        } => {
            plan.push(PlanStep::ScaleNew(replicas));
            plan.push(PlanStep::Pause {
                duration_ms: *auto_promote_after_ms,
            });
            plan.push(PlanStep::SetWeight(100));
            // The old set stays warm: an abort in this pause switches back at once.
            plan.push(PlanStep::Pause {
                duration_ms: Some(*rollback_window_ms),
            });
        }
        Strategy::Rolling {
            max_surge,
            max_unavailable,
        } => rolling(
            &mut plan,
            stable_replicas,
            replicas,
            *max_surge,
            *max_unavailable,
        ),
    }
    if !plan.contains(&PlanStep::SetWeight(100)) {
        plan.push(PlanStep::SetWeight(100));
    }
    plan.push(PlanStep::ScaleStable(0));
    plan
}

/// Instances a canary needs for `weight`% of traffic: its share of the replicas, at least one.
fn canary_instances(replicas: u32, weight: u32) -> u32 {
    (replicas * weight).div_ceil(100).clamp(1, replicas.max(1))
}

/// Batches in the manner of a Kubernetes Deployment: the total may rise to `replicas + surge`,
/// and serving instances may fall to `replicas - unavailable`. Traffic follows instance counts
/// after every batch.
fn rolling(plan: &mut Vec<PlanStep>, stable: u32, replicas: u32, surge: u32, unavailable: u32) {
    let surge = if surge == 0 && unavailable == 0 {
        1
    } else {
        surge
    };
    let floor = replicas.saturating_sub(unavailable);
    let (mut new, mut old) = (0u32, stable);
    while new < replicas || old > 0 {
        let room = (replicas + surge).saturating_sub(new + old);
        let up = (replicas - new).min(room);
        if up > 0 {
            new += up;
            plan.push(PlanStep::ScaleNew(new));
            plan.push(PlanStep::WeightByInstances);
        }
        let down = old.min((new + old).saturating_sub(floor));
        if down > 0 {
            old -= down;
            plan.push(PlanStep::ScaleStable(old));
            plan.push(PlanStep::WeightByInstances);
        }
        if up == 0 && down == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PlanStep::*;

    #[test]
    fn a_first_deployment_starts_then_routes() {
        let plan = expand(
            &Strategy::Canary {
                steps: default_canary_steps(),
            },
            false,
            0,
            2,
        );
        assert_eq!(plan, vec![ScaleNew(2), SetWeight(100)]);
    }

    #[test]
    fn a_canary_pins_traffic_then_grows_instances_with_its_weight() {
        let steps = vec![
            CanaryStep::SetWeight(10),
            CanaryStep::Pause { duration_ms: None },
            CanaryStep::SetWeight(50),
            CanaryStep::Analysis { intervals: 2 },
            CanaryStep::SetWeight(100),
        ];
        let plan = expand(&Strategy::Canary { steps }, true, 4, 4);
        assert_eq!(
            plan,
            vec![
                SetWeight(0),
                ScaleNew(1),
                SetWeight(10),
                Pause { duration_ms: None },
                ScaleNew(2),
                SetWeight(50),
                Analysis { intervals: 2 },
                ScaleNew(4),
                SetWeight(100),
                ScaleStable(0),
            ]
        );
    }

    #[test]
    fn a_canary_whose_steps_stop_short_of_100_still_ends_on_the_new_version() {
        let plan = expand(
            &Strategy::Canary {
                steps: vec![CanaryStep::SetWeight(20)],
            },
            true,
            1,
            3,
        );
        assert_eq!(
            plan,
            vec![
                SetWeight(0),
                ScaleNew(1),
                SetWeight(20),
                ScaleNew(3),
                SetWeight(100),
                ScaleStable(0)
            ]
        );
    }

    #[test]
    fn blue_green_previews_switches_and_keeps_the_old_set_for_its_window() {
        let plan = expand(
            &Strategy::BlueGreen {
                auto_promote_after_ms: None,
                rollback_window_ms: 5_000,
            },
            true,
            2,
            2,
        );
        assert_eq!(
            plan,
            vec![
                SetWeight(0),
                ScaleNew(2),
                Pause { duration_ms: None },
                SetWeight(100),
                Pause {
                    duration_ms: Some(5_000)
                },
                ScaleStable(0),
            ]
        );
    }

    #[test]
    fn rolling_with_one_surge_replaces_one_instance_at_a_time() {
        let plan = expand(
            &Strategy::Rolling {
                max_surge: 1,
                max_unavailable: 0,
            },
            true,
            2,
            2,
        );
        assert_eq!(
            plan,
            vec![
                SetWeight(0),
                ScaleNew(1),
                WeightByInstances,
                ScaleStable(1),
                WeightByInstances,
                ScaleNew(2),
                WeightByInstances,
                ScaleStable(0),
                WeightByInstances,
                SetWeight(100),
                ScaleStable(0),
            ]
        );
    }

    #[test]
    fn rolling_never_exceeds_surge_nor_drops_below_the_unavailable_floor() {
        for (stable, replicas, surge, unavailable) in [
            (3, 3, 1, 0),
            (4, 4, 2, 1),
            (3, 5, 1, 1),
            (5, 2, 0, 1),
            (2, 2, 0, 0),
        ] {
            let plan = expand(
                &Strategy::Rolling {
                    max_surge: surge,
                    max_unavailable: unavailable,
                },
                true,
                stable,
                replicas,
            );
            let surge = if surge == 0 && unavailable == 0 {
                1
            } else {
                surge
            };
            let (mut new, mut old) = (0, stable);
            for step in &plan {
                match step {
                    ScaleNew(n) => new = *n,
                    ScaleStable(n) => old = *n,
                    _ => {}
                }
                assert!(new + old <= replicas.max(stable) + surge, "{plan:?}");
                if let ScaleStable(_) = step {
                    assert!(
                        new + old >= replicas.saturating_sub(unavailable).min(stable),
                        "{plan:?}"
                    );
                }
            }
            assert_eq!((new, old), (replicas, 0), "{plan:?}");
        }
    }

    #[test]
    fn canary_instances_follow_the_weight() {
        assert_eq!(canary_instances(4, 10), 1);
        assert_eq!(canary_instances(4, 50), 2);
        assert_eq!(canary_instances(4, 100), 4);
        assert_eq!(canary_instances(1, 1), 1);
    }
}
