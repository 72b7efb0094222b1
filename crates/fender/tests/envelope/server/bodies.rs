//! Inner error bodies the layer reads (a JSON error, a short plain-text 4xx) can misbehave:
//! stall, never end, panic. The layer still answers, in bounded time, with the request id.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use fender::envelope::ErrorEnvelopeLayer;
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::Instant;
use tower::{Layer, ServiceExt, service_fn};

use super::assert_envelope;
use crate::support::{
    self, HostileBody, Hostility, LogBuffer, get, get_with_id, json, response, send,
};

/// Runs one request through `layer` around a service that answers `status` with `body`, and
/// returns the response head and its JSON.
async fn through(
    layer: ErrorEnvelopeLayer,
    status: u16,
    content_type: &'static str,
    body: HostileBody,
) -> (http::response::Parts, Bytes) {
    let svc = layer.layer(service_fn(move |_req: http::Request<_>| {
        let body = body.clone();
        async move { Ok::<_, Infallible>(response(status, content_type, body)) }
    }));
    let res = svc.oneshot(get_with_id("/", "hostile-1")).await.unwrap();
    let (parts, body) = res.into_parts();
    (parts, body.collect().await.unwrap().to_bytes())
}

#[tokio::test(start_paused = true)]
async fn a_stalled_json_error_body_is_given_up_and_answered_from_the_status() {
    let start = Instant::now();
    let answered = tokio::time::timeout(
        Duration::from_secs(60),
        through(
            ErrorEnvelopeLayer::new(),
            503,
            "application/json",
            HostileBody::new(Hostility::Stall),
        ),
    )
    .await;
    let (parts, body) = answered.expect("the layer waited on a stalled body for a minute");
    assert!(
        start.elapsed() <= Duration::from_secs(2),
        "the default deadline is 2 s at most: {:?}",
        start.elapsed()
    );
    let v = assert_envelope(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(v["error"]["request_id"], "hostile-1");
}

#[tokio::test(start_paused = true)]
async fn the_error_body_deadline_is_a_setting_of_the_layer() {
    let start = Instant::now();
    let (parts, body) = through(
        ErrorEnvelopeLayer::new().body_timeout(Duration::from_millis(300)),
        404,
        "text/plain",
        HostileBody::new(Hostility::Stall),
    )
    .await;
    assert_eq!(start.elapsed(), Duration::from_millis(300));
    let v = assert_envelope(&parts, &body, 404, "NOT_FOUND");
    assert_eq!(v["error"]["message"], "resource not found");
}

#[tokio::test]
async fn an_error_body_of_endless_empty_frames_is_given_up() {
    let body = HostileBody::empty_frames();
    let (parts, bytes) = through(
        ErrorEnvelopeLayer::new(),
        502,
        "application/json",
        body.clone(),
    )
    .await;
    assert_envelope(&parts, &bytes, 502, "BAD_GATEWAY");
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());
}

#[tokio::test]
async fn a_panic_in_an_error_body_is_a_500_envelope_over_the_socket() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let svc = ErrorEnvelopeLayer::new().layer(service_fn(|_req: http::Request<_>| async {
        Ok::<_, Infallible>(response(
            502,
            "application/json",
            HostileBody::new(Hostility::Panic),
        ))
    }));
    let server = fender_testkit::serve_service(svc).await;
    let client = support::client();
    let (parts, body) = send(&client, get_with_id(server.url("/"), "boom-1")).await;
    let v: Value = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["request_id"], "boom-1");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    let line = logs.line_with("boom-1");
    assert!(
        line.contains("ERROR") && line.contains("the body blew up"),
        "{line}"
    );
    // The connection task survived: the same client is answered again.
    let (parts, body) = send(&client, get(server.url("/"))).await;
    assert_eq!(json(&body)["error"]["code"], "INTERNAL_ERROR");
    assert_eq!(parts.status, 500);
}
