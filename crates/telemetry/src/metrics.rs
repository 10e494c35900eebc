//! Per-call metrics of a tonic server, and their exposition at `GET /metrics` on the same port.
//!
//! [`ServerMetrics::layer`] is a tower layer for `tonic::transport::Server::layer`. For every gRPC
//! call it records:
//!
//! | metric | type | labels |
//! | --- | --- | --- |
//! | [`STARTED_TOTAL`] | counter | `grpc_service`, `grpc_method`, `version` |
//! | [`HANDLED_TOTAL`] | counter | `grpc_service`, `grpc_method`, `grpc_code`, `version` |
//! | [`HANDLING_SECONDS`] | histogram ([`LATENCY_BUCKETS`]) | `grpc_service`, `grpc_method`, `version` |
//!
//! `grpc_code` is the status code's canonical name (`OK`, `UNAVAILABLE`, …). A call counts as
//! handled when it ends: at the response headers for a trailers-only response (an error returned
//! by a unary handler), at the trailers otherwise (so a streaming call counts when its stream
//! ends, with the status of its trailers), and its latency runs until then. A response body
//! dropped before it ended (the client went away) counts as `CANCELLED`, or `DEADLINE_EXCEEDED`
//! when the call's `grpc-timeout` had passed by then.
//!
//! Requests that are not gRPC (a content type other than `application/grpc`, `application/grpc+…`)
//! and the services in [`SKIPPED_SERVICES`] are not recorded. The same layer answers
//! `GET /metrics` in the Prometheus text format, or OpenMetrics when the `Accept` header prefers
//! it; the server must accept HTTP/1.1 (`Server::builder().accept_http1(true)`) for Prometheus to
//! reach it, and gRPC over HTTP/2 is unaffected.

use std::{
    collections::HashMap,
    fmt,
    sync::{Arc, Mutex, OnceLock, PoisonError},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, header};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, histogram::Histogram},
    registry::Registry,
};

/// Calls the server started, by method.
pub const STARTED_TOTAL: &str = "flotilla_grpc_server_started_total";
/// Calls the server finished, by method and status code.
pub const HANDLED_TOTAL: &str = "flotilla_grpc_server_handled_total";
/// How long calls took until their status was sent, by method (`_bucket`, `_sum`, `_count`).
pub const HANDLING_SECONDS: &str = "flotilla_grpc_server_handling_seconds";
/// The upper bounds of [`HANDLING_SECONDS`]'s buckets, in seconds (`+Inf` is implicit).
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Services whose calls are not recorded: health checks and reflection are answered by the
/// framework, far more often and far faster than the app's calls, and would dilute the error
/// ratio and latency a rollout is judged by.
pub const SKIPPED_SERVICES: [&str; 3] = [
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
];
/// The path the layer answers `GET` on.
pub const METRICS_PATH: &str = "/metrics";
/// How many distinct methods get labels of their own; calls of any further method, and gRPC
/// requests whose path is not `/service/method`, are recorded under [`OVERFLOW_LABEL`]. Callers
/// choose the path, so without a cap anyone could grow the exposition without bound.
pub const MAX_METHODS: usize = 1024;
/// The `grpc_service` and `grpc_method` of calls beyond [`MAX_METHODS`] or with a malformed path.
pub const OVERFLOW_LABEL: &str = "other";

/// The exposition formats `GET /metrics` can answer with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The Prometheus text format, version 0.0.4: the default.
    Prometheus,
    /// OpenMetrics 1.0.0 text, for scrapers whose `Accept` header prefers it.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an exposition in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format to answer a request with this `Accept` header: OpenMetrics when the header
    /// ranks it above plain text (Prometheus itself does), the Prometheus text format otherwise.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let (mut openmetrics, mut text) = (0.0_f64, 0.0_f64);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media_type = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut quality, mut version) = (1.0_f64, None);
            for parameter in parts {
                let Some((key, value)) = parameter.split_once('=') else {
                    continue;
                };
                let value = value.trim().trim_matches('"');
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => quality = value.parse().unwrap_or(0.0),
                    "version" => version = Some(value),
                    _ => {}
                }
            }
            match media_type.as_str() {
                // prometheus-client writes OpenMetrics 1.0.0, not the draft 0.0.1.
                "application/openmetrics-text" if version.is_none_or(|v| v == "1.0.0") => {
                    openmetrics = openmetrics.max(quality);
                }
                "text/plain" | "text/*" | "*/*" => text = text.max(quality),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics > text {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// The metrics of one server: a registry holding the call metrics of one version, and the layer
/// that records into it and serves it. Cloning shares them.
#[derive(Clone)]
pub struct ServerMetrics {
    shared: Arc<Shared>,
}

struct Shared {
    registry: Registry,
    version: Arc<str>,
    started: Family<MethodLabels, Counter>,
    handled: Family<CodeLabels, Counter>,
    handling: Family<MethodLabels, Histogram, fn() -> Histogram>,
    // The hot path reads this map without a lock; only a method's first call takes `adding`.
    methods: ArcSwap<HashMap<Box<str>, Arc<MethodMetrics>>>,
    adding: Mutex<()>,
    overflow: OnceLock<Arc<MethodMetrics>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct MethodLabels {
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    version: Arc<str>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, EncodeLabelSet)]
struct CodeLabels {
    grpc_service: Arc<str>,
    grpc_method: Arc<str>,
    grpc_code: &'static str,
    version: Arc<str>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(LATENCY_BUCKETS)
}

impl ServerMetrics {
    /// Metrics of calls served by `version`, in a registry of their own.
    pub fn new(version: &str) -> Self {
        Self::with_registry(Registry::default(), version)
    }

    /// Metrics of calls served by `version`, added to `registry`, so that the app's own metrics
    /// registered there before are served at `/metrics` too.
    pub fn with_registry(mut registry: Registry, version: &str) -> Self {
        let started = Family::default();
        let handled = Family::default();
        let handling = Family::new_with_constructor(latency_histogram as fn() -> Histogram);
        // prometheus-client appends `_total` to counters itself.
        registry.register(
            counter_family(STARTED_TOTAL),
            "gRPC calls the server started",
            started.clone(),
        );
        registry.register(
            counter_family(HANDLED_TOTAL),
            "gRPC calls the server finished, by status code",
            handled.clone(),
        );
        registry.register(
            HANDLING_SECONDS,
            "Seconds from a gRPC call's request until its status was sent",
            handling.clone(),
        );
        Self {
            shared: Arc::new(Shared {
                registry,
                version: version.into(),
                started,
                handled,
                handling,
                methods: ArcSwap::default(),
                adding: Mutex::new(()),
                overflow: OnceLock::new(),
            }),
        }
    }

    /// The `version` label of every call recorded.
    pub fn version(&self) -> &str {
        &self.shared.version
    }

    /// The tower layer that records calls and answers `GET /metrics`.
    pub fn layer(&self) -> MetricsLayer {
        MetricsLayer {
            metrics: self.clone(),
            endpoints: Arc::default(),
        }
    }

    /// The registry's exposition in `format`, as `GET /metrics` answers it.
    pub fn encode(&self, format: Format) -> Result<String, fmt::Error> {
        let mut text = String::new();
        match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(
                    &mut text,
                    &self.shared.registry,
                )?;
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut text, &self.shared.registry)?;
            }
        }
        Ok(text)
    }

    /// The answer to `GET /metrics` with these request headers.
    fn exposition<B>(&self, headers: &HeaderMap) -> Response<MetricsBody<B>> {
        let accept = headers
            .get(header::ACCEPT)
            .and_then(|value| value.to_str().ok());
        let format = Format::negotiate(accept);
        let (status, content_type, text) = match self.encode(format) {
            Ok(text) => (StatusCode::OK, format.content_type(), text),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                "encoding the metrics failed\n".to_owned(),
            ),
        };
        let mut response = Response::new(MetricsBody::text(Bytes::from(text)));
        *response.status_mut() = status;
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        response
    }

    /// Starts recording a request, unless it is not gRPC or its service is skipped.
    fn start<B>(&self, request: &Request<B>) -> Option<CallGuard> {
        if !is_grpc(request.headers()) {
            return None;
        }
        let method = self.method(request.uri().path())?;
        method.started.inc();
        let started = Instant::now();
        let deadline = request
            .headers()
            .get("grpc-timeout")
            .and_then(parse_grpc_timeout)
            .and_then(|timeout| started.checked_add(timeout));
        Some(CallGuard {
            method,
            started,
            deadline,
            finished: false,
        })
    }

    /// The metrics of the method at `path`; `None` for a skipped service.
    fn method(&self, path: &str) -> Option<Arc<MethodMetrics>> {
        let Some((service, method)) = split_path(path) else {
            return Some(self.overflow());
        };
        if SKIPPED_SERVICES.contains(&service) {
            return None;
        }
        let methods = self.shared.methods.load();
        if let Some(known) = methods.get(path) {
            return Some(known.clone());
        }
        if methods.len() >= MAX_METHODS {
            return Some(self.overflow());
        }
        drop(methods);
        Some(self.add_method(path, service, method))
    }

    /// A method's first call: its series are created and the map is replaced by a copy with it.
    fn add_method(&self, path: &str, service: &str, method: &str) -> Arc<MethodMetrics> {
        let _adding = self
            .shared
            .adding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let current = self.shared.methods.load_full();
        if let Some(known) = current.get(path) {
            return known.clone();
        }
        if current.len() >= MAX_METHODS {
            return self.overflow();
        }
        let metrics = Arc::new(MethodMetrics::new(&self.shared, service, method));
        let mut next = HashMap::clone(&current);
        next.insert(path.into(), metrics.clone());
        self.shared.methods.store(Arc::new(next));
        metrics
    }

    fn overflow(&self) -> Arc<MethodMetrics> {
        self.shared
            .overflow
            .get_or_init(|| {
                Arc::new(MethodMetrics::new(
                    &self.shared,
                    OVERFLOW_LABEL,
                    OVERFLOW_LABEL,
                ))
            })
            .clone()
    }
}

impl fmt::Debug for ServerMetrics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerMetrics")
            .field("version", &self.shared.version)
            .field("methods", &self.shared.methods.load().len())
            .finish_non_exhaustive()
    }
}

/// The registry name of a counter whose samples are `name`.
fn counter_family(name: &str) -> &str {
    name.strip_suffix("_total").unwrap_or(name)
}

/// `/package.Service/Method` as (`package.Service`, `Method`).
fn split_path(path: &str) -> Option<(&str, &str)> {
    let (service, method) = path.strip_prefix('/')?.split_once('/')?;
    (!service.is_empty() && !method.is_empty() && !method.contains('/'))
        .then_some((service, method))
}

/// `application/grpc`, optionally with a `+codec` suffix or parameters; not gRPC-Web, whose
/// status travels in the body where this layer does not look.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.as_bytes().strip_prefix(b"application/grpc"))
        .is_some_and(|rest| matches!(rest.first(), None | Some(b'+' | b';')))
}

/// A `grpc-timeout` header: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_grpc_timeout(value: &HeaderValue) -> Option<Duration> {
    let bytes = value.as_bytes();
    let (&unit, digits) = bytes.split_last()?;
    if digits.is_empty() || digits.len() > 8 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let amount: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(match unit {
        b'H' => Duration::from_secs(amount * 3600),
        b'M' => Duration::from_secs(amount * 60),
        b'S' => Duration::from_secs(amount),
        b'm' => Duration::from_millis(amount),
        b'u' => Duration::from_micros(amount),
        b'n' => Duration::from_nanos(amount),
        _ => return None,
    })
}

/// The gRPC status codes' canonical names, indexed by code.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// A gRPC status code, as an index into [`CODE_NAMES`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Code(usize);

impl Code {
    const CANCELLED: Code = Code(1);
    const UNKNOWN: Code = Code(2);
    const DEADLINE_EXCEEDED: Code = Code(4);
    const PERMISSION_DENIED: Code = Code(7);
    const UNIMPLEMENTED: Code = Code(12);
    const INTERNAL: Code = Code(13);
    const UNAVAILABLE: Code = Code(14);
    const UNAUTHENTICATED: Code = Code(16);

    /// A `grpc-status` value; clients read codes they do not know as UNKNOWN, and so does this.
    fn from_header(value: &HeaderValue) -> Code {
        std::str::from_utf8(value.as_bytes())
            .ok()
            .and_then(|text| text.parse::<usize>().ok())
            .filter(|&code| code < CODE_NAMES.len())
            .map_or(Code::UNKNOWN, Code)
    }

    /// The code a client reads from a response without `grpc-status`, by the gRPC spec's
    /// HTTP-to-gRPC status mapping.
    fn from_http(status: StatusCode) -> Code {
        match status.as_u16() {
            400 => Code::INTERNAL,
            401 => Code::UNAUTHENTICATED,
            403 => Code::PERMISSION_DENIED,
            404 => Code::UNIMPLEMENTED,
            429 | 502..=504 => Code::UNAVAILABLE,
            _ => Code::UNKNOWN,
        }
    }

    fn name(self) -> &'static str {
        CODE_NAMES[self.0]
    }
}

/// The status of a trailers-only response (or a non-gRPC error response), known from its
/// headers; `None` when the status is still to come in the trailers.
fn status_in_headers<B>(response: &Response<B>) -> Option<Code> {
    if let Some(status) = response.headers().get("grpc-status") {
        return Some(Code::from_header(status));
    }
    (response.status() != StatusCode::OK).then(|| Code::from_http(response.status()))
}

/// One method's series, created on its first call and then shared by all its calls.
struct MethodMetrics {
    service: Arc<str>,
    method: Arc<str>,
    version: Arc<str>,
    started: Counter,
    seconds: Histogram,
    handled_family: Family<CodeLabels, Counter>,
    // A series per code the method has answered with; most methods only ever see a few codes.
    handled: [OnceLock<Counter>; CODE_NAMES.len()],
}

impl MethodMetrics {
    fn new(shared: &Shared, service: &str, method: &str) -> Self {
        let labels = MethodLabels {
            grpc_service: service.into(),
            grpc_method: method.into(),
            version: shared.version.clone(),
        };
        Self {
            started: shared.started.get_or_create_owned(&labels),
            seconds: shared.handling.get_or_create_owned(&labels),
            handled_family: shared.handled.clone(),
            handled: Default::default(),
            service: labels.grpc_service,
            method: labels.grpc_method,
            version: labels.version,
        }
    }

    fn handled(&self, code: Code) -> &Counter {
        self.handled[code.0].get_or_init(|| {
            self.handled_family.get_or_create_owned(&CodeLabels {
                grpc_service: self.service.clone(),
                grpc_method: self.method.clone(),
                grpc_code: code.name(),
                version: self.version.clone(),
            })
        })
    }
}

/// A call being recorded. Recorded once: by `finish`, or when dropped unfinished (the response
/// or its body was dropped before the status was sent).
struct CallGuard {
    method: Arc<MethodMetrics>,
    started: Instant,
    deadline: Option<Instant>,
    finished: bool,
}

impl CallGuard {
    fn finish(&mut self, code: Code) {
        if std::mem::replace(&mut self.finished, true) {
            return;
        }
        self.method
            .seconds
            .observe(self.started.elapsed().as_secs_f64());
        self.method.handled(code).inc();
    }
}

/// How close to its deadline a dropped call counts as past it: tonic's own grpc-timeout timer,
/// which drops the call, starts a few microseconds apart from this layer's clock.
const DEADLINE_SLACK: Duration = Duration::from_millis(1);

impl Drop for CallGuard {
    fn drop(&mut self) {
        let code = match self.deadline {
            Some(deadline) if Instant::now() + DEADLINE_SLACK >= deadline => {
                Code::DEADLINE_EXCEEDED
            }
            _ => Code::CANCELLED,
        };
        self.finish(code);
    }
}

impl fmt::Debug for CallGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallGuard")
            .field("service", &self.method.service)
            .field("method", &self.method.method)
            .field("started", &self.started)
            .field("finished", &self.finished)
            .finish()
    }
}

mod layer;

pub use layer::{EndpointFuture, MetricsBody, MetricsLayer, MetricsService, ResponseFuture};

#[cfg(test)]
mod tests;
