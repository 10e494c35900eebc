use std::convert::Infallible;

use http::{HeaderMap, HeaderValue, Response};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tower::{Layer, ServiceExt};

use super::*;
use crate::metrics::{Format, HANDLING_SECONDS, LATENCY_BUCKETS, STARTED_TOTAL, ServerMetrics};

fn stats(requests: f64, errors: f64, buckets: &[(f64, f64)]) -> CallStats {
    CallStats {
        requests,
        errors,
        buckets: buckets.to_vec(),
    }
}

fn label_pairs(labels: &[(&str, &str)]) -> Vec<(String, String)> {
    labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// An exposition as the metrics layer writes it, after one OK call (status in the trailers)
/// and one UNAVAILABLE (trailers-only) to `/demo.v1.Things/Get` of version 2.0.0.
async fn layer_exposition(format: Format) -> String {
    let metrics = ServerMetrics::new("2.0.0");
    type Frames =
        StreamBody<tokio_stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;
    let app = tower::service_fn(|request: Request<()>| async move {
        let fail = request.headers().contains_key("x-fail");
        let mut trailers = HeaderMap::new();
        trailers.insert("grpc-status", HeaderValue::from_static("0"));
        let frames = if fail {
            Vec::new()
        } else {
            vec![
                Ok(Frame::data(Bytes::from_static(b"\0\0\0\0\0"))),
                Ok(Frame::trailers(trailers)),
            ]
        };
        let mut response = Response::new(Frames::new(tokio_stream::iter(frames)));
        if fail {
            response
                .headers_mut()
                .insert("grpc-status", HeaderValue::from_static("14"));
        }
        Ok::<_, Infallible>(response)
    });
    let svc = metrics.layer().layer(app);
    for fail in [false, true] {
        let mut request = Request::post("/demo.v1.Things/Get")
            .header(header::CONTENT_TYPE, "application/grpc")
            .body(())
            .unwrap();
        if fail {
            request
                .headers_mut()
                .insert("x-fail", HeaderValue::from_static("1"));
        }
        let response = svc.clone().oneshot(request).await.unwrap();
        response.into_body().collect().await.unwrap();
    }
    metrics.encode(format).unwrap()
}

#[tokio::test]
async fn the_layers_own_exposition_parses_into_its_calls() {
    let text = layer_exposition(Format::Prometheus).await;
    let samples = parse(&text).unwrap();
    let method = [
        ("grpc_service", "demo.v1.Things"),
        ("grpc_method", "Get"),
        ("version", "2.0.0"),
    ];
    let find = |name: &str, labels: &[(&str, &str)]| {
        samples
            .iter()
            .find(|s| s.name == name && s.labels == label_pairs(labels))
            .map(|s| s.value)
    };
    assert_eq!(find(STARTED_TOTAL, &method), Some(2.0));
    for (code, count) in [("OK", 1.0), ("UNAVAILABLE", 1.0)] {
        let labels = [method[0], method[1], ("grpc_code", code), method[2]];
        assert_eq!(find(HANDLED_TOTAL, &labels), Some(count), "{code}");
    }
    assert_eq!(
        find(&format!("{HANDLING_SECONDS}_count"), &method),
        Some(2.0)
    );
    assert!(find(&format!("{HANDLING_SECONDS}_sum"), &method).unwrap() >= 0.0);
    let bounds: Vec<&str> = samples
        .iter()
        .filter(|s| s.name == HANDLING_BUCKET)
        .map(|s| s.label("le").unwrap())
        .collect();
    let mut expected: Vec<String> = LATENCY_BUCKETS.iter().map(|b| b.to_string()).collect();
    expected.push("+Inf".into());
    let bounds: Vec<f64> = bounds.iter().map(|b| b.parse().unwrap()).collect();
    let expected: Vec<f64> = expected.iter().map(|b| b.parse().unwrap()).collect();
    assert_eq!(bounds, expected);
    assert_eq!(HANDLING_BUCKET, format!("{HANDLING_SECONDS}_bucket"));

    let stats = CallStats::from_samples(&samples, "2.0.0");
    assert_eq!((stats.requests, stats.errors), (2.0, 1.0));
    assert_eq!(stats.buckets.len(), LATENCY_BUCKETS.len() + 1);
    assert_eq!(stats.buckets.last(), Some(&(f64::INFINITY, 2.0)));
    assert_eq!(
        CallStats::from_samples(&samples, "1.0.0"),
        CallStats::default()
    );

    // OpenMetrics (what Prometheus asks for) reads the same: `# EOF` is a comment.
    let openmetrics = parse(&layer_exposition(Format::OpenMetrics).await).unwrap();
    let stats = CallStats::from_samples(&openmetrics, "2.0.0");
    assert_eq!((stats.requests, stats.errors), (2.0, 1.0));
}

#[test]
fn the_documented_example_and_edge_cases_parse() {
    // The example of Prometheus's exposition format documentation, plus edge cases.
    let text = "# HELP http_requests_total The total number of HTTP requests.
# TYPE http_requests_total counter
http_requests_total{method=\"post\",code=\"200\"} 1027 1395066363000
http_requests_total{method=\"post\",code=\"400\"}    3 1395066363000

# Escaping in label values:
msdos_file_access_time_seconds{path=\"C:\\\\DIR\\\\FILE.TXT\",error=\"Cannot find file:\\n\\\"FILE.TXT\\\"\"} 1.458255915e9

# Minimalistic line:
metric_without_timestamp_and_labels 12.47

# A weird metric from before the epoch:
something_weird{problem=\"division by zero\"} +Inf -3982045
\t  spaced\t{ a = \"1\" , b=\"}, #{\" , }\t-Inf\t
empty_braces{} NaN
unicode{name=\"héllo wörld ✓\"} -0.5\r
colons:and_underscores 1e-3
# TYPE h histogram
h_bucket{le=\"+Inf\"} 7
";
    let samples = parse(text).unwrap();
    let summary: Vec<_> = samples
        .iter()
        .map(|s| (s.name.as_str(), s.labels.clone(), s.timestamp_ms))
        .collect();
    assert_eq!(
        summary,
        [
            (
                "http_requests_total",
                label_pairs(&[("method", "post"), ("code", "200")]),
                Some(1395066363000)
            ),
            (
                "http_requests_total",
                label_pairs(&[("method", "post"), ("code", "400")]),
                Some(1395066363000)
            ),
            (
                "msdos_file_access_time_seconds",
                label_pairs(&[
                    ("path", "C:\\DIR\\FILE.TXT"),
                    ("error", "Cannot find file:\n\"FILE.TXT\"")
                ]),
                None
            ),
            ("metric_without_timestamp_and_labels", vec![], None),
            (
                "something_weird",
                label_pairs(&[("problem", "division by zero")]),
                Some(-3982045)
            ),
            ("spaced", label_pairs(&[("a", "1"), ("b", "}, #{")]), None),
            ("empty_braces", vec![], None),
            ("unicode", label_pairs(&[("name", "héllo wörld ✓")]), None),
            ("colons:and_underscores", vec![], None),
            ("h_bucket", label_pairs(&[("le", "+Inf")]), None),
        ]
    );
    let values: Vec<f64> = samples.iter().map(|s| s.value).collect();
    assert_eq!(
        values[..5],
        [1027.0, 3.0, 1.458255915e9, 12.47, f64::INFINITY]
    );
    assert_eq!(values[5], f64::NEG_INFINITY);
    assert!(values[6].is_nan());
    assert_eq!(values[7..], [-0.5, 0.001, 7.0]);
    assert_eq!(samples[4].label("problem"), Some("division by zero"));
    assert_eq!(samples[4].label("missing"), None);

    assert_eq!(parse("").unwrap(), []);
    assert_eq!(parse("\n# only comments\n#\n   \n").unwrap(), []);
}

#[test]
fn garbage_is_refused_naming_the_line_and_why() {
    let cases = [
        ("foo", "has no value"),
        ("foo bar", "\"bar\" is not a number"),
        ("foo 1.2.3", "is not a number"),
        ("foo 1 abc", "\"abc\" is not a timestamp"),
        ("foo 1 2 3", "unexpected \"3\" after the sample"),
        ("foo 1 2.5", "is not a timestamp"),
        ("foo{a=\"b} 1", "unterminated value of label a"),
        ("foo{a=b} 1", "the value of label a is not quoted"),
        ("foo{a \"b\"} 1", "expected '=' after label a"),
        ("foo{a=\"\\x\"} 1", "invalid escape \\x in label a"),
        ("foo{a=\"1\",a=\"2\"} 1", "label a appears twice"),
        ("foo{1a=\"x\"} 1", "\"1a\" is not a label name"),
        (
            "foo{a=\"1\" b=\"2\"} 1",
            "expected ',' or '}' after label a",
        ),
        ("foo{a=\"1\"", "unterminated label set"),
        ("foo{-=\"1\"} 1", "expected a label name, found '-'"),
        ("9foo 1", "\"9foo\" is not a metric name"),
        ("{a=\"b\"} 1", "expected a metric name"),
        (
            "<html><body>Not Found</body></html>",
            "expected a metric name",
        ),
        ("foo-bar 1", "\"-bar\" is not a number"),
        ("# TYPE foo bogus", "unknown metric type \"bogus\""),
        ("# TYPE foo", "TYPE without a metric type"),
        (
            "# TYPE foo counter extra",
            "unexpected \"extra\" after the metric type",
        ),
        ("# HELP", "HELP without a metric name"),
        ("# HELP 1x help", "\"1x\" is not a metric name"),
    ];
    for (line, reason) in cases {
        let text = format!("ok_before 1\n{line}\nok_after 2\n");
        let error = parse(&text).expect_err(line);
        assert_eq!(error.line, 2, "{line}");
        assert!(error.reason.contains(reason), "{line}: {}", error.reason);
        assert_eq!(error.text, line);
        assert!(error.to_string().starts_with("line 2: "), "{line}: {error}");
    }

    let long = format!("x{} 1 2 3", "y".repeat(300));
    let error = parse(&long).unwrap_err();
    assert_eq!(
        error.text.chars().count(),
        121,
        "cut to 120 and an ellipsis"
    );
}

#[test]
fn only_client_faults_and_ok_are_not_server_errors() {
    let not_errors = [
        "OK",
        "CANCELLED",
        "INVALID_ARGUMENT",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "FAILED_PRECONDITION",
        "OUT_OF_RANGE",
        "UNAUTHENTICATED",
    ];
    let errors = [
        "UNKNOWN",
        "DEADLINE_EXCEEDED",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "ABORTED",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
    ];
    for code in not_errors {
        assert!(!is_server_error(code), "{code}");
    }
    for code in errors {
        assert!(is_server_error(code), "{code}");
    }
    assert!(
        is_server_error(""),
        "a missing code counts against the server"
    );
    assert!(is_server_error("ok"), "names are exact");
}

fn sample(name: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        name: name.into(),
        labels: label_pairs(labels),
        value,
        timestamp_ms: None,
    }
}

#[test]
fn call_stats_sum_one_versions_methods_and_instances() {
    let handled = |method, code, version, value| {
        sample(
            HANDLED_TOTAL,
            &[
                ("grpc_service", "s"),
                ("grpc_method", method),
                ("grpc_code", code),
                ("version", version),
            ],
            value,
        )
    };
    let bucket = |method, le, version, value| {
        sample(
            HANDLING_BUCKET,
            &[("grpc_method", method), ("version", version), ("le", le)],
            value,
        )
    };
    let samples = [
        handled("A", "OK", "1.1.0", 90.0),
        handled("A", "INTERNAL", "1.1.0", 4.0),
        handled("B", "INVALID_ARGUMENT", "1.1.0", 5.0),
        handled("B", "UNAVAILABLE", "1.1.0", 1.0),
        // A second instance's scrape, concatenated.
        handled("A", "OK", "1.1.0", 10.0),
        // Another version is not counted.
        handled("A", "INTERNAL", "1.0.0", 1000.0),
        bucket("A", "0.1", "1.1.0", 80.0),
        bucket("A", "+Inf", "1.1.0", 94.0),
        bucket("B", "0.1", "1.1.0", 6.0),
        bucket("B", "+Inf", "1.1.0", 6.0),
        bucket("A", "+Inf", "1.0.0", 1000.0),
        bucket("A", "bogus", "1.1.0", 1.0),
        sample(STARTED_TOTAL, &[("version", "1.1.0")], 500.0),
    ];
    let stats = CallStats::from_samples(&samples, "1.1.0");
    assert_eq!(
        stats,
        CallStats {
            requests: 110.0,
            errors: 5.0,
            buckets: vec![(0.1, 86.0), (f64::INFINITY, 100.0)],
        }
    );
    assert_eq!(stats.error_ratio(), Some(5.0 / 110.0));
    assert_eq!(CallStats::default().error_ratio(), None);
}

#[test]
fn delta_subtracts_and_treats_a_lower_counter_as_a_restart() {
    let earlier = stats(100.0, 5.0, &[(0.1, 80.0), (f64::INFINITY, 100.0)]);
    let later = stats(150.0, 6.0, &[(0.1, 120.0), (f64::INFINITY, 150.0)]);
    assert_eq!(
        later.delta(&earlier),
        stats(50.0, 1.0, &[(0.1, 40.0), (f64::INFINITY, 50.0)])
    );

    // Restarted and counted 30 since: those 30 are the interval's.
    let restarted = stats(30.0, 2.0, &[(0.1, 20.0), (f64::INFINITY, 30.0)]);
    assert_eq!(restarted.delta(&earlier), restarted);
    // Restarted and already past the old total, but a bucket gives it away.
    let restarted = stats(120.0, 6.0, &[(0.1, 70.0), (f64::INFINITY, 120.0)]);
    assert_eq!(restarted.delta(&earlier), restarted);
    // Fewer errors than before can only be a restart too.
    let restarted = stats(120.0, 1.0, &[(0.1, 90.0), (f64::INFINITY, 120.0)]);
    assert_eq!(restarted.delta(&earlier), restarted);

    // Before the first call there was no histogram at all.
    assert_eq!(later.delta(&CallStats::default()), later);
    // Nothing happened.
    assert_eq!(
        later.delta(&later),
        stats(0.0, 0.0, &[(0.1, 0.0), (f64::INFINITY, 0.0)])
    );
    assert_eq!(later.delta(&later).quantile(0.99), None);
}

#[test]
fn merge_adds_instances_even_with_different_bounds() {
    let mut a = stats(10.0, 1.0, &[(0.1, 5.0), (f64::INFINITY, 10.0)]);
    let b = stats(4.0, 2.0, &[(0.2, 3.0), (f64::INFINITY, 4.0)]);
    a.merge(&b);
    assert_eq!(
        a,
        stats(14.0, 3.0, &[(0.1, 5.0), (0.2, 8.0), (f64::INFINITY, 14.0)])
    );
    let mut empty = CallStats::default();
    empty.merge(&b);
    assert_eq!(empty, b);
}

#[test]
fn quantiles_match_histogram_quantile() {
    // Worked by hand with PromQL's rules: rank = q × 100, the first bucket whose cumulative
    // count reaches the rank, linear inside it.
    let h = stats(
        100.0,
        0.0,
        &[
            (0.1, 10.0),
            (0.5, 60.0),
            (1.0, 90.0),
            (f64::INFINITY, 100.0),
        ],
    );
    let cases = [
        (0.0, 0.0),
        // rank 5 in (0, 0.1] holding 10: 0 + 0.1 × 5/10
        (0.05, 0.05),
        // rank 50: 40 into (0.1, 0.5] holding 50: 0.1 + 0.4 × 40/50
        (0.5, 0.42),
        // rank 75: 15 into (0.5, 1] holding 30: 0.5 + 0.5 × 15/30
        (0.75, 0.75),
        // rank 90 is the top of (0.5, 1]
        (0.9, 1.0),
        // ranks in the +Inf bucket answer the highest finite bound
        (0.95, 1.0),
        (0.99, 1.0),
        (1.0, 1.0),
    ];
    for (q, expected) in cases {
        let got = h.quantile(q).unwrap();
        assert!((got - expected).abs() < 1e-12, "q={q}: {got} != {expected}");
    }
    assert_eq!(h.quantile(-0.5), Some(f64::NEG_INFINITY));
    assert_eq!(h.quantile(1.5), Some(f64::INFINITY));
    assert!(h.quantile(f64::NAN).unwrap().is_nan());

    // 100 calls of about 3 ms in the layer's buckets: p99 = 2.5 ms + 2.5 ms × 99/100.
    let mut buckets: Vec<(f64, f64)> = LATENCY_BUCKETS
        .iter()
        .map(|&bound| (bound, if bound < 0.003 { 0.0 } else { 100.0 }))
        .collect();
    buckets.push((f64::INFINITY, 100.0));
    let calls = stats(100.0, 0.0, &buckets);
    assert!((calls.quantile(0.99).unwrap() - 0.004975).abs() < 1e-12);

    // A dip between buckets (scraped mid-update) is evened out as PromQL does.
    let dipping = stats(20.0, 0.0, &[(0.1, 10.0), (0.5, 8.0), (f64::INFINITY, 20.0)]);
    assert!((dipping.quantile(0.5).unwrap() - 0.1).abs() < 1e-12);
    // A first bound at or below zero is answered as is.
    let negative = stats(4.0, 0.0, &[(-1.0, 2.0), (f64::INFINITY, 4.0)]);
    assert_eq!(negative.quantile(0.25), Some(-1.0));

    // No calls, no +Inf bucket, or only the +Inf bucket: no answer.
    assert_eq!(CallStats::default().quantile(0.5), None);
    assert_eq!(
        stats(0.0, 0.0, &[(0.1, 0.0), (f64::INFINITY, 0.0)]).quantile(0.5),
        None
    );
    assert_eq!(
        stats(5.0, 0.0, &[(0.1, 2.0), (1.0, 5.0)]).quantile(0.5),
        None
    );
    assert_eq!(stats(5.0, 0.0, &[(f64::INFINITY, 5.0)]).quantile(0.5), None);
}

#[test]
fn call_stats_print_as_a_summary() {
    let h = stats(200.0, 3.0, &[(0.1, 200.0), (f64::INFINITY, 200.0)]);
    assert_eq!(h.to_string(), "200 calls, 3 server errors, p99 99.0 ms");
    assert_eq!(CallStats::default().to_string(), "0 calls, 0 server errors");
}

/// A one-shot HTTP server on loopback that answers the first request with `reply` (raw bytes),
/// or never answers when `reply` is `None`.
async fn raw_server(reply: Option<String>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut request = vec![0; 4096];
        let read = stream.read(&mut request).await.unwrap();
        let request = String::from_utf8_lossy(&request[..read]).into_owned();
        assert!(
            request.starts_with("GET /metrics HTTP/1.1\r\n"),
            "{request}"
        );
        assert!(
            request
                .to_ascii_lowercase()
                .contains("accept: text/plain;version=0.0.4")
        );
        match reply {
            Some(reply) => {
                stream.write_all(reply.as_bytes()).await.unwrap();
                stream.shutdown().await.unwrap();
            }
            None => std::future::pending::<()>().await,
        }
    });
    address
}

fn ok_reply(body: &str) -> String {
    format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[tokio::test]
async fn fetch_reads_an_exposition_over_http1() {
    let address = raw_server(Some(ok_reply("# TYPE up gauge\nup{a=\"b\"} 1\n"))).await;
    let samples = fetch(&address, Duration::from_secs(5)).await.unwrap();
    assert_eq!(samples, [sample("up", &[("a", "b")], 1.0)]);
}

#[tokio::test]
async fn fetch_failures_say_what_went_wrong() {
    let timeout = Duration::from_secs(5);
    for address in [
        "http://127.0.0.1:1",
        "127.0.0.1",
        "a b:1",
        "user@127.0.0.1:1",
        "",
    ] {
        let error = fetch(address, timeout).await.unwrap_err();
        assert!(
            matches!(error, ScrapeError::InvalidAddress { .. }),
            "{address}: {error}"
        );
    }

    // Nobody listens on a port just released.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = listener.local_addr().unwrap().to_string();
    drop(listener);
    let error = fetch(&closed, timeout).await.unwrap_err();
    assert!(matches!(error, ScrapeError::Connect { .. }), "{error}");

    let address = raw_server(Some(
        "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n".into(),
    ))
    .await;
    let error = fetch(&address, timeout).await.unwrap_err();
    assert!(
        matches!(
            error,
            ScrapeError::Status {
                status: StatusCode::NOT_FOUND,
                ..
            }
        ),
        "{error}"
    );

    let address = raw_server(Some(ok_reply("ok 1\nthis is not it\n"))).await;
    let error = fetch(&address, timeout).await.unwrap_err();
    match &error {
        ScrapeError::Parse { source, .. } => assert_eq!(source.line, 2),
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("line 2"), "{error}");

    let address = raw_server(Some("garbage\r\n\r\n".into())).await;
    let error = fetch(&address, timeout).await.unwrap_err();
    assert!(matches!(error, ScrapeError::Http { .. }), "{error}");

    let address = raw_server(None).await;
    let error = fetch(&address, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(matches!(error, ScrapeError::Timeout { .. }), "{error}");
}
