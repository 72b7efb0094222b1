//! The wire types of the contract: the envelope every error response carries, and the time
//! format of its `timestamp`.
//!
//! Compiled as part of [`crate::error`] (which re-exports everything here), with or without the
//! `envelope` feature: an `ApiError` renders into this envelope wherever it is used. The file
//! lives beside the envelope layers, which are its main users.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ApiError;
use crate::code::ErrorCode;
use crate::request_id::is_valid_request_id;

/// The JSON document of every error response: `{"error": {...}}`.
///
/// ```
/// use fender::error::Envelope;
///
/// let body = r#"{"error":{"code":"NOT_FOUND","message":"no such user","details":{},
///     "request_id":"abc","timestamp":"2026-11-25T08:27:32.123Z","extra":true}}"#;
/// let envelope: Envelope = serde_json::from_str(body).unwrap();
/// assert_eq!(envelope.error.code.as_str(), "NOT_FOUND");
/// assert_eq!(envelope.error.request_id.as_deref(), Some("abc"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The error.
    pub error: EnvelopeError,
}

/// The `error` object of an [`Envelope`].
///
/// Decoding is lenient in what the contract lets a client be lenient about: unknown fields are
/// ignored, a missing `details` is `{}`, and a missing `request_id` or `timestamp` is `None`.
/// Encoding always writes all five fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeError {
    /// The machine-readable code.
    pub code: ErrorCode,
    /// The human-readable message.
    pub message: String,
    /// Context-specific detail; `{}` when there is none.
    #[serde(default)]
    pub details: Map<String, Value>,
    /// The id of the request, as in the `x-request-id` response header.
    #[serde(default)]
    pub request_id: Option<String>,
    /// When the error occurred: RFC 3339, UTC, millisecond precision.
    #[serde(default)]
    pub timestamp: Option<String>,
}

/// One field's message in a validation error's `details.fields`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// The field, as the client named it (`email`, `address.zip`, `items[2].qty`).
    pub field: String,
    /// What is wrong with it, safe to show an end user.
    pub message: String,
}

impl FieldError {
    /// A field's message.
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl ApiError {
    /// The error from a decoded envelope and the response's status.
    ///
    /// A `request_id` that is not a valid request id (1–128 characters of `[A-Za-z0-9._:-]`,
    /// the rule for the `x-request-id` header) is dropped: the decoder then takes the
    /// response header's id, or the id the client sent.
    pub fn from_envelope(envelope: Envelope, status: StatusCode) -> Self {
        let EnvelopeError {
            code,
            message,
            details,
            request_id,
            timestamp,
        } = envelope.error;
        let mut err = ApiError::new(code, message)
            .with_status(status)
            .with_details(details);
        // The same rule as for the header: a hostile server must not put 50 KB of control
        // characters into every log line that quotes this error.
        err.inner.request_id = request_id.filter(|id| is_valid_request_id(id));
        err.inner.timestamp = timestamp.filter(|t| !t.is_empty());
        err
    }
}

/// The current time as the contract writes it: RFC 3339, UTC, milliseconds, `Z`.
pub fn timestamp_now() -> String {
    format!("{:.3}", jiff::Timestamp::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_decode_leniently_and_encode_all_five_fields() {
        let lean: Envelope =
            serde_json::from_str(r#"{"error":{"code":"X_NEW","message":"m"}}"#).unwrap();
        assert!(lean.error.details.is_empty());
        assert_eq!(lean.error.request_id, None);
        let json = serde_json::to_value(&lean).unwrap();
        for field in ["code", "message", "details", "request_id", "timestamp"] {
            assert!(json["error"].get(field).is_some(), "{field}: {json}");
        }
    }

    #[test]
    fn timestamps_have_milliseconds_and_a_z() {
        let ts = timestamp_now();
        assert_eq!(ts.len(), "2026-11-25T08:27:32.123Z".len(), "{ts}");
        assert!(
            ts.ends_with('Z') && ts.parse::<jiff::Timestamp>().is_ok(),
            "{ts}"
        );
    }
}
