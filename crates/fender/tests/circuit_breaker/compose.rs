//! The breaker with the envelope layers: an open circuit is a 503 with `Retry-After`.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::envelope::{DecodeEnvelopeLayer, ErrorEnvelopeLayer};
use fender::error::Origin;
use fender::{ApiError, ErrorCode};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tower::{ServiceBuilder, ServiceExt, service_fn};

fn failing_upstream() -> impl tower::Service<
    Request<Full<Bytes>>,
    Response = Response<Full<Bytes>>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send,
> + Clone
+ Send {
    service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, Infallible>(ApiError::bad_gateway("upstream down").into_http_response())
    })
}

#[tokio::test(start_paused = true)]
async fn a_gateway_answers_an_open_circuit_with_a_503_envelope_and_retry_after_rounded_up() {
    let gateway = ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new())
        .layer(CircuitBreakerLayer::new())
        .service(failing_upstream());
    for _ in 0..5 {
        let res = gateway.clone().oneshot(Request::default()).await.unwrap();
        assert_eq!(res.status(), 502);
    }
    tokio::time::advance(Duration::from_millis(4_200)).await;
    let res = gateway.oneshot(Request::default()).await.unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "26");
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let json: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "SERVICE_UNAVAILABLE");
    let message = json["error"]["message"].as_str().unwrap();
    assert!(
        !message.contains("circuit"),
        "internal detail leaked: {message}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_client_sees_an_open_circuit_as_a_local_non_retryable_api_error() {
    let client = ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .layer(CircuitBreakerLayer::new())
        .service(failing_upstream());
    for _ in 0..5 {
        let err = client
            .clone()
            .oneshot(Request::default())
            .await
            .unwrap_err();
        assert_eq!(err.code(), &ErrorCode::BadGateway);
        assert_eq!(err.origin(), Origin::Response);
    }
    let err = client.oneshot(Request::default()).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert_eq!(err.origin(), Origin::Local);
    assert_eq!(err.retry_after(), Some(Duration::from_secs(30)));
    assert!(!err.is_retryable());
}
