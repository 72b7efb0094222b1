//! A circuit breaker: fail fast while the upstream is down, probe it with a few requests, and
//! let traffic back gradually (SPEC §4).
//!
//! # States
//!
//! ```text
//!              5 consecutive failures (or the failure rate)
//!  +--------+ --------------------------------------------> +------+
//!  | Closed |                                               | Open | <-----------+
//!  +--------+                        +--------------------> +------+             |
//!      ^                             | failures trip it        |                 |
//!      | ramp over                   | as when closed          | 30 s later,     | a probe
//!      | (10 s)                      |                         | the next call   | fails
//!      |                             |                         v is a probe      |
//!  +------------+                    |                    +----------+           |
//!  | Recovering | -------------------+                    | HalfOpen | ----------+
//!  +------------+ <------------ 3 probes succeed -------- +----------+
//!
//!  From any state, through the handle: force_open -> ForcedOpen,
//!  force_closed -> Disabled, reset -> Closed.
//! ```
//!
//! - **Closed**: calls go through. A failure, as the shared [classifier](crate::classify) sees
//!   it (500, 502, 503, 504, a timeout, a transport error; never a 4xx, 429 included), counts;
//!   a success resets the consecutive count. After 5 consecutive failures the circuit opens.
//!   The closed path is a few atomic loads and uncontended adds: no lock, no allocation, no
//!   boxing.
//! - **Open**: for 30 s every call fails fast with [`CircuitOpen`], which says how long until
//!   the next probe; the inner service is neither polled nor called.
//! - **HalfOpen**: the first call after the open duration is a probe; at most 3 probes are in
//!   flight at a time and the rest fail fast. A probe whose future is dropped frees its slot. One
//!   failed probe re-opens the circuit (optionally for longer each time:
//!   [`max_open_duration`](CircuitBreakerLayer::max_open_duration)); 3 successful probes close
//!   it.
//! - **Recovering**: closed, but the admitted share of calls grows linearly from 10% to 100%
//!   over 10 s; the others fail fast with [`CircuitOpen`] of reason [`Reason::Ramp`]. Failures
//!   count as when closed. [`no_ramp`](CircuitBreakerLayer::no_ramp) turns it off.
//!
//! Time comes from `tokio::time`, so a paused clock drives every transition. Transitions that
//! time makes due happen on the next call.
//!
//! # Example
//!
//! The contract's breaker:
//!
//! ```
//! use fender::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, State};
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), fender::BoxError> {
//! let layer = CircuitBreakerLayer::new();
//! let handle = layer.handle();
//! let upstream = service_fn(|_req: Request<String>| async {
//!     let mut res = Response::new(String::new());
//!     *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
//!     Ok::<_, std::convert::Infallible>(res)
//! });
//! let client = ServiceBuilder::new().layer(layer).service(upstream);
//!
//! for _ in 0..5 {
//!     let res = client.clone().oneshot(Request::new(String::new())).await?;
//!     assert_eq!(res.status(), 503);
//! }
//! assert_eq!(handle.state(), State::Open);
//! let err = client.oneshot(Request::new(String::new())).await.unwrap_err();
//! let open = err.downcast_ref::<CircuitOpen>().expect("fails fast");
//! assert!(open.retry_after().as_secs() <= 30);
//! # Ok(())
//! # }
//! ```
//!
//! A customised one: trip on a 50% failure rate over the last 100 calls (once 20 are in),
//! count calls slower than 2 s as failures, stay open 10 s doubling up to 2 min while probes
//! fail, probe one call at a time and close after two good ones, ramp up over 30 s, keep one
//! breaker per upstream host (at most 256 hosts), and report each state change:
//!
//! ```
//! use std::time::Duration;
//! use fender::circuit_breaker::{CircuitBreakerLayer, FailureRate};
//!
//! let layer = CircuitBreakerLayer::new()
//!     .failure_rate(FailureRate::count(100).threshold(0.5).min_calls(20))
//!     .slow_call_threshold(Duration::from_secs(2))
//!     .open_duration(Duration::from_secs(10))
//!     .max_open_duration(Duration::from_secs(120))
//!     .half_open_probes(1)
//!     .close_after(2)
//!     .ramp(Duration::from_secs(30))
//!     .on_state_change(|change| {
//!         println!("{:?}: {} -> {}", change.key, change.from, change.to);
//!     })
//!     .per_host()
//!     .max_keys(256);
//! let handle = layer.handle();
//! assert!(handle.is_empty());
//! ```
//!
//! # Clone
//!
//! Every service a layer makes, and every clone of those, shares one breaker (or one map of
//! breakers per key) through an `Arc`: a failure seen by one clone counts for all. A
//! [`CircuitBreakerHandle`] (or [`KeyedHandle`]) from the layer or the service reads the state
//! and the counters, forces the circuit open or closed, and resets it.
//!
//! # Per key
//!
//! [`per_host`](CircuitBreakerLayer::per_host) keeps one breaker per URI authority, and
//! [`key_fn`](CircuitBreakerLayer::key_fn) one per key of your choosing, so one bad host does not
//! cut off the others. At most [`max_keys`](CircuitBreakerLayer::max_keys) breakers (1,024 by
//! default) are kept; a new key at the limit evicts the least recently used key with a closed
//! circuit. Finding a key's breaker takes a short lock on the map (and allocates the key of a
//! new host); the single-breaker path takes no lock.
//!
//! # Composition
//!
//! - Put the retry layer **outside** the breaker: each attempt then passes the breaker, and
//!   [`CircuitOpen`] classifies as [`Class::Rejected`](crate::classify::Class::Rejected), which
//!   the retry layer never retries (waiting for the circuit is better than hammering it).
//! - Put a per-attempt timeout **inside** the breaker, so a timed-out attempt counts as a
//!   failure: `retry → circuit breaker → timeout → client`.
//! - On a server (or a gateway), the envelope layer turns [`CircuitOpen`] into 503
//!   `SERVICE_UNAVAILABLE` with `Retry-After` rounded up to whole seconds (see
//!   [`ApiError::from_error`](crate::ApiError::from_error)).

mod breaker;
mod chance;
mod counters;
mod error;
mod handle;
mod host_key;
mod keyed;
mod keyed_map;
mod layer;
mod local_ref;
mod machine;
mod outcome;
mod policy;
mod ramp;
mod service;
mod state;
mod state_word;
mod sync;
mod window;

#[cfg(all(test, loom))]
mod loom_model;

pub mod future;

#[allow(unused_imports)] // the API other stacks build on; see `breaker.rs`
pub(crate) use breaker::{Breaker, BreakerSet, Permit, Prepared};
pub use counters::Counters;
pub use error::{CircuitOpen, Reason};
pub use handle::{CircuitBreakerHandle, KeyedHandle};
pub use host_key::HostKey;
pub use keyed::{KeyFn, Keyed, PerHost, Single};
pub use layer::CircuitBreakerLayer;
pub use policy::FailureRate;
pub use service::CircuitBreaker;
pub use state::{State, StateChange};
