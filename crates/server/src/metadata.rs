//! Response metadata that tells a caller which version, schema and instance answered.

pub use flotilla_proto::headers::{INSTANCE_HEADER, SCHEMA_HEADER, VERSION_HEADER};

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll, ready},
};

use http::{HeaderMap, HeaderValue};
use tokio::sync::watch;
use tower::{Layer, Service};

/// Adds [`VERSION_HEADER`], [`SCHEMA_HEADER`] and [`INSTANCE_HEADER`] to every response.
#[derive(Debug, Clone)]
pub(crate) struct FleetMetadataLayer {
    version: HeaderValue,
    schema: HeaderValue,
    // Changes when the instance registers again after its lease was lost.
    instance: watch::Receiver<Option<HeaderValue>>,
}

impl FleetMetadataLayer {
    pub(crate) fn new(
        version: HeaderValue,
        schema: HeaderValue,
        instance: watch::Receiver<Option<HeaderValue>>,
    ) -> Self {
        Self {
            version,
            schema,
            instance,
        }
    }

    fn headers(&self) -> Headers {
        Headers {
            version: self.version.clone(),
            schema: self.schema.clone(),
            instance: self.instance.borrow().clone(),
        }
    }
}

impl<S> Layer<S> for FleetMetadataLayer {
    type Service = FleetMetadata<S>;

    fn layer(&self, inner: S) -> Self::Service {
        FleetMetadata {
            inner,
            layer: self.clone(),
        }
    }
}

/// The service [`FleetMetadataLayer`] wraps around the server's routes.
#[derive(Debug, Clone)]
pub(crate) struct FleetMetadata<S> {
    inner: S,
    layer: FleetMetadataLayer,
}

impl<S, Request, Body> Service<Request> for FleetMetadata<S>
where
    S: Service<Request, Response = http::Response<Body>>,
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
            headers: Some(self.layer.headers()),
        }
    }
}

/// The header values one response gets; cloning a `HeaderValue` shares its bytes.
#[derive(Debug)]
struct Headers {
    version: HeaderValue,
    schema: HeaderValue,
    instance: Option<HeaderValue>,
}

impl Headers {
    fn apply(self, headers: &mut HeaderMap) {
        headers.insert(VERSION_HEADER, self.version);
        headers.insert(SCHEMA_HEADER, self.schema);
        if let Some(instance) = self.instance {
            headers.insert(INSTANCE_HEADER, instance);
        }
    }
}

pin_project_lite::pin_project! {
    /// The response future of [`FleetMetadata`]: the inner future, then the headers added.
    #[derive(Debug)]
    pub(crate) struct WithHeaders<F> {
        #[pin]
        inner: F,
        headers: Option<Headers>,
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
        if let Some(headers) = this.headers.take() {
            headers.apply(response.headers_mut());
        }
        Poll::Ready(Ok(response))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    fn echo() -> impl Service<
        http::Request<()>,
        Response = http::Response<()>,
        Error = Infallible,
        Future = std::future::Ready<Result<http::Response<()>, Infallible>>,
    > + Clone {
        tower::service_fn(|_: http::Request<()>| std::future::ready(Ok(http::Response::new(()))))
    }

    async fn call<S>(service: &mut S) -> http::Response<()>
    where
        S: Service<http::Request<()>, Response = http::Response<()>, Error = Infallible>,
    {
        std::future::poll_fn(|cx| service.poll_ready(cx))
            .await
            .unwrap();
        service.call(http::Request::new(())).await.unwrap()
    }

    #[tokio::test]
    async fn every_response_gets_version_and_schema_and_the_instance_once_known() {
        let (instance, instance_rx) = watch::channel(None);
        let layer = FleetMetadataLayer::new(
            HeaderValue::from_static("1.1.0"),
            HeaderValue::from_static("ab12"),
            instance_rx,
        );
        let mut service = layer.layer(echo());

        let before = call(&mut service).await;
        assert_eq!(before.headers()[VERSION_HEADER], "1.1.0");
        assert_eq!(before.headers()[SCHEMA_HEADER], "ab12");
        assert!(before.headers().get(INSTANCE_HEADER).is_none());

        instance.send_replace(Some(HeaderValue::from_static("i-1")));
        let after = call(&mut service).await;
        assert_eq!(after.headers()[INSTANCE_HEADER], "i-1");

        // A new registration replaces the id on later responses.
        instance.send_replace(Some(HeaderValue::from_static("i-2")));
        assert_eq!(call(&mut service).await.headers()[INSTANCE_HEADER], "i-2");
    }

    #[tokio::test]
    async fn headers_the_app_set_are_replaced_not_duplicated() {
        let (_instance, instance_rx) = watch::channel(None);
        let layer = FleetMetadataLayer::new(
            HeaderValue::from_static("2.0.0"),
            HeaderValue::from_static("cd34"),
            instance_rx,
        );
        let mut service = layer.layer(tower::service_fn(|_: http::Request<()>| {
            let mut response = http::Response::new(());
            response
                .headers_mut()
                .insert(VERSION_HEADER, HeaderValue::from_static("spoofed"));
            std::future::ready(Ok::<_, Infallible>(response))
        }));
        let response = call(&mut service).await;
        let versions: Vec<_> = response.headers().get_all(VERSION_HEADER).iter().collect();
        assert_eq!(versions, ["2.0.0"]);
    }
}
