//! One classifier for the whole stack: what succeeded, what failed, what may be retried.
//!
//! The retry layer asks "may this be tried again?", the circuit breaker asks "did the upstream
//! fail?", and the client-side decoder asks "is this error retryable?". They all ask the same
//! [`Classify`] implementation, so the answers never disagree. [`ContractClassifier`] is the
//! contract's rule set (SPEC §2–§4):
//!
//! | outcome | class | retried | breaker failure |
//! | --- | --- | --- | --- |
//! | 1xx–3xx | [`Class::Success`] | no | no |
//! | 429 | [`Class::RateLimited`] | yes | no |
//! | other 4xx | [`Class::ClientError`] | no | no |
//! | 500, 502, 503, 504 | [`Class::ServerError`] | yes | yes |
//! | 501, 505 and other 5xx | [`Class::PermanentServerError`] | no | no |
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
//! [`ContractClassifier`] also implements tower-http's
//! [`ClassifyResponse`](tower_http::classify::ClassifyResponse), so the same rules can drive
//! tower-http's `TraceLayer`.

use std::error::Error as StdError;
use std::fmt;
use std::io;

use http::{HeaderMap, Response, StatusCode};

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
    fn classify(&self, outcome: Outcome<'_>) -> Class {
        match outcome {
            Outcome::Response { status, .. } => classify_status(status),
            Outcome::Error(err) => classify_error(err),
        }
    }
}

/// The contract's class for a response status.
pub fn classify_status(status: StatusCode) -> Class {
    match status.as_u16() {
        429 => Class::RateLimited,
        500 | 502 | 503 | 504 => Class::ServerError,
        400..=499 => Class::ClientError,
        500..=599 => Class::PermanentServerError,
        _ => Class::Success,
    }
}

/// The contract's class for an error, found by walking its source chain.
///
/// Recognised, at any depth: [`ApiError`] (by its origin and status), timeouts from tower and
/// tokio, tower's load-shed `Overloaded`, the circuit breaker's open error, hyper's errors, and
/// `std::io::Error` kinds (refused → [`Class::ConnectFailed`]; reset, aborted, broken pipe,
/// early EOF → [`Class::Transport`]; timed out → [`Class::Timeout`]).
pub fn classify_error(err: &(dyn StdError + 'static)) -> Class {
    let mut fallback = Class::OtherError;
    let mut current: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = current {
        if let Some(class) = classify_one(e) {
            match class {
                // A transport error whose cause is a refused connection is a refused
                // connection: keep looking for the more precise answer.
                Class::Transport | Class::OtherError => fallback = pick(fallback, class),
                precise => return precise,
            }
        }
        current = e.source();
    }
    fallback
}

fn pick(current: Class, new: Class) -> Class {
    if current == Class::OtherError {
        new
    } else {
        current
    }
}

fn classify_one(e: &(dyn StdError + 'static)) -> Option<Class> {
    if let Some(api) = e.downcast_ref::<ApiError>() {
        return Some(api.class());
    }
    if e.is::<tower::timeout::error::Elapsed>() || e.is::<tokio::time::error::Elapsed>() {
        return Some(Class::Timeout);
    }
    if e.is::<tower::load_shed::error::Overloaded>() {
        return Some(Class::Rejected);
    }
    #[cfg(feature = "circuit-breaker")]
    if e.is::<crate::circuit_breaker::CircuitOpen>() {
        return Some(Class::Rejected);
    }
    if let Some(io) = e.downcast_ref::<io::Error>() {
        return Some(classify_io(io.kind()));
    }
    if let Some(h) = e.downcast_ref::<hyper::Error>() {
        if h.is_timeout() {
            return Some(Class::Timeout);
        }
        if h.is_incomplete_message() || h.is_canceled() || h.is_closed() {
            return Some(Class::Transport);
        }
        // Other hyper errors (parse errors, user errors) may still carry an io cause.
        return Some(Class::OtherError);
    }
    None
}

fn classify_io(kind: io::ErrorKind) -> Class {
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
            classify_io(io.kind())
        } else {
            Class::OtherError
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_classify_per_the_contract() {
        for n in 100..=599u16 {
            let class = classify_status(StatusCode::from_u16(n).unwrap());
            let retryable = matches!(n, 429 | 500 | 502 | 503 | 504);
            let failure = matches!(n, 500 | 502 | 503 | 504);
            assert_eq!(class.is_retryable(), retryable, "{n}");
            assert_eq!(class.is_failure(), failure, "{n}");
        }
    }

    #[test]
    fn io_errors_classify_by_kind_at_any_depth() {
        #[derive(Debug)]
        struct Wrap(io::Error);
        impl fmt::Display for Wrap {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("connect error")
            }
        }
        impl StdError for Wrap {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                Some(&self.0)
            }
        }
        let refused = Wrap(io::ErrorKind::ConnectionRefused.into());
        assert_eq!(classify_error(&refused), Class::ConnectFailed);
        assert!(classify_error(&refused).never_reached_upstream());
        let reset = Wrap(io::ErrorKind::ConnectionReset.into());
        assert_eq!(classify_error(&reset), Class::Transport);
        let other = Wrap(io::ErrorKind::PermissionDenied.into());
        assert_eq!(classify_error(&other), Class::OtherError);
        assert!(!Class::OtherError.is_retryable());
        assert!(Class::OtherError.is_failure());
    }

    #[test]
    fn middleware_errors_classify() {
        let elapsed = tower::timeout::error::Elapsed::new();
        assert_eq!(classify_error(&elapsed), Class::Timeout);
        let overloaded = tower::load_shed::error::Overloaded::new();
        assert_eq!(classify_error(&overloaded), Class::Rejected);
        assert!(!Class::Rejected.is_retryable() && !Class::Rejected.is_failure());
    }

    #[test]
    fn api_errors_classify_by_origin() {
        assert_eq!(
            classify_error(&ApiError::service_unavailable("down")),
            Class::ServerError
        );
        assert_eq!(
            classify_error(&ApiError::not_found("gone")),
            Class::ClientError
        );
        let boxed: crate::BoxError = Box::new(ApiError::bad_gateway("upstream"));
        assert_eq!(classify_error(&*boxed), Class::ServerError);
    }
}
