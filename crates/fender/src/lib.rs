//! Tower middleware that gives an HTTP API one error contract, end to end.
//!
//! - [`ErrorEnvelopeLayer`] (servers): every 4xx/5xx leaves as the JSON envelope
//!   `{"error":{"code","message","details","request_id","timestamp"}}` (or RFC 9457 problem
//!   details when the caller's `Accept` prefers them), every response carries an
//!   `x-request-id`, panics and middleware errors become envelopes too.
//! - [`ClientLayer`] (clients): the contract's client stack in one layer, in the one order
//!   that works: decoding, retries, and per host a `Retry-After` hold, adaptive throttling and a
//!   circuit breaker, with a per-attempt timeout innermost.
//! - [`DecodeEnvelopeLayer`] (clients): every failure, an error response or a broken
//!   connection, becomes one typed [`ApiError`] that knows its code, request id and whether it
//!   is retryable.
//! - [`RetryLayer`] (clients): exponential backoff with jitter, a small cap on attempts, only
//!   what is transient, `Retry-After` honoured, non-idempotent requests never replayed unsafely,
//!   and a retry budget shared by every clone.
//! - [`CircuitBreakerLayer`] (clients): opens after consecutive failures (or a failure rate),
//!   fails fast while open, probes with a limited number of requests, then ramps traffic back
//!   up. Lock-free when closed.
//! - [`RequestTimeoutLayer`] (servers) keeps to the caller's deadline and [`HedgeLayer`]
//!   (clients) sends a second copy of a slow idempotent request.
//!
//! The vocabulary is shared by both sides: [`ErrorCode`] for the eleven codes of the contract,
//! [`ApiError`] for the error itself, [`Origin`] for where it came from, and [`classify`] (with
//! [`Class`]) for the one rule book that says what succeeded, what failed and what may be
//! retried. The contract itself is in [`contract`].
//!
//! # A client
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))] {
//! use std::time::Duration;
//! use fender::ClientLayer;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//!
//! let client = ServiceBuilder::new()
//!     .layer(ClientLayer::new().attempt_timeout(Duration::from_secs(5)))
//!     .service(Client::builder(TokioExecutor::new()).build_http());
//! # fn is_client<S: tower::Service<http::Request<http_body_util::Full<bytes::Bytes>>, Error = fender::ApiError>>(_: &S) {}
//! # is_client(&client);
//! # }
//! ```
//!
//! # A server
//!
//! ```
//! # #[cfg(all(feature = "envelope", feature = "axum"))] {
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use fender::{ApiError, ServiceBuilderExt};
//! use tower::ServiceBuilder;
//!
//! async fn user() -> Result<String, ApiError> {
//!     Err(ApiError::not_found("user 7 does not exist"))
//! }
//!
//! let app: Router = Router::new().route("/users/7", get(user)).layer(
//!     ServiceBuilder::new()
//!         .error_envelope()
//!         .caller_deadline(Duration::from_secs(10)),
//! );
//! # let _ = app;
//! # }
//! ```
//!
//! # Features
//!
//! | feature | default | what |
//! | --- | --- | --- |
//! | `envelope` | yes | [`envelope`]: both envelope layers |
//! | `retry` | yes | [`retry`] |
//! | `circuit-breaker` | yes | [`circuit_breaker`] |
//! | `axum` | no | `axum::response::IntoResponse` for [`ApiError`] |
//! | `config` | no | [`config`]: serde configurations of the layers, durations as `"250ms"` |
//! | `metrics` | no | [`metrics`](crate::metrics): counters, gauges and histograms through the `metrics` facade |
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

mod builder_ext;
#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
pub mod classify;
#[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
pub mod client;
pub mod code;
#[cfg(feature = "config")]
pub mod config;
pub mod error;
pub mod headers;
#[cfg(feature = "retry")]
pub mod hedge;
#[cfg(feature = "metrics")]
pub mod metrics;
#[cfg(not(feature = "metrics"))]
mod metrics;
pub mod request_id;
#[cfg(feature = "retry")]
pub mod retry;
pub mod retry_after;
#[cfg(feature = "envelope")]
pub mod timeout;

#[cfg(feature = "envelope")]
pub mod envelope;

#[cfg(feature = "circuit-breaker")]
pub use circuit_breaker::CircuitBreakerLayer;
pub use classify::Class;
#[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
pub use client::ClientLayer;
pub use code::ErrorCode;
#[cfg(feature = "envelope")]
pub use envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
pub use error::ApiError;
pub use error::Origin;
#[cfg(feature = "retry")]
pub use hedge::HedgeLayer;
#[cfg(feature = "retry")]
pub use retry::RetryLayer;

pub use builder_ext::ServiceBuilderExt;
#[cfg(feature = "envelope")]
pub use timeout::RequestTimeoutLayer;

/// The error type of layers that add failure modes of their own.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error contract this crate implements, section by section; the code docs cite it as
/// `CONTRACT.md §n`.
#[doc = include_str!("../../../CONTRACT.md")]
pub mod contract {}

/// The README's snippets, compiled as doctests so they stay true.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
