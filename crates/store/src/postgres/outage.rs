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
//! Each registry process forgives after its own outages; two doing it after one outage give the
//! same leases the same terms (`GREATEST`), so nothing depends on which goes first. A lease that
//! had already run out, or been reaped, before the outage stays expired.

use std::sync::{
    Mutex,
    atomic::{AtomicI64, Ordering},
};

use flotilla_model::Timestamp;

/// When the store last reached the database, and whether (since when) it has failed to since.
#[derive(Debug, Default)]
pub(super) struct Outages {
    /// Milliseconds since the epoch of the last time a connection was had; 0 before the first.
    last_reached_ms: AtomicI64,
    /// Set when getting a connection failed: the last time the database was reached before.
    unreachable_since_ms: Mutex<Option<i64>>,
}

impl Outages {
    /// A connection could not be had.
    pub(super) fn unreachable(&self) {
        let mut since = self.unreachable_since_ms.lock().expect("not poisoned");
        if since.is_none() {
            let last = self.last_reached_ms.load(Ordering::Acquire);
            *since = Some(if last == 0 {
                Timestamp::now().millis()
            } else {
                last
            });
        }
    }

    /// The start of an outage not yet forgiven, if any.
    pub(super) fn pending(&self) -> Option<i64> {
        *self.unreachable_since_ms.lock().expect("not poisoned")
    }

    /// A connection was had (and any pending outage forgiven).
    pub(super) fn reached(&self, forgiven: Option<i64>) {
        self.last_reached_ms
            .store(Timestamp::now().millis(), Ordering::Release);
        if let Some(forgiven) = forgiven {
            let mut since = self.unreachable_since_ms.lock().expect("not poisoned");
            // A newer outage recorded meanwhile stays pending.
            if *since == Some(forgiven) {
                *since = None;
            }
        }
    }
}

/// Gives a fresh term, from `now`, to every lease that was live at `since`. Returns how many.
pub(super) async fn renew_leases_live_at(
    client: &deadpool_postgres::Object,
    since_ms: i64,
    now: Timestamp,
) -> Result<u64, tokio_postgres::Error> {
    client
        .execute(
            "UPDATE instances SET expires_ms = GREATEST(expires_ms, $1 + lease_ttl_ms)
             WHERE NOT expired AND expires_ms > $2",
            &[&now.millis(), &since_ms],
        )
        .await
}
