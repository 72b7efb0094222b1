//! The happy path (no retry) through `RetryLayer`, against a bare service and `tower::retry`.
//!
//! Each group sends one request with an empty, 1 KiB or 64 KiB body to an in-process service
//! that reads the body and answers 200. `bare` calls the service directly; `fender` goes through
//! `RetryLayer::new()` (budget on, body replay on); `tower` goes through `tower::retry::Retry`
//! with a comparable policy (3 attempts, a `TpsBudget`, the request cloned for a retry).
//!
//! `retry_happy_path_socket` runs the same three with an empty body through a hyper client to
//! the testkit server on 127.0.0.1, where the cost of the layer meets the cost of a real call.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use fender::retry::{ReplayBody, RetryLayer};
use fender_testkit::{Plan, Reply, Upstream};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::body::Body;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::retry::budget::{Budget, TpsBudget};
use tower::{Layer, Service, ServiceExt};

async fn upstream<B: Body>(req: Request<B>) -> Result<Response<Full<Bytes>>, Infallible> {
    let body = req.into_body().collect().await.ok().map(|c| c.to_bytes());
    black_box(body);
    Ok(Response::new(Full::new(Bytes::new())))
}

/// A `tower::retry` policy close to the contract: 3 attempts on 5xx, a retry budget.
#[derive(Clone)]
struct Attempts {
    left: usize,
    budget: Arc<TpsBudget>,
}

impl<B: Clone, RB, E> tower::retry::Policy<Request<B>, Response<RB>, E> for Attempts {
    type Future = Ready<()>;

    fn retry(
        &mut self,
        _req: &mut Request<B>,
        result: &mut Result<Response<RB>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(res) if !res.status().is_server_error() => {
                self.budget.deposit();
                None
            }
            _ if self.left > 0 && self.budget.withdraw() => {
                self.left -= 1;
                Some(ready(()))
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        let mut clone = Request::new(req.body().clone());
        *clone.method_mut() = req.method().clone();
        *clone.uri_mut() = req.uri().clone();
        *clone.version_mut() = req.version();
        *clone.headers_mut() = req.headers().clone();
        Some(clone)
    }
}

fn request(body: &Bytes) -> Request<Full<Bytes>> {
    Request::get("http://upstream.test/items")
        .body(Full::new(body.clone()))
        .unwrap()
}

fn happy_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("retry_happy_path");
    for (name, size) in [("empty", 0usize), ("1KiB", 1024), ("64KiB", 64 * 1024)] {
        let body = Bytes::from(vec![7u8; size]);

        let bare = tower::service_fn(upstream::<Full<Bytes>>);
        group.bench_with_input(BenchmarkId::new("bare", name), &body, |b, body| {
            b.to_async(&rt).iter(|| {
                let svc = bare;
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                }
            })
        });

        let fender = RetryLayer::new().layer(tower::service_fn(upstream));
        group.bench_with_input(BenchmarkId::new("fender", name), &body, |b, body| {
            b.to_async(&rt).iter(|| {
                let svc = fender.clone();
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                }
            })
        });

        let policy = Attempts {
            left: 2,
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        };
        let tower_retry =
            tower::retry::RetryLayer::new(policy).layer(tower::service_fn(upstream::<Full<Bytes>>));
        group.bench_with_input(BenchmarkId::new("tower", name), &body, |b, body| {
            b.to_async(&rt).iter(|| {
                let svc = tower_retry.clone();
                async move {
                    let res = svc.oneshot(request(body)).await.unwrap();
                    assert_eq!(res.status(), StatusCode::OK);
                }
            })
        });
    }
    group.finish();
}

/// The same three over a loopback socket: a hyper client and the testkit server.
fn happy_path_socket(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
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

    let policy = Attempts {
        left: 2,
        budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
    };
    let tower_retry = tower::retry::RetryLayer::new(policy)
        .layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    group.bench_function("tower", |b| {
        b.to_async(&rt).iter(|| send(tower_retry.clone(), &uri))
    });
    group.finish();
    drop(server);
}

criterion_group!(benches, happy_path, happy_path_socket);
criterion_main!(benches);
