//! Weighted random choice of an endpoint: a version's weight is split equally among its
//! eligible instances, and a call goes to an instance with probability proportional to its part.
//!
//! Pure and deterministic given the random number, so the distribution is unit-tested with a
//! seeded RNG; the hot path feeds it `fastrand::f64()`.

use std::collections::HashMap;

/// One endpoint as the picker sees it.
#[derive(Debug, Clone)]
pub(crate) struct Entry<T> {
    pub item: T,
    pub version: String,
    /// The weight of the endpoint's version, shared by its eligible instances.
    pub version_weight: u32,
    /// Serving (as the registry reports) and healthy (as the client sees it).
    pub eligible: bool,
}

/// A built choice: eligible items with a positive part, and their cumulative weights.
#[derive(Debug)]
pub(crate) struct Picker<T> {
    items: Vec<T>,
    /// Each item's probability of being picked, 0 for those never picked.
    shares: Vec<f64>,
    /// Indices into `items` of the pickable ones, with the running sum of their weights.
    slots: Vec<(f64, usize)>,
    total: f64,
}

impl<T> Picker<T> {
    /// Builds the choice. A version with weight 0 gets nothing unless every eligible endpoint
    /// has weight 0, in which case each eligible endpoint gets an equal part: a route must not
    /// leave a caller with nothing to call while something is serving.
    pub fn new(entries: Vec<Entry<T>>) -> Self {
        let mut eligible_per_version: HashMap<&str, u32> = HashMap::new();
        for entry in entries.iter().filter(|e| e.eligible) {
            *eligible_per_version.entry(&entry.version).or_default() += 1;
        }
        let any_weight = entries.iter().any(|e| e.eligible && e.version_weight > 0);
        let weights: Vec<f64> = entries
            .iter()
            .map(|e| match (e.eligible, any_weight) {
                (false, _) => 0.0,
                (true, false) => 1.0,
                (true, true) => {
                    f64::from(e.version_weight)
                        / f64::from(eligible_per_version[e.version.as_str()])
                }
            })
            .collect();

        let mut slots = Vec::new();
        let mut total = 0.0;
        for (index, weight) in weights.iter().enumerate() {
            if *weight > 0.0 {
                total += weight;
                slots.push((total, index));
            }
        }
        let shares = weights
            .iter()
            .map(|w| if total > 0.0 { w / total } else { 0.0 })
            .collect();
        Self {
            items: entries.into_iter().map(|e| e.item).collect(),
            shares,
            slots,
            total,
        }
    }

    /// The item that `unit` (uniform in `[0, 1)`) lands on, or `None` when nothing is eligible.
    pub fn pick(&self, unit: f64) -> Option<&T> {
        let target = unit * self.total;
        let slot = self
            .slots
            .partition_point(|(cumulative, _)| *cumulative <= target)
            // Rounding can put `target` at the very end; it belongs to the last slot.
            .min(self.slots.len().checked_sub(1)?);
        Some(&self.items[self.slots[slot].1])
    }

    /// Like [`Picker::pick`], among the items `avoid` does not reject, with the same relative
    /// weights; `None` when it rejects every pickable item. Used for retries, which must go
    /// elsewhere, so it walks the slots instead of searching them.
    pub fn pick_avoiding(&self, unit: f64, avoid: impl Fn(&T) -> bool) -> Option<&T> {
        let mut previous = 0.0;
        let allowed: Vec<(f64, usize)> = self
            .slots
            .iter()
            .map(|&(cumulative, index)| {
                let weight = cumulative - previous;
                previous = cumulative;
                (weight, index)
            })
            .filter(|(_, index)| !avoid(&self.items[*index]))
            .collect();
        let total: f64 = allowed.iter().map(|(w, _)| w).sum();
        let mut target = unit * total;
        for (weight, index) in &allowed {
            if target < *weight {
                return Some(&self.items[*index]);
            }
            target -= weight;
        }
        allowed.last().map(|(_, index)| &self.items[*index])
    }

    /// Every item with its probability of being picked.
    pub fn shares(&self) -> impl Iterator<Item = (&T, f64)> {
        self.items.iter().zip(self.shares.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(
        item: &'static str,
        version: &str,
        weight: u32,
        eligible: bool,
    ) -> Entry<&'static str> {
        Entry {
            item,
            version: version.into(),
            version_weight: weight,
            eligible,
        }
    }

    /// Picks `n` times with a seeded RNG and returns each item's frequency.
    fn frequencies(picker: &Picker<&'static str>, n: u32) -> HashMap<&'static str, f64> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut counts: HashMap<&'static str, u32> = HashMap::new();
        for _ in 0..n {
            *counts.entry(picker.pick(rng.f64()).unwrap()).or_default() += 1;
        }
        counts
            .into_iter()
            .map(|(k, c)| (k, f64::from(c) / f64::from(n)))
            .collect()
    }

    #[test]
    fn a_versions_weight_is_split_among_its_instances() {
        let picker = Picker::new(vec![
            entry("a1", "1.0.0", 25, true),
            entry("a2", "1.0.0", 25, true),
            entry("b1", "1.1.0", 75, true),
        ]);
        let shares: HashMap<_, _> = picker.shares().map(|(k, s)| (*k, s)).collect();
        assert!((shares["a1"] - 0.125).abs() < 1e-9, "{shares:?}");
        assert!((shares["b1"] - 0.75).abs() < 1e-9, "{shares:?}");

        let seen = frequencies(&picker, 100_000);
        assert!((seen["a1"] - 0.125).abs() < 0.01, "{seen:?}");
        assert!((seen["a2"] - 0.125).abs() < 0.01, "{seen:?}");
        assert!((seen["b1"] - 0.75).abs() < 0.01, "{seen:?}");
    }

    #[test]
    fn a_version_with_weight_zero_gets_nothing() {
        let picker = Picker::new(vec![
            entry("old", "1.0.0", 0, true),
            entry("new1", "1.1.0", 10, true),
            entry("new2", "1.1.0", 10, true),
        ]);
        let seen = frequencies(&picker, 10_000);
        assert!(!seen.contains_key("old"), "{seen:?}");
        assert!((seen["new1"] - 0.5).abs() < 0.02, "{seen:?}");
        let old_share = picker.shares().find(|(k, _)| **k == "old").unwrap().1;
        assert_eq!(old_share, 0.0);
    }

    #[test]
    fn when_every_candidate_has_weight_zero_each_gets_an_equal_share() {
        let picker = Picker::new(vec![
            entry("a", "1.0.0", 0, true),
            entry("b", "1.1.0", 0, true),
            entry("c", "1.1.0", 0, true),
            // The only weighted endpoint cannot take calls, so it does not count.
            entry("d", "2.0.0", 100, false),
        ]);
        let seen = frequencies(&picker, 30_000);
        for name in ["a", "b", "c"] {
            assert!((seen[name] - 1.0 / 3.0).abs() < 0.02, "{seen:?}");
        }
        assert!(!seen.contains_key("d"), "{seen:?}");
    }

    #[test]
    fn ineligible_instances_get_nothing_and_their_versions_share_stays() {
        let picker = Picker::new(vec![
            entry("a1", "1.0.0", 50, true),
            entry("a2", "1.0.0", 50, false),
            entry("b1", "1.1.0", 50, true),
        ]);
        let seen = frequencies(&picker, 20_000);
        assert!(!seen.contains_key("a2"), "{seen:?}");
        // a2's part of 1.0.0 goes to a1, not to the other version.
        assert!((seen["a1"] - 0.5).abs() < 0.02, "{seen:?}");
        assert!((seen["b1"] - 0.5).abs() < 0.02, "{seen:?}");
    }

    #[test]
    fn nothing_eligible_picks_nothing() {
        let picker = Picker::new(vec![entry("a", "1.0.0", 10, false)]);
        assert_eq!(picker.pick(0.5), None);
        assert_eq!(picker.pick_avoiding(0.5, |_| false), None);
        assert_eq!(Picker::<&str>::new(vec![]).pick(0.0), None);
        assert!(picker.shares().all(|(_, s)| s == 0.0));
    }

    #[test]
    fn the_ends_of_the_unit_interval_land_on_the_first_and_last_item() {
        let picker = Picker::new(vec![
            entry("a", "1.0.0", 1, true),
            entry("b", "1.1.0", 1, true),
        ]);
        assert_eq!(picker.pick(0.0), Some(&"a"));
        assert_eq!(picker.pick(0.999_999_999), Some(&"b"));
        assert_eq!(picker.pick(1.0), Some(&"b"));
    }

    #[test]
    fn avoiding_keeps_the_relative_weights_of_the_rest() {
        let picker = Picker::new(vec![
            entry("a", "1.0.0", 10, true),
            entry("b", "1.1.0", 30, true),
            entry("c", "2.0.0", 60, true),
        ]);
        let mut rng = fastrand::Rng::with_seed(11);
        let mut b = 0u32;
        for _ in 0..20_000 {
            let picked = *picker.pick_avoiding(rng.f64(), |i| *i == "a").unwrap();
            assert_ne!(picked, "a");
            b += u32::from(picked == "b");
        }
        // b and c weigh 30:60 once a is out.
        assert!((f64::from(b) / 20_000.0 - 1.0 / 3.0).abs() < 0.02, "{b}");
        assert_eq!(picker.pick_avoiding(0.3, |_| true), None);
    }
}
