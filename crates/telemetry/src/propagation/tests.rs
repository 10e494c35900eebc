use std::net::SocketAddr;

use opentelemetry::trace::{SpanId, TraceContextExt as _, TracerProvider as _};
use opentelemetry_sdk::{
    propagation::TraceContextPropagator,
    trace::{InMemorySpanExporter, SdkTracerProvider, SpanData},
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
use tracing_subscriber::layer::SubscriberExt;

use super::*;

/// A health server with the trace layer, on an ephemeral port.
async fn traced_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(
        tonic::transport::Server::builder()
            .layer(TraceLayer)
            .add_service(health)
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    address
}

/// Spans recorded in memory by a subscriber local to this (current-thread) test.
fn recording() -> (
    InMemorySpanExporter,
    SdkTracerProvider,
    tracing::subscriber::DefaultGuard,
) {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber =
        tracing_subscriber::registry().with(crate::traces::otel_layer(provider.tracer("test")));
    let guard = tracing::subscriber::set_default(subscriber);
    (exporter, provider, guard)
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> &'a SpanData {
    spans
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no span {name} in {spans:?}"))
}

#[tokio::test]
async fn a_call_continues_the_callers_trace_on_the_server() {
    let (exporter, provider, _guard) = recording();
    let address = traced_server().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(
        tower::ServiceBuilder::new()
            .layer(InjectLayer)
            .service(channel),
    );
    let caller = tracing::info_span!("caller");
    client
        .check(HealthCheckRequest::default())
        .instrument(caller)
        .await
        .unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let caller = named(&spans, "caller");
    let server = named(&spans, "grpc.health.v1.Health/Check");
    assert_eq!(
        server.span_context.trace_id(),
        caller.span_context.trace_id()
    );
    assert_eq!(server.parent_span_id, caller.span_context.span_id());
    assert_eq!(server.span_kind, opentelemetry::trace::SpanKind::Server);
}

#[tokio::test]
async fn a_call_without_a_context_starts_a_trace() {
    let (exporter, provider, _guard) = recording();
    let address = traced_server().await;
    let channel = tonic::transport::Channel::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    client.check(HealthCheckRequest::default()).await.unwrap();
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let server = named(&spans, "grpc.health.v1.Health/Check");
    assert_eq!(server.parent_span_id, SpanId::INVALID);
    assert!(server.span_context.is_valid());
}

#[test]
fn the_current_context_is_written_once_into_headers() {
    let (_exporter, _provider, _guard) = recording();
    let span = tracing::info_span!("caller");
    let mut headers = http::HeaderMap::new();
    span.in_scope(|| inject_current(&mut headers));
    let traceparent = headers["traceparent"].to_str().unwrap().to_owned();
    let trace_id = span.context().span().span_context().trace_id();
    assert!(traceparent.contains(&trace_id.to_string()), "{traceparent}");
    // An explicit context is left alone.
    let other = tracing::info_span!("other");
    other.in_scope(|| inject_current(&mut headers));
    assert_eq!(headers["traceparent"], traceparent.as_str());
    assert_eq!(extract(&headers).span().span_context().trace_id(), trace_id);
}

#[test]
fn a_stored_traceparent_names_the_context_it_was_taken_from() {
    let (_exporter, _provider, _guard) = recording();
    let span = tracing::info_span!("starting");
    let stored = span.in_scope(current_traceparent).expect("a valid context");
    let restored = context_of_traceparent(&stored);
    assert_eq!(
        restored.span().span_context().span_id(),
        span.context().span().span_context().span_id()
    );
    assert!(
        !context_of_traceparent("not a traceparent")
            .span()
            .span_context()
            .is_valid()
    );
}
