//! How an [`ApiError`] is sent: the envelope it becomes, and the response around it.
//!
//! Compiled as part of [`crate::error`], with or without the `envelope` feature: `ApiError`
//! renders wherever it is used. The file lives beside the envelope layers, which render every
//! error response through it.
//!
//! The one rule of what leaves the server is [`ApiError::to_envelope`]: a 4xx says what it was
//! given; anything else (a 5xx above all) says its code's generic message and only what was
//! marked public. Every rendered response goes through it.

use std::borrow::Cow;
use std::cell::Cell;

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response};
use http_body_util::Full;
use serde_json::{Map, Value};

use super::{ApiError, Envelope, EnvelopeError, timestamp_now};
use crate::request_id::{X_REQUEST_ID, new_request_id};

impl ApiError {
    /// Replaces the message with one written for the client, sent even on a 5xx.
    ///
    /// A 5xx normally shows only its code's generic message, so that internal text (a query, a
    /// host name, a password in a connection string) never reaches a client by accident. Use
    /// this, deliberately, for text that is safe to publish:
    ///
    /// ```
    /// use fender::ApiError;
    /// use serde_json::json;
    ///
    /// let err = ApiError::service_unavailable("replica db-3 lags by 40 s")
    ///     .with_public_message("down for maintenance until 10:00 UTC")
    ///     .with_public_detail("until", "2026-11-25T10:00:00Z")
    ///     .with_detail("replica", "db-3");
    /// let sent = err.to_envelope().error;
    /// assert_eq!(sent.message, "down for maintenance until 10:00 UTC");
    /// assert_eq!(serde_json::Value::Object(sent.details), json!({"until": "2026-11-25T10:00:00Z"}));
    /// ```
    #[must_use]
    pub fn with_public_message(mut self, message: impl Into<Cow<'static, str>>) -> Self {
        self.inner.message = message.into();
        self.inner.public_message = true;
        self
    }

    /// Adds one entry to `details` that is sent even on a 5xx: use it, deliberately, only for
    /// values that are safe to publish (see [`with_public_message`](Self::with_public_message)).
    #[must_use]
    pub fn with_public_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        let key = key.into();
        if !self.inner.public_details.contains(&key) {
            self.inner.public_details.push(key.clone());
        }
        self.inner.details.insert(key, value.into());
        self
    }

    /// The envelope this error is sent as, with `request_id` and `timestamp` as set (or
    /// empty; rendering fills in the request's id and the time of rendering).
    ///
    /// A 4xx sends its message and details as they are. Anything else (a 5xx above all) sends
    /// its code's generic message and no details, but for what was marked public with
    /// [`with_public_message`](Self::with_public_message) and
    /// [`with_public_detail`](Self::with_public_detail).
    pub fn to_envelope(&self) -> Envelope {
        let inner = &self.inner;
        let speaks_freely = inner.status.is_client_error();
        // A code of the contract is public; any other string a 5xx carries (an inner
        // service's own code) is internal text and gives way to the status's nearest code.
        let code = match &inner.code {
            crate::ErrorCode::Other(_) if !speaks_freely => {
                crate::ErrorCode::from_status(inner.status)
            }
            code => code.clone(),
        };
        let message = if speaks_freely || inner.public_message {
            inner.message.to_string()
        } else {
            code.generic_message().to_owned()
        };
        let details = if speaks_freely {
            inner.details.clone()
        } else if inner.public_details.is_empty() {
            Map::new()
        } else {
            let public = |(k, _): &(&String, _)| inner.public_details.contains(k);
            let entries = inner.details.iter().filter(public);
            entries.map(|(k, v)| (k.clone(), v.clone())).collect()
        };
        Envelope {
            error: EnvelopeError {
                code,
                message,
                details,
                request_id: Some(inner.request_id.clone().unwrap_or_default()),
                timestamp: Some(inner.timestamp.clone().unwrap_or_default()),
            },
        }
    }

    /// The response this error is sent as: its status, `content-type: application/json`, the
    /// envelope, `x-request-id`, `Retry-After` when known and the extra headers.
    ///
    /// A missing request id is filled in here, and the timestamp is the time of rendering. A
    /// 5xx sends only what was marked public (see [`to_envelope`](Self::to_envelope)). The
    /// error rides in the response extensions.
    ///
    /// Behind [`ErrorEnvelopeLayer`](crate::envelope::ErrorEnvelopeLayer) (called while the
    /// layer runs the inner service, as axum handlers are), a 4xx or 5xx is not rendered here:
    /// the response has the status, the error in its extensions and an empty body, and the
    /// layer renders it once, with the request's id.
    pub fn into_http_response(self) -> Response<Full<Bytes>> {
        if self.inner.status.as_u16() >= 400 && EDGE_RENDERS.get() {
            let mut response = Response::new(Full::new(Bytes::new()));
            *response.status_mut() = self.inner.status;
            response.extensions_mut().insert(self);
            return response;
        }
        let (mut parts, ()) = Response::new(()).into_parts();
        let body = self.render_into(&mut parts);
        Response::from_parts(parts, Full::new(body))
    }

    /// Renders the envelope into `parts` (status, headers, extensions) and returns the body.
    pub(crate) fn render_into(self, parts: &mut http::response::Parts) -> Bytes {
        self.render_with(parts, HeaderValue::from_static("application/json"), |err| {
            serde_json::to_vec(&err.to_envelope()).expect("an envelope serializes")
        })
    }

    /// Renders this error into `parts` (status, headers, extensions) as a body of
    /// `content_type` that `encode` writes, and returns the body.
    ///
    /// `encode` sees the error with its request id and the time of rendering filled in; every
    /// wire format goes through here, so the headers of the status, `Retry-After` and
    /// `x-request-id` are the same whatever the body.
    pub(crate) fn render_with(
        mut self,
        parts: &mut http::response::Parts,
        content_type: HeaderValue,
        encode: impl FnOnce(&ApiError) -> Vec<u8>,
    ) -> Bytes {
        self.fill_for_rendering();
        let body = Bytes::from(encode(&self));
        let inner = &self.inner;
        parts.status = inner.status;
        let headers = &mut parts.headers;
        for name in inner.headers.keys() {
            headers.remove(name);
        }
        for (name, value) in &inner.headers {
            headers.append(name, value.clone());
        }
        headers.insert(CONTENT_TYPE, content_type);
        headers.insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
        if let Some(delay) = inner.retry_after {
            headers.insert(RETRY_AFTER, crate::retry_after::to_header_value(delay));
        }
        if let Some(id) = inner.request_id.as_deref()
            && let Ok(id) = HeaderValue::from_str(id)
        {
            headers.insert(X_REQUEST_ID.clone(), id);
        }
        parts.extensions.insert(self);
        body
    }

    /// Fills in a missing request id (a new UUID v7) and the time of rendering.
    fn fill_for_rendering(&mut self) {
        if self.inner.request_id.is_none() {
            let id = new_request_id();
            self.inner.request_id = id.header_value().to_str().ok().map(str::to_owned);
        }
        self.inner.timestamp = Some(timestamp_now());
    }
}

thread_local! {
    /// Whether the code running on this thread runs under the envelope layer, which renders
    /// every error response that carries an [`ApiError`] itself.
    static EDGE_RENDERS: Cell<bool> = const { Cell::new(false) };
}

/// While it lives, errors turned into responses on this thread are left for the envelope layer
/// to render (see [`ApiError::into_http_response`]); the layer holds one around each call and
/// poll of its inner service.
pub(crate) struct EdgeRenders(bool);

impl EdgeRenders {
    pub(crate) fn enter() -> Self {
        EdgeRenders(EDGE_RENDERS.replace(true))
    }
}

impl Drop for EdgeRenders {
    fn drop(&mut self) {
        EDGE_RENDERS.set(self.0);
    }
}

#[cfg(feature = "axum")]
impl axum::response::IntoResponse for ApiError {
    fn into_response(self) -> axum::response::Response {
        self.into_http_response().map(axum::body::Body::new)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn rendered_envelope_has_all_five_fields_and_headers() {
        let res = ApiError::validation([("email", "must be a valid email address")])
            .with_request_id("req-1")
            .into_http_response();
        assert_eq!(res.status(), 422);
        assert_eq!(res.headers()["content-type"], "application/json");
        assert_eq!(res.headers()["x-request-id"], "req-1");
        let api = res.extensions().get::<ApiError>().unwrap();
        let json: Value = serde_json::to_value(api.to_envelope()).unwrap();
        let e = &json["error"];
        assert_eq!(e["code"], "VALIDATION_ERROR");
        assert_eq!(e["message"], "email must be a valid email address");
        assert_eq!(e["details"]["fields"][0]["field"], "email");
        assert_eq!(e["request_id"], "req-1");
        let ts = e["timestamp"].as_str().unwrap();
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "{ts}");
        assert_eq!(ts.len(), "2026-11-25T08:27:32.123Z".len(), "{ts}");
        assert!(ts.ends_with('Z'));
    }

    #[test]
    fn a_5xx_sends_only_what_was_published_and_a_4xx_everything() {
        let private = ApiError::internal()
            .with_message("pg: password authentication failed")
            .with_detail("dsn", "postgres://app@10.0.0.3");
        let sent = private.to_envelope().error;
        assert_eq!(sent.message, "internal server error");
        assert!(sent.details.is_empty());

        let published = ApiError::bad_gateway("pool exhausted")
            .with_public_detail("upstream", "billing")
            .with_detail("pool", "db-3");
        let sent = published.to_envelope().error;
        assert_eq!(sent.message, "upstream service error");
        assert_eq!(Value::Object(sent.details), json!({"upstream": "billing"}));

        // Marking a key private again takes it back.
        let retracted = ApiError::bad_gateway("x")
            .with_public_detail("k", 1)
            .with_detail("k", 2);
        assert!(retracted.to_envelope().error.details.is_empty());

        let client = ApiError::conflict("order 9 has shipped").with_detail("state", "shipped");
        let sent = client.to_envelope().error;
        assert_eq!(sent.message, "order 9 has shipped");
        assert_eq!(sent.details["state"], "shipped");
    }

    #[test]
    fn under_the_edge_error_responses_are_left_to_it_and_successes_are_not() {
        let deferred = {
            let _edge = EdgeRenders::enter();
            ApiError::not_found("no order 7").into_http_response()
        };
        assert_eq!(deferred.status(), 404);
        assert_eq!(http_body::Body::size_hint(deferred.body()).exact(), Some(0));
        assert!(deferred.extensions().get::<ApiError>().is_some());
        let outside = ApiError::not_found("no order 7").into_http_response();
        assert!(http_body::Body::size_hint(outside.body()).exact() > Some(0));
        let odd_success = {
            let _edge = EdgeRenders::enter();
            ApiError::not_found("x")
                .with_status(http::StatusCode::OK)
                .into_http_response()
        };
        assert!(http_body::Body::size_hint(odd_success.body()).exact() > Some(0));
    }

    #[test]
    fn the_timestamp_sent_is_the_time_of_rendering() {
        let res = ApiError::not_found("x")
            .with_timestamp("\u{1b}[2J")
            .into_http_response();
        let sent = res.extensions().get::<ApiError>().unwrap().timestamp();
        assert!(sent.unwrap().parse::<jiff::Timestamp>().is_ok(), "{sent:?}");
    }
}

#[cfg(test)]
mod code_tests {
    use crate::{ApiError, ErrorCode};
    use http::StatusCode;

    #[test]
    fn a_5xx_never_sends_an_inner_services_own_code() {
        let err = ApiError::new(ErrorCode::Other("DB_POOL_EXHAUSTED".into()), "pool gone")
            .with_status(StatusCode::BAD_GATEWAY);
        let envelope = err.to_envelope();
        assert_eq!(envelope.error.code, ErrorCode::BadGateway);
        assert_eq!(
            envelope.error.message,
            ErrorCode::BadGateway.generic_message()
        );
        // A 4xx's own code is the caller's to read.
        let err = ApiError::new(ErrorCode::Other("QUOTA".into()), "over quota")
            .with_status(StatusCode::FORBIDDEN);
        assert_eq!(
            err.to_envelope().error.code,
            ErrorCode::Other("QUOTA".into())
        );
    }
}
