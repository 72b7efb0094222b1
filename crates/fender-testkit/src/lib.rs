//! Scripted, fault-injecting HTTP upstreams for testing resilient clients.
//!
//! `fender-testkit` is to fender what `tower-test` is to tower: it stands up a flaky upstream in a
//! line or two, on a socket or in process, and reads back what that upstream received. Use it to
//! prove that a client stack (retries, circuit breakers, timeouts, error decoding) survives a bad
//! upstream.
//!
//! - A [`Reply`] says what happens to one request: a status with headers and a body (a JSON error
//!   envelope or anything else), a delay first, `Retry-After` in seconds or as an HTTP-date, or a
//!   fault: [`hang`](Reply::hang), [`reset`](Reply::reset),
//!   [`close_mid_body`](Reply::close_mid_body), [`drip`](Reply::drip).
//! - A [`Plan`] says which reply the n-th request gets: [`always`](Plan::always), a
//!   [`sequence`](Plan::sequence), a seeded [`random`](Plan::random) mix,
//!   [`phases`](Plan::phases) over time, or a closure ([`from_fn`](Plan::from_fn)).
//! - An [`Upstream`] runs a plan and records every request ([`Received`]: method, URI, headers,
//!   full body, time, reply). It has two faces on the same plan and record:
//!   [`Upstream::service`], an in-process `tower::Service` without sockets, and
//!   [`Upstream::serve`], a [`TestServer`] on `127.0.0.1`.
//! - A [`FaultLayer`] injects seeded aborts, errors and delays into your own services.
//! - [`refused_addr`] is a loopback address where connections are refused.
//!
//! # In process
//!
//! ```
//! use fender_testkit::{Plan, Reply, Upstream};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let upstream = Upstream::new(Plan::sequence([Reply::status(503), Reply::reset(), Reply::ok()]));
//! let request = || http::Request::get("/users/1").body(String::new()).unwrap();
//!
//! let first = upstream.service().oneshot(request()).await.unwrap();
//! assert_eq!(first.status(), 503);
//! let second = upstream.service().oneshot(request()).await;
//! assert!(second.is_err()); // an io::Error of kind ConnectionReset
//! let third = upstream.service().oneshot(request()).await.unwrap();
//! assert_eq!(third.status(), 200);
//!
//! let replies: Vec<String> = upstream.received().into_iter().map(|r| r.reply).collect();
//! assert_eq!(replies, ["503", "reset", "200"]);
//! # }
//! ```
//!
//! # On a socket
//!
//! ```
//! use fender_testkit::{Reply, Upstream};
//! use http_body_util::Full;
//! use hyper_util::client::legacy::Client;
//! use hyper_util::rt::TokioExecutor;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let server = Upstream::new(Reply::reset()).serve().await;
//! let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
//!
//! let request = http::Request::post(server.url("/orders"))
//!     .body(Full::from("{\"qty\":1}"))
//!     .unwrap();
//! let err = client.request(request).await.unwrap_err(); // the TCP connection was reset
//! # let _ = err;
//!
//! let received = server.received();
//! assert_eq!(received.len(), 1);
//! assert_eq!(received[0].method, http::Method::POST);
//! assert_eq!(received[0].body, "{\"qty\":1}");
//! # }
//! ```
//!
//! # In front of your own service
//!
//! ```
//! use std::time::Duration;
//! use fender_testkit::FaultLayer;
//! use http::{Request, Response, StatusCode};
//! use tower::{ServiceBuilder, ServiceExt, service_fn};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() {
//! let svc = ServiceBuilder::new()
//!     .layer(FaultLayer::new(7).abort(0.5, StatusCode::SERVICE_UNAVAILABLE))
//!     .service(service_fn(|_req: Request<String>| async {
//!         Ok::<_, std::convert::Infallible>(Response::new(String::from("fine")))
//!     }));
//!
//! let mut aborted = 0;
//! for _ in 0..1000 {
//!     let response = svc.clone().oneshot(Request::new(String::new())).await.unwrap();
//!     if response.status() == StatusCode::SERVICE_UNAVAILABLE {
//!         aborted += 1;
//!     }
//! }
//! assert!((400..600).contains(&aborted));
//! # }
//! ```
//!
//! # Time
//!
//! Delays, dripping bodies and phases run on `tokio::time`, so tests with a paused clock
//! (`#[tokio::test(start_paused = true)]`, `tokio::time::advance`) drive them exactly. Beware
//! that a paused clock jumps to the next timer whenever the runtime is idle, including while it
//! waits for a socket: on a [`TestServer`] keep to timers that may fire.
//!
//! # Bounds
//!
//! Everything binds to `127.0.0.1` only. Every task a [`TestServer`] starts is gone shortly
//! after it is dropped: in-flight requests get a one-second grace period, hanging ones none.

mod body;
mod fault;
mod plan;
mod reply;
mod server;
mod upstream;

pub use body::TestBody;
pub use fault::{Fault, FaultFuture, FaultLayer, InjectedError};
pub use plan::{PhasedPlan, Plan, RandomPlan};
pub use reply::{IntoStatusCode, Reply};
pub use server::{ResetConnection, ServiceServer, TestServer, refused_addr, serve_service};
pub use upstream::{Received, ResponseFuture, Upstream, UpstreamService};

/// The error type of the services in this crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
