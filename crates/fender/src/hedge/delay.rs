//! When a hedge is sent: a fixed delay, or a percentile of the latencies of recent primaries.

use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// How many recent primary latencies the percentile is computed from.
pub(crate) const WINDOW: usize = 512;
/// The percentile is recomputed once per this many samples (and at the first `min_samples`).
const EVERY: u64 = 16;
/// The stored delay while there are too few samples: no hedging.
const NONE: u64 = u64::MAX;

/// How the hedge delay is chosen, as configured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Mode {
    /// Always the same delay.
    Fixed(Duration),
    /// This quantile of recent primary latencies, within bounds.
    Percentile(f64),
}

/// The hedge delay of a layer's services, live.
pub(crate) enum Delay {
    Fixed(Duration),
    Percentile(Latencies),
}

impl Delay {
    /// The delay a request started now waits before its hedge; `None`: no hedge.
    pub(crate) fn current(&self) -> Option<Duration> {
        match self {
            Delay::Fixed(delay) => Some(*delay),
            Delay::Percentile(latencies) => latencies.current(),
        }
    }

    /// Records the latency of a primary attempt (nothing in fixed mode).
    pub(crate) fn record(&self, latency: Duration) {
        if let Delay::Percentile(latencies) = self {
            latencies.record(latency);
        }
    }

    /// Whether primary latencies are recorded.
    pub(crate) fn records(&self) -> bool {
        matches!(self, Delay::Percentile(_))
    }
}

impl fmt::Debug for Delay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Delay::Fixed(delay) => f.debug_tuple("Fixed").field(delay).finish(),
            Delay::Percentile(latencies) => latencies.fmt(f),
        }
    }
}

/// A ring of the last [`WINDOW`] primary latencies (in microseconds) and the delay computed from
/// them, all atomics: recording is a `fetch_add` and a store, and once every [`EVERY`] samples
/// a copy of the ring is partially sorted to find the quantile, which is stored clamped to
/// `min..=max`. Until `min_samples` are in, the stored delay means "no hedge".
pub(crate) struct Latencies {
    samples: Box<[AtomicU32]>,
    written: AtomicU64,
    current: AtomicU64,
    quantile: f64,
    min: Duration,
    max: Duration,
    min_samples: u64,
}

impl Latencies {
    pub(crate) fn new(quantile: f64, min: Duration, max: Duration, min_samples: usize) -> Self {
        Latencies {
            samples: (0..WINDOW).map(|_| AtomicU32::new(0)).collect(),
            written: AtomicU64::new(0),
            current: AtomicU64::new(NONE),
            quantile,
            min,
            max,
            min_samples: min_samples as u64,
        }
    }

    fn current(&self) -> Option<Duration> {
        match self.current.load(Ordering::Relaxed) {
            NONE => None,
            nanos => Some(Duration::from_nanos(nanos)),
        }
    }

    fn record(&self, latency: Duration) {
        let micros = u32::try_from(latency.as_micros()).unwrap_or(u32::MAX);
        let n = self.written.fetch_add(1, Ordering::Relaxed);
        self.samples[(n % WINDOW as u64) as usize].store(micros, Ordering::Relaxed);
        let count = n + 1;
        if count == self.min_samples || (count > self.min_samples && count.is_multiple_of(EVERY)) {
            self.recompute(count);
        }
    }

    /// The nearest-rank quantile of the samples in the ring, clamped, into `current`.
    fn recompute(&self, count: u64) {
        let filled = count.min(WINDOW as u64) as usize;
        let mut copy = [0u32; WINDOW];
        for (to, from) in copy.iter_mut().zip(&self.samples[..filled]) {
            *to = from.load(Ordering::Relaxed);
        }
        let rank = ((self.quantile * filled as f64).ceil() as usize).clamp(1, filled) - 1;
        let (_, &mut micros, _) = copy[..filled].select_nth_unstable(rank);
        let delay = Duration::from_micros(u64::from(micros)).clamp(self.min, self.max);
        let nanos = u64::try_from(delay.as_nanos()).unwrap_or(NONE - 1);
        self.current.store(nanos.min(NONE - 1), Ordering::Relaxed);
    }
}

impl fmt::Debug for Latencies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Percentile")
            .field("quantile", &self.quantile)
            .field("min", &self.min)
            .field("max", &self.max)
            .field("min_samples", &self.min_samples)
            .field("samples", &self.written.load(Ordering::Relaxed))
            .field("current", &self.current())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn no_delay_until_min_samples_are_in() {
        let latencies = Latencies::new(0.95, ms(1), ms(1_000), 10);
        for _ in 0..9 {
            latencies.record(ms(20));
            assert_eq!(latencies.current(), None);
        }
        latencies.record(ms(20));
        assert_eq!(latencies.current(), Some(ms(20)));
    }

    #[test]
    fn the_quantile_is_the_nearest_rank_of_the_window() {
        let latencies = Latencies::new(0.95, ms(1), ms(10_000), 100);
        // 1 ms to 100 ms: the 95th of 100 is 95 ms.
        for n in 1..=100 {
            latencies.record(ms(n));
        }
        assert_eq!(latencies.current(), Some(ms(95)));
    }

    #[test]
    fn the_delay_is_clamped_to_its_bounds() {
        let low = Latencies::new(0.5, ms(5), ms(50), 1);
        low.record(Duration::from_micros(10));
        assert_eq!(low.current(), Some(ms(5)));
        let high = Latencies::new(0.5, ms(5), ms(50), 1);
        high.record(Duration::from_secs(3_600 * 24));
        assert_eq!(high.current(), Some(ms(50)));
    }

    #[test]
    fn old_samples_leave_the_window() {
        let latencies = Latencies::new(0.5, ms(1), ms(10_000), 16);
        for _ in 0..WINDOW {
            latencies.record(ms(500));
        }
        assert_eq!(latencies.current(), Some(ms(500)));
        for _ in 0..WINDOW {
            latencies.record(ms(10));
        }
        assert_eq!(latencies.current(), Some(ms(10)));
    }

    proptest! {
        #[test]
        fn the_delay_is_a_recorded_sample_or_a_bound(
            samples in proptest::collection::vec(0u64..5_000, 1..1_500),
            quantile in 0.01f64..0.99,
        ) {
            let (min, max) = (ms(10), ms(2_000));
            let latencies = Latencies::new(quantile, min, max, 1);
            for &s in &samples {
                latencies.record(ms(s));
            }
            let delay = latencies.current().expect("one sample is enough here");
            prop_assert!(delay >= min && delay <= max);
            let recorded = samples.iter().any(|&s| ms(s) == delay);
            prop_assert!(recorded || delay == min || delay == max, "{delay:?}");
        }
    }
}
