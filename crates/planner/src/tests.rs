//! The planner on the scenarios a release meets, each asserting the order and the reasons,
//! and a property: for random small fleets, every state a derived plan can pass through is
//! safe, and a refusal comes exactly when a brute-force search finds no safe order.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_model::{ServiceName, Version, VersionReq};
use proptest::prelude::*;

use crate::{Action, Fleet, Options, Plan, Refusal, Requirement, VersionId, derive};

fn name(text: &str) -> ServiceName {
    ServiceName::parse("service", text).unwrap()
}

/// `greeter@1.1.0`.
fn id(text: &str) -> VersionId {
    let (service, version) = text.split_once('@').unwrap();
    VersionId::new(name(service), Version::parse(version).unwrap())
}

/// A fleet described in a few lines.
#[derive(Default)]
struct Given(Fleet);

impl Given {
    fn runs(mut self, version: &str) -> Self {
        let v = id(version);
        self.0.live.entry(v.service).or_default().insert(v.version);
        self
    }

    fn requires(mut self, consumer: &str, provider: &str, requirement: &str) -> Self {
        self.0
            .requirements
            .entry(id(consumer))
            .or_default()
            .push(Requirement {
                provider: name(provider),
                requirement: VersionReq::parse(requirement).unwrap(),
            });
        self
    }

    fn misreads(mut self, consumer: &str, provider: &str) -> Self {
        self.0
            .misreads
            .insert((id(consumer), id(provider)), "field 1 changed type".into());
        self
    }

    fn plan(&self, targets: &[&str]) -> Result<Plan, Refusal> {
        self.plan_with(targets, &Options::default())
    }

    fn plan_with(&self, targets: &[&str], options: &Options) -> Result<Plan, Refusal> {
        let targets: Vec<VersionId> = targets.iter().map(|t| id(t)).collect();
        derive(&self.0, &targets, options)
    }
}

/// The steps as `wave:id`, in plan order.
fn waves(plan: &Plan) -> Vec<String> {
    plan.steps
        .iter()
        .map(|s| format!("{}:{}", s.wave, s.id))
        .collect()
}

fn depends(plan: &Plan, step: &str) -> Vec<String> {
    plan.step(step).unwrap().depends_on.clone()
}

fn reasons(plan: &Plan, step: &str) -> Vec<String> {
    plan.step(step).unwrap().reasons.clone()
}

/// The greeter fleet of the demo: greeter 1.1.0, frontend 0.9.0 (^1.0) and 1.0.0 (^1.1).
fn demo() -> Given {
    Given::default()
        .runs("greeter@1.1.0")
        .runs("frontend@1.0.0")
        .requires("frontend@1.0.0", "greeter", "^1.1")
        .requires("frontend@2.0.0", "greeter", "^2")
}

#[test]
fn a_fleet_already_at_its_targets_has_nothing_to_do() {
    let plan = demo().plan(&["greeter@1.1.0", "frontend@1.0.0"]).unwrap();
    assert!(plan.steps.is_empty());
    assert_eq!(plan.waves(), 0);
}

#[test]
fn a_lone_service_is_added_then_its_old_version_retired() {
    let plan = Given::default()
        .runs("greeter@1.0.0")
        .plan(&["greeter@1.1.0"])
        .unwrap();
    assert_eq!(waves(&plan), ["1:add-greeter", "2:retire-greeter-1.0.0"]);
    assert_eq!(
        reasons(&plan, "retire-greeter-1.0.0"),
        ["greeter 1.1.0 runs before greeter 1.0.0 stops"]
    );
}

#[test]
fn independent_services_go_in_the_same_wave() {
    let plan = Given::default()
        .runs("greeter@1.0.0")
        .runs("billing@3.0.0")
        .plan(&["greeter@1.1.0", "billing@3.1.0"])
        .unwrap();
    assert_eq!(
        waves(&plan),
        [
            "1:add-billing",
            "1:add-greeter",
            "2:retire-billing-3.0.0",
            "2:retire-greeter-1.0.0"
        ]
    );
}

#[test]
fn a_consumer_that_needs_the_new_major_waits_for_it_and_the_old_major_for_the_old_consumer() {
    let plan = demo().plan(&["greeter@2.0.0", "frontend@2.0.0"]).unwrap();
    assert_eq!(
        waves(&plan),
        [
            "1:add-greeter",
            "2:add-frontend",
            "3:retire-frontend-1.0.0",
            "4:retire-greeter-1.1.0"
        ]
    );
    assert_eq!(
        reasons(&plan, "add-frontend"),
        ["frontend 2.0.0 requires greeter ^2: greeter 2.0.0 first"]
    );
    assert!(
        reasons(&plan, "retire-greeter-1.1.0").contains(
            &"frontend 1.0.0 requires greeter ^1.1: greeter 1.1.0 stays until frontend 1.0.0 stops"
                .to_owned()
        )
    );
    assert!(plan.beside.is_empty());
}

#[test]
fn a_chain_orders_every_edge() {
    let plan = Given::default()
        .runs("greeter@1.0.0")
        .runs("frontend@1.0.0")
        .runs("gateway@1.0.0")
        .requires("frontend@1.0.0", "greeter", "^1")
        .requires("gateway@1.0.0", "frontend", "^1")
        .requires("frontend@2.0.0", "greeter", "^2")
        .requires("gateway@2.0.0", "frontend", "^2")
        .plan(&["greeter@2.0.0", "frontend@2.0.0", "gateway@2.0.0"])
        .unwrap();
    assert_eq!(
        waves(&plan),
        [
            "1:add-greeter",
            "2:add-frontend",
            "3:add-gateway",
            "4:retire-gateway-1.0.0",
            "5:retire-frontend-1.0.0",
            "6:retire-greeter-1.0.0"
        ]
    );
}

#[test]
fn a_diamond_waits_for_both_of_its_providers() {
    let plan = Given::default()
        .runs("store@1.0.0")
        .runs("catalog@1.0.0")
        .runs("pricing@1.0.0")
        .runs("shop@1.0.0")
        .requires("catalog@2.0.0", "store", "^2")
        .requires("pricing@2.0.0", "store", "^2")
        .requires("shop@2.0.0", "catalog", "^2")
        .requires("shop@2.0.0", "pricing", "^2")
        .plan(&[
            "store@2.0.0",
            "catalog@2.0.0",
            "pricing@2.0.0",
            "shop@2.0.0",
        ])
        .unwrap();
    let step = |id: &str| plan.step(id).unwrap().wave;
    assert_eq!(step("add-store"), 1);
    assert_eq!((step("add-catalog"), step("add-pricing")), (2, 2));
    assert_eq!(step("add-shop"), 3);
    let mut waits = depends(&plan, "add-shop");
    waits.sort();
    assert_eq!(waits, ["add-catalog", "add-pricing"]);
}

#[test]
fn a_minor_that_needs_a_newer_provider_minor_goes_after_it() {
    let plan = Given::default()
        .runs("greeter@1.1.0")
        .runs("frontend@1.0.0")
        .requires("frontend@1.0.0", "greeter", "^1.1")
        .requires("frontend@1.1.0", "greeter", "^1.2")
        .plan(&["greeter@1.2.0", "frontend@1.1.0"])
        .unwrap();
    assert_eq!(depends(&plan, "add-frontend"), ["add-greeter"]);
    // The old frontend accepts 1.2.0 as well: greeter 1.1.0 need not wait for it.
    assert_eq!(depends(&plan, "retire-greeter-1.1.0"), ["add-greeter"]);
}

#[test]
fn a_breaking_provider_runs_beside_its_old_major_while_a_consumer_stays_on_it() {
    let plan = Given::default()
        .runs("greeter@1.1.0")
        .runs("frontend@1.0.0")
        .runs("admin@1.0.0")
        .requires("frontend@1.0.0", "greeter", "^1")
        .requires("admin@1.0.0", "greeter", "^1")
        .requires("frontend@2.0.0", "greeter", "^2")
        .plan(&["greeter@2.0.0", "frontend@2.0.0"])
        .unwrap();
    assert!(plan.step("retire-greeter-1.1.0").is_none());
    assert_eq!(plan.beside.len(), 1);
    assert_eq!(plan.beside[0].version, id("greeter@1.1.0"));
    assert_eq!(
        plan.beside[0].reason,
        "admin 1.0.0 requires greeter ^1: greeter 1.1.0 stays beside greeter 2.0.0"
    );
    assert_eq!(depends(&plan, "add-frontend"), ["add-greeter"]);
}

#[test]
fn mutual_new_requirements_are_a_cycle_refused_with_a_bridge_proposed() {
    let refusal = Given::default()
        .runs("orders@1.0.0")
        .runs("billing@1.0.0")
        .requires("orders@1.0.0", "billing", ">=1")
        .requires("billing@1.0.0", "orders", ">=1")
        .requires("orders@2.0.0", "billing", "^2")
        .requires("billing@2.0.0", "orders", "^2")
        .plan(&["orders@2.0.0", "billing@2.0.0"])
        .unwrap_err();
    assert_eq!(refusal.cycle.len(), 2);
    let mut edges: Vec<String> = refusal.cycle.iter().map(|c| c.reason.clone()).collect();
    edges.sort();
    assert_eq!(
        edges,
        [
            "billing 2.0.0 requires orders ^2: orders 2.0.0 first",
            "orders 2.0.0 requires billing ^2: billing 2.0.0 first"
        ]
    );
    assert!(
        refusal
            .proposals
            .iter()
            .any(|p| p.starts_with("publish a bridge version of")),
        "{:?}",
        refusal.proposals
    );
}

#[test]
fn old_versions_that_need_each_other_are_a_cycle_refused_with_side_by_side_proposed() {
    let given = Given::default()
        .runs("orders@1.0.0")
        .runs("billing@1.0.0")
        .requires("orders@1.0.0", "billing", "^1")
        .requires("billing@1.0.0", "orders", "^1")
        .requires("orders@2.0.0", "billing", ">=1")
        .requires("billing@2.0.0", "orders", ">=1");
    let refusal = given.plan(&["orders@2.0.0", "billing@2.0.0"]).unwrap_err();
    assert!(refusal.problems[0].starts_with("the constraints form a cycle"));
    assert!(
        refusal.proposals.iter().any(|p| p.contains("side by side")),
        "{:?}",
        refusal.proposals
    );
    // Side by side: billing's old version stays, and so does the orders it needs.
    let keep = Options {
        keep: [name("billing")].into(),
        ..Options::default()
    };
    let plan = given
        .plan_with(&["orders@2.0.0", "billing@2.0.0"], &keep)
        .unwrap();
    assert!(
        plan.steps.iter().all(|s| s.action == Action::Add),
        "{plan:?}"
    );
    let beside: Vec<String> = plan.beside.iter().map(|b| b.reason.clone()).collect();
    assert_eq!(
        beside,
        [
            "billing is kept side by side (option)",
            "billing 1.0.0 requires orders ^1: orders 1.0.0 stays beside orders 2.0.0"
        ]
    );
    // A bridge instead: orders 1.1.0 accepts billing 2 as well, and everything retires.
    let bridged = given.requires("orders@1.1.0", "billing", ">=1");
    let plan = bridged.plan(&["orders@1.1.0", "billing@2.0.0"]).unwrap();
    assert!(plan.step("retire-billing-1.0.0").is_some(), "{plan:?}");
    assert!(plan.step("retire-orders-1.0.0").is_some());
    assert!(depends(&plan, "retire-billing-1.0.0").contains(&"retire-orders-1.0.0".to_owned()));
}

#[test]
fn a_caller_schema_that_would_misread_the_new_provider_keeps_the_old_one_beside() {
    let plan = Given::default()
        .runs("greeter@1.1.0")
        .runs("frontend@1.0.0")
        .requires("frontend@1.0.0", "greeter", "^1")
        .misreads("frontend@1.0.0", "greeter@1.2.0")
        .plan(&["greeter@1.2.0"])
        .unwrap();
    assert!(plan.step("retire-greeter-1.1.0").is_none());
    assert_eq!(plan.beside[0].version, id("greeter@1.1.0"));
}

#[test]
fn a_misreading_consumer_upgraded_too_lets_the_old_provider_go_after_it() {
    let plan = Given::default()
        .runs("greeter@1.1.0")
        .runs("frontend@1.0.0")
        .requires("frontend@1.0.0", "greeter", "^1")
        .requires("frontend@1.1.0", "greeter", "^1.2")
        .misreads("frontend@1.0.0", "greeter@1.2.0")
        .plan(&["greeter@1.2.0", "frontend@1.1.0"])
        .unwrap();
    let waits = depends(&plan, "retire-greeter-1.1.0");
    assert!(
        waits.contains(&"retire-frontend-1.0.0".to_owned()),
        "{waits:?}"
    );
}

#[test]
fn a_requirement_nothing_meets_is_refused_with_the_target_it_needs_proposed() {
    let refusal = demo().plan(&["frontend@2.0.0"]).unwrap_err();
    assert_eq!(
        refusal.problems,
        ["frontend 2.0.0 requires greeter ^2, and the plan would run greeter 1.1.0"]
    );
    assert!(refusal.proposals[0].starts_with("add a version of greeter that satisfies ^2"));
    assert!(refusal.cycle.is_empty());
}

#[test]
fn a_fleet_broken_already_is_refused() {
    let refusal = Given::default()
        .runs("frontend@1.0.0")
        .runs("greeter@2.0.0")
        .requires("frontend@1.0.0", "greeter", "^1")
        .plan(&["greeter@2.1.0"])
        .unwrap_err();
    assert!(refusal.problems[0].starts_with("the fleet is broken already"));
}

#[test]
fn two_targets_for_one_service_are_refused() {
    let refusal = demo()
        .plan(&["greeter@2.0.0", "greeter@2.1.0"])
        .unwrap_err();
    assert_eq!(
        refusal.problems,
        ["greeter has two targets, 2.0.0 and 2.1.0"]
    );
}

#[test]
fn a_new_service_is_added_after_what_it_needs_and_retires_nothing() {
    let plan = demo()
        .requires("gateway@1.0.0", "frontend", "^2")
        .plan(&["greeter@2.0.0", "frontend@2.0.0", "gateway@1.0.0"])
        .unwrap();
    assert_eq!(depends(&plan, "add-gateway"), ["add-frontend"]);
    assert!(plan.steps.iter().all(|s| s.id != "retire-gateway"));
}

#[test]
fn bake_steps_separate_the_waves() {
    let options = Options {
        bake: true,
        ..Options::default()
    };
    let plan = demo()
        .plan_with(&["greeter@2.0.0", "frontend@2.0.0"], &options)
        .unwrap();
    let actions: Vec<(u32, Action)> = plan.steps.iter().map(|s| (s.wave, s.action)).collect();
    assert_eq!(
        actions,
        [
            (1, Action::Add),
            (1, Action::Bake),
            (2, Action::Add),
            (2, Action::Bake),
            (3, Action::Retire),
            (3, Action::Bake),
            (4, Action::Retire)
        ]
    );
    assert!(depends(&plan, "add-frontend").contains(&"bake-1".to_owned()));
    assert_eq!(depends(&plan, "bake-1"), ["add-greeter"]);
}

// ---- the property: plans are safe, refusals exact ---------------------------------------

const VERSIONS: [&str; 3] = ["1.0.0", "1.1.0", "2.0.0"];
const REQUIREMENTS: [&str; 5] = ["^1", "^1.1", "^2", ">=1", "*"];
const SERVICES: [&str; 4] = ["alpha", "bravo", "charlie", "delta"];

/// A random fleet of 2–4 services, each running one version (or none, then with a target),
/// some with a target, every version requiring a few of the others.
fn fleets() -> impl Strategy<Value = (Fleet, Vec<VersionId>)> {
    (2usize..=4)
        .prop_flat_map(|n| {
            (
                Just(n),
                prop::collection::vec((0usize..4, 0usize..4), n),
                prop::collection::vec(prop::collection::vec(0usize..6, 4), n * 3),
                prop::collection::vec((0usize..4, 0usize..3, 0usize..4, 0usize..3), 0..2),
            )
        })
        .prop_map(|(n, states, requirements, misreads)| {
            let mut fleet = Fleet::default();
            let mut targets = Vec::new();
            for (s, (running, target)) in states.iter().enumerate() {
                let service = name(SERVICES[s]);
                // 3: not running now (a new service), which then needs a target.
                let running = (*running < 3).then(|| VERSIONS[*running]);
                let target = match (*target < 3, running) {
                    (true, _) => Some(VERSIONS[*target]),
                    (false, None) => Some(VERSIONS[2]),
                    (false, Some(_)) => None,
                };
                if let Some(v) = running {
                    fleet
                        .live
                        .entry(service.clone())
                        .or_default()
                        .insert(Version::parse(v).unwrap());
                }
                if let Some(t) = target {
                    targets.push(VersionId::new(service.clone(), Version::parse(t).unwrap()));
                }
            }
            for (index, choices) in requirements.iter().enumerate() {
                let (s, v) = (index / 3, index % 3);
                let consumer =
                    VersionId::new(name(SERVICES[s]), Version::parse(VERSIONS[v]).unwrap());
                for (other, choice) in choices.iter().enumerate().take(n) {
                    if other == s || *choice >= REQUIREMENTS.len() {
                        continue;
                    }
                    fleet
                        .requirements
                        .entry(consumer.clone())
                        .or_default()
                        .push(Requirement {
                            provider: name(SERVICES[other]),
                            requirement: VersionReq::parse(REQUIREMENTS[*choice]).unwrap(),
                        });
                }
            }
            for (c, cv, p, pv) in misreads {
                if c < n && p < n && c != p {
                    fleet.misreads.insert(
                        (
                            VersionId::new(
                                name(SERVICES[c]),
                                Version::parse(VERSIONS[cv]).unwrap(),
                            ),
                            VersionId::new(
                                name(SERVICES[p]),
                                Version::parse(VERSIONS[pv]).unwrap(),
                            ),
                        ),
                        "misread".into(),
                    );
                }
            }
            (fleet, targets)
        })
}

type Live = BTreeMap<ServiceName, BTreeSet<Version>>;

/// The live versions once `done` (step ids) have happened.
fn live_after(fleet: &Fleet, plan: &Plan, done: &BTreeSet<&str>) -> Live {
    let mut live = fleet.live.clone();
    for step in plan.steps.iter().filter(|s| done.contains(s.id.as_str())) {
        let Some(target) = &step.target else { continue };
        let versions = live.entry(target.service.clone()).or_default();
        match step.action {
            Action::Add => {
                versions.insert(target.version.clone());
            }
            Action::Retire => {
                versions.remove(&target.version);
            }
            Action::Bake => {}
        }
    }
    live
}

/// The old versions that must stay: those a version running for good accepts when it accepts
/// no version of that service running for good (what the plan may not retire).
fn must_stay(fleet: &Fleet, targets: &[VersionId]) -> BTreeSet<VersionId> {
    let target_of: BTreeMap<&ServiceName, &Version> =
        targets.iter().map(|t| (&t.service, &t.version)).collect();
    let mut forever: BTreeSet<VersionId> = targets.iter().cloned().collect();
    for (service, versions) in &fleet.live {
        if !target_of.contains_key(service) {
            forever.extend(
                versions
                    .iter()
                    .map(|v| VersionId::new(service.clone(), v.clone())),
            );
        }
    }
    let mut stay = BTreeSet::new();
    loop {
        let mut grew = false;
        for consumer in forever.clone() {
            for requirement in fleet.requirements_of(&consumer) {
                let provider = &requirement.provider;
                let mut candidates: Vec<VersionId> = fleet
                    .live
                    .get(provider)
                    .into_iter()
                    .flatten()
                    .map(|v| VersionId::new(provider.clone(), v.clone()))
                    .collect();
                if let Some(t) = target_of.get(provider) {
                    candidates.push(VersionId::new(provider.clone(), (*t).clone()));
                }
                let accepted: Vec<VersionId> = candidates
                    .into_iter()
                    .filter(|p| fleet.accepts(&consumer, p).is_ok())
                    .collect();
                if accepted.iter().any(|p| forever.contains(p)) {
                    continue;
                }
                if let Some(old) = accepted.into_iter().max() {
                    grew |= forever.insert(old.clone());
                    stay.insert(old);
                }
            }
        }
        if !grew {
            return stay;
        }
    }
}

/// Whether some order of the events (every target added that does not run, every old version
/// retired that need not stay) passes only through safe states: a search over the sets of
/// events done.
fn a_safe_order_exists(fleet: &Fleet, targets: &[VersionId]) -> bool {
    if fleet.unmet(&fleet.live).is_some() {
        return false;
    }
    let stay = must_stay(fleet, targets);
    // (service, version, is an add)
    let mut events: Vec<(ServiceName, Version, bool)> = Vec::new();
    for target in targets {
        let running = fleet.live.get(&target.service);
        if !running.is_some_and(|r| r.contains(&target.version)) {
            events.push((target.service.clone(), target.version.clone(), true));
        }
        for old in running.into_iter().flatten() {
            let old_id = VersionId::new(target.service.clone(), old.clone());
            if *old != target.version && !stay.contains(&old_id) {
                events.push((target.service.clone(), old.clone(), false));
            }
        }
    }
    let n = events.len();
    let mut safe_reachable = vec![false; 1 << n];
    safe_reachable[0] = true;
    for set in 0usize..(1 << n) {
        if !safe_reachable[set] {
            continue;
        }
        for (e, (service, version, add)) in events.iter().enumerate() {
            if set & (1 << e) != 0 {
                continue;
            }
            // A retire waits for its service's add.
            let add_first = events
                .iter()
                .position(|(s, _, a)| *a && s == service)
                .is_none_or(|a| *add || set & (1 << a) != 0);
            if !add_first {
                continue;
            }
            let next = set | (1 << e);
            let mut live = fleet.live.clone();
            for (i, (s, v, a)) in events.iter().enumerate() {
                if next & (1 << i) != 0 {
                    let versions = live.entry(s.clone()).or_default();
                    if *a {
                        versions.insert(v.clone());
                    } else {
                        versions.remove(v);
                    }
                }
            }
            let _ = (service, version);
            if fleet.unmet(&live).is_none() {
                safe_reachable[next] = true;
            }
        }
    }
    safe_reachable[(1 << n) - 1]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn every_state_of_a_plan_is_safe_and_refusals_are_exact((fleet, targets) in fleets()) {
        let derived = derive(&fleet, &targets, &Options::default());
        let exists = a_safe_order_exists(&fleet, &targets);
        match derived {
            Ok(plan) => {
                prop_assert!(exists, "a plan where the search finds no safe order: {plan:?}");
                // Every set of steps closed under their dependencies is a state the plan can be in.
                let ids: Vec<&str> = plan.steps.iter().map(|s| s.id.as_str()).collect();
                prop_assert!(ids.len() <= 16);
                for mask in 0u32..(1 << ids.len()) {
                    let done: BTreeSet<&str> = ids
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| mask & (1 << i) != 0)
                        .map(|(_, id)| *id)
                        .collect();
                    let closed = plan.steps.iter().filter(|s| done.contains(s.id.as_str())).all(|s| {
                        s.depends_on.iter().all(|d| done.contains(d.as_str()))
                    });
                    if !closed {
                        continue;
                    }
                    let live = live_after(&fleet, &plan, &done);
                    prop_assert!(
                        fleet.unmet(&live).is_none(),
                        "unsafe after {done:?}: {:?}\n{plan:?}",
                        fleet.unmet(&live)
                    );
                }
                // At the end every target runs.
                let all: BTreeSet<&str> = ids.iter().copied().collect();
                let end = live_after(&fleet, &plan, &all);
                for target in &targets {
                    prop_assert!(end.get(&target.service).is_some_and(|v| v.contains(&target.version)));
                }
            }
            Err(refusal) => {
                prop_assert!(!exists, "refused although a safe order exists: {refusal:?}");
            }
        }
    }
}
