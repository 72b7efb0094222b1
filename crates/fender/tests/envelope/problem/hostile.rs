//! Problem documents built to confuse a client: too large, not JSON, members of the wrong
//! type, a `status` that contradicts the response. RFC 9457 §3.1: a member of the wrong type
//! is ignored, as if it were absent.

use bytes::Bytes;
use fender::ErrorCode;
use fender::envelope::{decode_error, decode_error_with_limit};
use fender_testkit::{Reply, Upstream};
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};

use super::PROBLEM;
use crate::support::{self, get_with_id, response};

async fn decode(status: u16, body: impl Into<Bytes>) -> fender::ApiError {
    decode_error(response(status, PROBLEM, Full::new(body.into()))).await
}

#[tokio::test]
async fn a_problem_over_the_body_limit_is_not_read() {
    let huge = format!(
        r#"{{"code":"CONFLICT","detail":"{}","status":409}}"#,
        "x".repeat(100_000)
    );
    let reply = Reply::status(409)
        .header("content-type", PROBLEM)
        .header("x-request-id", "big-1")
        .body(huge.clone());
    let server = Upstream::new(reply).serve().await;
    let err = ServiceBuilder::new()
        .layer(fender::envelope::DecodeEnvelopeLayer::new())
        .service(support::client())
        .oneshot(get_with_id(server.url("/"), "sent-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Conflict, "the nearest code for 409");
    assert!(
        err.message().contains("larger than the error body limit"),
        "{err}"
    );
    assert_eq!(err.details()["content_type"], PROBLEM);
    assert_eq!(err.request_id(), Some("big-1"));
    let err =
        decode_error_with_limit(response(409, PROBLEM, Full::new(Bytes::from(huge))), 1024).await;
    assert!(err.message().len() < 200, "nothing of the body is echoed");
}

#[tokio::test]
async fn a_garbage_problem_body_decodes_by_status() {
    for garbage in [
        &b"{\"code\":\"CONFLICT\",\"detail\":"[..],
        b"\xff\xfe\x00 not utf-8",
        b"<html>problem</html>",
        b"[\"code\",\"CONFLICT\"]",
        b"\"CONFLICT\"",
        b"null",
        b"",
    ] {
        let err = decode(502, garbage).await;
        assert_eq!(err.code(), &ErrorCode::BadGateway, "{garbage:?}");
        assert!(err.message().contains("the server answered 502"), "{err}");
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn a_deeply_nested_problem_body_is_rejected_not_overflowed() {
    let deep = format!(
        r#"{{"code":"CONFLICT","details":{{"x":{}1{}}}}}"#,
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    let err = decode(409, deep).await;
    assert_eq!(err.code(), &ErrorCode::Conflict);
    assert!(err.message().contains("not an error envelope"), "{err}");
}

#[tokio::test]
async fn members_of_the_wrong_type_are_ignored() {
    let body = r#"{"type":{"uri":"urn:fender:error:conflict"},"title":42,"status":"409",
        "detail":["stale"],"instance":7,"code":false,"request_id":{"id":"x"},
        "timestamp":1764059252,"details":"none"}"#;
    let err = decode(409, body).await;
    assert_eq!(err.code(), &ErrorCode::Conflict, "from the status");
    assert_eq!(err.message(), "the resource is in a conflicting state");
    assert!(err.details().is_empty());
    assert_eq!(err.request_id(), None);
    assert_eq!(err.timestamp(), None);
}

#[tokio::test]
async fn a_type_that_is_not_a_string_is_ignored_and_the_code_member_still_counts() {
    for ty in ["null", "404", "[\"urn:fender:error:not-found\"]", "{}"] {
        let body = format!(r#"{{"type":{ty},"code":"NOT_FOUND","detail":"no order 7"}}"#);
        let err = decode(404, body).await;
        assert_eq!(err.code(), &ErrorCode::NotFound, "{ty}");
        assert_eq!(err.message(), "no order 7");
    }
    let err = decode(404, r#"{"type":404,"detail":"gone"}"#).await;
    assert_eq!(err.code(), &ErrorCode::NotFound, "from the status");
}

#[tokio::test]
async fn the_http_status_wins_over_a_status_member_that_disagrees() {
    // A proxy turned the upstream's 404 into a 503, or a server lies: the response's status
    // is what the retry and the breaker see, and what the error says.
    let err = decode(503, r#"{"status":404,"detail":"no order 7"}"#).await;
    assert_eq!(err.status(), 503);
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert!(err.is_retryable());
    let err = decode(
        400,
        r#"{"status":200,"code":"INVALID_REQUEST","detail":"bad"}"#,
    )
    .await;
    assert_eq!(err.status(), 400);
    let err = decode(404, r#"{"status":-1,"detail":"x"}"#).await;
    assert_eq!(err.status(), 404);
}

#[tokio::test]
async fn a_hostile_request_id_or_instance_is_dropped() {
    let id = format!("{}\r\nx-injected: 1", "A".repeat(50_000));
    let body = serde_json::json!({
        "code": "CONFLICT",
        "request_id": id,
        "instance": format!("urn:uuid:{id}"),
    });
    let err = decode(409, body.to_string()).await;
    assert_eq!(err.request_id(), None);
    let bad_uuid = serde_json::json!({"instance": "urn:uuid:0193a5c27b1e7c3a9a611f2e3d4c5b6a"});
    let err = decode(409, bad_uuid.to_string()).await;
    assert_eq!(err.request_id(), None, "only the hyphenated form");
}

#[tokio::test]
async fn an_unknown_code_in_a_problem_is_kept_and_not_retryable() {
    let err = decode(402, r#"{"code":"PAYMENT_REQUIRED","detail":"top up"}"#).await;
    assert_eq!(err.code(), &ErrorCode::Other("PAYMENT_REQUIRED".into()));
    assert_eq!(err.status(), 402);
    assert!(!err.is_retryable());
}
