//! Tower middleware that gives an HTTP API one error contract, end to end.
//!
//! - [`ErrorEnvelopeLayer`](envelope::ErrorEnvelopeLayer) (servers): every 4xx/5xx leaves as the
//!   JSON envelope `{"error":{"code","message","details","request_id","timestamp"}}`, every
//!   response carries an `x-request-id`, panics and middleware errors become envelopes too.
//! - [`DecodeEnvelopeLayer`](envelope::DecodeEnvelopeLayer) (clients): every failure, an error
//!   response or a broken connection, becomes one typed [`ApiError`] that knows its code, request
//!   id and whether it is retryable.
//! - [`RetryLayer`] (clients): exponential backoff with jitter, a small cap on
//!   attempts, only what is transient, `Retry-After` honoured, non-idempotent requests never
//!   replayed unsafely, and a retry budget shared by every clone.
//! - [`CircuitBreakerLayer`] (clients): opens after
//!   consecutive failures (or a failure rate), fails fast while open, probes with a limited
//!   number of requests, then ramps traffic back up. Lock-free when closed.
//!
//! The vocabulary is shared by both sides: [`ErrorCode`] for the eleven codes of the contract,
//! [`ApiError`] for the error itself, and [`classify`] for the one rule book that says what
//! succeeded, what failed and what may be retried.
//!
//! # A client stack
//!
//! Envelope decoding outermost, retry outside the breaker, the per-attempt timeout innermost:
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))] {
//! use std::time::Duration;
//! use fender::{CircuitBreakerLayer, RetryLayer};
//! use fender::envelope::DecodeEnvelopeLayer;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//!
//! let client = ServiceBuilder::new()
//!     .layer(DecodeEnvelopeLayer::new())
//!     .layer(RetryLayer::new())
//!     .layer(CircuitBreakerLayer::new())
//!     .timeout(Duration::from_secs(5))
//!     .service(Client::builder(TokioExecutor::new()).build_http::<fender::retry::ReplayBody<http_body_util::Full<bytes::Bytes>>>());
//! # let _ = client;
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
//! | `metrics` | no | [`metrics`](crate::metrics): counters, gauges and histograms through the `metrics` facade |
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
pub mod classify;
#[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
pub mod client;
pub mod code;
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
