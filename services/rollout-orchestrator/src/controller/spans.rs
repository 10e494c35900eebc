//! Each step of a rollout is one span of the rollout's trace: a child of the call that started
//! it, whichever orchestrator carries the step out, after restarts too.

use flotilla_model::RolloutState;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::Controller;

/// What a step span covers: a plan step, or the abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SpanKey {
    Step(u32),
    Abort,
}

impl Controller {
    /// The span this tick's work runs in: that of the current step (or of the abort), opened
    /// the first time the step is worked on and ended when the rollout moves past it.
    pub(super) fn step_span(&mut self) -> tracing::Span {
        let key = match self.rollout.state {
            RolloutState::Aborting => SpanKey::Abort,
            _ => SpanKey::Step(self.rollout.step_index),
        };
        if let Some((current, span)) = &self.step_span
            && *current == key
        {
            return span.clone();
        }
        let name = match key {
            SpanKey::Abort => format!("rollout {} abort", self.rollout.service),
            SpanKey::Step(index) => format!(
                "rollout {} step {}: {}",
                self.rollout.service,
                index + 1,
                self.rollout
                    .plan
                    .get(index as usize)
                    .map_or_else(String::new, ToString::to_string)
            ),
        };
        let span = tracing::info_span!(
            "rollout.step",
            otel.name = %name,
            rollout = %self.rollout.id,
            service = %self.rollout.service,
            to_version = %self.rollout.to_version,
        );
        if let Some(traceparent) = &self.rollout.trace_parent {
            let _ = span.set_parent(flotilla_telemetry::propagation::context_of_traceparent(
                traceparent,
            ));
        }
        self.step_span = Some((key, span.clone()));
        span
    }
}
