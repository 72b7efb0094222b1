//! Tower middleware that gives an HTTP API one error contract, end to end.
//!
//! - [`ErrorEnvelopeLayer`](envelope::ErrorEnvelopeLayer) (servers): every 4xx/5xx leaves as the
//!   JSON envelope `{"error":{"code","message","details","request_id","timestamp"}}`, every
//!   response carries an `x-request-id`, panics and middleware errors become envelopes too.
//! - [`DecodeEnvelopeLayer`](envelope::DecodeEnvelopeLayer) (clients): every failure, an error
//!   response or a broken connection, becomes one typed [`ApiError`] that knows its code, request
//!   id and whether it is retryable.
//!
//! The vocabulary is shared by both sides: [`ErrorCode`] for the eleven codes of the contract,
//! [`ApiError`] for the error itself, and [`classify`] for the one rule book that says what
//! succeeded, what failed and what may be retried.
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

#[cfg(feature = "circuit-breaker")]
pub mod circuit_breaker;
pub mod classify;
pub mod code;
pub mod error;
pub mod request_id;
#[cfg(feature = "retry")]
pub mod retry;
pub mod retry_after;

#[cfg(feature = "envelope")]
pub mod envelope;

#[cfg(feature = "circuit-breaker")]
pub use circuit_breaker::CircuitBreakerLayer;
pub use code::ErrorCode;
pub use error::ApiError;
#[cfg(feature = "retry")]
pub use retry::RetryLayer;

/// The error type of layers that add failure modes of their own.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The README's snippets, compiled as doctests so they stay true.
#[cfg(all(doctest, feature = "axum"))]
#[doc = include_str!("../../../README.md")]
struct ReadmeDoctests;
