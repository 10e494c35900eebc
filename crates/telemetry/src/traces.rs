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
    trace::{Sampler, SdkTracerProvider, Tracer},
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
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
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

/// The standard variable naming the sampler; when set it overrides a process's default.
pub const SAMPLER_ENV: &str = "OTEL_TRACES_SAMPLER";

/// The tracer provider for `identity`: exporting over OTLP when the endpoint is set, otherwise
/// only giving spans their trace context. Unless `OTEL_TRACES_SAMPLER` says otherwise, a span
/// whose caller sent a trace context follows the caller's sampling decision, and one that starts
/// a trace is sampled at `root_ratio` (1.0: every one).
pub fn tracer_provider(
    identity: &ProcessIdentity,
    root_ratio: f64,
) -> Result<SdkTracerProvider, TelemetryError> {
    let resource = Resource::builder()
        .with_service_name(identity.service.clone())
        .with_attributes([
            KeyValue::new("service.version", identity.version.clone()),
            KeyValue::new("service.instance.id", identity.instance.clone()),
        ])
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(sampler) = default_sampler(std::env::var_os(SAMPLER_ENV).is_some(), root_ratio) {
        builder = builder.with_sampler(sampler);
    }
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

/// The sampler a process uses unless `OTEL_TRACES_SAMPLER` is set (then the SDK reads that):
/// none (the SDK's default, parent-based always-on) when every root is kept, else parent-based
/// with `root_ratio` for the traces that start in the process.
fn default_sampler(sampler_env_set: bool, root_ratio: f64) -> Option<Sampler> {
    (!sampler_env_set && root_ratio < 1.0)
        .then(|| Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(root_ratio))))
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

/// Span fields that are for trace backends only (OpenTelemetry's span kind and the RPC semantic
/// conventions, which `otel.name` already sums up): text logs leave them out, so that a line in
/// a call reads `grpc.server{otel.name=pkg.Service/Method trace_id=…}: …`. JSON logs keep all.
pub const FIELDS_LEFT_OUT_OF_TEXT_LOGS: [&str; 4] =
    ["otel.kind", "rpc.system", "rpc.service", "rpc.method"];

/// The default text field format (`name=value`, the message bare, strings quoted with `Debug`)
/// without [`FIELDS_LEFT_OUT_OF_TEXT_LOGS`].
struct TextFields;

impl<'writer> tracing_subscriber::fmt::FormatFields<'writer> for TextFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        writer: tracing_subscriber::fmt::format::Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut visitor = TextFieldVisitor {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

struct TextFieldVisitor<'writer> {
    writer: tracing_subscriber::fmt::format::Writer<'writer>,
    first: bool,
    result: std::fmt::Result,
}

impl tracing::field::Visit for TextFieldVisitor<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.record_debug(field, &value);
    }

    fn record_error(
        &mut self,
        field: &tracing::field::Field,
        value: &(dyn std::error::Error + 'static),
    ) {
        // The error and its causes, as "error: cause: cause".
        let mut text = value.to_string();
        let mut source = value.source();
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        self.record_debug(field, &format_args!("{text}"));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        let name = field.name();
        // `log.*` fields carry the metadata of records from the `log` crate (target, file,
        // line), which the event's own metadata already shows, as in the default format.
        if self.result.is_err()
            || FIELDS_LEFT_OUT_OF_TEXT_LOGS.contains(&name)
            || name.starts_with("log.")
        {
            return;
        }
        let separator = if self.first { "" } else { " " };
        self.first = false;
        self.result = if name == "message" {
            write!(self.writer, "{separator}{value:?}")
        } else {
            let name = name.strip_prefix("r#").unwrap_or(name);
            write!(self.writer, "{separator}{name}={value:?}")
        };
    }
}

/// Installs logging and tracing for the process, every trace sampled; keep the guard until
/// `main` returns.
pub fn init(
    identity: &ProcessIdentity,
    format: LogFormat,
) -> Result<TelemetryGuard, TelemetryError> {
    init_with_root_sampling(identity, format, 1.0)
}

/// [`init`] for a process whose own root spans are many and each of little interest (the
/// registry's heartbeats and resolves from untraced callers): traces that start in the process
/// are sampled at `root_ratio`, while calls that arrive with a trace context (a rollout's, a
/// traced caller's) are recorded whenever their caller's are. `OTEL_TRACES_SAMPLER` overrides.
pub fn init_with_root_sampling(
    identity: &ProcessIdentity,
    format: LogFormat,
    root_ratio: f64,
) -> Result<TelemetryGuard, TelemetryError> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let provider = tracer_provider(identity, root_ratio)?;
    let tracer = provider.tracer("flotilla");
    // Each layer filters on its own, so quieter logs (RUST_LOG=warn) do not thin out traces.
    let log_filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs_show_info_spans = log_filter
        .max_level_hint()
        .is_none_or(|max| max >= tracing::level_filters::LevelFilter::INFO);
    crate::propagation::LOG_TRACE_IDS
        .store(logs_show_info_spans, std::sync::atomic::Ordering::Relaxed);
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Text => fmt.fmt_fields(TextFields).with_filter(log_filter).boxed(),
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_logs_leave_out_the_rpc_conventions_but_keep_the_call_and_trace_id() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .fmt_fields(TextFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "grpc.server",
                otel.name = "demo.v1.Things/Get",
                otel.kind = "server",
                rpc.system = "grpc",
                rpc.service = "demo.v1.Things",
                rpc.method = "Get",
                trace_id = tracing::field::Empty,
            );
            span.record("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736");
            span.in_scope(|| tracing::info!(thing = "a\"b", count = 3, "found it"));
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.trim(),
            "INFO grpc.server{otel.name=\"demo.v1.Things/Get\" trace_id=\"4bf92f3577b34da6a3ce929d0e0e4736\"}: \
             flotilla_telemetry::traces::tests: found it thing=\"a\\\"b\" count=3"
        );
    }

    #[test]
    fn text_logs_skip_log_metadata_and_show_error_causes() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("connecting to the store")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .fmt_fields(TextFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let error = Outer(std::io::Error::other("refused"));
            let error: &(dyn std::error::Error + 'static) = &error;
            tracing::warn!(
                log.target = "tokio_postgres",
                log.line = 42,
                r#type = "pool",
                error,
                "gave up"
            );
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(
            text.trim(),
            "WARN gave up type=\"pool\" error=connecting to the store: refused"
        );
    }

    #[test]
    fn root_sampling_thins_new_traces_but_follows_a_callers_decision() {
        use opentelemetry::trace::{
            Span as _, SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState,
            Tracer as _,
        };
        let tracer = |sampler: Option<Sampler>| {
            let builder = SdkTracerProvider::builder();
            match sampler {
                Some(sampler) => builder.with_sampler(sampler),
                None => builder,
            }
            .build()
            .tracer("test")
        };
        assert!(
            default_sampler(true, 0.0).is_none(),
            "OTEL_TRACES_SAMPLER, when set, decides"
        );
        assert!(
            default_sampler(false, 1.0).is_none(),
            "every root kept: the SDK's default"
        );
        let none_of_the_roots = tracer(default_sampler(false, 0.0));
        let root = none_of_the_roots.start("root");
        assert!(
            !root.span_context().is_sampled(),
            "a new trace is dropped at ratio 0"
        );
        let caller = opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            TraceId::from(7),
            SpanId::from(9),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        ));
        let child = none_of_the_roots.start_with_context("call", &caller);
        assert!(
            child.span_context().is_sampled(),
            "a sampled caller's trace is kept"
        );
        assert_eq!(child.span_context().trace_id(), TraceId::from(7));

        let every_root = tracer(default_sampler(false, 1.0));
        assert!(every_root.start("root").span_context().is_sampled());
    }
}
