//! Gauges whose every label set is replaced at once, for counts that live elsewhere (versions by
//! lifecycle state in the registry's store, rollouts by state in the orchestrator's).
//!
//! A task reads the counts and [`SnapshotGauges::replace`]s them; a scrape encodes the last
//! snapshot whole. Unlike a `Family` of gauges, a label set that is gone from the snapshot (a
//! service with no instances left) is gone from the exposition rather than stuck at its last
//! value, and a scrape never sees half an update.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, gauge::ConstGauge},
    registry::Registry,
};

/// One gauge metric with a fixed list of label names; see the module docs.
#[derive(Debug, Clone)]
pub struct SnapshotGauges {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: &'static str,
    help: &'static str,
    label_names: &'static [&'static str],
    values: Mutex<Vec<(Vec<String>, i64)>>,
}

impl SnapshotGauges {
    /// Registers the gauge `name` in `registry`, with no samples until the first
    /// [`replace`](Self::replace).
    pub fn register(
        registry: &mut Registry,
        name: &'static str,
        help: &'static str,
        label_names: &'static [&'static str],
    ) -> Self {
        let inner = Arc::new(Inner {
            name,
            help,
            label_names,
            values: Mutex::default(),
        });
        registry.register_collector(Box::new(inner.clone()));
        Self { inner }
    }

    /// Replaces every sample: each is its label values, in the order of the label names, and
    /// its value.
    ///
    /// # Panics
    /// When a sample does not have one value per label name: a programming error.
    pub fn replace(&self, samples: impl IntoIterator<Item = (Vec<String>, i64)>) {
        let samples: Vec<_> = samples.into_iter().collect();
        for (labels, _) in &samples {
            assert_eq!(
                labels.len(),
                self.inner.label_names.len(),
                "{}: one value per label",
                self.inner.name
            );
        }
        *self
            .inner
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = samples;
    }
}

impl Collector for Inner {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let values = self
            .values
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let mut metric =
            encoder.encode_descriptor(self.name, self.help, None, MetricType::Gauge)?;
        for (labels, value) in &values {
            let set: Vec<(&str, &str)> = self
                .label_names
                .iter()
                .copied()
                .zip(labels.iter().map(String::as_str))
                .collect();
            ConstGauge::new(*value).encode(metric.encode_family(&set)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use prometheus_client::encoding::text::encode;

    use super::*;

    fn exposition(registry: &Registry) -> String {
        let mut text = String::new();
        encode(&mut text, registry).unwrap();
        text
    }

    #[test]
    fn a_snapshot_replaces_every_sample() {
        let mut registry = Registry::default();
        let gauges = SnapshotGauges::register(
            &mut registry,
            "things",
            "Things by kind",
            &["service", "kind"],
        );
        let text = exposition(&registry);
        assert!(text.contains("# TYPE things gauge"), "{text}");
        assert!(
            !text.contains("things{"),
            "no samples before the first snapshot: {text}"
        );

        gauges.replace([
            (vec!["greeter".into(), "a".into()], 2),
            (vec!["ledger".into(), "b".into()], 5),
        ]);
        let text = exposition(&registry);
        assert!(
            text.contains("things{service=\"greeter\",kind=\"a\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("things{service=\"ledger\",kind=\"b\"} 5"),
            "{text}"
        );

        gauges.replace([(vec!["greeter".into(), "a".into()], 3)]);
        let text = exposition(&registry);
        assert!(
            text.contains("things{service=\"greeter\",kind=\"a\"} 3"),
            "{text}"
        );
        assert!(
            !text.contains("ledger"),
            "a label set gone from the snapshot: {text}"
        );
    }

    #[test]
    #[should_panic(expected = "one value per label")]
    fn a_sample_needs_one_value_per_label() {
        let mut registry = Registry::default();
        SnapshotGauges::register(&mut registry, "things", "Things", &["service"])
            .replace([(vec![], 1)]);
    }
}
