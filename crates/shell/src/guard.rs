//! The last line around a server's routes: panics become INTERNAL for the one call that hit
//! them, and error replies are bounded (see [`crate::status`]).
//!
//! Without it, a panic in a handler kills the task hyper runs the call in, and the client sees
//! the stream reset (CANCELLED); a panic while a streaming response is produced does the same
//! mid-stream. The layer sits inside the trace layer, so the call's span — and its trace id —
//! is current when the panic is logged.

use std::{
    any::Any,
    fmt,
    future::Future,
    panic::{AssertUnwindSafe, catch_unwind},
    pin::Pin,
    task::{Context, Poll, ready},
};

use bytes::Bytes;
use http::{HeaderMap, Request, Response};
use http_body::{Body, Frame, SizeHint};
use tonic::Status;

use crate::status;

/// See the module documentation.
#[derive(Debug, Clone, Copy, Default)]
pub struct GuardLayer;

impl<S> tower::Layer<S> for GuardLayer {
    type Service = GuardService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        GuardService { inner }
    }
}

/// The service [`GuardLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct GuardService<S> {
    inner: S,
}

impl<S, RequestBody, ResponseBody> tower::Service<Request<RequestBody>> for GuardService<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ResponseBody>>,
    ResponseBody: Body<Data = Bytes>,
{
    type Response = Response<GuardBody<ResponseBody>>;
    type Error = S::Error;
    type Future = GuardFuture<S::Future, ResponseBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let span = tracing::Span::current();
        match catch_unwind(AssertUnwindSafe(|| self.inner.call(request))) {
            Ok(future) => GuardFuture {
                state: FutureState::Running {
                    future,
                    call: Some(Call { method, span }),
                },
            },
            Err(panic) => {
                let call = Call { method, span };
                GuardFuture {
                    state: FutureState::Answered {
                        response: Some(call.panicked(panic.as_ref()).into_http()),
                    },
                }
            }
        }
    }
}

/// What a panic is logged with.
#[derive(Debug, Clone)]
struct Call {
    method: String,
    span: tracing::Span,
}

impl Call {
    /// Logs the panic inside the call's span and makes the status the client gets.
    fn panicked(&self, panic: &(dyn Any + Send)) -> Status {
        let _entered = self.span.enter();
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".to_owned());
        tracing::error!(method = %self.method, panic = %what, "a call panicked; it ends with INTERNAL");
        let trace = flotilla_telemetry::propagation::current_trace_id()
            .map(|id| format!(" (trace {id})"))
            .unwrap_or_default();
        Status::internal(format!(
            "the server failed on this call{trace}; its log says why, and other calls are unaffected"
        ))
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`GuardService`].
    pub struct GuardFuture<F, B> {
        #[pin]
        state: FutureState<F, B>,
    }
}

pin_project_lite::pin_project! {
    #[project = FutureStateProjection]
    enum FutureState<F, B> {
        Running {
            #[pin]
            future: F,
            call: Option<Call>,
        },
        Answered { response: Option<Response<GuardBody<B>>> },
    }
}

impl<F, B> fmt::Debug for GuardFuture<F, B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for GuardFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body<Data = Bytes>,
{
    type Output = Result<Response<GuardBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            FutureStateProjection::Answered { response } => Poll::Ready(Ok(response
                .take()
                .expect("GuardFuture polled after it completed"))),
            FutureStateProjection::Running { future, call } => {
                let polled = catch_unwind(AssertUnwindSafe(|| future.poll(cx)));
                match polled {
                    Ok(Poll::Pending) => Poll::Pending,
                    Ok(Poll::Ready(Err(error))) => Poll::Ready(Err(error)),
                    Ok(Poll::Ready(Ok(response))) => {
                        let call = call.take().expect("GuardFuture polled after it completed");
                        let (mut parts, body) = response.into_parts();
                        bound_status(&mut parts.headers);
                        Poll::Ready(Ok(Response::from_parts(
                            parts,
                            GuardBody::guarded(body, call),
                        )))
                    }
                    Err(panic) => {
                        let call = call.take().expect("GuardFuture polled after it completed");
                        let response = call.panicked(panic.as_ref()).into_http();
                        // The inner future is dropped here, never polled again.
                        state.set(FutureState::Answered { response: None });
                        Poll::Ready(Ok(response))
                    }
                }
            }
        }
    }
}

/// Cuts the status in `headers` (the headers of a trailers-only reply, or trailers) to the
/// bounds, when it does not fit them.
fn bound_status(headers: &mut HeaderMap) {
    let too_long = |name: &str, limit: usize| headers.get(name).is_some_and(|v| v.len() > limit);
    // base64 without padding: 4 characters per 3 bytes.
    let details_limit = status::MAX_DETAILS_BYTES.div_ceil(3) * 4;
    if !too_long("grpc-message", status::MAX_MESSAGE_BYTES)
        && !too_long("grpc-status-details-bin", details_limit)
    {
        return;
    }
    let Some(found) = Status::from_header_map(headers) else {
        return;
    };
    let fitted = status::bounded(Status::with_details(
        found.code(),
        found.message().to_owned(),
        found.details().to_vec().into(),
    ));
    for name in ["grpc-status", "grpc-message", "grpc-status-details-bin"] {
        headers.remove(name);
    }
    if fitted.add_header(headers).is_err() {
        headers.insert("grpc-status", http::HeaderValue::from_static("13"));
    }
}

pin_project_lite::pin_project! {
    /// A response body of [`GuardService`]: the routes' body, its trailers bounded, or the
    /// INTERNAL trailers of a body that panicked.
    pub struct GuardBody<B> {
        #[pin]
        state: BodyState<B>,
    }
}

pin_project_lite::pin_project! {
    #[project = BodyStateProjection]
    enum BodyState<B> {
        Guarded {
            #[pin]
            inner: B,
            call: Call,
        },
        Failed { trailers: Option<HeaderMap> },
    }
}

impl<B> GuardBody<B> {
    fn guarded(inner: B, call: Call) -> Self {
        Self {
            state: BodyState::Guarded { inner, call },
        }
    }
}

/// An empty body: what a reply made here (INTERNAL after a panic) carries.
impl<B> Default for GuardBody<B> {
    fn default() -> Self {
        Self {
            state: BodyState::Failed { trailers: None },
        }
    }
}

impl<B> fmt::Debug for GuardBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GuardBody").finish_non_exhaustive()
    }
}

impl<B> Body for GuardBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let mut state = self.project().state;
        match state.as_mut().project() {
            BodyStateProjection::Failed { trailers } => {
                Poll::Ready(trailers.take().map(|t| Ok(Frame::trailers(t))))
            }
            BodyStateProjection::Guarded { inner, call } => {
                match catch_unwind(AssertUnwindSafe(|| inner.poll_frame(cx))) {
                    Ok(polled) => {
                        let frame = ready!(polled);
                        Poll::Ready(frame.map(|frame| {
                            frame.map(|frame| match frame.into_trailers() {
                                Ok(mut trailers) => {
                                    bound_status(&mut trailers);
                                    Frame::trailers(trailers)
                                }
                                Err(frame) => frame,
                            })
                        }))
                    }
                    Err(panic) => {
                        let status = call.panicked(panic.as_ref());
                        let mut trailers = HeaderMap::new();
                        if status.add_header(&mut trailers).is_err() {
                            trailers.insert("grpc-status", http::HeaderValue::from_static("13"));
                        }
                        // The inner body is dropped here, never polled again.
                        state.set(BodyState::Failed { trailers: None });
                        Poll::Ready(Some(Ok(Frame::trailers(trailers))))
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.state {
            BodyState::Guarded { inner, .. } => inner.is_end_stream(),
            BodyState::Failed { trailers } => trailers.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.state {
            BodyState::Guarded { inner, .. } => inner.size_hint(),
            BodyState::Failed { .. } => SizeHint::with_exact(0),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http_body_util::{BodyExt, Empty, StreamBody};
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    type Boxed = http_body_util::combinators::UnsyncBoxBody<Bytes, Infallible>;

    async fn run<S>(service: S) -> (HeaderMap, Option<HeaderMap>)
    where
        S: Service<Request<()>, Response = Response<Boxed>, Error = Infallible>,
    {
        let guarded = GuardLayer.layer(service);
        let response = guarded
            .oneshot(Request::new(()))
            .await
            .unwrap_or_else(|e| match e {});
        let (parts, body) = response.into_parts();
        let collected = body.collect().await.unwrap_or_else(|e| match e {});
        (parts.headers, collected.trailers().cloned())
    }

    #[tokio::test]
    async fn a_panicking_handler_is_internal_for_its_call() {
        let service = tower::service_fn(|_: Request<()>| async {
            if true {
                panic!("index out of bounds");
            }
            Ok::<_, Infallible>(Response::new(Empty::new().boxed_unsync()))
        });
        let (headers, _) = run(service).await;
        let status = Status::from_header_map(&headers).expect("a status in the headers");
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(status.message().contains("other calls are unaffected"));
        assert_eq!(headers["content-type"], "application/grpc");
    }

    /// Log lines written while `run` runs, in the text format.
    fn logged(run: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, run);
        let bytes = buffer.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_panic_is_logged_in_the_calls_span_with_its_message() {
        let log = logged(|| {
            let span = tracing::info_span!("grpc.server", trace_id = %"4bf92f3577b34da6");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let service = tower::service_fn(|_: Request<()>| async {
                if true {
                    panic!("index out of bounds");
                }
                Ok::<_, Infallible>(Response::new(Empty::new().boxed_unsync()))
            });
            let mut guarded = GuardLayer.layer(service);
            let future = span.in_scope(|| guarded.call(Request::new(())));
            let _ = runtime.block_on(future);
        });
        assert!(log.contains("trace_id=4bf92f3577b34da6"), "{log}");
        assert!(log.contains("index out of bounds"), "{log}");
        assert!(log.contains("ends with INTERNAL"), "{log}");
    }

    #[tokio::test]
    async fn a_body_that_panics_mid_stream_ends_with_internal_trailers() {
        let service = tower::service_fn(|_: Request<()>| async {
            let one = futures::stream::iter([Ok(Frame::data(Bytes::from_static(b"x")))]);
            let broken = futures::stream::once(async {
                if true {
                    panic!("the stream broke");
                }
                Ok(Frame::data(Bytes::new()))
            });
            let frames = futures::StreamExt::chain(one, broken);
            Ok::<_, Infallible>(Response::new(StreamBody::new(frames).boxed_unsync()))
        });
        let (_, trailers) = run(service).await;
        let status = Status::from_header_map(&trailers.expect("trailers")).unwrap();
        assert_eq!(status.code(), tonic::Code::Internal);
    }

    #[tokio::test]
    async fn an_oversized_error_reply_is_bounded() {
        let service = tower::service_fn(|_: Request<()>| async {
            let status = Status::invalid_argument(format!("name: {} is bad", "a".repeat(100_000)));
            Ok::<_, Infallible>(status.into_http::<Boxed>())
        });
        let (headers, _) = run(service).await;
        let size: usize = headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len())
            .sum();
        assert!(size < 8 * 1024, "{size}");
        let status = Status::from_header_map(&headers).unwrap();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().ends_with("(100013 characters in all)"),
            "{}",
            status.message()
        );
    }
}
