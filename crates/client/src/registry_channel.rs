//! A channel to the version registry that fails over between its replicas.
//!
//! Every Flotilla process that talks to the registry (an instance keeping its lease, a fleet
//! client following endpoint sets, the orchestrator) takes the registry as a comma-separated list
//! of URLs, e.g. `http://registry-a:50051,http://registry-b:50051`. Calls go to one replica at a
//! time, the first of the list to begin with. When a call to it fails in the transport (refused,
//! reset, no connection within the connect timeout, no answer within the request timeout) or is
//! answered UNAVAILABLE before any message (a draining or storeless replica), the next call goes
//! to the next replica. A call that no connection took (refused, unresolvable, no connection
//! within the connect timeout) is sent on to the next replica at once, since no replica saw it;
//! one that a replica may have seen is not replayed (a write could apply twice) and reaches the
//! caller as UNAVAILABLE, which every caller of the registry retries on its own schedule (lease
//! heartbeats, endpoint watches, the orchestrator's controller tick).
//!
//! tonic's `Channel::balance_list` is not used: it keeps picking an endpoint that refuses
//! connections, so a dead replica fails a share of calls for as long as it is down.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tonic::{
    body::Body,
    transport::{Channel, Endpoint},
};
use tower::Service;

use crate::{BoxError, error::with_causes};

/// The `grpc-status` of a trailers-only UNAVAILABLE answer.
const UNAVAILABLE: &str = "14";

type CallFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

/// A registry URL list that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum RegistryUrlError {
    #[error("no registry URL given (expected one or more, separated by commas)")]
    Empty,
    #[error("{url:?} is not a registry URL: {source}")]
    Invalid {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
}

/// A cloneable channel to one of several registry replicas; any tonic-generated client takes it
/// (`RegistryClient<RegistryChannel>`). Nothing is dialled until the first call. For unary and
/// server-streaming methods only (all the registry has): request bodies are buffered whole so
/// that a call can be sent again, which a client stream would never let finish.
#[derive(Debug, Clone)]
pub struct RegistryChannel {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    replicas: Vec<Replica>,
    /// Index into `replicas` of the one calls go to.
    current: AtomicUsize,
}

#[derive(Debug)]
struct Replica {
    url: String,
    channel: Channel,
}

impl RegistryChannel {
    /// A channel to the replicas in `urls` (comma-separated, in order of preference). `configure`
    /// sets each replica's endpoint up (timeouts, keep-alive); each connects lazily and again
    /// after failures.
    pub fn new(
        urls: &str,
        configure: impl Fn(Endpoint) -> Endpoint,
    ) -> Result<Self, RegistryUrlError> {
        let replicas = split_urls(urls)
            .map(|url| {
                let endpoint = Endpoint::from_shared(url.to_owned()).map_err(|source| {
                    RegistryUrlError::Invalid {
                        url: url.to_owned(),
                        source,
                    }
                })?;
                Ok(Replica {
                    url: url.to_owned(),
                    channel: configure(endpoint).connect_lazy(),
                })
            })
            .collect::<Result<Vec<_>, RegistryUrlError>>()?;
        if replicas.is_empty() {
            return Err(RegistryUrlError::Empty);
        }
        Ok(Self {
            shared: Arc::new(Shared {
                replicas,
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// The URL of the replica calls go to now.
    pub fn current_url(&self) -> &str {
        &self.shared.replicas[self.shared.current.load(Ordering::Relaxed)].url
    }

    /// How many replicas the channel knows.
    pub fn replicas(&self) -> usize {
        self.shared.replicas.len()
    }

    /// Every replica's URL, comma-separated, as given.
    pub fn urls(&self) -> String {
        let urls: Vec<&str> = self
            .shared
            .replicas
            .iter()
            .map(|r| r.url.as_str())
            .collect();
        urls.join(",")
    }
}

impl RegistryChannel {
    /// The index of the replica calls go to now, for [`Self::fail_over`].
    pub(crate) fn current_index(&self) -> usize {
        self.shared.current.load(Ordering::Acquire)
    }

    /// Moves calls on from replica `failed` (a caller gave up on it), unless already moved.
    pub(crate) fn fail_over(&self, failed: usize, reason: &dyn std::fmt::Display) {
        self.shared.fail_over(failed, reason);
    }
}

impl Shared {
    /// Moves calls on from replica `failed` to the next one, unless another call already has.
    fn fail_over(&self, failed: usize, reason: &dyn std::fmt::Display) {
        let next = (failed + 1) % self.replicas.len();
        if next != failed
            && self
                .current
                .compare_exchange(failed, next, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                from = %self.replicas[failed].url,
                to = %self.replicas[next].url,
                %reason,
                "registry replica failed; using the next one"
            );
        }
    }
}

/// The URLs of a comma-separated list, trimmed, empty entries left out.
pub(crate) fn split_urls(urls: &str) -> impl Iterator<Item = &str> {
    urls.split(',').map(str::trim).filter(|url| !url.is_empty())
}

impl Service<http::Request<Body>> for RegistryChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = CallFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Readiness is the chosen replica's, awaited in `call`: the choice is made per call.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The registry's server span continues the caller's trace.
        flotilla_telemetry::propagation::inject_current(request.headers_mut());
        let shared = Arc::clone(&self.shared);
        Box::pin(async move {
            // Buffered, so that a call no replica connection took can go to the next replica.
            // Every registry method takes a single request message (none streams from the
            // client), so the body is one small frame.
            let (parts, body) = request.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let mut attempts = 0;
            loop {
                let index = shared.current.load(Ordering::Acquire);
                let mut channel = shared.replicas[index].channel.clone();
                let request = rebuild(&parts, bytes.clone());
                let answer = async {
                    std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
                    channel.call(request).await
                }
                .await;
                attempts += 1;
                match answer {
                    Err(error) => {
                        let reason =
                            with_causes(&error.to_string(), std::error::Error::source(&error));
                        shared.fail_over(index, &reason);
                        // No connection took the call, so no replica saw it: the next may.
                        if never_sent(&error) && attempts < shared.replicas.len() {
                            continue;
                        }
                        // UNAVAILABLE, whatever broke: tonic would make a timeout CANCELLED and
                        // a broken connection UNKNOWN, and callers of the registry retry
                        // UNAVAILABLE only.
                        let url = &shared.replicas[index].url;
                        let status =
                            tonic::Status::unavailable(format!("registry {url}: {reason}"));
                        return Err(Box::new(status) as BoxError);
                    }
                    Ok(response) => {
                        if response
                            .headers()
                            .get("grpc-status")
                            .is_some_and(|status| status == UNAVAILABLE)
                        {
                            // The replica saw the call: it is the caller's to retry, not ours.
                            let reason = response
                                .headers()
                                .get("grpc-message")
                                .and_then(|m| m.to_str().ok())
                                .unwrap_or("UNAVAILABLE");
                            shared.fail_over(index, &reason);
                        }
                        return Ok(response);
                    }
                }
            }
        })
    }
}

/// A copy of a buffered request.
fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

/// Whether the call failed before any connection took it (refused, unresolvable, timed out
/// connecting): tonic marks those errors with [`tonic::ConnectError`].
fn never_sent(error: &tonic::transport::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(cause) = source {
        if cause.is::<tonic::ConnectError>() {
            return true;
        }
        source = cause.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_split_on_commas_and_trimmed() {
        let urls: Vec<&str> = split_urls(" http://a:1 ,http://b:2,, ").collect();
        assert_eq!(urls, ["http://a:1", "http://b:2"]);
    }

    #[tokio::test]
    async fn an_empty_list_is_refused() {
        assert!(matches!(
            RegistryChannel::new(" , ", |e| e),
            Err(RegistryUrlError::Empty)
        ));
    }

    #[tokio::test]
    async fn a_bad_url_is_named() {
        let error = RegistryChannel::new("http://a:1,not a url", |e| e).unwrap_err();
        assert!(error.to_string().contains("\"not a url\""), "{error}");
    }

    #[tokio::test]
    async fn failing_over_moves_to_the_next_replica_once_and_wraps_around() {
        let channel = RegistryChannel::new("http://a:1,http://b:2", |e| e).unwrap();
        assert_eq!(channel.current_url(), "http://a:1");
        channel.fail_over(0, &"refused");
        // A second failure reported against the replica already left behind changes nothing.
        channel.fail_over(0, &"refused");
        assert_eq!(channel.current_url(), "http://b:2");
        assert_eq!(channel.current_index(), 1);
        channel.fail_over(1, &"refused");
        assert_eq!(channel.current_url(), "http://a:1");
        assert_eq!(channel.urls(), "http://a:1,http://b:2");
    }
}
