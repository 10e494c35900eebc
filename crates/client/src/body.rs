//! Request bodies of retryable calls: read whole into `Bytes`, so each attempt can send them
//! again. A unary request body is one small frame that is ready at once, so it is read without
//! waiting when it can be, and the first attempt can start in `call` itself.

use std::{
    pin::Pin,
    task::{Context, Poll, Waker},
};

use bytes::{Bytes, BytesMut};
use http_body::Body as _;
use http_body_util::Full;
use tonic::{Status, body::Body};

/// Reads a body to its end, keeping what it has read across polls.
#[derive(Debug, Default)]
pub(crate) struct Collector {
    first: Option<Bytes>,
    /// Only when a body has several data frames (large messages): the common case is one frame,
    /// kept as is without copying.
    rest: Option<BytesMut>,
}

impl Collector {
    pub fn poll_collect(
        &mut self,
        body: &mut Body,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Bytes, Status>> {
        loop {
            match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => return Poll::Ready(Ok(self.take())),
                Poll::Ready(Some(Err(status))) => return Poll::Ready(Err(status)),
                Poll::Ready(Some(Ok(frame))) => {
                    // gRPC requests have no trailers; anything but data is not ours to keep.
                    if let Ok(data) = frame.into_data() {
                        self.push(data);
                    }
                }
            }
        }
    }

    /// The whole body if it is ready without waiting, else `None` (what was read is kept).
    pub fn collect_now(&mut self, body: &mut Body) -> Option<Result<Bytes, Status>> {
        match self.poll_collect(body, &mut Context::from_waker(Waker::noop())) {
            Poll::Ready(collected) => Some(collected),
            Poll::Pending => None,
        }
    }

    pub async fn collect(mut self, mut body: Body) -> Result<Bytes, Status> {
        std::future::poll_fn(|cx| self.poll_collect(&mut body, cx)).await
    }

    fn push(&mut self, data: Bytes) {
        match (&mut self.first, &mut self.rest) {
            (None, _) => self.first = Some(data),
            (Some(first), None) => {
                let mut rest = BytesMut::with_capacity(first.len() + data.len());
                rest.extend_from_slice(first);
                rest.extend_from_slice(&data);
                self.rest = Some(rest);
            }
            (Some(_), Some(rest)) => rest.extend_from_slice(&data),
        }
    }

    fn take(&mut self) -> Bytes {
        match (self.first.take(), self.rest.take()) {
            (_, Some(rest)) => rest.freeze(),
            (Some(first), None) => first,
            (None, None) => Bytes::new(),
        }
    }
}

/// What a retry sends again besides the body: everything that goes on the wire, so every
/// header (`traceparent` and `tracestate` included) goes out unchanged. Extensions stay with the
/// first attempt: they never leave the process, and the connections below read none of them.
#[derive(Debug, Clone)]
pub(crate) struct Head {
    method: http::Method,
    uri: http::Uri,
    version: http::Version,
    headers: http::HeaderMap,
}

impl Head {
    pub fn copy_of(parts: &http::request::Parts) -> Self {
        Self {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
        }
    }

    pub fn path(&self) -> &str {
        self.uri.path()
    }

    /// A request for one attempt.
    pub fn request(&self, body: Bytes) -> http::Request<Body> {
        let mut request = http::Request::new(Body::new(Full::new(body)));
        *request.method_mut() = self.method.clone();
        *request.uri_mut() = self.uri.clone();
        *request.version_mut() = self.version;
        *request.headers_mut() = self.headers.clone();
        request
    }
}

impl From<http::request::Parts> for Head {
    fn from(parts: http::request::Parts) -> Self {
        Self {
            method: parts.method,
            uri: parts.uri,
            version: parts.version,
            headers: parts.headers,
        }
    }
}

#[cfg(test)]
mod tests {
    use http_body::Frame;
    use http_body_util::StreamBody;

    use super::*;

    /// A body of these data frames, all ready at once.
    fn chunks(parts: &[&'static [u8]]) -> Body {
        let frames: Vec<Result<Frame<Bytes>, Status>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p))))
            .collect();
        Body::new(StreamBody::new(tokio_stream::iter(frames)))
    }

    #[test]
    fn a_ready_body_is_read_without_waiting() {
        let mut body = chunks(&[b"one frame"]);
        let bytes = Collector::default()
            .collect_now(&mut body)
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"one frame");

        let mut body = chunks(&[b"a", b"bc", b"def"]);
        let bytes = Collector::default()
            .collect_now(&mut body)
            .unwrap()
            .unwrap();
        assert_eq!(&bytes[..], b"abcdef");

        let mut body = Body::empty();
        let bytes = Collector::default()
            .collect_now(&mut body)
            .unwrap()
            .unwrap();
        assert!(bytes.is_empty());
    }

    #[tokio::test]
    async fn a_body_that_must_wait_is_finished_later_with_nothing_lost() {
        let (sender, receiver) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Status>>(4);
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"early "))))
            .await
            .unwrap();
        let mut body = Body::new(StreamBody::new(
            tokio_stream::wrappers::ReceiverStream::new(receiver),
        ));
        let mut collector = Collector::default();
        assert!(collector.collect_now(&mut body).is_none());
        sender
            .send(Ok(Frame::data(Bytes::from_static(b"late"))))
            .await
            .unwrap();
        drop(sender);
        assert_eq!(&collector.collect(body).await.unwrap()[..], b"early late");
    }

    #[test]
    fn a_request_made_again_keeps_the_head() {
        let original = http::Request::builder()
            .method("POST")
            .uri("/flotilla.testing.v1.Echo/Echo")
            .header("traceparent", "00-abc-def-01")
            .header("tracestate", "a=b")
            .body(())
            .unwrap();
        let (parts, ()) = original.into_parts();
        let request = Head::copy_of(&parts).request(Bytes::from_static(b"x"));
        assert_eq!(request.uri().path(), "/flotilla.testing.v1.Echo/Echo");
        assert_eq!(request.headers()["traceparent"], "00-abc-def-01");
        assert_eq!(request.headers()["tracestate"], "a=b");
        assert_eq!(request.method(), http::Method::POST);
    }
}
