//! What may be retried, and how the caller and metrics hear about it.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, Method};

use super::backoff::Backoff;
use super::budget::RetryBudget;
use crate::classify::Class;

/// The `Idempotency-Key` request header: a POST or PATCH carrying it may be retried.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

/// Whether a method is idempotent per RFC 9110 §9.2.2 (GET, HEAD, OPTIONS, TRACE, PUT, DELETE).
pub fn is_idempotent(method: &Method) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    )
}

/// A callback run before every retry, for metrics.
///
/// Implemented for every `Fn(u32, Duration, Class)` closure that is `Send + Sync + 'static`;
/// the arguments are the number of the attempt about to be made (2 for the first retry), the
/// delay waited before it, and the class of the outcome that caused it.
pub trait OnRetry: Send + Sync + 'static {
    /// Called once per retry, just before the delay starts.
    fn on_retry(&self, attempt: u32, delay: Duration, reason: Class);
}

impl<F> OnRetry for F
where
    F: Fn(u32, Duration, Class) + Send + Sync + 'static,
{
    fn on_retry(&self, attempt: u32, delay: Duration, reason: Class) {
        self(attempt, delay, reason)
    }
}

/// What the retry layer did for a request, in the extensions of the final response.
///
/// Inserted only when at least one retry happened, so the common path allocates nothing:
/// a response without a `RetryInfo` came from the first and only attempt. The last error of a
/// failed request is returned unchanged, without this record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryInfo {
    pub(crate) attempts: u32,
    pub(crate) delays: Vec<Duration>,
}

impl RetryInfo {
    /// How many attempts were made in all (at least 2).
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The delay waited before each retry, in order.
    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The sum of the delays.
    pub fn total_delay(&self) -> Duration {
        self.delays.iter().sum()
    }
}

/// The settings of one layer, shared by its services and their futures.
pub(crate) struct Config<C> {
    pub(crate) max_attempts: u32,
    pub(crate) backoff: Backoff,
    pub(crate) retry_after_cap: Duration,
    pub(crate) budget: Option<Arc<RetryBudget>>,
    pub(crate) classifier: C,
    pub(crate) non_idempotent: bool,
    pub(crate) attempt_timeout: Option<Duration>,
    pub(crate) deadline: Option<Duration>,
    pub(crate) seed: Option<u64>,
    pub(crate) body_cap: usize,
    pub(crate) on_retry: Option<Arc<dyn OnRetry>>,
    pub(crate) wall_clock: fn() -> SystemTime,
    /// Requests started, to give each seeded request its own random stream.
    pub(crate) sequence: std::sync::atomic::AtomicU64,
}

impl<C: Clone> Clone for Config<C> {
    fn clone(&self) -> Self {
        Config {
            max_attempts: self.max_attempts,
            backoff: self.backoff,
            retry_after_cap: self.retry_after_cap,
            budget: self.budget.clone(),
            classifier: self.classifier.clone(),
            non_idempotent: self.non_idempotent,
            attempt_timeout: self.attempt_timeout,
            deadline: self.deadline,
            seed: self.seed,
            body_cap: self.body_cap,
            on_retry: self.on_retry.clone(),
            wall_clock: self.wall_clock,
            sequence: std::sync::atomic::AtomicU64::new(0),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for Config<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("max_attempts", &self.max_attempts)
            .field("base_delay", &self.backoff.base)
            .field("max_delay", &self.backoff.max)
            .field("jitter", &self.backoff.jitter)
            .field("retry_after_cap", &self.retry_after_cap)
            .field("budget", &self.budget)
            .field("classifier", &self.classifier)
            .field("retry_non_idempotent", &self.non_idempotent)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("deadline", &self.deadline)
            .field("seed", &self.seed)
            .field("max_replay_body", &self.body_cap)
            .field("on_retry", &self.on_retry.as_ref().map(|_| "..."))
            .finish()
    }
}
