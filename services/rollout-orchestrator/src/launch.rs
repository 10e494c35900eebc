//! Starting a rollout, in model types: the gates before anything starts (the platform can run
//! the artifact; lifecycle, compatibility and consumers), where it starts from, the plan, and
//! the record stored with its first events. Rollbacks start here too.

use flotilla_model::{
    AnalysisSpec, EventKind, NewRolloutEvent, Rollout, RolloutId, RolloutState, ServiceName,
    Strategy, Timestamp, Version,
};

use crate::{context::Context, error::ApiError, plan, preflight};

/// What a rollout is asked to do, as validated from the request.
#[derive(Debug, Clone)]
pub struct Launch {
    pub service: ServiceName,
    pub version: Version,
    pub settings: Settings,
    /// Roll out a DEPRECATED version anyway.
    pub force: bool,
    /// The revision a rollback returns to.
    pub rollback_to: Option<u64>,
}

/// How a rollout goes, whatever it rolls out.
#[derive(Debug, Clone)]
pub struct Settings {
    pub strategy: Strategy,
    pub analysis: AnalysisSpec,
    pub health_deadline_ms: u64,
    pub progress_deadline_ms: u64,
    /// None: as many as the stable version runs (at least one).
    pub replicas: Option<u32>,
}

/// Checks every gate and stores the rollout with its first events; the supervisor picks it up.
pub async fn launch(ctx: &Context, launch: Launch) -> Result<Rollout, ApiError> {
    let Launch {
        service,
        version: to_version,
        settings:
            Settings {
                strategy,
                analysis,
                health_deadline_ms,
                progress_deadline_ms,
                replicas,
            },
        force,
        rollback_to,
    } = launch;
    let target = ctx.registry.version(&service, &to_version).await?;
    ctx.platform
        .check(&service, &to_version, &target.artifact)
        .await?;
    let refusals = preflight::check(ctx.registry.as_ref(), &service, &target, force).await?;
    if !refusals.is_empty() {
        return Err(ApiError::Refused {
            service: service.to_string(),
            version: to_version.to_string(),
            refusals,
        });
    }

    let from_version = stable_version(ctx, &service).await?;
    if from_version.as_ref() == Some(&to_version) {
        return Err(ApiError::WrongState(format!(
            "{service}@{to_version} is already the stable version; nothing to roll out"
        )));
    }
    let stable_replicas = match &from_version {
        Some(from) => ctx
            .platform
            .list(&service)
            .await?
            .iter()
            .filter(|i| &i.version == from)
            .count() as u32,
        None => 0,
    };
    let replicas = replicas.unwrap_or(stable_replicas.max(1));
    // A first deployment has no one to protect and nothing to compare with.
    let strategy = if from_version.is_none() {
        Strategy::Immediate
    } else {
        strategy
    };
    let skip_analysis = matches!(strategy, Strategy::Immediate);
    let plan = plan::expand(&strategy, from_version.is_some(), stable_replicas, replicas);
    let now = Timestamp::now();
    let first_step = plan[0];
    let rollout = Rollout {
        id: RolloutId::from_trusted(uuid::Uuid::new_v4().to_string()),
        service: service.clone(),
        from_version: from_version.clone(),
        to_version: to_version.clone(),
        strategy,
        replicas,
        stable_replicas,
        analysis,
        health_deadline_ms,
        progress_deadline_ms,
        skip_analysis,
        plan,
        state: RolloutState::Progressing,
        step_index: 0,
        step_started: now,
        pause_until: None,
        promotion: None,
        halt: None,
        instances: Vec::new(),
        weights: Vec::new(),
        last_analysis: None,
        revision: 0,
        rollback_to_revision: rollback_to,
        owner: None,
        status_message: format!("step 1: {first_step}"),
        created: now,
        updated: now,
        generation: 0,
        trace_parent: flotilla_telemetry::propagation::current_traceparent(),
    };
    let from = from_version.map_or_else(|| "nothing".to_owned(), |v| v.to_string());
    let started = NewRolloutEvent {
        time: now,
        kind: EventKind::Started,
        message: match rollback_to {
            Some(revision) => format!(
                "rollback of {service} from {from} to revision {revision} ({to_version}){}",
                if skip_analysis {
                    ", within the rollback window: no steps, no analysis"
                } else {
                    ""
                }
            ),
            None => format!(
                "{service}: {from} → {to_version}, {} steps",
                rollout.plan.len()
            ),
        },
        halt: None,
        step_index: 0,
    };
    let step = NewRolloutEvent {
        time: now,
        kind: EventKind::StepStarted,
        message: format!("step 1 of {}: {first_step}", rollout.plan.len()),
        halt: None,
        step_index: 0,
    };
    let stored = ctx.store.create_rollout(&rollout, &[started, step]).await?;
    ctx.wake.notify_one();
    Ok(stored)
}

/// A rollout back to an earlier revision (`0`: the one before the current). Within the
/// rollback window after the current revision took over, the earlier one is known good and
/// time matters more than caution: no steps, no analysis. A deprecated earlier revision may
/// still be returned to.
pub async fn rollback(
    ctx: &Context,
    service: ServiceName,
    revision: u64,
    mut settings: Settings,
) -> Result<Rollout, ApiError> {
    let revisions = ctx.store.list_revisions(&service).await?;
    let Some(current) = revisions.first() else {
        return Err(ApiError::WrongState(format!(
            "{service} has no revisions: no rollout of it has succeeded"
        )));
    };
    let target = match revision {
        0 => revisions.get(1).ok_or_else(|| {
            ApiError::WrongState(format!(
                "{service} has only revision {}; there is nothing earlier to roll back to",
                current.number
            ))
        })?,
        n => revisions.iter().find(|r| r.number == n).ok_or_else(|| {
            ApiError::Invalid(flotilla_model::InvalidField::new(
                "revision",
                format!("{service} has no revision {n}"),
            ))
        })?,
    };
    if target.number == current.number {
        return Err(ApiError::WrongState(format!(
            "revision {} ({}) is the current one",
            target.number, target.version
        )));
    }
    let within_window =
        Timestamp::now().millis() - current.time.millis() <= ctx.rollback_window.as_millis() as i64;
    if within_window {
        settings.strategy = Strategy::Immediate;
    }
    launch(
        ctx,
        Launch {
            service,
            version: target.version.clone(),
            settings,
            force: true,
            rollback_to: Some(target.number),
        },
    )
    .await
}

/// The version a new rollout starts from: the current revision while the platform still runs
/// it, else the version the platform runs most of, else the version most live instances in the
/// registry run (instances this orchestrator did not start).
async fn stable_version(ctx: &Context, service: &ServiceName) -> Result<Option<Version>, ApiError> {
    let running = ctx.platform.list(service).await?;
    let revisions = ctx.store.list_revisions(service).await?;
    if let Some(current) = revisions.first()
        && running.iter().any(|i| i.version == current.version)
    {
        return Ok(Some(current.version.clone()));
    }
    let versions: Vec<Version> = if running.is_empty() {
        ctx.registry
            .instances(service)
            .await?
            .into_iter()
            .map(|i| i.version)
            .collect()
    } else {
        running.into_iter().map(|i| i.version).collect()
    };
    let mut counts: Vec<(Version, usize)> = Vec::new();
    for version in versions {
        match counts.iter_mut().find(|(v, _)| *v == version) {
            Some((_, n)) => *n += 1,
            None => counts.push((version, 1)),
        }
    }
    counts.sort_by(|(va, a), (vb, b)| b.cmp(a).then(vb.cmp(va)));
    Ok(counts.into_iter().next().map(|(v, _)| v))
}
