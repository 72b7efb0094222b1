//! The in-process face: the same replies without sockets.

use std::io;
use std::time::Duration;

use bytes::Bytes;
use fender_testkit::{Plan, Reply, TestBody, Upstream};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Service, ServiceExt};

use crate::support::io_error_kind;

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path).body(Full::default()).unwrap()
}

async fn call(
    upstream: &Upstream,
    request: Request<Full<Bytes>>,
) -> Result<Response<TestBody>, fender_testkit::BoxError> {
    upstream.service().oneshot(request).await
}

#[tokio::test]
async fn records_every_request_with_its_body_and_reply() {
    let upstream = Upstream::new(Reply::status(503));
    let request = Request::put("/items/1")
        .header("x-a", "b")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();

    let response = call(&upstream, request).await.unwrap();

    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let received = upstream.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, http::Method::PUT);
    assert_eq!(received[0].uri, "/items/1");
    assert_eq!(received[0].headers["x-a"], "b");
    assert_eq!(received[0].body, "payload");
    assert_eq!(received[0].reply, "503");
}

#[tokio::test]
async fn bodies_in_many_chunks_are_recorded_whole() {
    use futures_util::stream;
    use http_body::Frame;
    use http_body_util::StreamBody;

    let upstream = Upstream::new(Reply::ok());
    let chunks = ["a", "bc", "", "def"]
        .into_iter()
        .map(|c| Ok::<_, io::Error>(Frame::data(Bytes::from_static(c.as_bytes()))));
    let request = Request::post("/")
        .body(StreamBody::new(stream::iter(chunks)))
        .unwrap();

    upstream.service().oneshot(request).await.unwrap();

    assert_eq!(upstream.received()[0].body, "abcdef");
}

#[tokio::test]
async fn clones_share_the_record() {
    let upstream = Upstream::new(Reply::ok());
    let clone = upstream.clone();

    call(&clone, get("/a")).await.unwrap();
    call(&upstream, get("/b")).await.unwrap();

    assert_eq!(upstream.count(), 2);
    assert_eq!(clone.received()[1].uri, "/b");
    upstream.clear();
    assert_eq!(clone.count(), 0);
}

#[tokio::test]
async fn reset_fails_the_call_with_connection_reset() {
    let upstream = Upstream::new(Reply::reset());

    let err = call(&upstream, get("/")).await.unwrap_err();

    assert_eq!(io_error_kind(&*err), Some(io::ErrorKind::ConnectionReset));
    assert_eq!(upstream.received()[0].reply, "reset");
}

#[tokio::test(start_paused = true)]
async fn hang_never_completes() {
    let upstream = Upstream::new(Reply::hang());

    let outcome = tokio::time::timeout(Duration::from_secs(3600), call(&upstream, get("/"))).await;

    assert!(outcome.is_err());
    assert_eq!(upstream.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn delay_holds_the_response_back_exactly_that_long() {
    use futures_util::FutureExt;

    let upstream = Upstream::new(Reply::ok().delay(Duration::from_secs(2)));
    let mut response = std::pin::pin!(call(&upstream, get("/")));

    assert!((&mut response).now_or_never().is_none());
    assert_eq!(upstream.count(), 1, "recorded on arrival, before the delay");
    tokio::time::advance(Duration::from_millis(1999)).await;
    assert!((&mut response).now_or_never().is_none());

    tokio::time::advance(Duration::from_millis(1)).await;
    let response = (&mut response)
        .now_or_never()
        .expect("ready after 2 s")
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn close_mid_body_fails_after_part_of_the_body() {
    let upstream = Upstream::new(Reply::close_mid_body());

    let response = call(&upstream, get("/")).await.unwrap();

    assert_eq!(response.headers()["content-length"], "64");
    let mut body = response.into_body();
    let first = body.frame().await.unwrap().unwrap().into_data().unwrap();
    assert_eq!(first.len(), 16);
    let err = body.frame().await.unwrap().unwrap_err();
    assert_eq!(io_error_kind(&*err), Some(io::ErrorKind::UnexpectedEof));
}

#[tokio::test(start_paused = true)]
async fn drip_sends_a_chunk_per_interval() {
    let upstream = Upstream::new(Reply::drip("xy", 3, Duration::from_secs(1)));
    let response = call(&upstream, get("/")).await.unwrap();
    let start = Instant::now();

    let body = response.into_body().collect().await.unwrap().to_bytes();

    assert_eq!(body, "xyxyxy");
    assert_eq!(start.elapsed(), Duration::from_secs(3));
}

#[tokio::test]
async fn status_replies_without_a_body_have_none() {
    let upstream = Upstream::new(Reply::status(204));

    let response = call(&upstream, get("/")).await.unwrap();

    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.headers().get("content-type").is_none());
    assert!(
        response
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
}

#[tokio::test]
async fn header_and_body_override_the_defaults() {
    let upstream = Upstream::new(Reply::ok().header("content-type", "text/plain").body("hi"));
    let mut svc = upstream.service();

    let ready = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
        .await
        .unwrap();
    let response = ready.call(get("/")).await.unwrap();

    assert_eq!(response.headers()["content-type"], "text/plain");
    assert_eq!(
        response.into_body().collect().await.unwrap().to_bytes(),
        "hi"
    );
}

#[tokio::test]
async fn envelopes_without_a_request_id_get_a_generated_one() {
    let upstream = Upstream::new(Reply::envelope(503, "SERVICE_UNAVAILABLE", "down"));

    let response = call(&upstream, get("/")).await.unwrap();

    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["request_id"], id.as_str());
    assert_eq!(json["error"]["code"], "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn plans_are_shared_between_both_faces() {
    let upstream = Upstream::new(Plan::sequence([Reply::status(500), Reply::ok()]));
    let server = upstream.serve().await;

    call(&upstream, get("/in-process")).await.unwrap();
    let response = crate::support::client()
        .get(server.url("/socket"))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    let labels: Vec<String> = server.received().into_iter().map(|r| r.reply).collect();
    assert_eq!(labels, ["500", "200"]);
}

#[tokio::test]
async fn the_record_keeps_the_last_requests_within_its_limit() {
    let upstream = Upstream::new(Reply::ok()).record_limit(2);

    for path in ["/1", "/2", "/3"] {
        call(&upstream, get(path)).await.unwrap();
    }

    assert_eq!(upstream.count(), 3);
    let uris: Vec<String> = upstream
        .received()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    assert_eq!(uris, ["/2", "/3"]);

    let unrecorded = Upstream::new(Reply::ok()).record_limit(0);
    call(&unrecorded, get("/")).await.unwrap();
    assert_eq!(unrecorded.count(), 1);
    assert!(unrecorded.received().is_empty());
}

#[tokio::test(start_paused = true)]
async fn the_record_notes_when_each_request_arrived() {
    let upstream = Upstream::new(Reply::ok());
    let start = Instant::now();

    call(&upstream, get("/")).await.unwrap();
    tokio::time::advance(Duration::from_secs(5)).await;
    call(&upstream, get("/")).await.unwrap();

    let received = upstream.received();
    assert_eq!(received[0].at - start, Duration::ZERO);
    assert_eq!(received[1].at - start, Duration::from_secs(5));
}

#[tokio::test]
async fn envelopes_do_not_echo_invalid_request_ids() {
    let upstream = Upstream::new(Reply::envelope(500, "INTERNAL_ERROR", "oops"));
    let request = Request::get("/")
        .header("x-request-id", "has spaces")
        .body(Full::default())
        .unwrap();

    let response = call(&upstream, request).await.unwrap();

    let id = response.headers()["x-request-id"].to_str().unwrap();
    assert!(id.starts_with("testkit-"), "{id}");
}

#[tokio::test(start_paused = true)]
async fn with_status_changes_only_the_status() {
    let upstream = Upstream::new(
        Reply::drip("xy", 2, Duration::from_secs(1))
            .header("x-a", "b")
            .with_status(503),
    );
    let response = call(&upstream, get("/")).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-a"], "b");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "xyxy");
    assert_eq!(upstream.received()[0].reply, "drip");
}
