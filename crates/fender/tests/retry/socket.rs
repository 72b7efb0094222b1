//! End to end: a hyper client behind the retry layer, the testkit upstream on 127.0.0.1.
//!
//! No per-attempt timeouts here: with a paused clock tokio jumps to the next timer while it
//! waits for socket IO, so the only timers are the backoff delays under test.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use fender::classify::{Class, classify_error};
use fender::retry::{Jitter, ReplayBody, RetryInfo, RetryLayer};
use fender_testkit::{Plan, Reply, Upstream, refused_addr};
use http::{Method, Request, StatusCode, Uri};
use http_body::Body;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tower::{Layer, ServiceExt};

use crate::support::{pattern, streamed};
use crate::{fixed_now, secs};

fn client<B>() -> Client<HttpConnector, ReplayBody<B>>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<fender::BoxError>,
{
    Client::builder(TokioExecutor::new()).build_http()
}

fn layer() -> RetryLayer {
    RetryLayer::new().jitter(Jitter::None).no_budget()
}

fn gaps(upstream: &Upstream) -> Vec<Duration> {
    let seen = upstream.received();
    seen.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_503s_are_retried_on_schedule_and_the_last_envelope_is_returned() {
    let server = Upstream::new(Plan::always(Reply::envelope(
        503,
        "SERVICE_UNAVAILABLE",
        "down for maintenance",
    )))
    .serve()
    .await;
    let svc = layer().layer(client::<Full<Bytes>>());
    let req = Request::get(server.url("/items"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.extensions().get::<RetryInfo>().unwrap().attempts(), 3);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(envelope["error"]["code"], "SERVICE_UNAVAILABLE");
    assert_eq!(server.count(), 3);
    assert_eq!(gaps(server.upstream()), [secs(1), secs(2)]);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_a_connection_reset_is_retried() {
    let server = Upstream::new(Plan::sequence([Reply::reset(), Reply::ok()]))
        .serve()
        .await;
    let svc = layer().layer(client::<Full<Bytes>>());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let labels: Vec<String> = server.received().into_iter().map(|r| r.reply).collect();
    assert_eq!(labels, ["reset", "200"]);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_post_is_retried_after_connection_refused() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counted = calls.clone();
    let inner = client::<Full<Bytes>>().map_request(move |req| {
        counted.fetch_add(1, Ordering::SeqCst);
        req
    });
    let svc = layer().layer(inner);
    let uri: Uri = format!("http://{}/orders", refused_addr()).parse().unwrap();
    let req = Request::post(uri)
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let err = svc.oneshot(req).await.unwrap_err();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(classify_error(&*err), Class::ConnectFailed);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_post_is_not_retried_after_a_503() {
    let server = Upstream::new(Plan::sequence([Reply::status(503), Reply::ok()]))
        .serve()
        .await;
    let svc = layer().layer(client::<Full<Bytes>>());
    let req = Request::builder()
        .method(Method::POST)
        .uri(server.url("/orders"))
        .body(Full::new(Bytes::from_static(b"{}")))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(server.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_a_streamed_10_kib_body_is_received_identically_on_all_3_attempts() {
    let data = pattern(10 * 1024);
    let server = Upstream::new(Plan::always(Reply::status(503)))
        .serve()
        .await;
    let svc = layer().layer(client());
    let req = Request::put(server.url("/blob"))
        .body(streamed(&data, 1000))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let received = server.received();
    assert_eq!(received.len(), 3);
    for r in received {
        assert_eq!(r.body, data);
    }
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_a_1_mib_body_is_sent_once_and_intact() {
    let data = pattern(1024 * 1024);
    let server = Upstream::new(Plan::always(Reply::status(503)))
        .serve()
        .await;
    let svc = layer().layer(client());
    let req = Request::put(server.url("/blob"))
        .body(streamed(&data, 16 * 1024))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].body, data);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_retry_after_seconds_is_obeyed_to_the_millisecond() {
    let server = Upstream::new(Plan::sequence([
        Reply::retry_after_secs(429, 5),
        Reply::ok(),
    ]))
    .serve()
    .await;
    let svc = RetryLayer::new().layer(client::<Full<Bytes>>());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(gaps(server.upstream()), [Duration::from_millis(5_000)]);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_retry_after_http_date_is_obeyed_to_the_millisecond() {
    let server = Upstream::new(Plan::sequence([
        Reply::retry_after_date(503, fixed_now() + secs(7)),
        Reply::ok(),
    ]))
    .serve()
    .await;
    let svc = RetryLayer::new()
        .wall_clock(fixed_now)
        .layer(client::<Full<Bytes>>());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(gaps(server.upstream()), [Duration::from_millis(7_000)]);
}

#[tokio::test(start_paused = true)]
async fn over_a_socket_retry_after_over_the_cap_is_returned_at_once() {
    let server = Upstream::new(Plan::always(Reply::retry_after_secs(503, 600)))
        .serve()
        .await;
    let svc = RetryLayer::new().layer(client::<Full<Bytes>>());
    let req = Request::get(server.url("/"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let start = tokio::time::Instant::now();
    let res = svc.oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "600");
    assert_eq!(server.count(), 1);
    assert!(start.elapsed() < secs(1));
}

#[tokio::test(start_paused = true)]
async fn the_budget_keeps_a_testkit_upstream_near_1_2x_during_an_outage() {
    let upstream = Upstream::new(Plan::always(Reply::status(503))).record_limit(10);
    let svc = RetryLayer::new()
        .base_delay(Duration::ZERO)
        .budget(fender::retry::RetryBudget::new(secs(10), 1, 0.2))
        .layer(upstream.service());
    let requests = 5_000;
    for _ in 0..requests {
        let req = Request::get("http://up/")
            .body(Full::new(Bytes::new()))
            .unwrap();
        svc.clone().oneshot(req).await.unwrap();
        tokio::time::advance(Duration::from_millis(2)).await;
    }
    let load = upstream.count() as f64 / requests as f64;
    assert!((1.15..=1.25).contains(&load), "upstream load {load:.3}x");
}
