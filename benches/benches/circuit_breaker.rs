//! The closed path of the circuit breaker: one thread, and two threads sharing one breaker;
//! against the bare handler, tower-resilience's breaker, failsafe and recloser.
//!
//! Each runs twice, on two bare services:
//!
//! - `trivial`: a `service_fn` on `Request<()>` that answers `Response<()>`: what a breaker
//!   costs in nanoseconds, with nothing else in the measurement;
//! - `handler`: the bare handler of `fender_benches::handler` (reads the body, answers 200 with a
//!   small JSON body), the reference of every overhead ratio.
//!
//! The breakers:
//!   - `fender`: `CircuitBreakerLayer::new()` (5 consecutive failures, 30 s open, ramp);
//!   - `tower-resilience`: its `CircuitBreakerLayer` with `consecutive_failures(5)` and 5xx
//!     classified as failures;
//!   - `failsafe`: a `StateMachine` with `consecutive_failures(5, constant(30 s))`;
//!   - `recloser`: an `AsyncRecloser` with its defaults (error rate 50% over 100 calls, 30 s).
//!
//!   failsafe and recloser wrap futures and count `Err` as failure; a small adapter turns a 5xx
//!   response into an `Err`, so each breaker sees the same outcomes.
//!
//! The two-thread benches run one current-thread runtime per thread, each calling its own clone
//! of the service, and report the slower thread's time per call.

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;

mod peers;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fender::circuit_breaker::CircuitBreakerLayer;
use fender_benches::{handler, request, runtime};
use http::{Request, Response};
use http_body_util::Full;
use peers::{calls, run_two, with_failsafe, with_recloser, with_tower_resilience_breaker};
use tower::{Layer, Service, service_fn};

type Res = Response<Full<Bytes>>;

fn trivial() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<()>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) })
}

fn bare() -> impl Service<
    Request<Full<Bytes>>,
    Response = Res,
    Error = Infallible,
    Future = impl Future<Output = Result<Res, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(handler::<Full<Bytes>>)
}

fn unit_request() -> Request<()> {
    Request::new(())
}

fn empty_request() -> Request<Full<Bytes>> {
    request(&Bytes::new())
}

fn with_fender<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send,
{
    CircuitBreakerLayer::new().layer(inner)
}

fn closed_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("circuit_breaker/closed");

    macro_rules! benches {
        ($prefix:literal, $bare:expr, $request:expr) => {
            benches!(@each $prefix, $request,
                "bare" => $bare,
                "fender" => with_fender($bare),
                "tower-resilience" => with_tower_resilience_breaker($bare),
                "failsafe" => with_failsafe($bare),
                "recloser" => with_recloser($bare),
            );
        };
        (@each $prefix:literal, $request:expr, $($name:literal => $make:expr),* $(,)?) => {
            $(
                group.bench_function(concat!($prefix, "/", $name, "/1 thread"), |b| {
                    b.to_async(&rt).iter_custom(|n| calls($make, n, $request))
                });
            )*
            $(
                group.bench_function(concat!($prefix, "/", $name, "/2 threads"), |b| {
                    b.iter_custom(|n| run_two($make, n, $request))
                });
            )*
        };
    }
    benches!("trivial", trivial(), unit_request);
    benches!("handler", bare(), empty_request);
    group.finish();
}

criterion_group! {
    name = benches;
    config = fender_benches::criterion_config();
    targets = closed_path
}
criterion_main!(benches);
