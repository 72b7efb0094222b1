//! A 5xx never carries internal text: it shows its code's generic message and no details, but
//! for what the handler deliberately published. Timestamps are always the layer's own.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::get;
use fender::ApiError;
use fender::envelope::ErrorEnvelopeLayer;
use serde_json::json;

use super::assert_envelope;
use crate::support::{self, LogBuffer, get as get_req, get_with_id, send};

const LEAKY_ENVELOPE: &str = r#"{"error":{"code":"INTERNAL_ERROR","message":"password=hunter2 rejected by 10.0.0.3","details":{"sql":"SELECT * FROM users WHERE id = 7"},"request_id":"upstream-id","timestamp":"2001-01-01T00:00:00.000Z"}}"#;

fn app() -> Router {
    Router::new()
        .route(
            "/proxied-500",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    [(header::CONTENT_TYPE, "application/json")],
                    LEAKY_ENVELOPE,
                )
            }),
        )
        .route(
            "/internal",
            get(|| async {
                ApiError::internal()
                    .with_message("password=hunter2 rejected")
                    .with_detail("sql", "SELECT * FROM users")
            }),
        )
        .route(
            "/unavailable",
            get(|| async {
                ApiError::service_unavailable("primary db at 10.0.0.3 is down")
                    .with_retry_after(Duration::from_secs(5))
            }),
        )
        .route(
            "/published",
            get(|| async {
                ApiError::service_unavailable("replica db-3 lags by 40 s")
                    .with_public_message("down for maintenance until 10:00 UTC")
                    .with_public_detail("until", "2026-11-25T10:00:00Z")
                    .with_detail("replica", "db-3")
            }),
        )
        .route(
            "/stamped-404",
            get(|| async {
                ApiError::not_found("no such order").with_timestamp("\u{1b}[31m<script>\r\n")
            }),
        )
        .route(
            "/stamped-500",
            get(|| async { ApiError::internal().with_timestamp("yesterday") }),
        )
        .layer(ErrorEnvelopeLayer::new())
}

fn assert_recent(ts: &serde_json::Value) {
    let ts: jiff::Timestamp = ts.as_str().unwrap().parse().unwrap();
    let age = jiff::Timestamp::now().duration_since(ts);
    assert!(age.as_secs().abs() < 600, "not the layer's own time: {ts}");
}

#[tokio::test]
async fn a_json_5xx_envelope_from_the_inner_service_is_sent_without_its_message_and_details() {
    let server = fender_testkit::serve_service(app()).await;
    let (parts, body) = send(&support::client(), get_req(server.url("/proxied-500"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert_eq!(v["error"]["details"], json!({}));
    assert_recent(&v["error"]["timestamp"]);
    let text = String::from_utf8_lossy(&body);
    assert!(
        !text.contains("hunter2") && !text.contains("SELECT"),
        "{text}"
    );
}

#[tokio::test]
async fn internal_error_messages_and_details_go_to_the_log_not_the_client() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = fender_testkit::serve_service(app()).await;
    let req = get_with_id(server.url("/internal"), "leak-1");
    let (parts, body) = send(&support::client(), req).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert_eq!(v["error"]["details"], json!({}));
    let line = logs.line_with("leak-1");
    assert!(line.contains("password=hunter2 rejected"), "{line}");
}

#[tokio::test]
async fn service_unavailable_messages_are_internal_but_retry_after_is_sent() {
    let server = fender_testkit::serve_service(app()).await;
    let (parts, body) = send(&support::client(), get_req(server.url("/unavailable"))).await;
    let v = assert_envelope(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(v["error"]["message"], "service temporarily unavailable");
    assert_eq!(parts.headers[header::RETRY_AFTER], "5");
    assert!(!String::from_utf8_lossy(&body).contains("10.0.0.3"));
}

#[tokio::test]
async fn published_messages_and_details_are_sent_on_a_5xx() {
    let server = fender_testkit::serve_service(app()).await;
    let (parts, body) = send(&support::client(), get_req(server.url("/published"))).await;
    let v = assert_envelope(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(
        v["error"]["message"],
        "down for maintenance until 10:00 UTC"
    );
    assert_eq!(
        v["error"]["details"],
        json!({"until": "2026-11-25T10:00:00Z"})
    );
}

#[tokio::test]
async fn timestamps_on_the_wire_are_always_the_layers_own() {
    let server = fender_testkit::serve_service(app()).await;
    let client = support::client();
    for (path, status, code) in [
        ("/stamped-404", 404, "NOT_FOUND"),
        ("/stamped-500", 500, "INTERNAL_ERROR"),
    ] {
        let (parts, body) = send(&client, get_req(server.url(path))).await;
        let v = assert_envelope(&parts, &body, status, code);
        assert_recent(&v["error"]["timestamp"]);
    }
}

#[test]
fn responses_rendered_without_the_layer_follow_the_same_rule() {
    let res = ApiError::bad_gateway("upstream 10.0.0.3:5432 refused")
        .with_detail("dsn", "postgres://app:hunter2@10.0.0.3")
        .with_timestamp("not a time")
        .into_http_response();
    let sent = res
        .extensions()
        .get::<ApiError>()
        .unwrap()
        .to_envelope()
        .error;
    assert_eq!(sent.message, "upstream service error");
    assert!(sent.details.is_empty());
    assert_ne!(sent.timestamp.as_deref(), Some("not a time"));
}
