//! The whole client stack and the whole server stack, in process, against the bare handler.
//!
//! - `client`: `DecodeEnvelopeLayer` → `RetryLayer` → `CircuitBreakerLayer` → a 5 s timeout →
//!   the bare handler of `fender_benches::handler` (reads the body, answers 200 with a small JSON
//!   body), all with their defaults, as the README builds it; one GET with an empty body;
//! - `ClientLayer`: the composed client stack, `ClientLayer::new()`, around the same handler;
//! - `server`: `ErrorEnvelopeLayer` → a 2 s timeout → the bare handler; one GET without an
//!   `x-request-id`.
//!
//! The client stack is also built up one layer at a time (timeout, then the breaker, then
//! retry), to show what each layer adds. Each is measured with the bare handler in the same
//! group. The loopback benchmark
//! (`loopback`) measures the same stacks behind real sockets.

use std::hint::black_box;
use std::time::Duration;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fender::ClientLayer;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::retry::RetryLayer;
use fender_benches::{handler, request, runtime};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Service, ServiceBuilder, ServiceExt, service_fn};

async fn send<S, B>(svc: &S)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(request(&Bytes::new())).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    black_box(res);
}

fn stacks(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("stacks");
    let bare = service_fn(handler::<Full<Bytes>>);
    group.bench_function("bare", |b| b.to_async(&rt).iter(|| send(&bare)));

    let client = ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .layer(RetryLayer::new())
        .layer(CircuitBreakerLayer::new())
        .timeout(Duration::from_secs(5))
        .service(service_fn(handler));
    group.bench_function("client stack", |b| b.to_async(&rt).iter(|| send(&client)));

    let composed = ServiceBuilder::new()
        .layer(ClientLayer::new())
        .service(service_fn(handler));
    group.bench_function("ClientLayer", |b| b.to_async(&rt).iter(|| send(&composed)));

    // The client stack built up one layer at a time, innermost first, to see what each adds.
    let timeout = ServiceBuilder::new()
        .timeout(Duration::from_secs(5))
        .service(service_fn(handler::<Full<Bytes>>));
    group.bench_function("client, timeout only", |b| {
        b.to_async(&rt).iter(|| send(&timeout))
    });
    let breaker = ServiceBuilder::new()
        .layer(CircuitBreakerLayer::new())
        .timeout(Duration::from_secs(5))
        .service(service_fn(handler::<Full<Bytes>>));
    group.bench_function("client, breaker + timeout", |b| {
        b.to_async(&rt).iter(|| send(&breaker))
    });
    let retry = ServiceBuilder::new()
        .layer(RetryLayer::new())
        .layer(CircuitBreakerLayer::new())
        .timeout(Duration::from_secs(5))
        .service(service_fn(handler));
    group.bench_function("client, retry + breaker + timeout", |b| {
        b.to_async(&rt).iter(|| send(&retry))
    });

    let server = ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new())
        .timeout(Duration::from_secs(2))
        .service(service_fn(handler::<Full<Bytes>>));
    group.bench_function("server stack", |b| b.to_async(&rt).iter(|| send(&server)));
    group.finish();
}

criterion_group! {
    name = benches;
    config = fender_benches::criterion_config();
    targets = stacks
}
criterion_main!(benches);
