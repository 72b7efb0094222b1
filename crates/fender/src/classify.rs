//! One rule book for the whole stack: what succeeded, what failed, what may be retried, and
//! what error response a failure is.
//!
//! The retry layer asks "may this be tried again?", the circuit breaker asks "did the upstream
//! fail?", the client-side decoder asks "is this error retryable?", and the server-side
//! envelope asks "which response is this error?". They all ask this module, so the answers
//! never disagree. [`ContractClassifier`] is the contract's rule set (CONTRACT.md §2–§4):
//!
//! | outcome | class | retried | breaker failure |
//! | --- | --- | --- | --- |
//! | 1xx–3xx | [`Class::Success`] | no | no |
//! | 429 | [`Class::RateLimited`] | yes | no |
//! | other 4xx | [`Class::ClientError`] | no | no |
//! | 500, 502, 503, 504 | [`Class::ServerError`] | yes | yes |
//! | 501, 505 and other 5xx | [`Class::PermanentServerError`] | no | no |
//! | 600–999 (no HTTP status) | [`Class::InvalidStatus`] | no | yes |
//! | timeout | [`Class::Timeout`] | yes | yes |
//! | connection refused | [`Class::ConnectFailed`] | yes, any method | yes |
//! | connection reset, closed early | [`Class::Transport`] | yes | yes |
//! | open circuit, load shed | [`Class::Rejected`] | no | no |
//! | anything else | [`Class::OtherError`] | no | yes |
//!
//! A user can replace the rules with a closure, delegating to the contract for the rest:
//!
//! ```
//! use fender::classify::{Class, Classify, ContractClassifier, Outcome};
//! use http::{HeaderMap, StatusCode};
//!
//! // This upstream answers 409 while it is still replicating: treat it as transient.
//! let classifier = |outcome: Outcome<'_>| match outcome {
//!     Outcome::Response { status: StatusCode::CONFLICT, .. } => Class::ServerError,
//!     other => ContractClassifier.classify(other),
//! };
//! let headers = HeaderMap::new();
//! let class = classifier.classify(Outcome::Response { status: StatusCode::CONFLICT, headers: &headers });
//! assert!(class.is_retryable());
//! ```
//!
//! # Errors, and how yours become known
//!
//! An error is judged by one walk of its source chain ([`diagnose`]), which knows, at any
//! depth: an [`ApiError`] (it speaks for the whole chain); a [`Rejection`]; tower's and tokio's
//! timeouts; tower's `Overloaded`; hyper's errors; `std::io::Error` kinds (refused, reset,
//! aborted, broken pipe, early EOF, timed out). Anything else is [`Class::OtherError`], a
//! generic 500. [`ApiError::from_error`] is built on the same walk, so a class and a response
//! never disagree. No middleware of this crate is named here: the circuit breaker's
//! `CircuitOpen` is known the way your own error type can be, in one of three ways.
//!
//! - **Put an [`ApiError`] in its source chain**: return it from `source()`, and the walk finds
//!   it (its status, code, message, `Retry-After` and class decide).
//! - **Put a [`Rejection`] in its source chain**, for a local fast-fail (a breaker, a bulkhead,
//!   a limiter); it is `Copy`, so a `Copy` error type can hold one. `CircuitOpen` does this.
//! - **Convert**: `impl From<YourError> for ApiError` and map the error before it leaves your
//!   service (or, on a server, with
//!   [`ErrorEnvelopeLayer::map_error`](crate::envelope::ErrorEnvelopeLayer::map_error)).
//!
//! [`ContractClassifier`] also implements tower-http's
//! [`ClassifyResponse`](tower_http::classify::ClassifyResponse), so the same rules can drive
//! tower-http's `TraceLayer`.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::time::Duration;

use http::{HeaderMap, Response, StatusCode};

use crate::code::ErrorCode;
use crate::error::ApiError;

/// What happened to one attempt, as a classifier sees it.
#[derive(Debug, Clone, Copy)]
pub enum Outcome<'a> {
    /// A response arrived with this status and these headers.
    Response {
        /// The response status.
        status: StatusCode,
        /// The response headers.
        headers: &'a HeaderMap,
    },
    /// No response: the service failed with this error.
    Error(&'a (dyn StdError + Send + Sync + 'static)),
}

impl<'a> Outcome<'a> {
    /// The outcome of a service call.
    pub fn of<B, E>(result: &'a Result<Response<B>, E>) -> Self
    where
        E: StdError + Send + Sync + 'static,
    {
        match result {
            Ok(res) => Outcome::Response {
                status: res.status(),
                headers: res.headers(),
            },
            Err(err) => Outcome::Error(err),
        }
    }
}

/// The class of an outcome: the one answer the retry layer, the circuit breaker and the
/// client-side decoder all act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Class {
    /// A 1xx–3xx response.
    Success,
    /// A 4xx other than 429: the request was wrong; trying again will not help, and the upstream
    /// is healthy.
    ClientError,
    /// A 429: the upstream is healthy but asks the client to slow down.
    RateLimited,
    /// A 500, 502, 503 or 504: a transient failure of the upstream.
    ServerError,
    /// A 5xx that will not change on a retry (501, 505, …).
    PermanentServerError,
    /// A status past 599 (`http` accepts up to 999): no HTTP status at all, so a broken
    /// upstream, but not one a retry would fix. Decoders and the server layer take it for an
    /// error too.
    InvalidStatus,
    /// The attempt timed out.
    Timeout,
    /// The connection could not be made (refused): the request provably never reached the
    /// server, so even a non-idempotent request may be sent again.
    ConnectFailed,
    /// The connection failed after it was made (reset, closed before the response).
    Transport,
    /// A local component refused the call without trying it (open circuit, load shedding).
    Rejected,
    /// Any other error.
    OtherError,
}

impl Class {
    /// Whether a retry may help (429, 500, 502, 503, 504, timeouts, transport failures).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Class::RateLimited
                | Class::ServerError
                | Class::Timeout
                | Class::ConnectFailed
                | Class::Transport
        )
    }

    /// Whether the upstream failed: what a circuit breaker counts.
    pub fn is_failure(self) -> bool {
        matches!(
            self,
            Class::ServerError
                | Class::InvalidStatus
                | Class::Timeout
                | Class::ConnectFailed
                | Class::Transport
                | Class::OtherError
        )
    }

    /// Whether the request provably never reached the upstream, so replaying it is safe
    /// whatever its method.
    pub fn never_reached_upstream(self) -> bool {
        matches!(self, Class::ConnectFailed)
    }

    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Success => "success",
            Class::ClientError => "client error",
            Class::RateLimited => "rate limited",
            Class::ServerError => "server error",
            Class::PermanentServerError => "permanent server error",
            Class::InvalidStatus => "invalid status",
            Class::Timeout => "timeout",
            Class::ConnectFailed => "connection failed",
            Class::Transport => "transport error",
            Class::Rejected => "rejected locally",
            Class::OtherError => "error",
        }
    }
}

impl fmt::Display for Class {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Decides the [`Class`] of an outcome.
///
/// Implemented by [`ContractClassifier`] and by every `Fn(Outcome<'_>) -> Class` closure that is
/// `Clone + Send + Sync + 'static`.
pub trait Classify: Clone + Send + Sync + 'static {
    /// The class of one outcome.
    fn classify(&self, outcome: Outcome<'_>) -> Class;
}

impl<F> Classify for F
where
    F: Fn(Outcome<'_>) -> Class + Clone + Send + Sync + 'static,
{
    fn classify(&self, outcome: Outcome<'_>) -> Class {
        self(outcome)
    }
}

/// The contract's classification rules (see the [module docs](self)).
#[derive(Debug, Clone, Copy, Default)]
pub struct ContractClassifier;

impl Classify for ContractClassifier {
    #[inline]
    fn classify(&self, outcome: Outcome<'_>) -> Class {
        match outcome {
            Outcome::Response { status, .. } => classify_status(status),
            Outcome::Error(err) => classify_error(err),
        }
    }
}

/// The contract's class for a response status.
#[inline]
pub fn classify_status(status: StatusCode) -> Class {
    match status.as_u16() {
        429 => Class::RateLimited,
        500 | 502 | 503 | 504 => Class::ServerError,
        400..=499 => Class::ClientError,
        500..=599 => Class::PermanentServerError,
        100..=399 => Class::Success,
        _ => Class::InvalidStatus,
    }
}

/// The contract's class for an error: [`diagnose`]'s class.
pub fn classify_error(err: &(dyn StdError + 'static)) -> Class {
    diagnose(err).class()
}

/// The first [`ApiError`] in an error's source chain (the error itself included), e.g. to read
/// the `Retry-After` of a decoded error wrapped by other layers.
pub fn find_api_error<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a ApiError> {
    chain(err).find_map(|e| e.downcast_ref::<ApiError>())
}

/// The errors of a source chain, the error itself first, at most 64 deep (a chain that loops
/// back on itself ends there).
pub(crate) fn chain<'a>(
    err: &'a (dyn StdError + 'static),
) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(Some(err), |&e| e.source()).take(64)
}

/// A local component refused a call without trying it: a fast-fail that is not a failure of
/// the upstream and not worth retrying at once.
///
/// It classifies as [`Class::Rejected`] and maps to 503 `SERVICE_UNAVAILABLE` with its message
/// (written for the client, so sent even though it is a 5xx) and, when known, `Retry-After`.
/// A middleware's error type holds one and returns it from `source()` to be known to the rule
/// book (see the [module docs](self)); the circuit breaker's `CircuitOpen` does.
///
/// ```
/// use std::time::Duration;
/// use fender::{ApiError, classify::{Class, Rejection, classify_error}};
///
/// #[derive(Debug, Clone, Copy)]
/// struct BulkheadFull(Rejection);
/// impl std::fmt::Display for BulkheadFull {
///     fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("bulkhead full") }
/// }
/// impl std::error::Error for BulkheadFull {
///     fn source(&self) -> Option<&(dyn std::error::Error + 'static)> { Some(&self.0) }
/// }
///
/// let wait = Duration::from_secs(2);
/// let full = BulkheadFull(Rejection::new("too many requests in flight").with_retry_after(wait));
/// assert_eq!(classify_error(&full), Class::Rejected);
/// let api = ApiError::from_error(Box::new(full));
/// assert_eq!((api.status().as_u16(), api.retry_after()), (503, Some(wait)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Rejection {
    message: &'static str,
    retry_after: Option<Duration>,
}

impl Rejection {
    /// A refusal with a message for the client (e.g. "the upstream service is temporarily
    /// unavailable") and no known wait.
    pub const fn new(message: &'static str) -> Self {
        Rejection {
            message,
            retry_after: None,
        }
    }

    /// How long until a call may be let through (sent as `Retry-After`).
    pub const fn with_retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The message for the client.
    pub fn message(&self) -> &'static str {
        self.message
    }

    /// How long until a call may be let through, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message)
    }
}

impl StdError for Rejection {}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        let found = Diagnosis {
            class: Class::Rejected,
            api: None,
            rejection: Some(rejection),
        };
        found.to_api_error()
    }
}

/// What one walk of an error's source chain found: the class of the error, and the
/// [`ApiError`] that speaks for the chain when there is one.
#[derive(Debug, Clone, Copy)]
pub struct Diagnosis<'a> {
    class: Class,
    api: Option<&'a ApiError>,
    rejection: Option<Rejection>,
}

impl<'a> Diagnosis<'a> {
    /// The class of the error.
    pub fn class(&self) -> Class {
        self.class
    }

    /// The [`ApiError`] in the chain that decided the class, if the walk met one before any
    /// other answer it was sure of.
    pub fn api_error(&self) -> Option<&'a ApiError> {
        self.api
    }

    /// The error response the error is: the [`ApiError`] found (a clone), or the rule book's
    /// for its class: a timeout → 504 `TIMEOUT`; a refusal → 503 `SERVICE_UNAVAILABLE` with
    /// the [`Rejection`]'s message and `Retry-After`; a refused connection → 503; a broken one
    /// → 502 `BAD_GATEWAY`; anything else → 500 `INTERNAL_ERROR` with the generic message.
    pub fn to_api_error(&self) -> ApiError {
        if let Some(api) = self.api {
            return api.clone();
        }
        // This crate's own texts, written for clients: sent even on a 5xx.
        let (code, message) = match self.class {
            Class::Timeout => (ErrorCode::Timeout, None),
            Class::ConnectFailed => (
                ErrorCode::ServiceUnavailable,
                Some("could not connect to the upstream service"),
            ),
            Class::Transport => (
                ErrorCode::BadGateway,
                Some("the connection failed before a complete response"),
            ),
            Class::Rejected => (
                ErrorCode::ServiceUnavailable,
                self.rejection.map(|r| r.message),
            ),
            _ => (ErrorCode::InternalError, None),
        };
        let mut api = ApiError::from(code);
        if let Some(message) = message {
            api = api.with_public_message(message);
        }
        if let Some(delay) = self.rejection.and_then(|r| r.retry_after) {
            api = api.with_retry_after(delay);
        }
        api.with_class(self.class)
    }
}

/// Walks an error's source chain once and says what it is: see the [module docs](self).
///
/// The walk stops at the first answer it is sure of: an [`ApiError`], a [`Rejection`], a
/// timeout, an overload, a refused connection. A transport failure (hyper's or an io reset) is
/// kept while the walk goes on, since its cause may be more precise (a hyper error caused by a
/// refused connection is a refused connection).
pub fn diagnose<'a>(err: &'a (dyn StdError + 'static)) -> Diagnosis<'a> {
    let mut found = Diagnosis {
        class: Class::OtherError,
        api: None,
        rejection: None,
    };
    for e in chain(err) {
        if let Some(api) = e.downcast_ref::<ApiError>() {
            found.class = api.class();
            found.api = Some(api);
            return found;
        }
        let Some((class, rejection)) = foreign(e) else {
            continue;
        };
        let precise = !matches!(class, Class::Transport | Class::OtherError);
        if precise || found.class == Class::OtherError {
            found.class = class;
            found.rejection = rejection;
        }
        if precise {
            break;
        }
    }
    found
}

/// What tower's load shedding says: overloaded, try again in a second.
const OVERLOADED: Rejection =
    Rejection::new("the service is overloaded").with_retry_after(Duration::from_secs(1));

/// The table of foreign errors: the one place that names their types.
fn foreign(e: &(dyn StdError + 'static)) -> Option<(Class, Option<Rejection>)> {
    if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
        return Some((Class::Timeout, None));
    }
    if let Some(rejection) = e.downcast_ref::<Rejection>() {
        return Some((Class::Rejected, Some(*rejection)));
    }
    if e.is::<tower::load_shed::error::Overloaded>() {
        return Some((Class::Rejected, Some(OVERLOADED)));
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        return Some((class_of_io(io.kind()), None));
    }
    let h = e.downcast_ref::<hyper::Error>()?;
    let class = if h.is_timeout() {
        Class::Timeout
    } else if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
        Class::Transport
    } else {
        // Parse errors, user errors: imprecise, they may still carry an io cause.
        Class::OtherError
    };
    Some((class, None))
}

fn class_of_io(kind: io::ErrorKind) -> Class {
    use io::ErrorKind::*;
    match kind {
        ConnectionRefused => Class::ConnectFailed,
        ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | NotConnected => {
            Class::Transport
        }
        TimedOut => Class::Timeout,
        _ => Class::OtherError,
    }
}

/// tower-http interoperability: the contract's rules as a response classifier, e.g. for
/// `tower_http::trace::TraceLayer::new(SharedClassifier::new(ContractClassifier))`.
///
/// A response is a failure when its class is a breaker failure; errors are classified with
/// [`classify_error`] when they are a `BoxError` or an `io::Error`.
impl tower_http::classify::ClassifyResponse for ContractClassifier {
    type FailureClass = Class;
    type ClassifyEos = tower_http::classify::NeverClassifyEos<Class>;

    fn classify_response<B>(
        self,
        res: &Response<B>,
    ) -> tower_http::classify::ClassifiedResponse<Self::FailureClass, Self::ClassifyEos> {
        let class = classify_status(res.status());
        if class.is_failure() {
            tower_http::classify::ClassifiedResponse::Ready(Err(class))
        } else {
            tower_http::classify::ClassifiedResponse::Ready(Ok(()))
        }
    }

    fn classify_error<E>(self, error: &E) -> Self::FailureClass
    where
        E: fmt::Display + 'static,
    {
        let any = error as &dyn std::any::Any;
        if let Some(boxed) = any.downcast_ref::<crate::BoxError>() {
            classify_error(&**boxed)
        } else if let Some(api) = any.downcast_ref::<ApiError>() {
            classify_error(api)
        } else if let Some(io) = any.downcast_ref::<io::Error>() {
            class_of_io(io.kind())
        } else {
            Class::OtherError
        }
    }
}
