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
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Barrier;
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fender::circuit_breaker::CircuitBreakerLayer;
use fender_benches::{handler, request, runtime};
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::{Layer, Service, ServiceExt, service_fn};
use tower_resilience::circuitbreaker::CircuitBreakerLayer as TrCircuitBreakerLayer;

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

pin_project! {
    /// Turns a 5xx response into `Err`, for breakers that only count errors.
    struct StatusAsError<F> {
        #[pin]
        inner: F,
    }
}

/// A failed outcome as failsafe and recloser see it: a 5xx response or an error.
#[derive(Debug)]
#[allow(dead_code)] // read through `Debug` only
enum Failed<B, E> {
    Status(Response<B>),
    Error(E),
}

impl<F, B, E> Future for StatusAsError<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, Failed<B, E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().inner.poll(cx)) {
            Ok(res) if res.status().is_server_error() => Err(Failed::Status(res)),
            Ok(res) => Ok(res),
            Err(e) => Err(Failed::Error(e)),
        })
    }
}

/// A tower service behind failsafe's breaker.
struct Failsafe<S, P> {
    inner: S,
    breaker: failsafe::StateMachine<P, ()>,
}

impl<S: Clone, P> Clone for Failsafe<S, P> {
    fn clone(&self) -> Self {
        Failsafe {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
        }
    }
}

impl<S, P, Req, B> Service<Req> for Failsafe<S, P>
where
    S: Service<Req, Response = Response<B>>,
    P: failsafe::FailurePolicy + Send + Sync,
{
    type Response = Response<B>;
    type Error = failsafe::Error<Failed<B, S::Error>>;
    type Future = failsafe::futures::ResponseFuture<StatusAsError<S::Future>, P, (), failsafe::Any>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| failsafe::Error::Inner(Failed::Error(e)))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        use failsafe::futures::CircuitBreaker;
        self.breaker.call(StatusAsError {
            inner: self.inner.call(req),
        })
    }
}

/// A tower service behind recloser's breaker.
#[derive(Clone)]
struct Recloser<S> {
    inner: S,
    breaker: recloser::AsyncRecloser,
}

impl<S, Req, B> Service<Req> for Recloser<S>
where
    S: Service<Req, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = recloser::Error<Failed<B, S::Error>>;
    type Future = recloser::RecloserFuture<StatusAsError<S::Future>, recloser::AnyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| recloser::Error::Inner(Failed::Error(e)))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.breaker.call(StatusAsError {
            inner: self.inner.call(req),
        })
    }
}

/// `iters` calls through `svc`, timed.
async fn calls<S, Req, B>(mut svc: S, iters: u64, make: fn() -> Req) -> Duration
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        let res = svc.ready().await.unwrap().call(make()).await;
        black_box(res.unwrap());
    }
    start.elapsed()
}

/// `iters` calls on each of two threads at once, each on a current-thread runtime of its own,
/// through clones of `svc`; the slower thread's time.
fn run_two<S, Req, B>(svc: S, iters: u64, make: fn() -> Req) -> Duration
where
    S: Service<Req, Response = Response<B>> + Clone + Send,
    S::Error: Debug,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (svc, barrier) = (svc.clone(), &barrier);
                scope.spawn(move || {
                    let rt = runtime();
                    barrier.wait();
                    rt.block_on(calls(svc, iters, make))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .max()
            .unwrap()
    })
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

fn with_tower_resilience<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Req: Send + 'static,
    B: Send + 'static,
{
    TrCircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(Duration::from_secs(30))
        .classify_response(|res: &Response<B>| res.status().is_server_error())
        .build()
        .expect("a valid breaker")
        .layer(inner)
}

fn with_failsafe<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send,
    B: Debug,
{
    let policy = failsafe::failure_policy::consecutive_failures(
        5,
        failsafe::backoff::constant(Duration::from_secs(30)),
    );
    Failsafe {
        inner,
        breaker: failsafe::Config::new().failure_policy(policy).build(),
    }
}

fn with_recloser<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send,
    B: Debug,
{
    Recloser {
        inner,
        breaker: recloser::AsyncRecloser::from(recloser::Recloser::default()),
    }
}

fn closed_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("circuit_breaker/closed");

    macro_rules! benches {
        ($prefix:literal, $bare:expr, $request:expr) => {
            benches!(@each $prefix, $request,
                "bare" => $bare,
                "fender" => with_fender($bare),
                "tower-resilience" => with_tower_resilience($bare),
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
