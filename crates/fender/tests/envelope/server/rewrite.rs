//! Error responses that are not envelopes yet are rewritten into one: the status is kept, the
//! code is the nearest, the headers that belong to the status stay.

use std::time::Duration;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::routing::{get, post};
use bytes::Bytes;
use fender::ErrorCode;
use fender::envelope::ErrorEnvelopeLayer;
use http::Request;
use http_body_util::Full;

use super::{assert_envelope, serve_app};
use crate::support::{self, get as get_req, send};

#[tokio::test]
async fn every_code_renders_with_its_status() {
    let server = serve_app().await;
    let client = support::client();
    for code in ErrorCode::ALL {
        let (parts, body) = send(&client, get_req(server.url(&format!("/code/{code}")))).await;
        assert_envelope(&parts, &body, code.status().as_u16(), code.as_str());
        let has_retry_after = matches!(
            code,
            ErrorCode::RateLimitExceeded | ErrorCode::ServiceUnavailable
        );
        assert_eq!(
            parts
                .headers
                .get(header::RETRY_AFTER)
                .map(|v| v.to_str().unwrap()),
            has_retry_after.then_some("7"),
            "{code}"
        );
    }
}

#[tokio::test]
async fn router_404_and_405_become_envelopes_keeping_allow() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(server.url("/nowhere"))).await;
    assert_envelope(&parts, &body, 404, "NOT_FOUND");

    let req = Request::delete(server.url("/ok"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, body) = send(&client, req).await;
    let v = assert_envelope(&parts, &body, 405, "INVALID_REQUEST");
    assert_eq!(v["error"]["message"], "method not allowed");
    let allow = parts.headers[header::ALLOW].to_str().unwrap();
    assert!(allow.contains("GET"), "{allow}");
}

#[tokio::test]
async fn json_rejections_become_envelopes_with_their_message() {
    let server = serve_app().await;
    let client = support::client();
    let post = |body: &'static str, ct: &'static str| {
        Request::post(server.url("/users"))
            .header(header::CONTENT_TYPE, ct)
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    // Syntax error: 400.
    let (parts, body) = send(&client, post("{not json", "application/json")).await;
    let v = assert_envelope(&parts, &body, 400, "INVALID_REQUEST");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("JSON"),
        "{v}"
    );
    // Data error: 422, safe to show.
    let (parts, body) = send(&client, post("{\"name\":1}", "application/json")).await;
    let v = assert_envelope(&parts, &body, 422, "VALIDATION_ERROR");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("email"),
        "{v}"
    );
    // Wrong content type: 415.
    let (parts, body) = send(&client, post("{}", "text/plain")).await;
    assert_envelope(&parts, &body, 415, "INVALID_REQUEST");
}

#[tokio::test]
async fn plain_text_5xx_bodies_are_never_echoed() {
    let server = serve_app().await;
    let (parts, body) = send(&support::client(), get_req(server.url("/plain-500"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
}

#[tokio::test]
async fn short_plain_4xx_bodies_become_the_message_and_others_do_not() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(server.url("/plain-404"))).await;
    let v = assert_envelope(&parts, &body, 404, "NOT_FOUND");
    assert_eq!(v["error"]["message"], "no widget with that name");

    let (parts, body) = send(&client, get_req(server.url("/long-404"))).await;
    let v = assert_envelope(&parts, &body, 404, "NOT_FOUND");
    assert_eq!(v["error"]["message"], "resource not found");

    let (parts, body) = send(&client, get_req(server.url("/html-400"))).await;
    let v = assert_envelope(&parts, &body, 400, "INVALID_REQUEST");
    assert!(!v["error"]["message"].as_str().unwrap().contains("<html>"));

    let (parts, body) = send(&client, get_req(server.url("/gone"))).await;
    assert_envelope(&parts, &body, 410, "NOT_FOUND");
}

#[tokio::test]
async fn status_specific_headers_are_kept() {
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(server.url("/throttled"))).await;
    let v = assert_envelope(&parts, &body, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(parts.headers[header::RETRY_AFTER], "12");
    assert_eq!(v["error"]["message"], "slow down");

    let (parts, body) = send(&client, get_req(server.url("/auth"))).await;
    assert_envelope(&parts, &body, 401, "UNAUTHORIZED");
    assert_eq!(
        parts.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"api\""
    );
}

#[tokio::test]
async fn existing_envelopes_keep_their_content_with_this_requests_id() {
    let server = serve_app().await;
    let (parts, body) = send(&support::client(), get_req(server.url("/passthrough"))).await;
    let v = assert_envelope(&parts, &body, 409, "CONFLICT");
    assert_eq!(v["error"]["message"], "version 3 is stale");
    assert_eq!(v["error"]["details"]["current"], 4);
    assert_ne!(
        v["error"]["timestamp"], "2026-11-25T08:27:32.123Z",
        "the timestamp is the layer's own"
    );
    assert_ne!(v["error"]["request_id"], "upstream-id");
}

#[tokio::test]
async fn tower_http_408_and_413_become_envelopes() {
    let app = Router::new()
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .route(
            "/upload",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .layer(tower_http::limit::RequestBodyLimitLayer::new(1024))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            Duration::from_millis(100),
        ))
        .layer(ErrorEnvelopeLayer::new());
    let server = fender_testkit::serve_service(app).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(server.url("/slow"))).await;
    assert_envelope(&parts, &body, 408, "TIMEOUT");
    let req = Request::post(server.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 10_000])))
        .unwrap();
    let (parts, body) = send(&client, req).await;
    assert_envelope(&parts, &body, 413, "INVALID_REQUEST");
}
