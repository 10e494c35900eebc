//! Planning time for generated fleets of 10, 100 and 1,000 services, against a brute-force
//! validation of the same plan in the same run: the plan's steps applied one at a time in wave
//! order, the whole fleet's requirements checked after each (what checking one sequential
//! execution costs without the planner's reasoning). Goal: under 50 ms for 1,000 services.
//!
//! `cargo bench -p flotilla-planner --bench planning [-- --runs 9]`
//!
//! The fleet: service i runs 1.0.0 and requires up to three services of lower index (`^1`); every
//! third service gets a target 2.0.0 that requires its providers' new major when they have one
//! (`^2`), else the old one (`^1`): chains of breaking releases across the fleet.

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use flotilla_model::{ServiceName, Version, VersionReq};
use flotilla_planner::{Action, Fleet, Options, Plan, Requirement, VersionId, derive};

fn service(i: usize) -> ServiceName {
    ServiceName::parse("service", &format!("svc-{i}")).unwrap()
}

fn generated(size: usize) -> (Fleet, Vec<VersionId>) {
    let (v1, v2) = (Version::new(1, 0, 0), Version::new(2, 0, 0));
    let mut fleet = Fleet::default();
    let mut targets = Vec::new();
    let has_target = |i: usize| i.is_multiple_of(3);
    for i in 0..size {
        fleet.live.insert(service(i), BTreeSet::from([v1.clone()]));
        // A fixed pseudo-random choice of providers, so every run plans the same fleet.
        let providers: Vec<usize> = (1..=3)
            .filter_map(|k| i.checked_sub(k * 7 % (i + 1) + 1))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let old = VersionId::new(service(i), v1.clone());
        for &p in &providers {
            fleet
                .requirements
                .entry(old.clone())
                .or_default()
                .push(Requirement {
                    provider: service(p),
                    requirement: VersionReq::parse("^1").unwrap(),
                });
        }
        if has_target(i) {
            let new = VersionId::new(service(i), v2.clone());
            for &p in &providers {
                let requirement = if has_target(p) { "^2" } else { "^1" };
                fleet
                    .requirements
                    .entry(new.clone())
                    .or_default()
                    .push(Requirement {
                        provider: service(p),
                        requirement: VersionReq::parse(requirement).unwrap(),
                    });
            }
            targets.push(new);
        }
    }
    (fleet, targets)
}

/// Applies the steps one at a time in wave order and checks the whole fleet after each.
fn validate(fleet: &Fleet, plan: &Plan) -> bool {
    let mut live: BTreeMap<ServiceName, BTreeSet<Version>> = fleet.live.clone();
    for step in &plan.steps {
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
        if fleet.unmet(&live).is_some() {
            return false;
        }
    }
    true
}

fn median(mut times: Vec<Duration>) -> Duration {
    times.sort();
    let middle = times.len() / 2;
    match times.len() % 2 {
        0 => (times[middle - 1] + times[middle]) / 2,
        _ => times[middle],
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let runs = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|r| r.parse().ok())
        .unwrap_or(9usize);
    println!("median of {runs} runs each");
    for size in [10, 100, 1_000] {
        let (fleet, targets) = generated(size);
        let edges: usize = fleet.requirements.values().map(Vec::len).sum();
        let mut planning = Vec::new();
        let mut validating = Vec::new();
        let mut plan = None;
        for _ in 0..runs {
            let started = Instant::now();
            let derived = derive(&fleet, &targets, &Options::default()).expect("a plan");
            planning.push(started.elapsed());
            let started = Instant::now();
            assert!(validate(&fleet, &derived), "the plan validates");
            validating.push(started.elapsed());
            plan = Some(derived);
        }
        let plan = plan.expect("at least one run");
        let (p, v) = (median(planning), median(validating));
        println!(
            "{size:>5} services, {edges:>5} requirements, {:>4} targets: {:>5} steps in {:>3} waves; \
             planning {:>9.3} ms, brute-force validation {:>10.3} ms ({:.3} of it)",
            targets.len(),
            plan.steps.len(),
            plan.waves(),
            p.as_secs_f64() * 1e3,
            v.as_secs_f64() * 1e3,
            p.as_secs_f64() / v.as_secs_f64()
        );
    }
}
