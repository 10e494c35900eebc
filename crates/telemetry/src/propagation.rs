//! W3C trace context (`traceparent`, `tracestate`) across the suite's gRPC calls.
//!
//! Servers wrap every call in a `grpc.server` span whose parent is the caller's context, taken
//! from the request headers by [`TraceLayer`]; clients write the current span's context into the
//! headers they send, with [`inject_current`] (the fleet client and the registry channel do it in
//! their own services) or [`InjectLayer`] around a plain tonic channel. The span records the
//! trace id as a field, so every log line written inside a call carries it.

use std::task::{Context, Poll};

use opentelemetry::{
    propagation::{Extractor, Injector},
    trace::TraceContextExt as _,
};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Reads propagation fields from HTTP headers.
#[derive(Debug)]
pub struct HeaderExtractor<'a>(pub &'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// Writes propagation fields into HTTP headers.
#[derive(Debug)]
pub struct HeaderInjector<'a>(pub &'a mut http::HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(key.as_bytes()),
            http::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

/// The trace context a request carries (an empty context when it carries none).
pub fn extract(headers: &http::HeaderMap) -> opentelemetry::Context {
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

/// Writes the current span's trace context into `headers`, unless the caller set one already.
pub fn inject_current(headers: &mut http::HeaderMap) {
    if headers.contains_key("traceparent") {
        return;
    }
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers));
    });
}

/// The current span's context as a W3C `traceparent` value, to be stored or handed on (e.g. a
/// rollout keeps the one of the call that started it). `None` without a valid context.
pub fn current_traceparent() -> Option<String> {
    let mut headers = http::HeaderMap::new();
    inject_current(&mut headers);
    headers
        .get("traceparent")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned)
}

/// The trace id of the current span, as 32 hex digits; `None` outside a valid trace.
pub fn current_trace_id() -> Option<String> {
    let id = tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id();
    (id != opentelemetry::trace::TraceId::INVALID).then(|| id.to_string())
}

/// The context a stored `traceparent` value names.
pub fn context_of_traceparent(traceparent: &str) -> opentelemetry::Context {
    let mut headers = http::HeaderMap::new();
    if let Ok(value) = http::HeaderValue::from_str(traceparent) {
        headers.insert("traceparent", value);
    }
    extract(&headers)
}

/// The environment variable through which a process is handed the trace it is part of (the
/// orchestrator sets it on the instances it starts).
pub const TRACEPARENT_ENV: &str = "TRACEPARENT";

/// Makes `span` a child of the context in the `TRACEPARENT` environment variable, if any.
pub fn continue_trace_from_env(span: &tracing::Span) {
    if let Ok(traceparent) = std::env::var(TRACEPARENT_ENV) {
        let _ = span.set_parent(context_of_traceparent(&traceparent));
    }
}

/// The span a server runs a call in, child of the caller's context.
pub fn server_span(request_headers: &http::HeaderMap, path: &str) -> tracing::Span {
    let (service, method) = path
        .trim_start_matches('/')
        .split_once('/')
        .unwrap_or(("", path));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path.trim_start_matches('/'),
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        trace_id = tracing::field::Empty,
    );
    let parent = extract(request_headers);
    // A caller without a context starts a trace here.
    let _ = span.set_parent(parent);
    if LOG_TRACE_IDS.load(std::sync::atomic::Ordering::Relaxed) {
        let trace_id = span.context().span().span_context().trace_id();
        if trace_id != opentelemetry::trace::TraceId::INVALID {
            span.record("trace_id", tracing::field::display(trace_id));
        }
    }
    span
}

/// Whether [`server_span`] records the `trace_id` field, which exists for log lines (the
/// exported span has its own trace id). [`crate::traces::init`] clears it when the log filter
/// can never show an info span's fields, so that no call formats an id nobody reads.
pub(crate) static LOG_TRACE_IDS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(true);

/// The server side: every call runs in a [`server_span`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TraceLayer;

impl<S> tower::Layer<S> for TraceLayer {
    type Service = TraceService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        TraceService { inner }
    }
}

/// See [`TraceLayer`].
#[derive(Debug, Clone)]
pub struct TraceService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for TraceService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = tracing::instrument::Instrumented<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let span = server_span(request.headers(), request.uri().path());
        let future = span.in_scope(|| self.inner.call(request));
        future.instrument(span)
    }
}

/// The client side for a plain channel: every request carries the current span's context.
#[derive(Debug, Clone, Copy, Default)]
pub struct InjectLayer;

impl<S> tower::Layer<S> for InjectLayer {
    type Service = InjectService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        InjectService { inner }
    }
}

/// See [`InjectLayer`].
#[derive(Debug, Clone)]
pub struct InjectService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for InjectService<S>
where
    S: tower::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        inject_current(request.headers_mut());
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests;
