//! Servers that are hostile, not just broken: bodies that never end, request ids built to
//! break logs.

use std::convert::Infallible;

use fender::ErrorCode;
use fender::envelope::{DecodeEnvelopeLayer, decode_error, decode_error_with_limit};
use tower::{Layer, ServiceExt, service_fn};

use crate::support::{HostileBody, get_with_id, response};

#[tokio::test]
async fn decode_error_gives_up_on_a_body_of_endless_empty_frames() {
    let body = HostileBody::empty_frames();
    let err = decode_error(response(503, "application/json", body.clone())).await;
    assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
    assert!(err.message().contains("could not be read"), "{err}");
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());

    let body = HostileBody::empty_frames();
    let err = decode_error_with_limit(response(500, "text/plain", body.clone()), 16).await;
    assert_eq!(err.code(), &ErrorCode::InternalError);
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());
}

#[tokio::test]
async fn the_decoding_layer_gives_up_on_a_body_of_endless_empty_frames() {
    let body = HostileBody::empty_frames();
    let inner = {
        let body = body.clone();
        service_fn(move |_req: http::Request<_>| {
            let body = body.clone();
            async move { Ok::<_, Infallible>(response(502, "application/json", body)) }
        })
    };
    let err = DecodeEnvelopeLayer::new()
        .layer(inner)
        .oneshot(get_with_id("/", "sent-1"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), &ErrorCode::BadGateway);
    assert_eq!(err.request_id(), Some("sent-1"));
    assert!(err.source_error().unwrap().to_string().contains("frames"));
    assert!(body.polls() <= 10_000, "polled {} times", body.polls());
}
