//! What trips the breaker, and the rest of its configuration.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::state::StateChange;
use super::state_word::FIELD_MAX;

/// Trip on the failure rate over a sliding window instead of on consecutive failures.
///
/// The rate is only looked at once the window holds at least
/// [`min_calls`](Self::min_calls) outcomes, so a handful of early failures cannot trip it.
/// Built with [`count`](Self::count) (the last N calls) or [`time`](Self::time) (the calls of
/// the last period, kept in ten buckets, so the window slides in steps of a tenth of its
/// length). Defaults: a threshold of 50% and a minimum of 20 calls.
///
/// ```
/// use std::time::Duration;
/// use fender::circuit_breaker::{CircuitBreakerLayer, FailureRate};
///
/// let layer = CircuitBreakerLayer::new().failure_rate(
///     FailureRate::time(Duration::from_secs(60)).threshold(0.25).min_calls(50),
/// );
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use = "a builder does nothing until it is used"]
pub struct FailureRate {
    pub(crate) window: WindowKind,
    pub(crate) threshold: f64,
    pub(crate) min_calls: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WindowKind {
    Count(u32),
    Time(Duration),
}

/// The largest count-based window.
const MAX_COUNT_WINDOW: u32 = 1 << 16;
/// Calls per bucket of a time-based window are counted in 20 bits.
const MAX_CALLS: u32 = (1 << 20) - 1;

impl FailureRate {
    /// A window over the last `calls` outcomes.
    ///
    /// # Panics
    ///
    /// When `calls` is 0 or larger than 65,536.
    pub fn count(calls: u32) -> Self {
        assert!(
            (1..=MAX_COUNT_WINDOW).contains(&calls),
            "FailureRate::count: the window must hold 1 to {MAX_COUNT_WINDOW} calls, got {calls}"
        );
        FailureRate {
            window: WindowKind::Count(calls),
            threshold: 0.5,
            min_calls: 20.min(calls),
        }
    }

    /// A window over the outcomes of the last `period`, in ten buckets.
    ///
    /// # Panics
    ///
    /// When `period` is shorter than 10 ms.
    pub fn time(period: Duration) -> Self {
        assert!(
            period >= Duration::from_millis(10),
            "FailureRate::time: the window must be at least 10ms, got {period:?}"
        );
        FailureRate {
            window: WindowKind::Time(period),
            threshold: 0.5,
            min_calls: 20,
        }
    }

    /// The failure share (`0.0 < threshold <= 1.0`) at or above which the breaker trips.
    ///
    /// # Panics
    ///
    /// When `threshold` is not in `(0, 1]`.
    pub fn threshold(mut self, threshold: f64) -> Self {
        assert!(
            threshold > 0.0 && threshold <= 1.0,
            "FailureRate::threshold: must be in (0, 1], got {threshold}"
        );
        self.threshold = threshold;
        self
    }

    /// The number of outcomes the window must hold before the rate can trip the breaker.
    ///
    /// # Panics
    ///
    /// When `calls` is 0 or more than 1,048,575. A minimum larger than a count-based window
    /// can never be reached: the layer that uses it panics when it makes its breaker.
    pub fn min_calls(mut self, calls: u32) -> Self {
        assert!(calls >= 1, "FailureRate::min_calls: must be at least 1");
        assert!(
            calls <= MAX_CALLS,
            "FailureRate::min_calls: at most {MAX_CALLS}"
        );
        self.min_calls = calls;
        self
    }
}

/// What trips a closed circuit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Trip {
    Consecutive(u64),
    Rate(FailureRate),
}

/// The callback run on every state change.
pub(crate) type OnStateChange = Arc<dyn Fn(&StateChange) + Send + Sync>;

/// Everything a breaker needs to know; shared by every breaker a layer makes.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) trip: Trip,
    /// With consecutive failures: ask for a longer run when failures were frequent before it
    /// (see `chance.rs`). Off with `strict_consecutive`.
    pub(crate) chance_runs: bool,
    pub(crate) slow_call: Option<Duration>,
    pub(crate) open_duration: Duration,
    /// Growing open duration on repeated trips: doubling up to this cap, jittered.
    pub(crate) max_open_duration: Option<Duration>,
    pub(crate) probes: u32,
    pub(crate) close_after: u32,
    /// Failed probes in a row of one half-open round that re-open the circuit; `None`: as
    /// many as successful probes close it.
    pub(crate) reopen_after: Option<u32>,
    pub(crate) ramp_on: bool,
    pub(crate) ramp_window: Duration,
    pub(crate) ramp_start_share: f64,
    pub(crate) seed: Option<u64>,
    pub(crate) on_state_change: Option<OnStateChange>,
    pub(crate) max_keys: usize,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ramp {
    pub(crate) start_share: f64,
    pub(crate) window: Duration,
}

/// The largest probe count, success count and consecutive-failure count: what a 16-bit field
/// of a round word holds.
pub(crate) const MAX_COUNT: u32 = FIELD_MAX as u32;

impl Default for Config {
    fn default() -> Self {
        Config {
            trip: Trip::Consecutive(5),
            chance_runs: true,
            slow_call: None,
            open_duration: Duration::from_secs(30),
            max_open_duration: None,
            probes: 3,
            close_after: 3,
            reopen_after: None,
            ramp_on: true,
            ramp_window: Duration::from_secs(10),
            ramp_start_share: 0.1,
            seed: None,
            on_state_change: None,
            max_keys: 1024,
        }
    }
}

impl Config {
    /// How many failed probes in a row of one half-open round re-open the circuit.
    pub(crate) fn reopen_failures(&self) -> u32 {
        self.reopen_after.unwrap_or(self.close_after)
    }

    /// The ramp after a close, if there is one.
    pub(crate) fn ramp(&self) -> Option<Ramp> {
        self.ramp_on.then_some(Ramp {
            start_share: self.ramp_start_share,
            window: self.ramp_window,
        })
    }

    /// The open duration after `retrips` failed half-open rounds in a row, before jitter.
    pub(crate) fn nominal_open_duration(&self, retrips: u32) -> Duration {
        match self.max_open_duration {
            None => self.open_duration,
            Some(max) => {
                let factor = 1u32 << retrips.min(20);
                self.open_duration
                    .saturating_mul(factor)
                    .min(max.max(self.open_duration))
            }
        }
    }

    /// The checks that involve more than one setting, made once the configuration is final
    /// (when the layer makes its breaker), so that the order of the setters never matters.
    ///
    /// # Panics
    ///
    /// When the settings contradict each other.
    pub(crate) fn check(&self) {
        if let Trip::Rate(FailureRate {
            window: WindowKind::Count(size),
            min_calls,
            ..
        }) = self.trip
        {
            assert!(
                min_calls <= size,
                "CircuitBreakerLayer::layer: FailureRate::min_calls: {min_calls} can never be \
                 reached in a window of {size} calls"
            );
        }
    }
}

/// Two configurations make the same breaker (callbacks compare by identity).
impl PartialEq for Config {
    fn eq(&self, other: &Config) -> bool {
        let callbacks = match (&self.on_state_change, &other.on_state_change) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        callbacks
            && self.trip == other.trip
            && self.chance_runs == other.chance_runs
            && self.slow_call == other.slow_call
            && self.open_duration == other.open_duration
            && self.max_open_duration == other.max_open_duration
            && self.probes == other.probes
            && self.close_after == other.close_after
            && self.reopen_failures() == other.reopen_failures()
            && self.ramp() == other.ramp()
            && self.seed == other.seed
            && self.max_keys == other.max_keys
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("trip", &self.trip)
            .field("chance_runs", &self.chance_runs)
            .field("slow_call", &self.slow_call)
            .field("open_duration", &self.open_duration)
            .field("max_open_duration", &self.max_open_duration)
            .field("probes", &self.probes)
            .field("close_after", &self.close_after)
            .field("reopen_after", &self.reopen_failures())
            .field("ramp", &self.ramp())
            .field("seed", &self.seed)
            .field("on_state_change", &self.on_state_change.is_some())
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn growing_open_duration_doubles_up_to_the_cap() {
        let config = Config {
            max_open_duration: Some(Duration::from_secs(100)),
            ..Config::default()
        };
        let got: Vec<u64> = (0..5)
            .map(|n| config.nominal_open_duration(n).as_secs())
            .collect();
        assert_eq!(got, [30, 60, 100, 100, 100]);
        assert_eq!(
            Config::default().nominal_open_duration(7),
            Duration::from_secs(30)
        );
    }

    #[test]
    #[should_panic(expected = "can never be reached in a window of 10 calls")]
    fn a_minimum_above_a_count_window_is_rejected_when_the_breaker_is_made() {
        let config = Config {
            trip: Trip::Rate(FailureRate::count(10).min_calls(11)),
            ..Config::default()
        };
        config.check();
    }

    #[test]
    #[should_panic(expected = "must be in (0, 1]")]
    fn a_zero_threshold_is_rejected_where_it_is_set() {
        let _ = FailureRate::count(10).threshold(0.0);
    }
}
