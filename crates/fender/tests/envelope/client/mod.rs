//! `DecodeEnvelopeLayer` and `decode_error` against real servers.

use std::time::Duration;

use bytes::Bytes;
use fender::envelope::{DecodeEnvelopeLayer, decode_error, error_for_status};
use fender::error::Origin;
use fender::{ApiError, ErrorCode};
use fender_testkit::{Reply, Upstream};
use http::Request;
use http_body_util::{BodyExt, Full};
use tower::{Service, ServiceBuilder, ServiceExt};

use crate::support::{self, get as get_req};

mod hostile;

fn decoding_client()
-> impl Service<Request<Full<Bytes>>, Response = http::Response<hyper::body::Incoming>, Error = ApiError>
+ Clone {
    ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .service(support::client())
}

#[tokio::test]
async fn every_code_round_trips_from_server_envelope_to_client_error() {
    let server = crate::server::serve_app().await;
    let client = decoding_client();
    for code in ErrorCode::ALL {
        let err = client
            .clone()
            .oneshot(get_req(server.url(&format!("/code/{code}"))))
            .await
            .unwrap_err();
        assert_eq!(err.code(), &code);
        assert_eq!(err.status(), code.status());
        assert_eq!(err.origin(), Origin::Response);
        assert_eq!(err.is_retryable(), code.is_retryable(), "{code}");
        assert!(!err.message().is_empty());
        let id = err.request_id().expect("a request id");
        assert!(
            uuid::Uuid::parse_str(id).is_ok(),
            "the id the client sent: {id}"
        );
        assert!(err.timestamp().is_some());
        let expected_delay = matches!(
            code,
            ErrorCode::RateLimitExceeded | ErrorCode::ServiceUnavailable
        )
        .then_some(Duration::from_secs(7));
        assert_eq!(err.retry_after(), expected_delay, "{code}");
    }
}

#[tokio::test]
async fn request_ids_the_client_sends_come_back_on_the_error() {
    let server = crate::server::serve_app().await;
    let req = Request::get(server.url("/validation"))
        .header("x-request-id", "checkout-991")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = decoding_client().oneshot(req).await.unwrap_err();
    assert_eq!(err.request_id(), Some("checkout-991"));
    let fields = err.field_errors();
    assert_eq!(fields.len(), 2);
    assert_eq!(fields[0].field, "email");
    assert_eq!(fields[0].message, "must be a valid email address");
}

#[tokio::test]
async fn successes_pass_through_untouched() {
    let server = crate::server::serve_app().await;
    let res = decoding_client()
        .oneshot(get_req(server.url("/ok")))
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"fine");
}

/// A reply as the misbehaving things in front of real APIs give it: not an envelope, with the
/// server's request id.
fn raw(status: u16, content_type: &'static str, body: impl Into<Bytes>) -> Reply {
    Reply::status(status)
        .header("content-type", content_type)
        .header("x-request-id", "raw-1")
        .body(body)
}

/// The `ApiError` a decoding client makes of `reply`, served by a testkit upstream on a socket.
async fn raw_error(reply: Reply) -> ApiError {
    let server = Upstream::new(reply).serve().await;
    let client = ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new().body_timeout(Duration::from_millis(200)))
        .service(support::client());
    client.oneshot(get_req(server.url("/"))).await.unwrap_err()
}

const NGINX_502: &[u8] = b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center><hr><center>nginx</center></body></html>";

#[tokio::test]
async fn an_html_502_from_a_proxy_decodes_by_its_status() {
    let err = raw_error(raw(502, "text/html", NGINX_502)).await;
    assert_eq!(err.code(), &ErrorCode::BadGateway);
    assert_eq!(err.status(), 502);
    assert!(err.message().contains("not an error envelope"), "{err}");
    assert_eq!(err.request_id(), Some("raw-1"));
    assert_eq!(err.details()["content_type"], "text/html");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn an_empty_503_keeps_its_retry_after() {
    let err = raw_error(Reply::retry_after_secs(503, 3).body("")).await;
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert!(err.message().contains("empty"), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
    assert!(
        err.request_id().is_some(),
        "falls back to the id the client sent"
    );
}

#[tokio::test]
async fn truncated_malformed_and_binary_json_decode_by_status() {
    let json = "application/json";
    for (path, reply, code) in [
        (
            "truncated",
            raw(409, json, r#"{"error":{"code":"CONFLICT","mess"#),
            ErrorCode::Conflict,
        ),
        (
            "malformed",
            raw(400, json, r#"{"error": "just a string"}"#),
            ErrorCode::InvalidRequest,
        ),
        (
            "binary",
            raw(500, json, &b"\xff\xfe\x00\x9c garbage"[..]),
            ErrorCode::InternalError,
        ),
    ] {
        let err = raw_error(reply).await;
        assert_eq!(err.code(), &code, "{path}");
        assert!(
            err.message().contains("not an error envelope"),
            "{path}: {err}"
        );
        assert_eq!(err.request_id(), Some("raw-1"), "{path}");
        assert_eq!(err.origin(), Origin::Response);
    }
}

#[tokio::test]
async fn a_huge_error_body_is_read_only_up_to_the_limit() {
    let mut body = br#"{"error":{"code":"INTERNAL_ERROR","message":""#.to_vec();
    body.extend(std::iter::repeat_n(b'x', 1 << 20));
    body.extend_from_slice(br#""}}"#);
    let err = raw_error(raw(500, "application/json", body)).await;
    assert_eq!(err.code(), &ErrorCode::InternalError);
    assert!(
        err.message().contains("larger than the error body limit"),
        "{err}"
    );
}

#[tokio::test]
async fn unknown_codes_and_extra_fields_are_tolerated() {
    let err = raw_error(raw(
        402,
        "application/json",
        r#"{"error":{"code":"QUOTA_EXHAUSTED","message":"buy more","request_id":"env-9","extra":[1,2]},"meta":{}}"#,
    ))
    .await;
    assert_eq!(err.code(), &ErrorCode::Other("QUOTA_EXHAUSTED".into()));
    assert_eq!(err.status(), 402);
    assert_eq!(err.message(), "buy more");
    assert_eq!(err.request_id(), Some("env-9"));
    assert!(err.details().is_empty());
    assert!(!err.is_retryable());
}

#[tokio::test]
async fn a_body_cut_off_mid_way_is_not_an_envelope() {
    let err = raw_error(Reply::close_mid_body().with_status(502)).await;
    assert_eq!(err.code(), &ErrorCode::BadGateway);
    assert!(err.message().contains("could not be read"), "{err}");
    assert!(err.source_error().is_some(), "the body error is kept");
}

#[tokio::test]
async fn a_stalled_error_body_is_given_up_after_the_body_timeout() {
    let err = raw_error(Reply::drip("{", 2, Duration::from_secs(60)).with_status(503)).await;
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert!(err.message().contains("could not be read"), "{err}");
    assert!(err.source_error().unwrap().to_string().contains("in time"));
}

#[tokio::test]
async fn connection_refused_is_a_retryable_transport_error_with_the_request_id() {
    let addr = fender_testkit::refused_addr();
    let req = Request::get(format!("http://{addr}/"))
        .header("x-request-id", "offline-1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let err = decoding_client().oneshot(req).await.unwrap_err();
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert_eq!(err.origin(), Origin::Transport);
    assert_eq!(err.class(), fender::classify::Class::ConnectFailed);
    assert!(err.is_retryable());
    assert_eq!(err.request_id(), Some("offline-1"));
    let mut source = err
        .source_error()
        .map(|e| e as &(dyn std::error::Error + 'static));
    let mut refused = false;
    while let Some(e) = source {
        refused |= e
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused);
        source = e.source();
    }
    assert!(refused, "the io error is kept in the source chain: {err:?}");
}

#[tokio::test]
async fn a_client_timeout_is_a_retryable_timeout_error() {
    let server = Upstream::new(Reply::ok().delay(Duration::from_secs(60)))
        .serve()
        .await;
    let client = ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .timeout(Duration::from_millis(100))
        .service(support::client());
    let err = client
        .oneshot(get_req(server.url("/slow")))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::Timeout);
    assert_eq!(err.status(), 504);
    assert_eq!(err.origin(), Origin::Transport);
    assert!(err.is_retryable());
}

#[tokio::test]
async fn decode_error_and_error_for_status_work_without_a_layer() {
    let server = crate::server::serve_app().await;
    let client = support::client();
    let res = client
        .request(get_req(server.url("/code/CONFLICT")))
        .await
        .unwrap();
    let err = decode_error(res).await;
    assert_eq!(err.code(), &ErrorCode::Conflict);
    assert!(err.request_id().is_some());

    let ok = client.request(get_req(server.url("/ok"))).await.unwrap();
    assert!(error_for_status(ok).await.is_ok());
    let bad = client
        .request(get_req(server.url("/nowhere")))
        .await
        .unwrap();
    assert_eq!(
        error_for_status(bad).await.unwrap_err().code(),
        &ErrorCode::NotFound
    );
}

#[tokio::test]
async fn decoded_5xx_envelopes_keep_what_the_server_sent() {
    let err = raw_error(raw(
        503,
        "application/json",
        r#"{"error":{"code":"SERVICE_UNAVAILABLE","message":"replica db-3 lags","details":{"replica":"db-3"},"request_id":"env-5","timestamp":"2026-11-25T08:27:32.123Z"}}"#,
    ))
    .await;
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert_eq!(err.message(), "replica db-3 lags");
    assert_eq!(err.details()["replica"], "db-3");
    assert_eq!(err.timestamp(), Some("2026-11-25T08:27:32.123Z"));
}
