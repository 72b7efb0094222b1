//! The headers fender's client and server layers exchange besides `x-request-id`.

use http::HeaderName;

/// The attempt number of a request: `1` for the first attempt, `2` for the first retry, …
/// (as Envoy's `x-envoy-attempt-count`). Sent by the retry layer; logged by the server layer.
pub const X_ATTEMPT_COUNT: HeaderName = HeaderName::from_static("x-attempt-count");

/// The time the caller will still wait for this attempt, in whole milliseconds (at least 1).
/// Sent by the retry layer when a request has a deadline; enforced by
/// `fender::timeout::RequestTimeoutLayer`.
pub const X_REQUEST_TIMEOUT_MS: HeaderName = HeaderName::from_static("x-request-timeout-ms");
