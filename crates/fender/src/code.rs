//! The machine-readable error codes of the contract.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A machine-readable error code, as carried in `error.code` of every envelope.
///
/// The eleven codes of the contract each have a variant. A code this version does not know
/// decodes to [`ErrorCode::Other`], which keeps the string, so a client keeps working when a
/// server adds a code (forward compatibility).
///
/// | status | code | retryable |
/// | --- | --- | --- |
/// | 400 | `INVALID_REQUEST` | no |
/// | 401 | `UNAUTHORIZED` | no |
/// | 403 | `FORBIDDEN` | no |
/// | 404 | `NOT_FOUND` | no |
/// | 409 | `CONFLICT` | no |
/// | 422 | `VALIDATION_ERROR` | no |
/// | 429 | `RATE_LIMIT_EXCEEDED` | yes |
/// | 500 | `INTERNAL_ERROR` | yes |
/// | 502 | `BAD_GATEWAY` | yes |
/// | 503 | `SERVICE_UNAVAILABLE` | yes |
/// | 504 | `TIMEOUT` | yes |
///
/// ```
/// use fender::ErrorCode;
/// use http::StatusCode;
///
/// let code: ErrorCode = "VALIDATION_ERROR".parse().unwrap();
/// assert_eq!(code, ErrorCode::ValidationError);
/// assert_eq!(code.status(), StatusCode::UNPROCESSABLE_ENTITY);
/// assert!(!code.is_retryable());
///
/// // Statuses outside the table get the nearest code.
/// assert_eq!(ErrorCode::from_status(StatusCode::METHOD_NOT_ALLOWED), ErrorCode::InvalidRequest);
/// assert_eq!(ErrorCode::from_status(StatusCode::GONE), ErrorCode::NotFound);
///
/// // Unknown codes are kept, not rejected.
/// let future: ErrorCode = serde_json::from_str("\"QUOTA_EXHAUSTED\"").unwrap();
/// assert_eq!(future.as_str(), "QUOTA_EXHAUSTED");
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: malformed request syntax.
    InvalidRequest,
    /// 401: invalid or missing API key.
    Unauthorized,
    /// 403: insufficient permissions.
    Forbidden,
    /// 404: the resource does not exist.
    NotFound,
    /// 409: resource state conflict.
    Conflict,
    /// 422: request validation failed.
    ValidationError,
    /// 429: too many requests.
    RateLimitExceeded,
    /// 500: server error.
    InternalError,
    /// 502: upstream service error.
    BadGateway,
    /// 503: temporary service outage.
    ServiceUnavailable,
    /// 504: request timeout.
    Timeout,
    /// A code this version does not know, kept as sent.
    Other(Cow<'static, str>),
}

impl ErrorCode {
    /// Every code of the contract, in table order (without [`ErrorCode::Other`]).
    pub const ALL: [ErrorCode; 11] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::Conflict,
        ErrorCode::ValidationError,
        ErrorCode::RateLimitExceeded,
        ErrorCode::InternalError,
        ErrorCode::BadGateway,
        ErrorCode::ServiceUnavailable,
        ErrorCode::Timeout,
    ];

    /// The code as it appears on the wire, e.g. `"VALIDATION_ERROR"`.
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidRequest => "INVALID_REQUEST",
            ErrorCode::Unauthorized => "UNAUTHORIZED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::ValidationError => "VALIDATION_ERROR",
            ErrorCode::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            ErrorCode::InternalError => "INTERNAL_ERROR",
            ErrorCode::BadGateway => "BAD_GATEWAY",
            ErrorCode::ServiceUnavailable => "SERVICE_UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Other(s) => s,
        }
    }

    /// The status a response with this code has by default.
    ///
    /// An unknown code has no status of its own and answers 500.
    pub fn status(&self) -> StatusCode {
        match self {
            ErrorCode::InvalidRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::ValidationError => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::RateLimitExceeded => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::InternalError | ErrorCode::Other(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Whether an error with this code, sent with the code's own [`status`](Self::status), may
    /// be retried: the classifier's verdict on that status (429 and the 5xx codes, as the
    /// contract's table says).
    ///
    /// This is a property of the code. Whether a particular error is retried is
    /// [`ApiError::is_retryable`](crate::ApiError::is_retryable), the same classifier's verdict
    /// on that error's own status and origin: a 501 or 505 carries `INTERNAL_ERROR` (the nearest
    /// code), whose status 500 is retryable, but is itself not retried.
    ///
    /// An unknown code is not retryable: a client cannot know it is safe.
    pub fn is_retryable(&self) -> bool {
        self.is_known() && crate::classify::classify_status(self.status()).is_retryable()
    }

    /// The nearest code for a status (CONTRACT.md §2).
    ///
    /// The table's statuses map to their code; 408 maps to `TIMEOUT` and 410 to `NOT_FOUND`;
    /// any other 4xx to `INVALID_REQUEST`; any other 5xx to `INTERNAL_ERROR`. A status that is not
    /// an error (1xx–3xx) also maps to `INTERNAL_ERROR`: an envelope for it is a server bug.
    pub fn from_status(status: StatusCode) -> ErrorCode {
        match status.as_u16() {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 | 410 => ErrorCode::NotFound,
            408 | 504 => ErrorCode::Timeout,
            409 => ErrorCode::Conflict,
            422 => ErrorCode::ValidationError,
            429 => ErrorCode::RateLimitExceeded,
            502 => ErrorCode::BadGateway,
            503 => ErrorCode::ServiceUnavailable,
            400..=499 => ErrorCode::InvalidRequest,
            _ => ErrorCode::InternalError,
        }
    }

    /// The generic message of the code: what a 5xx says instead of internal text, and the
    /// message of an error built from the code alone (`ApiError::from(code)`).
    ///
    /// An unknown code has the generic message of `INTERNAL_ERROR`.
    pub fn generic_message(&self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "the request is malformed",
            ErrorCode::Unauthorized => "authentication is required",
            ErrorCode::Forbidden => "permission denied",
            ErrorCode::NotFound => "resource not found",
            ErrorCode::Conflict => "the resource is in a conflicting state",
            ErrorCode::ValidationError => "request validation failed",
            ErrorCode::RateLimitExceeded => "too many requests",
            ErrorCode::BadGateway => "upstream service error",
            ErrorCode::ServiceUnavailable => "service temporarily unavailable",
            ErrorCode::Timeout => "request timed out",
            ErrorCode::InternalError | ErrorCode::Other(_) => "internal server error",
        }
    }

    /// Whether this is one of the eleven codes of the contract.
    pub fn is_known(&self) -> bool {
        !matches!(self, ErrorCode::Other(_))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing an empty string as an [`ErrorCode`].
///
/// Any non-empty string parses: unknown codes become [`ErrorCode::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EmptyCode;

impl fmt::Display for EmptyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("empty error code")
    }
}

impl std::error::Error for EmptyCode {}

impl FromStr for ErrorCode {
    type Err = EmptyCode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(EmptyCode);
        }
        Ok(Self::ALL
            .iter()
            .find(|code| code.as_str() == s)
            .cloned()
            .unwrap_or_else(|| ErrorCode::Other(Cow::Owned(s.to_owned()))))
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = Cow::<'de, str>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_codes_round_trip_through_their_status() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::from_status(code.status()), code, "{code}");
            assert_eq!(code.as_str().parse::<ErrorCode>().unwrap(), code);
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
    }

    #[test]
    fn retryable_codes_are_429_and_the_5xx_of_the_table() {
        let retryable: Vec<_> = ErrorCode::ALL
            .iter()
            .filter(|c| c.is_retryable())
            .map(|c| c.status().as_u16())
            .collect();
        assert_eq!(retryable, [429, 500, 502, 503, 504]);
        assert!(!ErrorCode::Other("X".into()).is_retryable());
    }

    #[test]
    fn a_codes_retryability_is_the_classifiers_verdict_on_its_status() {
        use crate::classify::classify_status;
        for code in ErrorCode::ALL {
            let verdict = classify_status(code.status()).is_retryable();
            assert_eq!(code.is_retryable(), verdict, "{code}");
        }
    }

    #[test]
    fn every_error_status_maps_to_the_nearest_code() {
        for n in 400..=599u16 {
            let status = StatusCode::from_u16(n).unwrap();
            let code = ErrorCode::from_status(status);
            let expected = match n {
                401 => "UNAUTHORIZED",
                403 => "FORBIDDEN",
                404 | 410 => "NOT_FOUND",
                408 | 504 => "TIMEOUT",
                409 => "CONFLICT",
                422 => "VALIDATION_ERROR",
                429 => "RATE_LIMIT_EXCEEDED",
                502 => "BAD_GATEWAY",
                503 => "SERVICE_UNAVAILABLE",
                400..=499 => "INVALID_REQUEST",
                _ => "INTERNAL_ERROR",
            };
            assert_eq!(code.as_str(), expected, "status {n}");
            assert!(code.is_known());
        }
    }

    #[test]
    fn unknown_codes_are_kept_and_empty_is_rejected() {
        let code: ErrorCode = "PAYMENT_REQUIRED".parse().unwrap();
        assert_eq!(code, ErrorCode::Other("PAYMENT_REQUIRED".into()));
        assert_eq!(code.to_string(), "PAYMENT_REQUIRED");
        assert_eq!(code.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!code.is_known());
        assert_eq!("".parse::<ErrorCode>(), Err(EmptyCode));
        assert!(serde_json::from_str::<ErrorCode>("\"\"").is_err());
        assert!(serde_json::from_str::<ErrorCode>("42").is_err());
    }
}
