//! The overhead of the retry layer and the breaker in the minimal shape, against the peers:
//! a `GET /` with no headers and a 4-byte static body; an inner `service_fn` that answers 200
//! at once without reading the body; one long-lived handle driven with `ready().await` then
//! `call().await`; a current-thread runtime per thread.
//!
//! - `retry`: `bare`, `fender` (`RetryLayer::new()`), `tower` (`tower::retry` with a
//!   `TpsBudget`, see `peers::Attempts`), `tower, x-attempt-count` (the same with the
//!   contract's header set on each attempt by tower-http), `tower-resilience` (its
//!   `RetryLayer`), and `x-attempt-count only`: no retry, only that header set by tower-http,
//!   the floor the contract sets for any retry in this shape;
//! - `breaker`: `bare`, `fender` (`CircuitBreakerLayer::new()`), `failsafe`, `recloser`,
//!   `tower-resilience`;
//! - `retry body`: the same shape with a body of every size from empty to the replay cap
//!   (64 KiB), `bare`, `fender`, `tower` and `tower, x-attempt-count`.
//!
//! - `client`: `bare` and `fender` (the composed `ClientLayer::new()`), in the same shape; and
//!   `fender, absolute URI`, the same request sent to `http://127.0.0.1/`, as a client sends
//!   it, so that the stack keys a host; and `contract headers only`: no fender layer, only the
//!   two headers the contract puts on every request (`x-request-id` with a UUID v7 and the
//!   `RequestId` extension, `x-attempt-count`) set by tower-http, the floor of any client stack
//!   that keeps the contract.
//!
//! Every contender runs on one thread, and on two threads at once that call clones of one
//! service (so one shared budget or breaker), each thread with its own current-thread runtime;
//! the two-thread figure is the slower thread's time per call.

mod peers;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fender::ClientLayer;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::retry::RetryLayer;
use fender_benches::runtime;
use http::Request;
use http_body_util::Full;
use peers::{
    answer, calls, contract_headers, ping, ping_with, run_two, stamped, tower_resilience_retry,
    tower_retry, tower_retry_stamped, with_failsafe, with_recloser, with_tower_resilience_breaker,
};
use tower::Layer;

macro_rules! contenders {
    ($group:ident, $rt:ident, $($name:literal => $make:expr),* $(,)?) => {
        $(
            $group.bench_function(concat!($name, "/1 thread"), |b| {
                b.to_async(&$rt).iter_custom(|n| calls($make, n, ping))
            });
        )*
        $(
            $group.bench_function(concat!($name, "/2 threads"), |b| {
                b.iter_custom(|n| run_two($make, n, ping))
            });
        )*
    };
}

fn retry(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("retry");
    contenders!(group, rt,
        "bare" => answer(),
        "fender" => RetryLayer::new().layer(answer()),
        "tower" => tower_retry(answer()),
        "tower, x-attempt-count" => tower_retry_stamped(answer()),
        "tower-resilience" => tower_resilience_retry().layer(answer()),
        "x-attempt-count only" => stamped(answer()),
    );
    group.finish();
}

fn breaker(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("breaker");
    contenders!(group, rt,
        "bare" => answer(),
        "fender" => CircuitBreakerLayer::new().layer(answer()),
        "failsafe" => with_failsafe(answer()),
        "recloser" => with_recloser(answer()),
        "tower-resilience" => with_tower_resilience_breaker(answer()),
    );
    group.finish();
}

fn retry_body(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("retry body");
    for (name, size) in [
        ("empty", 0usize),
        ("4 B", 4),
        ("1 KiB", 1024),
        ("16 KiB", 16 * 1024),
        ("64 KiB", 64 * 1024),
    ] {
        let body = Bytes::from(vec![7u8; size]);
        let make = || ping_with(body.clone());
        group.bench_function(BenchmarkId::new("bare", name), |b| {
            b.to_async(&rt).iter_custom(|n| calls(answer(), n, make))
        });
        group.bench_function(BenchmarkId::new("fender", name), |b| {
            b.to_async(&rt)
                .iter_custom(|n| calls(RetryLayer::new().layer(answer()), n, make))
        });
        group.bench_function(BenchmarkId::new("tower", name), |b| {
            b.to_async(&rt)
                .iter_custom(|n| calls(tower_retry(answer()), n, make))
        });
        group.bench_function(BenchmarkId::new("tower, x-attempt-count", name), |b| {
            b.to_async(&rt)
                .iter_custom(|n| calls(tower_retry_stamped(answer()), n, make))
        });
    }
    group.finish();
}

/// The shape's request sent to an absolute URI, as a client sends it.
fn ping_absolute() -> Request<Full<Bytes>> {
    let mut req = ping();
    *req.uri_mut() = http::Uri::from_static("http://127.0.0.1/");
    req
}

fn client(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("client");
    contenders!(group, rt,
        "bare" => answer(),
        "fender" => ClientLayer::new().layer(answer()),
        "contract headers only" => contract_headers(answer()),
    );
    group.bench_function("fender, absolute URI/1 thread", |b| {
        b.to_async(&rt)
            .iter_custom(|n| calls(ClientLayer::new().layer(answer()), n, ping_absolute))
    });
    group.bench_function("fender, absolute URI/2 threads", |b| {
        b.iter_custom(|n| run_two(ClientLayer::new().layer(answer()), n, ping_absolute))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = fender_benches::criterion_config();
    targets = retry, breaker, retry_body, client
}
criterion_main!(benches);
