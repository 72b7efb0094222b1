//! What every attempt tells the server: its number, and how long the caller will still wait.
//!
//! Each attempt carries `x-attempt-count` (1 for the first, 2, 3 … for retries, as Envoy's
//! `x-envoy-attempt-count`), so server logs show which requests were retries. When the request
//! has a deadline ([`RetryLayer::deadline`](super::RetryLayer::deadline), or a [`Deadline`] in
//! its extensions, whichever ends first) each attempt also carries `x-request-timeout-ms`: the
//! whole milliseconds left, at least 1, so a server can give up early instead of working for a
//! caller that has gone (Envoy sends `x-envoy-expected-rq-timeout-ms`; gRPC and Finagle
//! propagate deadlines). No deadline, no header.

use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use tokio::time::Instant;

pub use crate::headers::{X_ATTEMPT_COUNT, X_REQUEST_TIMEOUT_MS};

/// A deadline for one request, put in its extensions; the retry layer keeps to the earlier of
/// it and the layer's own [`deadline`](super::RetryLayer::deadline).
///
/// ```
/// use std::time::Duration;
/// use fender::retry::Deadline;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let mut req = http::Request::get("http://api.test/report").body(()).unwrap();
/// req.extensions_mut().insert(Deadline::after(Duration::from_millis(800)));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Deadline(Instant);

impl Deadline {
    /// A deadline at `instant` (tokio's clock).
    pub fn at(instant: Instant) -> Self {
        Deadline(instant)
    }

    /// A deadline `timeout` from now; `Duration::MAX` saturates to a far future.
    pub fn after(timeout: Duration) -> Self {
        Deadline(super::future::after(timeout))
    }

    /// When it passes.
    pub fn instant(&self) -> Instant {
        self.0
    }
}

/// The deadline of a request: its [`Deadline`] extension or `layer` after now, the earlier.
pub(crate) fn of(parts: &http::request::Parts, layer: Option<Duration>) -> Option<Instant> {
    let own = parts.extensions.get::<Deadline>().map(Deadline::instant);
    let layer = layer.map(super::future::after);
    match (own, layer) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

// A `static`, not a `const`: a `const` array is built anew at each use, here nine values made
// and dropped (nine indirect calls) for the one cloned, on every attempt into a non-empty map.
static ATTEMPTS: [HeaderValue; 9] = [
    HeaderValue::from_static("1"),
    HeaderValue::from_static("2"),
    HeaderValue::from_static("3"),
    HeaderValue::from_static("4"),
    HeaderValue::from_static("5"),
    HeaderValue::from_static("6"),
    HeaderValue::from_static("7"),
    HeaderValue::from_static("8"),
    HeaderValue::from_static("9"),
];

/// The headers of a first attempt of a request that came without any: only `x-attempt-count: 1`.
///
/// Cloning it makes a map of exactly one entry without hashing the name again; inserting into
/// an empty map instead reserves room for six entries and hashes the name byte by byte.
static FIRST_ONLY: std::sync::LazyLock<HeaderMap> = std::sync::LazyLock::new(|| {
    let mut headers = HeaderMap::with_capacity(1);
    headers.insert(X_ATTEMPT_COUNT, ATTEMPTS[0].clone());
    headers
});

/// Writes the attempt number and, with a deadline, the time left into an attempt's headers.
pub(crate) fn stamp(headers: &mut HeaderMap, attempt: u32, remaining: Option<Duration>) {
    if attempt == 1 && headers.is_empty() && headers.capacity() == 0 {
        // An empty map that never had room for an entry owns no memory: its indices and entry
        // lists are empty and unallocated. Dropping it would still walk them (about 50
        // instructions per request); it is forgotten instead, which frees nothing because
        // there is nothing to free.
        std::mem::forget(std::mem::replace(headers, FIRST_ONLY.clone()));
    } else {
        let value = match attempt {
            1..=9 => ATTEMPTS[attempt as usize - 1].clone(),
            n => HeaderValue::from(n),
        };
        headers.insert(X_ATTEMPT_COUNT, value);
    }
    if let Some(remaining) = remaining {
        let ms = u64::try_from(remaining.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        headers.insert(X_REQUEST_TIMEOUT_MS, HeaderValue::from(ms));
    }
}
