//! Settings from files: serde-deserializable configurations of the layers.
//!
//! Operators tune timeouts and thresholds without recompiling. Each layer's builder has a
//! configuration whose keys are the builder's method names: [`RetryConfig`] (with its
//! [`BudgetConfig`]), [`BreakerConfig`] (with its [`FailureRateConfig`]), [`ClientConfig`] for
//! the composed stack (nesting `retry`, `breaker` and [`DecodeConfig`] as `decode`), and
//! [`EnvelopeConfig`] for the server's envelope layer. They work with any serde format; the
//! examples use TOML.
//!
//! - **Every field is optional**: a missing one keeps the builder's default, which each
//!   field's docs state. An empty file is [`ClientLayer::new`](crate::ClientLayer::new).
//! - **Durations are strings for people**: `"1s"`, `"250ms"`, `"1m30s"`, `"2 minutes"`,
//!   `"1 day"` (see [`HumanDuration`]). A bare number is refused: it has no unit.
//! - **Unknown keys are refused**: a misspelt key fails the load, and the error names it and
//!   lists the keys the table takes, instead of the setting being silently ignored.
//! - **Converting never panics**: where a builder would panic (0 attempts, a base delay above
//!   the maximum, a zero open duration, a negative duration), `layer()` returns a
//!   [`ConfigError`] naming the field by its path (`retry.base_delay`) and the reason.
//! - **Code stays code**: callbacks, classifiers and clocks are not settings. `apply_to` (and
//!   [`ClientConfig::layer_with`]) applies a file's settings on top of a builder that carries
//!   them, and the builders keep working as before.
//! - **What is in effect can be printed**: every configuration serializes, and `effective()`
//!   returns it checked, with the defaults filled in.
//!
//! Needs the `config` feature (off by default).
//!
//! # Example
//!
//! ```
//! # #[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))] {
//! use fender::config::ClientConfig;
//!
//! let file = r#"
//!     attempt_timeout = "2s"     # each attempt; the retry loop's delays come on top
//!
//!     [retry]
//!     max_attempts = 4
//!     base_delay = "250ms"
//!     max_delay = "5s"
//!     deadline = "1m30s"
//!
//!     [breaker]
//!     open_duration = "10s"
//!
//!     [breaker.failure_rate]
//!     period = "1 minute"
//!     threshold = 0.25
//! "#;
//! let config: ClientConfig = toml::from_str(file).unwrap();
//! let layer = config.layer().unwrap(); // a fender::ClientLayer
//! # let _ = layer;
//!
//! // A misspelt key is an error that names it:
//! let err = toml::from_str::<ClientConfig>("[retry]\nmax_atempts = 4").unwrap_err();
//! assert!(err.message().starts_with("unknown field `max_atempts`, expected one of"));
//!
//! // A value the builder would refuse is an error that names the field:
//! let config: ClientConfig = toml::from_str("[retry]\nbase_delay = \"1m\"").unwrap();
//! let err = config.layer().unwrap_err();
//! assert_eq!(err.to_string(), "retry.base_delay: must not exceed max_delay (30s), got 1m");
//! # }
//! ```
//!
//! To embed the settings in an application's own file, make them fields of its configuration
//! (`#[serde(default)] fender: ClientConfig`); `cargo run --example config` loads such a file.

#[cfg(feature = "circuit-breaker")]
mod breaker;
mod check;
#[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
mod client;
mod duration;
#[cfg(feature = "envelope")]
mod envelope;
mod error;
#[cfg(feature = "retry")]
mod retry;

#[cfg(feature = "circuit-breaker")]
pub use breaker::{BreakerConfig, FailureRateConfig};
#[cfg(all(feature = "retry", feature = "circuit-breaker", feature = "envelope"))]
pub use client::ClientConfig;
pub use duration::{HumanDuration, ParseDurationError};
#[cfg(feature = "envelope")]
pub use envelope::{DecodeConfig, EnvelopeConfig};
pub use error::ConfigError;
#[cfg(feature = "retry")]
pub use retry::{BudgetConfig, RetryConfig};
