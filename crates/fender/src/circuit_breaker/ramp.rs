//! The ramp after a close: which share of calls it admits, and [`RampSequence`], which picks
//! the admitted calls.

use super::policy::Ramp;
use super::sync::{AtomicU64, Ordering::Relaxed};

pub(crate) const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// The share of calls a ramp admits `elapsed_ms` after it began, or `None` once it is over.
pub(crate) fn share(ramp: Ramp, elapsed_ms: u64) -> Option<f64> {
    let window = ramp.window.as_millis() as u64;
    (elapsed_ms < window)
        .then(|| ramp.start_share + (1.0 - ramp.start_share) * elapsed_ms as f64 / window as f64)
}

/// Picks the calls a ramp admits: the Weyl sequence `k·φ mod 1` spreads admissions evenly for
/// any share, deterministically and with no shared state beyond one counter.
#[derive(Debug)]
pub(crate) struct RampSequence {
    next: AtomicU64,
}

impl RampSequence {
    pub(crate) fn new() -> Self {
        RampSequence {
            next: AtomicU64::new(0),
        }
    }

    /// Whether the next call is in the admitted `share`.
    pub(crate) fn draw(&self, share: f64) -> bool {
        admitted(self.next.fetch_add(1, Relaxed), share)
    }
}

/// Whether the `k`-th call of a ramp is in the admitted `share`.
fn admitted(k: u64, share: f64) -> bool {
    let point = (k.wrapping_mul(GOLDEN) >> 11) as f64 / (1u64 << 53) as f64;
    point < share
}

/// splitmix64's output function: the jitter of the growing open duration.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn weyl_admission_matches_the_share() {
        for share in [0.1, 0.25, 0.5, 0.9] {
            let n = 10_000u64;
            let got = (0..n).filter(|&k| admitted(k, share)).count() as f64 / n as f64;
            assert!((got - share).abs() < 0.01, "share {share}: got {got}");
        }
    }

    #[test]
    fn the_share_grows_linearly_and_ends_with_the_window() {
        let ramp = Ramp {
            start_share: 0.1,
            window: Duration::from_secs(10),
        };
        assert_eq!(share(ramp, 0), Some(0.1));
        assert!((share(ramp, 5_000).unwrap() - 0.55).abs() < 1e-9);
        assert_eq!(share(ramp, 10_000), None);
    }
}
