//! The happy path (no retry needed) through `RetryLayer`, against the bare handler, `tower::retry`
//! and tower-resilience's retry.
//!
//! Each group sends one GET with an empty, 1 KiB or 64 KiB body to the bare handler of
//! `fender_benches::handler` (reads the body, answers 200 with a small JSON body):
//!
//! - `bare` calls the handler directly;
//! - `fender` goes through `RetryLayer::new()` (3 attempts, budget on, body kept for replay);
//! - `tower` goes through `tower::retry::Retry` configured the same way: 3 attempts on 5xx, its
//!   standard `ExponentialBackoff` (1 s to 30 s, full jitter) and a `TpsBudget` of 20% of the last
//!   10 s plus 10 retries a second, the request cloned for a retry (`Full<Bytes>` is `Clone`);
//! - `tower-resilience` goes through its `RetryLayer`: 3 attempts, exponential backoff from 1 s,
//!   5xx responses retried, a token-bucket budget of 10 retries a second (100 at most).
//!
//! `retry_happy_path_socket` runs `bare`, `fender` and `tower` with an empty body through a
//! hyper client to the testkit server on 127.0.0.1, where the cost of the layer meets the cost of
//! a real call.

use std::hint::black_box;

mod peers;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fender::retry::{ReplayBody, RetryLayer};
use fender_benches::{handler, request, runtime};
use fender_testkit::{Plan, Reply, Upstream};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use peers::{Attempts, tower_resilience_retry};
use tower::{Layer, Service, ServiceExt};

/// One request through a clone of `svc`, as a caller holding a shared client does.
async fn send<S, B>(svc: &S, body: &Bytes)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(request(body)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    black_box(res);
}

fn happy_path(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("retry_happy_path");
    for (name, size) in [("empty", 0usize), ("1KiB", 1024), ("64KiB", 64 * 1024)] {
        let body = Bytes::from(vec![7u8; size]);

        let bare = tower::service_fn(handler::<Full<Bytes>>);
        group.bench_with_input(BenchmarkId::new("bare", name), &body, |b, body| {
            b.to_async(&rt).iter(|| send(&bare, body))
        });

        let fender = RetryLayer::new().layer(tower::service_fn(handler));
        group.bench_with_input(BenchmarkId::new("fender", name), &body, |b, body| {
            b.to_async(&rt).iter(|| send(&fender, body))
        });

        let tower_retry = tower::retry::RetryLayer::new(Attempts::new())
            .layer(tower::service_fn(handler::<Full<Bytes>>));
        group.bench_with_input(BenchmarkId::new("tower", name), &body, |b, body| {
            b.to_async(&rt).iter(|| send(&tower_retry, body))
        });

        let resilience = tower_resilience_retry().layer(tower::service_fn(handler::<Full<Bytes>>));
        group.bench_with_input(
            BenchmarkId::new("tower-resilience", name),
            &body,
            |b, body| b.to_async(&rt).iter(|| send(&resilience, body)),
        );
    }
    group.finish();
}

/// The same over a loopback socket: a hyper client and the testkit server.
fn happy_path_socket(c: &mut Criterion) {
    let rt = runtime();
    let server = rt.block_on(
        Upstream::new(Plan::always(Reply::ok()))
            .record_limit(0)
            .serve(),
    );
    let uri = server.url("/items");
    let mut group = c.benchmark_group("retry_happy_path_socket");

    async fn send<S, B>(svc: S, uri: &Uri)
    where
        S: Service<Request<Full<Bytes>>, Response = Response<B>>,
        S::Error: std::fmt::Debug,
        B: Body,
        B::Error: std::fmt::Debug,
    {
        let req = Request::get(uri.clone())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let res = svc.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        black_box(res.into_body().collect().await.unwrap());
    }

    let bare: Client<HttpConnector, Full<Bytes>> =
        Client::builder(TokioExecutor::new()).build_http();
    group.bench_function("bare", |b| {
        b.to_async(&rt).iter(|| send(bare.clone(), &uri))
    });

    let fender = RetryLayer::new()
        .layer(Client::builder(TokioExecutor::new()).build_http::<ReplayBody<Full<Bytes>>>());
    group.bench_function("fender", |b| {
        b.to_async(&rt).iter(|| send(fender.clone(), &uri))
    });

    let tower_retry = tower::retry::RetryLayer::new(Attempts::new())
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    group.bench_function("tower", |b| {
        b.to_async(&rt).iter(|| send(tower_retry.clone(), &uri))
    });
    group.finish();
    drop(server);
}

criterion_group! {
    name = benches;
    config = fender_benches::criterion_config();
    targets = happy_path, happy_path_socket
}
criterion_main!(benches);
