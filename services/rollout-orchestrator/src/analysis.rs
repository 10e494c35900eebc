//! The analysis gate: every interval, the calls of both versions are compared: the new
//! version's error ratio against the stable one's, and its p99 latency ([`judge`]).
//!
//! Where the figures come from is the [`MetricsSource`]: by default the Prometheus metrics of
//! each instance are read straight from the instances and an interval is the delta between two
//! reads; with a Prometheus server, they are PromQL instant queries over a range of about one
//! interval.
//!
//! Missing data is never a pass: an interval in which the new version served fewer than
//! `min_requests` calls, or whose figures could not be read, is INCONCLUSIVE. Read from the
//! instances, its calls are carried into the next interval; a Prometheus range already spans
//! whatever it holds.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use async_trait::async_trait;

use flotilla_model::{
    AnalysisSpec, AnalysisView, Figure, ServiceName, Timestamp, Verdict, Version,
};
use flotilla_telemetry::{
    metrics::{HANDLED_TOTAL, HANDLING_SECONDS},
    scrape::{self, CallStats, Sample},
};

use crate::prometheus::{Prometheus, Reading, VersionReading};

/// Where the analysis reads its figures.
#[derive(Debug, Clone)]
pub enum MetricsSource {
    /// Every instance of both versions, read by the reader (`GET /metrics` by default).
    Instances(Arc<dyn InstanceMetrics>),
    /// PromQL over the instances a Prometheus server discovered through the registry.
    Prometheus(Prometheus),
}

impl Default for MetricsSource {
    fn default() -> Self {
        Self::Instances(Arc::new(ScrapedMetrics))
    }
}

/// Reads one instance's Prometheus metrics.
#[async_trait]
pub trait InstanceMetrics: Send + Sync + fmt::Debug {
    async fn read(&self, address: &str) -> Result<Vec<Sample>, String>;
}

/// `GET /metrics` on the instance's gRPC port.
#[derive(Debug, Clone, Copy, Default)]
pub struct ScrapedMetrics;

#[async_trait]
impl InstanceMetrics for ScrapedMetrics {
    async fn read(&self, address: &str) -> Result<Vec<Sample>, String> {
        scrape::fetch(address, SCRAPE_TIMEOUT)
            .await
            .map_err(|e| e.to_string())
    }
}

/// How long one instance may take to answer a metrics read.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);

/// The calls of one version over one window, reduced to what the gate compares.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    pub requests: f64,
    pub errors: f64,
    pub p99_ms: Option<f64>,
}

impl Window {
    fn of(stats: &CallStats) -> Self {
        Self {
            requests: stats.requests,
            errors: stats.errors,
            p99_ms: stats.quantile(0.99).map(|seconds| seconds * 1000.0),
        }
    }

    /// A version's figures as Prometheus answered them; None unless all three were read. No
    /// error series at all means no errors once the calls were read: a version that never
    /// failed has none.
    fn from_prometheus(reading: &VersionReading) -> Option<Self> {
        let requests = reading.requests.1.value()?;
        let errors = match &reading.errors.1 {
            Reading::Value(errors) => *errors,
            Reading::Missing => 0.0,
            Reading::Unreadable(_) => return None,
        };
        let p99_seconds = reading.p99_seconds.1.value()?;
        Some(Self {
            requests,
            errors,
            p99_ms: Some(p99_seconds * 1000.0),
        })
    }

    fn error_ratio(&self) -> f64 {
        if self.requests > 0.0 {
            self.errors / self.requests
        } else {
            0.0
        }
    }
}

/// Keeps the previous read of every instance and the calls not yet judged.
#[derive(Debug)]
pub struct Analyzer {
    spec: AnalysisSpec,
    source: MetricsSource,
    service: ServiceName,
    /// The last read of each instance, by address.
    previous: HashMap<String, CallStats>,
    /// Calls since the last conclusive interval, by version.
    pending: HashMap<Version, CallStats>,
    /// The stable version's last conclusive figures, for intervals in which it had too few calls.
    baseline: Option<Window>,
}

impl Analyzer {
    pub fn new(spec: AnalysisSpec, source: MetricsSource, service: ServiceName) -> Self {
        Self {
            spec,
            source,
            service,
            previous: HashMap::new(),
            pending: HashMap::new(),
            baseline: None,
        }
    }

    /// Forgets the reads, so the next measurement starts a fresh window (after a pause in traffic).
    pub fn reset(&mut self) {
        self.previous.clear();
        self.pending.clear();
    }

    /// Reads the interval's figures (from every instance in `targets` (version, address), or
    /// from Prometheus) and judges them. None when this read only sets the starting point.
    pub async fn measure(
        &mut self,
        stable: Option<&Version>,
        new: &Version,
        targets: &[(Version, String)],
        prior: Option<&AnalysisView>,
    ) -> Option<AnalysisView> {
        let (new_window, stable_window, query) = match self.source.clone() {
            MetricsSource::Instances(reader) => {
                self.read_instances(reader.as_ref(), stable, new, targets)
                    .await?
            }
            MetricsSource::Prometheus(prometheus) => {
                self.read_prometheus(&prometheus, stable, new).await
            }
        };
        let view = judge(
            &self.spec,
            new,
            stable,
            new_window,
            stable_window,
            self.baseline,
            prior,
            query,
        );
        if view.verdict != Verdict::Inconclusive {
            if let Some(window) =
                stable_window.filter(|w| w.requests >= self.spec.min_requests as f64)
            {
                self.baseline = Some(window);
            }
            self.pending.clear();
        }
        Some(view)
    }

    /// Both versions' figures over the last range, by PromQL. A query that fails or finds no
    /// data leaves its version without a window: for the new version that is INCONCLUSIVE.
    async fn read_prometheus(
        &self,
        prometheus: &Prometheus,
        stable: Option<&Version>,
        new: &Version,
    ) -> (Option<Window>, Option<Window>, String) {
        let range = prometheus.range_seconds(Duration::from_millis(self.spec.interval_ms));
        let (new_reading, stable_reading) =
            futures::join!(prometheus.read(&self.service, new, range), async {
                match stable {
                    Some(version) => Some(prometheus.read(&self.service, version, range).await),
                    None => None,
                }
            });
        let mut query = format!(
            "PromQL at {}/api/v1/query: {}",
            prometheus.url().trim_end_matches('/'),
            new_reading.describe()
        );
        if let Some(reading) = &stable_reading {
            query.push_str("; ");
            query.push_str(&reading.describe());
        }
        (
            Window::from_prometheus(&new_reading),
            stable_reading.as_ref().and_then(Window::from_prometheus),
            query,
        )
    }

    /// Both versions' calls since the last read of each instance, carried over from
    /// inconclusive intervals. None when this read only sets where every counter stands.
    async fn read_instances(
        &mut self,
        reader: &dyn InstanceMetrics,
        stable: Option<&Version>,
        new: &Version,
        targets: &[(Version, String)],
    ) -> Option<(Option<Window>, Option<Window>, String)> {
        let reads =
            futures::future::join_all(targets.iter().map(|(version, address)| async move {
                let read = reader.read(address).await;
                (version, address, read)
            }))
            .await;

        // The first read after a (re)start only sets where every counter stands.
        let starting = self.previous.is_empty();
        let mut sources = Vec::new();
        let mut any_delta = false;
        for (version, address, read) in reads {
            match read {
                Ok(samples) => {
                    let now = CallStats::from_samples(&samples, &version.to_string());
                    // A new instance that appears mid-analysis started its counters with it, so
                    // its first read is all canary traffic; any other first read sets the start.
                    let delta = match self.previous.get(address.as_str()) {
                        Some(before) => Some(now.delta(before)),
                        None if version == new && !starting => Some(now.clone()),
                        None => None,
                    };
                    if let Some(delta) = delta {
                        self.pending
                            .entry(version.clone())
                            .and_modify(|sum| sum.merge(&delta))
                            .or_insert(delta);
                        any_delta = true;
                    }
                    self.previous.insert(address.clone(), now);
                    sources.push(format!("{address} ({version})"));
                }
                Err(error) => sources.push(format!("{address} ({version}): unreadable: {error}")),
            }
        }
        let query = format!(
            "{} and {} read from /metrics of {}",
            HANDLED_TOTAL,
            HANDLING_SECONDS,
            sources.join(", ")
        );
        if starting || (!any_delta && self.pending.is_empty()) {
            return None;
        }
        let new_window = self.pending.get(new).map(Window::of);
        let stable_window = stable.and_then(|v| self.pending.get(v)).map(Window::of);
        Some((new_window, stable_window, query))
    }
}

/// The verdict on one interval, with the running counts carried from `prior`.
#[allow(clippy::too_many_arguments)]
pub fn judge(
    spec: &AnalysisSpec,
    new_version: &Version,
    stable_version: Option<&Version>,
    new: Option<Window>,
    stable: Option<Window>,
    baseline: Option<Window>,
    prior: Option<&AnalysisView>,
    query: String,
) -> AnalysisView {
    let (mut failures, mut inconclusive, mut passes) = prior.map_or((0, 0, 0), |p| {
        (p.failures, p.inconclusive_in_a_row, p.passes_in_a_row)
    });
    let new = new.unwrap_or(Window {
        requests: 0.0,
        errors: 0.0,
        p99_ms: None,
    });
    let stable_name = stable_version.map_or_else(|| "none".to_owned(), Version::to_string);
    // The stable side's own interval when it had enough calls, else its last good one.
    let reference = stable
        .filter(|w| w.requests >= spec.min_requests as f64)
        .or(baseline);

    let mut figures = vec![Figure {
        name: "requests".into(),
        version: new_version.to_string(),
        value: new.requests,
        threshold: spec.min_requests as f64,
    }];
    if new.requests < spec.min_requests as f64 {
        inconclusive += 1;
        passes = 0;
        return AnalysisView {
            verdict: Verdict::Inconclusive,
            figures,
            query,
            time: Timestamp::now(),
            failures,
            inconclusive_in_a_row: inconclusive,
            passes_in_a_row: passes,
        };
    }

    let stable_ratio = reference.map_or(0.0, |w| w.error_ratio());
    let ratio_limit = stable_ratio + spec.max_error_ratio_increase;
    figures.push(Figure {
        name: "error_ratio".into(),
        version: new_version.to_string(),
        value: new.error_ratio(),
        threshold: ratio_limit,
    });
    if let Some(reference) = reference {
        figures.push(Figure {
            name: "error_ratio".into(),
            version: stable_name.clone(),
            value: reference.error_ratio(),
            threshold: 0.0,
        });
    }
    let mut failed = new.error_ratio() > ratio_limit;

    let stable_p99 = reference.and_then(|w| w.p99_ms);
    if let Some(p99) = new.p99_ms {
        // Without a stable p99 there is nothing to compare with; the figure is still shown.
        let limit = stable_p99.map_or(0.0, |s| (s * spec.max_p99_ratio).max(spec.p99_floor_ms));
        figures.push(Figure {
            name: "p99_ms".into(),
            version: new_version.to_string(),
            value: p99,
            threshold: limit,
        });
        if let Some(s) = stable_p99 {
            figures.push(Figure {
                name: "p99_ms".into(),
                version: stable_name,
                value: s,
                threshold: 0.0,
            });
        }
        if limit > 0.0 && p99 > limit {
            failed = true;
        }
    }

    inconclusive = 0;
    let verdict = if failed {
        failures += 1;
        passes = 0;
        Verdict::Failed
    } else {
        passes += 1;
        Verdict::Passed
    };
    AnalysisView {
        verdict,
        figures,
        query,
        time: Timestamp::now(),
        failures,
        inconclusive_in_a_row: inconclusive,
        passes_in_a_row: passes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(requests: f64, errors: f64, p99_ms: f64) -> Option<Window> {
        Some(Window {
            requests,
            errors,
            p99_ms: Some(p99_ms),
        })
    }

    fn verdict(
        new: Option<Window>,
        stable: Option<Window>,
        baseline: Option<Window>,
    ) -> AnalysisView {
        judge(
            &AnalysisSpec::default(),
            &Version::new(1, 1, 0),
            Some(&Version::new(1, 0, 0)),
            new,
            stable,
            baseline,
            None,
            "q".into(),
        )
    }

    #[test]
    fn a_new_version_as_good_as_the_stable_one_passes() {
        let view = verdict(window(100.0, 0.0, 5.0), window(900.0, 0.0, 4.0), None);
        assert_eq!(view.verdict, Verdict::Passed);
        assert_eq!(view.passes_in_a_row, 1);
    }

    #[test]
    fn errors_above_the_stable_ratio_plus_the_allowance_fail() {
        // 2% against 0.5% with a 1-point allowance: 0.02 > 0.015.
        let view = verdict(window(100.0, 2.0, 5.0), window(1000.0, 5.0, 5.0), None);
        assert_eq!(view.verdict, Verdict::Failed);
        assert_eq!(view.failures, 1);
        let ratio = view
            .figures
            .iter()
            .find(|f| f.name == "error_ratio" && f.version == "1.1.0")
            .unwrap();
        assert_eq!(ratio.value, 0.02);
        assert!((ratio.threshold - 0.015).abs() < 1e-12);
    }

    #[test]
    fn too_few_calls_are_inconclusive_never_a_pass() {
        let view = verdict(window(3.0, 0.0, 1.0), window(1000.0, 0.0, 1.0), None);
        assert_eq!(view.verdict, Verdict::Inconclusive);
        assert_eq!(view.inconclusive_in_a_row, 1);
        let none = verdict(None, window(1000.0, 0.0, 1.0), None);
        assert_eq!(none.verdict, Verdict::Inconclusive);
    }

    #[test]
    fn latency_fails_only_above_both_the_ratio_and_the_floor() {
        // 30 ms vs 10 ms: above 1.5× but the limit is the 25 ms floor → 30 > 25 fails.
        assert_eq!(
            verdict(window(100.0, 0.0, 30.0), window(100.0, 0.0, 10.0), None).verdict,
            Verdict::Failed
        );
        // 20 ms vs 10 ms: above 1.5× yet under the floor: noise, passes.
        assert_eq!(
            verdict(window(100.0, 0.0, 20.0), window(100.0, 0.0, 10.0), None).verdict,
            Verdict::Passed
        );
        // 140 ms vs 100 ms: under 1.5×.
        assert_eq!(
            verdict(window(100.0, 0.0, 140.0), window(100.0, 0.0, 100.0), None).verdict,
            Verdict::Passed
        );
    }

    #[test]
    fn a_quiet_stable_side_is_replaced_by_its_last_good_figures() {
        let baseline = window(500.0, 0.0, 10.0);
        let view = verdict(window(100.0, 0.0, 40.0), window(2.0, 0.0, 1.0), baseline);
        assert_eq!(view.verdict, Verdict::Failed, "{view:?}");
        let view = verdict(window(100.0, 0.0, 40.0), window(2.0, 0.0, 1.0), None);
        assert_eq!(
            view.verdict,
            Verdict::Passed,
            "no reference: latency not judged"
        );
    }

    #[test]
    fn prometheus_figures_make_a_window_only_when_all_were_read() {
        let reading = |requests: Reading, errors: Reading, p99: Reading| VersionReading {
            version: Version::new(1, 2, 0),
            requests: ("r".into(), requests),
            errors: ("e".into(), errors),
            p99_seconds: ("p".into(), p99),
        };
        use Reading::{Missing, Unreadable, Value};
        assert_eq!(
            Window::from_prometheus(&reading(Value(100.0), Value(30.0), Value(0.004))),
            Some(Window {
                requests: 100.0,
                errors: 30.0,
                p99_ms: Some(4.0)
            })
        );
        // A version that never failed has no error series: zero errors, once calls were read.
        assert_eq!(
            Window::from_prometheus(&reading(Value(100.0), Missing, Value(0.004)))
                .map(|w| w.errors),
            Some(0.0)
        );
        for missing in [
            reading(Missing, Value(1.0), Value(0.004)),
            reading(Value(100.0), Unreadable("down".into()), Value(0.004)),
            reading(Value(100.0), Value(1.0), Missing),
            reading(Unreadable("down".into()), Missing, Missing),
        ] {
            assert_eq!(Window::from_prometheus(&missing), None, "{missing:?}");
        }
        // And no window for the new version is never a pass.
        assert_eq!(
            verdict(None, window(1000.0, 0.0, 1.0), None).verdict,
            Verdict::Inconclusive
        );
    }

    #[test]
    fn counts_carry_over_from_the_prior_measurement() {
        let prior = verdict(window(3.0, 0.0, 1.0), None, None);
        let next = judge(
            &AnalysisSpec::default(),
            &Version::new(1, 1, 0),
            None,
            window(1.0, 0.0, 1.0),
            None,
            None,
            Some(&prior),
            "q".into(),
        );
        assert_eq!(next.inconclusive_in_a_row, 2);
        let failed = verdict(window(100.0, 50.0, 1.0), None, None);
        let again = judge(
            &AnalysisSpec::default(),
            &Version::new(1, 1, 0),
            None,
            window(100.0, 50.0, 1.0),
            None,
            None,
            Some(&failed),
            "q".into(),
        );
        assert_eq!((again.failures, again.passes_in_a_row), (2, 0));
    }
}
