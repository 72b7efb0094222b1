//! The composed client stack: [`ClientLayer`].
//!
//! Most clients want exactly one arrangement of fender's client-side layers, and every other
//! order compiles and silently means something else. `ClientLayer::new()` is that arrangement,
//! in one layer:
//!
//! ```text
//! DecodeEnvelope          outermost: every failure becomes one ApiError for the caller
//!   Retry                 the retry loop: backoff with jitter, budget, idempotency, deadline
//!     per host (scheme, host, port), for every attempt:
//!       pushback          a 429/503 Retry-After holds every request to the host until it ends
//!       throttle          a host that accepts too few attempts gets proportionally fewer
//!       circuit breaker   fails fast while the host is down; counts every attempt's verdict
//!       attempt timeout   innermost: bounds one attempt; the breaker counts a timeout
//!         your HTTP client
//! ```
//!
//! Why this order: decoding must see the final outcome, after the retries, so the application
//! gets one typed error. The retry loop must be outside the breaker so that each attempt passes
//! the breaker and an open circuit's fast-fail ends the retries at once instead of being
//! retried. The per-attempt timeout must be inside the breaker, so a hung upstream trips it. Each
//! attempt is classified once, by the retry layer's classifier, and that verdict is what both
//! the retry loop and the breaker act on, so they never disagree. State is kept per host: one
//! failing host never refuses requests to another.
//!
//! The four layers stay public for custom stacks; this is the one place their order is
//! explained.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use bytes::Bytes;
//! use fender::ClientLayer;
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let client = ServiceBuilder::new()
//!     .layer(ClientLayer::new().attempt_timeout(Duration::from_secs(5)))
//!     .service(Client::builder(TokioExecutor::new()).build_http());
//! # let _ = &client;
//! // client: Service<http::Request<Full<Bytes>>, Error = fender::ApiError>
//! # fn is_service<S: tower::Service<http::Request<Full<Bytes>>, Error = fender::ApiError>>(_: &S) {}
//! # is_service(&client);
//! # }
//! ```
//!
//! # Customised
//!
//! ```
//! use std::time::Duration;
//! use fender::{CircuitBreakerLayer, ClientLayer, RetryLayer};
//!
//! let layer = ClientLayer::new()
//!     .retry(RetryLayer::new().max_attempts(4).deadline(Duration::from_secs(20)))
//!     .breaker(CircuitBreakerLayer::new().open_duration(Duration::from_secs(10)))
//!     .attempt_timeout(Duration::from_secs(2))
//!     .max_keys(256);
//! let handle = layer.handle(); // watches the per-host breakers, whenever it is taken
//! # let _ = (layer, handle);
//! ```

pub mod body;
mod breaker;
pub mod gate;
mod host;
mod layer;
mod pushback;
mod throttle;

pub use body::{BodyDeadline, BodyTimeout, DeadlineBody};
pub use gate::{HostGate, HostPermit, HostScope};
pub use host::{ClientHandle, HostKey};
pub use layer::{ClientLayer, ClientStack, DEFAULT_ATTEMPT_TIMEOUT};
