//! The closed path of the circuit breaker against a bare service: one thread, and two threads
//! sharing one breaker.

use std::convert::Infallible;
use std::hint::black_box;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use fender::circuit_breaker::CircuitBreakerLayer;
use http::{Request, Response};
use tower::{Layer, Service, ServiceExt, service_fn};

fn bare() -> impl Service<
    Request<()>,
    Response = Response<()>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<()>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<()>| async { Ok::<_, Infallible>(Response::new(())) })
}

/// `iters` calls through `svc`, timed.
async fn calls<S>(mut svc: S, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    let start = Instant::now();
    for _ in 0..iters {
        let res = svc.ready().await.unwrap().call(Request::new(())).await;
        black_box(res.unwrap());
    }
    start.elapsed()
}

fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
}

/// `iters` calls through `svc` on a current-thread runtime of its own.
fn run<S>(svc: S, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>>,
    S::Error: std::fmt::Debug,
{
    current_thread().block_on(calls(svc, iters))
}

/// `iters` calls on each of two threads at once, through clones of `svc`; the slower thread's
/// time.
fn run_two<S>(svc: S, iters: u64) -> Duration
where
    S: Service<Request<()>, Response = Response<()>> + Clone + Send,
    S::Error: std::fmt::Debug,
{
    let barrier = Barrier::new(2);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (svc, barrier) = (svc.clone(), &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    run(svc, iters)
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

fn closed_path(c: &mut Criterion) {
    let mut group = c.benchmark_group("circuit_breaker/closed");
    let rt = current_thread();
    group.bench_function("bare/1 thread", |b| {
        b.to_async(&rt).iter_custom(|n| calls(bare(), n))
    });
    group.bench_function("breaker/1 thread", |b| {
        b.to_async(&rt)
            .iter_custom(|n| calls(CircuitBreakerLayer::new().layer(bare()), n))
    });
    group.bench_function("bare/2 threads", |b| b.iter_custom(|n| run_two(bare(), n)));
    group.bench_function("breaker/2 threads", |b| {
        b.iter_custom(|n| run_two(CircuitBreakerLayer::new().layer(bare()), n))
    });
    group.finish();
}

criterion_group!(benches, closed_path);
criterion_main!(benches);
