//! The embedded store's rollouts: the same one-connection IMMEDIATE transactions as the
//! registry's tables, announced in-process after commit.

use async_trait::async_trait;
use flotilla_model::{
    NewRolloutEvent, Revision, Rollout, RolloutEvent, RolloutId, RolloutState, ServiceName,
    Timestamp,
};
use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::broadcast;

use super::SqliteStore;
use crate::{
    Fence, RolloutChange, RolloutQuery, RolloutStore, StoreError,
    records::{self, ACTIVE_ROLLOUT_STATES, StoredRollout},
};

impl SqliteStore {
    /// Runs `f` in one IMMEDIATE transaction, commits, then announces the changed rollouts.
    async fn write_rollouts<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection, &mut Vec<RolloutId>) -> Result<T, StoreError> + Send + 'static,
    {
        let (value, changed) = self.transact(f).await?;
        for id in changed {
            // No receivers is fine: nobody is watching.
            let _ = self.rollout_changes.send(RolloutChange::Rollout(id));
        }
        Ok(value)
    }
}

// ---- row helpers -----------------------------------------------------------------------------

fn rollout_from_row(row: &Row<'_>) -> Result<Rollout, StoreError> {
    records::rollout_from_json(&row.get::<_, String>(0)?, row.get(1)?)
}

fn load_rollout(conn: &Connection, id: &RolloutId) -> Result<Option<Rollout>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT document, generation FROM rollouts WHERE id = ?1")?;
    let mut rows = stmt.query([id.as_str()])?;
    match rows.next()? {
        Some(row) => rollout_from_row(row).map(Some),
        None => Ok(None),
    }
}

fn rollout_exists(conn: &Connection, id: &RolloutId) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM rollouts WHERE id = ?1",
            [id.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

fn stored_rollout(conn: &Connection, id: &RolloutId) -> Result<Option<StoredRollout>, StoreError> {
    let row = conn
        .query_row(
            "SELECT service, state, generation FROM rollouts WHERE id = ?1",
            [id.as_str()],
            |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()?;
    row.map(|(service, state, generation)| {
        Ok(StoredRollout {
            service: ServiceName::from_trusted(service),
            state: records::parse_rollout_state(&state)?,
            generation: records::stored_count("rollout generation", generation)?,
        })
    })
    .transpose()
}

/// The id of the active rollout of `service`, other than `except`.
fn active_rollout(
    conn: &Connection,
    service: &ServiceName,
    except: Option<&RolloutId>,
) -> Result<Option<String>, StoreError> {
    let sql = format!(
        "SELECT id FROM rollouts
         WHERE service = ?1 AND (?2 IS NULL OR id <> ?2) AND state IN ({ACTIVE_ROLLOUT_STATES})"
    );
    Ok(conn
        .query_row(
            &sql,
            params![service.as_str(), except.map(RolloutId::as_str)],
            |row| row.get(0),
        )
        .optional()?)
}

/// Appends `events` after the rollout's last one.
fn append_events(
    conn: &Connection,
    id: &RolloutId,
    events: &[NewRolloutEvent],
) -> Result<(), StoreError> {
    let last: i64 = conn.query_row(
        "SELECT COALESCE(MAX(sequence), 0) FROM rollout_events WHERE rollout_id = ?1",
        [id.as_str()],
        |row| row.get(0),
    )?;
    let mut stmt = conn.prepare_cached(
        "INSERT INTO rollout_events (rollout_id, sequence, document) VALUES (?1, ?2, ?3)",
    )?;
    for (sequence, event) in (last + 1..).zip(events) {
        stmt.execute(params![
            id.as_str(),
            sequence,
            records::event_to_json(event)?
        ])?;
    }
    Ok(())
}

fn holds_lease(
    conn: &Connection,
    service: &ServiceName,
    holder: &str,
    now: Timestamp,
) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM rollout_leases WHERE service = ?1 AND holder = ?2 AND expires_ms > ?3",
            params![service.as_str(), holder, now.millis()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records `rollout`'s version as the service's next revision and marks the current one
/// replaced; returns the new revision's number.
fn record_revision(
    conn: &Connection,
    rollout: &Rollout,
    now: Timestamp,
) -> Result<u64, StoreError> {
    let number: i64 = conn.query_row(
        "SELECT COALESCE(MAX(number), 0) + 1 FROM revisions WHERE service = ?1",
        [rollout.service.as_str()],
        |row| row.get(0),
    )?;
    conn.execute(
        "UPDATE revisions SET replaced_ms = ?2 WHERE service = ?1 AND replaced_ms IS NULL",
        params![rollout.service.as_str(), now.millis()],
    )?;
    conn.execute(
        "INSERT INTO revisions (service, number, version, rollout_id, time_ms, replaced_ms)
         VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
        params![
            rollout.service.as_str(),
            number,
            rollout.to_version.to_string(),
            rollout.id.as_str(),
            now.millis()
        ],
    )?;
    records::stored_count("revision number", number)
}

fn revision_from_row(service: &ServiceName, row: &Row<'_>) -> Result<Revision, StoreError> {
    Ok(Revision {
        service: service.clone(),
        number: records::stored_count("revision number", row.get(0)?)?,
        version: records::parse_stored_version(&row.get::<_, String>(1)?)?,
        rollout_id: RolloutId::from_trusted(row.get(2)?),
        time: Timestamp(row.get(3)?),
        replaced: row.get::<_, Option<i64>>(4)?.map(Timestamp),
    })
}

// ---- the trait -------------------------------------------------------------------------------

#[async_trait]
impl RolloutStore for SqliteStore {
    async fn create_rollout(
        &self,
        rollout: &Rollout,
        events: &[NewRolloutEvent],
    ) -> Result<Rollout, StoreError> {
        let mut stored = rollout.clone();
        stored.generation = 1;
        let events = events.to_vec();
        self.write_rollouts(move |conn, changed| {
            if rollout_exists(conn, &stored.id)? {
                return Err(StoreError::precondition(
                    "id",
                    format!("rollout {} already exists", stored.id),
                ));
            }
            if stored.state.is_active()
                && let Some(active) = active_rollout(conn, &stored.service, None)?
            {
                return Err(records::rollout_active(&stored.service, active));
            }
            conn.execute(
                "INSERT INTO rollouts
                     (id, service, state, created_ms, updated_ms, generation, document)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    stored.id.as_str(),
                    stored.service.as_str(),
                    stored.state.as_str(),
                    stored.created.millis(),
                    stored.updated.millis(),
                    records::count_column("rollout generation", stored.generation)?,
                    records::rollout_to_json(&stored)?,
                ],
            )?;
            append_events(conn, &stored.id, &events)?;
            changed.push(stored.id.clone());
            Ok(stored)
        })
        .await
    }

    async fn get_rollout(&self, id: &RolloutId) -> Result<Rollout, StoreError> {
        let id = id.clone();
        self.read(move |conn| load_rollout(conn, &id)?.ok_or(StoreError::RolloutNotFound(id)))
            .await
    }

    async fn list_rollouts(&self, query: &RolloutQuery) -> Result<Vec<Rollout>, StoreError> {
        let query = query.clone();
        self.read(move |conn| {
            // The page continues after the cursor's place in (created, id) order.
            let cursor = match &query.after {
                Some(after) => Some(
                    conn.query_row(
                        "SELECT created_ms FROM rollouts WHERE id = ?1",
                        [after.as_str()],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()?
                    .ok_or_else(|| StoreError::RolloutNotFound(after.clone()))?,
                ),
                None => None,
            };
            let mut stmt = conn.prepare_cached(&format!(
                "SELECT document, generation FROM rollouts
                 WHERE (?1 IS NULL OR service = ?1)
                   AND (?2 = 0 OR state IN ({ACTIVE_ROLLOUT_STATES}))
                   AND (?3 IS NULL OR created_ms < ?3 OR (created_ms = ?3 AND id < ?4))
                 ORDER BY created_ms DESC, id DESC LIMIT ?5"
            ))?;
            let mut rows = stmt.query(params![
                query.service.as_ref().map(ServiceName::as_str),
                query.active_only,
                cursor,
                query.after.as_ref().map(RolloutId::as_str),
                records::rollout_page_size(query.limit),
            ])?;
            let mut rollouts = Vec::new();
            while let Some(row) = rows.next()? {
                rollouts.push(rollout_from_row(row)?);
            }
            Ok(rollouts)
        })
        .await
    }

    async fn update_rollout(
        &self,
        rollout: &Rollout,
        events: &[NewRolloutEvent],
        fence: Option<Fence<'_>>,
        now: Timestamp,
    ) -> Result<Rollout, StoreError> {
        let (rollout, events) = (rollout.clone(), events.to_vec());
        let holder = fence.map(|f| f.holder.to_owned());
        self.write_rollouts(move |conn, changed| {
            let stored = stored_rollout(conn, &rollout.id)?
                .ok_or_else(|| StoreError::RolloutNotFound(rollout.id.clone()))?;
            // The lease before the generation: a writer that lost its lease learns so at once,
            // rather than rereading and retrying against its successor's writes.
            if let Some(holder) = &holder
                && !holds_lease(conn, &stored.service, holder, now)?
            {
                return Err(records::lease_lost(&stored.service, holder));
            }
            let mut update = records::plan_rollout_update(&rollout, &stored, now)?;
            if update.reactivates
                && let Some(active) = active_rollout(conn, &stored.service, Some(&rollout.id))?
            {
                return Err(records::rollout_active(&stored.service, active));
            }
            if update.succeeds {
                update.rollout.revision = record_revision(conn, &update.rollout, now)?;
            }
            let next = update.rollout;
            conn.execute(
                "UPDATE rollouts
                 SET state = ?2, created_ms = ?3, updated_ms = ?4, generation = ?5, document = ?6
                 WHERE id = ?1",
                params![
                    next.id.as_str(),
                    next.state.as_str(),
                    next.created.millis(),
                    next.updated.millis(),
                    records::count_column("rollout generation", next.generation)?,
                    records::rollout_to_json(&next)?,
                ],
            )?;
            append_events(conn, &next.id, &events)?;
            changed.push(next.id.clone());
            Ok(next)
        })
        .await
    }

    async fn rollout_events(
        &self,
        id: &RolloutId,
        after: u64,
    ) -> Result<Vec<RolloutEvent>, StoreError> {
        let id = id.clone();
        let after = i64::try_from(after).unwrap_or(i64::MAX);
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT sequence, document FROM rollout_events
                 WHERE rollout_id = ?1 AND sequence > ?2 ORDER BY sequence",
            )?;
            let rows = stmt.query_map(params![id.as_str(), after], |row| {
                Ok((row.get::<_, i64>(0)?, row.get::<_, String>(1)?))
            })?;
            let events = rows
                .map(|row| {
                    let (sequence, document) = row?;
                    records::event_from_json(&document, sequence)
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if events.is_empty() && !rollout_exists(conn, &id)? {
                return Err(StoreError::RolloutNotFound(id));
            }
            Ok(events)
        })
        .await
    }

    async fn list_revisions(&self, service: &ServiceName) -> Result<Vec<Revision>, StoreError> {
        let service = service.clone();
        self.read(move |conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT number, version, rollout_id, time_ms, replaced_ms FROM revisions
                 WHERE service = ?1 ORDER BY number DESC",
            )?;
            let mut rows = stmt.query([service.as_str()])?;
            let mut revisions = Vec::new();
            while let Some(row) = rows.next()? {
                revisions.push(revision_from_row(&service, row)?);
            }
            Ok(revisions)
        })
        .await
    }

    async fn acquire_lease(
        &self,
        service: &ServiceName,
        holder: &str,
        ttl_ms: u64,
        now: Timestamp,
    ) -> Result<bool, StoreError> {
        let (service, holder) = (service.clone(), holder.to_owned());
        let expires = now.plus_millis(ttl_ms);
        let (taken, _) = self
            .transact(move |conn, _: &mut Vec<()>| {
                // The update applies only to the holder's own lease or an expired one; otherwise
                // nothing is written and nothing returned.
                let taken = conn
                    .query_row(
                        "INSERT INTO rollout_leases (service, holder, expires_ms)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (service) DO UPDATE
                             SET holder = excluded.holder, expires_ms = excluded.expires_ms
                             WHERE rollout_leases.holder = excluded.holder
                                OR rollout_leases.expires_ms <= ?4
                         RETURNING holder",
                        params![service.as_str(), holder, expires.millis(), now.millis()],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                Ok(taken)
            })
            .await?;
        // A zero ttl writes a lease that has already run out.
        Ok(taken && expires > now)
    }

    async fn release_lease(&self, service: &ServiceName, holder: &str) -> Result<(), StoreError> {
        let (service, holder) = (service.clone(), holder.to_owned());
        self.transact(move |conn, _: &mut Vec<()>| {
            conn.execute(
                "DELETE FROM rollout_leases WHERE service = ?1 AND holder = ?2",
                params![service.as_str(), holder],
            )?;
            Ok(())
        })
        .await?;
        Ok(())
    }

    async fn lease_holder(
        &self,
        service: &ServiceName,
        now: Timestamp,
    ) -> Result<Option<String>, StoreError> {
        let service = service.clone();
        self.read(move |conn| {
            Ok(conn
                .query_row(
                    "SELECT holder FROM rollout_leases WHERE service = ?1 AND expires_ms > ?2",
                    params![service.as_str(), now.millis()],
                    |row| row.get(0),
                )
                .optional()?)
        })
        .await
    }

    async fn count_rollouts(&self) -> Result<Vec<(RolloutState, u64)>, StoreError> {
        self.read(|conn| {
            let mut statement =
                conn.prepare_cached("SELECT state, COUNT(*) FROM rollouts GROUP BY state")?;
            let rows = statement.query_map([], |row| {
                Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))
            })?;
            let mut counts = Vec::new();
            for row in rows {
                let (state, count) = row?;
                counts.push((
                    records::parse_rollout_state(&state)?,
                    records::stored_count("rollout count", count)?,
                ));
            }
            counts.sort_by_key(|(state, _)| *state as u8);
            Ok(counts)
        })
        .await
    }

    fn subscribe_rollouts(&self) -> broadcast::Receiver<RolloutChange> {
        self.rollout_changes.subscribe()
    }
}
