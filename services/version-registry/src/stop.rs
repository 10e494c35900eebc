//! The registry's stop signal, shared by its background tasks and streams.

use tokio::sync::watch;

/// Completes once the stop signal is true (or its sender is gone). Unlike `wait_for`, the future
/// holds no borrow of the channel, so it is `Send` across `select!`.
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}
