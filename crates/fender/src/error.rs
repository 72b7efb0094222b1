//! [`ApiError`], the one error type of both sides.
//!
//! The envelope it is sent as is in [`Envelope`] (re-exported here), the rendering rule in
//! [`ApiError::to_envelope`], and the mapping of foreign errors (timeouts, refused
//! connections, …) in [`classify`](crate::classify), the one rule book.

use std::borrow::Cow;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Map, Value};

use crate::BoxError;
use crate::classify::{Class, classify_status, diagnose};
use crate::code::ErrorCode;

#[path = "envelope/render.rs"]
mod render;
#[path = "envelope/wire.rs"]
mod wire;

pub(crate) use render::EdgeRenders;
pub use wire::{Envelope, EnvelopeError, FieldError, timestamp_now};

/// Where an [`ApiError`] came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Origin {
    /// An error response: decoded from one (client side) or to be rendered as one (server side).
    Response,
    /// No response arrived: the connection failed or the attempt timed out.
    Transport,
    /// A local component refused the request without sending it (an open circuit, load
    /// shedding): a fast-fail.
    Local,
}

/// The error of the contract, on both sides.
///
/// On a server, handlers return it (`Result<T, ApiError>` with the `axum` feature) and
/// [`ErrorEnvelopeLayer`](crate::envelope::ErrorEnvelopeLayer) renders it with the request id and
/// timestamp. On a client, [`DecodeEnvelopeLayer`](crate::envelope::DecodeEnvelopeLayer) turns every
/// failure (an error response, a broken connection, an open circuit) into one.
///
/// It holds the code, the HTTP status (which may differ from the code's default, e.g. 405 with
/// `INVALID_REQUEST`), the message, the details object, the request id and timestamp when known,
/// the `Retry-After` delay when known, headers that belong to the status (`Allow`,
/// `WWW-Authenticate`), and an optional source error that is logged but never serialized.
///
/// ```
/// use fender::{ApiError, ErrorCode};
/// use http::StatusCode;
///
/// let err = ApiError::validation([("email", "must be a valid email address")]);
/// assert_eq!(err.code(), &ErrorCode::ValidationError);
/// assert_eq!(err.status(), StatusCode::UNPROCESSABLE_ENTITY);
/// assert_eq!(err.message(), "email must be a valid email address");
/// assert_eq!(err.field_errors()[0].field, "email");
/// assert!(!err.is_retryable());
///
/// let busy = ApiError::service_unavailable("maintenance")
///     .with_retry_after(std::time::Duration::from_secs(30));
/// assert!(busy.is_retryable());
/// let response = busy.into_http_response();
/// assert_eq!(response.headers()["retry-after"], "30");
/// ```
#[derive(Clone)]
pub struct ApiError {
    inner: Box<Inner>,
}

#[derive(Clone)]
struct Inner {
    code: ErrorCode,
    status: StatusCode,
    message: Cow<'static, str>,
    details: Map<String, Value>,
    request_id: Option<String>,
    timestamp: Option<String>,
    retry_after: Option<Duration>,
    headers: HeaderMap,
    /// Whether `message` may be sent on a 5xx (see [`ApiError::with_public_message`]).
    public_message: bool,
    /// The keys of `details` that may be sent on a 5xx (see [`ApiError::with_public_detail`]).
    public_details: Vec<String>,
    /// `None` for errors that are (or become) responses; the class of the failure otherwise.
    class: Option<Class>,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl ApiError {
    /// An error with a code and a message; the status is the code's default.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            inner: Box::new(Inner {
                status: code.status(),
                code,
                message: message.into(),
                details: Map::new(),
                request_id: None,
                timestamp: None,
                retry_after: None,
                headers: HeaderMap::new(),
                public_message: false,
                public_details: Vec::new(),
                class: None,
                source: None,
            }),
        }
    }

    /// An error for a status: the nearest code (CONTRACT.md §2) and a generic message (the code's, or
    /// the status's reason phrase for a status outside the table, e.g. "method not allowed").
    pub fn from_status(status: StatusCode) -> Self {
        let code = ErrorCode::from_status(status);
        match status.canonical_reason() {
            // The reason phrase is the status's, not internal text: it may be sent on a 5xx.
            Some(reason) if status != code.status() => ApiError::new(code, "")
                .with_public_message(reason.to_ascii_lowercase())
                .with_status(status),
            _ => ApiError::from(code).with_status(status),
        }
    }

    /// 400 `INVALID_REQUEST`.
    pub fn invalid_request(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::InvalidRequest, message)
    }

    /// 401 `UNAUTHORIZED`.
    pub fn unauthorized(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Unauthorized, message)
    }

    /// 403 `FORBIDDEN`.
    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// 404 `NOT_FOUND`.
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 409 `CONFLICT`.
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Conflict, message)
    }

    /// 422 `VALIDATION_ERROR` with one message per field in `details.fields`.
    ///
    /// The top-level message joins the fields' messages ("email must be a valid email
    /// address; name must not be empty"); like every 4xx message it is safe to show end users.
    pub fn validation<I, F, M>(fields: I) -> Self
    where
        I: IntoIterator<Item = (F, M)>,
        F: Into<String>,
        M: Into<String>,
    {
        let fields: Vec<FieldError> = fields
            .into_iter()
            .map(|(f, m)| FieldError::new(f, m))
            .collect();
        let message = if fields.is_empty() {
            ErrorCode::ValidationError.generic_message().to_owned()
        } else {
            fields
                .iter()
                .map(|f| format!("{} {}", f.field, f.message))
                .collect::<Vec<_>>()
                .join("; ")
        };
        let fields = serde_json::to_value(fields).expect("field errors serialize");
        ApiError::new(ErrorCode::ValidationError, message).with_detail("fields", fields)
    }

    /// 429 `RATE_LIMIT_EXCEEDED`; add the delay with [`with_retry_after`](Self::with_retry_after).
    pub fn rate_limit_exceeded(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::RateLimitExceeded, message)
    }

    /// 500 `INTERNAL_ERROR` with the generic message; attach the cause with
    /// [`with_source`](Self::with_source): it is logged, never sent.
    pub fn internal() -> Self {
        ApiError::from(ErrorCode::InternalError)
    }

    /// 502 `BAD_GATEWAY`.
    pub fn bad_gateway(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::BadGateway, message)
    }

    /// 503 `SERVICE_UNAVAILABLE`.
    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::ServiceUnavailable, message)
    }

    /// 504 `TIMEOUT`.
    pub fn timeout(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError::new(ErrorCode::Timeout, message)
    }

    /// Sets the HTTP status (e.g. 405 with `INVALID_REQUEST`).
    #[must_use]
    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.inner.status = status;
        self
    }

    /// Replaces the message.
    ///
    /// On a 4xx the message is sent as it is. On a 5xx it is internal: it is logged, and the
    /// envelope carries the code's generic message instead (see
    /// [`with_public_message`](Self::with_public_message)).
    #[must_use]
    pub fn with_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.inner.message = message.into();
        self.inner.public_message = false;
        self
    }

    /// Adds one entry to `details`.
    ///
    /// On a 4xx every detail is sent. On a 5xx details are internal (logged with the error,
    /// never sent) unless added with [`with_public_detail`](Self::with_public_detail).
    #[must_use]
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        self.inner.public_details.retain(|k| *k != key);
        self.inner.details.insert(key, value.into());
        self
    }

    /// Replaces `details`; on a 5xx none of them is sent (see [`with_detail`](Self::with_detail)).
    #[must_use]
    pub fn with_details(mut self, details: Map<String, Value>) -> Self {
        self.inner.details = details;
        self.inner.public_details.clear();
        self
    }

    /// Sets the request id.
    #[must_use]
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Self {
        self.inner.request_id = Some(request_id.into());
        self
    }

    /// Sets the timestamp that [`timestamp`](Self::timestamp) reports.
    ///
    /// It is never sent: an envelope always carries the time it was rendered at (RFC 3339,
    /// UTC, milliseconds), whatever string is set here. Decoded errors carry the server's.
    #[must_use]
    pub fn with_timestamp(mut self, timestamp: impl Into<String>) -> Self {
        self.inner.timestamp = Some(timestamp.into());
        self
    }

    /// Sets the `Retry-After` delay (sent rounded up to whole seconds).
    #[must_use]
    pub fn with_retry_after(mut self, delay: Duration) -> Self {
        self.inner.retry_after = Some(delay);
        self
    }

    /// Adds a header to send with the response (`Allow`, `WWW-Authenticate`, …).
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.inner.headers.append(name, value);
        self
    }

    /// Attaches the underlying error: logged with the request id, never sent to the client.
    #[must_use]
    pub fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.inner.source = Some(Arc::from(source.into()));
        self
    }

    /// Marks the error as one where no response arrived (client side), with the class of the
    /// failure; see [`Origin`].
    pub(crate) fn with_class(mut self, class: Class) -> Self {
        self.inner.class = Some(class);
        self
    }

    /// The code.
    pub fn code(&self) -> &ErrorCode {
        &self.inner.code
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.inner.status
    }

    /// The message, as set (server side) or as sent by the server (client side).
    ///
    /// For a 5xx this may be internal text that is never sent; see
    /// [`with_public_message`](Self::with_public_message).
    pub fn message(&self) -> &str {
        &self.inner.message
    }

    /// The details object, as set or as decoded; on a 5xx only the public entries are sent.
    pub fn details(&self) -> &Map<String, Value> {
        &self.inner.details
    }

    /// The per-field messages of a validation error (`details.fields`), empty if none.
    pub fn field_errors(&self) -> Vec<FieldError> {
        self.inner
            .details
            .get("fields")
            .and_then(|v| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default()
    }

    /// The request id, when known.
    pub fn request_id(&self) -> Option<&str> {
        self.inner.request_id.as_deref()
    }

    /// The timestamp, when known.
    pub fn timestamp(&self) -> Option<&str> {
        self.inner.timestamp.as_deref()
    }

    /// The `Retry-After` delay, when known.
    pub fn retry_after(&self) -> Option<Duration> {
        self.inner.retry_after
    }

    /// Extra headers sent with the response.
    pub fn headers(&self) -> &HeaderMap {
        &self.inner.headers
    }

    /// Where the error came from.
    pub fn origin(&self) -> Origin {
        match self.inner.class {
            None => Origin::Response,
            Some(Class::Rejected) => Origin::Local,
            Some(_) => Origin::Transport,
        }
    }

    /// The classifier's class for this error.
    pub fn class(&self) -> Class {
        self.inner
            .class
            .unwrap_or_else(|| classify_status(self.inner.status))
    }

    /// Whether trying the request again may succeed: the classifier's verdict on this error's
    /// [`class`](Self::class). A 429, 500, 502, 503 or 504 response, a timeout or a transient
    /// transport failure are; other 4xx, 501, 505 and a local fast-fail (wait for
    /// [`retry_after`](Self::retry_after) instead) are not.
    ///
    /// It may differ from `self.code().is_retryable()`, the verdict on the code's own status:
    /// a decoded 501 carries `INTERNAL_ERROR` but is not retried. The retry layer acts on this
    /// one.
    pub fn is_retryable(&self) -> bool {
        self.class().is_retryable()
    }

    /// The underlying error, if any.
    pub fn source_error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        self.inner.source.as_deref()
    }

    /// The error for any error a service returned, found by one walk of its source chain
    /// ([`classify::diagnose`](crate::classify::diagnose)).
    ///
    /// An [`ApiError`] anywhere in the chain is returned as is. Otherwise: a timeout → 504
    /// `TIMEOUT`; a [`Rejection`](crate::classify::Rejection) (an open circuit) → 503
    /// `SERVICE_UNAVAILABLE` with `Retry-After` until the next probe; load shedding → 503 with
    /// `Retry-After: 1`; a refused connection → 503; a reset or early close → 502
    /// `BAD_GATEWAY`; anything else → 500 `INTERNAL_ERROR` with the generic message. The error
    /// is kept as the source.
    pub fn from_error(err: BoxError) -> ApiError {
        let err = match err.downcast::<ApiError>() {
            Ok(api) => return *api,
            Err(err) => err,
        };
        let found = diagnose(&*err);
        match found.api_error() {
            Some(api) => api.clone(),
            None => found.to_api_error().with_source(err),
        }
    }
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("ApiError");
        d.field("code", &i.code)
            .field("status", &i.status)
            .field("message", &i.message)
            .field("origin", &self.origin());
        if !i.details.is_empty() {
            d.field("details", &i.details);
        }
        if let Some(id) = &i.request_id {
            d.field("request_id", id);
        }
        if let Some(delay) = &i.retry_after {
            d.field("retry_after", delay);
        }
        if let Some(source) = &i.source {
            d.field("source", source);
        }
        d.finish_non_exhaustive()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.inner.code,
            self.inner.status.as_u16(),
            self.inner.message
        )?;
        if let Some(id) = &self.inner.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

impl StdError for ApiError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.inner
            .source
            .as_deref()
            .map(|e| e as &(dyn StdError + 'static))
    }
}

impl From<ErrorCode> for ApiError {
    fn from(code: ErrorCode) -> Self {
        let message = code.generic_message();
        ApiError::new(code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_constructor_with_its_status() {
        let made = [
            ApiError::invalid_request("x"),
            ApiError::unauthorized("x"),
            ApiError::forbidden("x"),
            ApiError::not_found("x"),
            ApiError::conflict("x"),
            ApiError::validation([("f", "bad")]),
            ApiError::rate_limit_exceeded("x"),
            ApiError::internal(),
            ApiError::bad_gateway("x"),
            ApiError::service_unavailable("x"),
            ApiError::timeout("x"),
        ];
        for (err, code) in made.iter().zip(ErrorCode::ALL) {
            assert_eq!(err.code(), &code);
            assert_eq!(err.status(), code.status());
            assert_eq!(err.is_retryable(), code.is_retryable(), "{code}");
            assert_eq!(err.origin(), Origin::Response);
        }
    }

    #[test]
    fn unknown_errors_become_generic_500s_that_keep_their_source() {
        let api = ApiError::from_error("database password is hunter2".into());
        assert_eq!(api.code(), &ErrorCode::InternalError);
        assert_eq!(api.message(), "internal server error");
        assert!(api.source_error().unwrap().to_string().contains("hunter2"));
        assert!(!api.to_string().contains("hunter2"));
    }

    #[test]
    fn api_errors_pass_through_from_error_unchanged() {
        let original = ApiError::conflict("version mismatch").with_request_id("r");
        let back = ApiError::from_error(Box::new(original));
        assert_eq!(back.code(), &ErrorCode::Conflict);
        assert_eq!(back.request_id(), Some("r"));
    }
}
