//! Reading an instance's metrics back: [`fetch`] and [`parse`] the Prometheus text format, and
//! sum the calls of one version into [`CallStats`] for a rollout's analysis.
//!
//! An analysis interval is the [`CallStats::delta`] between two scrapes of one instance; the
//! deltas of a version's instances are then [merged](CallStats::merge), and the result gives the
//! interval's [error ratio](CallStats::error_ratio) and [latency quantiles](CallStats::quantile).
//! Taking the delta per instance before summing matters: a restarted instance starts its
//! counters from zero, which is only visible in its own series.

use std::{fmt, time::Duration};

use bytes::Bytes;
use http::{Request, StatusCode, header, uri::Authority};
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::metrics::{HANDLED_TOTAL, METRICS_PATH};

/// One sample of an exposition: a metric name, its labels in the order written, its value and
/// its timestamp in milliseconds, if it had one.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub timestamp_ms: Option<i64>,
}

impl Sample {
    /// The value of label `name`, if the sample has it.
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(label, _)| label == name)
            .map(|(_, value)| value.as_str())
    }
}

/// A line of an exposition that is not the Prometheus text format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}: `{text}`")]
pub struct ParseError {
    /// The line's number, from 1.
    pub line: usize,
    /// What is wrong with it.
    pub reason: String,
    /// The line, cut to 120 characters.
    pub text: String,
}

impl ParseError {
    fn new(line: usize, text: &str, reason: impl Into<String>) -> Self {
        const SHOWN: usize = 120;
        let text = match text.char_indices().nth(SHOWN) {
            Some((cut, _)) => format!("{}…", &text[..cut]),
            None => text.to_owned(),
        };
        Self {
            line,
            reason: reason.into(),
            text,
        }
    }
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum ScrapeError {
    #[error("{address:?} is not a host:port address: {reason}")]
    InvalidAddress { address: String, reason: String },
    #[error("connecting to {address}: {source}")]
    Connect {
        address: String,
        source: std::io::Error,
    },
    #[error("GET http://{address}/metrics: {source}")]
    Http {
        address: String,
        source: hyper::Error,
    },
    #[error("GET http://{address}/metrics answered {status}")]
    Status { address: String, status: StatusCode },
    #[error("reading the metrics of {address}: {reason}")]
    Body { address: String, reason: String },
    #[error("no metrics from {address} within {timeout:?}")]
    Timeout { address: String, timeout: Duration },
    #[error("the metrics of {address}: {source}")]
    Parse { address: String, source: ParseError },
}

/// The largest exposition [`fetch`] reads; a server's is a few kilobytes per method.
pub const MAX_EXPOSITION_BYTES: usize = 16 * 1024 * 1024;

/// Fetches `GET http://{address}/metrics` over HTTP/1.1 (`address` is `host:port`, as the
/// registry lists instances) and parses it, all within `timeout`.
pub async fn fetch(address: &str, timeout: Duration) -> Result<Vec<Sample>, ScrapeError> {
    let text = tokio::time::timeout(timeout, get_metrics(address))
        .await
        .map_err(|_| ScrapeError::Timeout {
            address: address.to_owned(),
            timeout,
        })??;
    parse(&text).map_err(|source| ScrapeError::Parse {
        address: address.to_owned(),
        source,
    })
}

async fn get_metrics(address: &str) -> Result<String, ScrapeError> {
    let invalid = |reason: &str| ScrapeError::InvalidAddress {
        address: address.to_owned(),
        reason: reason.to_owned(),
    };
    let authority: Authority = address.parse().map_err(|_| invalid("not an authority"))?;
    if authority.as_str().contains('@') {
        return Err(invalid("user info is not allowed"));
    }
    let port = authority.port_u16().ok_or_else(|| invalid("no port"))?;
    let host = authority.host();
    // `Authority` keeps an IPv6 host's brackets, which the resolver does not take.
    let host = host
        .strip_prefix('[')
        .and_then(|host| host.strip_suffix(']'))
        .unwrap_or(host);

    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|source| ScrapeError::Connect {
            address: address.to_owned(),
            source,
        })?;
    let _ = stream.set_nodelay(true);
    let http_error = |source| ScrapeError::Http {
        address: address.to_owned(),
        source,
    };
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_error)?;
    let request = Request::get(METRICS_PATH)
        .header(header::HOST, authority.as_str())
        .header(header::ACCEPT, "text/plain;version=0.0.4")
        .body(Empty::<Bytes>::new())
        .expect("a GET with valid headers");

    let exchange = async {
        let response = sender.send_request(request).await.map_err(http_error)?;
        if response.status() != StatusCode::OK {
            return Err(ScrapeError::Status {
                address: address.to_owned(),
                status: response.status(),
            });
        }
        let body = Limited::new(response.into_body(), MAX_EXPOSITION_BYTES)
            .collect()
            .await
            .map_err(|error| ScrapeError::Body {
                address: address.to_owned(),
                reason: error.to_string(),
            })?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| ScrapeError::Body {
            address: address.to_owned(),
            reason: "not UTF-8".into(),
        })
    };
    // The connection is driven here rather than spawned, so it closes with this future.
    let mut exchange = std::pin::pin!(exchange);
    tokio::select! {
        text = &mut exchange => text,
        closed = connection => {
            closed.map_err(http_error)?;
            exchange.await
        }
    }
}

/// The blanks that separate tokens.
const BLANKS: [char; 2] = [' ', '\t'];

/// Parses the Prometheus text exposition format (version 0.0.4): one sample per line,
/// `name{label="value",…} value [timestamp]`, label values with `\\`, `\"` and `\n` escapes,
/// values as Go writes floats (`NaN`, `+Inf`, `-Inf` included), timestamps in milliseconds.
/// Blank lines and comments are skipped, but `# HELP` and `# TYPE` lines must be well-formed.
/// The first line that is not the format is an error naming it.
pub fn parse(text: &str) -> Result<Vec<Sample>, ParseError> {
    let mut samples = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        // A trailing CR is tolerated so that files edited on Windows still read.
        let line = raw.trim_matches(|c| BLANKS.contains(&c) || c == '\r');
        if line.is_empty() {
            continue;
        }
        let parsed = match line.strip_prefix('#') {
            Some(comment) => check_comment(comment),
            None => parse_sample(line).map(|sample| samples.push(sample)),
        };
        parsed.map_err(|reason| ParseError::new(index + 1, raw, reason))?;
    }
    Ok(samples)
}

/// `# HELP name text`, `# TYPE name type`, or any other comment.
fn check_comment(comment: &str) -> Result<(), String> {
    let mut tokens = comment.split(BLANKS).filter(|token| !token.is_empty());
    let keyword = tokens.next();
    if !matches!(keyword, Some("HELP" | "TYPE")) {
        return Ok(());
    }
    let keyword = keyword.unwrap_or_default();
    let name = tokens
        .next()
        .ok_or_else(|| format!("{keyword} without a metric name"))?;
    if !is_metric_name(name) {
        return Err(format!("{name:?} is not a metric name"));
    }
    if keyword == "TYPE" {
        match (tokens.next(), tokens.next()) {
            (Some("counter" | "gauge" | "histogram" | "summary" | "untyped"), None) => {}
            (Some(kind), None) => return Err(format!("unknown metric type {kind:?}")),
            (None, _) => return Err("TYPE without a metric type".into()),
            (Some(_), Some(extra)) => {
                return Err(format!("unexpected {extra:?} after the metric type"));
            }
        }
    }
    Ok(())
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// A cursor over one sample line.
struct Cursor<'a> {
    rest: &'a str,
}

impl<'a> Cursor<'a> {
    fn take_while(&mut self, keep: impl Fn(char) -> bool) -> &'a str {
        let end = self.rest.find(|c| !keep(c)).unwrap_or(self.rest.len());
        let (taken, rest) = self.rest.split_at(end);
        self.rest = rest;
        taken
    }

    fn skip_blanks(&mut self) {
        self.rest = self.rest.trim_start_matches(BLANKS);
    }

    fn eat(&mut self, c: char) -> bool {
        match self.rest.strip_prefix(c) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn token(&mut self) -> &'a str {
        self.take_while(|c| !BLANKS.contains(&c))
    }
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let mut cursor = Cursor { rest: line };
    let name = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':');
    if !is_metric_name(name) {
        return Err(if name.is_empty() {
            "expected a metric name".into()
        } else {
            format!("{name:?} is not a metric name")
        });
    }
    cursor.skip_blanks();
    let labels = if cursor.eat('{') {
        parse_labels(&mut cursor)?
    } else {
        Vec::new()
    };
    cursor.skip_blanks();
    let value = cursor.token();
    if value.is_empty() {
        return Err(format!("{name} has no value"));
    }
    let value = parse_value(value).ok_or_else(|| format!("{value:?} is not a number"))?;
    cursor.skip_blanks();
    let timestamp = cursor.token();
    let timestamp_ms = if timestamp.is_empty() {
        None
    } else {
        Some(
            timestamp
                .parse::<i64>()
                .map_err(|_| format!("{timestamp:?} is not a timestamp in milliseconds"))?,
        )
    };
    cursor.skip_blanks();
    if !cursor.rest.is_empty() {
        return Err(format!("unexpected {:?} after the sample", cursor.rest));
    }
    Ok(Sample {
        name: name.to_owned(),
        labels,
        value,
        timestamp_ms,
    })
}

/// A sample value: Rust's float syntax takes every decimal form and every `NaN`/`Inf` spelling
/// Prometheus writes (Go's hexadecimal floats, which no exposition uses, are refused).
fn parse_value(token: &str) -> Option<f64> {
    token.parse::<f64>().ok()
}

/// The labels after `{`, up to and including `}`.
fn parse_labels(cursor: &mut Cursor<'_>) -> Result<Vec<(String, String)>, String> {
    let mut labels: Vec<(String, String)> = Vec::new();
    loop {
        cursor.skip_blanks();
        if cursor.eat('}') {
            return Ok(labels);
        }
        let name = cursor.take_while(|c| c.is_ascii_alphanumeric() || c == '_');
        if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(match cursor.rest.chars().next() {
                Some(c) if name.is_empty() => format!("expected a label name, found {c:?}"),
                None if name.is_empty() => "unterminated label set".into(),
                _ => format!("{name:?} is not a label name"),
            });
        }
        cursor.skip_blanks();
        if !cursor.eat('=') {
            return Err(format!("expected '=' after label {name}"));
        }
        cursor.skip_blanks();
        if !cursor.eat('"') {
            return Err(format!("the value of label {name} is not quoted"));
        }
        let value = parse_label_value(cursor, name)?;
        if labels.iter().any(|(seen, _)| seen == name) {
            return Err(format!("label {name} appears twice"));
        }
        labels.push((name.to_owned(), value));
        cursor.skip_blanks();
        if cursor.eat(',') {
            continue;
        }
        if cursor.eat('}') {
            return Ok(labels);
        }
        return Err(if cursor.rest.is_empty() {
            "unterminated label set".into()
        } else {
            format!("expected ',' or '}}' after label {name}")
        });
    }
}

/// A label value after its opening quote, up to and including the closing one.
fn parse_label_value(cursor: &mut Cursor<'_>, name: &str) -> Result<String, String> {
    let mut value = String::new();
    let mut chars = cursor.rest.char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => {
                cursor.rest = &cursor.rest[at + 1..];
                return Ok(value);
            }
            '\\' => match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, other)) => {
                    return Err(format!("invalid escape \\{other} in label {name}"));
                }
                None => break,
            },
            c => value.push(c),
        }
    }
    Err(format!("unterminated value of label {name}"))
}

/// Whether a call that ended with `code` (a canonical name, as in the `grpc_code` label) counts
/// against the server. Every code does except `OK` and the ones that say the caller was at
/// fault or gave up: `CANCELLED`, `INVALID_ARGUMENT`, `NOT_FOUND`, `ALREADY_EXISTS`,
/// `FAILED_PRECONDITION`, `OUT_OF_RANGE` and `UNAUTHENTICATED`. A version that starts
/// answering those more often is judged by its latency and by the caller's own metrics, not
/// by this ratio; a name this function does not know is counted as an error.
pub fn is_server_error(code: &str) -> bool {
    !NOT_SERVER_ERRORS.contains(&code)
}

/// The codes [`is_server_error`] does not count against the server. One list, so that the
/// orchestrator's PromQL (`grpc_code!~"OK|CANCELLED|…"`) and the scraper judge alike.
pub const NOT_SERVER_ERRORS: [&str; 8] = [
    "OK",
    "CANCELLED",
    "INVALID_ARGUMENT",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "FAILED_PRECONDITION",
    "OUT_OF_RANGE",
    "UNAUTHENTICATED",
];

/// The samples of [`crate::metrics::HANDLING_SECONDS`]'s buckets.
const HANDLING_BUCKET: &str = "flotilla_grpc_server_handling_seconds_bucket";

/// The calls one version handled: how many, how many were server errors
/// ([`is_server_error`]), and their latency histogram as `(upper bound in seconds, cumulative
/// count)` pairs sorted by bound, the last bound `+Inf`. Counts are `f64`, as scraped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub requests: f64,
    pub errors: f64,
    pub buckets: Vec<(f64, f64)>,
}

impl CallStats {
    /// The calls of `version` in `samples` (one scrape, or several instances' concatenated),
    /// summed over methods and instances. Bucket samples whose `le` is not a number are left
    /// out.
    pub fn from_samples(samples: &[Sample], version: &str) -> CallStats {
        let mut stats = CallStats::default();
        let mut buckets = Vec::new();
        for sample in samples {
            if sample.label("version") != Some(version) {
                continue;
            }
            if sample.name == HANDLED_TOTAL {
                stats.requests += sample.value;
                if is_server_error(sample.label("grpc_code").unwrap_or_default()) {
                    stats.errors += sample.value;
                }
            } else if sample.name == HANDLING_BUCKET
                && let Some(bound) = sample.label("le").and_then(parse_value)
            {
                buckets.push((bound, sample.value));
            }
        }
        buckets.sort_by(|a: &(f64, f64), b| a.0.total_cmp(&b.0));
        for (bound, count) in buckets {
            match stats.buckets.last_mut() {
                Some(last) if last.0 == bound => last.1 += count,
                _ => stats.buckets.push((bound, count)),
            }
        }
        stats
    }

    /// The calls between `earlier` and this scrape of the same instance. A counter lower than
    /// before means the instance restarted and counted afresh, so this scrape's counts are the
    /// delta (calls between the earlier scrape and the restart are lost, as in PromQL's
    /// `increase`).
    pub fn delta(&self, earlier: &CallStats) -> CallStats {
        let restarted = self.requests < earlier.requests
            || self.errors < earlier.errors
            || self
                .buckets
                .iter()
                .any(|&(bound, count)| count < earlier.count_at(bound));
        if restarted {
            return self.clone();
        }
        CallStats {
            requests: self.requests - earlier.requests,
            errors: self.errors - earlier.errors,
            buckets: self
                .buckets
                .iter()
                .map(|&(bound, count)| (bound, count - earlier.count_at(bound)))
                .collect(),
        }
    }

    /// Adds `other`'s calls (another instance's) to these. Histograms with different bounds are
    /// merged on the union of the bounds, each side counting at a bound it lacks what it counted
    /// at its next lower bound.
    pub fn merge(&mut self, other: &CallStats) {
        let mut bounds: Vec<f64> = self
            .buckets
            .iter()
            .chain(&other.buckets)
            .map(|&(bound, _)| bound)
            .collect();
        bounds.sort_by(f64::total_cmp);
        bounds.dedup();
        let buckets = bounds
            .into_iter()
            .map(|bound| (bound, self.count_at(bound) + other.count_at(bound)))
            .collect();
        self.requests += other.requests;
        self.errors += other.errors;
        self.buckets = buckets;
    }

    /// Server errors per call; `None` without calls.
    pub fn error_ratio(&self) -> Option<f64> {
        (self.requests > 0.0).then(|| self.errors / self.requests)
    }

    /// The `q`-quantile of the calls' latency in seconds, as PromQL's `histogram_quantile`
    /// computes it: the bucket holding rank `q × count`, interpolated linearly inside it (from 0
    /// for the first bucket); the highest finite bound when the rank falls in the `+Inf`
    /// bucket; `-Inf` and `+Inf` for `q` below 0 and above 1. `None` without calls, or without
    /// a `+Inf` bucket and one other.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if q.is_nan() {
            return Some(f64::NAN);
        }
        let mut buckets = self.buckets.clone();
        match buckets.last() {
            Some(&(bound, _)) if bound == f64::INFINITY && buckets.len() >= 2 => {}
            _ => return None,
        }
        // Counts scraped at slightly different moments can dip; PromQL evens them out.
        let mut highest = 0.0_f64;
        for (_, count) in &mut buckets {
            highest = highest.max(*count);
            *count = highest;
        }
        let observations = buckets[buckets.len() - 1].1;
        if observations <= 0.0 {
            return None;
        }
        if q < 0.0 {
            return Some(f64::NEG_INFINITY);
        }
        if q > 1.0 {
            return Some(f64::INFINITY);
        }
        let mut rank = q * observations;
        let last_finite = buckets.len() - 1;
        let b = buckets[..last_finite].partition_point(|&(_, count)| count < rank);
        if b == last_finite {
            return Some(buckets[last_finite - 1].0);
        }
        if b == 0 && buckets[0].0 <= 0.0 {
            return Some(buckets[0].0);
        }
        let (bucket_end, mut count) = buckets[b];
        let mut bucket_start = 0.0;
        if b > 0 {
            bucket_start = buckets[b - 1].0;
            count -= buckets[b - 1].1;
            rank -= buckets[b - 1].1;
        }
        Some(bucket_start + (bucket_end - bucket_start) * (rank / count))
    }

    /// What this histogram counted at `bound`: the cumulative count of its largest bound not
    /// above it, or 0 below its first.
    fn count_at(&self, bound: f64) -> f64 {
        let below = self.buckets.partition_point(|&(own, _)| own <= bound);
        below.checked_sub(1).map_or(0.0, |i| self.buckets[i].1)
    }
}

impl fmt::Display for CallStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} calls, {} server errors", self.requests, self.errors)?;
        if let Some(p99) = self.quantile(0.99) {
            write!(f, ", p99 {:.1} ms", p99 * 1000.0)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
