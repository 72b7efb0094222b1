//! Integration tests of `fender::timeout`: the server keeps to the caller's deadline.

use std::time::Duration;

use axum::Router;
use axum::routing::get;
use bytes::Bytes;
use fender::envelope::ErrorEnvelopeLayer;
use fender::timeout::{RequestTimeoutLayer, TimeLeft, X_REQUEST_TIMEOUT_MS};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tower::{Layer, ServiceBuilder, ServiceExt};

fn app(timeout: Duration, max: Duration) -> Router {
    async fn slow() -> &'static str {
        tokio::time::sleep(Duration::from_secs(5)).await;
        "done"
    }
    async fn left(time: axum::Extension<TimeLeft>) -> String {
        time.remaining().as_millis().to_string()
    }
    Router::new()
        .route("/slow", get(slow))
        .route("/left", get(left))
        .layer(
            ServiceBuilder::new()
                .layer(ErrorEnvelopeLayer::new())
                .layer(RequestTimeoutLayer::new(timeout).max(max)),
        )
}

fn request(path: &str, timeout_ms: Option<&str>) -> Request<axum::body::Body> {
    let mut req = Request::get(path);
    if let Some(ms) = timeout_ms {
        req = req.header(X_REQUEST_TIMEOUT_MS, ms);
    }
    req.body(axum::body::Body::empty()).unwrap()
}

async fn text(res: http::Response<axum::body::Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_caller_deadline_shorter_than_the_servers_ends_the_request_with_504_timeout() {
    let start = tokio::time::Instant::now();
    let res = app(Duration::from_secs(10), Duration::from_secs(30))
        .oneshot(request("/slow", Some("150")))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_millis(150));
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(res.headers().contains_key("x-request-id"));
    let body = text(res).await;
    assert!(body.contains("\"code\":\"TIMEOUT\""), "{body}");
}

#[tokio::test(start_paused = true)]
async fn without_the_header_the_servers_own_timeout_applies() {
    let start = tokio::time::Instant::now();
    let res = app(Duration::from_secs(2), Duration::from_secs(30))
        .oneshot(request("/slow", None))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn a_caller_cannot_ask_for_more_than_the_servers_maximum() {
    let res = app(Duration::from_secs(1), Duration::from_secs(3))
        .oneshot(request("/left", Some("600000")))
        .await
        .unwrap();
    assert_eq!(text(res).await, "3000");
    let res = app(Duration::from_secs(1), Duration::from_secs(3))
        .oneshot(request("/left", Some("250")))
        .await
        .unwrap();
    assert_eq!(text(res).await, "250");
}

#[tokio::test(start_paused = true)]
async fn a_malformed_header_is_ignored_and_zero_means_one_millisecond() {
    for junk in ["soon", "-5", "1.5", "99999999999999999999999"] {
        let res = app(Duration::from_secs(1), Duration::from_secs(3))
            .oneshot(request("/left", Some(junk)))
            .await
            .unwrap();
        assert_eq!(text(res).await, "1000", "{junk}");
    }
    let res = app(Duration::from_secs(1), Duration::from_secs(3))
        .oneshot(request("/slow", Some("0")))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn over_a_socket_a_fender_client_deadline_reaches_the_server() {
    use fender::retry::RetryLayer;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    let server = fender_testkit::serve_service(
        app(Duration::from_secs(10), Duration::from_secs(30))
            .into_service::<hyper::body::Incoming>(),
    )
    .await;
    let client = fender::ClientLayer::new()
        .retry(
            RetryLayer::new()
                .max_attempts(1)
                .deadline(Duration::from_millis(300)),
        )
        .layer(Client::builder(TokioExecutor::new()).build_http());
    let url = format!("http://{}/slow", server.addr());
    let err = client
        .oneshot(Request::get(url).body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap_err();
    // The server gave up at the caller's deadline and said so with an envelope.
    assert_eq!(err.status(), StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(err.code(), &fender::ErrorCode::Timeout);
    assert!(err.request_id().is_some());
}
