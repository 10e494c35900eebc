//! Deriving a plan. Each service with a target is upgraded by two kinds of event: *add* its
//! target (from then on both run) and *retire* each old version. A state of the fleet is which
//! events have happened; it is safe when every live version finds, for every service it
//! requires, a live version it accepts (requirement satisfied and, with a caller schema, read
//! right). The steps may run in any order their dependencies allow, so every set of events
//! closed under the dependencies must be safe, not only one sequence.
//!
//! For one consumer version `v` and one provider `p`, with the versions of `p` that `v` accepts:
//! - some accepted version runs throughout (an old one never retired): nothing to order;
//! - `p`'s target and an old version are accepted: nothing either (the target is added before
//!   the old version is retired);
//! - only `p`'s target is accepted: `v` may only start once it runs: *add p* before *add c*
//!   (were `v` running already, the fleet would be broken now, and is refused);
//! - only old versions of `p` are accepted: they must outlive `v`: *retire v* before *retire
//!   them*, or, when `v` runs for good (a target, or a service the plan does not upgrade),
//!   they stay beside `p`'s target.
//!
//! These are necessary and, together, sufficient, so a plan exists exactly when the
//! constraints have no cycle and no version that runs for good lacks an accepted provider.

use std::collections::{BTreeMap, BTreeSet};

use flotilla_model::{ServiceName, Version};

use crate::{
    fleet::{Fleet, Requirement, VersionId},
    plan::{Action, Beside, Constraint, Plan, Refusal, Step, add_id, retire_id},
};

/// How a plan is made, beyond its targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Services whose old versions stay running beside their targets (side by side).
    pub keep: BTreeSet<ServiceName>,
    /// A bake step between consecutive waves.
    pub bake: bool,
}

/// The plan that takes `fleet` to `targets`, or why none can.
pub fn derive(fleet: &Fleet, targets: &[VersionId], options: &Options) -> Result<Plan, Refusal> {
    let world = World::new(fleet, targets, options)?;
    let beside = world.kept()?;
    let events = world.events(&beside);
    let constraints = world.constraints(&events, &beside);
    let order = order(&events, &constraints)?;
    Ok(world.plan(order, constraints, beside, options))
}

/// An event of the plan.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Event {
    Add(ServiceName),
    Retire(ServiceName, Version),
}

impl Event {
    fn id(&self) -> String {
        match self {
            Self::Add(service) => add_id(service),
            Self::Retire(service, version) => retire_id(service, version),
        }
    }
}

/// The fleet and targets, indexed.
struct World<'a> {
    fleet: &'a Fleet,
    /// Each service's target, when it has one.
    targets: BTreeMap<ServiceName, Version>,
    /// What runs now.
    live: &'a BTreeMap<ServiceName, BTreeSet<Version>>,
    keep: &'a BTreeSet<ServiceName>,
}

impl<'a> World<'a> {
    fn new(fleet: &'a Fleet, targets: &[VersionId], options: &'a Options) -> Result<Self, Refusal> {
        let mut by_service = BTreeMap::new();
        let mut problems = Vec::new();
        for target in targets {
            if let Some(other) = by_service.insert(target.service.clone(), target.version.clone())
                && other != target.version
            {
                problems.push(format!(
                    "{} has two targets, {other} and {}",
                    target.service, target.version
                ));
            }
        }
        if let Some((consumer, requirement)) = fleet.unmet(&fleet.live) {
            problems.push(format!(
                "the fleet is broken already: {consumer} requires {} {} and no running version \
                 satisfies it",
                requirement.provider, requirement.requirement
            ));
        }
        if !problems.is_empty() {
            return Err(Refusal {
                problems,
                cycle: Vec::new(),
                proposals: Vec::new(),
            });
        }
        Ok(Self {
            fleet,
            targets: by_service,
            live: &fleet.live,
            keep: &options.keep,
        })
    }

    fn current(&self, service: &ServiceName) -> impl Iterator<Item = &Version> {
        self.live.get(service).into_iter().flatten()
    }

    /// The old versions of a service with a target: what runs now, but the target.
    fn old(&self, service: &ServiceName) -> Vec<Version> {
        match self.targets.get(service) {
            Some(target) => self
                .current(service)
                .filter(|v| *v != target)
                .cloned()
                .collect(),
            None => Vec::new(),
        }
    }

    fn adds(&self, service: &ServiceName) -> bool {
        self.targets
            .get(service)
            .is_some_and(|target| !self.current(service).any(|v| v == target))
    }

    /// Every version of `service` that runs at some point of the plan.
    fn versions(&self, service: &ServiceName) -> Vec<Version> {
        let mut versions: Vec<Version> = self.current(service).cloned().collect();
        if let Some(target) = self.targets.get(service)
            && !versions.contains(target)
        {
            versions.push(target.clone());
        }
        versions
    }

    fn is_target(&self, version: &VersionId) -> bool {
        self.targets.get(&version.service) == Some(&version.version)
    }

    /// The old versions that stay beside their service's target: those some version running
    /// for good accepts when no version of that service running for good does. A refusal when
    /// a version that runs for good accepts no version of a service it requires.
    fn kept(&self) -> Result<Vec<Beside>, Refusal> {
        let mut forever: BTreeSet<VersionId> = BTreeSet::new();
        let mut beside = Vec::new();
        for service in self.live.keys().chain(self.targets.keys()) {
            match self.targets.get(service) {
                None => forever.extend(
                    self.current(service)
                        .map(|v| VersionId::new(service.clone(), v.clone())),
                ),
                Some(target) => {
                    forever.insert(VersionId::new(service.clone(), target.clone()));
                    if self.keep.contains(service) {
                        for old in self.old(service) {
                            let version = VersionId::new(service.clone(), old);
                            if forever.insert(version.clone()) {
                                beside.push(Beside {
                                    version,
                                    reason: format!("{service} is kept side by side (option)"),
                                });
                            }
                        }
                    }
                }
            }
        }
        let mut problems = Vec::new();
        let mut proposals = Vec::new();
        let mut pending: Vec<VersionId> = forever.iter().cloned().collect();
        while let Some(consumer) = pending.pop() {
            for requirement in self.fleet.requirements_of(&consumer) {
                let provider = &requirement.provider;
                let accepted: Vec<VersionId> = self
                    .versions(provider)
                    .into_iter()
                    .map(|v| VersionId::new(provider.clone(), v))
                    .filter(|p| self.fleet.accepts(&consumer, p).is_ok())
                    .collect();
                if accepted.iter().any(|p| forever.contains(p)) {
                    continue;
                }
                // The highest old version it accepts stays.
                match accepted.into_iter().max() {
                    Some(old) => {
                        beside.push(Beside {
                            version: old.clone(),
                            reason: format!(
                                "{consumer} requires {provider} {}: {old} stays beside {}",
                                requirement.requirement,
                                self.targets
                                    .get(provider)
                                    .map_or_else(String::new, |t| format!("{provider} {t}"))
                            ),
                        });
                        forever.insert(old.clone());
                        pending.push(old);
                    }
                    None => {
                        problems.push(unsatisfiable(self, &consumer, requirement));
                        proposals.push(format!(
                            "add a version of {provider} that satisfies {} to the targets, or \
                             a version of {} whose requirement accepts what {provider} runs",
                            requirement.requirement, consumer.service
                        ));
                    }
                }
            }
        }
        if problems.is_empty() {
            Ok(beside)
        } else {
            Err(Refusal {
                problems,
                cycle: Vec::new(),
                proposals,
            })
        }
    }

    /// The plan's events: every target added that does not run yet, every old version retired
    /// that does not stay beside.
    fn events(&self, beside: &[Beside]) -> BTreeSet<Event> {
        let kept: BTreeSet<&VersionId> = beside.iter().map(|b| &b.version).collect();
        let mut events = BTreeSet::new();
        for service in self.targets.keys() {
            if self.adds(service) {
                events.insert(Event::Add(service.clone()));
            }
            for old in self.old(service) {
                if !kept.contains(&VersionId::new(service.clone(), old.clone())) {
                    events.insert(Event::Retire(service.clone(), old));
                }
            }
        }
        events
    }

    /// When `version` starts running (`None`: it runs now) and stops (`None`: never).
    fn lifetime(
        &self,
        version: &VersionId,
        events: &BTreeSet<Event>,
    ) -> (Option<Event>, Option<Event>) {
        let add = Event::Add(version.service.clone());
        let start = (self.is_target(version) && events.contains(&add)).then_some(add);
        let retire = Event::Retire(version.service.clone(), version.version.clone());
        let end = events.contains(&retire).then_some(retire);
        (start, end)
    }

    /// The order the events need, each constraint with the edge that causes it.
    fn constraints(
        &self,
        events: &BTreeSet<Event>,
        beside: &[Beside],
    ) -> Vec<(Event, Event, String)> {
        let mut constraints = Vec::new();
        for event in events {
            if let Event::Retire(service, old) = event
                && let Some(target) = self.targets.get(service)
                && events.contains(&Event::Add(service.clone()))
            {
                constraints.push((
                    Event::Add(service.clone()),
                    event.clone(),
                    format!("{service} {target} runs before {service} {old} stops"),
                ));
            }
        }
        let kept: BTreeSet<&VersionId> = beside.iter().map(|b| &b.version).collect();
        let services: BTreeSet<&ServiceName> =
            self.live.keys().chain(self.targets.keys()).collect();
        for service in services {
            for version in self.versions(service) {
                let consumer = VersionId::new(service.clone(), version);
                let (start, end) = self.lifetime(&consumer, events);
                for requirement in self.fleet.requirements_of(&consumer) {
                    let provider = &requirement.provider;
                    let accepted: Vec<(VersionId, Option<Event>, Option<Event>)> = self
                        .versions(provider)
                        .into_iter()
                        .map(|v| VersionId::new(provider.clone(), v))
                        .filter(|p| self.fleet.accepts(&consumer, p).is_ok())
                        .map(|p| {
                            let (s, e) = self.lifetime(&p, events);
                            (p, s, e)
                        })
                        .collect();
                    let throughout = accepted.iter().any(|(_, s, e)| s.is_none() && e.is_none());
                    let target_accepted = accepted.iter().find(|(p, _, _)| self.is_target(p));
                    let old_accepted: Vec<&(VersionId, Option<Event>, Option<Event>)> = accepted
                        .iter()
                        .filter(|(p, _, _)| !self.is_target(p))
                        .collect();
                    if throughout || (target_accepted.is_some() && !old_accepted.is_empty()) {
                        continue;
                    }
                    if let Some((target, Some(add), _)) = target_accepted {
                        // Only the target is accepted: it runs before the consumer starts.
                        if let Some(consumer_start) = &start {
                            constraints.push((
                                add.clone(),
                                consumer_start.clone(),
                                format!(
                                    "{consumer} requires {provider} {}: {target} first",
                                    requirement.requirement
                                ),
                            ));
                        }
                        continue;
                    }
                    // Only old versions are accepted: they outlive the consumer.
                    let Some(consumer_end) = &end else {
                        // Runs for good: `kept` left its provider beside (checked there).
                        debug_assert!(old_accepted.iter().any(|(p, _, _)| kept.contains(p)));
                        continue;
                    };
                    for (old, _, old_end) in old_accepted {
                        if let Some(old_end) = old_end {
                            constraints.push((
                                consumer_end.clone(),
                                old_end.clone(),
                                format!(
                                    "{consumer} requires {provider} {}: {old} stays until {} {} \
                                     stops",
                                    requirement.requirement, consumer.service, consumer.version
                                ),
                            ));
                        }
                    }
                }
            }
        }
        constraints.sort();
        constraints.dedup();
        constraints
    }

    /// The steps, in waves, with their dependencies and reasons.
    fn plan(
        &self,
        order: Vec<(Event, u32)>,
        constraints: Vec<(Event, Event, String)>,
        beside: Vec<Beside>,
        options: &Options,
    ) -> Plan {
        let mut steps: Vec<Step> = order
            .iter()
            .map(|(event, wave)| {
                let (action, target) = match event {
                    Event::Add(service) => (
                        Action::Add,
                        VersionId::new(service.clone(), self.targets[service].clone()),
                    ),
                    Event::Retire(service, version) => (
                        Action::Retire,
                        VersionId::new(service.clone(), version.clone()),
                    ),
                };
                let mut depends_on = Vec::new();
                let mut reasons = Vec::new();
                for (before, after, reason) in &constraints {
                    if after == event {
                        if !depends_on.contains(&before.id()) {
                            depends_on.push(before.id());
                        }
                        reasons.push(reason.clone());
                    }
                }
                Step {
                    id: event.id(),
                    action,
                    target: Some(target),
                    depends_on,
                    reasons,
                    wave: *wave,
                }
            })
            .collect();
        if options.bake {
            steps = with_bakes(steps);
        }
        Plan {
            steps,
            constraints: constraints
                .into_iter()
                .map(|(before, after, reason)| Constraint {
                    before: before.id(),
                    after: after.id(),
                    reason,
                })
                .collect(),
            beside,
        }
    }
}

fn unsatisfiable(world: &World<'_>, consumer: &VersionId, requirement: &Requirement) -> String {
    let provider = &requirement.provider;
    let runs: Vec<String> = world
        .versions(provider)
        .iter()
        .map(ToString::to_string)
        .collect();
    let why: Vec<String> = world
        .versions(provider)
        .into_iter()
        .filter_map(|v| {
            world
                .fleet
                .accepts(consumer, &VersionId::new(provider.clone(), v))
                .err()
        })
        .filter(|why| why.contains("misread"))
        .collect();
    let runs = if runs.is_empty() {
        "no version".to_owned()
    } else {
        runs.join(", ")
    };
    let mut text = format!(
        "{consumer} requires {provider} {}, and the plan would run {provider} {runs}",
        requirement.requirement
    );
    for reason in why {
        text.push_str("; ");
        text.push_str(&reason);
    }
    text
}

/// Orders the events in waves (each one after what it depends on), or names a cycle.
fn order(
    events: &BTreeSet<Event>,
    constraints: &[(Event, Event, String)],
) -> Result<Vec<(Event, u32)>, Refusal> {
    let mut waiting: BTreeMap<&Event, usize> = events.iter().map(|e| (e, 0)).collect();
    let mut next: BTreeMap<&Event, Vec<&Event>> = BTreeMap::new();
    for (before, after, _) in constraints {
        *waiting.get_mut(after).expect("constraints name events") += 1;
        next.entry(before).or_default().push(after);
    }
    let mut wave_of: BTreeMap<&Event, u32> = BTreeMap::new();
    let mut ready: Vec<&Event> = waiting
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(e, _)| *e)
        .collect();
    for event in &ready {
        wave_of.insert(event, 1);
    }
    let mut done = Vec::new();
    while let Some(event) = ready.pop() {
        let wave = wave_of[event];
        done.push((event.clone(), wave));
        for after in next.get(event).into_iter().flatten() {
            let slot = wave_of.entry(after).or_insert(0);
            *slot = (*slot).max(wave + 1);
            let count = waiting.get_mut(after).expect("an event");
            *count -= 1;
            if *count == 0 {
                ready.push(after);
            }
        }
    }
    if done.len() < events.len() {
        return Err(cycle_refusal(events, constraints, &done));
    }
    done.sort_by(|(a, wa), (b, wb)| wa.cmp(wb).then(a.cmp(b)));
    Ok(done)
}

/// The refusal for events left in a cycle: one cycle's constraints, and what would break it.
fn cycle_refusal(
    events: &BTreeSet<Event>,
    constraints: &[(Event, Event, String)],
    done: &[(Event, u32)],
) -> Refusal {
    let done: BTreeSet<&Event> = done.iter().map(|(e, _)| e).collect();
    let left: BTreeSet<&Event> = events.iter().filter(|e| !done.contains(e)).collect();
    // Walk constraints among the events left until one repeats: that is a cycle.
    let among: Vec<&(Event, Event, String)> = constraints
        .iter()
        .filter(|(b, a, _)| left.contains(b) && left.contains(a))
        .collect();
    let mut path: Vec<&(Event, Event, String)> = Vec::new();
    let mut at = among[0].0.clone();
    let cycle = loop {
        let edge = among
            .iter()
            .find(|(b, _, _)| *b == at)
            .expect("every event left has a constraint after it");
        if let Some(start) = path.iter().position(|(b, _, _)| *b == edge.1) {
            let mut cycle: Vec<&(Event, Event, String)> = path[start..].to_vec();
            cycle.push(edge);
            break cycle;
        }
        path.push(edge);
        at = edge.1.clone();
    };
    let mut proposals = Vec::new();
    for (before, after, _) in &cycle {
        match (before, after) {
            (Event::Add(provider), Event::Add(consumer)) => proposals.push(format!(
                "publish a bridge version of {consumer} whose requirement on {provider} accepts \
                 the {provider} that runs now as well as its target, and plan it first"
            )),
            (Event::Retire(consumer, _), Event::Retire(provider, _)) => {
                proposals.push(format!(
                    "publish a version of {consumer} on its current major whose requirement on \
                     {provider} accepts {provider}'s target too, and plan it in place of the \
                     old one"
                ));
                proposals.push(format!(
                    "or keep {provider}'s old version running beside its target (side by side), \
                     with what it needs"
                ));
            }
            _ => {}
        }
    }
    proposals.dedup();
    let cycle: Vec<Constraint> = cycle
        .into_iter()
        .map(|(before, after, reason)| Constraint {
            before: before.id(),
            after: after.id(),
            reason: reason.clone(),
        })
        .collect();
    let edges: Vec<String> = cycle.iter().map(|c| c.reason.clone()).collect();
    Refusal {
        problems: vec![format!(
            "the constraints form a cycle: {}",
            edges.join("; ")
        )],
        cycle,
        proposals,
    }
}

/// A bake step after every wave that has a next one; the next wave's steps wait for it.
fn with_bakes(steps: Vec<Step>) -> Vec<Step> {
    let waves = steps.iter().map(|s| s.wave).max().unwrap_or(0);
    let mut out = Vec::with_capacity(steps.len() + waves as usize);
    for wave in 1..=waves {
        for mut step in steps.iter().filter(|s| s.wave == wave).cloned() {
            if wave > 1 {
                step.depends_on.push(format!("bake-{}", wave - 1));
                step.reasons.push(format!(
                    "wave {wave} starts after wave {} has baked",
                    wave - 1
                ));
            }
            out.push(step);
        }
        if wave < waves {
            out.push(Step {
                id: format!("bake-{wave}"),
                action: Action::Bake,
                target: None,
                depends_on: steps
                    .iter()
                    .filter(|s| s.wave == wave)
                    .map(|s| s.id.clone())
                    .collect(),
                reasons: vec![format!("the edges wave {wave} changed carry calls")],
                wave,
            });
        }
    }
    out
}
