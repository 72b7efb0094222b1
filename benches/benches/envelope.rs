//! The envelope layers on their success and error paths, against the bare handler.
//!
//! Server side (`ErrorEnvelopeLayer::new()`):
//!
//! - `server/success`: the bare handler of `fender_benches::handler` (reads the body, answers
//!   200 with a small JSON body), bare and behind the layer; the request carries no
//!   `x-request-id`, so the layer makes a UUID v7 one, as for most traffic;
//! - `server/success, inbound id`: the same with a valid `x-request-id` the layer keeps;
//! - `server/success, browser Accept`: no id, and the `Accept` a browser sends, which the layer
//!   keeps and parses only if it renders an error (problem details are negotiated then);
//! - `server/success, wire headers`: no id, and the headers curl sends (`host`, `user-agent`,
//!   `accept: */*`), as a request off the wire has: its header map is already allocated when
//!   the layer adds the id;
//! - in both of those, `tower-http request id`: the bare handler behind tower-http's
//!   `SetRequestIdLayer` (the same UUID v7 generator, `MakeRequestUuidV7`) and
//!   `PropagateRequestIdLayer`, which do only the id part of the layer's job (a header on the
//!   request, the `RequestId` extension, the header on the response): the floor for a success
//!   path "request id included";
//! - `server/error`: a handler that answers `ApiError::not_found(..)` rendered as an envelope;
//!   behind the layer the envelope is rendered again with the request's id and timestamp, which
//!   is the work of one error response.
//!
//! Client side (`DecodeEnvelopeLayer::new()`):
//!
//! - `client/success`: the bare handler behind the decoder (it adds a UUID v7 `x-request-id` to
//!   the request and passes the response through);
//! - `client/error`: a 503 envelope decoded into an `ApiError` (body read, JSON parsed), against
//!   the bare call that returns the same 503 response undecoded.

use std::convert::Infallible;
use std::hint::black_box;

use bytes::Bytes;
use criterion::{Criterion, criterion_group, criterion_main};
use fender::ApiError;
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::request_id::MakeRequestUuidV7;
use fender_benches::{handler, request, runtime};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::Full;
use tower::{Layer, Service, ServiceBuilder, ServiceExt, service_fn};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};

async fn not_found(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(ApiError::not_found("user 7 does not exist").into_http_response())
}

async fn unavailable(_req: Request<Full<Bytes>>) -> Result<Response<Full<Bytes>>, Infallible> {
    Ok(ApiError::service_unavailable("the database is down")
        .with_request_id("upstream-req-1")
        .with_timestamp("2026-11-25T10:00:00.000Z")
        .into_http_response())
}

fn plain() -> Request<Full<Bytes>> {
    request(&Bytes::new())
}

fn with_id() -> Request<Full<Bytes>> {
    let mut req = plain();
    req.headers_mut().insert(
        "x-request-id",
        HeaderValue::from_static("0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a"),
    );
    req
}

fn wire_headers() -> Request<Full<Bytes>> {
    let mut req = plain();
    let headers = req.headers_mut();
    headers.insert("host", HeaderValue::from_static("upstream.test"));
    headers.insert("user-agent", HeaderValue::from_static("curl/8.5.0"));
    headers.insert("accept", HeaderValue::from_static("*/*"));
    req
}

fn browser_accept() -> Request<Full<Bytes>> {
    let mut req = plain();
    req.headers_mut().insert(
        "accept",
        HeaderValue::from_static("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    );
    req
}

async fn send<S, B>(svc: &S, make: fn() -> Request<Full<Bytes>>, status: StatusCode)
where
    S: Service<Request<Full<Bytes>>, Response = Response<B>> + Clone,
    S::Error: std::fmt::Debug,
{
    let res = svc.clone().oneshot(make()).await.unwrap();
    assert_eq!(res.status(), status);
    black_box(res);
}

fn server(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("envelope/server");
    let ok = service_fn(handler::<Full<Bytes>>);
    let enveloped = ErrorEnvelopeLayer::new().layer(ok);
    let id_only = ServiceBuilder::new()
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuidV7))
        .layer(PropagateRequestIdLayer::x_request_id())
        .service(ok);
    group.bench_function("success/bare", |b| {
        b.to_async(&rt).iter(|| send(&ok, plain, StatusCode::OK))
    });
    group.bench_function("success/fender", |b| {
        b.to_async(&rt)
            .iter(|| send(&enveloped, plain, StatusCode::OK))
    });
    group.bench_function("success/tower-http request id", |b| {
        b.to_async(&rt)
            .iter(|| send(&id_only, plain, StatusCode::OK))
    });
    group.bench_function("success, inbound id/bare", |b| {
        b.to_async(&rt).iter(|| send(&ok, with_id, StatusCode::OK))
    });
    group.bench_function("success, inbound id/fender", |b| {
        b.to_async(&rt)
            .iter(|| send(&enveloped, with_id, StatusCode::OK))
    });
    group.bench_function("success, browser Accept/bare", |b| {
        b.to_async(&rt)
            .iter(|| send(&ok, browser_accept, StatusCode::OK))
    });
    group.bench_function("success, browser Accept/fender", |b| {
        b.to_async(&rt)
            .iter(|| send(&enveloped, browser_accept, StatusCode::OK))
    });
    group.bench_function("success, wire headers/bare", |b| {
        b.to_async(&rt)
            .iter(|| send(&ok, wire_headers, StatusCode::OK))
    });
    group.bench_function("success, wire headers/fender", |b| {
        b.to_async(&rt)
            .iter(|| send(&enveloped, wire_headers, StatusCode::OK))
    });
    group.bench_function("success, wire headers/tower-http request id", |b| {
        b.to_async(&rt)
            .iter(|| send(&id_only, wire_headers, StatusCode::OK))
    });

    let err = service_fn(not_found);
    let enveloped = ErrorEnvelopeLayer::new().layer(err);
    group.bench_function("error/bare", |b| {
        b.to_async(&rt)
            .iter(|| send(&err, plain, StatusCode::NOT_FOUND))
    });
    group.bench_function("error/fender", |b| {
        b.to_async(&rt)
            .iter(|| send(&enveloped, plain, StatusCode::NOT_FOUND))
    });
    group.finish();
}

fn client(c: &mut Criterion) {
    let rt = runtime();
    let mut group = c.benchmark_group("envelope/client");
    let ok = service_fn(handler::<Full<Bytes>>);
    let decoded = DecodeEnvelopeLayer::new().layer(ok);
    group.bench_function("success/bare", |b| {
        b.to_async(&rt).iter(|| send(&ok, plain, StatusCode::OK))
    });
    group.bench_function("success/fender", |b| {
        b.to_async(&rt)
            .iter(|| send(&decoded, plain, StatusCode::OK))
    });

    let err = service_fn(unavailable);
    let decoded = DecodeEnvelopeLayer::new().layer(err);
    group.bench_function("error/bare", |b| {
        b.to_async(&rt)
            .iter(|| send(&err, plain, StatusCode::SERVICE_UNAVAILABLE))
    });
    group.bench_function("error/fender", |b| {
        b.to_async(&rt).iter(|| async {
            let err = decoded.clone().oneshot(plain()).await.unwrap_err();
            assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
            black_box(err);
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = fender_benches::criterion_config();
    targets = server, client
}
criterion_main!(benches);
