//! Successes pass through untouched but for `x-request-id`, streaming without buffering.

use std::convert::Infallible;

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use bytes::Bytes;
use fender::envelope::ErrorEnvelopeLayer;
use http_body_util::{BodyExt, StreamBody};

use crate::support::{self, get as get_req, send};

#[tokio::test]
async fn success_bodies_stream_without_buffering() {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, Infallible>>(1);
    let rx = std::sync::Arc::new(std::sync::Mutex::new(Some(rx)));
    let app = Router::new()
        .route(
            "/stream",
            get(move || {
                let rx = rx.lock().unwrap().take().unwrap();
                async move {
                    let stream = tokio_stream_from(rx);
                    axum::body::Body::new(StreamBody::new(stream))
                }
            }),
        )
        .layer(ErrorEnvelopeLayer::new());
    let server = fender_testkit::serve_service(app).await;
    let client = support::client();
    // The head arrives while the body is still open: nothing waited for the body.
    let res = client
        .request(get_req(server.url("/stream")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("x-request-id"));
    assert!(!res.headers().contains_key(header::CONTENT_LENGTH));
    let mut body = res.into_body();
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"first"))))
        .await
        .unwrap();
    let frame = body.frame().await.unwrap().unwrap();
    assert_eq!(frame.into_data().unwrap(), "first");
    tx.send(Ok(http_body::Frame::data(Bytes::from_static(b"second"))))
        .await
        .unwrap();
    drop(tx);
    let rest = body.collect().await.unwrap().to_bytes();
    assert_eq!(&rest[..], b"second");
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[tokio::test]
async fn headers_and_json_of_a_success_are_untouched() {
    let app = Router::new()
        .route(
            "/json",
            get(|| async {
                let mut headers = HeaderMap::new();
                headers.insert("x-custom", HeaderValue::from_static("yes"));
                (headers, Json(serde_json::json!({"id": 1})))
            }),
        )
        .layer(ErrorEnvelopeLayer::new());
    let server = fender_testkit::serve_service(app).await;
    let (parts, body) = send(&support::client(), get_req(server.url("/json"))).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-custom"], "yes");
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(&body[..], br#"{"id":1}"#);
    let _ = IntoResponse::into_response(StatusCode::OK);
}
