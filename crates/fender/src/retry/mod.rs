//! Client-side retries: the retry strategy of the contract (CONTRACT.md §3), done the way careful
//! clients do it.
//!
//! [`RetryLayer`] wraps an HTTP client service. When an attempt fails in a way a retry may fix,
//! it waits and sends the same request again, at most three attempts in all by default. After
//! the last attempt the caller gets the last response (with its envelope and request id
//! intact) or the last error, never a synthetic error.
//!
//! # The rules
//!
//! **What is retried.** The shared [`classify`](crate::classify) rules decide, through the
//! layer's classifier (default [`ContractClassifier`](crate::classify::ContractClassifier)):
//! 429, 500, 502, 503 and 504 responses, a refused or reset connection, an attempt that timed
//! out (see [`RetryLayer::attempt_timeout`]), and an [`ApiError`](crate::ApiError) whose class is
//! retryable. Other 4xx are the caller's mistake and are never retried; neither are 501 and 505,
//! which will not change, nor a local fast-fail such as an open circuit or load shedding
//! ([`Class::Rejected`](crate::classify::Class::Rejected)): retrying those would only hammer a
//! component that has just said no.
//!
//! **Backoff.** The nominal delay before retry *n* is `base · 2^(n-1)`, capped by the maximum
//! delay: 1 s, 2 s, 4 s, … up to 30 s by default. [`Jitter`] randomises it (±20%, proportional jitter, by
//! default) so that clients failing together do not retry together. The random source is
//! seedable ([`RetryLayer::rng_seed`]).
//!
//! **Server signals win.** A 429 or 503 with a `Retry-After` header (delay-seconds or an
//! HTTP-date, read against [`RetryLayer::wall_clock`]) sets the next delay when it is longer
//! than the backoff; it never shortens the contract's own backoff (`Retry-After: 0` does not
//! make three attempts within a millisecond). When the server asks for longer than the cap (60 s by default) the request is not
//! retried and its response goes back to the caller at once, so the caller can decide. An
//! unparseable value is ignored and the normal backoff applies.
//!
//! **Idempotency.** RFC 9110 §9.2.2 defines a method as idempotent when sending the same
//! request several times has the same intended effect on the server as sending it once; a
//! client may then repeat it after a failure, because it cannot tell whether the first copy
//! was processed. GET, HEAD, OPTIONS and TRACE are safe, PUT and DELETE are idempotent: they
//! are retried. POST and PATCH are not: a retried payment may be a second payment. They are
//! retried only when
//! - the request carries an `Idempotency-Key` header ([`IDEMPOTENCY_KEY`]): the server
//!   promises to apply the request once per key;
//! - the failure proves the request never reached the server (a refused connection,
//!   [`Class::ConnectFailed`](crate::classify::Class::ConnectFailed)); or
//! - the user opts in with [`RetryLayer::retry_non_idempotent`].
//!
//! **Request bodies.** The body type needs no `Clone`. The inner service receives a
//! [`ReplayBody`]: the first attempt streams the caller's body as it arrives and keeps a copy
//! of up to 64 KiB ([`RetryLayer::max_replay_body`]); a retry replays exactly those bytes. A body
//! larger than the cap is sent once, untouched, and that request is not retried (a DEBUG event
//! says so). A body known to be empty is never buffered, and nothing is buffered when retries
//! are off (`max_attempts(1)`). A POST or PATCH without an `Idempotency-Key` is still kept: a
//! refused connection makes it retryable.
//!
//! **Budget.** Retries draw on a [`RetryBudget`] shared by every service the layer makes and
//! all their clones: by default 20% of the requests of the last 10 s plus 10 retries per
//! second. When it is empty, the current response or error is returned. During a full outage
//! the upstream therefore sees 1.2 times the offered load plus the floor (10 retries per second)
//! instead of 3 times: about 1.3x at 100 requests per second, closer to 1.2x the busier the
//! client. The budget only helps when requests share it: clients that each build their own
//! stack at low traffic live on the floor alone. Put a circuit breaker inside the retry layer
//! to bring an outage's load down to the probes.
//!
//! **Deadline.** With [`RetryLayer::deadline`], no delay runs past the deadline: when the next
//! attempt could not finish in time the last response or error is returned at once.
//!
//! **Readiness and cancellation.** The first attempt is sent through the inner service that
//! `poll_ready` made ready. Each later attempt (a retry, or a first attempt held back by a
//! server's `Retry-After`) is sent through a fresh clone of a copy the layer keeps per thread
//! group, cloned from the inner service the first time a request that may be sent again is
//! called, and the future drives `poll_ready` on that clone before it calls it; a request that
//! is never retried clones nothing. So a retry sees the inner service as it was when the copy
//! was made: a change made through [`Retry::get_mut`] later reaches first attempts only.
//! Dropping the future cancels the delay or the attempt in flight. The response of a failed
//! attempt, and its body, are dropped before the next attempt starts.
//!
//! **What the caller sees.** When a retry happened, the final response carries a [`RetryInfo`]
//! extension with the number of attempts and the delays waited; a response without one came
//! from the first attempt. Each retry emits an INFO `tracing` event (attempt, delay, reason,
//! method, URI) and runs the [`RetryLayer::on_retry`] callback.
//!
//! # Example: the defaults
//!
//! ```
//! use fender::retry::RetryLayer;
//! use http::{Request, Response, StatusCode};
//! use http_body_util::Full;
//! use bytes::Bytes;
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! let calls = Arc::new(AtomicUsize::new(0));
//! let seen = calls.clone();
//! // An upstream that fails twice with 503, then answers.
//! let upstream = service_fn(move |_req: Request<_>| {
//!     let n = seen.fetch_add(1, Ordering::SeqCst);
//!     let status = if n < 2 { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
//!     async move {
//!         Ok::<_, std::convert::Infallible>(
//!             Response::builder().status(status).body(Full::new(Bytes::new())).unwrap(),
//!         )
//!     }
//! });
//! let client = ServiceBuilder::new().layer(RetryLayer::new()).service(upstream);
//!
//! let res = client.oneshot(Request::get("http://api.test/items").body(Full::new(Bytes::new())).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! assert_eq!(calls.load(Ordering::SeqCst), 3);
//! let info = res.extensions().get::<fender::retry::RetryInfo>().unwrap();
//! assert_eq!(info.attempts(), 3);
//! # }
//! ```
//!
//! # Example: customised
//!
//! ```
//! use fender::classify::{Class, Classify, ContractClassifier, Outcome};
//! use fender::retry::{Jitter, RetryBudget, RetryLayer};
//! use http::StatusCode;
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! // One budget for the clients of two upstreams: 10% of traffic, at least 1 retry per second.
//! let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 1, 0.1));
//! let layer = RetryLayer::new()
//!     .max_attempts(5)
//!     .base_delay(Duration::from_millis(100))
//!     .max_delay(Duration::from_secs(5))
//!     .jitter(Jitter::Decorrelated)
//!     .retry_after_cap(Duration::from_secs(10))
//!     .budget(budget.clone())
//!     .attempt_timeout(Duration::from_secs(2))
//!     .deadline(Duration::from_secs(15))
//!     // This upstream answers 409 while it replicates: transient for us.
//!     .classifier(|outcome: Outcome<'_>| match outcome {
//!         Outcome::Response { status: StatusCode::CONFLICT, .. } => Class::ServerError,
//!         other => ContractClassifier.classify(other),
//!     })
//!     .on_retry(|attempt, delay, reason| {
//!         println!("attempt {attempt} in {delay:?} after {reason}");
//!     });
//! # let _ = layer;
//! # }
//! ```
//!
//! # Clone
//!
//! A [`Retry`] service is cheap to clone; clones share the layer's settings and its
//! [`RetryBudget`] (an `Arc`), so retries of all clones, across tasks, draw on one budget.
//! Services made by the same layer share it too.
//!
//! # Composing with the other layers
//!
//! Put the retry layer **outside** the circuit breaker, so each attempt passes the breaker and
//! an open circuit's fast-fail (never retried) ends the retries at once; put a per-attempt
//! timeout **innermost** (or use [`RetryLayer::attempt_timeout`]), so a slow attempt fails and
//! is retried instead of eating the whole budget of time; and put envelope decoding
//! **outermost**, so the application sees one [`ApiError`](crate::ApiError) after the retries:
//!
//! ```text
//! ServiceBuilder::new()
//!     .layer(DecodeEnvelopeLayer::new())   // outermost: one typed error for the caller
//!     .layer(RetryLayer::new())            // retries each failed attempt
//!     .layer(CircuitBreakerLayer::new())   // counts every attempt, fails fast when open
//!     .layer(TimeoutLayer::new(..))        // innermost: bounds one attempt
//!     .service(http_client)
//! ```

mod attempt;
mod backoff;
mod body;
mod budget;
mod deadline;
pub mod future;
pub mod gate;
mod layer;
mod policy;
mod service;

pub use backoff::Jitter;
pub use body::ReplayBody;
pub use budget::RetryBudget;
pub use deadline::{Deadline, X_ATTEMPT_COUNT, X_REQUEST_TIMEOUT_MS};
pub use future::ResponseFuture;
pub use layer::RetryLayer;
pub use policy::{IDEMPOTENCY_KEY, OnRetry, RetryInfo, is_idempotent};
pub use service::Retry;
