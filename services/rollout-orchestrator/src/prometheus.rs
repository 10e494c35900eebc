//! Analysis figures from a Prometheus server: instant queries over its HTTP API
//! (`GET /api/v1/query`), by PromQL over the target labels the registry's service discovery
//! gives every instance (`flotilla_service`, `flotilla_version`; see the registry's
//! `/prometheus/targets`).

use std::{fmt, time::Duration};

use bytes::Bytes;
use flotilla_model::{ServiceName, Version};
use flotilla_telemetry::{
    metrics::{HANDLED_TOTAL, HANDLING_SECONDS},
    scrape::NOT_SERVER_ERRORS,
};
use http::{Request, StatusCode, Uri, header, uri::Authority};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

/// How long one query may take, connection included.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// The largest answer read; an instant query of one `sum` is a few hundred bytes.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PrometheusUrlError {
    #[error("{url:?} is not a URL: {reason}")]
    Invalid { url: String, reason: String },
    #[error("{url:?}: only http:// is supported")]
    Scheme { url: String },
}

/// A Prometheus server the analysis reads from.
#[derive(Debug, Clone)]
pub struct Prometheus {
    /// As given, for messages.
    url: String,
    authority: Authority,
    /// The path prefix a reverse proxy may put before `/api/v1`, without a trailing `/`.
    prefix: String,
    scrape_interval: Duration,
}

/// One query's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    Value(f64),
    /// An empty vector or NaN: no series, or no samples in the range.
    Missing,
    /// The server could not be asked or refused the query.
    Unreadable(String),
}

impl Reading {
    pub fn value(&self) -> Option<f64> {
        match self {
            Reading::Value(value) => Some(*value),
            _ => None,
        }
    }
}

impl fmt::Display for Reading {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reading::Value(value) => write!(f, "{value}"),
            Reading::Missing => f.write_str("no data"),
            Reading::Unreadable(error) => write!(f, "unreadable: {error}"),
        }
    }
}

/// The three figures of one version over one range, each with the PromQL sent for it.
#[derive(Debug, Clone)]
pub struct VersionReading {
    pub version: Version,
    pub requests: (String, Reading),
    pub errors: (String, Reading),
    pub p99_seconds: (String, Reading),
}

impl VersionReading {
    /// The queries and their answers, as the analysis records what it read.
    pub fn describe(&self) -> String {
        [&self.requests, &self.errors, &self.p99_seconds]
            .iter()
            .map(|(query, reading)| format!("{query} => {reading}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

impl Prometheus {
    /// `url` is the server's base (`http://prometheus:9090`, or with a path prefix);
    /// `scrape_interval` how often it scrapes the instances, which bounds the range below.
    pub fn new(url: &str, scrape_interval: Duration) -> Result<Self, PrometheusUrlError> {
        let invalid = |reason: &str| PrometheusUrlError::Invalid {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url.parse().map_err(|_| invalid("unparsable"))?;
        if uri.scheme_str() != Some("http") {
            return Err(PrometheusUrlError::Scheme {
                url: url.to_owned(),
            });
        }
        let authority = uri.authority().cloned().ok_or_else(|| invalid("no host"))?;
        if authority.as_str().contains('@') {
            return Err(invalid("user info is not supported"));
        }
        if uri.query().is_some() {
            return Err(invalid("a query string is not expected"));
        }
        Ok(Self {
            url: url.to_owned(),
            authority,
            prefix: uri.path().trim_end_matches('/').to_owned(),
            scrape_interval,
        })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The range of every query, in whole seconds: the analysis interval rounded up, and at
    /// least two scrape intervals, since `increase` and `rate` need two samples in the range and
    /// a shorter one would leave most intervals without data.
    pub fn range_seconds(&self, interval: Duration) -> u64 {
        let ceil = |d: Duration| d.as_millis().div_ceil(1000) as u64;
        ceil(interval).max(ceil(self.scrape_interval * 2)).max(1)
    }

    /// The PromQL of one version's figures over `range_seconds`: calls, server errors, p99.
    pub fn queries(
        service: &ServiceName,
        version: &Version,
        range_seconds: u64,
    ) -> (String, String, String) {
        let selector = format!(
            "flotilla_service=\"{}\",flotilla_version=\"{}\"",
            escape(&service.to_string()),
            escape(&version.to_string())
        );
        let requests = format!("sum(increase({HANDLED_TOTAL}{{{selector}}}[{range_seconds}s]))");
        let errors = format!(
            "sum(increase({HANDLED_TOTAL}{{{selector},grpc_code!~\"{}\"}}[{range_seconds}s]))",
            NOT_SERVER_ERRORS.join("|")
        );
        let p99 = format!(
            "histogram_quantile(0.99, sum by (le) (rate({HANDLING_SECONDS}_bucket{{{selector}}}[{range_seconds}s])))"
        );
        (requests, errors, p99)
    }

    /// Reads one version's figures; the three queries run at once.
    pub async fn read(
        &self,
        service: &ServiceName,
        version: &Version,
        range_seconds: u64,
    ) -> VersionReading {
        let (requests, errors, p99) = Self::queries(service, version, range_seconds);
        let (r, e, p) = tokio::join!(self.query(&requests), self.query(&errors), self.query(&p99));
        VersionReading {
            version: version.clone(),
            requests: (requests, r),
            errors: (errors, e),
            p99_seconds: (p99, p),
        }
    }

    /// One instant query; its single sample's value.
    pub async fn query(&self, promql: &str) -> Reading {
        match tokio::time::timeout(QUERY_TIMEOUT, self.get(promql)).await {
            Err(_) => Reading::Unreadable(format!("no answer within {QUERY_TIMEOUT:?}")),
            Ok(Err(error)) => Reading::Unreadable(error),
            Ok(Ok((status, body))) => interpret(status, &body),
        }
    }

    async fn get(&self, promql: &str) -> Result<(StatusCode, Bytes), String> {
        let host = self.authority.host();
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let port = self.authority.port_u16().unwrap_or(80);
        let stream = TcpStream::connect((host, port))
            .await
            .map_err(|e| format!("connecting to {}: {e}", self.authority))?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        let path = format!(
            "{}/api/v1/query?query={}",
            self.prefix,
            percent_encode(promql)
        );
        let request = Request::get(path)
            .header(header::HOST, self.authority.as_str())
            .header(header::ACCEPT, "application/json")
            .body(Empty::<Bytes>::new())
            .map_err(|e| e.to_string())?;
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let body = Limited::new(response.into_body(), MAX_ANSWER_BYTES)
                .collect()
                .await
                .map_err(|e| format!("reading the answer: {e}"))?
                .to_bytes();
            Ok((status, body))
        };
        // Driven here rather than spawned, so the connection closes with this future.
        let mut exchange = std::pin::pin!(exchange);
        tokio::select! {
            answer = &mut exchange => answer,
            closed = connection => {
                closed.map_err(|e| e.to_string())?;
                exchange.await
            }
        }
    }
}

/// An answer of `/api/v1/query` as a reading: the API's own error when it gives one (Prometheus
/// answers 400, 422 or 503 with `status: error`), else the one sample of the vector.
fn interpret(status: StatusCode, body: &[u8]) -> Reading {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return Reading::Unreadable(format!("HTTP {status}, not JSON"));
    };
    if answer["status"] != "success" || status != StatusCode::OK {
        return Reading::Unreadable(format!(
            "HTTP {status}: {} {}",
            answer["errorType"].as_str().unwrap_or("error"),
            answer["error"].as_str().unwrap_or("without a message")
        ));
    }
    let data = &answer["data"];
    if data["resultType"] != "vector" {
        return Reading::Unreadable(format!(
            "a {} where a vector was expected",
            data["resultType"]
        ));
    }
    let Some(result) = data["result"].as_array() else {
        return Reading::Unreadable("no result array".into());
    };
    let Some(sample) = result.first() else {
        return Reading::Missing;
    };
    if result.len() > 1 {
        return Reading::Unreadable(format!(
            "{} series where one sum was expected",
            result.len()
        ));
    }
    // Prometheus writes sample values as strings, Go's float formatting ("NaN", "+Inf").
    match sample["value"][1].as_str().map(str::parse::<f64>) {
        Some(Ok(value)) if value.is_nan() => Reading::Missing,
        Some(Ok(value)) => Reading::Value(value),
        _ => Reading::Unreadable(format!("a sample without a value: {sample}")),
    }
}

/// A label value inside PromQL double quotes.
fn escape(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"")
}

/// RFC 3986 query encoding: everything but the unreserved characters as `%XX`.
fn percent_encode(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len() * 2);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    encoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prometheus(scrape_ms: u64) -> Prometheus {
        Prometheus::new("http://127.0.0.1:9090/", Duration::from_millis(scrape_ms)).unwrap()
    }

    #[test]
    fn the_range_is_the_interval_rounded_up_and_at_least_two_scrapes() {
        let p = prometheus(1_000);
        assert_eq!(p.range_seconds(Duration::from_millis(500)), 2);
        assert_eq!(p.range_seconds(Duration::from_millis(2_000)), 2);
        assert_eq!(p.range_seconds(Duration::from_millis(2_100)), 3);
        assert_eq!(prometheus(15_000).range_seconds(Duration::from_secs(1)), 30);
    }

    #[test]
    fn queries_select_the_version_by_its_discovered_labels() {
        let (requests, errors, p99) = Prometheus::queries(
            &ServiceName::parse("service", "greeter").unwrap(),
            &Version::new(1, 2, 0),
            2,
        );
        assert_eq!(
            requests,
            "sum(increase(flotilla_grpc_server_handled_total{flotilla_service=\"greeter\",\
             flotilla_version=\"1.2.0\"}[2s]))"
        );
        assert_eq!(
            errors,
            "sum(increase(flotilla_grpc_server_handled_total{flotilla_service=\"greeter\",\
             flotilla_version=\"1.2.0\",grpc_code!~\"OK|CANCELLED|INVALID_ARGUMENT|NOT_FOUND|\
             ALREADY_EXISTS|FAILED_PRECONDITION|OUT_OF_RANGE|UNAUTHENTICATED\"}[2s]))"
        );
        assert_eq!(
            p99,
            "histogram_quantile(0.99, sum by (le) (rate(flotilla_grpc_server_handling_seconds_bucket\
             {flotilla_service=\"greeter\",flotilla_version=\"1.2.0\"}[2s])))"
        );
    }

    #[test]
    fn answers_become_values_missing_data_or_errors() {
        let ok = |body: &str| interpret(StatusCode::OK, body.as_bytes());
        assert_eq!(
            ok(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"42.5"]}]}}"#
            ),
            Reading::Value(42.5)
        );
        assert_eq!(
            ok(r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#),
            Reading::Missing
        );
        assert_eq!(
            ok(
                r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1.5,"NaN"]}]}}"#
            ),
            Reading::Missing
        );
        let refused = interpret(
            StatusCode::BAD_REQUEST,
            br#"{"status":"error","errorType":"bad_data","error":"parse error"}"#,
        );
        assert_eq!(
            refused,
            Reading::Unreadable("HTTP 400 Bad Request: bad_data parse error".into())
        );
        assert!(matches!(
            interpret(StatusCode::BAD_GATEWAY, b"<html>"),
            Reading::Unreadable(_)
        ));
    }

    #[test]
    fn urls_are_checked_once_at_start() {
        assert!(Prometheus::new("https://p:9090", Duration::from_secs(1)).is_err());
        assert!(Prometheus::new("not a url", Duration::from_secs(1)).is_err());
        let p = Prometheus::new("http://p:9090/prom/", Duration::from_secs(1)).unwrap();
        assert_eq!(
            (p.authority.as_str(), p.prefix.as_str()),
            ("p:9090", "/prom")
        );
    }

    #[test]
    fn promql_is_percent_encoded() {
        assert_eq!(
            percent_encode("sum(a{b=\"c\"}[2s])"),
            "sum%28a%7Bb%3D%22c%22%7D%5B2s%5D%29"
        );
    }
}
