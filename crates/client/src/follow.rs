//! Follows the registry's endpoint sets for one service with `WatchEndpoints`: the registry
//! pushes a set whenever what this caller sees changes, so nothing polls.

use std::{sync::Weak, time::Duration};

use flotilla_proto::registry::v1::{
    EndpointSet, WatchEndpointsRequest, registry_client::RegistryClient,
};
use tonic::Streaming;

use crate::{backoff::Backoff, fleet::Fleet, registry_channel::RegistryChannel};

const FIRST_RETRY: Duration = Duration::from_millis(100);
const LAST_RETRY: Duration = Duration::from_secs(5);

/// Opens a watch.
pub(crate) async fn subscribe(
    client: &mut RegistryClient<RegistryChannel>,
    request: &WatchEndpointsRequest,
) -> Result<Streaming<EndpointSet>, tonic::Status> {
    Ok(client.watch_endpoints(request.clone()).await?.into_inner())
}

/// Applies every set from `stream`; when it breaks (a registry restarting ends watches with
/// UNAVAILABLE), subscribes again with backoff. Calls keep using the last set meanwhile. Runs
/// until aborted or the fleet is gone.
pub(crate) async fn follow(
    fleet: Weak<Fleet>,
    mut client: RegistryClient<RegistryChannel>,
    request: WatchEndpointsRequest,
    mut stream: Streaming<EndpointSet>,
) {
    let mut backoff = Backoff::new(FIRST_RETRY, LAST_RETRY);
    loop {
        match stream.message().await {
            Ok(Some(set)) => {
                let Some(fleet) = fleet.upgrade() else { return };
                fleet.apply(set);
                backoff.reset();
                continue;
            }
            Ok(None) => {
                tracing::warn!(service = %request.service, "the registry ended the endpoint watch; subscribing again");
            }
            Err(status) => {
                tracing::warn!(service = %request.service, %status, "the endpoint watch broke; subscribing again");
            }
        }
        stream = loop {
            tokio::time::sleep(backoff.next_delay()).await;
            if fleet.strong_count() == 0 {
                return;
            }
            match subscribe(&mut client, &request).await {
                Ok(stream) => break stream,
                Err(status) => {
                    tracing::warn!(service = %request.service, %status, "subscribing to endpoint sets failed; retrying")
                }
            }
        };
    }
}
