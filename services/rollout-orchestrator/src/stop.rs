//! The orchestrator's stop signal, shared by its background tasks and streams.

use tokio::sync::watch;

/// Completes once the stop signal is true (or its sender is gone). The guard `wait_for` returns
/// is dropped inside, so the future is `Send` across `select!`.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
