//! `ErrorEnvelopeLayer` guarantees 1–7, each against a real axum server.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Extension, Path};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use fender::envelope::ErrorEnvelopeLayer;
use fender::request_id::RequestId;
use fender::{ApiError, ErrorCode};
use http::Request;
use http_body_util::{BodyExt, Full, StreamBody};
use serde_json::Value;
use tower::ServiceBuilder;

use crate::support::{self, BoxError, LogBuffer, get as get_req, json, send};

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
        .route(
            "/gone",
            get(|| async { StatusCode::GONE }),
        )
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
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(60)).await;
                "late"
            }),
        )
        .layer(ErrorEnvelopeLayer::new())
}

fn assert_envelope(parts: &http::response::Parts, body: &Bytes, status: u16, code: &str) -> Value {
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
fn assert_timestamp(ts: &str) {
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

fn is_uuid_v7(id: &str) -> bool {
    uuid::Uuid::parse_str(id).is_ok_and(|u| u.get_version_num() == 7)
}

#[tokio::test]
async fn valid_request_ids_are_kept_and_echoed_on_success() {
    let server = support::serve(app()).await;
    let client = support::client();
    let req = Request::get(server.url("/id"))
        .header("x-request-id", "client-abc.123:x_y-z")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, body) = send(&client, req).await;
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
    let server = support::serve(app()).await;
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
    let server = support::serve(app()).await;
    let client = support::client();
    for path in ["/ok", "/no-such-route", "/validation"] {
        let (parts, _) = send(&client, get_req(&server.url(path))).await;
        let id = parts.headers["x-request-id"].to_str().unwrap();
        assert!(is_uuid_v7(id), "{path}: {id}");
    }
}

#[tokio::test]
async fn handler_api_errors_get_the_request_id_and_timestamp() {
    let server = support::serve(app()).await;
    let client = support::client();
    let req = Request::get(server.url("/validation"))
        .header("x-request-id", "req-7")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let (parts, body) = send(&client, req).await;
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
async fn every_code_renders_with_its_status() {
    let server = support::serve(app()).await;
    let client = support::client();
    for code in ErrorCode::ALL {
        let (parts, body) = send(&client, get_req(&server.url(&format!("/code/{code}")))).await;
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
    let server = support::serve(app()).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/nowhere"))).await;
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
    let server = support::serve(app()).await;
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
    let server = support::serve(app()).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/plain-500"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("hunter2"));
}

#[tokio::test]
async fn short_plain_4xx_bodies_become_the_message_and_others_do_not() {
    let server = support::serve(app()).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/plain-404"))).await;
    let v = assert_envelope(&parts, &body, 404, "NOT_FOUND");
    assert_eq!(v["error"]["message"], "no widget with that name");

    let (parts, body) = send(&client, get_req(&server.url("/long-404"))).await;
    let v = assert_envelope(&parts, &body, 404, "NOT_FOUND");
    assert_eq!(v["error"]["message"], "resource not found");

    let (parts, body) = send(&client, get_req(&server.url("/html-400"))).await;
    let v = assert_envelope(&parts, &body, 400, "INVALID_REQUEST");
    assert!(!v["error"]["message"].as_str().unwrap().contains("<html>"));

    let (parts, body) = send(&client, get_req(&server.url("/gone"))).await;
    assert_envelope(&parts, &body, 410, "NOT_FOUND");
}

#[tokio::test]
async fn status_specific_headers_are_kept() {
    let server = support::serve(app()).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/throttled"))).await;
    let v = assert_envelope(&parts, &body, 429, "RATE_LIMIT_EXCEEDED");
    assert_eq!(parts.headers[header::RETRY_AFTER], "12");
    assert_eq!(v["error"]["message"], "slow down");

    let (parts, body) = send(&client, get_req(&server.url("/auth"))).await;
    assert_envelope(&parts, &body, 401, "UNAUTHORIZED");
    assert_eq!(
        parts.headers[header::WWW_AUTHENTICATE],
        "Bearer realm=\"api\""
    );
}

#[tokio::test]
async fn existing_envelopes_keep_their_content_with_this_requests_id() {
    let server = support::serve(app()).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/passthrough"))).await;
    let v = assert_envelope(&parts, &body, 409, "CONFLICT");
    assert_eq!(v["error"]["message"], "version 3 is stale");
    assert_eq!(v["error"]["details"]["current"], 4);
    assert_eq!(v["error"]["timestamp"], "2026-11-25T08:27:32.123Z");
    assert_ne!(v["error"]["request_id"], "upstream-id");
}

#[tokio::test]
async fn a_panicking_handler_gives_a_500_envelope_and_the_server_lives_on() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = support::serve(app()).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/panic"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    let (parts, _) = send(&client, get_req(&server.url("/ok"))).await;
    assert_eq!(parts.status, 200);
    let id = v["error"]["request_id"].as_str().unwrap();
    let log = logs.contents();
    let line = log
        .lines()
        .find(|l| l.contains(id))
        .unwrap_or_else(|| panic!("no log line for {id}: {log}"));
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

#[tokio::test]
async fn client_errors_are_logged_at_debug_with_their_id() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = support::serve(app()).await;
    let client = support::client();
    let req = Request::get(server.url("/nowhere"))
        .header("x-request-id", "find-me-404")
        .body(Full::new(Bytes::new()))
        .unwrap();
    send(&client, req).await;
    let log = logs.contents();
    let line = log.lines().find(|l| l.contains("find-me-404")).unwrap();
    assert!(
        line.contains("DEBUG") && line.contains("status=404"),
        "{line}"
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
    let server = support::serve(failing_stack("timeout")).await;
    let (parts, body) = send(&support::client(), get_req(&server.url("/"))).await;
    assert_envelope(&parts, &body, 504, "TIMEOUT");
}

#[tokio::test]
async fn unknown_inner_errors_become_generic_500s() {
    let server = support::serve(failing_stack("mystery")).await;
    let (parts, body) = send(&support::client(), get_req(&server.url("/"))).await;
    let v = assert_envelope(&parts, &body, 500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "internal server error");
    assert!(!String::from_utf8_lossy(&body).contains("mystery"));
}

#[tokio::test]
async fn user_error_types_map_through_map_error() {
    let server = support::serve(failing_stack("quota")).await;
    let (parts, body) = send(&support::client(), get_req(&server.url("/"))).await;
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
    let server = support::serve(stack).await;
    let client = support::client();
    // Occupy the one slot, then the next request is shed.
    let first = tokio::spawn({
        let client = client.clone();
        let url = server.url("/");
        async move { client.request(get_req(&url)).await }
    });
    let mut shed = None;
    for _ in 0..50 {
        let (parts, body) = send(&client, get_req(&server.url("/"))).await;
        if parts.status == 503 {
            shed = Some((parts, body));
            break;
        }
    }
    first.abort();
    let (parts, body) = shed.expect("a request was shed");
    assert_envelope(&parts, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(parts.headers[header::RETRY_AFTER], "1");
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
    let server = support::serve(app).await;
    let client = support::client();
    let (parts, body) = send(&client, get_req(&server.url("/slow"))).await;
    assert_envelope(&parts, &body, 408, "TIMEOUT");
    let req = Request::post(server.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 10_000])))
        .unwrap();
    let (parts, body) = send(&client, req).await;
    assert_envelope(&parts, &body, 413, "INVALID_REQUEST");
}

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
    let server = support::serve(app).await;
    let client = support::client();
    // The head arrives while the body is still open: nothing waited for the body.
    let res = client
        .request(get_req(&server.url("/stream")))
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
    let server = support::serve(app).await;
    let (parts, body) = send(&support::client(), get_req(&server.url("/json"))).await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.headers["x-custom"], "yes");
    assert_eq!(parts.headers[header::CONTENT_TYPE], "application/json");
    assert_eq!(&body[..], br#"{"id":1}"#);
    let _ = IntoResponse::into_response(StatusCode::OK);
}

#[tokio::test]
async fn ten_thousand_generated_request_ids_are_unique_uuid_v7s() {
    let upstream = fender_testkit::Upstream::new(fender_testkit::Reply::ok()).record_limit(0);
    let svc = ServiceBuilder::new()
        .layer(ErrorEnvelopeLayer::new())
        .service(upstream.service());
    let mut ids = std::collections::HashSet::new();
    for _ in 0..10_000 {
        let res = tower::ServiceExt::oneshot(svc.clone(), get_req("/"))
            .await
            .unwrap();
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(is_uuid_v7(&id), "{id}");
        ids.insert(id);
    }
    assert_eq!(ids.len(), 10_000);
}
