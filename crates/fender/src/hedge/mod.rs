//! Hedged requests within a budget: when an idempotent request is slow, send a second copy and
//! take whichever good answer comes first.
//!
//! A tail of slow responses often has nothing to do with the request: a garbage collection, a
//! busy connection, a cold cache on one replica. Waiting longer does not help the slow copy; a
//! second copy, likely to land somewhere else, usually finishes in the ordinary time. Hedging
//! trades a little extra load for a much shorter tail, and only when that extra load is bounded
//! is it safe to switch on: an upstream that is slow *because* it is overloaded must not get
//! twice the traffic. So [`HedgeLayer`] hedges within a [`RetryBudget`], and is off unless you
//! add it.
//!
//! # The rules
//!
//! **What is hedged.** Only what may be sent twice: idempotent methods
//! ([`is_idempotent`]: GET, HEAD, OPTIONS, TRACE, PUT, DELETE) and requests that carry an
//! [`IDEMPOTENCY_KEY`]. Any other request goes once, untouched. The body must be `Clone`
//! (`Full<Bytes>`, `Empty<Bytes>`): the copy is made when the request is sent.
//!
//! **When.** A request still unanswered after the delay gets one hedge, never more. The delay is
//! fixed ([`HedgeLayer::after`]) or follows a percentile of the latencies of recent primary
//! attempts ([`HedgeLayer::percentile`]): the last 512, recomputed every 16, clamped between a
//! floor and a cap, and with no hedging at all until enough primaries have been timed. A
//! primary cancelled because its hedge won counts with the time it had taken, a lower bound of
//! its latency, so the slow tail stays in the window.
//!
//! **Budget.** Each hedge withdraws one token from a [`RetryBudget`]; a hedge the budget refuses
//! is not sent and the primary goes on alone. By default the layer has a budget of its own,
//! allowing hedges for 5% of the requests of the last 10 s plus one per second, into which it
//! deposits once per request. [`HedgeLayer::budget`] shares a budget instead, typically the
//! retry layer's, so retries and hedges together stay within one bound.
//!
//! **Who wins.** The first good answer: anything the classifier (default
//! [`ContractClassifier`](crate::classify::ContractClassifier)) would not retry, so a 200 or a
//! 404 wins and a 503, a 429, a timeout or a reset does not. The other copy, still in flight, is
//! dropped at once, which cancels it. When one copy fails while the other still runs, the
//! failure is dropped and the other copy is awaited; when both fail, the caller gets the one
//! that failed last, the freshest news from the upstream. A primary that fails before its delay
//! runs out is returned at once, unhedged: a failure calls for a retry with backoff, which is
//! the retry layer's job, not for a copy sent in a hurry.
//!
//! **Errors.** The error is the inner service's, unchanged; it must be a `std::error::Error`
//! so the classifier can look at it, as [`ApiError`](crate::ApiError) is. A stack whose error
//! is a [`BoxError`](crate::BoxError) gets one with
//! [`DecodeEnvelopeLayer`](crate::envelope::DecodeEnvelopeLayer) or
//! `map_err(ApiError::from_error)`.
//!
//! **Time** comes from `tokio::time`, so paused-clock tests see exact behaviour.
//!
//! # Example: a fixed delay
//!
//! ```
//! use std::convert::Infallible;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use std::time::Duration;
//! use bytes::Bytes;
//! use fender::hedge::HedgeLayer;
//! use http::{Request, Response};
//! use http_body_util::Full;
//! use tokio::time::{Instant, sleep};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let seen = calls.clone();
//! // The first copy takes a second, the second one 10 ms.
//! let upstream = service_fn(move |_req: Request<Full<Bytes>>| {
//!     let slow = seen.fetch_add(1, Ordering::SeqCst) == 0;
//!     async move {
//!         sleep(Duration::from_millis(if slow { 1_000 } else { 10 })).await;
//!         Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(if slow { "slow" } else { "hedge" }))))
//!     }
//! });
//! let client = ServiceBuilder::new()
//!     .layer(HedgeLayer::after(Duration::from_millis(50)))
//!     .service(upstream);
//!
//! let start = Instant::now();
//! let request = Request::get("http://api.test/items").body(Full::new(Bytes::new())).unwrap();
//! let response = client.oneshot(request).await.unwrap();
//! assert_eq!(start.elapsed(), Duration::from_millis(60)); // 50 ms delay + 10 ms hedge
//! assert_eq!(calls.load(Ordering::SeqCst), 2);
//! # let _ = response;
//! # }
//! ```
//!
//! # Example: a percentile, outside the client stack, sharing the retry budget
//!
//! ```
//! # #[cfg(all(feature = "circuit-breaker", feature = "envelope"))] {
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use fender::hedge::HedgeLayer;
//! use fender::retry::RetryBudget;
//! use fender::{ClientLayer, RetryLayer};
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//! use tower::ServiceBuilder;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let budget = Arc::new(RetryBudget::default());
//! let client = ServiceBuilder::new()
//!     .layer(
//!         HedgeLayer::percentile(0.95)
//!             .min_delay(Duration::from_millis(10))
//!             .max_delay(Duration::from_secs(1))
//!             .budget(budget.clone()),
//!     )
//!     .layer(ClientLayer::new().retry(RetryLayer::new().budget(budget)))
//!     .service(Client::builder(TokioExecutor::new()).build_http());
//! // client: Service<http::Request<Full<Bytes>>, Error = fender::ApiError>
//! # fn is_service<S: tower::Service<http::Request<Full<Bytes>>, Error = fender::ApiError>>(_: &S) {}
//! # is_service(&client);
//! # }
//! # }
//! ```
//!
//! # Clone
//!
//! A [`Hedge`] service is cheap to clone; clones share the layer's budget and its window of
//! recent latencies (both behind an `Arc`), and so do all services made by one layer.
//!
//! # Composing with the other layers
//!
//! Put the hedge layer **outside** the whole client stack
//! ([`ClientLayer`](crate::ClientLayer)): each copy is then a complete request, with its own
//! retries, passing the host's breaker and throttle, decoded into one
//! [`ApiError`](crate::ApiError). A copy dropped because the other won is cancelled, and the
//! breaker does not count a cancelled attempt. The race is between two whole requests, never
//! between attempts of the retry loop.
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(HedgeLayer::percentile(0.95))  // outermost: races two whole requests
//!     .layer(ClientLayer::new())            // decode, retry, per host breaker, attempt timeout
//!     .service(http_client)
//! ```
//!
//! [`RetryBudget`]: crate::retry::RetryBudget
//! [`is_idempotent`]: crate::retry::is_idempotent
//! [`IDEMPOTENCY_KEY`]: crate::retry::IDEMPOTENCY_KEY

mod delay;
pub mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::HedgeLayer;
pub use service::Hedge;
