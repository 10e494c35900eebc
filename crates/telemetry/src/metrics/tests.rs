use std::{
    collections::VecDeque,
    convert::Infallible,
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
    task::{Context, Poll},
};

use http_body::{Body, Frame};
use http_body_util::BodyExt;
use tower::{Layer, Service, ServiceExt};

use super::*;
use crate::scrape::{Sample, parse};

const VERSION: &str = "1.2.3";
const PATH: &str = "/demo.v1.Things/Get";

/// A response body that yields `frames`, then either ends or stays pending forever.
struct TestBody {
    frames: VecDeque<Result<Frame<Bytes>, &'static str>>,
    then_pending: bool,
}

impl TestBody {
    fn new(frames: impl IntoIterator<Item = Result<Frame<Bytes>, &'static str>>) -> Self {
        Self {
            frames: frames.into_iter().collect(),
            then_pending: false,
        }
    }

    fn empty() -> Self {
        Self::new([])
    }

    fn then_pending(mut self) -> Self {
        self.then_pending = true;
        self
    }
}

impl Body for TestBody {
    type Data = Bytes;
    type Error = &'static str;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, &'static str>>> {
        match self.frames.pop_front() {
            Some(frame) => Poll::Ready(Some(frame)),
            None if self.then_pending => Poll::Pending,
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && !self.then_pending
    }
}

fn message() -> Result<Frame<Bytes>, &'static str> {
    Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\x02hi")))
}

fn trailers(status: &'static str) -> Result<Frame<Bytes>, &'static str> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static(status));
    Ok(Frame::trailers(trailers))
}

fn grpc_request(path: &str) -> Request<()> {
    Request::post(path)
        .header(header::CONTENT_TYPE, "application/grpc")
        .body(())
        .unwrap()
}

/// A service answering every request with the response `respond` makes, counting its calls.
fn service(
    calls: Arc<AtomicUsize>,
    respond: impl Fn() -> Response<TestBody> + Clone + Send + 'static,
) -> impl Service<
    Request<()>,
    Response = Response<TestBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<TestBody>, Infallible>>,
> + Clone {
    tower::service_fn(move |_: Request<()>| {
        calls.fetch_add(1, Ordering::Relaxed);
        let response = respond();
        async move { Ok(response) }
    })
}

fn ok_response(body: TestBody) -> Response<TestBody> {
    let mut response = Response::new(body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    response
}

fn trailers_only(status: &'static str) -> Response<TestBody> {
    let mut response = ok_response(TestBody::empty());
    response
        .headers_mut()
        .insert("grpc-status", HeaderValue::from_static(status));
    response
}

fn samples(metrics: &ServerMetrics) -> Vec<Sample> {
    parse(&metrics.encode(Format::Prometheus).unwrap()).unwrap()
}

/// The value of the sample `name` with exactly `labels`, if there is one.
fn value(metrics: &ServerMetrics, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples(metrics)
        .into_iter()
        .find(|sample| {
            sample.name == name
                && sample.labels.len() == labels.len()
                && labels
                    .iter()
                    .all(|(key, value)| sample.label(key) == Some(*value))
        })
        .map(|sample| sample.value)
}

fn handled(metrics: &ServerMetrics, code: &str) -> Option<f64> {
    value(
        metrics,
        HANDLED_TOTAL,
        &[
            ("grpc_service", "demo.v1.Things"),
            ("grpc_method", "Get"),
            ("grpc_code", code),
            ("version", VERSION),
        ],
    )
}

fn method_labels() -> [(&'static str, &'static str); 3] {
    [
        ("grpc_service", "demo.v1.Things"),
        ("grpc_method", "Get"),
        ("version", VERSION),
    ]
}

fn handling_count(metrics: &ServerMetrics) -> Option<f64> {
    value(
        metrics,
        &format!("{HANDLING_SECONDS}_count"),
        &method_labels(),
    )
}

async fn read_to_end<B: Body<Data = Bytes>>(body: B) -> Option<HeaderMap>
where
    B::Error: fmt::Debug,
{
    body.collect().await.unwrap().trailers().cloned()
}

#[tokio::test]
async fn a_trailers_only_error_counts_at_the_headers() {
    let metrics = ServerMetrics::new(VERSION);
    let svc = metrics
        .layer()
        .layer(service(Default::default(), || trailers_only("14")));
    let response = svc.oneshot(grpc_request(PATH)).await.unwrap();

    // Before the body is read: the status was already sent with the headers.
    assert_eq!(handled(&metrics, "UNAVAILABLE"), Some(1.0));
    assert_eq!(handling_count(&metrics), Some(1.0));
    assert_eq!(value(&metrics, STARTED_TOTAL, &method_labels()), Some(1.0));
    drop(response);
    // Dropping the (empty) body afterwards does not count the call again.
    assert_eq!(handled(&metrics, "CANCELLED"), None);
    assert_eq!(handling_count(&metrics), Some(1.0));
}

#[tokio::test]
async fn a_status_in_the_trailers_counts_when_the_body_ends() {
    let metrics = ServerMetrics::new(VERSION);
    let svc = metrics.layer().layer(service(Default::default(), || {
        ok_response(TestBody::new([message(), trailers("0")]))
    }));
    let response = svc.oneshot(grpc_request(PATH)).await.unwrap();
    assert_eq!(value(&metrics, STARTED_TOTAL, &method_labels()), Some(1.0));
    assert_eq!(handled(&metrics, "OK"), None, "not before the trailers");
    assert_eq!(handling_count(&metrics), Some(0.0));

    let trailers = read_to_end(response.into_body()).await.unwrap();
    assert_eq!(trailers["grpc-status"], "0", "trailers pass through");
    assert_eq!(handled(&metrics, "OK"), Some(1.0));
    assert_eq!(handling_count(&metrics), Some(1.0));
}

#[tokio::test]
async fn an_error_in_the_trailers_after_a_message_counts_with_its_code() {
    let metrics = ServerMetrics::new(VERSION);
    let svc = metrics.layer().layer(service(Default::default(), || {
        ok_response(TestBody::new([message(), message(), trailers("13")]))
    }));
    let response = svc.oneshot(grpc_request(PATH)).await.unwrap();
    let body = response.into_body().collect().await.unwrap();
    assert_eq!(body.trailers().unwrap()["grpc-status"], "13");
    assert_eq!(body.to_bytes().len(), 14, "both messages pass through");
    assert_eq!(handled(&metrics, "INTERNAL"), Some(1.0));
    assert_eq!(handled(&metrics, "OK"), None);
}

#[tokio::test]
async fn a_body_dropped_before_its_end_counts_as_cancelled() {
    let metrics = ServerMetrics::new(VERSION);
    let svc = metrics.layer().layer(service(Default::default(), || {
        ok_response(TestBody::new([message()]).then_pending())
    }));
    let response = svc.oneshot(grpc_request(PATH)).await.unwrap();
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap();
    assert!(first.is_data());
    assert_eq!(
        handled(&metrics, "CANCELLED"),
        None,
        "the stream is still open"
    );
    drop(body);
    assert_eq!(handled(&metrics, "CANCELLED"), Some(1.0));
    assert_eq!(handling_count(&metrics), Some(1.0));
}

#[tokio::test]
async fn a_call_dropped_past_its_grpc_timeout_counts_as_deadline_exceeded() {
    let metrics = ServerMetrics::new(VERSION);
    let hanging = tower::service_fn(|_: Request<()>| {
        std::future::pending::<Result<Response<TestBody>, Infallible>>()
    });
    let mut svc = metrics.layer().layer(hanging);

    // Dropped before its deadline: the client cancelled.
    let mut request = grpc_request(PATH);
    request
        .headers_mut()
        .insert("grpc-timeout", HeaderValue::from_static("1H"));
    drop(svc.call(request));
    assert_eq!(handled(&metrics, "CANCELLED"), Some(1.0));

    // Dropped after it (as tonic's timeout does): the deadline passed.
    let mut request = grpc_request(PATH);
    request
        .headers_mut()
        .insert("grpc-timeout", HeaderValue::from_static("1m"));
    let call = svc.call(request);
    tokio::time::sleep(Duration::from_millis(5)).await;
    drop(call);
    assert_eq!(handled(&metrics, "DEADLINE_EXCEEDED"), Some(1.0));
    assert_eq!(handling_count(&metrics), Some(2.0));
}

#[tokio::test]
async fn odd_statuses_read_as_clients_read_them() {
    let metrics = ServerMetrics::new(VERSION);
    // A code beyond the known ones is UNKNOWN to clients.
    let svc = metrics
        .layer()
        .layer(service(Default::default(), || trailers_only("99")));
    drop(svc.oneshot(grpc_request(PATH)).await.unwrap());
    assert_eq!(handled(&metrics, "UNKNOWN"), Some(1.0));

    // An HTTP error without grpc-status maps by the gRPC spec's table.
    let svc = metrics.layer().layer(service(Default::default(), || {
        let mut response = Response::new(TestBody::empty());
        *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        response
    }));
    drop(svc.oneshot(grpc_request(PATH)).await.unwrap());
    assert_eq!(handled(&metrics, "UNAVAILABLE"), Some(1.0));

    // A body that ends without trailers carries no status: UNKNOWN, not CANCELLED.
    let svc = metrics.layer().layer(service(Default::default(), || {
        ok_response(TestBody::new([message()]))
    }));
    let response = svc.oneshot(grpc_request(PATH)).await.unwrap();
    assert_eq!(read_to_end(response.into_body()).await, None);
    assert_eq!(handled(&metrics, "UNKNOWN"), Some(2.0));

    // A body that fails resets the stream: INTERNAL.
    let svc = metrics.layer().layer(service(Default::default(), || {
        ok_response(TestBody::new([message(), Err("broken")]))
    }));
    let response = svc.oneshot(grpc_request(PATH)).await.unwrap();
    assert!(response.into_body().collect().await.is_err());
    assert_eq!(handled(&metrics, "INTERNAL"), Some(1.0));
    assert_eq!(handled(&metrics, "CANCELLED"), None);
    assert_eq!(handling_count(&metrics), Some(4.0));
}

#[tokio::test]
async fn non_grpc_requests_and_skipped_services_are_not_recorded() {
    let metrics = ServerMetrics::new(VERSION);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = metrics
        .layer()
        .layer(service(calls.clone(), || trailers_only("0")));

    let skipped = SKIPPED_SERVICES.map(|service| grpc_request(&format!("/{service}/Check")));
    let not_grpc = [
        Request::post(PATH)
            .header(header::CONTENT_TYPE, "application/json")
            .body(())
            .unwrap(),
        Request::post(PATH)
            .header(header::CONTENT_TYPE, "application/grpc-web")
            .body(())
            .unwrap(),
        Request::post(PATH).body(()).unwrap(),
    ];
    for request in skipped.into_iter().chain(not_grpc) {
        svc.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(
        calls.load(Ordering::Relaxed),
        6,
        "every request reached the app"
    );
    let recorded: Vec<_> = samples(&metrics)
        .into_iter()
        .filter(|sample| sample.name.starts_with("flotilla_grpc_server_"))
        .collect();
    assert!(recorded.is_empty(), "{recorded:?}");

    // Codec suffixes and parameters are still gRPC.
    for content_type in ["application/grpc+proto", "application/grpc;charset=utf-8"] {
        let request = Request::post(PATH)
            .header(header::CONTENT_TYPE, content_type)
            .body(())
            .unwrap();
        svc.clone().oneshot(request).await.unwrap();
    }
    assert_eq!(handled(&metrics, "OK"), Some(2.0));
}

#[tokio::test]
async fn get_metrics_is_answered_by_the_layer_in_the_format_asked_for() {
    let metrics = ServerMetrics::new(VERSION);
    let calls = Arc::new(AtomicUsize::new(0));
    let svc = metrics
        .layer()
        .layer(service(calls.clone(), || trailers_only("5")));
    svc.clone().oneshot(grpc_request(PATH)).await.unwrap();

    let get = |accept: Option<&'static str>| {
        let mut request = Request::get(METRICS_PATH);
        if let Some(accept) = accept {
            request = request.header(header::ACCEPT, accept);
        }
        request.body(()).unwrap()
    };
    let response = svc.clone().oneshot(get(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = response.into_body().collect().await.unwrap().to_bytes();
    let text = std::str::from_utf8(&text).unwrap();
    assert!(
        text.contains(
            "flotilla_grpc_server_handled_total{grpc_service=\"demo.v1.Things\",\
             grpc_method=\"Get\",grpc_code=\"NOT_FOUND\",version=\"1.2.3\"} 1\n"
        ),
        "{text}"
    );
    assert!(text.contains("# TYPE flotilla_grpc_server_handling_seconds histogram\n"));
    assert!(
        !text.contains("# EOF"),
        "no OpenMetrics terminator in 0.0.4"
    );

    // What Prometheus sends: OpenMetrics first.
    let prometheus = "application/openmetrics-text;version=1.0.0,\
        application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let response = svc.clone().oneshot(get(Some(prometheus))).await.unwrap();
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        Format::OpenMetrics.content_type()
    );
    let text = response.into_body().collect().await.unwrap().to_bytes();
    assert!(text.ends_with(b"# EOF\n"));

    assert_eq!(
        calls.load(Ordering::Relaxed),
        1,
        "only the gRPC call reached the app"
    );
    // The scrapes themselves are not calls.
    assert_eq!(handling_count(&metrics), Some(1.0));

    // Any other method on the path is the app's business.
    let post = Request::post(METRICS_PATH).body(()).unwrap();
    svc.oneshot(post).await.unwrap();
    assert_eq!(calls.load(Ordering::Relaxed), 2);
}

#[test]
fn the_format_follows_the_accept_header() {
    use Format::{OpenMetrics, Prometheus};
    let cases = [
        (None, Prometheus),
        (Some("*/*"), Prometheus),
        (Some("text/plain"), Prometheus),
        (Some("application/openmetrics-text"), OpenMetrics),
        (
            Some("application/openmetrics-text; version=1.0.0"),
            OpenMetrics,
        ),
        (
            Some("application/openmetrics-text;version=0.0.1"),
            Prometheus,
        ),
        (Some("text/plain, application/openmetrics-text"), Prometheus),
        (
            Some("application/openmetrics-text;q=0.2, text/plain"),
            Prometheus,
        ),
        (
            Some("text/plain;q=0.3, application/openmetrics-text;q=0.9"),
            OpenMetrics,
        ),
        (Some("application/openmetrics-text;q=0"), Prometheus),
        (Some("application/json"), Prometheus),
    ];
    for (accept, expected) in cases {
        assert_eq!(Format::negotiate(accept), expected, "{accept:?}");
    }
}

#[tokio::test]
async fn methods_beyond_the_cap_and_malformed_paths_share_one_label() {
    let metrics = ServerMetrics::new(VERSION);
    let svc = metrics
        .layer()
        .layer(service(Default::default(), || trailers_only("12")));
    for i in 0..=MAX_METHODS {
        let path = format!("/scan.Service/M{i}");
        svc.clone().oneshot(grpc_request(&path)).await.unwrap();
    }
    svc.clone()
        .oneshot(grpc_request("/no-method"))
        .await
        .unwrap();

    let overflow = [
        ("grpc_service", OVERFLOW_LABEL),
        ("grpc_method", OVERFLOW_LABEL),
        ("grpc_code", "UNIMPLEMENTED"),
        ("version", VERSION),
    ];
    assert_eq!(value(&metrics, HANDLED_TOTAL, &overflow), Some(2.0));
    let own_labels = samples(&metrics)
        .into_iter()
        .filter(|s| s.name == HANDLED_TOTAL && s.label("grpc_service") == Some("scan.Service"))
        .count();
    assert_eq!(own_labels, MAX_METHODS);
}

#[test]
fn grpc_paths_content_types_and_timeouts_are_read_as_the_spec_writes_them() {
    assert_eq!(split_path("/a.B/C"), Some(("a.B", "C")));
    for malformed in ["", "/", "/a.B", "/a.B/", "//C", "a.B/C", "/a.B/C/D"] {
        assert_eq!(split_path(malformed), None, "{malformed:?}");
    }

    let timeout = |text| parse_grpc_timeout(&HeaderValue::from_static(text));
    assert_eq!(timeout("2H"), Some(Duration::from_secs(7200)));
    assert_eq!(timeout("3M"), Some(Duration::from_secs(180)));
    assert_eq!(timeout("4S"), Some(Duration::from_secs(4)));
    assert_eq!(timeout("250m"), Some(Duration::from_millis(250)));
    assert_eq!(timeout("7u"), Some(Duration::from_micros(7)));
    assert_eq!(timeout("99999999n"), Some(Duration::from_nanos(99_999_999)));
    for bad in ["", "S", "123456789S", "10x", "-1S", "1.5S"] {
        assert_eq!(timeout(bad), None, "{bad:?}");
    }

    assert_eq!(
        Code::from_header(&HeaderValue::from_static("0")).name(),
        "OK"
    );
    assert_eq!(
        Code::from_header(&HeaderValue::from_static("16")).name(),
        "UNAUTHENTICATED"
    );
    assert_eq!(
        Code::from_header(&HeaderValue::from_static("17")).name(),
        "UNKNOWN"
    );
    assert_eq!(
        Code::from_header(&HeaderValue::from_static("x")).name(),
        "UNKNOWN"
    );
    assert_eq!(
        counter_family(HANDLED_TOTAL),
        "flotilla_grpc_server_handled"
    );
}
