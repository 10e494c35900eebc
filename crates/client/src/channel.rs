//! [`FleetChannel`]: a tower service that tonic's generated clients accept, sending each call to
//! an instance picked by weight, and retrying idempotent calls elsewhere.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use tonic::body::Body;
use tower::Service;

use crate::{
    fleet::{Conn, Fleet},
    snapshot::Snapshot,
};

/// The error type of [`FleetChannel`]: a `tonic::Status` (nothing to call), or the transport
/// error of the last attempt. tonic's clients turn either into a `Status`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The `grpc-status` of UNAVAILABLE, as a server puts it in the headers of a trailers-only
/// response: the only UNAVAILABLE a retry can act on before any of the response is read.
const GRPC_STATUS_UNAVAILABLE: &[u8] = b"14";

/// A channel to every compatible instance of one service, for any tonic-generated client:
/// `GreeterClient::new(channel.clone())`. Cheap to clone; all clones share one endpoint table,
/// one connection per instance and the background tasks that keep them current, which stop
/// when the last clone is dropped.
///
/// Each call goes to a SERVING, healthy instance picked at random with probability proportional
/// to its version's weight divided by that version's number of such instances. Calls to
/// idempotent methods that fail with UNAVAILABLE, or cannot reach their instance, are retried on
/// another instance, at most `max_retries` times; their request body is buffered for that.
#[derive(Clone)]
pub struct FleetChannel {
    fleet: Arc<Fleet>,
}

impl FleetChannel {
    pub(crate) fn new(fleet: Arc<Fleet>) -> Self {
        Self { fleet }
    }

    /// The endpoints calls are balanced over now, with their shares and health.
    pub fn snapshot(&self) -> Snapshot {
        self.fleet.snapshot()
    }

    /// The service this channel calls.
    pub fn service(&self) -> &str {
        &self.fleet.service
    }
}

impl fmt::Debug for FleetChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetChannel")
            .field("fleet", &self.fleet)
            .finish()
    }
}

impl Service<http::Request<Body>> for FleetChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    /// Always ready: which instance takes a call is decided per call, and that instance's
    /// connection is waited for then.
    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let fleet = self.fleet.clone();
        let inner: BoxFuture = if fleet.is_idempotent(request.uri().path()) {
            Box::pin(call_with_retries(fleet, request))
        } else {
            // Not buffered: a non-idempotent call is never retried, so its body streams as is.
            Box::pin(call_once(fleet, request))
        };
        ResponseFuture { inner }
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = Result<http::Response<Body>, BoxError>> + Send>>;

/// The response future of [`FleetChannel`].
pub struct ResponseFuture {
    inner: BoxFuture,
}

impl Future for ResponseFuture {
    type Output = Result<http::Response<Body>, BoxError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

async fn call_once(
    fleet: Arc<Fleet>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let conn = fleet.pick(&[])?;
    attempt(&fleet, &conn, request).await
}

/// Sends the call up to `1 + max_retries` times, each time to an instance not tried yet when
/// there is one. Retries on errors before a response (the instance could not be reached, or its
/// connection broke) and on UNAVAILABLE; every header, `traceparent` and `tracestate` included,
/// is sent again as it was.
async fn call_with_retries(
    fleet: Arc<Fleet>,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let (parts, body) = request.into_parts();
    let body = body.collect().await?.to_bytes();
    let mut tried: Vec<Arc<Conn>> = Vec::new();
    loop {
        let conn = fleet.pick(&tried)?;
        let last = tried.len() >= fleet.max_retries as usize;
        match attempt(&fleet, &conn, rebuild(&parts, body.clone())).await {
            Ok(response) if !last && is_unavailable(&response) => {
                tracing::debug!(address = %conn.address, path = %parts.uri.path(), "UNAVAILABLE; retrying elsewhere");
            }
            Err(error) if !last => {
                tracing::debug!(address = %conn.address, path = %parts.uri.path(), %error, "unreachable; retrying elsewhere");
            }
            outcome => return outcome,
        }
        tried.push(conn);
    }
}

/// One attempt on one connection. An error here came before any response: the instance could
/// not be reached or its connection broke, so it gets no more calls until its health watcher
/// sees it back.
async fn attempt(
    fleet: &Fleet,
    conn: &Conn,
    request: http::Request<Body>,
) -> Result<http::Response<Body>, BoxError> {
    let mut channel = conn.channel.clone();
    let sent = async {
        std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
        channel.call(request).await
    }
    .await;
    sent.map_err(|error| {
        fleet.call_failed(conn);
        error.into()
    })
}

fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    *request.extensions_mut() = parts.extensions.clone();
    request
}

fn is_unavailable(response: &http::Response<Body>) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == GRPC_STATUS_UNAVAILABLE)
}
