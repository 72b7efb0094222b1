//! Failures inside the server become envelopes: panics, inner timeouts, unknown and mapped
//! errors, load shedding.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use fender::ApiError;
use fender::envelope::ErrorEnvelopeLayer;
use http::Request;
use http_body_util::Full;
use tower::ServiceBuilder;

use super::{assert_envelope, serve_app};
use crate::support::{self, BoxError, LogBuffer, get, send};

#[tokio::test]
async fn a_panicking_handler_gives_a_500_envelope_and_the_server_lives_on() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = serve_app().await;
    let client = support::client();
    let (parts, body) = send(&client, get(server.url("/panic"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    let (parts, _) = send(&client, get(server.url("/ok"))).await;
    assert_eq!(parts.status, 200);
    let line = logs.line_with(v["error"]["request_id"].as_str().unwrap());
    assert!(line.contains("ERROR"), "{line}");
    assert!(line.contains("status=500"), "{line}");
    assert!(
        line.contains("code=\"INTERNAL_ERROR\"") || line.contains("code=INTERNAL_ERROR"),
        "{line}"
    );
    assert!(
        line.contains("invariant broken: secret=42"),
        "the log has the cause: {line}"
    );
}

#[derive(Debug)]
struct Mystery;
impl std::fmt::Display for Mystery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("mystery failure with internal detail")
    }
}
impl std::error::Error for Mystery {}

#[derive(Debug)]
struct Quota;
impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("quota")
    }
}
impl std::error::Error for Quota {}

/// A plain tower stack (no axum) whose inner service fails in various ways.
fn failing_stack(
    fail: &'static str,
) -> impl tower::Service<
    Request<hyper::body::Incoming>,
    Response = http::Response<
        impl http_body::Body<Data = Bytes, Error = BoxError> + Send + 'static,
    >,
    Error = Infallible,
    Future = impl Send,
> + Clone
+ Send
+ 'static {
    ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new().map_error(|e| {
            e.downcast_ref::<Quota>()
                .map(|_| ApiError::rate_limit_exceeded("monthly quota exhausted"))
        }))
        .layer(tower::timeout::TimeoutLayer::new(Duration::from_millis(
            200,
        )))
        .service_fn(move |_req: Request<hyper::body::Incoming>| async move {
            match fail {
                "timeout" => {
                    tokio::time::sleep(Duration::from_secs(60)).await;
                    Ok(http::Response::new(Full::new(Bytes::new())))
                }
                "mystery" => Err::<_, BoxError>(Box::new(Mystery)),
                "quota" => Err::<_, BoxError>(Box::new(Quota)),
                _ => Ok(http::Response::new(Full::new(Bytes::from_static(b"ok")))),
            }
        })
}

#[tokio::test]
async fn inner_timeouts_become_504_timeout() {
    let server = fender_testkit::serve_service(failing_stack("timeout")).await;
    let (parts, body) = send(&support::client(), get(server.url("/"))).await;
    assert_envelope(&parts, &body, 504, "TIMEOUT");
}

#[tokio::test]
async fn unknown_inner_errors_become_generic_500s() {
    let server = fender_testkit::serve_service(failing_stack("mystery")).await;
    let (parts, body) = send(&support::client(), get(server.url("/"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("mystery"));
}

#[tokio::test]
async fn user_error_types_map_through_map_error() {
    let server = fender_testkit::serve_service(failing_stack("quota")).await;
    let (parts, body) = send(&support::client(), get(server.url("/"))).await;
    let v = assert_envelope(&parts, &body, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(v["error"]["message"], "monthly quota exhausted");
}

#[tokio::test]
async fn load_shedding_becomes_503_with_retry_after() {
    // A service that is never ready, behind load shedding: every call is shed.
    let never_ready = tower::service_fn(|_req: Request<hyper::body::Incoming>| async {
        Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::new())))
    });
    let stack = ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new())
        .load_shed()
        .concurrency_limit(1)
        .service(tower::util::MapFuture::new(never_ready, |f| async move {
            std::future::pending::<()>().await;
            f.await
        }));
    let server = fender_testkit::serve_service(stack).await;
    let client = support::client();
    // Occupy the one slot, then the next request is shed.
    let first = tokio::spawn({
        let client = client.clone();
        let url = server.url("/");
        async move { client.request(get(url)).await }
    });
    let mut shed = None;
    for _ in 0..50 {
        let (parts, body) = send(&client, get(server.url("/"))).await;
        if parts.status == 503 {
            shed = Some((parts, body));
            break;
        }
    }
    first.abort();
    let (parts, body) = shed.expect("a request was shed");
    assert_envelope(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(parts.headers[http::header::RETRY_AFTER], "1");
}

/// Sends raw bytes to the server and reads its whole answer (hyper closes the connection after
/// a request it could not parse).
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn hyper_answers_requests_it_cannot_parse_itself_without_an_envelope() {
    let server = serve_app().await;
    let mut many_headers = String::from("GET /ok HTTP/1.1\r\nhost: x\r\n");
    for i in 0..200 {
        many_headers.push_str(&format!("x-h{i}: v\r\n"));
    }
    many_headers.push_str("\r\n");
    let cases: [(&[u8], &str); 3] = [
        (many_headers.as_bytes(), "431"),
        (b"GET /ok HTTP/1.1\r\nhost: x\r\nx-bad: a\0b\r\n\r\n", "400"),
        (b"\x01\x02 garbage\r\n\r\n", "400"),
    ];
    for (request, status) in cases {
        let answer = raw_exchange(server.addr(), request).await;
        let head = answer.lines().next().unwrap_or_default();
        assert!(head.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        let lower = answer.to_ascii_lowercase();
        assert!(
            !lower.contains("x-request-id"),
            "hyper's own answer: {answer}"
        );
        assert!(!lower.contains("application/json"), "{answer}");
    }
    // Requests hyper parses do reach the layer.
    let ok = raw_exchange(
        server.addr(),
        b"GET /nowhere HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await;
    assert!(ok.to_ascii_lowercase().contains("x-request-id"), "{ok}");
}
