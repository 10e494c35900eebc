//! The tower layer that records every call and answers `GET /metrics` (and other GET
//! endpoints a server adds) on the gRPC port.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{Method, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tower::{Layer, Service};

use super::{CallGuard, Code, METRICS_PATH, ServerMetrics, status_in_headers};

/// The answer of an [endpoint](MetricsLayer::endpoint): a complete response, built when asked.
pub type EndpointFuture = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

type EndpointHandler = Arc<dyn Fn() -> EndpointFuture + Send + Sync>;

/// The layer of [`ServerMetrics::layer`].
#[derive(Clone)]
pub struct MetricsLayer {
    pub(super) metrics: ServerMetrics,
    pub(super) endpoints: Arc<Vec<(&'static str, EndpointHandler)>>,
}

impl MetricsLayer {
    /// Answers `GET path` (HTTP/1.1, next to `/metrics`) with what `handler` builds, so that a
    /// server can offer other plain HTTP reads — the registry's Prometheus service discovery —
    /// on its gRPC port without a listener of its own.
    pub fn endpoint<F, Fut>(mut self, path: &'static str, handler: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Bytes>> + Send + 'static,
    {
        let handler: EndpointHandler = Arc::new(move || Box::pin(handler()));
        let mut endpoints = Vec::clone(&self.endpoints);
        endpoints.retain(|(known, _)| *known != path);
        endpoints.push((path, handler));
        self.endpoints = Arc::new(endpoints);
        self
    }
}

impl fmt::Debug for MetricsLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsLayer")
            .field("metrics", &self.metrics)
            .field(
                "endpoints",
                &self.endpoints.iter().map(|(p, _)| p).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            metrics: self.metrics.clone(),
            endpoints: self.endpoints.clone(),
        }
    }
}

/// The service [`MetricsLayer`] wraps around a server's routes.
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    metrics: ServerMetrics,
    endpoints: Arc<Vec<(&'static str, EndpointHandler)>>,
}

impl<S: fmt::Debug> fmt::Debug for MetricsService<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsService")
            .field("inner", &self.inner)
            .field("metrics", &self.metrics)
            .finish_non_exhaustive()
    }
}

impl<S, RequestBody, ResponseBody> Service<Request<RequestBody>> for MetricsService<S>
where
    S: Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: Body<Data = Bytes>,
{
    type Response = Response<MetricsBody<ResponseBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, ResponseBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        if request.method() == Method::GET && request.uri().path() == METRICS_PATH {
            return ResponseFuture {
                kind: FutureKind::Answered {
                    response: Some(self.metrics.exposition(request.headers())),
                },
            };
        }
        if request.method() == Method::GET
            && let Some((_, handler)) = self
                .endpoints
                .iter()
                .find(|(path, _)| *path == request.uri().path())
        {
            return ResponseFuture {
                kind: FutureKind::Endpoint { future: handler() },
            };
        }
        let guard = self.metrics.start(&request);
        ResponseFuture {
            kind: FutureKind::Call {
                inner: self.inner.call(request),
                guard,
            },
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`MetricsService`].
    pub struct ResponseFuture<F, B> {
        #[pin]
        kind: FutureKind<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = FutureKindProjection]
    enum FutureKind<F, B> {
        Answered { response: Option<Response<MetricsBody<B>>> },
        Endpoint { future: EndpointFuture },
        Call {
            #[pin]
            inner: F,
            guard: Option<CallGuard>,
        },
    }
}

impl<F, B> fmt::Debug for ResponseFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for ResponseFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<MetricsBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            FutureKindProjection::Answered { response } => Poll::Ready(Ok(response
                .take()
                .expect("ResponseFuture polled after it completed"))),
            FutureKindProjection::Endpoint { future } => {
                let response = ready!(future.as_mut().poll(cx));
                Poll::Ready(Ok(response.map(MetricsBody::text)))
            }
            FutureKindProjection::Call { inner, guard } => {
                let response = match ready!(inner.poll(cx)) {
                    Ok(response) => response,
                    Err(error) => {
                        // tonic turns a service error into a status with code UNKNOWN.
                        if let Some(mut guard) = guard.take() {
                            guard.finish(Code::UNKNOWN);
                        }
                        return Poll::Ready(Err(error));
                    }
                };
                let guard = guard.take().and_then(|mut guard| {
                    if let Some(code) = status_in_headers(&response) {
                        guard.finish(code);
                        None
                    } else if response.body().is_end_stream() {
                        // A gRPC response without a status anywhere; clients read UNKNOWN.
                        guard.finish(Code::UNKNOWN);
                        None
                    } else {
                        Some(guard)
                    }
                });
                Poll::Ready(Ok(response.map(|body| MetricsBody::observed(body, guard))))
            }
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body of [`MetricsService`]: the exposition, or the inner body, watched for
    /// its trailers when the call's status is still to come.
    pub struct MetricsBody<B> {
        #[pin]
        kind: BodyKind<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = BodyKindProjection]
    enum BodyKind<B> {
        Text { text: Option<Bytes> },
        Observed {
            #[pin]
            inner: B,
            guard: Option<CallGuard>,
        },
    }
}

impl<B> MetricsBody<B> {
    pub(super) fn text(text: Bytes) -> Self {
        Self {
            kind: BodyKind::Text { text: Some(text) },
        }
    }

    fn observed(inner: B, guard: Option<CallGuard>) -> Self {
        Self {
            kind: BodyKind::Observed { inner, guard },
        }
    }
}

impl<B> fmt::Debug for MetricsBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricsBody").finish_non_exhaustive()
    }
}

impl<B> Body for MetricsBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        match self.project().kind.project() {
            BodyKindProjection::Text { text } => {
                Poll::Ready(text.take().map(|text| Ok(Frame::data(text))))
            }
            BodyKindProjection::Observed { mut inner, guard } => {
                let frame = ready!(inner.as_mut().poll_frame(cx));
                if guard.is_some() {
                    let code = match &frame {
                        Some(Ok(frame)) => match frame.trailers_ref() {
                            Some(trailers) => Some(
                                trailers
                                    .get("grpc-status")
                                    .map_or(Code::UNKNOWN, Code::from_header),
                            ),
                            // hyper stops polling a body that says it has ended, so a body
                            // ending without trailers is caught here, not at `None`.
                            None if inner.is_end_stream() => Some(Code::UNKNOWN),
                            None => None,
                        },
                        // hyper resets the stream, which a client reads as INTERNAL.
                        Some(Err(_)) => Some(Code::INTERNAL),
                        None => Some(Code::UNKNOWN),
                    };
                    if let Some(code) = code
                        && let Some(mut call) = guard.take()
                    {
                        call.finish(code);
                    }
                }
                Poll::Ready(frame)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            BodyKind::Text { text } => text.is_none(),
            BodyKind::Observed { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            BodyKind::Text { text } => {
                SizeHint::with_exact(text.as_ref().map_or(0, |text| text.len() as u64))
            }
            BodyKind::Observed { inner, .. } => inner.size_hint(),
        }
    }
}
