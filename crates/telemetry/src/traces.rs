//! Logs and traces for every binary of the suite, set up in one call.
//!
//! [`init`] installs a tracing subscriber with an env filter (`RUST_LOG`, `info` by default), log
//! lines on stderr (text or JSON), and an OpenTelemetry layer, so that every span has a W3C trace
//! context that [`crate::propagation`] carries across gRPC calls. Spans are exported over OTLP
//! (gRPC) only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set; without it, trace ids still flow between
//! services and appear in log lines, and nothing leaves the process. `OTEL_SDK_DISABLED=true`
//! leaves the OpenTelemetry layer out entirely. The resource names the process:
//! `service.name`, `service.version`, `service.instance.id`.

use opentelemetry::{KeyValue, trace::TracerProvider as _};
use opentelemetry_sdk::{
    Resource,
    propagation::TraceContextPropagator,
    trace::{SdkTracerProvider, Tracer},
};
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

/// The environment variable that switches export on (the OpenTelemetry standard one).
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// `OTEL_SDK_DISABLED=true` (the OpenTelemetry standard switch) leaves the OpenTelemetry layer
/// out altogether: logs only, no trace context, nothing exported.
pub const SDK_DISABLED_ENV: &str = "OTEL_SDK_DISABLED";

/// Which spans become OpenTelemetry spans, as an env-filter directive; independent of `RUST_LOG`.
pub const TRACE_FILTER_ENV: &str = "FLOTILLA_TRACE_FILTER";
/// The suite's own spans (calls, rollout steps, instance startup) are at info; the transport's
/// internals below it would multiply the spans of every call.
const DEFAULT_TRACE_FILTER: &str = "info";

fn sdk_disabled() -> bool {
    std::env::var(SDK_DISABLED_ENV).is_ok_and(|v| v.trim().eq_ignore_ascii_case("true"))
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Who is tracing: the resource attributes of every span the process exports.
#[derive(Debug, Clone)]
pub struct ProcessIdentity {
    /// `service.name`, e.g. "version-registry" or "greeter".
    pub service: String,
    /// `service.version`.
    pub version: String,
    /// `service.instance.id`: tells replicas of one version apart.
    pub instance: String,
}

impl ProcessIdentity {
    /// This process as `service` at `version`, its instance named by host name and pid.
    pub fn of(service: &str, version: &str) -> Self {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|name| name.trim().to_owned())
            .unwrap_or_else(|_| "localhost".to_owned());
        Self {
            service: service.to_owned(),
            version: version.to_owned(),
            instance: format!("{host}/{}", std::process::id()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("the OTLP exporter for {endpoint}: {source}")]
    Exporter {
        endpoint: String,
        source: opentelemetry_otlp::ExporterBuildError,
    },
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the tracer provider alive; dropping it flushes the spans not yet exported.
#[must_use = "dropping the guard shuts tracing down"]
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: SdkTracerProvider,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("flushing traces at exit: {error}");
        }
    }
}

/// The tracer provider for `identity`: exporting over OTLP when the endpoint is set, otherwise
/// only giving spans their trace context.
pub fn tracer_provider(identity: &ProcessIdentity) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(identity.service.clone())
        .with_attributes([
            KeyValue::new("service.version", identity.version.clone()),
            KeyValue::new("service.instance.id", identity.instance.clone()),
        ])
        .build();
    let builder = SdkTracerProvider::builder().with_resource(resource);
    let builder = match std::env::var(OTLP_ENDPOINT_ENV) {
        Ok(endpoint) if !endpoint.trim().is_empty() => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .map_err(|source| TelemetryError::Exporter { endpoint, source })?;
            builder.with_batch_exporter(exporter)
        }
        _ => builder,
    };
    Ok(builder.build())
}

/// The layer that gives tracing spans OpenTelemetry contexts (and exports them with `tracer`).
pub fn otel_layer<S>(tracer: Tracer) -> impl Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    // Every span of every call is exported: no source location, thread or busy/idle timings on
    // each, which would grow every span and cost time on every poll.
    tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
}

/// Installs logging and tracing for the process; keep the guard until `main` returns.
pub fn init(
    identity: &ProcessIdentity,
    format: LogFormat,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(identity)?;
    let tracer = provider.tracer("flotilla");
    // Each layer filters on its own, so quieter logs (RUST_LOG=warn) do not thin out traces.
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.with_filter(log_filter).boxed(),
        LogFormat::Json => fmt.json().with_filter(log_filter).boxed(),
    };
    let trace_filter = EnvFilter::try_from_env(TRACE_FILTER_ENV)
        .unwrap_or_else(|_| EnvFilter::new(DEFAULT_TRACE_FILTER));
    let otel = (!sdk_disabled()).then(|| otel_layer(tracer).with_filter(trace_filter));
    tracing_subscriber::registry()
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}
