//! The metrics layer in a real tonic server: gRPC calls over HTTP/2 are recorded with the codes
//! clients see, and `fetch` reads them back over HTTP/1.1 from the same port.

use std::{
    net::SocketAddr,
    time::{Duration, Instant},
};

use flotilla_proto::testing::v1::{
    EchoReply, EchoRequest,
    echo_client::EchoClient,
    echo_server::{Echo, EchoServer},
};
use flotilla_telemetry::{
    metrics::{HANDLED_TOTAL, HANDLING_SECONDS, STARTED_TOTAL, ServerMetrics},
    scrape::{CallStats, Sample, fetch},
};
use tokio::{net::TcpListener, sync::oneshot};
use tonic::{
    Code, Request, Response, Status,
    transport::{Channel, Server, server::TcpIncoming},
};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const VERSION: &str = "3.1.4";
const SERVICE: &str = "flotilla.testing.v1.Echo";
const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);

/// Echo answers as asked; Record refuses every message with INVALID_ARGUMENT, a client fault.
struct TestEcho;

#[tonic::async_trait]
impl Echo for TestEcho {
    async fn echo(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let request = request.into_inner();
        if request.hold_ms > 0 {
            tokio::time::sleep(Duration::from_millis(request.hold_ms.into())).await;
        }
        if request.fail_unavailable {
            return Err(Status::unavailable("asked to fail"));
        }
        Ok(Response::new(EchoReply {
            message: request.message,
            instance_id: "test".into(),
            version: VERSION.into(),
        }))
    }

    async fn record(&self, _: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        Err(Status::invalid_argument("nothing is recorded here"))
    }
}

/// An echo server with health and the metrics layer, accepting HTTP/1.1 for the scrapes.
struct TestServer {
    address: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl TestServer {
    async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let metrics = ServerMetrics::new(VERSION);
        let (_health, health_service) = tonic_health::server::health_reporter();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            Server::builder()
                .accept_http1(true)
                .layer(metrics.layer())
                .add_service(EchoServer::new(TestEcho))
                .add_service(health_service)
                .serve_with_incoming_shutdown(TcpIncoming::from(listener), async {
                    let _ = stopped.await;
                }),
        );
        Self {
            address,
            stop: Some(stop),
        }
    }

    fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.address))
            .unwrap()
            .connect_lazy()
    }

    async fn scrape(&self) -> Vec<Sample> {
        fetch(&self.address.to_string(), SCRAPE_TIMEOUT)
            .await
            .unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn echo(message: &str) -> EchoRequest {
    EchoRequest {
        message: message.into(),
        ..Default::default()
    }
}

/// The value of `name` for `method` (and `code`, for the handled counter); 0 when absent.
fn value(samples: &[Sample], name: &str, method: &str, code: Option<&str>) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == name
                && s.label("grpc_service") == Some(SERVICE)
                && s.label("grpc_method") == Some(method)
                && s.label("version") == Some(VERSION)
                && s.label("grpc_code") == code
        })
        .map(|s| s.value)
        .sum()
}

fn bucket(samples: &[Sample], method: &str, le: f64) -> f64 {
    samples
        .iter()
        .filter(|s| {
            s.name == format!("{HANDLING_SECONDS}_bucket")
                && s.label("grpc_method") == Some(method)
                && s.label("le").and_then(|b| b.parse().ok()) == Some(le)
        })
        .map(|s| s.value)
        .sum()
}

#[tokio::test]
async fn calls_are_counted_by_the_code_clients_see_and_scraped_from_the_grpc_port() {
    let server = TestServer::start().await;
    let mut client = EchoClient::new(server.channel());

    for message in ["a", "b"] {
        let reply = client.echo(echo(message)).await.unwrap().into_inner();
        assert_eq!(reply.message, message);
    }
    // Held past the 50 ms bucket, so the histogram must place it above.
    let held = EchoRequest {
        hold_ms: 60,
        ..echo("slow")
    };
    client.echo(held).await.unwrap();
    // Errors returned by a unary handler are trailers-only responses.
    for _ in 0..2 {
        let failing = EchoRequest {
            fail_unavailable: true,
            ..echo("x")
        };
        let status = client.echo(failing).await.unwrap_err();
        assert_eq!(status.code(), Code::Unavailable);
    }
    let status = client.record(echo("r")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    // Health checks are not the app's calls.
    HealthClient::new(server.channel())
        .check(HealthCheckRequest::default())
        .await
        .unwrap();

    let samples = server.scrape().await;
    assert_eq!(value(&samples, HANDLED_TOTAL, "Echo", Some("OK")), 3.0);
    assert_eq!(
        value(&samples, HANDLED_TOTAL, "Echo", Some("UNAVAILABLE")),
        2.0
    );
    assert_eq!(
        value(&samples, HANDLED_TOTAL, "Record", Some("INVALID_ARGUMENT")),
        1.0
    );
    let handled: f64 = samples
        .iter()
        .filter(|s| s.name == HANDLED_TOTAL)
        .map(|s| s.value)
        .sum();
    assert_eq!(handled, 6.0, "no other call was counted: {samples:#?}");
    assert!(
        !samples
            .iter()
            .any(|s| s.label("grpc_service") == Some("grpc.health.v1.Health")),
        "health is skipped"
    );
    assert_eq!(value(&samples, STARTED_TOTAL, "Echo", None), 5.0);
    assert_eq!(value(&samples, STARTED_TOTAL, "Record", None), 1.0);
    let count = format!("{HANDLING_SECONDS}_count");
    assert_eq!(value(&samples, &count, "Echo", None), 5.0);
    assert_eq!(bucket(&samples, "Echo", f64::INFINITY), 5.0);
    assert!(
        bucket(&samples, "Echo", 0.05) <= 4.0,
        "the 60 ms call is not under 50 ms"
    );
    assert!(bucket(&samples, "Echo", 0.1) >= 1.0);

    let first = CallStats::from_samples(&samples, VERSION);
    assert_eq!((first.requests, first.errors), (6.0, 2.0));
    assert_eq!(first.error_ratio(), Some(2.0 / 6.0));
    assert!(first.quantile(0.99).unwrap() > 0.05, "{first}");

    // The next interval holds only what happened after the first scrape.
    for message in ["c", "d"] {
        client.echo(echo(message)).await.unwrap();
    }
    let second = CallStats::from_samples(&server.scrape().await, VERSION);
    let interval = second.delta(&first);
    assert_eq!((interval.requests, interval.errors), (2.0, 0.0));
    assert_eq!(interval.buckets.last(), Some(&(f64::INFINITY, 2.0)));
    assert!(interval.quantile(0.99).unwrap() < 0.05, "{interval}");
}

/// Scrapes until `ready` holds of the samples (the server records a dropped call when it
/// notices, a moment after the client gave up), for at most 5 s.
async fn scrape_until(server: &TestServer, ready: impl Fn(&[Sample]) -> bool) -> Vec<Sample> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let samples = server.scrape().await;
        if ready(&samples) || Instant::now() > deadline {
            return samples;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn calls_the_client_abandons_count_as_cancelled_or_past_their_deadline() {
    let server = TestServer::start().await;
    let mut client = EchoClient::new(server.channel());
    let held = || EchoRequest {
        hold_ms: 10_000,
        ..echo("held")
    };

    // With a deadline: tonic sends grpc-timeout, and the server gives up when it passes.
    let mut request = Request::new(held());
    request.set_timeout(Duration::from_millis(100));
    let status = client.echo(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    let samples = scrape_until(&server, |s| {
        value(s, HANDLED_TOTAL, "Echo", Some("DEADLINE_EXCEEDED")) == 1.0
    })
    .await;
    assert_eq!(
        value(&samples, HANDLED_TOTAL, "Echo", Some("DEADLINE_EXCEEDED")),
        1.0
    );

    // Without one: the client drops the call, its stream is reset, the server drops the handler.
    let abandoned = tokio::time::timeout(Duration::from_millis(100), client.echo(held())).await;
    assert!(abandoned.is_err(), "the call was still running");
    let samples = scrape_until(&server, |s| {
        value(s, HANDLED_TOTAL, "Echo", Some("CANCELLED")) == 1.0
    })
    .await;
    assert_eq!(
        value(&samples, HANDLED_TOTAL, "Echo", Some("CANCELLED")),
        1.0
    );
    let count = format!("{HANDLING_SECONDS}_count");
    assert_eq!(value(&samples, &count, "Echo", None), 2.0);
    // Both were abandoned within a fraction of their 10 s hold.
    assert_eq!(bucket(&samples, "Echo", 1.0), 2.0);
}
