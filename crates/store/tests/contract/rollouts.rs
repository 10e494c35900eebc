//! The cases of the rollout store's contract. Each takes a fresh, empty store.

use std::time::Duration;

use flotilla_model::{
    AnalysisSpec, AnalysisView, CanaryStep, EventKind, Figure, Gate, Halt, Health, InstanceView,
    NewRolloutEvent, PlanStep, Promotion, Role, Rollout, RolloutId, RolloutState, Strategy,
    Timestamp, Verdict,
};
use flotilla_store::{Fence, RolloutChange, RolloutQuery, StoreError};

use crate::{
    cases::{T0, name, v},
    support::Store,
};

fn at(offset_ms: i64) -> Timestamp {
    Timestamp(T0.0 + offset_ms)
}

/// Ids that sort by `n`.
fn rollout_id(n: u32) -> RolloutId {
    RolloutId::parse("id", &format!("00000000-0000-4000-8000-{n:012x}")).unwrap()
}

fn figure(name: &str, version: &str, value: f64, threshold: f64) -> Figure {
    Figure {
        name: name.into(),
        version: version.into(),
        value,
        threshold,
    }
}

/// A rollout with every field set to something other than its default.
fn full_rollout(n: u32, service: &str, created: Timestamp) -> Rollout {
    Rollout {
        id: rollout_id(n),
        service: name(service),
        from_version: Some(v("1.0.0")),
        to_version: v("1.1.0-rc.1+build.7"),
        strategy: Strategy::Canary {
            steps: vec![
                CanaryStep::SetWeight(10),
                CanaryStep::Pause {
                    duration_ms: Some(30_000),
                },
                CanaryStep::Analysis { intervals: 3 },
                CanaryStep::Pause { duration_ms: None },
            ],
        },
        replicas: 3,
        stable_replicas: 2,
        analysis: AnalysisSpec {
            interval_ms: 2_500,
            max_error_ratio_increase: 0.015,
            max_p99_ratio: 1.25,
            p99_floor_ms: 12.5,
            min_requests: 50,
            failure_limit: 2,
            inconclusive_limit: 4,
        },
        health_deadline_ms: 20_000,
        progress_deadline_ms: 600_000,
        skip_analysis: true,
        plan: vec![
            PlanStep::ScaleNew(1),
            PlanStep::SetWeight(10),
            PlanStep::Pause {
                duration_ms: Some(30_000),
            },
            PlanStep::Analysis { intervals: 3 },
            PlanStep::WeightByInstances,
            PlanStep::ScaleStable(0),
        ],
        state: RolloutState::Progressing,
        step_index: 2,
        step_started: Timestamp(created.0 + 10),
        pause_until: Some(Timestamp(created.0 + 30_010)),
        promotion: Some(Promotion {
            step_index: 2,
            full: true,
        }),
        halt: Some(Halt {
            gate: Gate::Analysis,
            message: "error ratio rose by 4.2%".into(),
            figures: vec![
                figure("error_ratio", "1.1.0-rc.1", 0.0523, 0.0153),
                figure("error_ratio", "1.0.0", 1.0 / 3.0, 0.0),
                figure("p99_ms", "1.1.0-rc.1", 1e-7, 1e300),
            ],
            query: "sum(rate(grpc_server_handled_total{code!=\"OK\"}[1m]))".into(),
            time: Timestamp(created.0 + 20),
        }),
        instances: vec![
            InstanceView {
                handle: "pid:4242".into(),
                version: v("1.1.0-rc.1+build.7"),
                address: "127.0.0.1:7001".into(),
                role: Role::New,
                health: Health::NotServing,
            },
            InstanceView {
                handle: "pid:4141".into(),
                version: v("1.0.0"),
                address: "127.0.0.1:7000".into(),
                role: Role::Stable,
                health: Health::Serving,
            },
        ],
        weights: vec![(v("1.0.0"), 90), (v("1.1.0-rc.1+build.7"), 10)],
        last_analysis: Some(AnalysisView {
            verdict: Verdict::Inconclusive,
            figures: vec![figure("requests", "1.1.0-rc.1", 17.0, 50.0)],
            query: "requests".into(),
            time: Timestamp(created.0 + 15),
            failures: 1,
            inconclusive_in_a_row: 2,
            passes_in_a_row: 0,
        }),
        revision: 0,
        rollback_to_revision: Some(3),
        owner: Some("orchestrator-a".into()),
        status_message: "analysing: ünïcödé \"quotes\" and 'apostrophes'".into(),
        created,
        updated: created,
        // Whatever the caller says: the store starts at 1.
        generation: 42,
        trace_parent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
    }
}

/// A plainer rollout of `service`, active, going to `to`.
pub fn rollout(n: u32, service: &str, to: &str, created: Timestamp) -> Rollout {
    Rollout {
        to_version: v(to),
        halt: None,
        last_analysis: None,
        promotion: None,
        ..full_rollout(n, service, created)
    }
}

fn event(kind: EventKind, message: &str, time: Timestamp) -> NewRolloutEvent {
    NewRolloutEvent {
        time,
        kind,
        message: message.into(),
        halt: None,
        step_index: 0,
    }
}

fn ids(rollouts: &[Rollout]) -> Vec<RolloutId> {
    rollouts.iter().map(|r| r.id.clone()).collect()
}

fn fence(holder: &str) -> Option<Fence<'_>> {
    Some(Fence { holder })
}

/// `current` moved to `state`, as the orchestrator would write it.
fn moved(current: &Rollout, state: RolloutState) -> Rollout {
    Rollout {
        state,
        ..current.clone()
    }
}

pub async fn a_rollout_is_stored_whole(store: &Store) {
    let mut full = full_rollout(1, "greeter", T0);
    full.halt.as_mut().unwrap().figures.push(figure(
        "p99_ms",
        "1.0.0",
        0.1 + 0.2,
        f64::MIN_POSITIVE,
    ));
    let created = store.create_rollout(&full, &[]).await.unwrap();
    assert_eq!(created.generation, 1);
    let expected = Rollout {
        generation: 1,
        ..full.clone()
    };
    assert_eq!(created, expected);
    assert_eq!(store.get_rollout(&full.id).await.unwrap(), expected);

    match store.get_rollout(&rollout_id(2)).await {
        Err(StoreError::RolloutNotFound(id)) => assert_eq!(id, rollout_id(2)),
        other => panic!("expected an unknown rollout, got {other:?}"),
    }
    let mut again = full.clone();
    again.service = name("other");
    match store.create_rollout(&again, &[]).await {
        Err(StoreError::Precondition { field, .. }) => assert_eq!(field, "id"),
        other => panic!("expected a refused duplicate id, got {other:?}"),
    }
    assert_eq!(
        store.get_rollout(&full.id).await.unwrap().service,
        name("greeter"),
        "the first rollout with the id stands"
    );
}

/// A NaN figure would be stored as null and never read back: the write is refused instead.
pub async fn a_rollout_that_would_not_read_back_is_refused(store: &Store) {
    let mut bad = full_rollout(1, "greeter", T0);
    bad.last_analysis.as_mut().unwrap().figures[0].value = f64::NAN;
    let refused = store.create_rollout(&bad, &[]).await;
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
    assert!(matches!(
        store.get_rollout(&bad.id).await,
        Err(StoreError::RolloutNotFound(_))
    ));

    let good = store
        .create_rollout(&full_rollout(1, "greeter", T0), &[])
        .await
        .unwrap();
    let mut halted = event(EventKind::Halted, "bad figure", at(1));
    halted.halt = Some(Halt {
        gate: Gate::Analysis,
        message: "infinite".into(),
        figures: vec![figure("p99_ms", "1.1.0", f64::INFINITY, 1.0)],
        query: String::new(),
        time: at(1),
    });
    let refused = store.update_rollout(&good, &[halted], None, at(1)).await;
    assert!(
        matches!(refused, Err(StoreError::Internal(_))),
        "{refused:?}"
    );
    assert_eq!(
        store.get_rollout(&good.id).await.unwrap().generation,
        1,
        "nothing of the refused update was written"
    );
}

pub async fn a_service_has_one_active_rollout(store: &Store) {
    let first = store
        .create_rollout(&rollout(1, "greeter", "1.1.0", at(0)), &[])
        .await
        .unwrap();
    match store
        .create_rollout(&rollout(2, "greeter", "1.2.0", at(1)), &[])
        .await
    {
        Err(StoreError::RolloutActive { service, active }) => {
            assert_eq!((service, active), (name("greeter"), first.id.clone()));
        }
        other => panic!("expected the active rollout to refuse, got {other:?}"),
    }
    store
        .create_rollout(&rollout(3, "other", "1.2.0", at(1)), &[])
        .await
        .expect("another service's rollout does not count");

    for state in [RolloutState::Paused, RolloutState::Aborting] {
        let current = store.get_rollout(&first.id).await.unwrap();
        store
            .update_rollout(&moved(&current, state), &[], None, at(2))
            .await
            .unwrap();
        assert!(
            matches!(
                store
                    .create_rollout(&rollout(2, "greeter", "1.2.0", at(2)), &[])
                    .await,
                Err(StoreError::RolloutActive { .. })
            ),
            "{state} is active"
        );
    }
    let current = store.get_rollout(&first.id).await.unwrap();
    let aborted = store
        .update_rollout(&moved(&current, RolloutState::Aborted), &[], None, at(3))
        .await
        .unwrap();
    let second = store
        .create_rollout(&rollout(2, "greeter", "1.2.0", at(4)), &[])
        .await
        .expect("an ended rollout leaves room for the next");

    match store
        .update_rollout(
            &moved(&aborted, RolloutState::Progressing),
            &[],
            None,
            at(5),
        )
        .await
    {
        Err(StoreError::RolloutActive { active, .. }) => assert_eq!(active, second.id),
        other => panic!("expected a reactivation to be refused, got {other:?}"),
    }
    assert_eq!(
        store.get_rollout(&first.id).await.unwrap().state,
        RolloutState::Aborted
    );
}

/// Creates that race past each other's check are stopped by the database.
pub async fn concurrent_creates_for_one_service_have_one_winner(store: &Store) {
    let attempts = (1..=8).map(|n| {
        let store = store.clone();
        tokio::spawn(async move {
            store
                .create_rollout(&rollout(n, "greeter", "1.1.0", at(0)), &[])
                .await
        })
    });
    let mut winners = Vec::new();
    let mut refused = Vec::new();
    for result in futures::future::join_all(attempts).await {
        match result.unwrap() {
            Ok(created) => winners.push(created.id),
            Err(StoreError::RolloutActive { active, .. }) => refused.push(active),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(refused.len(), 7);
    assert!(
        refused.iter().all(|active| *active == winners[0]),
        "each refusal names the winner: {refused:?}"
    );
    let listed = store.list_rollouts(&RolloutQuery::default()).await.unwrap();
    assert_eq!(ids(&listed), winners);
}

pub async fn updates_are_compare_and_set(store: &Store) {
    let created = store
        .create_rollout(&rollout(1, "greeter", "1.1.0", at(0)), &[])
        .await
        .unwrap();
    let mut change = created.clone();
    change.status_message = "step 2".into();
    change.step_index = 3;
    let updated = store
        .update_rollout(&change, &[], None, at(7))
        .await
        .unwrap();
    assert_eq!(
        updated,
        Rollout {
            generation: 2,
            updated: at(7),
            ..change.clone()
        }
    );
    assert_eq!(store.get_rollout(&created.id).await.unwrap(), updated);

    let mut stale = created.clone();
    stale.status_message = "written from an old read".into();
    match store.update_rollout(&stale, &[], None, at(8)).await {
        Err(StoreError::RolloutConflict {
            id,
            expected,
            found,
        }) => assert_eq!((id, expected, found), (created.id.clone(), 1, 2)),
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(
        store.get_rollout(&created.id).await.unwrap().status_message,
        "step 2",
        "the stale write changed nothing"
    );

    let again = store
        .update_rollout(&updated, &[], None, at(9))
        .await
        .unwrap();
    assert_eq!((again.generation, again.updated), (3, at(9)));

    let mut moved_service = again.clone();
    moved_service.service = name("other");
    match store
        .update_rollout(&moved_service, &[], None, at(10))
        .await
    {
        Err(StoreError::Precondition { field, .. }) => assert_eq!(field, "service"),
        other => panic!("expected a refused change of service, got {other:?}"),
    }
    match store
        .update_rollout(&rollout(9, "greeter", "1.1.0", at(0)), &[], None, at(10))
        .await
    {
        Err(StoreError::RolloutNotFound(id)) => assert_eq!(id, rollout_id(9)),
        other => panic!("expected an unknown rollout, got {other:?}"),
    }
}

pub async fn concurrent_updates_of_one_generation_have_one_winner(store: &Store) {
    let created = store
        .create_rollout(
            &rollout(1, "greeter", "1.1.0", at(0)),
            &[event(EventKind::Started, "started", at(0))],
        )
        .await
        .unwrap();
    let attempts = (0..8).map(|i| {
        let store = store.clone();
        let mut change = created.clone();
        change.status_message = format!("writer {i}");
        tokio::spawn(async move {
            let events = [event(EventKind::StepStarted, &change.status_message, at(1))];
            store.update_rollout(&change, &events, None, at(1)).await
        })
    });
    let mut winners = Vec::new();
    for result in futures::future::join_all(attempts).await {
        match result.unwrap() {
            Ok(updated) => winners.push(updated),
            Err(StoreError::RolloutConflict {
                expected, found, ..
            }) => assert_eq!((expected, found), (1, 2)),
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1);
    let stored = store.get_rollout(&created.id).await.unwrap();
    assert_eq!(stored, winners[0]);
    assert_eq!(stored.generation, 2);
    let events = store.rollout_events(&created.id, 0).await.unwrap();
    let messages: Vec<_> = events.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(
        messages,
        ["started", stored.status_message.as_str()],
        "only the winner's event was appended"
    );
}

pub async fn fenced_updates_need_the_holders_unexpired_lease(store: &Store) {
    let svc = name("greeter");
    let created = store
        .create_rollout(&rollout(1, "greeter", "1.1.0", at(0)), &[])
        .await
        .unwrap();
    let change = moved(&created, RolloutState::Paused);
    let lease_lost = |result: Result<Rollout, StoreError>, why: &str| match result {
        Err(StoreError::LeaseLost { service, holder }) => {
            assert_eq!(
                (service.as_str(), holder.as_str()),
                ("greeter", "orch-a"),
                "{why}"
            )
        }
        other => panic!("{why}: expected a lost lease, got {other:?}"),
    };

    lease_lost(
        store
            .update_rollout(&change, &[], fence("orch-a"), at(1))
            .await,
        "without a lease",
    );
    assert!(
        store
            .acquire_lease(&name("other"), "orch-a", 10_000, at(0))
            .await
            .unwrap()
    );
    lease_lost(
        store
            .update_rollout(&change, &[], fence("orch-a"), at(1))
            .await,
        "with the lease on another service",
    );
    assert!(
        store
            .acquire_lease(&svc, "orch-a", 1_000, at(0))
            .await
            .unwrap()
    );
    lease_lost(
        store
            .update_rollout(&change, &[], fence("orch-a"), at(1_000))
            .await,
        "with an expired lease",
    );
    assert!(
        store
            .acquire_lease(&svc, "orch-b", 1_000, at(1_000))
            .await
            .unwrap()
    );
    lease_lost(
        store
            .update_rollout(&change, &[], fence("orch-a"), at(1_500))
            .await,
        "with someone else's lease",
    );
    assert_eq!(
        store.get_rollout(&created.id).await.unwrap(),
        created,
        "refused writes changed nothing"
    );

    let written = store
        .update_rollout(&change, &[], fence("orch-b"), at(1_999))
        .await
        .expect("the holder writes while its lease lasts");
    assert_eq!(
        (written.state, written.generation),
        (RolloutState::Paused, 2)
    );
    let unfenced = store
        .update_rollout(&written, &[], None, at(5_000))
        .await
        .expect("an unfenced write needs no lease");
    assert_eq!(unfenced.generation, 3);
}

pub async fn events_are_numbered_per_rollout(store: &Store) {
    let a = store
        .create_rollout(
            &rollout(1, "greeter", "1.1.0", at(0)),
            &[
                event(EventKind::Started, "a1", at(0)),
                event(EventKind::StepStarted, "a2", at(0)),
            ],
        )
        .await
        .unwrap();
    let b = store
        .create_rollout(
            &rollout(2, "other", "1.1.0", at(0)),
            &[event(EventKind::Started, "b1", at(0))],
        )
        .await
        .unwrap();
    let mut halted = event(EventKind::Halted, "a3", at(5));
    halted.step_index = 2;
    halted.halt = Some(Halt {
        gate: Gate::Health,
        message: "not serving".into(),
        figures: vec![figure("serving", "1.1.0", 0.0, 1.0)],
        query: "grpc.health.v1".into(),
        time: at(5),
    });
    let a = store
        .update_rollout(
            &a,
            &[
                halted.clone(),
                event(EventKind::Paused, "a4", at(5)),
                event(EventKind::Resumed, "a5", at(6)),
            ],
            None,
            at(6),
        )
        .await
        .unwrap();
    let a = store.update_rollout(&a, &[], None, at(7)).await.unwrap();
    let _ = store
        .update_rollout(
            &Rollout {
                generation: 1,
                ..a.clone()
            },
            &[event(EventKind::Aborted, "lost", at(8))],
            None,
            at(8),
        )
        .await
        .unwrap_err();
    store
        .update_rollout(&a, &[event(EventKind::Promoted, "a6", at(9))], None, at(9))
        .await
        .unwrap();

    let events = store.rollout_events(&a.id, 0).await.unwrap();
    let numbered: Vec<_> = events
        .iter()
        .map(|e| (e.sequence, e.message.as_str(), e.kind))
        .collect();
    assert_eq!(
        numbered,
        [
            (1, "a1", EventKind::Started),
            (2, "a2", EventKind::StepStarted),
            (3, "a3", EventKind::Halted),
            (4, "a4", EventKind::Paused),
            (5, "a5", EventKind::Resumed),
            (6, "a6", EventKind::Promoted),
        ],
        "a failed update appends nothing"
    );
    assert_eq!(events[2].halt, halted.halt);
    assert_eq!((events[2].step_index, events[2].time), (2, at(5)));

    let later: Vec<_> = store
        .rollout_events(&a.id, 4)
        .await
        .unwrap()
        .iter()
        .map(|e| e.sequence)
        .collect();
    assert_eq!(later, [5, 6]);
    assert!(store.rollout_events(&a.id, 6).await.unwrap().is_empty());
    let of_b = store.rollout_events(&b.id, 0).await.unwrap();
    assert_eq!(
        (of_b.len(), of_b[0].sequence, of_b[0].message.as_str()),
        (1, 1, "b1")
    );
    assert!(matches!(
        store.rollout_events(&rollout_id(9), 0).await,
        Err(StoreError::RolloutNotFound(_))
    ));
}

pub async fn success_records_the_next_revision(store: &Store) {
    let svc = name("greeter");
    assert!(store.list_revisions(&svc).await.unwrap().is_empty());

    let first = store
        .create_rollout(&rollout(1, "greeter", "1.0.0", at(0)), &[])
        .await
        .unwrap();
    let succeeded = store
        .update_rollout(&moved(&first, RolloutState::Succeeded), &[], None, at(10))
        .await
        .unwrap();
    assert_eq!(succeeded.revision, 1);
    assert_eq!(store.get_rollout(&first.id).await.unwrap().revision, 1);
    let again = store
        .update_rollout(&succeeded, &[], None, at(11))
        .await
        .unwrap();
    assert_eq!(
        again.revision, 1,
        "only the first success records a revision"
    );

    let aborted = store
        .create_rollout(&rollout(2, "greeter", "1.1.0", at(20)), &[])
        .await
        .unwrap();
    let aborted = store
        .update_rollout(&moved(&aborted, RolloutState::Aborted), &[], None, at(21))
        .await
        .unwrap();
    assert_eq!(aborted.revision, 0, "an aborted rollout is no revision");

    let second = store
        .create_rollout(&rollout(3, "greeter", "1.2.0", at(30)), &[])
        .await
        .unwrap();
    let second = store
        .update_rollout(&moved(&second, RolloutState::Succeeded), &[], None, at(40))
        .await
        .unwrap();
    assert_eq!(second.revision, 2);
    store
        .create_rollout(&rollout(4, "other", "3.0.0", at(30)), &[])
        .await
        .unwrap();
    let other = store
        .update_rollout(
            &moved(
                &store.get_rollout(&rollout_id(4)).await.unwrap(),
                RolloutState::Succeeded,
            ),
            &[],
            None,
            at(50),
        )
        .await
        .unwrap();
    assert_eq!(other.revision, 1, "revisions are numbered per service");

    let revisions = store.list_revisions(&svc).await.unwrap();
    let summary: Vec<_> = revisions
        .iter()
        .map(|r| {
            (
                r.number,
                r.version.to_string(),
                r.rollout_id.clone(),
                r.time,
                r.replaced,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (2, "1.2.0".to_string(), rollout_id(3), at(40), None),
            (1, "1.0.0".to_string(), rollout_id(1), at(10), Some(at(40))),
        ]
    );
    assert!(revisions.iter().all(|r| r.service == svc));
}

pub async fn rollouts_are_listed_newest_first_in_pages(store: &Store) {
    // (n, service, created, ends): ids 3 and 4 share a creation time and sort by id.
    let specs = [
        (1, "greeter", 0, true),
        (2, "other", 10, false),
        (3, "greeter", 20, true),
        (4, "third", 20, false),
        (5, "greeter", 30, false),
    ];
    for (n, service, created, ends) in specs {
        let created = store
            .create_rollout(&rollout(n, service, "1.1.0", at(created)), &[])
            .await
            .unwrap();
        if ends {
            store
                .update_rollout(&moved(&created, RolloutState::Aborted), &[], None, at(25))
                .await
                .unwrap();
        }
    }
    let list = |query: RolloutQuery| {
        let store = store.clone();
        async move { ids(&store.list_rollouts(&query).await.unwrap()) }
    };
    let all = [5, 4, 3, 2, 1].map(rollout_id);
    assert_eq!(list(RolloutQuery::default()).await, all);

    let first_page = list(RolloutQuery {
        limit: 2,
        ..Default::default()
    })
    .await;
    assert_eq!(first_page, all[..2]);
    let second_page = list(RolloutQuery {
        limit: 2,
        after: Some(first_page[1].clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        second_page,
        all[2..4],
        "the page continues past equal times"
    );
    let last_page = list(RolloutQuery {
        limit: 2,
        after: Some(second_page[1].clone()),
        ..Default::default()
    })
    .await;
    assert_eq!(last_page, all[4..]);

    assert_eq!(
        list(RolloutQuery {
            service: Some(name("greeter")),
            ..Default::default()
        })
        .await,
        [5, 3, 1].map(rollout_id)
    );
    assert_eq!(
        list(RolloutQuery {
            active_only: true,
            ..Default::default()
        })
        .await,
        [5, 4, 2].map(rollout_id)
    );
    assert_eq!(
        list(RolloutQuery {
            service: Some(name("greeter")),
            active_only: true,
            after: None,
            limit: 10,
        })
        .await,
        [rollout_id(5)]
    );
    assert_eq!(
        list(RolloutQuery {
            service: Some(name("greeter")),
            after: Some(rollout_id(4)),
            ..Default::default()
        })
        .await,
        [3, 1].map(rollout_id),
        "the cursor need not match the filter"
    );
    assert!(
        list(RolloutQuery {
            service: Some(name("nobody")),
            ..Default::default()
        })
        .await
        .is_empty()
    );
    assert!(matches!(
        store
            .list_rollouts(&RolloutQuery {
                after: Some(rollout_id(99)),
                ..Default::default()
            })
            .await,
        Err(StoreError::RolloutNotFound(_))
    ));
    let listed = store.list_rollouts(&RolloutQuery::default()).await.unwrap();
    assert_eq!(
        listed[0],
        store.get_rollout(&rollout_id(5)).await.unwrap(),
        "listed rollouts are whole"
    );
    assert_eq!(listed[2].generation, 2);
}

pub async fn leases_are_taken_renewed_and_released(store: &Store) {
    let svc = name("greeter");
    assert_eq!(store.lease_holder(&svc, at(0)).await.unwrap(), None);
    assert!(
        store
            .acquire_lease(&svc, "orch-a", 1_000, at(0))
            .await
            .unwrap()
    );
    assert_eq!(
        store.lease_holder(&svc, at(999)).await.unwrap().as_deref(),
        Some("orch-a")
    );
    assert_eq!(
        store.lease_holder(&svc, at(1_000)).await.unwrap(),
        None,
        "a lease runs out at its expiry"
    );

    assert!(
        !store
            .acquire_lease(&svc, "orch-b", 1_000, at(500))
            .await
            .unwrap(),
        "an unexpired lease is not taken"
    );
    assert!(
        store
            .acquire_lease(&svc, "orch-a", 1_000, at(900))
            .await
            .unwrap(),
        "the holder renews"
    );
    assert!(
        !store
            .acquire_lease(&svc, "orch-b", 1_000, at(1_500))
            .await
            .unwrap(),
        "the renewal moved the expiry to 1900"
    );
    assert_eq!(
        store
            .lease_holder(&svc, at(1_899))
            .await
            .unwrap()
            .as_deref(),
        Some("orch-a")
    );
    assert!(
        store
            .acquire_lease(&svc, "orch-b", 1_000, at(1_900))
            .await
            .unwrap(),
        "an expired lease is taken"
    );
    assert_eq!(
        store
            .lease_holder(&svc, at(1_900))
            .await
            .unwrap()
            .as_deref(),
        Some("orch-b")
    );
    assert!(
        !store
            .acquire_lease(&svc, "orch-a", 1_000, at(1_901))
            .await
            .unwrap(),
        "the former holder cannot renew a lease it lost"
    );

    assert!(
        store
            .acquire_lease(&name("other"), "orch-a", 1_000, at(1_901))
            .await
            .unwrap(),
        "leases are per service"
    );
    store.release_lease(&svc, "orch-a").await.unwrap();
    assert_eq!(
        store
            .lease_holder(&svc, at(1_950))
            .await
            .unwrap()
            .as_deref(),
        Some("orch-b"),
        "releasing someone else's lease does nothing"
    );
    store.release_lease(&svc, "orch-b").await.unwrap();
    assert_eq!(store.lease_holder(&svc, at(1_950)).await.unwrap(), None);
    assert!(
        store
            .acquire_lease(&svc, "orch-a", 1_000, at(1_950))
            .await
            .unwrap(),
        "a released lease is free at once"
    );
    assert_eq!(
        store
            .lease_holder(&name("other"), at(1_950))
            .await
            .unwrap()
            .as_deref(),
        Some("orch-a")
    );
    assert!(
        !store
            .acquire_lease(&name("third"), "orch-a", 0, at(2_000))
            .await
            .unwrap(),
        "a lease of no time is not held"
    );
}

pub async fn concurrent_lease_takers_have_one_winner(store: &Store) {
    let svc = name("greeter");
    // The first round races to insert the lease, the second to take it over once it expired.
    for round in 0..2 {
        let now = at(1_000 + round * 100_000);
        let attempts = (0..8).map(|i| {
            let (store, svc) = (store.clone(), svc.clone());
            tokio::spawn(async move {
                let holder = format!("orch-{round}-{i}");
                let won = store.acquire_lease(&svc, &holder, 60_000, now).await;
                (holder, won)
            })
        });
        let mut winners = Vec::new();
        for result in futures::future::join_all(attempts).await {
            let (holder, won) = result.unwrap();
            if won.unwrap() {
                winners.push(holder);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: {winners:?}");
        assert_eq!(
            store.lease_holder(&svc, now).await.unwrap(),
            Some(winners[0].clone())
        );
    }
}

async fn next_rollout_change(
    changes: &mut tokio::sync::broadcast::Receiver<RolloutChange>,
) -> RolloutChange {
    tokio::time::timeout(Duration::from_secs(5), changes.recv())
        .await
        .expect("a rollout change is announced within 5 s")
        .expect("the change channel is open")
}

pub async fn committed_rollout_changes_are_announced_and_failed_ones_are_not(store: &Store) {
    let mut changes = store.subscribe_rollouts();
    let mut registry_changes = store.subscribe();
    let a = store
        .create_rollout(&rollout(1, "greeter", "1.1.0", at(0)), &[])
        .await
        .unwrap();
    assert_eq!(
        next_rollout_change(&mut changes).await,
        RolloutChange::Rollout(a.id.clone())
    );
    let a = store.update_rollout(&a, &[], None, at(1)).await.unwrap();
    assert_eq!(
        next_rollout_change(&mut changes).await,
        RolloutChange::Rollout(a.id.clone())
    );

    // Failures and lease traffic announce nothing: the next announcement is B's creation.
    let _ = store
        .update_rollout(
            &Rollout {
                generation: 1,
                ..a.clone()
            },
            &[],
            None,
            at(2),
        )
        .await
        .unwrap_err();
    let _ = store
        .update_rollout(&a, &[], fence("nobody"), at(2))
        .await
        .unwrap_err();
    let _ = store
        .create_rollout(&rollout(3, "greeter", "1.1.0", at(2)), &[])
        .await
        .unwrap_err();
    store
        .acquire_lease(&name("greeter"), "orch-a", 1_000, at(2))
        .await
        .unwrap();
    store
        .release_lease(&name("greeter"), "orch-a")
        .await
        .unwrap();
    let b = store
        .create_rollout(&rollout(2, "other", "1.1.0", at(3)), &[])
        .await
        .unwrap();
    assert_eq!(
        next_rollout_change(&mut changes).await,
        RolloutChange::Rollout(b.id)
    );
    assert!(changes.try_recv().is_err(), "nothing else was announced");
    assert!(
        registry_changes.try_recv().is_err(),
        "rollouts are not announced as registry changes"
    );
}

pub async fn rollouts_are_counted_by_state(store: &Store) {
    assert_eq!(store.count_rollouts().await.unwrap(), []);
    let mut stored = Vec::new();
    for (n, service) in [(1, "greeter"), (2, "ledger"), (3, "frontend")] {
        stored.push(
            store
                .create_rollout(&rollout(n, service, "1.1.0", at(n as i64)), &[])
                .await
                .unwrap(),
        );
    }
    store
        .update_rollout(
            &moved(&stored[0], RolloutState::Succeeded),
            &[],
            None,
            at(10),
        )
        .await
        .unwrap();
    store
        .update_rollout(&moved(&stored[1], RolloutState::Paused), &[], None, at(10))
        .await
        .unwrap();
    assert_eq!(
        store.count_rollouts().await.unwrap(),
        [
            (RolloutState::Progressing, 1),
            (RolloutState::Paused, 1),
            (RolloutState::Succeeded, 1),
        ]
    );
}
