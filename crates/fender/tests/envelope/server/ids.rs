//! Request ids: kept when valid, replaced when not, generated when missing, in every response.

use axum::http::HeaderValue;
use bytes::Bytes;
use fender::envelope::ErrorEnvelopeLayer;
use http::Request;
use http_body_util::Full;
use tower::ServiceBuilder;

use super::{assert_envelope, is_uuid_v7, serve_app};
use crate::support::{self, get, get_with_id, send};

#[tokio::test]
async fn valid_request_ids_are_kept_and_echoed_on_success() {
    let server = serve_app().await;
    let req = get_with_id(server.url("/id"), "client-abc.123:x_y-z");
    let (parts, body) = send(&support::client(), req).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-request-id"], "client-abc.123:x_y-z");
    assert_eq!(
        &body[..],
        b"client-abc.123:x_y-z",
        "the handler saw the same id"
    );
}

#[tokio::test]
async fn invalid_request_ids_are_replaced_by_uuid_v7() {
    let server = serve_app().await;
    let client = support::client();
    let long = "a".repeat(200);
    let inbound: Vec<HeaderValue> = vec![
        HeaderValue::from_str(&long).unwrap(),
        HeaderValue::from_static("has spaces in it"),
        HeaderValue::from_bytes("caf\u{e9}-\u{2603}".as_bytes()).unwrap(),
        HeaderValue::from_static("<script>alert(1)</script>"),
    ];
    for value in inbound {
        let req = Request::get(server.url("/id"))
            .header("x-request-id", value.clone())
            .body(Full::new(Bytes::new()))
            .unwrap();
        let (parts, body) = send(&client, req).await;
        let id = parts.headers["x-request-id"].to_str().unwrap();
        assert!(is_uuid_v7(id), "{value:?} was replaced by {id}");
        assert_eq!(&body[..], id.as_bytes(), "the handler saw the replacement");
    }
}

#[tokio::test]
async fn missing_request_ids_are_generated_on_success_and_error() {
    let server = serve_app().await;
    let client = support::client();
    for path in ["/ok", "/no-such-route", "/validation"] {
        let (parts, _) = send(&client, get(server.url(path))).await;
        let id = parts.headers["x-request-id"].to_str().unwrap();
        assert!(is_uuid_v7(id), "{path}: {id}");
    }
}

#[tokio::test]
async fn handler_api_errors_get_the_request_id_and_timestamp() {
    let server = serve_app().await;
    let req = get_with_id(server.url("/validation"), "req-7");
    let (parts, body) = send(&support::client(), req).await;
    let v = assert_envelope(&parts, &body, 422, "VALIDATION_ERROR");
    assert_eq!(v["error"]["request_id"], "req-7");
    assert_eq!(
        v["error"]["message"],
        "email must be a valid email address; name must not be empty"
    );
    assert_eq!(v["error"]["details"]["fields"][1]["field"], "name");
    let ts: jiff::Timestamp = v["error"]["timestamp"].as_str().unwrap().parse().unwrap();
    let age = jiff::Timestamp::now().duration_since(ts);
    assert!(
        age.as_secs().abs() < 600,
        "the timestamp is when the error happened: {ts}"
    );
    assert_eq!(
        v["error"]["details"]["fields"][1]["message"],
        "must not be empty"
    );
}

#[tokio::test]
async fn ten_thousand_generated_request_ids_are_unique_uuid_v7s() {
    let upstream = fender_testkit::Upstream::new(fender_testkit::Reply::ok()).record_limit(0);
    let svc = ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new())
        .service(upstream.service());
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let res = tower::ServiceExt::oneshot(svc.clone(), get("/"))
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(is_uuid_v7(&id), "{id}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 10_000);
}

#[tokio::test]
async fn handler_errors_are_rendered_once_at_the_edge_with_the_requests_id() {
    use std::sync::{Arc, Mutex};

    use fender::ApiError;
    use tower::{Layer, ServiceExt, service_fn};

    // What the handler's own `into_http_response` produced, before the layer saw it.
    let produced = Arc::new(Mutex::new(None));
    let svc = ErrorEnvelopeLayer::new().layer(service_fn({
        let produced = produced.clone();
        move |_req: http::Request<_>| {
            let res = ApiError::not_found("no order 7").into_http_response();
            let size = http_body::Body::size_hint(res.body()).exact();
            *produced.lock().unwrap() = size;
            async move { Ok::<_, std::convert::Infallible>(res) }
        }
    }));
    let res = svc.oneshot(get_with_id("/", "once-1")).await.unwrap();
    assert_eq!(
        *produced.lock().unwrap(),
        Some(0),
        "the handler's error was not rendered before the layer"
    );
    let (parts, body) = res.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    let v = assert_envelope(&parts, &body, 404, "NOT_FOUND");
    assert_eq!(v["error"]["request_id"], "once-1");
    assert_eq!(v["error"]["message"], "no order 7");
}
