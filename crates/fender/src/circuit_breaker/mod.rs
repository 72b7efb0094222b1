//! A circuit breaker: fail fast while the upstream is down, probe it with a few requests, and
//! let traffic back gradually (CONTRACT.md §4).
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
//!   a success resets the consecutive count. After 5 consecutive failures the circuit opens,
//!   unless failures were so frequent just before that a run of 5 is likely by chance: see
//!   [the trip under noise](#the-trip-under-noise). The closed path is a few atomic loads and
//!   uncontended adds: no lock, no allocation, no boxing.
//! - **Open**: for 30 s every call fails fast with [`CircuitOpen`], which says how long until
//!   the next probe; the inner service is neither polled nor called.
//! - **HalfOpen**: the first call after the open duration is a probe; at most 3 probes are in
//!   flight at a time and the rest fail fast. A probe whose future is dropped frees its slot. The
//!   round ends as soon as it is decided: 3 successful probes close the circuit, 3 failed
//!   probes in a row re-open it (optionally for longer each time:
//!   [`max_open_duration`](CircuitBreakerLayer::max_open_duration)). An upstream that is down
//!   fails the 3 probes in flight together, the same load as "one failure re-opens"; one that
//!   still serves 60% of its calls is let back four times in five instead of one in five.
//!   [`reopen_after(1)`](CircuitBreakerLayer::reopen_after) restores the classic rule.
//! - **Recovering**: closed, but the admitted share of calls grows linearly from 10% to 100%
//!   over 10 s; the others fail fast with [`CircuitOpen`] of reason [`Reason::Ramp`]. Failures
//!   count as when closed. [`no_ramp`](CircuitBreakerLayer::no_ramp) turns it off.
//!
//! Time comes from `tokio::time`, so a paused clock drives every transition. Transitions that
//! time makes due happen on the next call.
//!
//! # The trip under noise
//!
//! An upstream that fails 10% of its calls at random is not down, but at 250 calls a second it
//! fails five calls in a row about twice a minute, and a plain count of 5 would cut it off
//! again and again. Two rules keep the contract's trip for outages and drop it for noise:
//!
//! - **Calls in flight together are one piece of evidence.** A failure counts only if no
//!   other failure counted since its call was sent, so a herd of simultaneous failures (one
//!   stalled connection pool, one bad deploy seen by 1,000 requests at once) counts once.
//! - **A run must be improbable by chance.** Opening takes a run of `n ≥ 5` pieces such that
//!   the expected number of runs that long over the next minute, `r · 60 s · pⁿ`, is below 1%,
//!   where `p` and `r` are the failure and call rates seen in the ~10 s before the run began
//!   (from snapshots of the breaker's own counters, taken by failures: the closed path pays
//!   nothing for them). No failures before the run means `p = 0` and a run of 5.
//!
//! What that asks for, at 250 calls a second: 5 failures in a row when nothing failed before,
//! 7 at `p = 0.1`, 21 at `p = 0.5`, more than 100 at `p = 0.9` (a sick upstream is shed by the
//! retry budget and the server's own limits, not cut off). A fresh breaker, or one at modest
//! traffic (one call a second, even with 10% failures), opens on the 5th consecutive failure.
//! Measured on a paused clock (`tests/circuit_breaker/noise.rs`): 250 calls a second, each
//! taking 20 ms and failing with `p = 0.1` for 60 s, never opened it in 100 seeds (the longest
//! chance run was 2 pieces of the 7 required); at `p = 0.5` it never opened within 60 s; a
//! real outage (every call failing) right after the minute of noise opened it within 140 ms
//! (the slowest of 10 seeds).
//! [`strict_consecutive`](CircuitBreakerLayer::strict_consecutive) keeps the first rule and
//! drops the second. The [`failure_rate`](CircuitBreakerLayer::failure_rate) mode is
//! unchanged.
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
//! The builder methods only change the configuration: they work in any order, before or after
//! `per_host()`, and the breaker is made once, from the final configuration, by the first
//! `layer()`. A handle taken at any point sees the breaker the services use.
//!
//! # Clone
//!
//! Every service a layer makes, and every clone of the layer or of those services, shares one
//! breaker (or one map of breakers per key) through an `Arc`: a failure seen by one clone counts
//! for all. A [`CircuitBreakerHandle`] (or [`KeyedHandle`]) from the layer or the service reads
//! the state and the counters, forces the circuit open or closed, and resets it.
//!
//! # Per key
//!
//! [`per_host`](CircuitBreakerLayer::per_host) keeps one breaker per upstream host, keyed by
//! [`HostKey`] (scheme, lowercased host and port: never credentials, path or query, so keys are
//! safe to log), and [`key_fn`](CircuitBreakerLayer::key_fn) one per key of your choosing, so
//! one bad host does not cut off the others. At most
//! [`max_keys`](CircuitBreakerLayer::max_keys) breakers (1,024 by default) are kept; a new key
//! at the limit evicts the least recently used key with a closed circuit, so the open circuits
//! of bad hosts are kept longest. Finding a key's breaker takes a short lock on the map, for
//! O(1) work (amortized) whatever the number of keys, and allocates the key of a new host; the
//! single-breaker path takes no lock.
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
//!
//! # Design notes
//!
//! What 0.1 got right, and keeps:
//!
//! - **The readiness rules** (see [`CircuitBreaker`]): an open circuit fails in `call` with an
//!   already-ready error future, never in `poll_ready`; a call that will be refused never polls
//!   the inner service; probe slots are taken in `call`, so services held ready do not sit on
//!   them.
//! - **The epoch-tagged state word**: every transition is one compare-and-swap of
//!   `[kind: 3 bits][epoch: 61 bits]`, so exactly one caller wins it and an outcome of an older
//!   round cannot move the current one. 0.1 had a 21-bit epoch that a probe held across 2^21
//!   resets could alias; 61 bits do not wrap. What a round counts (probes in flight and
//!   successes, the failure run) sits in words tagged with the round's epoch, which the next
//!   round reads as zeros.
//! - **Tower-shaped futures**: [`future::ResponseFuture`] is a pinned enum like tower's
//!   `load_shed` future. Each admitted call holds a permit that records its outcome or, when
//!   the future is dropped or the inner `call` panics, gives its probe slot back.
//! - **Set-site panics that name the method** (`CircuitBreakerLayer::open_duration: ...`);
//!   settings that contradict each other only in combination are checked when the layer makes
//!   its breaker, so the order of the setters never matters.
//! - **The model-based tests**: proptest drives random calls, cancellations and clock moves
//!   against a reference model. They now build their breakers with `strict_consecutive()`
//!   (the reference counts plain runs; the noise rule has its own tests), and the model of
//!   overlapping calls groups failures of calls in flight together, as the breaker does.
//!
//! New: user callbacks run only once a transition is complete, and their panics are caught
//! and logged at ERROR; eviction is O(1); per-host keys carry no credentials.

pub(crate) mod breaker;
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
pub(crate) mod policy;
pub(crate) mod ramp;
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
