//! Request ids (CONTRACT.md §5): keep a well-formed inbound `x-request-id`, generate a UUID v7 otherwise.
//!
//! The id travels as tower-http's [`RequestId`] in the request extensions, so handlers, tracing
//! spans and tower-http's own request-id layers all read the same value. [`MakeRequestUuidV7`]
//! plugs into tower-http's `SetRequestIdLayer` for users who assemble their own stack.
//!
//! ```
//! use fender::request_id::{is_valid_request_id, resolve_request_id};
//! use http::HeaderValue;
//!
//! assert!(is_valid_request_id("req-42:retry.1_a"));
//! assert!(!is_valid_request_id("has space"));
//! assert!(!is_valid_request_id(&"x".repeat(129)));
//!
//! let kept = resolve_request_id(Some(&HeaderValue::from_static("abc-123")));
//! assert_eq!(kept.header_value(), "abc-123");
//! let generated = resolve_request_id(Some(&HeaderValue::from_static("<script>")));
//! assert_eq!(generated.header_value().len(), 36); // a fresh UUID v7
//! ```

use http::header::HeaderName;
use http::{HeaderValue, Request};
pub use tower_http::request_id::{MakeRequestId, RequestId};

/// The header that carries the request id: `x-request-id`.
pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The longest inbound request id that is kept.
pub const MAX_REQUEST_ID_LEN: usize = 128;

/// Whether an inbound id is kept: 1–128 characters of `[A-Za-z0-9._:-]`.
pub fn is_valid_request_id(id: &str) -> bool {
    is_valid_request_id_bytes(id.as_bytes())
}

fn is_valid_request_id_bytes(id: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// A new request id: a UUID v7 (time-ordered to the millisecond, so ids sort by arrival in
/// logs).
///
/// The 74 random bits come from a thread-local generator, and no lock is taken: uuid's own
/// `now_v7` keeps ids strictly increasing within a millisecond behind a process-wide lock that
/// every server thread would contend on for every request. Ids of one millisecond are unordered
/// among themselves, which RFC 9562 allows; they stay unique by their random bits.
pub fn new_request_id() -> RequestId {
    let millis = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as u64);
    // A v4 id is 122 random bits from the thread-local generator; its fixed version and variant
    // bits fall exactly where the v7 layout writes its own.
    let random = uuid::Uuid::new_v4();
    let mut rand_bytes = [0u8; 10];
    rand_bytes.copy_from_slice(&random.as_bytes()[6..]);
    let id = uuid::Builder::from_unix_timestamp_millis(millis, &rand_bytes).into_uuid();
    // Formatted on the stack, then moved into one shared allocation: the layers clone the id
    // into the request's extensions and headers and onto the response, and a clone of shared
    // bytes is a reference count, where one of bytes copied from a `&str` would allocate again
    // to promote them to shared storage.
    let mut text = [0u8; uuid::fmt::Hyphenated::LENGTH];
    id.hyphenated().encode_lower(&mut text);
    let value = HeaderValue::from_maybe_shared(bytes::Bytes::from_owner(text))
        .expect("a UUID is a valid header value");
    RequestId::new(value)
}

/// The id for a request whose inbound `x-request-id` is `inbound`: kept when valid, else new.
pub fn resolve_request_id(inbound: Option<&HeaderValue>) -> RequestId {
    match inbound {
        Some(value) if is_valid_request_id_bytes(value.as_bytes()) => RequestId::new(value.clone()),
        _ => new_request_id(),
    }
}

/// The request id of a request, if a layer put one in its extensions.
pub fn request_id_of<B>(request: &Request<B>) -> Option<&str> {
    request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
}

/// A tower-http [`MakeRequestId`] that keeps nothing and makes UUID v7 ids.
///
/// ```
/// use fender::request_id::MakeRequestUuidV7;
/// use tower_http::request_id::SetRequestIdLayer;
///
/// let layer = SetRequestIdLayer::x_request_id(MakeRequestUuidV7);
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct MakeRequestUuidV7;

impl MakeRequestId for MakeRequestUuidV7 {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        Some(new_request_id())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn validity_follows_the_contract() {
        assert!(is_valid_request_id("a"));
        assert!(is_valid_request_id(&"A".repeat(128)));
        assert!(is_valid_request_id("0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a"));
        assert!(!is_valid_request_id(""));
        assert!(!is_valid_request_id(&"A".repeat(129)));
        for bad in ["a b", "a/b", "é", "a\tb", "a\"b", "{}", "a,b"] {
            assert!(!is_valid_request_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn invalid_or_missing_ids_are_replaced_by_uuid_v7() {
        let long = HeaderValue::from_str(&"x".repeat(200)).unwrap();
        for inbound in [None, Some(&long)] {
            let id = resolve_request_id(inbound);
            let text = id.header_value().to_str().unwrap();
            let uuid = uuid::Uuid::parse_str(text).unwrap();
            assert_eq!(uuid.get_version_num(), 7);
        }
        let opaque = HeaderValue::from_bytes(b"caf\xe9").unwrap();
        assert_ne!(resolve_request_id(Some(&opaque)).header_value(), &opaque);
    }

    #[test]
    fn generated_ids_are_v7_and_carry_the_current_millisecond() {
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let id = new_request_id();
        let uuid = uuid::Uuid::parse_str(id.header_value().to_str().unwrap()).unwrap();
        assert_eq!(uuid.get_version_num(), 7);
        assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122);
        let (secs, nanos) = uuid.get_timestamp().unwrap().to_unix();
        let millis = secs * 1000 + u64::from(nanos) / 1_000_000;
        assert!(
            millis >= before && millis < before + 60_000,
            "{millis} vs {before}"
        );
    }

    #[test]
    fn generated_ids_are_unique() {
        let ids: HashSet<_> = (0..10_000)
            .map(|_| new_request_id().into_header_value())
            .collect();
        assert_eq!(ids.len(), 10_000);
    }
}
