use std::fmt;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime};

use tower_layer::Layer;

use super::backoff::{Backoff, Jitter};
use super::budget::RetryBudget;
use super::gate::NoGate;
use super::policy::Config;
use super::service::Retry;
use crate::classify::{Classify, ContractClassifier};

/// Applies the contract's retry strategy to a client service; see the [module docs](super).
///
/// `RetryLayer::new()` gives the defaults of the contract; each builder method changes one
/// setting. Every service the layer makes, and every clone of those services, shares one
/// [`RetryBudget`].
#[must_use = "a builder does nothing until it is used"]
pub struct RetryLayer<C = ContractClassifier> {
    config: Config<C>,
}

impl RetryLayer {
    /// The contract's defaults: 3 attempts in all, backoff from 1 s doubling up to 30 s with
    /// proportional jitter (±20%), `Retry-After` honoured up to 60 s, non-idempotent requests protected, a
    /// [default budget](RetryBudget::default), no per-attempt timeout and no deadline, request
    /// bodies replayable up to 64 KiB.
    pub fn new() -> Self {
        RetryLayer {
            config: Config {
                max_attempts: 3,
                backoff: Backoff {
                    base: Duration::from_secs(1),
                    max: Duration::from_secs(30),
                    jitter: Jitter::Proportional,
                },
                retry_after_cap: Duration::from_secs(60),
                budget: Some(Arc::new(RetryBudget::default())),
                classifier: ContractClassifier,
                non_idempotent: false,
                attempt_timeout: None,
                deadline: None,
                seed: None,
                body_cap: 64 * 1024,
                on_retry: None,
                wall_clock: SystemTime::now,
                sequence: AtomicU64::new(0),
            },
        }
    }
}

impl Default for RetryLayer {
    fn default() -> Self {
        RetryLayer::new()
    }
}

impl<C> RetryLayer<C> {
    /// The number of attempts in all, the first one included (default 3: one call and two
    /// retries). `1` disables retries.
    ///
    /// # Panics
    ///
    /// When `attempts` is 0.
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        assert!(
            attempts >= 1,
            "RetryLayer::max_attempts must be at least 1 (the first attempt)"
        );
        self.config.max_attempts = attempts;
        self
    }

    /// The nominal delay before the first retry, doubled for each later one (default 1 s).
    ///
    /// The two delays may be set in either order; the pair is checked when the layer builds a
    /// service.
    ///
    /// # Panics
    ///
    /// [`layer`](Layer::layer) panics when the base delay is longer than the maximum delay.
    pub fn base_delay(mut self, base: Duration) -> Self {
        self.config.backoff.base = base;
        self
    }

    /// The longest backoff delay (default 30 s). `Retry-After` has its own cap.
    ///
    /// # Panics
    ///
    /// [`layer`](Layer::layer) panics when the maximum delay is shorter than the base delay.
    pub fn max_delay(mut self, max: Duration) -> Self {
        self.config.backoff.max = max;
        self
    }

    /// How delays are randomised (default [`Jitter::Proportional`]).
    pub fn jitter(mut self, jitter: Jitter) -> Self {
        self.config.backoff.jitter = jitter;
        self
    }

    /// The longest `Retry-After` that is obeyed (default 60 s). A 429 or 503 asking for longer
    /// is not retried: its response goes back to the caller at once.
    pub fn retry_after_cap(mut self, cap: Duration) -> Self {
        self.config.retry_after_cap = cap;
        self
    }

    /// The budget retries draw on; pass an `Arc` to share one budget between several layers.
    pub fn budget(mut self, budget: impl Into<Arc<RetryBudget>>) -> Self {
        self.config.budget = Some(budget.into());
        self
    }

    /// No budget: every retryable failure is retried up to the attempt limit. Only for
    /// upstreams that cannot be overloaded by retries.
    pub fn no_budget(mut self) -> Self {
        self.config.budget = None;
        self
    }

    /// The classifier that decides what is retried (default [`ContractClassifier`]); a
    /// closure `Fn(Outcome<'_>) -> Class` works too.
    pub fn classifier<C2: Classify>(self, classifier: C2) -> RetryLayer<C2> {
        let c = self.config;
        RetryLayer {
            config: Config {
                max_attempts: c.max_attempts,
                backoff: c.backoff,
                retry_after_cap: c.retry_after_cap,
                budget: c.budget,
                classifier,
                non_idempotent: c.non_idempotent,
                attempt_timeout: c.attempt_timeout,
                deadline: c.deadline,
                seed: c.seed,
                body_cap: c.body_cap,
                on_retry: c.on_retry,
                wall_clock: c.wall_clock,
                sequence: c.sequence,
            },
        }
    }

    /// Retry POST, PATCH and other non-idempotent requests like idempotent ones (default
    /// `false`). Only for upstreams that deduplicate requests themselves.
    pub fn retry_non_idempotent(mut self, retry: bool) -> Self {
        self.config.non_idempotent = retry;
        self
    }

    /// A time limit for each attempt (default none). An attempt that takes longer is dropped
    /// and counts as a [`Class::Timeout`](crate::classify::Class::Timeout) failure (a
    /// [`tower::timeout::error::Elapsed`] error), which is retried. An attempt's time runs
    /// from the first time its response future is pending (for the first attempt, the first
    /// poll of the request's future that the inner service does not answer at once; for a
    /// retry, when it is sent): an attempt that answers on its first poll never sets a timer.
    /// The timer is allocated once per request that needs one.
    ///
    /// # Panics
    ///
    /// When `timeout` is zero.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "RetryLayer::attempt_timeout must not be zero"
        );
        self.config.attempt_timeout = Some(timeout);
        self
    }

    /// An overall deadline for a request, measured from the call (default none).
    ///
    /// No delay runs past it: a retry is made only when its delay, plus the per-attempt
    /// timeout if one is set, ends before the deadline; otherwise the last response or error is
    /// returned at once. The deadline does not cut short an attempt in flight; put a
    /// `tower::timeout::TimeoutLayer` outside the retry layer for that.
    pub fn deadline(mut self, deadline: Duration) -> Self {
        self.config.deadline = Some(deadline);
        self
    }

    /// Seeds the random jitter, for reproducible tests (default: seeded from the thread RNG).
    /// Each request gets its own stream derived from the seed and the order of the calls.
    pub fn rng_seed(mut self, seed: u64) -> Self {
        self.config.seed = Some(seed);
        self
    }

    /// The largest request body kept for replay (default 64 KiB). A bigger body is streamed
    /// once, untouched, and its request is not retried.
    pub fn max_replay_body(mut self, bytes: usize) -> Self {
        self.config.body_cap = bytes;
        self
    }

    /// A callback run before each retry, e.g. to count retries by reason: it gets the number of
    /// the attempt about to be made (2 for the first retry), the delay before it and the class
    /// of the outcome that caused it. The closure's argument types are inferred:
    /// `.on_retry(|attempt, delay, reason| ...)`.
    pub fn on_retry<F>(mut self, callback: F) -> Self
    where
        F: Fn(u32, Duration, crate::classify::Class) + Send + Sync + 'static,
    {
        self.config.on_retry = Some(Arc::new(callback));
        self
    }

    /// The wall clock used to read `Retry-After` dates (default [`SystemTime::now`]); tests
    /// pass a fixed clock to make HTTP-date delays exact.
    pub fn wall_clock(mut self, now: fn() -> SystemTime) -> Self {
        self.config.wall_clock = now;
        self
    }
}

impl<C: Clone> RetryLayer<C> {
    /// The settings, after the checks that involve more than one of them.
    pub(crate) fn checked_config(&self) -> Config<C> {
        let backoff = &self.config.backoff;
        assert!(
            backoff.base <= backoff.max,
            "RetryLayer: base_delay ({:?}) must not exceed max_delay ({:?})",
            backoff.base,
            backoff.max
        );
        self.config.clone()
    }
}

impl<S, C: Clone> Layer<S> for RetryLayer<C> {
    type Service = Retry<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        Retry::from_config(inner, Arc::new(self.checked_config()), NoGate)
    }
}

impl<C: Clone> Clone for RetryLayer<C> {
    fn clone(&self) -> Self {
        RetryLayer {
            config: self.config.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for RetryLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RetryLayer").field(&self.config).finish()
    }
}
