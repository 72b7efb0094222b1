//! `ErrorEnvelopeLayer` against real axum and tower services on testkit sockets, grouped by
//! behaviour.

use std::time::Duration;

use axum::extract::{Extension, Path};
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use fender::envelope::ErrorEnvelopeLayer;
use fender::request_id::RequestId;
use fender::{ApiError, ErrorCode};
use fender_testkit::ServiceServer;
use serde_json::Value;

use crate::support::json;

mod bodies;
mod failures;
mod ids;
mod logs;
mod rewrite;
mod secrets;
mod success;

#[derive(serde::Deserialize)]
#[allow(dead_code)]
struct NewUser {
    email: String,
}

async fn echo_id(Extension(id): Extension<RequestId>) -> String {
    id.header_value().to_str().unwrap().to_owned()
}

async fn validation() -> Result<(), ApiError> {
    Err(ApiError::validation([
        ("email", "must be a valid email address"),
        ("name", "must not be empty"),
    ]))
}

async fn by_code(Path(code): Path<String>) -> Result<(), ApiError> {
    let code: ErrorCode = code.parse().unwrap();
    let mut err = ApiError::from(code.clone());
    if matches!(
        code,
        ErrorCode::RateLimitExceeded | ErrorCode::ServiceUnavailable
    ) {
        err = err.with_retry_after(Duration::from_secs(7));
    }
    Err(err)
}

/// An axum application with a route for each kind of answer, behind `ErrorEnvelopeLayer`.
pub(crate) fn app() -> Router {
    Router::new()
        .route("/ok", get(|| async { "fine" }))
        .route("/id", get(echo_id))
        .route("/users", post(|Json(_): Json<NewUser>| async { StatusCode::CREATED }))
        .route("/validation", get(validation))
        .route("/code/{code}", get(by_code))
        .route(
            "/plain-500",
            get(|| async {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "db password=hunter2 leaked in a stack trace",
                )
            }),
        )
        .route(
            "/plain-404",
            get(|| async { (StatusCode::NOT_FOUND, "no widget with that name") }),
        )
        .route(
            "/long-404",
            get(|| async { (StatusCode::NOT_FOUND, "x".repeat(5_000)) }),
        )
        .route(
            "/html-400",
            get(|| async {
                (
                    StatusCode::BAD_REQUEST,
                    [(header::CONTENT_TYPE, "text/html")],
                    "<html><body>bad</body></html>",
                )
            }),
        )
        .route(
            "/throttled",
            get(|| async {
                (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "12")],
                    "slow down",
                )
            }),
        )
        .route(
            "/auth",
            get(|| async {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Bearer realm=\"api\"")],
                    "",
                )
            }),
        )
        .route("/gone", get(|| async { StatusCode::GONE }))
        .route(
            "/passthrough",
            get(|| async {
                (
                    StatusCode::CONFLICT,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"error":{"code":"CONFLICT","message":"version 3 is stale","details":{"current":4},"request_id":"upstream-id","timestamp":"2026-11-25T08:27:32.123Z"}}"#,
                )
            }),
        )
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("invariant broken: secret=42");
                }
                "unreachable"
            }),
        )
        .layer(ErrorEnvelopeLayer::new())
}

/// [`app`] on a testkit socket.
pub(crate) async fn serve_app() -> ServiceServer {
    fender_testkit::serve_service(app()).await
}

/// Asserts that a response is the contract's envelope with this status and code, and returns
/// its JSON.
pub(crate) fn assert_envelope(
    parts: &http::response::Parts,
    body: &Bytes,
    status: u16,
    code: &str,
) -> Value {
    assert_eq!(parts.status, status, "{}", String::from_utf8_lossy(body));
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    let v = json(body);
    let e = &v["error"];
    assert_eq!(e["code"], code, "{v}");
    assert!(e["message"].as_str().is_some_and(|m| !m.is_empty()), "{v}");
    assert!(e["details"].is_object(), "{v}");
    assert_eq!(
        e["request_id"].as_str().unwrap(),
        parts.headers["x-request-id"].to_str().unwrap(),
        "the envelope and the header carry the same id"
    );
    let ts = e["timestamp"].as_str().unwrap();
    assert_timestamp(ts);
    v
}

/// RFC 3339, UTC, millisecond precision, `Z`: `2026-11-25T08:27:32.123Z`.
pub(crate) fn assert_timestamp(ts: &str) {
    let b = ts.as_bytes();
    assert_eq!(b.len(), 24, "{ts}");
    for (i, c) in b.iter().enumerate() {
        let expected_digit = !matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23);
        assert_eq!(c.is_ascii_digit(), expected_digit, "{ts} at {i}");
    }
    assert_eq!(&ts[4..5], "-");
    assert_eq!(&ts[10..11], "T");
    assert_eq!(&ts[19..20], ".");
    assert!(ts.ends_with('Z'));
    let _: jiff::Timestamp = ts.parse().unwrap();
}

pub(crate) fn is_uuid_v7(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}
