//! Servers that are hostile, not just broken: bodies that never end, request ids built to
//! break logs.

use std::convert::Infallible;

use fender::ErrorCode;
use fender::envelope::{DecodeEnvelopeLayer, decode_error, decode_error_with_limit};
use tower::{Layer, ServiceExt, service_fn};

use fender_testkit::{Reply, Upstream};

use crate::support::{self, HostileBody, get_with_id, response};

#[tokio::test]
async fn decode_error_gives_up_on_a_body_of_endless_empty_frames() {
    let body = HostileBody::empty_frames();
    let err = decode_error(response(503, "application/json", body.clone())).await;
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert!(err.message().contains("could not be read"), "{err}");
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());

    let body = HostileBody::empty_frames();
    let err = decode_error_with_limit(response(500, "text/plain", body.clone()), 16).await;
    assert_eq!(err.code(), &ErrorCode::InternalError);
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());
}

#[tokio::test]
async fn the_decoding_layer_gives_up_on_a_body_of_endless_empty_frames() {
    let body = HostileBody::empty_frames();
    let inner = {
        let body = body.clone();
        service_fn(move |_req: http::Request<_>| {
            let body = body.clone();
            async move { Ok::<_, Infallible>(response(502, "application/json", body)) }
        })
    };
    let err = DecodeEnvelopeLayer::new()
        .layer(inner)
        .oneshot(get_with_id("/", "sent-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::BadGateway);
    assert_eq!(err.request_id(), Some("sent-1"));
    assert!(err.source_error().unwrap().to_string().contains("frames"));
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());
}

/// An envelope whose `request_id` is 50 KB of text with CR LF and ESC in it.
fn hostile_id_envelope() -> String {
    // JSON escapes: the decoded id holds a real CR LF and ESC.
    let id = format!(r"{}\r\nx-injected: 1\u001b[2J", "A".repeat(50_000));
    format!(
        r#"{{"error":{{"code":"CONFLICT","message":"stale","details":{{}},"request_id":"{id}","timestamp":"2026-11-25T08:27:32.123Z"}}}}"#
    )
}

/// Asserts the error's request id without printing a hostile one in full.
fn assert_id(err: &fender::ApiError, expected: &str) {
    let id = err.request_id().unwrap_or_default();
    assert!(
        id == expected,
        "expected {expected}, got {} bytes",
        id.len()
    );
}

async fn decoded(reply: Reply) -> fender::ApiError {
    let server = Upstream::new(reply).serve().await;
    DecodeEnvelopeLayer::new()
        .layer(support::client())
        .oneshot(get_with_id(server.url("/"), "sent-7"))
        .await
        .unwrap_err()
}

#[tokio::test]
async fn an_invalid_request_id_in_the_body_gives_way_to_the_header() {
    let reply = Reply::status(409)
        .header("content-type", "application/json")
        .header("x-request-id", "header-id-1")
        .body(hostile_id_envelope());
    let err = decoded(reply).await;
    assert_eq!(err.code(), &ErrorCode::Conflict);
    assert_eq!(err.message(), "stale");
    assert_id(&err, "header-id-1");
}

#[tokio::test]
async fn an_invalid_request_id_in_the_body_without_a_header_gives_way_to_the_sent_one() {
    let reply = Reply::status(409)
        .header("content-type", "application/json")
        .body(hostile_id_envelope());
    let err = decoded(reply).await;
    assert_id(&err, "sent-7");
    let invalid_header = Reply::status(409)
        .header("content-type", "application/json")
        .header("x-request-id", "has spaces")
        .body(hostile_id_envelope());
    assert_id(&decoded(invalid_header).await, "sent-7");
}

#[tokio::test]
async fn statuses_past_599_decode_to_errors_the_breaker_counts() {
    for n in [600u16, 799, 999] {
        let inner = service_fn(move |_req: http::Request<_>| async move {
            let body = http_body_util::Full::new(bytes::Bytes::from_static(b"?"));
            Ok::<_, Infallible>(response(n, "text/plain", body))
        });
        let err = DecodeEnvelopeLayer::new()
            .layer(inner)
            .oneshot(get_with_id("/", "odd-1"))
            .await
            .unwrap_err();
        assert_eq!(err.status().as_u16(), n);
        assert_eq!(err.code(), &ErrorCode::InternalError);
        assert!(err.class().is_failure(), "{n}: {}", err.class());
        assert!(!err.is_retryable(), "{n}");
    }
}
