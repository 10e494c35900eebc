//! Gauges whose every label set is replaced at once, for counts that live elsewhere (versions by
//! lifecycle state in the registry's store, rollouts by state in the orchestrator's).
//!
//! A task reads the counts and [`SnapshotGauges::replace`]s them; a scrape encodes the last
//! snapshot whole. Unlike a `Family` of gauges, a label set that is gone from the snapshot (a
//! service with no instances left) is gone from the exposition rather than stuck at its last
//! value, and a scrape never sees half an update.

use std::{
    future::Future,
    sync::{Arc, Mutex, PoisonError},
    time::Duration,
};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{MetricType, gauge::ConstGauge},
    registry::Registry,
};
use tokio::sync::{broadcast, watch};

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

/// How long [`refresh_on_change`] waits after an announcement for more before reading: a burst of
/// changes costs one read.
pub const SETTLE: Duration = Duration::from_millis(100);

/// Runs `refresh` now, after every announcement on `changes` (coalesced over [`SETTLE`]) and at
/// least every `interval`, until `stop` turns true or `changes` closes. For snapshot gauges of a
/// store: the store announces its commits, and the interval catches what changes unannounced
/// (a lease that lapses).
pub async fn refresh_on_change<T, F, Fut>(
    mut changes: broadcast::Receiver<T>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    mut refresh: F,
) where
    T: Clone,
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    loop {
        refresh().await;
        tokio::select! {
            () = stopped(&mut stop) => return,
            () = tokio::time::sleep(interval) => {}
            change = changes.recv() => {
                if let Err(broadcast::error::RecvError::Closed) = change {
                    return;
                }
                tokio::time::sleep(SETTLE).await;
                // Everything announced by now is in the next read.
                while !matches!(
                    changes.try_recv(),
                    Err(broadcast::error::TryRecvError::Empty | broadcast::error::TryRecvError::Closed)
                ) {}
            }
        }
    }
}

/// Unlike `wait_for` in `select!`, holds no borrow of the channel, so the future stays `Send`.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
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

    #[tokio::test(start_paused = true)]
    async fn refreshes_come_after_changes_settle_and_on_the_interval() {
        let (changes, receiver) = broadcast::channel::<u32>(16);
        let (stop, stopped) = watch::channel(false);
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = count.clone();
        let task = tokio::spawn(refresh_on_change(
            receiver,
            Duration::from_secs(10),
            stopped,
            move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {}
            },
        ));
        let refreshes = || count.load(std::sync::atomic::Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert_eq!(refreshes(), 1, "at once");
        for n in 0..5 {
            changes.send(n).unwrap();
        }
        tokio::time::sleep(SETTLE * 2).await;
        assert_eq!(refreshes(), 2, "a burst of changes is one refresh");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(refreshes(), 3, "the interval");
        stop.send(true).unwrap();
        task.await.unwrap();
    }

    #[test]
    #[should_panic(expected = "one value per label")]
    fn a_sample_needs_one_value_per_label() {
        let mut registry = Registry::default();
        SnapshotGauges::register(&mut registry, "things", "Things", &["service"])
            .replace([(vec![], 1)]);
    }
}
