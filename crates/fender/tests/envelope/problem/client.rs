//! Clients decode problem details into the same `ApiError` as the envelope.

use std::time::Duration;

use bytes::Bytes;
use fender::envelope::{DecodeEnvelopeLayer, decode_error};
use fender::error::Origin;
use fender::{ApiError, ErrorCode};
use fender_testkit::{Reply, Upstream};
use http::Request;
use http_body_util::Full;
use tower::{ServiceBuilder, ServiceExt};

use super::PROBLEM;
use crate::support::{self, response};

/// What a decoding client makes of `GET url` sent with this `Accept` (or none) and id.
async fn error_of(url: http::Uri, accept: Option<&str>, id: &str) -> ApiError {
    let mut req = Request::get(url).header("x-request-id", id);
    if let Some(accept) = accept {
        req = req.header(http::header::ACCEPT, accept);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .service(support::client())
        .oneshot(req)
        .await
        .unwrap_err()
}

/// The facts of an error a caller can read, but the timestamp (the time of rendering).
fn facts(err: &ApiError) -> impl PartialEq + std::fmt::Debug {
    (
        err.code().clone(),
        err.status(),
        err.message().to_owned(),
        err.details().clone(),
        err.request_id().map(str::to_owned),
        err.retry_after(),
        err.origin(),
        err.is_retryable(),
    )
}

#[tokio::test]
async fn every_code_decodes_to_the_same_error_from_problem_json_as_from_the_envelope() {
    let server = crate::server::serve_app().await;
    for code in ErrorCode::ALL {
        for id in ["rt-1", "0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a"] {
            let url = || server.url(&format!("/code/{code}"));
            let from_envelope = error_of(url(), None, id).await;
            let from_problem = error_of(url(), Some(PROBLEM), id).await;
            assert_eq!(facts(&from_problem), facts(&from_envelope), "{code}");
            assert_eq!(from_problem.code(), &code);
            assert_eq!(from_problem.request_id(), Some(id));
            assert!(from_problem.timestamp().is_some());
            assert_eq!(from_problem.origin(), Origin::Response);
        }
    }
    // And the details of a validation error, field by field.
    let url = || server.url("/validation");
    let from_envelope = error_of(url(), None, "v-1").await;
    let from_problem = error_of(url(), Some(PROBLEM), "v-1").await;
    assert_eq!(facts(&from_problem), facts(&from_envelope));
    assert_eq!(from_problem.field_errors(), from_envelope.field_errors());
    assert_eq!(from_problem.field_errors().len(), 2);
}

#[tokio::test]
async fn a_foreign_problem_decodes_by_status_with_its_detail() {
    // RFC 9457's own example, from a server that knows nothing of the contract.
    let body = r#"{"type":"https://example.com/probs/out-of-credit","title":"You do not have enough credit.",
        "detail":"Your current balance is 30, but that costs 50.","instance":"/account/12345/msgs/abc",
        "balance":30,"accounts":["/account/12345","/account/67890"]}"#;
    let reply = Reply::status(403)
        .header("content-type", "application/problem+json; charset=utf-8")
        .header("x-request-id", "edge-7")
        .body(body);
    let server = Upstream::new(reply).serve().await;
    let err = error_of(server.url("/"), None, "sent-1").await;
    assert_eq!(err.code(), &ErrorCode::Forbidden);
    assert_eq!(err.status(), 403);
    assert_eq!(
        err.message(),
        "Your current balance is 30, but that costs 50."
    );
    assert!(err.details().is_empty(), "unknown members are ignored");
    assert_eq!(
        err.request_id(),
        Some("edge-7"),
        "the header's id, then the sent one"
    );
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_problem_without_detail_takes_its_title_and_one_without_either_its_status() {
    let titled = response(
        404,
        PROBLEM,
        Full::new(Bytes::from_static(br#"{"title":"no such order"}"#)),
    );
    let err = decode_error(titled).await;
    assert_eq!(err.message(), "no such order");
    assert_eq!(err.code(), &ErrorCode::NotFound);
    let bare = response(429, PROBLEM, Full::new(Bytes::from_static(b"{}")));
    let err = decode_error(bare).await;
    assert_eq!(err.code(), &ErrorCode::RateLimitExceeded);
    assert_eq!(err.message(), "too many requests");
}

#[tokio::test]
async fn a_problem_labelled_application_json_is_read_when_it_has_type_and_status() {
    let body = r#"{"type":"urn:fender:error:timeout","status":504,"detail":"request timed out"}"#;
    let err = decode_error(response(
        504,
        "application/json",
        Full::new(Bytes::from(body)),
    ))
    .await;
    assert_eq!(err.code(), &ErrorCode::Timeout);
    assert_eq!(err.message(), "request timed out");
    // An API's own `{"detail": ..}` is not taken for a problem without the media type.
    let other = r#"{"detail":"Not found."}"#;
    let err = decode_error(response(
        404,
        "application/json",
        Full::new(Bytes::from(other)),
    ))
    .await;
    assert!(err.message().contains("not an error envelope"), "{err}");
}

#[tokio::test]
async fn a_problems_retry_after_is_read_from_the_header() {
    let reply = Reply::retry_after_secs(503, 4)
        .header("content-type", PROBLEM)
        .body(r#"{"code":"SERVICE_UNAVAILABLE","detail":"maintenance"}"#);
    let server = Upstream::new(reply).serve().await;
    let err = error_of(server.url("/"), None, "s-1").await;
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert_eq!(err.message(), "maintenance");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(4)));
    assert!(err.is_retryable());
}
