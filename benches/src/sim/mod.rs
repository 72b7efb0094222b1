//! A resilience simulation in virtual time: many clients, one scripted upstream, a scenario of
//! failures, and a client strategy (no retry, the contract's naive loop, `tower::retry`,
//! fender's retry layer alone or outside its circuit breaker).
//!
//! Every run uses a current-thread tokio runtime with a paused clock, so minutes of scenario
//! take a fraction of a second and a seed gives exactly the same numbers every time. The
//! upstream is `fender_testkit`'s in-process [`Upstream`](fender_testkit::Upstream); its record
//! (arrival times and replies) gives the load measures, the callers' outcomes give success and
//! latency.

mod report;
mod run;
mod scenario;
mod strategy;

pub use report::table;
pub use run::{Measures, Outcome, simulate};
pub use scenario::{Column, Failure, LATENCY, Scenario};
pub use strategy::{Client, NaiveRetry, RequestBody, Strategy, TowerPolicy, TowerRng};
