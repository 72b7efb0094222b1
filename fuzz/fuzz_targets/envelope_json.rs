//! The wire `Envelope` from any bytes, and `ApiError::from_envelope` on what parses.
//!
//! Invariants: no panic; what parses serializes and parses back to the same envelope; the
//! `ApiError` made from it keeps its code, message, details and timestamp, and its request id
//! when it is valid (an empty id or timestamp is none); `to_envelope` sends a 4xx as it is and
//! anything else with the code's generic message, no details and a contract code;
//! `to_envelope` and `from_envelope` reach a fixed point; the response `into_http_response`
//! renders is a complete envelope with a fresh timestamp, whose `request_id` is the
//! `x-request-id` header.
#![no_main]

use fender::{ApiError, ErrorCode};
use fender::error::Envelope;
use fender_fuzz::check::{envelope_fields, is_contract_timestamp, is_fresh_request_id};
use http::StatusCode;
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;

/// Statuses to pair an envelope with, picked by the input's length so that seeds stay plain
/// JSON files.
const STATUSES: [u16; 10] = [400, 404, 405, 422, 429, 500, 502, 503, 504, 599];

fuzz_target!(|data: &[u8]| {
    let Ok(envelope) = serde_json::from_slice::<Envelope>(data) else {
        return;
    };
    let status = StatusCode::from_u16(STATUSES[data.len() % STATUSES.len()]).unwrap();

    let json = serde_json::to_vec(&envelope).expect("an envelope serializes");
    let back: Envelope = serde_json::from_slice(&json).expect("a serialized envelope parses");
    // Regression (it failed at bce411a, fixed since): serde_json's default float parsing is not exact, so a
    // float in `details` can come back one ULP off after an encode and a decode (the integer
    // -118446744073709551616 reads as -1.1844674407370955e+20, which reads back as
    // ...957e+20). serde_json's `float_roundtrip` feature makes it exact. Input:
    // fuzz/regressions/envelope_json/float-detail-changes-on-reencode.json.
    assert_eq!(back, envelope, "{}", String::from_utf8_lossy(&json));

    let e = &envelope.error;
    let api = ApiError::from_envelope(envelope.clone(), status);
    assert_eq!(api.status(), status);
    assert_eq!(api.code(), &e.code);
    assert_eq!(api.message(), e.message);
    assert_eq!(api.details(), &e.details);
    let non_empty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
    // A request id from a body gets the header's validation: kept when valid, else none.
    let valid_id = non_empty(&e.request_id).filter(|id| fender::request_id::is_valid_request_id(id));
    assert_eq!(api.request_id().map(str::to_owned), valid_id);
    assert_eq!(api.timestamp().map(str::to_owned), non_empty(&e.timestamp));

    // What goes on the wire: a 4xx as it is; anything else the code's generic message, no
    // details, and only a code of the contract.
    let out = api.to_envelope();
    let (code, message, details) = if status.is_client_error() {
        (e.code.clone(), e.message.clone(), e.details.clone())
    } else {
        let code = match &e.code {
            ErrorCode::Other(_) => ErrorCode::from_status(status),
            code => code.clone(),
        };
        let message = code.generic_message().to_owned();
        (code, message, serde_json::Map::new())
    };
    assert_eq!(out.error.code, code);
    assert_eq!(out.error.message, message);
    assert_eq!(out.error.details, details);
    assert_eq!(out.error.request_id, Some(valid_id.clone().unwrap_or_default()));
    assert_eq!(
        ApiError::from_envelope(out.clone(), status).to_envelope(),
        out
    );

    let (parts, body) = api.into_http_response().into_parts();
    assert_eq!(parts.status, status);
    assert_eq!(parts.headers["content-type"], "application/json");
    let body = fender_fuzz::block_on(body.collect())
        .expect("a full body does not fail")
        .to_bytes();
    let fields = match envelope_fields(&body) {
        Ok(fields) => fields,
        Err(why) => panic!("{why}: {}", String::from_utf8_lossy(&body)),
    };
    let rendered: Envelope = serde_json::from_slice(&body).expect("the rendered body parses");
    assert_eq!(rendered.error.code, code);
    assert_eq!(rendered.error.message, message);
    assert_eq!(rendered.error.details, details);
    match valid_id {
        Some(id) => assert_eq!(fields.request_id, id),
        None => assert!(
            is_fresh_request_id(&fields.request_id),
            "{:?}",
            fields.request_id
        ),
    }
    // The timestamp on the wire is always the time of rendering.
    assert!(
        is_contract_timestamp(&fields.timestamp),
        "{:?}",
        fields.timestamp
    );
    assert_eq!(
        parts.headers.get("x-request-id").map(|v| v.as_bytes()),
        Some(fields.request_id.as_bytes()),
        "the x-request-id header is the envelope's request_id"
    );
});
