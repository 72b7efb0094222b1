//! The error envelope, on both sides of the wire.
//!
//! - [`ErrorEnvelopeLayer`] (servers) makes every 4xx/5xx response the contract's JSON envelope
//!   and gives every response a request id.
//! - [`DecodeEnvelopeLayer`] (clients) turns every failure into an `Err(ApiError)`: the envelope
//!   of an error response, or a made-up one for a response that is not an envelope, a broken
//!   connection or an open circuit.
//!
//! The two are a pair: what one encodes, the other decodes, so a gateway can put
//! `ErrorEnvelopeLayer` on its server and `DecodeEnvelopeLayer` on its client and pass an
//! upstream's `ApiError` straight back to its own callers.
//!
//! # The server side
//!
//! [`ErrorEnvelopeLayer`] wraps any `Service<http::Request<B>, Response = http::Response<R>>`;
//! its error type is `Infallible`, so it is the outermost layer. It guarantees:
//!
//! 1. **Request ids** (CONTRACT.md §5): an inbound `x-request-id` of 1–128 characters of
//!    `[A-Za-z0-9._:-]` is kept, anything else is replaced by a new UUID v7. The id is put in
//!    the request extensions as tower-http's [`RequestId`](crate::request_id::RequestId) (and in
//!    the request header) before the inner service runs, and echoed in the `x-request-id`
//!    header of every response.
//! 2. **Handler errors**: an [`ApiError`](crate::ApiError) a handler returns is rendered once,
//!    at the edge, with the request id and the time of rendering.
//! 3. **Every other error response** that is not already an envelope (a router's 404 or 405, an
//!    extractor's rejection, a 413 from a body limit, a plain-text 500) is rewritten into one:
//!    the status is kept, the code is the nearest of the contract's table, headers such as
//!    `Allow`, `Retry-After` and `WWW-Authenticate` are kept, the content headers are fixed. A
//!    short, printable plain-text 4xx body becomes the message; other bodies are never echoed.
//!    A JSON body that already is an envelope keeps its code, and for a 4xx its message and
//!    details, with this request's id. The layer reads such a body for at most
//!    [`body_timeout`](ErrorEnvelopeLayer::body_timeout) (2 s) and a bounded number of frames;
//!    a body that stalls, never ends or panics gives the envelope of its status (a panic: 500).
//! 4. **No internal text in a 5xx**: a 5xx (and anything else that is not a 4xx) carries its
//!    code's generic message and no details, whatever the handler or the inner body said, but
//!    for text the handler published deliberately with
//!    [`with_public_message`](crate::ApiError::with_public_message) and
//!    [`with_public_detail`](crate::ApiError::with_public_detail). The `timestamp` is always
//!    the layer's own.
//! 5. **Errors of inner layers** become envelopes: a timeout → 504 `TIMEOUT`; an open circuit,
//!    load shedding → 503 `SERVICE_UNAVAILABLE` with `Retry-After`; anything unknown → 500
//!    `INTERNAL_ERROR` with a generic message. Your own error types plug in with
//!    [`ErrorEnvelopeLayer::map_error`].
//! 6. **Panics** in a handler (in its `call` or while its future runs) become a 500 envelope
//!    with the request id; the layer catches them itself, so a success's body is never boxed.
//! 7. **Logging**: every error response is logged through `tracing` with its request id, status
//!    and code: 5xx (and statuses past 599) at `ERROR` with the source chain, 4xx at `DEBUG`.
//!    Internal detail goes to the log and never to the client.
//! 8. **Successes** are untouched but for the `x-request-id` header: the body streams through
//!    without buffering.
//!
//! ## What never reaches the layer
//!
//! hyper answers some requests itself, before any service runs, so they get hyper's bare
//! response: no envelope, no `x-request-id`, nothing logged by this layer. With hyper 1's
//! HTTP/1 server:
//!
//! - **431 Request Header Fields Too Large**: more header lines than
//!   `http1::Builder::max_headers` (default 100), or a request head larger than
//!   `max_header_size` (default: unset, so the read buffer's limit) or than the read buffer,
//!   `max_buf_size` (default about 400 KiB);
//! - **414 URI Too Long**: a request target of 65 535 bytes or more (fixed in hyper);
//! - **400 Bad Request**: a request line or header hyper cannot parse (garbage, a bad method
//!   or version, a NUL or other control byte in a header);
//! - **no response at all**: a connection that sends its head too slowly
//!   (`header_read_timeout`, default 30 s, closes it), or an HTTP/2 preface on an HTTP/1-only
//!   connection. HTTP/2 has limits of its own (`http2::Builder::max_header_list_size`), which
//!   it enforces with stream resets, also unseen by the layer.
//!
//! Raise those builder limits to let more requests through to the layer (which then answers,
//! say, 400 with an envelope from your own checks); lower them to shed abuse earlier. Every
//! request that hyper parses, and every response the service gives, goes through the layer.
//!
//! ```
//! # #[cfg(feature = "axum")] {
//! use axum::{Router, routing::get};
//! use fender::envelope::ErrorEnvelopeLayer;
//! use fender::ApiError;
//!
//! // With the `axum` feature, handlers can return `Result<T, ApiError>`.
//! async fn user() -> Result<String, ApiError> {
//!     Err(ApiError::not_found("user 42 does not exist"))
//! }
//!
//! let app: Router = Router::new()
//!     .route("/users/42", get(user))
//!     .layer(ErrorEnvelopeLayer::new());
//! # let _ = app;
//! # }
//! ```
//!
//! Behind the layer, `GET /users/42` answers:
//!
//! ```text
//! HTTP/1.1 404 Not Found
//! content-type: application/json
//! x-request-id: 0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a
//!
//! {"error":{"code":"NOT_FOUND","message":"user 42 does not exist","details":{},
//!  "request_id":"0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a","timestamp":"2026-11-25T08:27:32.123Z"}}
//! ```
//!
//! # Problem details (RFC 9457)
//!
//! The server layer speaks a second wire format, `application/problem+json` (CONTRACT.md §6,
//! §9), chosen per request by [`ErrorEnvelopeLayer::problem_details`]:
//!
//! - [`ProblemDetails::Negotiate`] (default): problem details when the request's `Accept`
//!   *strictly* prefers `application/problem+json` to `application/json`, by q-values and the
//!   most specific matching range (`application/problem+json` beats `application/*` beats
//!   `*/*`). No `Accept`, `*/*`, `application/json`, a tie, or a header that does not parse all
//!   keep the envelope, so no client sees a change it did not ask for. Error responses carry
//!   `Vary: Accept`.
//! - [`ProblemDetails::Always`] / [`ProblemDetails::Never`]: one form, whatever `Accept` says.
//!
//! A [`Problem`] is the envelope in the other form, rendered from
//! [`ApiError::to_envelope`](crate::ApiError::to_envelope): the same status, code, request id,
//! timestamp and headers (`x-request-id`, `Retry-After`, `Allow`, `WWW-Authenticate`), and the
//! 5xx rule for its `detail`. Every guarantee above holds for both forms.
//!
//! ```text
//! HTTP/1.1 404 Not Found
//! content-type: application/problem+json
//! vary: accept
//! x-request-id: 0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a
//!
//! {"type":"urn:fender:error:not-found","title":"resource not found","status":404,
//!  "detail":"user 42 does not exist","instance":"urn:uuid:0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a",
//!  "code":"NOT_FOUND","request_id":"0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a",
//!  "timestamp":"2026-11-25T08:27:32.123Z","details":{}}
//! ```
//!
//! Clients decode both forms into the same [`ApiError`](crate::ApiError) (see
//! [`ApiError::from_problem`](crate::ApiError::from_problem)), and so does the server layer
//! when an inner service answers with a problem document.
//!
//! # The client side
//!
//! [`DecodeEnvelopeLayer`] wraps a client service (a hyper-util `Client` behind tower layers);
//! successes pass through untouched and unbuffered, and every failure becomes an
//! [`ApiError`](crate::ApiError):
//!
//! - a 4xx/5xx with an envelope → its code, message, details, request id, the status, and the
//!   `Retry-After` delay if the response had one; the same for a problem details document
//!   (`application/problem+json`, or any JSON object with a string `type` and a numeric
//!   `status`), whose members of the wrong type are ignored as RFC 9457 asks;
//! - a 4xx/5xx without one (an HTML 502 from a proxy, an empty 503, truncated or malformed JSON,
//!   a non-UTF-8 body) → the nearest code for the status, a message saying the body was not an
//!   envelope, and the request id of the `x-request-id` header if any. The body is read up to a
//!   limit (default 64 KiB) and the rest discarded; a body that stalls is given up after a
//!   timeout (default 10 s);
//! - a transport or middleware error → a connection refused is 503, a reset 502, a timeout 504,
//!   an open circuit 503 with `Retry-After`; [`ApiError::origin`](crate::ApiError::origin) tells
//!   them from answers of the server, the source is kept, and
//!   [`is_retryable`](crate::ApiError::is_retryable) says whether trying again may help.
//!
//! Outgoing requests without an `x-request-id` get a UUID v7 one (turn off with
//! [`DecodeEnvelopeLayer::generate_request_id`]), so even a timeout carries an id that the
//! server's logs know.
//!
//! For a single response, without a layer, use [`decode_error`] or [`error_for_status`].
//!
//! ```
//! use fender::envelope::error_for_status;
//! use fender::ErrorCode;
//! use http_body_util::Full;
//!
//! # tokio_test_block_on(async {
//! let response = http::Response::builder()
//!     .status(404)
//!     .header("content-type", "application/json")
//!     .body(Full::new(bytes::Bytes::from_static(
//!         br#"{"error":{"code":"NOT_FOUND","message":"no such order","details":{},"request_id":"r-1","timestamp":"2026-11-25T08:27:32.123Z"}}"#,
//!     )))
//!     .unwrap();
//! let err = error_for_status(response).await.unwrap_err();
//! assert_eq!(err.code(), &ErrorCode::NotFound);
//! assert_eq!(err.request_id(), Some("r-1"));
//! assert!(!err.is_retryable());
//! # });
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

mod accept;
mod body;
mod decode;
pub mod future;
mod layer;
mod problem;
mod service;

pub use body::EnvelopeBody;
pub use decode::{
    DEFAULT_BODY_LIMIT, DecodeEnvelope, DecodeEnvelopeLayer, DecodeFuture, decode_error,
    decode_error_with_limit, error_for_status,
};
pub use layer::ErrorEnvelopeLayer;
pub use problem::{DEFAULT_TYPE_BASE, PROBLEM_JSON, Problem, ProblemDetails};
pub use service::ErrorEnvelope;

/// The type of an inner error body while the layer reads it (a boxed body); successes keep
/// their own body type.
pub type InnerBody = tower_http::body::UnsyncBoxBody<bytes::Bytes, crate::BoxError>;

/// Headers that describe a body; an envelope replaces the body, so they go.
pub(crate) fn strip_representation_headers(headers: &mut http::HeaderMap) {
    use http::header::*;
    for name in [
        CONTENT_TYPE,
        CONTENT_LENGTH,
        CONTENT_ENCODING,
        CONTENT_LANGUAGE,
        CONTENT_RANGE,
        CONTENT_LOCATION,
        CONTENT_DISPOSITION,
        TRANSFER_ENCODING,
        ETAG,
        LAST_MODIFIED,
    ] {
        headers.remove(name);
    }
}
