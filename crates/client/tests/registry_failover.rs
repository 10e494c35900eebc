//! RegistryChannel against real registries: a replica that refuses connections costs no call,
//! and a replica that dies mid-life is left for the next one.

mod support;

use flotilla_client::{FleetClient, RegistryChannel};
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use support::TestRegistry;
use tonic::Code;

/// A URL nothing listens on: a port just freed.
fn dead_url() -> String {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", free.local_addr().unwrap());
    drop(free);
    url
}

fn list_request() -> pb::ListServicesRequest {
    pb::ListServicesRequest::default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_no_replica_took_goes_on_to_the_next_and_sticks_there() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let dead = dead_url();
    let channel = RegistryChannel::new(&format!("{dead},{}", registry.url), |e| e).unwrap();
    assert_eq!(channel.current_url(), dead);
    let mut client = RegistryClient::new(channel.clone());

    // The first replica refuses the connection; the call is sent to the second, not failed.
    let services = client.list_services(list_request()).await.unwrap();
    assert_eq!(services.into_inner().services.len(), 1);
    assert_eq!(channel.current_url(), registry.url);
    client.list_services(list_request()).await.unwrap();
    assert_eq!(channel.current_url(), registry.url);

    // A fleet client given the same list connects through the live replica.
    let fleet = FleetClient::builder(format!("{dead},{}", registry.url), "echo")
        .connect()
        .await;
    assert!(fleet.is_ok(), "{:?}", fleet.err());
}

/// A URL that accepts connections and never answers: a hung replica.
async fn hung_url() -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let holder = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (url, holder)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_client_leaves_a_hung_replica_for_the_next_within_its_deadline() {
    let mut registry = TestRegistry::start().await;
    registry.create_echo_service(&["1.0.0"]).await;
    let (hung, _holder) = hung_url().await;
    let fleet = FleetClient::builder(format!("{hung},{}", registry.url), "echo")
        .connect_timeout(std::time::Duration::from_secs(2))
        .connect()
        .await;
    assert!(fleet.is_ok(), "{:?}", fleet.err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_every_replica_is_down_the_call_is_unavailable() {
    let channel = RegistryChannel::new(&format!("{},{}", dead_url(), dead_url()), |e| e).unwrap();
    let status = RegistryClient::new(channel)
        .list_services(list_request())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_stops_is_left_for_the_next() {
    let first = TestRegistry::start().await;
    let second = TestRegistry::start().await;
    let channel = RegistryChannel::new(&format!("{},{}", first.url, second.url), |e| e).unwrap();
    let mut client = RegistryClient::new(channel.clone());
    client.list_services(list_request()).await.unwrap();
    assert_eq!(channel.current_url(), first.url);

    first.stop().await;
    // The connection to the stopped replica is gone; whichever way the next call fails on it,
    // the one after reaches the second replica.
    let mut answered = 0;
    for _ in 0..3 {
        if client.list_services(list_request()).await.is_ok() {
            answered += 1;
        }
    }
    assert!(answered >= 2, "{answered} of 3 calls answered");
    assert_eq!(channel.current_url(), second.url);
}
