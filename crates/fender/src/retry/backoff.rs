//! Exponential backoff with jitter.

use std::time::Duration;

use rand::Rng;

/// How the delay before a retry is randomised around the nominal exponential schedule.
///
/// With `d` the nominal delay of a retry (`base · 2^(n-1)`, at most the maximum delay):
///
/// | variant | delay |
/// | --- | --- |
/// | [`None`](Jitter::None) | `d` exactly |
/// | [`Full`](Jitter::Full) | uniform in `[0, d]` |
/// | [`Equal`](Jitter::Equal) | `d/2` plus uniform in `[0, d/2]` |
/// | [`Decorrelated`](Jitter::Decorrelated) | `min(max, uniform in [base, 3 · previous delay])`, starting from `base` |
/// | [`Proportional`](Jitter::Proportional) (default) | `d` times uniform in `[0.8, 1.2]`, at most `max` |
///
/// Proportional jitter (the default) keeps the contract's schedule, a first retry about 1 s
/// after the failure, while spreading the retries of clients that failed together over 40% of
/// the delay: enough for a herd of a thousand to arrive at about a hundred per 100 ms. Full
/// jitter spreads retries of many clients the most and, in published simulations, does the
/// least total work, but starts the first retry anywhere from 0 s; equal jitter keeps at least half the nominal wait; decorrelated jitter
/// grows from the previous (random) delay rather than from the attempt number. Random delays
/// are whole milliseconds, the resolution of tokio's timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Jitter {
    /// No randomness: the nominal schedule (1 s, 2 s, 4 s, … with the defaults).
    None,
    /// A uniform delay in `[0, nominal]`.
    Full,
    /// Half the nominal delay plus a uniform delay in `[0, nominal / 2]`.
    Equal,
    /// `min(max, uniform in [base, 3 · previous])`.
    Decorrelated,
    /// The nominal delay times a uniform factor in `[0.8, 1.2]` (gRPC's retry jitter): the
    /// first retry waits about 1 s, as the contract's schedule says, while retries of clients
    /// that failed together still spread over 400 ms. The default.
    #[default]
    Proportional,
}

/// The backoff schedule of one layer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) base: Duration,
    pub(crate) max: Duration,
    pub(crate) jitter: Jitter,
}

impl Backoff {
    /// The nominal delay before retry number `retry` (1 for the first retry): `base · 2^(retry-1)`,
    /// at most `max`. Saturates instead of overflowing.
    pub(crate) fn nominal(&self, retry: u32) -> Duration {
        let exp = retry.saturating_sub(1);
        let factor = 2u32.checked_pow(exp).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before retry number `retry`, given the previous delay (for decorrelated
    /// jitter; pass `Duration::ZERO` before the first retry). Always within `[0, max]`.
    pub(crate) fn delay<R: Rng + ?Sized>(
        &self,
        retry: u32,
        previous: Duration,
        rng: &mut R,
    ) -> Duration {
        let nominal = self.nominal(retry);
        match self.jitter {
            Jitter::None => nominal,
            Jitter::Full => uniform(rng, Duration::ZERO, nominal),
            Jitter::Equal => {
                let half = nominal / 2;
                half + uniform(rng, Duration::ZERO, nominal - half)
            }
            Jitter::Proportional => {
                let low = nominal.mul_f64(0.8);
                uniform(rng, low, nominal.saturating_add(nominal / 5)).min(self.max)
            }
            Jitter::Decorrelated => {
                let previous = previous.max(self.base);
                let upper = previous.saturating_mul(3).max(self.base);
                uniform(rng, self.base, upper).min(self.max)
            }
        }
    }
}

/// A uniform duration in `[low, high]`, truncated to whole milliseconds (the resolution of
/// tokio's timer, so the delay reported is the delay waited) but never below `low`.
fn uniform<R: Rng + ?Sized>(rng: &mut R, low: Duration, high: Duration) -> Duration {
    let low_ns = nanos(low);
    let high_ns = nanos(high).max(low_ns);
    let sample = rng.random_range(low_ns..=high_ns);
    Duration::from_nanos(sample - sample % 1_000_000).max(low)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn nominal_schedule_doubles_from_the_base_and_stops_at_the_max() {
        let b = Backoff {
            base: secs(1),
            max: secs(30),
            jitter: Jitter::None,
        };
        let schedule: Vec<u64> = (1..=7).map(|n| b.nominal(n).as_secs()).collect();
        assert_eq!(schedule, [1, 2, 4, 8, 16, 30, 30]);
        let mut rng = SmallRng::seed_from_u64(1);
        assert_eq!(b.delay(2, Duration::ZERO, &mut rng), secs(2));
    }

    #[test]
    fn equal_jitter_keeps_at_least_half() {
        let b = Backoff {
            base: secs(1),
            max: secs(30),
            jitter: Jitter::Equal,
        };
        let mut rng = SmallRng::seed_from_u64(7);
        for _ in 0..1000 {
            let d = b.delay(3, Duration::ZERO, &mut rng);
            assert!(d >= secs(2) && d <= secs(4), "{d:?}");
        }
    }

    fn jitter() -> impl Strategy<Value = Jitter> {
        prop_oneof![
            Just(Jitter::Proportional),
            Just(Jitter::None),
            Just(Jitter::Full),
            Just(Jitter::Equal),
            Just(Jitter::Decorrelated),
        ]
    }

    proptest! {
        #[test]
        fn delays_stay_within_zero_and_max_and_never_overflow(
            base_ms in 0u64..=120_000,
            extra_ms in 0u64..=u64::MAX / 2_000_000,
            retry in 1u32..=1_000,
            previous_ms in 0u64..=u64::MAX / 2_000_000,
            jitter in jitter(),
            seed in any::<u64>(),
        ) {
            let base = Duration::from_millis(base_ms);
            let max = base + Duration::from_millis(extra_ms);
            let b = Backoff { base, max, jitter };
            let mut rng = SmallRng::seed_from_u64(seed);
            let d = b.delay(retry, Duration::from_millis(previous_ms), &mut rng);
            prop_assert!(d <= max);
            prop_assert!(b.nominal(retry) <= max);
            if jitter == Jitter::None {
                prop_assert_eq!(d, b.nominal(retry));
            }
            if jitter == Jitter::Decorrelated {
                prop_assert!(d >= base.min(max));
            }
        }

        #[test]
        fn the_nominal_delay_never_shrinks_with_more_retries(
            base_ms in 0u64..=10_000,
            retry in 1u32..=1_000,
        ) {
            let b = Backoff { base: Duration::from_millis(base_ms), max: Duration::from_secs(30), jitter: Jitter::None };
            prop_assert!(b.nominal(retry + 1) >= b.nominal(retry));
        }
    }
}
