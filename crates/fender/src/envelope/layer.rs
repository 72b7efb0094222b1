//! [`ErrorEnvelopeLayer`].

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tower_layer::Layer;

use super::problem::{DEFAULT_TYPE_BASE, ProblemDetails};
use super::service::ErrorEnvelope;
use crate::ApiError;

/// A user's mapping from an error type of theirs to an [`ApiError`].
pub(crate) type MapError = Arc<dyn Fn(&(dyn StdError + 'static)) -> Option<ApiError> + Send + Sync>;

/// How long the layer waits for an inner error body it reads: 2 s.
const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(2);

/// Settings shared by every clone of an [`ErrorEnvelope`].
#[derive(Clone)]
pub(crate) struct Config {
    /// How much of a non-envelope error body is read to look for an envelope or a message.
    pub(crate) body_limit: usize,
    /// How long that read may take.
    pub(crate) body_timeout: Duration,
    /// The longest plain-text 4xx body that is kept as the message.
    pub(crate) max_message_len: usize,
    pub(crate) map_error: Option<MapError>,
    /// When error responses are problem details rather than envelopes.
    pub(crate) problem_details: ProblemDetails,
    /// The base of problem `type` URIs; `None` for [`DEFAULT_TYPE_BASE`]. In an `Arc` so the
    /// copy each response future takes allocates nothing.
    pub(crate) problem_type_base: Option<Arc<str>>,
}

impl Config {
    /// The base of problem `type` URIs.
    pub(crate) fn problem_type_base(&self) -> &str {
        self.problem_type_base
            .as_deref()
            .unwrap_or(DEFAULT_TYPE_BASE)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            body_limit: 64 * 1024,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            max_message_len: 256,
            map_error: None,
            problem_details: ProblemDetails::default(),
            problem_type_base: None,
        }
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("body_limit", &self.body_limit)
            .field("body_timeout", &self.body_timeout)
            .field("max_message_len", &self.max_message_len)
            .field("map_error", &self.map_error.as_ref().map(|_| ".."))
            .field("problem_details", &self.problem_details)
            .field("problem_type_base", &self.problem_type_base())
            .finish()
    }
}

/// Makes every 4xx/5xx response of a server the contract's JSON envelope, and gives every
/// response a request id. See the [module docs](super) for the guarantees.
///
/// Its service's error type is [`Infallible`](std::convert::Infallible): put it outermost.
///
/// ```
/// use fender::envelope::ErrorEnvelopeLayer;
/// use fender::ApiError;
///
/// # #[derive(Debug)] struct QuotaExceeded;
/// # impl std::fmt::Display for QuotaExceeded {
/// #     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("quota") }
/// # }
/// # impl std::error::Error for QuotaExceeded {}
/// // Errors of your own middleware can map to a code of the contract.
/// let layer = ErrorEnvelopeLayer::new().map_error(|err| {
///     err.downcast_ref::<QuotaExceeded>()
///         .map(|_| ApiError::rate_limit_exceeded("monthly quota exhausted"))
/// });
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Default)]
#[must_use = "a builder does nothing until it is used"]
pub struct ErrorEnvelopeLayer {
    config: Config,
}

impl ErrorEnvelopeLayer {
    /// The layer with the contract's behaviour.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes of a non-envelope error body are read (default 64 KiB); the rest is
    /// discarded unread.
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn body_limit(mut self, limit: usize) -> Self {
        assert!(limit > 0, "the error body limit must be at least one byte");
        self.config.body_limit = limit;
        self
    }

    /// How long the layer waits for an inner error body it reads (a JSON error, a short
    /// plain-text 4xx) before it gives up and answers from the status alone (default 2 s).
    ///
    /// The clock is `tokio::time`. A body that stalls or never ends would otherwise hold the
    /// response, and the connection, for as long as it lasts. `Duration::ZERO` reads only what
    /// is ready at once.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout;
        self
    }

    /// The longest plain-text 4xx body kept as the envelope's message (default 256 bytes).
    /// Longer bodies, non-printable ones, and every 5xx body give the code's generic message.
    /// 0 never keeps a body.
    pub fn max_message_len(mut self, len: usize) -> Self {
        self.config.max_message_len = len;
        self
    }

    /// Maps errors of the inner service that this crate does not know to an [`ApiError`].
    ///
    /// The function sees the error (and then each error of its source chain) and returns
    /// `Some` to choose the envelope; errors it returns `None` for get the contract's mapping
    /// (timeouts → 504, an open circuit or overload → 503, anything else → 500).
    pub fn map_error<F>(mut self, f: F) -> Self
    where
        F: Fn(&(dyn StdError + 'static)) -> Option<ApiError> + Send + Sync + 'static,
    {
        self.config.map_error = Some(Arc::new(f));
        self
    }

    /// When error responses are RFC 9457 problem details (`application/problem+json`) rather
    /// than the envelope (default [`ProblemDetails::Negotiate`]: when the request's `Accept`
    /// strictly prefers them to `application/json`, and then with `Vary: Accept`).
    ///
    /// Everything else is the same in both forms: the status, the code, the 5xx rule for the
    /// message (the problem's `detail`), the request id, the headers of the status. See
    /// [`Problem`](super::Problem) for the members.
    ///
    /// ```
    /// use fender::envelope::{ErrorEnvelopeLayer, ProblemDetails};
    ///
    /// // A server whose every error is a problem document, with types of its own.
    /// let layer = ErrorEnvelopeLayer::new()
    ///     .problem_details(ProblemDetails::Always)
    ///     .problem_type_base("https://api.example.com/problems/");
    /// # let _ = layer;
    /// ```
    pub fn problem_details(mut self, when: ProblemDetails) -> Self {
        self.config.problem_details = when;
        self
    }

    /// The base of problem `type` URIs: a code's type is the base followed by the code in lower
    /// case with hyphens, `<base>not-found` (default
    /// [`DEFAULT_TYPE_BASE`](super::DEFAULT_TYPE_BASE), `urn:fender:error:`).
    ///
    /// Use a base under a host you run when you publish a page per error; RFC 9457 recommends
    /// an absolute URI. Clients built with this crate read the `code` member, so they do not
    /// depend on the base.
    ///
    /// # Panics
    ///
    /// If `base` is empty or has a character that is not visible ASCII (a space, a control
    /// character, non-ASCII text): it would not make a URI.
    pub fn problem_type_base(mut self, base: impl Into<String>) -> Self {
        let base = base.into();
        assert!(
            !base.is_empty() && base.bytes().all(|b| b.is_ascii_graphic()),
            "problem_type_base: {base:?} is not the start of a URI (visible ASCII, not empty)"
        );
        self.config.problem_type_base = Some(base.into());
        self
    }
}

impl<S> Layer<S> for ErrorEnvelopeLayer {
    type Service = ErrorEnvelope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ErrorEnvelope::with_config(inner, self.config.clone())
    }
}
