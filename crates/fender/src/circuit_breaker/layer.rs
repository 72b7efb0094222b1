//! [`CircuitBreakerLayer`], the breaker's builder.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::handle::{CircuitBreakerHandle, KeyedHandle};
use super::keyed::{KeyMap, Keyed, PerHost, Single};
use super::policy::{Config, FailureRate, MAX_PROBES, Ramp, Trip};
use super::service::CircuitBreaker;
use super::state::{Breaker, Shared, StateChange};
use crate::classify::{Classify, ContractClassifier};

/// Applies a circuit breaker to a service; see the [module docs](super).
///
/// [`new`](Self::new) is the contract's breaker (SPEC §4): it opens after 5 consecutive
/// failures, stays open 30 s, then admits 3 probes at a time, closes after 3 successful probes,
/// and ramps the admitted share of traffic from 10% to 100% over 10 s.
///
/// Every service the layer (or a clone of the layer) makes, and every clone of those, shares one
/// breaker (or one map of breakers per key); [`handle`](Self::handle) reads and steers it. For
/// independent breakers, build one layer per upstream. The breaker's state is made
/// by the builder methods that configure it, so take the handle after configuring. The methods
/// that configure the breaker come before [`per_host`](Self::per_host) or
/// [`key_fn`](Self::key_fn), which switch to one breaker per key.
///
/// Invalid values panic where they are set (see each method's `# Panics`): they are
/// programming errors, caught the first time the code runs.
#[derive(Clone)]
pub struct CircuitBreakerLayer<C = ContractClassifier, M = Single> {
    config: Arc<Config>,
    classifier: C,
    mode: M,
}

impl<C: fmt::Debug, M: fmt::Debug> fmt::Debug for CircuitBreakerLayer<C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreakerLayer")
            .field("config", &self.config)
            .field("classifier", &self.classifier)
            .field("mode", &self.mode)
            .finish()
    }
}

impl Default for CircuitBreakerLayer {
    fn default() -> Self {
        Self::new()
    }
}

impl CircuitBreakerLayer {
    /// The contract's breaker (see the type docs).
    pub fn new() -> Self {
        let config = Arc::new(Config::default());
        CircuitBreakerLayer {
            mode: Single {
                breaker: Arc::new(Shared::new(Breaker::new(config.clone(), None))),
            },
            config,
            classifier: ContractClassifier,
        }
    }
}

impl<C> CircuitBreakerLayer<C, Single> {
    fn update(mut self, change: impl FnOnce(&mut Config)) -> Self {
        let mut config = (*self.config).clone();
        change(&mut config);
        self.config = Arc::new(config);
        self.mode = Single {
            breaker: Arc::new(Shared::new(Breaker::new(self.config.clone(), None))),
        };
        self
    }

    /// Opens after `n` consecutive failures (default 5); a success resets the count. This is
    /// the default trip mode; it replaces a [`failure_rate`](Self::failure_rate).
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn consecutive_failures(self, n: u32) -> Self {
        assert!(
            n >= 1,
            "CircuitBreakerLayer::consecutive_failures: must be at least 1"
        );
        self.update(|c| c.trip = Trip::Consecutive(u64::from(n)))
    }

    /// Opens on the failure rate over a sliding window instead of consecutive failures.
    pub fn failure_rate(self, rate: FailureRate) -> Self {
        self.update(|c| c.trip = Trip::Rate(rate))
    }

    /// Counts a call that took at least `threshold` as a failure even when it succeeded (off by
    /// default). Works with both trip modes and for probes.
    ///
    /// # Panics
    ///
    /// When `threshold` is zero.
    pub fn slow_call_threshold(self, threshold: Duration) -> Self {
        assert!(
            !threshold.is_zero(),
            "CircuitBreakerLayer::slow_call_threshold: must be positive"
        );
        self.update(|c| c.slow_call = Some(threshold))
    }

    /// How long the circuit stays open before the first probe (default 30 s).
    ///
    /// # Panics
    ///
    /// When `duration` is zero or longer than a year.
    pub fn open_duration(self, duration: Duration) -> Self {
        assert!(
            !duration.is_zero() && duration <= Duration::from_secs(365 * 86_400),
            "CircuitBreakerLayer::open_duration: must be positive and at most a year, got {duration:?}"
        );
        self.update(|c| c.open_duration = duration)
    }

    /// Grows the open duration when probes keep failing (off by default): each failed half-open
    /// round doubles it, up to `max`, and jitters it down to as little as half, so that many
    /// clients do not probe in step. The first trip after a close uses the plain
    /// [`open_duration`](Self::open_duration). A `max` below the open duration is raised to it.
    ///
    /// # Panics
    ///
    /// When `max` is zero.
    pub fn max_open_duration(self, max: Duration) -> Self {
        assert!(
            !max.is_zero(),
            "CircuitBreakerLayer::max_open_duration: must be positive"
        );
        self.update(|c| c.max_open_duration = Some(max))
    }

    /// How many probes a half-open circuit lets through at a time (default 3).
    ///
    /// # Panics
    ///
    /// When `n` is 0 or more than 1,048,575.
    pub fn half_open_probes(self, n: u32) -> Self {
        assert!(
            (1..=MAX_PROBES).contains(&n),
            "CircuitBreakerLayer::half_open_probes: must be 1 to {MAX_PROBES}, got {n}"
        );
        self.update(|c| c.probes = n)
    }

    /// How many successful probes close the circuit (default 3).
    ///
    /// # Panics
    ///
    /// When `n` is 0 or more than 1,048,575.
    pub fn close_after(self, n: u32) -> Self {
        assert!(
            (1..=MAX_PROBES).contains(&n),
            "CircuitBreakerLayer::close_after: must be 1 to {MAX_PROBES}, got {n}"
        );
        self.update(|c| c.close_after = n)
    }

    /// How long the admitted share takes to grow from the start share to 100% after the
    /// circuit closes (default 10 s).
    ///
    /// # Panics
    ///
    /// When `window` is zero (use [`no_ramp`](Self::no_ramp)) or longer than a day.
    pub fn ramp(self, window: Duration) -> Self {
        assert!(
            !window.is_zero() && window <= Duration::from_secs(86_400),
            "CircuitBreakerLayer::ramp: must be positive and at most a day, got {window:?}"
        );
        self.update(|c| {
            let start_share = c.ramp.map_or(0.1, |r| r.start_share);
            c.ramp = Some(Ramp {
                start_share,
                window,
            });
        })
    }

    /// The share of calls admitted right after the circuit closes (default 0.1).
    ///
    /// # Panics
    ///
    /// When `share` is not in `(0, 1]`.
    pub fn ramp_start_share(self, share: f64) -> Self {
        assert!(
            share > 0.0 && share <= 1.0,
            "CircuitBreakerLayer::ramp_start_share: must be in (0, 1], got {share}"
        );
        self.update(|c| {
            let window = c.ramp.map_or(Duration::from_secs(10), |r| r.window);
            c.ramp = Some(Ramp {
                start_share: share,
                window,
            });
        })
    }

    /// Lets all traffic through as soon as the circuit closes.
    pub fn no_ramp(self) -> Self {
        self.update(|c| c.ramp = None)
    }

    /// Seeds the jitter of the growing open duration, for reproducible tests (default: a
    /// random seed).
    pub fn seed(self, seed: u64) -> Self {
        self.update(|c| c.seed = Some(seed))
    }

    /// Runs `callback` on every state change (after the change), e.g. to update metrics.
    /// Keep it quick: it runs on the task whose call caused the change.
    pub fn on_state_change<F>(self, callback: F) -> Self
    where
        F: Fn(&StateChange) + Send + Sync + 'static,
    {
        self.update(|c| c.on_state_change = Some(Arc::new(callback)))
    }

    /// Keeps one breaker per URI authority (`host:port`), so one bad host does not cut off
    /// the others. At most [`max_keys`](CircuitBreakerLayer::max_keys) hosts (default 1,024)
    /// are tracked.
    pub fn per_host(self) -> CircuitBreakerLayer<C, Keyed<PerHost, String>> {
        self.keyed(PerHost)
    }

    /// Keeps one breaker per key that `key_fn` picks from each request.
    ///
    /// ```
    /// use fender::circuit_breaker::CircuitBreakerLayer;
    ///
    /// // One breaker per tenant.
    /// let layer = CircuitBreakerLayer::new().key_fn(|req: &http::Request<String>| {
    ///     req.headers().get("x-tenant").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    /// });
    /// # let _ = layer;
    /// ```
    pub fn key_fn<Req, K, F>(self, key_fn: F) -> CircuitBreakerLayer<C, Keyed<F, K>>
    where
        F: Fn(&Req) -> K + Clone + Send + Sync + 'static,
        K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
    {
        self.keyed(key_fn)
    }

    fn keyed<F, K>(self, key_fn: F) -> CircuitBreakerLayer<C, Keyed<F, K>>
    where
        K: Hash + Eq + Clone + fmt::Debug,
    {
        CircuitBreakerLayer {
            mode: Keyed {
                key_fn,
                map: Arc::new(KeyMap::new(self.config.clone())),
            },
            config: self.config,
            classifier: self.classifier,
        }
    }

    /// The handle of the breaker that services made by this layer share.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            breaker: self.mode.breaker.breaker().clone(),
        }
    }
}

impl<C, F, K> CircuitBreakerLayer<C, Keyed<F, K>>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// The most keys tracked at once (default 1,024). When a new key arrives at the limit, the
    /// least recently used key with a closed circuit is evicted (or, if every circuit is
    /// tripped, the least recently used key).
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_keys(mut self, n: usize) -> Self {
        assert!(n >= 1, "CircuitBreakerLayer::max_keys: must be at least 1");
        let mut config = (*self.config).clone();
        config.max_keys = n;
        self.config = Arc::new(config);
        self.mode.map = Arc::new(KeyMap::new(self.config.clone()));
        self
    }

    /// The handle of the breakers that services made by this layer share.
    pub fn handle(&self) -> KeyedHandle<K> {
        KeyedHandle {
            map: self.mode.map.clone(),
        }
    }
}

impl<C, M> CircuitBreakerLayer<C, M> {
    /// Replaces the classifier that decides what is a failure (default: the contract's
    /// [`ContractClassifier`]; a call is a failure when its class
    /// [`is_failure`](crate::classify::Class::is_failure)). A closure
    /// `Fn(Outcome<'_>) -> Class` works.
    pub fn classifier<C2: Classify>(self, classifier: C2) -> CircuitBreakerLayer<C2, M> {
        CircuitBreakerLayer {
            config: self.config,
            classifier,
            mode: self.mode,
        }
    }
}

impl<S, C: Clone, M: Clone> Layer<S> for CircuitBreakerLayer<C, M> {
    type Service = CircuitBreaker<S, C, M>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.classifier.clone(), self.mode.clone())
    }
}

impl<C, M> CircuitBreakerLayer<C, M> {
    /// The breaker settings, for a composed stack that keeps its own breakers.
    pub(crate) fn breaker_config(&self) -> Arc<Config> {
        self.config.clone()
    }
}
