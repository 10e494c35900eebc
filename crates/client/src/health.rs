//! Watches one instance with `grpc.health.v1.Health/Watch`, so a crash or a NOT_SERVING is seen
//! at once instead of when the registry's lease runs out.

use std::{
    sync::{Arc, Weak},
    time::Duration,
};

use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::{
    backoff::Backoff,
    fleet::{Conn, Fleet},
};

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// How one watch ended.
enum Ended {
    /// The stream broke or could not be opened: the instance is unreachable.
    Broken,
    /// The server has no health service: only failed calls can tell.
    Unimplemented,
    /// A call failed on this connection while the watch looked fine: watch afresh.
    Recheck,
}

/// Runs until aborted (when the endpoint leaves the set, or the fleet is dropped). The instance
/// is healthy while its last status was SERVING, unhealthy on anything else or a broken stream,
/// and re-probed with backoff until it is back.
pub(crate) async fn watch(fleet: Weak<Fleet>, conn: Arc<Conn>) {
    let mut backoff = Backoff::new(FIRST_RETRY, LAST_RETRY);
    loop {
        match watch_once(&fleet, &conn, &mut backoff).await {
            None => return,
            Some(Ended::Broken) => {
                let Some(f) = fleet.upgrade() else { return };
                f.set_health(&conn, false);
            }
            Some(Ended::Unimplemented) => {
                // A reachable server without a health service: assume healthy until a call
                // fails, then probe again.
                let Some(f) = fleet.upgrade() else { return };
                f.set_health(&conn, true);
                drop(f);
                backoff.reset();
                conn.recheck.notified().await;
            }
            Some(Ended::Recheck) => {}
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

/// One Health/Watch stream, applied to the fleet until it ends. `None` when the fleet is gone.
async fn watch_once(fleet: &Weak<Fleet>, conn: &Conn, backoff: &mut Backoff) -> Option<Ended> {
    let mut client = HealthClient::new(conn.channel.clone());
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let opened = tokio::select! {
        opened = client.watch(request) => opened,
        _ = conn.recheck.notified() => return Some(Ended::Recheck),
    };
    let mut stream = match opened {
        Ok(response) => response.into_inner(),
        Err(status) if status.code() == Code::Unimplemented => {
            return Some(Ended::Unimplemented);
        }
        Err(status) => {
            tracing::debug!(address = %conn.address, %status, "health watch failed");
            return Some(Ended::Broken);
        }
    };
    loop {
        let message = tokio::select! {
            message = stream.message() => message,
            _ = conn.recheck.notified() => return Some(Ended::Recheck),
        };
        match message {
            Ok(Some(response)) => {
                let serving = response.status() == ServingStatus::Serving;
                if serving {
                    backoff.reset();
                }
                fleet.upgrade()?.set_health(conn, serving);
            }
            Ok(None) => return Some(Ended::Broken),
            Err(status) => {
                tracing::debug!(address = %conn.address, %status, "health watch broke");
                return Some(Ended::Broken);
            }
        }
    }
}
