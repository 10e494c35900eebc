//! The PostgreSQL store's rollouts. An update locks the rollout's row (and, when fenced, the
//! lease's) until commit, so writers in any process are checked against each other; changes are
//! announced on [`ROLLOUT_CHANNEL`] through the same LISTEN session as the registry's.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object, Transaction};
use flotilla_model::{
    NewRolloutEvent, Revision, Rollout, RolloutEvent, RolloutId, RolloutState, ServiceName,
    Timestamp,
};
use tokio::sync::broadcast;
use tokio_postgres::Row;

use super::{
    PostgresStore,
    notifications::ROLLOUT_CHANNEL,
    statements::{self, col, execute, query, query_opt},
};
use crate::{
    Fence, RolloutChange, RolloutQuery, RolloutStore, StoreError,
    records::{self, ACTIVE_ROLLOUT_STATES, StoredRollout},
};

/// The unique index that keeps a service to one active rollout.
const ONE_ACTIVE_INDEX: &str = "rollouts_one_active_per_service";

/// Why a rollout write failed.
enum Failure {
    Store(StoreError),
    /// A concurrent write made another rollout of this service active first. The violation
    /// aborted the transaction, so that rollout is read after it.
    OneActive(ServiceName),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Self::Store(e)
    }
}

impl From<tokio_postgres::Error> for Failure {
    fn from(e: tokio_postgres::Error) -> Self {
        Self::Store(e.into())
    }
}

/// Turns a violation of [`ONE_ACTIVE_INDEX`] into [`StoreError::RolloutActive`], naming the
/// rollout that holds it. `client` is the connection whose transaction failed; it was rolled
/// back when dropped.
async fn settle<T>(client: &Object, result: Result<T, Failure>) -> Result<T, StoreError> {
    match result {
        Ok(value) => Ok(value),
        Err(Failure::Store(e)) => Err(e),
        Err(Failure::OneActive(service)) => match active_rollout(client, &service, None).await? {
            Some(active) => Err(records::rollout_active(&service, active)),
            None => Err(StoreError::Unavailable(format!(
                "the active rollout of service {:?} changed during the write; try again",
                service.as_str()
            ))),
        },
    }
}

/// Writes the `rollouts` row, telling a violation of [`ONE_ACTIVE_INDEX`] apart.
async fn write_rollout_row(
    tx: &Transaction<'_>,
    sql: &str,
    rollout: &Rollout,
) -> Result<(), Failure> {
    let statement = tx.prepare_cached(sql).await?;
    let written = tx
        .execute(
            &statement,
            &[
                &rollout.id.as_str(),
                &rollout.service.as_str(),
                &rollout.state.as_str(),
                &rollout.created.millis(),
                &rollout.updated.millis(),
                &records::count_column("rollout generation", rollout.generation)?,
                &records::rollout_to_json(rollout)?,
            ],
        )
        .await;
    match written {
        Ok(_) => Ok(()),
        Err(e) if e.as_db_error().and_then(|db| db.constraint()) == Some(ONE_ACTIVE_INDEX) => {
            Err(Failure::OneActive(rollout.service.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

// ---- row helpers -----------------------------------------------------------------------------

fn rollout_from_row(row: &Row) -> Result<Rollout, StoreError> {
    records::rollout_from_json(col(row, 0)?, col(row, 1)?)
}

async fn load_rollout(
    db: &impl GenericClient,
    id: &RolloutId,
) -> Result<Option<Rollout>, StoreError> {
    query_opt(
        db,
        "SELECT document::TEXT, generation FROM rollouts WHERE id = $1",
        &[&id.as_str()],
    )
    .await?
    .map(|row| rollout_from_row(&row))
    .transpose()
}

async fn rollout_exists(db: &impl GenericClient, id: &RolloutId) -> Result<bool, StoreError> {
    Ok(
        query_opt(db, "SELECT 1 FROM rollouts WHERE id = $1", &[&id.as_str()])
            .await?
            .is_some(),
    )
}

/// What an update decides on, with the rollout's row locked until commit: a concurrent update
/// waits, then finds the generation moved on.
async fn lock_rollout(
    tx: &Transaction<'_>,
    id: &RolloutId,
) -> Result<Option<StoredRollout>, StoreError> {
    let row = query_opt(
        tx,
        "SELECT service, state, generation FROM rollouts WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )
    .await?;
    row.map(|row| {
        Ok(StoredRollout {
            service: ServiceName::from_trusted(col(&row, 0)?),
            state: records::parse_rollout_state(col(&row, 1)?)?,
            generation: records::stored_count("rollout generation", col(&row, 2)?)?,
        })
    })
    .transpose()
}

/// The id of the active rollout of `service`, other than `except`.
async fn active_rollout(
    db: &impl GenericClient,
    service: &ServiceName,
    except: Option<&RolloutId>,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "SELECT id FROM rollouts
         WHERE service = $1 AND ($2::TEXT IS NULL OR id <> $2)
           AND state IN ({ACTIVE_ROLLOUT_STATES})"
    );
    query_opt(
        db,
        &sql,
        &[&service.as_str(), &except.map(RolloutId::as_str)],
    )
    .await?
    .map(|row| col(&row, 0))
    .transpose()
}

/// Appends `events` after the rollout's last one. The caller holds the rollout's row (or has
/// just inserted it), so no other transaction numbers events of this rollout meanwhile.
async fn append_events(
    tx: &Transaction<'_>,
    id: &RolloutId,
    events: &[NewRolloutEvent],
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Ok(());
    }
    let documents = events
        .iter()
        .map(records::event_to_json)
        .collect::<Result<Vec<_>, _>>()?;
    execute(
        tx,
        "INSERT INTO rollout_events (rollout_id, sequence, document)
         SELECT $1, last.sequence + event.n, event.document::JSONB
         FROM (SELECT COALESCE(MAX(sequence), 0) AS sequence
               FROM rollout_events WHERE rollout_id = $1) AS last,
              UNNEST($2::TEXT[]) WITH ORDINALITY AS event (document, n)",
        &[&id.as_str(), &documents],
    )
    .await?;
    Ok(())
}

/// Whether `holder` holds the unexpired lease on `service`, which then stays so until commit:
/// another holder's takeover waits for the fenced write rather than slipping in under it.
async fn holds_lease(
    tx: &Transaction<'_>,
    service: &ServiceName,
    holder: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    Ok(query_opt(
        tx,
        "SELECT 1 FROM rollout_leases
         WHERE service = $1 AND holder = $2 AND expires_ms > $3 FOR SHARE",
        &[&service.as_str(), &holder, &now.millis()],
    )
    .await?
    .is_some())
}

/// Records `rollout`'s version as the service's next revision and marks the current one
/// replaced; returns the new revision's number.
async fn record_revision(
    tx: &Transaction<'_>,
    rollout: &Rollout,
    now: Timestamp,
) -> Result<u64, StoreError> {
    // Replacing first locks the current revision, so a concurrent success waits here and then
    // counts this one.
    execute(
        tx,
        "UPDATE revisions SET replaced_ms = $2 WHERE service = $1 AND replaced_ms IS NULL",
        &[&rollout.service.as_str(), &now.millis()],
    )
    .await?;
    let row = query_opt(
        tx,
        "INSERT INTO revisions (service, number, version, rollout_id, time_ms, replaced_ms)
         SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, NULL
         FROM revisions WHERE service = $1
         RETURNING number",
        &[
            &rollout.service.as_str(),
            &rollout.to_version.to_string(),
            &rollout.id.as_str(),
            &now.millis(),
        ],
    )
    .await?
    .ok_or_else(|| StoreError::Internal("recorded revision vanished".into()))?;
    records::stored_count("revision number", col(&row, 0)?)
}

fn revision_from_row(service: &ServiceName, row: &Row) -> Result<Revision, StoreError> {
    Ok(Revision {
        service: service.clone(),
        number: records::stored_count("revision number", col(row, 0)?)?,
        version: records::parse_stored_version(col(row, 1)?)?,
        rollout_id: RolloutId::from_trusted(col(row, 2)?),
        time: Timestamp(col(row, 3)?),
        replaced: col::<Option<i64>>(row, 4)?.map(Timestamp),
    })
}

/// Queues the announcement of a change to rollout `id`, delivered on commit.
async fn announce_rollout(tx: &Transaction<'_>, id: &RolloutId) -> Result<(), StoreError> {
    execute(
        tx,
        "SELECT pg_notify($1, $2)",
        &[&ROLLOUT_CHANNEL, &id.as_str()],
    )
    .await?;
    Ok(())
}

// ---- writes ----------------------------------------------------------------------------------

async fn create(
    client: &mut Object,
    stored: &Rollout,
    events: &[NewRolloutEvent],
) -> Result<(), Failure> {
    let tx = client.transaction().await?;
    if rollout_exists(&tx, &stored.id).await? {
        return Err(StoreError::precondition(
            "id",
            format!("rollout {} already exists", stored.id),
        )
        .into());
    }
    // Checked here for the common case; a concurrent create that passes the same check waits on
    // the unique index and fails there.
    if stored.state.is_active()
        && let Some(active) = active_rollout(&tx, &stored.service, None).await?
    {
        return Err(records::rollout_active(&stored.service, active).into());
    }
    write_rollout_row(
        &tx,
        "INSERT INTO rollouts (id, service, state, created_ms, updated_ms, generation, document)
         VALUES ($1, $2, $3, $4, $5, $6, $7::TEXT::JSONB)",
        stored,
    )
    .await?;
    append_events(&tx, &stored.id, events).await?;
    announce_rollout(&tx, &stored.id).await?;
    tx.commit().await?;
    Ok(())
}

async fn update(
    client: &mut Object,
    rollout: &Rollout,
    events: &[NewRolloutEvent],
    fence: Option<Fence<'_>>,
    now: Timestamp,
) -> Result<Rollout, Failure> {
    let tx = client.transaction().await?;
    let stored = lock_rollout(&tx, &rollout.id)
        .await?
        .ok_or_else(|| StoreError::RolloutNotFound(rollout.id.clone()))?;
    // The lease before the generation: a writer that lost its lease learns so at once, rather
    // than rereading and retrying against its successor's writes.
    if let Some(Fence { holder }) = fence
        && !holds_lease(&tx, &stored.service, holder, now).await?
    {
        return Err(records::lease_lost(&stored.service, holder).into());
    }
    let mut update = records::plan_rollout_update(rollout, &stored, now)?;
    if update.reactivates
        && let Some(active) = active_rollout(&tx, &stored.service, Some(&rollout.id)).await?
    {
        return Err(records::rollout_active(&stored.service, active).into());
    }
    if update.succeeds {
        update.rollout.revision = record_revision(&tx, &update.rollout, now).await?;
    }
    write_rollout_row(
        &tx,
        "UPDATE rollouts
         SET service = $2, state = $3, created_ms = $4, updated_ms = $5, generation = $6,
             document = $7::TEXT::JSONB
         WHERE id = $1",
        &update.rollout,
    )
    .await?;
    append_events(&tx, &rollout.id, events).await?;
    announce_rollout(&tx, &rollout.id).await?;
    tx.commit().await?;
    Ok(update.rollout)
}

// ---- the trait -------------------------------------------------------------------------------

#[async_trait]
impl RolloutStore for PostgresStore {
    async fn create_rollout(
        &self,
        rollout: &Rollout,
        events: &[NewRolloutEvent],
    ) -> Result<Rollout, StoreError> {
        let mut stored = rollout.clone();
        stored.generation = 1;
        let mut client = self.client().await?;
        let created = create(&mut client, &stored, events).await;
        settle(&client, created).await?;
        Ok(stored)
    }

    async fn get_rollout(&self, id: &RolloutId) -> Result<Rollout, StoreError> {
        let client = self.client().await?;
        load_rollout(&client, id)
            .await?
            .ok_or_else(|| StoreError::RolloutNotFound(id.clone()))
    }

    async fn list_rollouts(&self, query: &RolloutQuery) -> Result<Vec<Rollout>, StoreError> {
        let client = self.client().await?;
        // The page continues after the cursor's place in (created, id) order.
        let cursor: Option<i64> = match &query.after {
            Some(after) => Some(
                query_opt(
                    &client,
                    "SELECT created_ms FROM rollouts WHERE id = $1",
                    &[&after.as_str()],
                )
                .await?
                .map(|row| col(&row, 0))
                .transpose()?
                .ok_or_else(|| StoreError::RolloutNotFound(after.clone()))?,
            ),
            None => None,
        };
        let sql = format!(
            "SELECT document::TEXT, generation FROM rollouts
             WHERE ($1::TEXT IS NULL OR service = $1)
               AND (NOT $2 OR state IN ({ACTIVE_ROLLOUT_STATES}))
               AND ($3::BIGINT IS NULL OR created_ms < $3 OR (created_ms = $3 AND id < $4))
             ORDER BY created_ms DESC, id DESC LIMIT $5"
        );
        let rows = statements::query(
            &client,
            &sql,
            &[
                &query.service.as_ref().map(ServiceName::as_str),
                &query.active_only,
                &cursor,
                &query.after.as_ref().map(RolloutId::as_str),
                &records::rollout_page_size(query.limit),
            ],
        )
        .await?;
        rows.iter().map(rollout_from_row).collect()
    }

    async fn update_rollout(
        &self,
        rollout: &Rollout,
        events: &[NewRolloutEvent],
        fence: Option<Fence<'_>>,
        now: Timestamp,
    ) -> Result<Rollout, StoreError> {
        let mut client = self.client().await?;
        let updated = update(&mut client, rollout, events, fence, now).await;
        settle(&client, updated).await
    }

    async fn rollout_events(
        &self,
        id: &RolloutId,
        after: u64,
    ) -> Result<Vec<RolloutEvent>, StoreError> {
        let client = self.client().await?;
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        let rows = query(
            &client,
            "SELECT sequence, document::TEXT FROM rollout_events
             WHERE rollout_id = $1 AND sequence > $2 ORDER BY sequence",
            &[&id.as_str(), &after],
        )
        .await?;
        let events = rows
            .iter()
            .map(|row| records::event_from_json(col(row, 1)?, col(row, 0)?))
            .collect::<Result<Vec<_>, _>>()?;
        if events.is_empty() && !rollout_exists(&client, id).await? {
            return Err(StoreError::RolloutNotFound(id.clone()));
        }
        Ok(events)
    }

    async fn list_revisions(&self, service: &ServiceName) -> Result<Vec<Revision>, StoreError> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT number, version, rollout_id, time_ms, replaced_ms FROM revisions
             WHERE service = $1 ORDER BY number DESC",
            &[&service.as_str()],
        )
        .await?;
        rows.iter()
            .map(|row| revision_from_row(service, row))
            .collect()
    }

    async fn acquire_lease(
        &self,
        service: &ServiceName,
        holder: &str,
        ttl_ms: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let client = self.client().await?;
        let expires = now.plus_millis(ttl_ms);
        // A conflicting insert locks the lease's row and checks the WHERE against its latest
        // version, so of several takers of an expired lease exactly one updates it; the others
        // get no row back.
        let taken = query_opt(
            &client,
            "INSERT INTO rollout_leases (service, holder, expires_ms) VALUES ($1, $2, $3)
             ON CONFLICT (service) DO UPDATE
                 SET holder = EXCLUDED.holder, expires_ms = EXCLUDED.expires_ms
                 WHERE rollout_leases.holder = $2 OR rollout_leases.expires_ms <= $4
             RETURNING holder",
            &[&service.as_str(), &holder, &expires.millis(), &now.millis()],
        )
        .await?
        .is_some();
        // A zero ttl writes a lease that has already run out.
        Ok(taken && expires > now)
    }

    async fn release_lease(&self, service: &ServiceName, holder: &str) -> Result<(), StoreError> {
        let client = self.client().await?;
        execute(
            &client,
            "DELETE FROM rollout_leases WHERE service = $1 AND holder = $2",
            &[&service.as_str(), &holder],
        )
        .await?;
        Ok(())
    }

    async fn lease_holder(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let client = self.client().await?;
        query_opt(
            &client,
            "SELECT holder FROM rollout_leases WHERE service = $1 AND expires_ms > $2",
            &[&service.as_str(), &now.millis()],
        )
        .await?
        .map(|row| col(&row, 0))
        .transpose()
    }

    async fn count_rollouts(&self) -> Result<Vec<(RolloutState, u64)>, StoreError> {
        let client = self.client().await?;
        let rows = query(
            &client,
            "SELECT state, COUNT(*) FROM rollouts GROUP BY state",
            &[],
        )
        .await?;
        let mut counts = Vec::new();
        for row in &rows {
            counts.push((
                records::parse_rollout_state(col(row, 0)?)?,
                records::stored_count("rollout count", col(row, 1)?)?,
            ));
        }
        counts.sort_by_key(|(state, _)| *state as u8);
        Ok(counts)
    }

    fn subscribe_rollouts(&self) -> broadcast::Receiver<RolloutChange> {
        self.announcements.rollouts.subscribe()
    }
}
