//! `fender::request_id` on any inbound `x-request-id` bytes.
//!
//! Invariants: `is_valid_request_id` is the contract's rule (1 to 128 characters of
//! `[A-Za-z0-9._:-]`); `resolve_request_id` keeps exactly the valid ids, unchanged, and
//! replaces every other value (or a missing header) with a fresh UUID v7, a new one each time.
#![no_main]

use fender::request_id::{
    MakeRequestId, MakeRequestUuidV7, is_valid_request_id, resolve_request_id,
};
use fender_fuzz::check::{id_follows_contract, is_fresh_request_id};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

fn assert_fresh(id: &HeaderValue, other: &HeaderValue) {
    let text = id.to_str().expect("a generated id is ASCII");
    assert!(is_fresh_request_id(text), "{text:?} is not a fresh UUID v7");
    assert_ne!(id, other, "two generated ids are the same");
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            is_valid_request_id(text),
            id_follows_contract(data),
            "validity of {text:?}"
        );
    }

    let Ok(inbound) = HeaderValue::from_bytes(data) else {
        // Not a header value: such a request cannot carry it, so it is as good as missing.
        let id = resolve_request_id(None).into_header_value();
        assert_fresh(&id, &resolve_request_id(None).into_header_value());
        return;
    };
    let resolved = resolve_request_id(Some(&inbound)).into_header_value();
    if id_follows_contract(data) {
        assert_eq!(resolved, inbound, "a valid id is kept as it is");
    } else {
        assert_ne!(resolved, inbound, "an invalid id is replaced");
        let again = resolve_request_id(Some(&inbound)).into_header_value();
        assert_fresh(&resolved, &again);
    }

    let request = http::Request::builder()
        .header("x-request-id", inbound)
        .body(())
        .unwrap();
    let made = MakeRequestUuidV7
        .make_request_id(&request)
        .expect("it always makes an id")
        .into_header_value();
    assert_fresh(&made, &resolved);
});
