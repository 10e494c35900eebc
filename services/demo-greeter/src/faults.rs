//! Fault knobs for tests of the fleet: injected errors and latency on each call, and timers that
//! turn the instance unhealthy or crash the process.

use std::{sync::Mutex, time::Duration};

use flotilla_server::HealthHandle;
use rand::{RngExt, SeedableRng, rngs::StdRng};
use tonic::Status;

/// The faults applied to every call.
#[derive(Debug)]
pub struct Faults {
    error_ratio: f64,
    latency: Duration,
    rng: Mutex<StdRng>,
}

impl Faults {
    /// `error_ratio` of calls fail (0 to 1; clamped), each after `latency`. A seed makes the
    /// sequence of failures reproducible.
    pub fn new(error_ratio: f64, latency: Duration, seed: Option<u64>) -> Self {
        let rng = match seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => rand::make_rng(),
        };
        Self {
            error_ratio: error_ratio.clamp(0.0, 1.0),
            latency,
            rng: Mutex::new(rng),
        }
    }

    /// No faults at all.
    pub fn none() -> Self {
        Self::new(0.0, Duration::ZERO, Some(0))
    }

    /// Run before each call: waits the added latency, then fails the call with INTERNAL if this
    /// one is drawn to fail. INTERNAL, not UNAVAILABLE, so callers treat it as the server's
    /// fault rather than a connectivity failure worth retrying elsewhere.
    pub async fn before_call(&self) -> Result<(), Status> {
        if !self.latency.is_zero() {
            tokio::time::sleep(self.latency).await;
        }
        if self.draw_failure() {
            return Err(Status::internal(format!(
                "injected fault (error ratio {})",
                self.error_ratio
            )));
        }
        Ok(())
    }

    /// Whether the next call fails.
    fn draw_failure(&self) -> bool {
        if self.error_ratio <= 0.0 {
            return false;
        }
        // A poisoned lock only means another call panicked mid-draw; the generator is still fine.
        let mut rng = self.rng.lock().unwrap_or_else(|e| e.into_inner());
        rng.random_bool(self.error_ratio)
    }
}

/// Turns the instance's health NOT_SERVING after `after`.
pub async fn turn_unhealthy_after(after: Duration, health: HealthHandle) {
    tokio::time::sleep(after).await;
    tracing::warn!(?after, "fault: turning NOT_SERVING");
    health.set_not_serving();
}

/// Exits the process with status 1 after `after`, abruptly: no deregistration, no draining, so
/// the registry learns of it only when the lease expires, as after a real crash.
pub async fn crash_after(after: Duration) {
    tokio::time::sleep(after).await;
    tracing::error!(?after, "fault: crashing");
    std::process::exit(1);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failures(faults: &Faults, calls: usize) -> usize {
        (0..calls).filter(|_| faults.draw_failure()).count()
    }

    #[test]
    fn the_error_ratio_is_honoured_within_tolerance() {
        for ratio in [0.1, 0.5, 0.9] {
            let faults = Faults::new(ratio, Duration::ZERO, Some(42));
            let failed = failures(&faults, 10_000) as f64 / 10_000.0;
            // 10,000 draws: the standard deviation is at most 0.005, so 0.02 is four of them.
            assert!((failed - ratio).abs() < 0.02, "ratio {ratio}: {failed}");
        }
    }

    #[test]
    fn no_ratio_never_fails_and_a_full_ratio_always_does() {
        assert_eq!(failures(&Faults::none(), 1_000), 0);
        assert_eq!(
            failures(&Faults::new(1.0, Duration::ZERO, Some(1)), 1_000),
            1_000
        );
        // Out-of-range ratios are clamped rather than panicking in the generator.
        assert_eq!(failures(&Faults::new(7.0, Duration::ZERO, Some(1)), 10), 10);
    }

    #[test]
    fn a_seed_makes_the_failures_reproducible() {
        let sequence = |seed| {
            let faults = Faults::new(0.5, Duration::ZERO, Some(seed));
            (0..64).map(|_| faults.draw_failure()).collect::<Vec<_>>()
        };
        assert_eq!(sequence(7), sequence(7));
        assert_ne!(sequence(7), sequence(8));
    }

    #[tokio::test]
    async fn injected_failures_are_internal() {
        let faults = Faults::new(1.0, Duration::ZERO, Some(3));
        let status = faults.before_call().await.unwrap_err();
        assert_eq!(status.code(), tonic::Code::Internal);
        assert!(Faults::none().before_call().await.is_ok());
    }

    /// On tokio's paused clock, which moves only when every task waits on a timer: the figures
    /// are exact, whatever the machine is doing.
    #[tokio::test(start_paused = true)]
    async fn latency_is_added_to_each_call() {
        let faults = Faults::new(0.0, Duration::from_millis(60), None);
        let started = tokio::time::Instant::now();
        faults.before_call().await.unwrap();
        faults.before_call().await.unwrap();
        assert_eq!(started.elapsed(), Duration::from_millis(120));

        let started = tokio::time::Instant::now();
        Faults::none().before_call().await.unwrap();
        assert_eq!(started.elapsed(), Duration::ZERO, "no latency, no wait");
    }
}
