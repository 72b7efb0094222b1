//! [`BreakerConfig`] and [`FailureRateConfig`], the settings of [`CircuitBreakerLayer`] and
//! [`FailureRate`].

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{ConfigError, HumanDuration, check};
use crate::circuit_breaker::policy::MAX_COUNT;
use crate::circuit_breaker::{CircuitBreakerLayer, FailureRate};

// The defaults of `CircuitBreakerLayer::new()` and `FailureRate`, and the bounds its setters
// assert, for `effective` and for the checks; the tests compare them with the builders.
const CONSECUTIVE_FAILURES: u32 = 5;
const OPEN_DURATION: Duration = Duration::from_secs(30);
const LONGEST_OPEN: Duration = Duration::from_secs(365 * 86_400);
const HALF_OPEN_PROBES: u32 = 3;
const CLOSE_AFTER: u32 = 3;
const RAMP: Duration = Duration::from_secs(10);
const LONGEST_RAMP: Duration = Duration::from_secs(86_400);
const RAMP_START_SHARE: f64 = 0.1;
const MAX_KEYS: usize = 1024;
const THRESHOLD: f64 = 0.5;
const MIN_CALLS: u32 = 20;
const LARGEST_COUNT_WINDOW: u32 = 1 << 16;
const LARGEST_MIN_CALLS: u32 = (1 << 20) - 1;
const SHORTEST_PERIOD: Duration = Duration::from_millis(10);

/// The settings of a [`CircuitBreakerLayer`], as a file holds them; every field is optional,
/// and a missing one keeps the builder's default.
///
/// The keys are the builder's method names; a switch without an argument
/// (`strict_consecutive`, `no_ramp`) is a boolean. The state-change callback, the classifier
/// and the key mode (`per_host`, `key_fn`) are code: add them with [`apply_to`](Self::apply_to).
/// A file has no order, so settings that would override each other in a chain of builder calls
/// (`consecutive_failures` and `failure_rate`, `ramp` and `no_ramp`) are refused together.
///
/// ```
/// use fender::config::BreakerConfig;
///
/// let config: BreakerConfig = toml::from_str(r#"
///     consecutive_failures = 5       # default 5; or a [failure_rate] table instead
///     strict_consecutive = false     # default false
///     slow_call_threshold = "2s"     # default none: a slower success counts as a failure
///     open_duration = "30s"          # default 30s, at most a year
///     max_open_duration = "5m"       # default none: doubles after failed probes up to this
///     half_open_probes = 3           # default 3, 1 to 65535
///     close_after = 3                # default 3, 1 to 65535
///     reopen_after = 3               # default: close_after; failed probes in a row
///     ramp = "10s"                   # default 10s, at most a day
///     ramp_start_share = 0.1         # default 0.1, in (0, 1]
///     no_ramp = false                # default false; true admits everything on close
///     seed = 42                      # default: random
///     max_keys = 1024                # default 1024, with per_host or key_fn
/// "#).unwrap();
/// let layer = config.layer().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct BreakerConfig {
    /// Opens after this many consecutive failures (default 5); 1 to 65,535.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Opens on exactly the n-th consecutive failure, whatever came before (default `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_consecutive: Option<bool>,
    /// Opens on the failure rate over a window instead (default: consecutive failures).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_rate: Option<FailureRateConfig>,
    /// A success at least this slow counts as a failure (default none); positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slow_call_threshold: Option<HumanDuration>,
    /// How long the circuit stays open before the first probe (default 30 s); positive, at
    /// most a year.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_duration: Option<HumanDuration>,
    /// Doubles the open duration after each failed half-open round, up to this (default none);
    /// positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_open_duration: Option<HumanDuration>,
    /// Probes let through at a time when half-open (default 3); 1 to 65,535.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub half_open_probes: Option<u32>,
    /// Successful probes of one half-open round that close the circuit (default 3); 1 to
    /// 65,535.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub close_after: Option<u32>,
    /// Failed probes in a row that re-open a half-open circuit (default: the same as
    /// `close_after`; 1 re-opens it on any failed probe); 1 to 65,535.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reopen_after: Option<u32>,
    /// How long the admitted share takes to grow to 100% after a close (default 10 s);
    /// positive, at most a day.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp: Option<HumanDuration>,
    /// The share admitted right after a close (default 0.1); in `(0, 1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ramp_start_share: Option<f64>,
    /// `true`: all traffic is let through as soon as the circuit closes (default `false`).
    /// Cannot be combined with `ramp` or `ramp_start_share`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_ramp: Option<bool>,
    /// Seeds the jitter of a growing open duration (default: random).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// The most keys tracked by a keyed breaker (default 1,024); at least 1. A
    /// [`ClientConfig`](super::ClientConfig) refuses it: the stack has its own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<usize>,
}

impl BreakerConfig {
    /// The layer these settings describe: [`CircuitBreakerLayer::new`] with every field that
    /// is set applied.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn layer(&self) -> Result<CircuitBreakerLayer, ConfigError> {
        self.apply_to(CircuitBreakerLayer::new())
    }

    /// Applies every field that is set to `layer`, keeping its classifier, callback and key
    /// mode, and its own values for the fields that are not set.
    ///
    /// ```
    /// use fender::CircuitBreakerLayer;
    /// use fender::config::BreakerConfig;
    ///
    /// let config: BreakerConfig = toml::from_str(r#"open_duration = "10s""#).unwrap();
    /// let layer = config
    ///     .apply_to(CircuitBreakerLayer::new().per_host().on_state_change(|change| {
    ///         println!("{change:?}");
    ///     }))
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builder would refuse.
    pub fn apply_to<C, M>(
        &self,
        mut layer: CircuitBreakerLayer<C, M>,
    ) -> Result<CircuitBreakerLayer<C, M>, ConfigError> {
        if let Some(rate) = &self.failure_rate {
            check::conflict_with(
                "failure_rate",
                self.consecutive_failures.is_some(),
                "consecutive_failures",
            )?;
            layer = layer.failure_rate(rate.failure_rate().map_err(|e| e.within("failure_rate"))?);
        }
        if let Some(n) = check::count(
            "consecutive_failures",
            self.consecutive_failures,
            1,
            MAX_COUNT,
        )? {
            layer = layer.consecutive_failures(n);
        }
        if check::on(self.strict_consecutive) {
            layer = layer.strict_consecutive();
        }
        if let Some(threshold) = check::positive("slow_call_threshold", self.slow_call_threshold)? {
            layer = layer.slow_call_threshold(threshold);
        }
        if let Some(d) = check::duration_in(
            "open_duration",
            self.open_duration,
            Duration::ZERO,
            LONGEST_OPEN,
        )? {
            layer = layer.open_duration(d);
        }
        if let Some(max) = check::positive("max_open_duration", self.max_open_duration)? {
            layer = layer.max_open_duration(max);
        }
        if let Some(n) = check::count("half_open_probes", self.half_open_probes, 1, MAX_COUNT)? {
            layer = layer.half_open_probes(n);
        }
        if let Some(n) = check::count("close_after", self.close_after, 1, MAX_COUNT)? {
            layer = layer.close_after(n);
        }
        if let Some(n) = check::count("reopen_after", self.reopen_after, 1, MAX_COUNT)? {
            layer = layer.reopen_after(n);
        }
        if check::on(self.no_ramp) {
            check::conflict("ramp", self.ramp.is_some(), "no_ramp")?;
            check::conflict(
                "ramp_start_share",
                self.ramp_start_share.is_some(),
                "no_ramp",
            )?;
            layer = layer.no_ramp();
        }
        if let Some(window) = check::duration_in("ramp", self.ramp, Duration::ZERO, LONGEST_RAMP)? {
            layer = layer.ramp(window);
        }
        if let Some(share) = check::share("ramp_start_share", self.ramp_start_share)? {
            layer = layer.ramp_start_share(share);
        }
        if let Some(seed) = self.seed {
            layer = layer.seed(seed);
        }
        if let Some(n) = check::count("max_keys", self.max_keys, 1, usize::MAX)? {
            layer = layer.max_keys(n);
        }
        Ok(layer)
    }

    /// The settings in effect: these settings, checked, with every default filled in (a setting
    /// whose default is "none", such as `slow_call_threshold`, stays absent).
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn effective(&self) -> Result<BreakerConfig, ConfigError> {
        self.layer().map(drop)?;
        let no_ramp = check::on(self.no_ramp);
        let by_rate = self.failure_rate.is_some();
        Ok(BreakerConfig {
            consecutive_failures: (!by_rate)
                .then(|| self.consecutive_failures.unwrap_or(CONSECUTIVE_FAILURES)),
            strict_consecutive: if by_rate {
                self.strict_consecutive
            } else {
                Some(check::on(self.strict_consecutive))
            },
            failure_rate: self.failure_rate.as_ref().map(FailureRateConfig::effective),
            slow_call_threshold: self.slow_call_threshold,
            open_duration: Some(self.open_duration.unwrap_or(OPEN_DURATION.into())),
            max_open_duration: self.max_open_duration,
            half_open_probes: Some(self.half_open_probes.unwrap_or(HALF_OPEN_PROBES)),
            close_after: Some(self.close_after.unwrap_or(CLOSE_AFTER)),
            reopen_after: Some(
                self.reopen_after
                    .unwrap_or(self.close_after.unwrap_or(CLOSE_AFTER)),
            ),
            ramp: (!no_ramp).then(|| self.ramp.unwrap_or(RAMP.into())),
            ramp_start_share: (!no_ramp).then(|| self.ramp_start_share.unwrap_or(RAMP_START_SHARE)),
            no_ramp: Some(no_ramp),
            seed: self.seed,
            max_keys: Some(self.max_keys.unwrap_or(MAX_KEYS)),
        })
    }
}

/// The settings of a [`FailureRate`] trip: the window is either `calls` (the last N outcomes)
/// or `period` (the outcomes of the last period), exactly one of them.
///
/// ```
/// use fender::config::BreakerConfig;
///
/// let config: BreakerConfig = toml::from_str(r#"
///     [failure_rate]
///     period = "1m"      # or: calls = 100 (1 to 65536); one of the two
///     threshold = 0.25   # default 0.5, in (0, 1]
///     min_calls = 50     # default 20 (at most the calls of a count window)
/// "#).unwrap();
/// let layer = config.layer().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct FailureRateConfig {
    /// A window over the last this many outcomes; 1 to 65,536.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calls: Option<u32>,
    /// A window over the outcomes of the last this long, in ten buckets; at least 10 ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period: Option<HumanDuration>,
    /// The failure share at or above which the breaker opens (default 0.5); in `(0, 1]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Outcomes the window must hold before the rate counts (default 20, or `calls` when that
    /// is smaller); 1 to 1,048,575, and at most `calls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_calls: Option<u32>,
}

impl FailureRateConfig {
    /// The trip rule these settings describe.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the field [`FailureRate`] would refuse, or `calls` when neither
    /// or both of `calls` and `period` are set.
    pub fn failure_rate(&self) -> Result<FailureRate, ConfigError> {
        let calls = check::count("calls", self.calls, 1, LARGEST_COUNT_WINDOW)?;
        let period = check::duration_in("period", self.period, SHORTEST_PERIOD, Duration::MAX)?;
        let mut rate = match (calls, period) {
            (Some(calls), None) => FailureRate::count(calls),
            (None, Some(period)) => FailureRate::time(period),
            (None, None) => {
                return Err(ConfigError::new(
                    "calls",
                    "the window is missing: set calls (the last N outcomes) or period (the \
                     outcomes of the last period)",
                ));
            }
            (Some(_), Some(_)) => {
                return Err(ConfigError::new(
                    "calls",
                    "cannot be set together with period: the window is one or the other",
                ));
            }
        };
        if let Some(threshold) = check::share("threshold", self.threshold)? {
            rate = rate.threshold(threshold);
        }
        if let Some(min) = check::count("min_calls", self.min_calls, 1, LARGEST_MIN_CALLS)? {
            if let Some(calls) = calls.filter(|&calls| min > calls) {
                return Err(ConfigError::new(
                    "min_calls",
                    format!("can never be reached in a window of {calls} calls, got {min}"),
                ));
            }
            rate = rate.min_calls(min);
        }
        Ok(rate)
    }

    fn effective(&self) -> FailureRateConfig {
        let min_calls = self.calls.map_or(MIN_CALLS, |calls| MIN_CALLS.min(calls));
        FailureRateConfig {
            calls: self.calls,
            period: self.period,
            threshold: Some(self.threshold.unwrap_or(THRESHOLD)),
            min_calls: Some(self.min_calls.unwrap_or(min_calls)),
        }
    }
}
