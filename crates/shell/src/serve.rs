//! [`ServerShell`]: the one way a server of the suite is put together and run. The registry, the
//! orchestrator and every `FleetServer` hand it their routes; it adds reflection (v1 and
//! v1alpha) of their descriptor sets, health's and google.rpc's, wraps every call in the same
//! layers and serves with TCP_NODELAY, HTTP/1.1 for `GET /metrics`, and a grace period on
//! shutdown.
//!
//! The layers, outermost first — and this is the only place request-level layers are added:
//!
//! 1. trace: the call's `grpc.server` span, child of the caller's trace context;
//! 2. response headers the server adds to every reply (FleetServer's version, schema, instance);
//! 3. metrics: calls counted by method and code, timed; `/metrics` and other GET endpoints;
//! 4. the guard: a panic is INTERNAL for its call alone, error replies bounded.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::Duration,
};

use flotilla_telemetry::{metrics::MetricsLayer, propagation::TraceLayer};
use http::HeaderMap;
use tokio::net::TcpListener;
use tonic::{
    service::Routes,
    transport::{Server, server::TcpIncoming},
};

use crate::GuardLayer;

/// How long open calls may finish after a stop, unless the server says otherwise.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// Why a server could not be built or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    #[error("building reflection: {0}")]
    Reflection(#[from] tonic_reflection::server::Error),
    #[error("serving gRPC: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// Adds a server's own headers to every response.
pub type ResponseHeaders = Arc<dyn Fn(&mut HeaderMap) + Send + Sync>;

/// See the module documentation.
pub struct ServerShell {
    routes: Routes,
    descriptor_sets: Vec<Vec<u8>>,
    metrics: MetricsLayer,
    response_headers: Option<ResponseHeaders>,
    grace: Duration,
}

impl fmt::Debug for ServerShell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerShell")
            .field("descriptor_sets", &self.descriptor_sets.len())
            .field("grace", &self.grace)
            .finish_non_exhaustive()
    }
}

impl ServerShell {
    /// A shell around `routes` (the server's services, health among them), counting calls with
    /// `metrics`.
    pub fn new(routes: Routes, metrics: MetricsLayer) -> Self {
        Self {
            routes,
            descriptor_sets: Vec::new(),
            metrics,
            response_headers: None,
            grace: DEFAULT_GRACE,
        }
    }

    /// Serves `descriptor_set` (an encoded FileDescriptorSet) by reflection, beside health's and
    /// the google.rpc error details', so grpcurl can call the server and decode its errors.
    pub fn reflect(mut self, descriptor_set: impl Into<Vec<u8>>) -> Self {
        self.descriptor_sets.push(descriptor_set.into());
        self
    }

    /// Headers added to every response, after the routes answer.
    pub fn response_headers(
        mut self,
        add: impl Fn(&mut HeaderMap) + Send + Sync + 'static,
    ) -> Self {
        self.response_headers = Some(Arc::new(add));
        self
    }

    /// How long open calls may finish once draining starts (default [`DEFAULT_GRACE`]).
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Serves on `listener` until `drain` completes, then lets open calls finish for the grace
    /// period and closes whatever is still open. A caller turns health NOT_SERVING (and ends
    /// its streams) before `drain` completes, so clients move away first.
    pub async fn serve(
        self,
        listener: TcpListener,
        drain: impl Future<Output = ()> + Send,
    ) -> Result<(), ShellError> {
        let Self {
            routes,
            descriptor_sets,
            metrics,
            response_headers,
            grace,
        } = self;
        let reflection = || {
            let mut builder = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET);
            for set in &descriptor_sets {
                builder = builder.register_encoded_file_descriptor_set(set);
            }
            builder
        };
        let routes = routes
            .add_service(reflection().build_v1()?)
            .add_service(reflection().build_v1alpha()?);
        let (draining_tx, draining_rx) = tokio::sync::oneshot::channel::<()>();
        let drain = async {
            drain.await;
            let _ = draining_tx.send(());
        };
        let server = Server::builder()
            // Prometheus scrapes `/metrics` over HTTP/1.1 on this same port; gRPC stays HTTP/2.
            .accept_http1(true)
            .layer(TraceLayer)
            .layer(ResponseHeadersLayer {
                add: response_headers,
            })
            .layer(metrics)
            // Innermost, so a panic is logged in the call's span and counted as INTERNAL.
            .layer(GuardLayer)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming(listener), drain);
        // A client that never closes its connection must not hold the process past the grace.
        let grace_expired = async {
            if draining_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            served = server => served?,
            () = grace_expired => {
                tracing::warn!(?grace, "connections still open after the grace period; closing them");
            }
        }
        Ok(())
    }
}

/// Accepted connections with Nagle's algorithm off: a unary reply is written as several small
/// frames (headers, data, trailers), and Nagle plus delayed ACKs would stall each by up to 40 ms.
fn incoming(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(Some(Duration::from_secs(60)))
}

/// Adds [`ServerShell::response_headers`] to every response.
#[derive(Clone)]
struct ResponseHeadersLayer {
    add: Option<ResponseHeaders>,
}

impl<S> tower::Layer<S> for ResponseHeadersLayer {
    type Service = ResponseHeadersService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseHeadersService {
            inner,
            add: self.add.clone(),
        }
    }
}

#[derive(Clone)]
struct ResponseHeadersService<S> {
    inner: S,
    add: Option<ResponseHeaders>,
}

impl<S, Request, Body> tower::Service<Request> for ResponseHeadersService<S>
where
    S: tower::Service<Request, Response = http::Response<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = WithHeaders<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        WithHeaders {
            inner: self.inner.call(request),
            add: self.add.clone(),
        }
    }
}

pin_project_lite::pin_project! {
    struct WithHeaders<F> {
        #[pin]
        inner: F,
        add: Option<ResponseHeaders>,
    }
}

impl<F, Body, Error> Future for WithHeaders<F>
where
    F: Future<Output = Result<http::Response<Body>, Error>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = ready!(this.inner.poll(cx))?;
        if let Some(add) = this.add.take() {
            add(response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

/// Completes on SIGINT or SIGTERM: the stop signal every server of the suite obeys.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT received"),
        _ = terminate => tracing::info!("SIGTERM received"),
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use http::HeaderValue;
    use tower::{Layer, Service, ServiceExt};

    use super::*;

    #[tokio::test]
    async fn response_headers_are_added_after_the_routes_answer() {
        let layer = ResponseHeadersLayer {
            add: Some(Arc::new(|headers: &mut HeaderMap| {
                headers.insert("x-flotilla-version", HeaderValue::from_static("2.0.0"));
            })),
        };
        let service = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            let mut response = http::Response::new(());
            response
                .headers_mut()
                .insert("x-flotilla-version", HeaderValue::from_static("spoofed"));
            Ok::<_, Infallible>(response)
        }));
        let response = service.oneshot(http::Request::new(())).await.unwrap();
        let versions: Vec<_> = response
            .headers()
            .get_all("x-flotilla-version")
            .iter()
            .collect();
        assert_eq!(versions, ["2.0.0"], "replaced, not duplicated");
        let mut bare = ResponseHeadersLayer { add: None }.layer(tower::service_fn(
            |_: http::Request<()>| async { Ok::<_, Infallible>(http::Response::new(())) },
        ));
        let response = bare.call(http::Request::new(())).await.unwrap();
        assert!(response.headers().is_empty());
    }
}
