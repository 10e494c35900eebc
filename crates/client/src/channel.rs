//! [`FleetChannel`]: a tower service that tonic's generated clients accept, sending each call to
//! an instance picked by weight.
//!
//! The pick happens in `poll_ready`, as tower's balancers do: the picked instance's connection
//! is then polled ready in the same call, and `call` sends on it at once. Each clone keeps its
//! own handles on the connections it has used, so a call clones nothing shared and allocates
//! nothing beyond what tonic's channel does.

use std::{
    fmt,
    sync::Arc,
    task::{Context, Poll},
};

use http_body_util::Full;
use tonic::{body::Body, transport::Channel};
use tower::Service;

use crate::{
    body::{Collector, Head},
    fleet::{Conn, Fleet},
    future::{BoxError, ResponseFuture, Retry, call_later, call_with_retries},
    snapshot::Snapshot,
};

/// A channel to every compatible instance of one service, for any tonic-generated client:
/// `GreeterClient::new(channel.clone())`. Cheap to clone; all clones share one endpoint table,
/// one connection per instance and the background tasks that keep them current, which stop
/// when the last clone is dropped.
///
/// Each call goes to a SERVING, healthy instance picked at random with probability proportional
/// to its version's weight divided by that version's number of such instances. Calls to
/// idempotent methods that fail with UNAVAILABLE, or cannot reach their instance, are retried on
/// another instance, at most `max_retries` times; their request body is buffered for that.
/// Other calls stream their body through untouched and are never retried.
pub struct FleetChannel {
    fleet: Arc<Fleet>,
    handles: Handles,
    picked: Option<Picked>,
}

// A fleet channel goes wherever a tonic `Channel` goes, and its calls can be spawned.
const _: fn() = || {
    fn send_sync<T: Send + Sync + 'static>() {}
    fn send<T: Send + 'static>() {}
    send_sync::<FleetChannel>();
    send::<ResponseFuture>();
};

/// This clone's handles on the connections of one table generation, by position. A tonic
/// channel handle holds the slot it reserved in `poll_ready` for the `call` that follows, and
/// reusing it spares cloning one per call (a clone allocates). They are
/// dropped when the clone next picks from a newer table, so an idle clone keeps the connection
/// of an instance that left the set open until its next call (or until it is dropped).
#[derive(Debug, Default)]
struct Handles {
    generation: u64,
    slots: Vec<Option<(Arc<Conn>, Channel)>>,
}

/// What `poll_ready` decided for the next call.
#[derive(Debug)]
enum Picked {
    /// The instance at this position of `handles`, whose connection is ready or being polled.
    Instance(usize),
    /// The instance's connection failed before the call was made.
    Broken(Arc<Conn>, BoxError),
    /// Nothing to call.
    Nothing(tonic::Status),
}

impl FleetChannel {
    pub(crate) fn new(fleet: Arc<Fleet>) -> Self {
        Self {
            fleet,
            handles: Handles::default(),
            picked: None,
        }
    }

    /// The endpoints calls are balanced over now, with their shares and health.
    pub fn snapshot(&self) -> Snapshot {
        self.fleet.snapshot()
    }

    /// The service this channel calls.
    pub fn service(&self) -> &str {
        &self.fleet.service
    }

    fn pick(&mut self) -> Picked {
        let table = self.fleet.table();
        if self.handles.generation != table.generation {
            self.handles.generation = table.generation;
            self.handles.slots.clear();
            self.handles.slots.resize_with(table.len(), || None);
        }
        match table.pick(fastrand::f64()) {
            Some((index, conn)) => {
                self.handles.slots[index]
                    .get_or_insert_with(|| (conn.clone(), conn.channel.clone()));
                Picked::Instance(index)
            }
            None => Picked::Nothing(self.fleet.nothing_to_call(&table)),
        }
    }
}

impl Clone for FleetChannel {
    /// A new handle on the same fleet; its connection handles are made as it uses them.
    fn clone(&self) -> Self {
        Self::new(self.fleet.clone())
    }
}

impl fmt::Debug for FleetChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FleetChannel")
            .field("fleet", &self.fleet)
            .finish_non_exhaustive()
    }
}

impl Service<http::Request<Body>> for FleetChannel {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = ResponseFuture;

    /// Picks the instance for the next call and waits for its connection to have room. Never
    /// fails: tonic's clients would turn a failure here into an opaque UNKNOWN, so a call with
    /// nothing to go to fails in `call`, with UNAVAILABLE and a message that says why.
    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if self.picked.is_none() {
            self.picked = Some(self.pick());
        }
        if let Some(Picked::Instance(index)) = self.picked {
            let (conn, channel) = self.handles.slots[index]
                .as_mut()
                .expect("a picked slot has a handle");
            match channel.poll_ready(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(error)) => {
                    conn.call_failed();
                    self.picked = Some(Picked::Broken(conn.clone(), error.into()));
                }
            }
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        // The callee's server span continues the caller's trace.
        flotilla_telemetry::propagation::inject_current(request.headers_mut());
        let idempotent = self.fleet.is_idempotent(request.uri().path());
        let index = match self.picked.take() {
            Some(Picked::Instance(index)) => index,
            Some(Picked::Nothing(status)) => return ResponseFuture::failed(status),
            Some(Picked::Broken(conn, error)) => {
                return match idempotent {
                    true => ResponseFuture::boxed(call_later(
                        self.fleet.clone(),
                        request,
                        true,
                        vec![conn],
                    )),
                    false => ResponseFuture::failed(error),
                };
            }
            // Called without poll_ready: tower's contract is broken, but the call can still
            // be made, from inside the future.
            None => {
                return ResponseFuture::boxed(call_later(
                    self.fleet.clone(),
                    request,
                    idempotent,
                    Vec::new(),
                ));
            }
        };
        let (conn, channel) = self.handles.slots[index]
            .as_mut()
            .expect("a picked slot has a handle");
        if !idempotent {
            return ResponseFuture::once(channel.call(request), conn.clone());
        }
        let (parts, mut body) = request.into_parts();
        let mut collector = Collector::default();
        match collector.collect_now(&mut body) {
            Some(Ok(body)) => {
                let head = Head::copy_of(&parts);
                let first = http::Request::from_parts(parts, Body::new(Full::new(body.clone())));
                let inner = channel.call(first);
                ResponseFuture::first(inner, conn.clone(), Retry { head, body })
            }
            Some(Err(status)) => ResponseFuture::failed(status),
            None => {
                // The body is not all there yet (a large message still being encoded): finish
                // it in the future. The connection's reserved slot stays for the next call.
                self.picked = Some(Picked::Instance(index));
                let fleet = self.fleet.clone();
                ResponseFuture::boxed(async move {
                    let body = collector.collect(body).await?;
                    call_with_retries(fleet, parts.into(), body, Vec::new()).await
                })
            }
        }
    }
}
