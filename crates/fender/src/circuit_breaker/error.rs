//! The error of a call the circuit breaker refused.

use std::fmt;
use std::time::Duration;

use crate::classify::Rejection;
use crate::error::ApiError;

/// Why the circuit breaker refused a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Reason {
    /// The circuit is open: every call fails fast until the next probe.
    Open,
    /// The circuit is half-open and all probe slots are taken.
    HalfOpenFull,
    /// The circuit closed recently and is ramping traffic up; this call was not in the admitted
    /// share.
    Ramp,
    /// The circuit was forced open through the handle; it stays open until forced closed or reset.
    ForcedOpen,
}

impl Reason {
    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Open => "open",
            Reason::HalfOpenFull => "half-open, all probe slots taken",
            Reason::Ramp => "recovering, not in the admitted share",
            Reason::ForcedOpen => "forced open",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The circuit breaker refused the call without trying it.
///
/// The call never reached the inner service. [`retry_after`](Self::retry_after) says how long
/// until the breaker lets a call through again: the time until the next probe when the circuit
/// is open, one second (a hint: a slot may free at any time) when the half-open probe slots are
/// taken or the call fell outside the share admitted while recovering, and the configured open
/// duration when the circuit was forced open.
///
/// It reaches callers inside a [`BoxError`](crate::BoxError); find it with `downcast_ref`:
///
/// ```
/// use fender::circuit_breaker::CircuitOpen;
/// # fn check(err: fender::BoxError) {
/// if let Some(open) = err.downcast_ref::<CircuitOpen>() {
///     println!("upstream is down, try again in {:?} ({})", open.retry_after(), open.reason());
/// }
/// # }
/// ```
///
/// Its source is a [`Rejection`] with the wait, which is how the shared rule book knows it
/// (the way any middleware's or user's fast-fail error can be known, see
/// [`classify`](crate::classify)): the contract's classifier classes it
/// [`Class::Rejected`](crate::classify::Class::Rejected) (not a failure of the upstream, not
/// retryable), and [`ApiError::from_error`] turns it into 503 `SERVICE_UNAVAILABLE` with
/// `Retry-After` rounded up to whole seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitOpen {
    reason: Reason,
    retry_after: Duration,
    rejection: Rejection,
}

impl CircuitOpen {
    pub(crate) fn new(reason: Reason, retry_after: Duration) -> Self {
        CircuitOpen {
            reason,
            retry_after,
            rejection: Rejection::new("the upstream service is temporarily unavailable")
                .with_retry_after(retry_after),
        }
    }

    /// Why the call was refused.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// How long until the breaker lets a call through again (see the type docs).
    pub fn retry_after(&self) -> Duration {
        self.retry_after
    }
}

impl fmt::Display for CircuitOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            Reason::Open => write!(
                f,
                "circuit open, next probe in {:.3}s",
                self.retry_after.as_secs_f64()
            ),
            reason => write!(f, "circuit breaker refused the call: {reason}"),
        }
    }
}

impl std::error::Error for CircuitOpen {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.rejection)
    }
}

impl From<&CircuitOpen> for ApiError {
    fn from(open: &CircuitOpen) -> Self {
        ApiError::from(open.rejection)
    }
}

impl From<CircuitOpen> for ApiError {
    fn from(open: CircuitOpen) -> Self {
        ApiError::from(&open).with_source(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
    use crate::classify::{Class, classify_error};
    use crate::error::Origin;

    #[test]
    fn display_is_lowercase_and_names_the_wait() {
        let open = CircuitOpen::new(Reason::Open, Duration::from_millis(12_500));
        assert_eq!(open.to_string(), "circuit open, next probe in 12.500s");
        let full = CircuitOpen::new(Reason::HalfOpenFull, Duration::from_secs(1));
        assert!(full.to_string().starts_with("circuit breaker refused"));
    }

    #[test]
    fn maps_to_503_with_retry_after_and_classifies_as_rejected() {
        let open = CircuitOpen::new(Reason::Open, Duration::from_millis(2_100));
        let api = ApiError::from_error(Box::new(open));
        assert_eq!(api.code(), &ErrorCode::ServiceUnavailable);
        assert_eq!(api.status(), 503);
        assert_eq!(api.retry_after(), Some(Duration::from_millis(2_100)));
        assert_eq!(api.origin(), Origin::Local);
        assert!(!api.is_retryable());
        let res = api.into_http_response();
        assert_eq!(res.headers()["retry-after"], "3");
        assert_eq!(classify_error(&open), Class::Rejected);
        let boxed: crate::BoxError = Box::new(open);
        assert_eq!(classify_error(&*boxed), Class::Rejected);
    }

    #[test]
    fn is_known_to_the_rule_book_through_its_source_and_keeps_downcasting() {
        let open = CircuitOpen::new(Reason::HalfOpenFull, Duration::from_secs(1));
        let boxed: crate::BoxError = Box::new(open);
        assert_eq!(boxed.downcast_ref::<CircuitOpen>(), Some(&open));
        let rejection = boxed.source().unwrap().downcast_ref::<Rejection>().unwrap();
        assert_eq!(rejection.retry_after(), Some(Duration::from_secs(1)));
        let api = ApiError::from(open);
        assert_eq!(api.status(), 503);
        assert_eq!(api.origin(), Origin::Local);
        assert!(api.source_error().unwrap().is::<CircuitOpen>());
    }
}
