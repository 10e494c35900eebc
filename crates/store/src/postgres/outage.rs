//! Leases through an outage of the database.
//!
//! Instances renew their leases through the registry, and the registry through PostgreSQL. While
//! the database is unreachable no lease can be renewed, so without this, every instance whose
//! lease ran out during the outage would vanish from endpoint sets the moment the database came
//! back (the liveness check compares `expires_ms` with the clock), though none of them failed:
//! callers would find no instance until each registered again. Instead, a store that could not
//! reach the database, on reaching it again and before serving anything, gives every lease that
//! was still live when it last reached the database a fresh term from now. An instance that
//! really died during the outage then leaves one lease term later than it otherwise would.
//!
//! Each registry process renews after its own outages, from its own last contact; two doing it
//! after one outage leave each lease with the later of the two terms (`GREATEST`), so nothing
//! depends on which goes first. A lease that had already run out, or been reaped, before the
//! outage stays expired. A pool that is merely full is not an outage: only a connection that
//! could not be made, or the LISTEN session lost, counts.

use std::sync::{
    Mutex,
    atomic::{AtomicI64, Ordering},
};

use flotilla_model::Timestamp;

/// An outage not yet renewed after: since when, and which report of it this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Outage {
    /// The last time the database was reached before it (milliseconds since the epoch).
    pub(super) since_ms: i64,
    /// Bumped by every report of unreachability, so a renewal clears only what it covered.
    epoch: u64,
}

/// When the store last reached the database, and whether it has failed to since.
#[derive(Debug, Default)]
pub(super) struct Outages {
    /// Milliseconds since the epoch of the last time a connection was had; 0 before the first.
    last_reached_ms: AtomicI64,
    pending: Mutex<Option<Outage>>,
    /// One renewal at a time: the first connection after an outage renews, the others wait for
    /// it and find nothing pending.
    pub(super) renewing: tokio::sync::Mutex<()>,
}

impl Outages {
    /// The database could not be reached.
    pub(super) fn unreachable(&self) {
        let mut pending = self.pending.lock().expect("not poisoned");
        let since_ms = match *pending {
            Some(outage) => outage.since_ms,
            None => match self.last_reached_ms.load(Ordering::Acquire) {
                0 => Timestamp::now().millis(),
                last => last,
            },
        };
        let epoch = pending.map_or(0, |outage| outage.epoch) + 1;
        *pending = Some(Outage { since_ms, epoch });
    }

    /// The outage not yet renewed after, if any.
    pub(super) fn pending(&self) -> Option<Outage> {
        *self.pending.lock().expect("not poisoned")
    }

    /// A connection was had, and `renewed` (if any) renewed after.
    pub(super) fn reached(&self, renewed: Option<Outage>) {
        self.last_reached_ms
            .store(Timestamp::now().millis(), Ordering::Release);
        if let Some(renewed) = renewed {
            let mut pending = self.pending.lock().expect("not poisoned");
            // Reported again meanwhile: that report is still to be renewed after.
            if *pending == Some(renewed) {
                *pending = None;
            }
        }
    }
}

/// Gives a fresh term, from `now`, to every lease that was live at `since`. Rows are locked in
/// id order, as the reaper locks them, so a renewal and a reaper in two processes wait for each
/// other instead of deadlocking. Returns how many leases were renewed.
pub(super) async fn renew_leases_live_at(
    client: &deadpool_postgres::Object,
    since_ms: i64,
    now: Timestamp,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE instances SET expires_ms = GREATEST(expires_ms, $1 + lease_ttl_ms)
             WHERE id IN (
                 SELECT id FROM instances WHERE NOT expired AND expires_ms > $2
                 ORDER BY id FOR UPDATE)",
            &[&now.millis(), &since_ms],
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_during_a_renewal_stays_pending() {
        let outages = Outages::default();
        outages.reached(None);
        assert_eq!(outages.pending(), None);
        outages.unreachable();
        let first = outages.pending().expect("an outage");
        // Reported again while the renewal for the first report runs.
        outages.unreachable();
        outages.reached(Some(first));
        let second = outages
            .pending()
            .expect("the second report is still pending");
        assert_eq!(second.since_ms, first.since_ms, "one outage, one start");
        outages.reached(Some(second));
        assert_eq!(outages.pending(), None);
    }
}
