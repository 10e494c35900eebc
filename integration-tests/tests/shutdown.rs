//! The registry process stops cleanly on SIGTERM, ending watch streams, and keeps its data.

use std::time::Duration;

use flotilla_integration_tests::SuiteProcess;
use flotilla_proto::registry::v1::{self as pb, registry_client::RegistryClient};
use tokio_stream::StreamExt;

// Multi-threaded: the test blocks one thread waiting for the process while the client's
// connection keeps running on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_watchers_and_the_embedded_store_keeps_its_data() {
    let dir = std::env::temp_dir().join(format!("flotilla-it-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let data_file = dir.join("registry.sqlite");
    let args = ["--data-file", data_file.to_str().unwrap()];

    let mut registry = SuiteProcess::registry(&args).unwrap();
    let mut client = RegistryClient::connect(registry.endpoint()).await.unwrap();
    client
        .create_service(pb::CreateServiceRequest {
            name: "greeter".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let mut watch = client
        .watch_endpoints(pb::WatchEndpointsRequest {
            client_schema: Vec::new(),
            service: "greeter".into(),
            requirement: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    watch.next().await.unwrap().unwrap();

    let status = registry.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.success(), "exit status {status}");
    let end = tokio::time::timeout(Duration::from_secs(5), watch.next())
        .await
        .unwrap();
    match end {
        None => {}
        Some(Err(status)) => assert!(
            matches!(
                status.code(),
                tonic::Code::Unavailable | tonic::Code::Unknown | tonic::Code::Cancelled
            ),
            "{status:?}"
        ),
        Some(Ok(set)) => panic!("unexpected set after shutdown: {set:?}"),
    }

    let registry = SuiteProcess::registry(&args).unwrap();
    let mut client = RegistryClient::connect(registry.endpoint()).await.unwrap();
    let service = client
        .get_service(pb::GetServiceRequest {
            name: "greeter".into(),
        })
        .await
        .expect("the service survived the restart")
        .into_inner();
    assert_eq!(service.name, "greeter");
    drop(registry);
    let _ = std::fs::remove_dir_all(dir);
}
