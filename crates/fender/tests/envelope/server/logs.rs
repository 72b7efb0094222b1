//! Every error response is logged with its request id: 5xx at `ERROR`, 4xx at `DEBUG`.

use super::serve_app;
use crate::support::{self, LogBuffer, get_with_id, send};

#[tokio::test]
async fn client_errors_are_logged_at_debug_with_their_id() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = serve_app().await;
    send(
        &support::client(),
        get_with_id(server.url("/nowhere"), "find-me-404"),
    )
    .await;
    let line = logs.line_with("find-me-404");
    assert!(
        line.contains("DEBUG") && line.contains("status=404"),
        "{line}"
    );
}

#[tokio::test]
async fn statuses_past_599_become_envelopes_logged_as_errors() {
    use std::convert::Infallible;
    use tower::{Layer, ServiceExt, service_fn};

    let logs = LogBuffer::default();
    let _guard = logs.install();
    for n in [600u16, 799, 999] {
        let inner = service_fn(move |_req: http::Request<_>| async move {
            let body = http_body_util::Full::new(bytes::Bytes::new());
            Ok::<_, Infallible>(crate::support::response(n, "text/plain", body))
        });
        let id = format!("odd-{n}");
        let res = fender::envelope::ErrorEnvelopeLayer::new()
            .layer(inner)
            .oneshot(get_with_id("/", &id))
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let body = http_body_util::BodyExt::collect(body)
            .await
            .unwrap()
            .to_bytes();
        let v = super::assert_envelope(&parts, &body, n, "INTERNAL_ERROR");
        assert_eq!(v["error"]["message"], "internal server error");
        let line = logs.line_with(&id);
        assert_eq!(line.split_whitespace().nth(1), Some("ERROR"), "{line}");
    }
}

#[tokio::test]
async fn the_callers_attempt_count_is_logged_with_the_request_id() {
    let logs = LogBuffer::default();
    let _guard = logs.install();
    let server = serve_app().await;
    let mut req = get_with_id(server.url("/nowhere"), "third-try");
    req.headers_mut()
        .insert("x-attempt-count", http::HeaderValue::from_static("3"));
    send(&support::client(), req).await;
    let line = logs.line_with("third-try");
    assert!(line.contains("attempt=3"), "{line}");
    // No header: the first attempt.
    send(
        &support::client(),
        get_with_id(server.url("/nowhere"), "first-try"),
    )
    .await;
    assert!(logs.line_with("first-try").contains("attempt=1"));
}
