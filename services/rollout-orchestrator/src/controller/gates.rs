//! The gates while a rollout runs: health (each new instance SERVING by its deadline, and
//! staying so) and analysis (every interval, the new version's calls against the stable one's;
//! failures beyond the limit abort, missing data beyond its limit holds the rollout).

use std::time::Duration;

use flotilla_model::{EventKind, Gate, Halt, Health, Millis, Timestamp, Verdict, Version};
use tokio::time::Instant;

use super::Controller;
use crate::platform::PlatformInstance;

impl Controller {
    /// The health gate over the new instances: one that exited, one that served and then
    /// stopped serving, or one not serving by its deadline fails the rollout.
    pub(super) fn health_gate(&self, new: &[PlatformInstance]) -> Option<Halt> {
        if let Some((exited, report)) = self.exited.first() {
            let how = match report {
                Some(report) => format!(": {report}"),
                None => " (the platform's log of it says why)".to_owned(),
            };
            return Some(Halt {
                gate: Gate::Health,
                message: format!(
                    "instance {} of {} at {} exited on its own{how}",
                    exited.handle, exited.version, exited.address
                ),
                figures: Vec::new(),
                query: format!("platform: {}", self.ctx.platform.name()),
                time: Timestamp::now(),
            });
        }
        let deadline = Duration::from_millis(self.rollout.health_deadline_ms);
        for instance in new {
            let Some(observed) = self.health.observed(&instance.address) else {
                continue;
            };
            let failed = match (observed.served, observed.health) {
                (true, Health::NotServing | Health::Unknown) => Some(format!(
                    "instance {} of {} at {} went {} after serving",
                    instance.handle,
                    instance.version,
                    instance.address,
                    observed.health.as_str()
                )),
                (false, _) if observed.since.elapsed() > deadline => Some(format!(
                    "instance {} of {} at {} was not SERVING within {} (last seen {})",
                    instance.handle,
                    instance.version,
                    instance.address,
                    Millis(self.rollout.health_deadline_ms),
                    observed.health.as_str()
                )),
                _ => None,
            };
            if let Some(message) = failed {
                return Some(Halt {
                    gate: Gate::Health,
                    message,
                    figures: Vec::new(),
                    query: format!("grpc.health.v1.Health/Watch(\"\") on {}", instance.address),
                    time: Timestamp::now(),
                });
            }
        }
        None
    }

    /// Background analysis: while the new version takes traffic, every interval compares it
    /// with the stable one.
    pub(super) async fn analyze(&mut self, new: &[PlatformInstance], stable: &[PlatformInstance]) {
        let active = !self.rollout.skip_analysis
            && !self.rollout.promotion.is_some_and(|p| p.full)
            && !new.is_empty()
            && self
                .rollout
                .weights
                .iter()
                .any(|(v, w)| *v == self.rollout.to_version && *w > 0);
        if !active {
            self.analyzer.reset();
            return;
        }
        if Instant::now() < self.next_analysis {
            return;
        }
        self.next_analysis =
            Instant::now() + Duration::from_millis(self.rollout.analysis.interval_ms);
        let targets: Vec<(Version, String)> = new
            .iter()
            .chain(stable.iter())
            .map(|i| (i.version.clone(), i.address.clone()))
            .collect();
        let view = self
            .analyzer
            .measure(
                self.rollout.from_version.as_ref(),
                &self.rollout.to_version,
                &targets,
                self.rollout.last_analysis.as_ref(),
            )
            .await;
        let Some(view) = view else {
            // The first scrape only sets the baseline.
            return;
        };
        let spec = self.rollout.analysis;
        let halt = |message: String| Halt {
            gate: Gate::Analysis,
            message,
            figures: view.figures.clone(),
            query: view.query.clone(),
            time: view.time,
        };
        match view.verdict {
            Verdict::Failed if view.failures > spec.failure_limit => {
                // The message names what failed; the halt carries every figure.
                let failing: Vec<String> = view
                    .figures
                    .iter()
                    .filter(|f| f.name != "requests" && f.threshold > 0.0 && f.value > f.threshold)
                    .map(ToString::to_string)
                    .collect();
                let h = halt(format!(
                    "{} failed interval{} (limit {}): {}",
                    view.failures,
                    if view.failures == 1 { "" } else { "s" },
                    spec.failure_limit,
                    failing.join(", ")
                ));
                self.rollout.last_analysis = Some(view);
                self.halt(h);
            }
            Verdict::Inconclusive if view.inconclusive_in_a_row > spec.inconclusive_limit => {
                let h = halt(format!(
                    "{} inconclusive intervals in a row (limit {}): too few calls to judge, and \
                     missing data never passes a rollout; resume or abort it",
                    view.inconclusive_in_a_row, spec.inconclusive_limit,
                ));
                self.rollout.last_analysis = Some(view);
                let events = self.rollout.hold(h, Timestamp::now());
                self.record(events);
            }
            _ => {
                // Every interval is an event only when the verdict changes, so the history stays
                // readable; the last measurement is always on the rollout itself.
                let changed = self
                    .rollout
                    .last_analysis
                    .as_ref()
                    .is_none_or(|last| last.verdict != view.verdict);
                if changed {
                    let figures: Vec<String> =
                        view.figures.iter().map(ToString::to_string).collect();
                    let summary = format!("{}: {}", view.verdict.as_str(), figures.join(", "));
                    self.event(EventKind::Analysis, summary, None);
                }
                self.rollout.last_analysis = Some(view);
            }
        }
    }
}
