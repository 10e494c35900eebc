//! The response future of a fleet channel: one attempt, polled in place; and, only when that
//! attempt of an idempotent call fails, the retries on other instances.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use pin_project_lite::pin_project;
use tonic::{body::Body, transport::Channel};
use tower::Service;

use crate::{
    body::{Collector, Head},
    fleet::{Conn, Fleet},
};

/// The error type of [`crate::FleetChannel`]: a `tonic::Status` (nothing to call), or the
/// transport error of the last attempt. tonic's clients turn either into a `Status`.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

type Response = http::Response<Body>;
type ChannelFuture = <Channel as Service<http::Request<Body>>>::Future;
type BoxFuture = Pin<Box<dyn Future<Output = Result<Response, BoxError>> + Send>>;

/// The `grpc-status` of UNAVAILABLE, as a server puts it in the headers of a trailers-only
/// response: the only UNAVAILABLE a retry can act on before any of the response is read.
const GRPC_STATUS_UNAVAILABLE: &[u8] = b"14";

pin_project! {
    /// The response future of [`crate::FleetChannel`].
    pub struct ResponseFuture {
        #[pin]
        state: State,
    }
}

pin_project! {
    #[project = StateProj]
    enum State {
        // A call that is not retried: the instance's future, and whom to blame if it fails.
        Once {
            #[pin]
            inner: ChannelFuture,
            conn: Arc<Conn>,
        },
        // The first attempt of a retryable call, with what a retry needs.
        First {
            #[pin]
            inner: ChannelFuture,
            conn: Arc<Conn>,
            retry: Option<Retry>,
        },
        // Retries (or a call that could not start in place), boxed: they are rare.
        Boxed {
            inner: BoxFuture,
        },
        Failed {
            error: Option<BoxError>,
        },
    }
}

/// What a retry needs: the request head and the buffered body.
#[derive(Debug)]
pub(crate) struct Retry {
    pub head: Head,
    pub body: Bytes,
}

impl ResponseFuture {
    pub(crate) fn once(inner: ChannelFuture, conn: Arc<Conn>) -> Self {
        Self {
            state: State::Once { inner, conn },
        }
    }

    pub(crate) fn first(inner: ChannelFuture, conn: Arc<Conn>, retry: Retry) -> Self {
        Self {
            state: State::First {
                inner,
                conn,
                retry: Some(retry),
            },
        }
    }

    pub(crate) fn boxed(
        inner: impl Future<Output = Result<Response, BoxError>> + Send + 'static,
    ) -> Self {
        Self {
            state: State::Boxed {
                inner: Box::pin(inner),
            },
        }
    }

    pub(crate) fn failed(error: impl Into<BoxError>) -> Self {
        Self {
            state: State::Failed {
                error: Some(error.into()),
            },
        }
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        loop {
            let retries = match state.as_mut().project() {
                StateProj::Once { inner, conn } => {
                    return Poll::Ready(ready!(inner.poll(cx)).map_err(|error| {
                        conn.call_failed();
                        error.into()
                    }));
                }
                StateProj::Boxed { inner } => return inner.as_mut().poll(cx),
                StateProj::Failed { error } => {
                    return Poll::Ready(Err(error
                        .take()
                        .expect("ResponseFuture polled after completion")));
                }
                StateProj::First { inner, conn, retry } => {
                    let outcome = ready!(inner.poll(cx));
                    let retryable = match &outcome {
                        Err(_) => {
                            conn.call_failed();
                            true
                        }
                        Ok(response) => is_unavailable(response),
                    };
                    let fleet = conn.fleet();
                    match (retryable, fleet) {
                        (true, Some(fleet)) => {
                            let Retry { head, body } = retry
                                .take()
                                .expect("ResponseFuture polled after completion");
                            call_with_retries(fleet, head, body, vec![conn.clone()])
                        }
                        _ => return Poll::Ready(outcome.map_err(Into::into)),
                    }
                }
            };
            state.set(State::Boxed {
                inner: Box::pin(retries),
            });
        }
    }
}

impl fmt::Debug for ResponseFuture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

/// A call made without a preceding `poll_ready`, or whose first attempt could not start in
/// place: picks, and for idempotent calls buffers the body and retries, all inside the future.
pub(crate) async fn call_later(
    fleet: Arc<Fleet>,
    request: http::Request<Body>,
    idempotent: bool,
    tried: Vec<Arc<Conn>>,
) -> Result<Response, BoxError> {
    if !idempotent {
        let conn = fleet.pick(&[])?;
        return attempt(&conn, request).await;
    }
    let (parts, body) = request.into_parts();
    let body = Collector::default().collect(body).await?;
    call_with_retries(fleet, parts.into(), body, tried).await
}

/// Sends the call until `1 + max_retries` attempts in all (counting `tried`, those already
/// made), each time to an instance not tried yet when there is one. Retries on errors before a
/// response (the instance could not be reached, or its connection broke) and on UNAVAILABLE.
pub(crate) async fn call_with_retries(
    fleet: Arc<Fleet>,
    head: Head,
    body: Bytes,
    mut tried: Vec<Arc<Conn>>,
) -> Result<Response, BoxError> {
    loop {
        let conn = fleet.pick(&tried)?;
        let last = tried.len() >= fleet.max_retries as usize;
        match attempt(&conn, head.request(body.clone())).await {
            Ok(response) if !last && is_unavailable(&response) => {
                tracing::debug!(address = %conn.address, path = %head.path(), "UNAVAILABLE; retrying elsewhere");
            }
            Err(error) if !last => {
                tracing::debug!(address = %conn.address, path = %head.path(), %error, "unreachable; retrying elsewhere");
            }
            outcome => return outcome,
        }
        tried.push(conn);
    }
}

/// One attempt on a connection of its own. An error here came before any response: the
/// instance could not be reached or its connection broke.
async fn attempt(conn: &Conn, request: http::Request<Body>) -> Result<Response, BoxError> {
    let mut channel = conn.channel.clone();
    let sent = async {
        std::future::poll_fn(|cx| channel.poll_ready(cx)).await?;
        channel.call(request).await
    }
    .await;
    sent.map_err(|error| {
        conn.call_failed();
        error.into()
    })
}

fn is_unavailable(response: &Response) -> bool {
    response
        .headers()
        .get("grpc-status")
        .is_some_and(|status| status.as_bytes() == GRPC_STATUS_UNAVAILABLE)
}
