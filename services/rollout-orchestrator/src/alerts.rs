//! Rollout events delivered to webhooks: JSON over HTTP POST, signed, retried, in order, and never
//! in the way of the rollout.
//!
//! The events of every rollout this orchestrator carries out (its controllers' and operators'
//! commands) are read from the store as it announces their changes ([`follow`]) and handed to
//! [`Alerts::notify`], which only queues them: one task per webhook sends them one at a time, in
//! the order they happened, retrying each with exponential backoff until the receiver takes it or
//! [`WebhookSettings::retry_for`] has passed. So a receiver that is down for a while gets every
//! event once it is back, in order; a rollout never waits for one.
//!
//! A request carries:
//! - `Content-Type: application/json`, the body described in docs/orchestrator.md (`id`, `type`, `time`,
//!   `rollout`, `event`);
//! - `Flotilla-Event-Id: <rollout id>:<sequence>`: the same on every retry, for deduplication;
//! - `Flotilla-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the
//!   secret>`, as Stripe signs its webhooks: the receiver recomputes it, and refuses a stale `t`
//!   to stop replays ([`verify_signature`] does both).
//!
//! A 2xx answer is delivered. A connection failure, a timeout, 408, 429 and 5xx are retried; any
//! other answer (400, 401, 404, …) means the receiver will never take it, so it fails at once.
//! Failures are logged and counted ([`crate::metrics`]). Events queued in memory are lost if the
//! orchestrator stops before sending them; an orchestrator that takes a rollout over sends the
//! events from its takeover on.

use std::{
    fmt,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU16, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use flotilla_model::{EventKind, Rollout, RolloutEvent};
use hmac::{Hmac, Mac};
use http::{Request, StatusCode, Uri, header, uri::Authority};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde_json::json;
use sha2::Sha256;
use tokio::{net::TcpStream, sync::mpsc};

use crate::metrics::{DeliveryOutcome, OrchestratorMetrics};

mod follow;

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "flotilla-signature";
/// The header carrying the event's id.
pub const EVENT_ID_HEADER: &str = "flotilla-event-id";
/// Events waiting for one webhook, beyond which new ones are dropped (and counted).
pub const QUEUE_CAPACITY: usize = 10_000;
/// The first retry's delay; each further one doubles, up to [`MAX_BACKOFF`] (or the
/// configured maximum).
pub const FIRST_BACKOFF: Duration = Duration::from_millis(200);
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How much of a receiver's answer is read, and for how long, once its status has decided the
/// delivery: only so that the connection ends cleanly.
const ANSWER_DRAIN_BYTES: usize = 64 * 1024;
const ANSWER_DRAIN_TIME: Duration = Duration::from_millis(500);
/// The events sent when no list is configured: what an operator wants to hear of, without the
/// chatter of every instance and analysis interval.
pub const DEFAULT_EVENTS: [EventKind; 9] = [
    EventKind::Started,
    EventKind::StepCompleted,
    EventKind::Paused,
    EventKind::Resumed,
    EventKind::Promoted,
    EventKind::Halted,
    EventKind::AbortRequested,
    EventKind::Aborted,
    EventKind::Succeeded,
];

#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook URL {url:?}: {reason}")]
    Url { url: String, reason: String },
    #[error("webhooks need a signing secret (--webhook-secret or FLOTILLA_WEBHOOK_SECRET)")]
    NoSecret,
    #[error("webhook event kind {0:?} is not one of {kinds}", kinds = all_kinds())]
    Kind(String),
}

fn all_kinds() -> String {
    EVENT_KINDS.map(EventKind::as_str).join(", ")
}

const EVENT_KINDS: [EventKind; 16] = [
    EventKind::Started,
    EventKind::StepStarted,
    EventKind::StepCompleted,
    EventKind::InstanceStarted,
    EventKind::InstanceReady,
    EventKind::InstanceStopped,
    EventKind::WeightsSet,
    EventKind::Analysis,
    EventKind::Paused,
    EventKind::Resumed,
    EventKind::Promoted,
    EventKind::Halted,
    EventKind::AbortRequested,
    EventKind::Aborted,
    EventKind::Succeeded,
    EventKind::OwnerChanged,
];

/// Parses the `--webhook-events` list: kinds separated by commas, or `all`.
pub fn parse_event_kinds(text: &str) -> Result<Vec<EventKind>, WebhookConfigError> {
    if text.trim().eq_ignore_ascii_case("all") {
        return Ok(EVENT_KINDS.to_vec());
    }
    text.split(',')
        .map(str::trim)
        .filter(|kind| !kind.is_empty())
        .map(|kind| {
            EVENT_KINDS
                .into_iter()
                .find(|k| k.as_str().eq_ignore_ascii_case(kind))
                .ok_or_else(|| WebhookConfigError::Kind(kind.to_owned()))
        })
        .collect()
}

/// Where and how events are delivered.
#[derive(Clone)]
pub struct WebhookSettings {
    pub urls: Vec<String>,
    pub secret: String,
    pub events: Vec<EventKind>,
    /// How long one event is retried before it is given up.
    pub retry_for: Duration,
    /// How long one attempt may take, connection included.
    pub attempt_timeout: Duration,
    /// The longest wait between two attempts ([`MAX_BACKOFF`] unless set lower).
    pub max_backoff: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("urls", &self.urls)
            .field("secret", &"<hidden>")
            .field("events", &self.events)
            .field("retry_for", &self.retry_for)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("max_backoff", &self.max_backoff)
            .finish()
    }
}

/// An `http://host:port/path` a webhook is posted to.
#[derive(Debug, Clone)]
struct Target {
    /// The URL without its query, which may hold a token: what logs and metrics name it by.
    label: String,
    authority: Authority,
    path: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, WebhookConfigError> {
        let invalid = |reason: &str| WebhookConfigError::Url {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("unparsable"))?;
        if uri.scheme_str() != Some("http") {
            return Err(invalid(
                "only http:// is supported (put a TLS-terminating proxy in front for https)",
            ));
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid(
                "user info is not supported; the signature authenticates",
            ));
        }
        let path = uri
            .path_and_query()
            .map_or_else(|| "/".to_owned(), ToString::to_string);
        Ok(Self {
            label: webhook_label(url),
            authority,
            path,
        })
    }
}

/// A webhook URL as logs and metrics show it: without its query string, which may hold a token.
pub fn webhook_label(url: &str) -> String {
    url.split_once('?')
        .map_or(url, |(before, _)| before)
        .to_owned()
}

struct Delivery {
    id: String,
    body: Bytes,
}

/// Queues rollout events for the configured webhooks; cloning shares the queues.
#[derive(Clone, Default)]
pub struct Alerts {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    events: Vec<EventKind>,
    /// Each webhook's label (its URL without the query) and queue.
    queues: Vec<(String, mpsc::Sender<Delivery>)>,
    metrics: OrchestratorMetrics,
    /// What the controllers tell the follower ([`follow`]), and its end of it until it starts.
    commands: mpsc::UnboundedSender<follow::Command>,
    follower: Mutex<Option<mpsc::UnboundedReceiver<follow::Command>>>,
}

impl fmt::Debug for Alerts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<&str> = self
            .inner
            .iter()
            .flat_map(|inner| inner.queues.iter().map(|(label, _)| label.as_str()))
            .collect();
        f.debug_struct("Alerts").field("webhooks", &urls).finish()
    }
}

impl Alerts {
    /// No webhooks: [`notify`](Self::notify) does nothing.
    pub fn disabled() -> Self {
        Self::default()
    }

    /// Checks the settings and starts one delivery task per webhook. The tasks end when every
    /// clone of the returned handle is dropped and their queues are empty or given up.
    pub fn start(
        settings: WebhookSettings,
        metrics: OrchestratorMetrics,
    ) -> Result<Self, WebhookConfigError> {
        if settings.urls.is_empty() {
            return Ok(Self::disabled());
        }
        if settings.secret.is_empty() {
            return Err(WebhookConfigError::NoSecret);
        }
        let targets = settings
            .urls
            .iter()
            .map(|url| Target::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        let key = Arc::<[u8]>::from(settings.secret.as_bytes());
        let queues = targets
            .into_iter()
            .map(|target| {
                let (sender, receiver) = mpsc::channel(QUEUE_CAPACITY);
                let label = target.label.clone();
                tokio::spawn(
                    Sender {
                        target,
                        key: key.clone(),
                        retry_for: settings.retry_for,
                        attempt_timeout: settings.attempt_timeout,
                        max_backoff: settings.max_backoff,
                        metrics: metrics.clone(),
                    }
                    .run(receiver),
                );
                (label, sender)
            })
            .collect();
        let (commands, follower) = mpsc::unbounded_channel();
        Ok(Self {
            inner: Some(Arc::new(Inner {
                events: settings.events,
                queues,
                metrics,
                commands,
                follower: Mutex::new(Some(follower)),
            })),
        })
    }

    fn commands(&self) -> Option<&mpsc::UnboundedSender<follow::Command>> {
        self.inner.as_ref().map(|inner| &inner.commands)
    }

    /// The follower's end of the commands; `None` without webhooks or once taken.
    fn take_commands(&self) -> Option<mpsc::UnboundedReceiver<follow::Command>> {
        self.inner
            .as_ref()?
            .follower
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether any webhook is configured.
    pub fn is_enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues `events` of `rollout` for every webhook; returns at once. An event that finds a
    /// webhook's queue full is dropped for that webhook, logged and counted.
    pub fn notify(&self, rollout: &Rollout, events: &[RolloutEvent]) {
        let Some(inner) = &self.inner else { return };
        for event in events.iter().filter(|e| inner.events.contains(&e.kind)) {
            let delivery_body = Bytes::from(payload(rollout, event).to_string());
            let id = event_id(rollout, event);
            for (url, queue) in &inner.queues {
                let delivery = Delivery {
                    id: id.clone(),
                    body: delivery_body.clone(),
                };
                if queue.try_send(delivery).is_err() {
                    tracing::warn!(webhook = %url, event = %id, "webhook queue full; event dropped");
                    inner.metrics.delivery(url, DeliveryOutcome::Dropped);
                }
            }
        }
    }
}

fn event_id(rollout: &Rollout, event: &RolloutEvent) -> String {
    format!("{}:{}", rollout.id, event.sequence)
}

/// The JSON body of one event: the event, and the rollout as it was when it was read.
pub fn payload(rollout: &Rollout, event: &RolloutEvent) -> serde_json::Value {
    let halt = event.halt.as_ref().map(|halt| {
        json!({
            "gate": halt.gate.as_str(),
            "message": halt.message,
            "figures": halt.figures.iter().map(|f| json!({
                "name": f.name,
                "version": f.version,
                "value": f.value,
                "threshold": f.threshold,
            })).collect::<Vec<_>>(),
            "query": halt.query,
            "time": halt.time.to_string(),
        })
    });
    json!({
        "id": event_id(rollout, event),
        "type": format!("rollout.{}", event.kind.as_str().to_ascii_lowercase()),
        "time": event.time.to_string(),
        "rollout": {
            "id": rollout.id.as_str(),
            "service": rollout.service.as_str(),
            "from_version": rollout.from_version.as_ref().map(ToString::to_string),
            "to_version": rollout.to_version.to_string(),
            "state": rollout.state.as_str(),
            "step_index": rollout.step_index,
            "steps": rollout.plan.len(),
            "status_message": rollout.status_message,
        },
        "event": {
            "sequence": event.sequence,
            "kind": event.kind.as_str(),
            "message": event.message,
            "step_index": event.step_index,
            "halt": halt,
        },
    })
}

/// The `Flotilla-Signature` value of `body` sent at `unix_seconds`.
pub fn sign(key: &[u8], unix_seconds: u64, body: &[u8]) -> String {
    format!(
        "t={unix_seconds},v1={}",
        hex::encode(mac(key, unix_seconds, body))
    )
}

fn mac(key: &[u8], unix_seconds: u64, body: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(unix_seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not \"t=<seconds>,v1=<hex>\"")]
    Malformed,
    #[error("the signature is {age_seconds} s old, more than the {tolerance_seconds} s allowed")]
    Stale {
        age_seconds: u64,
        tolerance_seconds: u64,
    },
    #[error("the signature does not match the body")]
    Mismatch,
}

/// What a receiver does with a request: checks `header` against `body` and the shared key, and
/// that it was signed within `tolerance` of `now_unix_seconds`. The comparison takes the same
/// time wherever the signatures differ.
pub fn verify_signature(
    key: &[u8],
    header: &str,
    body: &[u8],
    now_unix_seconds: u64,
    tolerance: Duration,
) -> Result<(), SignatureError> {
    let mut seconds = None;
    let mut signature = None;
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", value)) => seconds = value.parse::<u64>().ok(),
            Some(("v1", value)) => signature = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(seconds), Some(signature)) = (seconds, signature) else {
        return Err(SignatureError::Malformed);
    };
    let age_seconds = now_unix_seconds.abs_diff(seconds);
    if age_seconds > tolerance.as_secs() {
        return Err(SignatureError::Stale {
            age_seconds,
            tolerance_seconds: tolerance.as_secs(),
        });
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(seconds.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac.verify_slice(&signature)
        .map_err(|_| SignatureError::Mismatch)
}

/// One webhook's delivery task.
struct Sender {
    target: Target,
    key: Arc<[u8]>,
    retry_for: Duration,
    attempt_timeout: Duration,
    max_backoff: Duration,
    metrics: OrchestratorMetrics,
}

/// How one attempt ended.
enum Attempt {
    Delivered,
    Retry(String),
    Refused(String),
}

impl Sender {
    async fn run(self, mut queue: mpsc::Receiver<Delivery>) {
        while let Some(delivery) = queue.recv().await {
            let outcome = self.deliver(&delivery).await;
            self.metrics.delivery(&self.target.label, outcome);
        }
    }

    /// Sends one event until it is taken, refused, or its retries run out.
    async fn deliver(&self, delivery: &Delivery) -> DeliveryOutcome {
        let started = tokio::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            let attempt = tokio::time::timeout(self.attempt_timeout, self.attempt(delivery))
                .await
                .unwrap_or_else(|_| {
                    Attempt::Retry(format!("no answer within {:?}", self.attempt_timeout))
                });
            let reason = match attempt {
                Attempt::Delivered => {
                    if attempts > 1 {
                        tracing::info!(webhook = %self.target.label, event = %delivery.id, attempts, "webhook delivered after retries");
                    }
                    return DeliveryOutcome::Delivered;
                }
                Attempt::Refused(reason) => {
                    self.metrics.failed_attempt(&self.target.label);
                    tracing::error!(webhook = %self.target.label, event = %delivery.id, %reason, "webhook refused the event; not retried");
                    return DeliveryOutcome::Failed;
                }
                Attempt::Retry(reason) => reason,
            };
            self.metrics.failed_attempt(&self.target.label);
            if started.elapsed() + backoff > self.retry_for {
                tracing::error!(webhook = %self.target.label, event = %delivery.id, attempts, %reason, "webhook delivery given up");
                return DeliveryOutcome::Failed;
            }
            tracing::warn!(webhook = %self.target.label, event = %delivery.id, attempt = attempts, %reason, retry_in = ?backoff, "webhook delivery failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.max_backoff);
        }
    }

    async fn attempt(&self, delivery: &Delivery) -> Attempt {
        let authority = &self.target.authority;
        let host = authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = authority.port_u16().unwrap_or(80);
        let stream = match TcpStream::connect((host, port)).await {
            Ok(stream) => stream,
            Err(error) => return Attempt::Retry(format!("connecting to {authority}: {error}")),
        };
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) =
            match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await {
                Ok(handshake) => handshake,
                Err(error) => return Attempt::Retry(error.to_string()),
            };
        let unix_seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let request = Request::post(&self.target.path)
            .header(header::HOST, authority.as_str())
            .header(header::CONTENT_TYPE, "application/json")
            .header(
                header::USER_AGENT,
                concat!("flotilla-orchestrator/", env!("CARGO_PKG_VERSION")),
            )
            .header(EVENT_ID_HEADER, &delivery.id)
            .header(
                SIGNATURE_HEADER,
                sign(&self.key, unix_seconds, &delivery.body),
            )
            .body(Full::new(delivery.body.clone()));
        let request = match request {
            Ok(request) => request,
            Err(error) => return Attempt::Refused(format!("building the request: {error}")),
        };
        // The status decides as soon as the headers arrive: a slow or broken body after a 2xx
        // must not turn a delivered event into a retried (duplicated) one.
        let answered = AtomicU16::new(0);
        let exchange = async {
            let response = sender.send_request(request).await?;
            let status = response.status();
            answered.store(status.as_u16(), Ordering::Relaxed);
            let drain = Limited::new(response.into_body(), ANSWER_DRAIN_BYTES).collect();
            let _ = tokio::time::timeout(ANSWER_DRAIN_TIME, drain).await;
            Ok::<_, hyper::Error>(status)
        };
        let mut exchange = std::pin::pin!(exchange);
        let status = tokio::select! {
            status = &mut exchange => status,
            closed = connection => match closed {
                Ok(()) => exchange.await,
                Err(error) => Err(error),
            },
        };
        let status = match status {
            Ok(status) => Ok(status),
            Err(error) => StatusCode::from_u16(answered.load(Ordering::Relaxed)).map_err(|_| error),
        };
        match status {
            Ok(status) if status.is_success() => Attempt::Delivered,
            Ok(status) if retryable(status) => Attempt::Retry(format!("answered {status}")),
            Ok(status) => Attempt::Refused(format!("answered {status}")),
            Err(error) => Attempt::Retry(error.to_string()),
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
        || status == StatusCode::TOO_MANY_REQUESTS
}

#[cfg(test)]
mod tests;
