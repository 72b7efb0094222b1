//! [`ClientConfig`], the settings of the composed [`ClientLayer`].

use serde::{Deserialize, Serialize};

use super::{BreakerConfig, ConfigError, DecodeConfig, HumanDuration, RetryConfig, check};
use crate::circuit_breaker::CircuitBreakerLayer;
use crate::client::{ClientLayer, DEFAULT_ATTEMPT_TIMEOUT};
use crate::retry::RetryLayer;

/// The default of `ClientLayer::max_keys`; the tests compare it with the builder.
const MAX_KEYS: usize = 1024;

/// The settings of a [`ClientLayer`], as a file holds them: the stack's own settings, and the
/// `[retry]`, `[breaker]` and `[decode]` tables of its parts. Every field is optional, and a
/// missing one keeps the default of [`ClientLayer::new`].
///
/// The stack has one per-attempt timeout and one limit on the hosts it tracks, so
/// `retry.attempt_timeout` and `breaker.max_keys` are refused here: set `attempt_timeout` and
/// `max_keys` at the top. Switches without an argument (`no_breaker`, `no_attempt_timeout`,
/// `no_throttle`) are booleans, and refuse the settings they would switch off.
///
/// ```
/// use fender::config::ClientConfig;
///
/// let config: ClientConfig = toml::from_str(r#"
///     attempt_timeout = "5s"       # default 10s, positive
///     no_attempt_timeout = false   # default false; true removes the per-attempt timeout
///     body_timeout = "30s"         # default none: a limit on reading a successful body
///     no_throttle = false          # default false; true turns adaptive throttling off
///     no_breaker = false           # default false; true removes the circuit breaker
///     max_keys = 1024              # hosts whose state is kept (default 1024), at least 1
///
///     [retry]                      # see RetryConfig
///     max_attempts = 4
///
///     [breaker]                    # see BreakerConfig
///     open_duration = "10s"
///
///     [decode]                     # see DecodeConfig
///     body_limit = 16384
/// "#).unwrap();
/// let layer = config.layer().unwrap();
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The time limit of each attempt (default 10 s); positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt_timeout: Option<HumanDuration>,
    /// `true`: no per-attempt timeout (default `false`). Cannot be combined with
    /// `attempt_timeout`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_attempt_timeout: Option<bool>,
    /// A time limit for reading a successful response's body (default none); positive.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_timeout: Option<HumanDuration>,
    /// `true`: no adaptive throttling (default `false`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_throttle: Option<bool>,
    /// `true`: no circuit breaker (default `false`). Cannot be combined with a `[breaker]`
    /// table.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_breaker: Option<bool>,
    /// The most hosts whose state is kept at once (default 1,024); at least 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_keys: Option<usize>,
    /// The retry loop (default [`RetryLayer::new`]), without `attempt_timeout`.
    #[serde(skip_serializing_if = "is_default")]
    pub retry: RetryConfig,
    /// The per-host circuit breaker (default [`CircuitBreakerLayer::new`]), without
    /// `max_keys`.
    #[serde(skip_serializing_if = "is_default")]
    pub breaker: BreakerConfig,
    /// Envelope decoding (default [`DecodeEnvelopeLayer::new`](crate::DecodeEnvelopeLayer::new)).
    #[serde(skip_serializing_if = "is_default")]
    pub decode: DecodeConfig,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

impl ClientConfig {
    /// The layer these settings describe: [`ClientLayer::new`] with every field that is set
    /// applied.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming the first field the builders would refuse, by its path
    /// (`retry.max_attempts`).
    pub fn layer(&self) -> Result<ClientLayer, ConfigError> {
        self.layer_with(RetryLayer::new(), CircuitBreakerLayer::new())
    }

    /// The layer these settings describe, with the `[retry]` settings applied on top of
    /// `retry` and the `[breaker]` settings on top of `breaker`: the way to keep the code's
    /// callbacks and classifier ([`RetryLayer::on_retry`],
    /// [`CircuitBreakerLayer::on_state_change`]). As in [`ClientLayer::retry`], the retry
    /// layer's classifier decides every attempt; `breaker` is not used under `no_breaker`.
    ///
    /// ```
    /// use fender::{CircuitBreakerLayer, RetryLayer};
    /// use fender::config::ClientConfig;
    ///
    /// let config: ClientConfig = toml::from_str(r#"
    ///     [retry]
    ///     max_attempts = 2
    /// "#).unwrap();
    /// let layer = config
    ///     .layer_with(
    ///         RetryLayer::new().on_retry(|attempt, _, reason| println!("{reason}: {attempt}")),
    ///         CircuitBreakerLayer::new().on_state_change(|change| println!("{change:?}")),
    ///     )
    ///     .unwrap();
    /// # let _ = layer;
    /// ```
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn layer_with<C, CB, M>(
        &self,
        retry: RetryLayer<C>,
        breaker: CircuitBreakerLayer<CB, M>,
    ) -> Result<ClientLayer<C>, ConfigError> {
        if self.retry.attempt_timeout.is_some() {
            return Err(ConfigError::new(
                "retry.attempt_timeout",
                "the client stack has one per-attempt timeout: set attempt_timeout at the top \
                 of the client configuration",
            ));
        }
        if self.breaker.max_keys.is_some() {
            return Err(ConfigError::new(
                "breaker.max_keys",
                "the client stack keeps one breaker per host: set max_keys at the top of the \
                 client configuration",
            ));
        }
        let retry = self.retry.apply_to(retry).map_err(|e| e.within("retry"))?;
        let mut layer = ClientLayer::new().retry(retry);
        if check::on(self.no_breaker) {
            check::conflict("breaker", !is_default(&self.breaker), "no_breaker")?;
            layer = layer.no_breaker();
        } else {
            let breaker = self
                .breaker
                .apply_to(breaker)
                .map_err(|e| e.within("breaker"))?;
            layer = layer.breaker(breaker);
        }
        if check::on(self.no_attempt_timeout) {
            check::conflict(
                "attempt_timeout",
                self.attempt_timeout.is_some(),
                "no_attempt_timeout",
            )?;
            layer = layer.no_attempt_timeout();
        } else if let Some(timeout) = check::positive("attempt_timeout", self.attempt_timeout)? {
            layer = layer.attempt_timeout(timeout);
        }
        if let Some(timeout) = check::positive("body_timeout", self.body_timeout)? {
            layer = layer.body_timeout(timeout);
        }
        if check::on(self.no_throttle) {
            layer = layer.no_throttle();
        }
        if let Some(n) = check::count("max_keys", self.max_keys, 1, usize::MAX)? {
            layer = layer.max_keys(n);
        }
        let decode = self.decode.layer().map_err(|e| e.within("decode"))?;
        Ok(layer.decode(decode))
    }

    /// The settings in effect: these settings, checked, with every default filled in, the
    /// nested tables' too (a setting whose default is "none", such as `body_timeout`, stays
    /// absent).
    ///
    /// # Errors
    ///
    /// As [`layer`](Self::layer).
    pub fn effective(&self) -> Result<ClientConfig, ConfigError> {
        self.layer().map(drop)?;
        let no_breaker = check::on(self.no_breaker);
        let no_attempt_timeout = check::on(self.no_attempt_timeout);
        let mut breaker = BreakerConfig::default();
        if !no_breaker {
            breaker = self.breaker.effective().map_err(|e| e.within("breaker"))?;
            breaker.max_keys = None;
        }
        Ok(ClientConfig {
            attempt_timeout: (!no_attempt_timeout).then(|| {
                self.attempt_timeout
                    .unwrap_or(DEFAULT_ATTEMPT_TIMEOUT.into())
            }),
            no_attempt_timeout: Some(no_attempt_timeout),
            body_timeout: self.body_timeout,
            no_throttle: Some(check::on(self.no_throttle)),
            no_breaker: Some(no_breaker),
            max_keys: Some(self.max_keys.unwrap_or(MAX_KEYS)),
            retry: self.retry.effective().map_err(|e| e.within("retry"))?,
            breaker,
            decode: self.decode.effective().map_err(|e| e.within("decode"))?,
        })
    }
}
