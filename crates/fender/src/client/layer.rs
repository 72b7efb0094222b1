//! [`ClientLayer`], the composed client stack.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tower_layer::Layer;

use super::body::BodyDeadline;
use super::breaker::BreakerCell;
use super::gate::HostGate;
use super::host::{ClientHandle, HostMap, HostState, MakeHost};
use super::pushback::{Pushback, PushbackConfig};
use super::throttle::{Throttle, ThrottleConfig};
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::circuit_breaker::policy::Config as BreakerConfig;
use crate::classify::ContractClassifier;
use crate::envelope::{DecodeEnvelope, DecodeEnvelopeLayer};
use crate::retry::{Retry, RetryLayer};

/// The service [`ClientLayer`] makes: envelope decoding around the retry loop, whose every
/// attempt passes its host's pushback, throttle and circuit breaker and is bounded by the
/// per-attempt timeout. Its error is [`ApiError`](crate::ApiError).
pub type ClientStack<S, C = ContractClassifier> =
    DecodeEnvelope<BodyDeadline<Retry<S, C, HostGate>>>;

/// The contract's client stack in one layer; see the [module docs](super).
///
/// `ClientLayer::new()` is the contract: errors decoded into [`ApiError`](crate::ApiError)
/// outermost, then the retry loop of [`RetryLayer::new`], then per host a server-pushback hold,
/// adaptive throttling and the circuit breaker of [`CircuitBreakerLayer::new`], then a
/// per-attempt timeout (10 s) innermost, so the breaker counts an attempt that timed out. One
/// classifier (the retry layer's) decides every attempt once, for the retry loop and the
/// breaker alike.
///
/// # Clone
///
/// Clones of the layer, and every service they make, share one map of host states (bounded by
/// [`max_keys`](Self::max_keys)) and one retry budget; [`handle`](Self::handle) watches them,
/// whenever it is taken.
#[must_use]
pub struct ClientLayer<C = ContractClassifier> {
    retry: RetryLayer<C>,
    breaker: Option<Arc<BreakerConfig>>,
    attempt_timeout: Option<Duration>,
    body_timeout: Option<Duration>,
    decode: DecodeEnvelopeLayer,
    throttle: Option<ThrottleConfig>,
    pushback: PushbackConfig,
    max_keys: usize,
    hosts: Arc<OnceLock<Arc<HostMap>>>,
}

impl<C: Clone> Clone for ClientLayer<C> {
    fn clone(&self) -> Self {
        ClientLayer {
            retry: self.retry.clone(),
            breaker: self.breaker.clone(),
            attempt_timeout: self.attempt_timeout,
            body_timeout: self.body_timeout,
            decode: self.decode,
            throttle: self.throttle,
            pushback: self.pushback,
            max_keys: self.max_keys,
            hosts: self.hosts.clone(),
        }
    }
}

impl<C: fmt::Debug> fmt::Debug for ClientLayer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientLayer")
            .field("retry", &self.retry)
            .field("breaker", &self.breaker)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("throttle", &self.throttle)
            .field("max_keys", &self.max_keys)
            .finish_non_exhaustive()
    }
}

impl Default for ClientLayer {
    fn default() -> Self {
        ClientLayer::new()
    }
}

/// The default per-attempt timeout of the composed stack.
pub const DEFAULT_ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

impl ClientLayer {
    /// The contract's client stack (see the type docs).
    pub fn new() -> Self {
        ClientLayer {
            retry: RetryLayer::new(),
            breaker: Some(CircuitBreakerLayer::new().breaker_config()),
            attempt_timeout: Some(DEFAULT_ATTEMPT_TIMEOUT),
            body_timeout: None,
            decode: DecodeEnvelopeLayer::new(),
            throttle: Some(ThrottleConfig::default()),
            pushback: PushbackConfig::default(),
            max_keys: 1024,
            hosts: Arc::new(OnceLock::new()),
        }
    }
}

impl<C> ClientLayer<C> {
    /// Replaces the retry settings (attempts, backoff, budget, idempotency, deadline, classifier)
    /// with those of `retry`. Its classifier decides every attempt for the breaker too. Its
    /// per-attempt timeout, if set, is replaced by this layer's
    /// [`attempt_timeout`](Self::attempt_timeout).
    pub fn retry<C2>(self, retry: RetryLayer<C2>) -> ClientLayer<C2> {
        ClientLayer {
            retry,
            breaker: self.breaker,
            attempt_timeout: self.attempt_timeout,
            body_timeout: self.body_timeout,
            decode: self.decode,
            throttle: self.throttle,
            pushback: self.pushback,
            max_keys: self.max_keys,
            hosts: self.hosts,
        }
    }

    /// Replaces the breaker settings with those of `breaker` (trip rule, open duration, probes,
    /// ramp, callbacks). The stack keeps one breaker per host whatever the layer's key mode; the
    /// breaker layer's classifier is not used (the retry layer's decides).
    pub fn breaker<C2, M>(mut self, breaker: CircuitBreakerLayer<C2, M>) -> Self {
        self.breaker = Some(breaker.breaker_config());
        self
    }

    /// No circuit breaker.
    pub fn no_breaker(mut self) -> Self {
        self.breaker = None;
        self
    }

    /// The time limit of each attempt (default 10 s), innermost: an attempt that takes longer
    /// is a [`Class::Timeout`](crate::classify::Class::Timeout) failure the breaker counts and
    /// the retry loop may retry.
    ///
    /// # Panics
    ///
    /// When `timeout` is zero.
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "ClientLayer::attempt_timeout must not be zero"
        );
        self.attempt_timeout = Some(timeout);
        self
    }

    /// No per-attempt timeout.
    pub fn no_attempt_timeout(mut self) -> Self {
        self.attempt_timeout = None;
        self
    }

    /// A time limit for reading a successful response's body, from the arrival of its head
    /// (default none). A body still unfinished then fails with a
    /// [`TIMEOUT`](crate::ErrorCode::Timeout) [`ApiError`](crate::ApiError) whose source is a
    /// [`BodyTimeout`](super::BodyTimeout). The retry layer's
    /// [`deadline`](RetryLayer::deadline), when set, covers the body as well.
    ///
    /// # Panics
    ///
    /// When `timeout` is zero.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "ClientLayer::body_timeout must not be zero"
        );
        self.body_timeout = Some(timeout);
        self
    }

    /// Replaces the envelope decoding settings (error body limit and timeout, request ids).
    pub fn decode(mut self, decode: DecodeEnvelopeLayer) -> Self {
        self.decode = decode;
        self
    }

    /// No adaptive throttling: a sick host is only cut off by its breaker.
    pub fn no_throttle(mut self) -> Self {
        self.throttle = None;
        self
    }

    /// The most hosts whose state is kept at once (default 1,024).
    ///
    /// # Panics
    ///
    /// When `n` is 0.
    pub fn max_keys(mut self, n: usize) -> Self {
        assert!(n >= 1, "ClientLayer::max_keys must be at least 1");
        self.max_keys = n;
        self
    }

    /// A handle to the per-host state of every service this layer (or a clone) makes; it may be
    /// taken before or after the other settings.
    pub fn handle(&self) -> ClientHandle {
        ClientHandle {
            hosts: self.hosts.clone(),
        }
    }

    fn host_map(&self) -> Arc<HostMap> {
        self.hosts
            .get_or_init(|| {
                let breaker = self.breaker.clone();
                let throttle = self.throttle;
                let pushback = self.pushback;
                let seed = breaker
                    .as_ref()
                    .and_then(|b| b.seed)
                    .unwrap_or_else(rand::random);
                let base = tokio::time::Instant::now();
                let make: MakeHost = Arc::new(move |key| {
                    let salt = crate::circuit_breaker::ramp::splitmix(seed ^ hash(key));
                    HostState::new(
                        breaker.clone().map(|config| BreakerCell::new(config, key)),
                        Pushback::new(pushback, salt),
                        throttle.map(|t| Throttle::new(t, salt.rotate_left(17), base)),
                    )
                });
                Arc::new(HostMap::new(self.max_keys, make, base))
            })
            .clone()
    }
}

fn hash(key: &super::host::HostKey) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(key)
}

impl<S, C: Clone> Layer<S> for ClientLayer<C> {
    type Service = ClientStack<S, C>;

    fn layer(&self, inner: S) -> Self::Service {
        let mut config = self.retry.checked_config();
        config.attempt_timeout = self.attempt_timeout;
        let deadline = config.deadline;
        let gate = HostGate {
            hosts: self.host_map(),
        };
        let retry = Retry::from_config(inner, Arc::new(config), gate);
        self.decode
            .layer(BodyDeadline::new(retry, self.body_timeout, deadline))
    }
}
