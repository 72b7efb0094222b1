//! Faults on a real socket, seen by a real hyper client over 127.0.0.1.

use std::io;
use std::time::{Duration, UNIX_EPOCH};

use bytes::Bytes;
use fender_testkit::{Plan, Reply, Upstream, refused_addr};
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::net::TcpStream;

use crate::support::{client, io_error_kind, wait_until};

#[tokio::test]
async fn reset_is_a_connection_reset_for_a_hyper_client() {
    let server = Upstream::new(Reply::reset()).serve().await;

    let err = client()
        .get(server.url("/reset"))
        .await
        .expect_err("a reset gives no response");

    assert_eq!(
        io_error_kind(&err),
        Some(io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    let received = server.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].uri, "/reset");
    assert_eq!(received[0].reply, "reset");
}

#[tokio::test]
async fn close_mid_body_gives_the_head_then_a_body_error() {
    let server = Upstream::new(Reply::close_mid_body()).serve().await;

    let response = client().get(server.url("/")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-length"], "64");
    let err = response
        .into_body()
        .collect()
        .await
        .expect_err("the body is cut short");

    assert_eq!(
        io_error_kind(&err),
        Some(io::ErrorKind::UnexpectedEof),
        "{err:?}"
    );
    assert_eq!(server.received()[0].reply, "close-mid-body");
}

#[tokio::test]
async fn hang_hits_a_client_side_timeout() {
    let server = Upstream::new(Plan::sequence([Reply::hang(), Reply::ok()]))
        .serve()
        .await;
    let client = client();
    let request = tokio::spawn(client.get(server.url("/hang")));
    wait_until(|| server.count() == 1).await;

    // From here on nothing may happen but the hang: the paused clock jumps to the timeout as
    // soon as the runtime is idle.
    tokio::time::pause();
    let outcome = tokio::time::timeout(Duration::from_secs(30), request).await;

    assert!(outcome.is_err(), "the hanging request got an answer");
    assert_eq!(server.received()[0].reply, "hang");
}

#[tokio::test]
async fn retry_after_headers_arrive_as_seconds_and_as_http_dates() {
    let at = UNIX_EPOCH + Duration::from_secs(1_795_595_252);
    let server = Upstream::new(Plan::sequence([
        Reply::retry_after_secs(429, 5),
        Reply::retry_after_date(503, at),
    ]))
    .serve()
    .await;
    let client = client();

    let limited = client.get(server.url("/")).await.unwrap();
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(limited.headers()["retry-after"], "5");

    let down = client.get(server.url("/")).await.unwrap();
    assert_eq!(down.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        down.headers()["retry-after"],
        "Wed, 25 Nov 2026 08:27:32 GMT"
    );
    let body = down.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "503 Service Unavailable");
}

#[tokio::test]
async fn the_record_holds_method_uri_headers_and_the_full_body() {
    let server = Upstream::new(Reply::ok()).serve().await;
    let body: Vec<u8> = (0..10 * 1024).map(|i| (i % 251) as u8).collect();
    let request = Request::builder()
        .method(Method::POST)
        .uri(server.url("/orders?id=7"))
        .header("idempotency-key", "k-1")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();

    let response = client().request(request).await.unwrap();
    let answer = response.into_body().collect().await.unwrap().to_bytes();

    assert_eq!(answer, r#"{"ok":true}"#);
    let received = server.received();
    assert_eq!(received.len(), 1);
    let got = &received[0];
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.uri, "/orders?id=7");
    assert_eq!(got.headers["idempotency-key"], "k-1");
    assert_eq!(got.headers["content-length"], "10240");
    assert_eq!(got.body, body);
    assert_eq!(got.reply, "200");
}

#[tokio::test]
async fn envelope_replies_echo_the_request_id() {
    let server = Upstream::new(Reply::envelope(422, "VALIDATION_ERROR", "bad email"))
        .serve()
        .await;
    let request = Request::get(server.url("/users"))
        .header("x-request-id", "req-42")
        .body(Full::default())
        .unwrap();

    let response = client().request(request).await.unwrap();

    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.headers()["x-request-id"], "req-42");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"]["code"], "VALIDATION_ERROR");
    assert_eq!(json["error"]["message"], "bad email");
    assert_eq!(json["error"]["details"], serde_json::json!({}));
    assert_eq!(json["error"]["request_id"], "req-42");
    assert!(json["error"]["timestamp"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn dripping_bodies_arrive_whole() {
    let server = Upstream::new(Reply::drip("abc", 4, Duration::from_millis(5)))
        .serve()
        .await;

    let response = client().get(server.url("/")).await.unwrap();

    assert_eq!(response.headers()["content-length"], "12");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "abcabcabcabc");
}

#[tokio::test]
async fn refused_addr_refuses_connections() {
    let err = TcpStream::connect(refused_addr()).await.unwrap_err();

    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
    assert_eq!(refused_addr(), refused_addr());
    assert!(refused_addr().ip().is_loopback());
}

#[tokio::test]
async fn a_dropped_server_refuses_new_connections() {
    let server = Upstream::new(Reply::ok()).serve().await;
    let addr = server.addr();
    assert!(addr.ip().is_loopback());
    TcpStream::connect(addr).await.unwrap();

    server.shutdown().await;

    let err = TcpStream::connect(addr).await.unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let server = Upstream::new(Reply::ok().delay(Duration::from_millis(100)))
        .serve()
        .await;
    let client = client();
    let request = tokio::spawn(client.get(server.url("/slow")));
    wait_until(|| server.count() == 1).await;

    server.shutdown().await;

    let response = request.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_does_not_wait_for_hanging_requests() {
    let server = Upstream::new(Reply::hang()).serve().await;
    let client = client();
    let request = tokio::spawn(client.get(server.url("/hang")));
    wait_until(|| server.count() == 1).await;

    tokio::time::timeout(Duration::from_secs(5), server.shutdown())
        .await
        .expect("shutdown is bounded");

    // The connection is gone, so the client gets an error rather than hanging forever.
    let outcome = tokio::time::timeout(Duration::from_secs(5), request)
        .await
        .expect("the client sees the connection close");
    assert!(outcome.unwrap().is_err());
}

#[tokio::test]
async fn http2_with_prior_knowledge_is_served_too() {
    let server = Upstream::new(Plan::sequence([Reply::status(503), Reply::reset()]))
        .serve()
        .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();

    let response = client.get(server.url("/h2")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let err = client
        .get(server.url("/h2"))
        .await
        .expect_err("the connection is reset");

    let received = server.received();
    assert_eq!(received[0].version, http::Version::HTTP_2);
    assert_eq!(received[0].uri.path(), "/h2");
    assert_eq!(received[1].reply, "reset");
    assert_eq!(
        io_error_kind(&err),
        Some(io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
}

#[tokio::test]
async fn serve_service_serves_your_service_and_resets_on_request() {
    let app = tower::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
        if req.uri().path() == "/crash" {
            req.extensions()
                .get::<fender_testkit::ResetConnection>()
                .expect("every request carries the handle")
                .reset();
        }
        Ok::<_, std::convert::Infallible>(http::Response::new(http_body_util::Full::new(
            bytes::Bytes::from_static(b"served"),
        )))
    });
    let server = fender_testkit::serve_service(app).await;
    let client = client();

    let fine = client.get(server.url("/")).await.unwrap();
    assert_eq!(fine.status(), 200);
    let body = fine.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "served");

    let err = client.get(server.url("/crash")).await.unwrap_err();
    assert_eq!(
        io_error_kind(&err),
        Some(io::ErrorKind::ConnectionReset),
        "{err:?}"
    );
    // Other connections are unaffected.
    assert_eq!(client.get(server.url("/")).await.unwrap().status(), 200);
    server.shutdown().await;
}
