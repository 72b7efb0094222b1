//! [`CircuitBreakerLayer`], the breaker's builder.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::breaker::{Breaker, BreakerSet};
use super::handle::{CircuitBreakerHandle, KeyedHandle};
use super::keyed::{Keyed, PerHost, Single};
use super::policy::{Config, FailureRate, MAX_COUNT, Trip};
use super::service::CircuitBreaker;
use super::state::StateChange;
use crate::classify::{Classify, ContractClassifier};

/// Applies a circuit breaker to a service; see the [module docs](super).
///
/// [`new`](Self::new) is the contract's breaker (CONTRACT.md §4): it opens after 5 consecutive
/// failures, stays open 30 s, then admits 3 probes at a time, closes after 3 successful probes,
/// and ramps the admitted share of traffic from 10% to 100% over 10 s.
///
/// The builder methods only change the configuration, in any order, before or after
/// [`per_host`](Self::per_host) or [`key_fn`](Self::key_fn). The breaker (or the map of
/// breakers per key) is made once, from the final configuration, by the first
/// [`layer`](Layer::layer) call; every service the layer (or a clone of the layer) makes, and
/// every clone of those, shares it. [`handle`](Self::handle) reads and steers it, and may be
/// taken at any point: a handle taken before the other settings sees the breaker the services
/// use. (A handle of the single breaker taken before `per_host()` or `key_fn()` stays with the
/// single breaker, which a keyed layer never makes.) For independent breakers, build one layer
/// per upstream.
///
/// Invalid values panic where they are set (see each method's `# Panics`): they are
/// programming errors, caught the first time the code runs. Settings that only contradict each
/// other in combination are checked when the breaker is made, so that the order of the setters
/// never matters.
#[derive(Clone)]
#[must_use = "a builder does nothing until it is used"]
pub struct CircuitBreakerLayer<C = ContractClassifier, M = Single> {
    config: Config,
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
        CircuitBreakerLayer {
            mode: Single {
                slot: Arc::default(),
            },
            config: Config::default(),
            classifier: ContractClassifier,
        }
    }
}

impl<C, M> CircuitBreakerLayer<C, M> {
    fn update(mut self, change: impl FnOnce(&mut Config)) -> Self {
        change(&mut self.config);
        self
    }

    /// Opens after `n` consecutive failures (default 5); a success resets the count. This is
    /// the default trip mode; it replaces a [`failure_rate`](Self::failure_rate).
    ///
    /// Failures of calls that were in flight together count once, and when failures were
    /// frequent just before the run, a longer run is needed (see the
    /// [module docs](super#the-trip-under-noise)); a quiet or fresh breaker opens on exactly the
    /// `n`-th failure. [`strict_consecutive`](Self::strict_consecutive) drops the second rule.
    ///
    /// # Panics
    ///
    /// When `n` is 0 or more than 65,535.
    pub fn consecutive_failures(self, n: u32) -> Self {
        assert!(
            (1..=MAX_COUNT).contains(&n),
            "CircuitBreakerLayer::consecutive_failures: must be at least 1 and at most {MAX_COUNT}, got {n}"
        );
        self.update(|c| c.trip = Trip::Consecutive(u64::from(n)))
    }

    /// Opens on the `n`-th consecutive failure whatever the failure rate before the run: no
    /// longer runs under noise (calls in flight together still count once).
    pub fn strict_consecutive(self) -> Self {
        self.update(|c| c.chance_runs = false)
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
    /// When `n` is 0 or more than 65,535.
    pub fn half_open_probes(self, n: u32) -> Self {
        assert!(
            (1..=MAX_COUNT).contains(&n),
            "CircuitBreakerLayer::half_open_probes: must be 1 to {MAX_COUNT}, got {n}"
        );
        self.update(|c| c.probes = n)
    }

    /// How many successful probes of one half-open round close the circuit (default 3).
    ///
    /// # Panics
    ///
    /// When `n` is 0 or more than 65,535.
    pub fn close_after(self, n: u32) -> Self {
        assert!(
            (1..=MAX_COUNT).contains(&n),
            "CircuitBreakerLayer::close_after: must be 1 to {MAX_COUNT}, got {n}"
        );
        self.update(|c| c.close_after = n)
    }

    /// How many failed probes in a row re-open a half-open circuit (default: as many as
    /// [`close_after`](Self::close_after), 3).
    ///
    /// A half-open round ends as soon as it is decided: on its `close_after`-th successful
    /// probe the circuit closes, on `reopen_after` failed probes in a row (a success ends the
    /// run) it opens again, as the closed circuit opens on consecutive failures. An upstream
    /// that is down fails its first 3 probes, the ones in flight together, so it costs the same
    /// 3 calls as "one failed probe re-opens"; one that still serves 60% of its calls is let
    /// back 4 times in 5 instead of 1 in 5, and then shed in proportion by the client's
    /// adaptive throttling instead of being cut off. `reopen_after(1)` restores the classic
    /// rule: one failed probe re-opens the circuit.
    ///
    /// # Panics
    ///
    /// When `n` is 0 or more than 65,535.
    pub fn reopen_after(self, n: u32) -> Self {
        assert!(
            (1..=MAX_COUNT).contains(&n),
            "CircuitBreakerLayer::reopen_after: must be 1 to {MAX_COUNT}, got {n}"
        );
        self.update(|c| c.reopen_after = Some(n))
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
            c.ramp_on = true;
            c.ramp_window = window;
        })
    }

    /// The share of calls admitted right after the circuit closes (default 0.1). It does not
    /// turn a ramp switched off by [`no_ramp`](Self::no_ramp) back on.
    ///
    /// # Panics
    ///
    /// When `share` is not in `(0, 1]`.
    pub fn ramp_start_share(self, share: f64) -> Self {
        assert!(
            share > 0.0 && share <= 1.0,
            "CircuitBreakerLayer::ramp_start_share: must be in (0, 1], got {share}"
        );
        self.update(|c| c.ramp_start_share = share)
    }

    /// Lets all traffic through as soon as the circuit closes ([`ramp`](Self::ramp) turns the
    /// ramp back on).
    pub fn no_ramp(self) -> Self {
        self.update(|c| c.ramp_on = false)
    }

    /// Seeds the jitter of the growing open duration, for reproducible tests (default: a
    /// random seed).
    pub fn seed(self, seed: u64) -> Self {
        self.update(|c| c.seed = Some(seed))
    }

    /// Runs `callback` on every state change, once the change is complete, e.g. to update
    /// metrics. Keep it quick: it runs on the task whose call caused the change. A panic in it
    /// is caught and logged at ERROR; the breaker carries on.
    pub fn on_state_change<F>(self, callback: F) -> Self
    where
        F: Fn(&StateChange) + Send + Sync + 'static,
    {
        self.update(|c| c.on_state_change = Some(Arc::new(callback)))
    }

    /// The most keys tracked at once by [`per_host`](Self::per_host) or
    /// [`key_fn`](Self::key_fn) (default 1,024; set before or after them). When a new key
    /// arrives at the limit, one of the least recently used keys with a closed circuit is
    /// evicted: tripped circuits are passed over, so the open circuits of bad hosts are kept
    /// longest. Finding the key to evict takes constant time whatever the limit.
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_keys(self, n: usize) -> Self {
        assert!(n >= 1, "CircuitBreakerLayer::max_keys: must be at least 1");
        self.update(|c| c.max_keys = n)
    }

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

impl<C> CircuitBreakerLayer<C, Single> {
    /// Keeps one breaker per upstream host, keyed by scheme, host and port
    /// ([`HostKey`](super::HostKey): never credentials, path or query), so one bad host does
    /// not cut off the others. At most [`max_keys`](CircuitBreakerLayer::max_keys) hosts
    /// (default 1,024) are tracked.
    pub fn per_host(self) -> CircuitBreakerLayer<C, Keyed<PerHost, super::HostKey>> {
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
                slot: Arc::default(),
            },
            config: self.config,
            classifier: self.classifier,
        }
    }

    /// The handle of the breaker that services made by this layer share; see the type docs.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::of_slot(self.mode.slot.clone())
    }

    fn make(&self) -> Single {
        self.config.check();
        let made = self
            .mode
            .slot
            .get_or_make(|| Breaker::new(Arc::new(self.config.clone()), None));
        same_config(&made.machine().config, &self.config);
        self.mode.clone()
    }
}

/// A breaker is shared by the clones of a layer: they must agree on what it is.
fn same_config(made: &Config, mine: &Config) {
    assert!(
        made == mine,
        "CircuitBreakerLayer::layer: this layer shares its breaker with a clone that made it \
         with other settings; configure the layer before cloning it, or build one layer per \
         breaker"
    );
}

impl<C, F, K> CircuitBreakerLayer<C, Keyed<F, K>>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// The handle of the breakers that services made by this layer share; see the type docs.
    pub fn handle(&self) -> KeyedHandle<K> {
        KeyedHandle {
            slot: self.mode.slot.clone(),
        }
    }

    fn make(&self) -> Keyed<F, K>
    where
        F: Clone,
    {
        self.config.check();
        let set = self
            .mode
            .slot
            .get_or_init(|| BreakerSet::new(Arc::new(self.config.clone())));
        same_config(set.config(), &self.config);
        self.mode.clone()
    }
}

/// Makes the breaker on the first call (see the type docs).
///
/// # Panics
///
/// When settings contradict each other (a `FailureRate::min_calls` above its count window),
/// or when a clone of this layer already made the shared breaker with other settings.
impl<S, C: Clone> Layer<S> for CircuitBreakerLayer<C, Single> {
    type Service = CircuitBreaker<S, C, Single>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.classifier.clone(), self.make())
    }
}

/// Makes the map of breakers on the first call (see the type docs).
///
/// # Panics
///
/// As for the single breaker.
impl<S, C: Clone, F: Clone, K> Layer<S> for CircuitBreakerLayer<C, Keyed<F, K>>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    type Service = CircuitBreaker<S, C, Keyed<F, K>>;

    fn layer(&self, inner: S) -> Self::Service {
        CircuitBreaker::new(inner, self.classifier.clone(), self.make())
    }
}

impl<C, M> CircuitBreakerLayer<C, M> {
    /// The breaker settings, for a composed stack that keeps its own breakers.
    pub(crate) fn breaker_config(&self) -> Arc<Config> {
        self.config.check();
        Arc::new(self.config.clone())
    }
}
