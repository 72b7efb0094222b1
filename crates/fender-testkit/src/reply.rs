//! [`Reply`]: what the upstream does with one request.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, RETRY_AFTER};
use http::{HeaderMap, HeaderValue, Response, StatusCode};

use crate::body::TestBody;

const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");

/// What the upstream does with one request: a response (after an optional delay), or a fault.
///
/// Built fluently from a constructor and builder methods:
///
/// ```
/// use std::time::Duration;
/// use fender_testkit::Reply;
///
/// let slow = Reply::ok().header("x-a", "b").body("bytes").delay(Duration::from_secs(2));
/// let limited = Reply::retry_after_secs(429, 5);
/// let invalid = Reply::envelope(422, "VALIDATION_ERROR", "bad email");
/// let broken = Reply::reset();
/// # let _ = (slow, limited, invalid, broken);
/// ```
///
/// Every fault is real on the socket of a [`TestServer`](crate::TestServer) and has an in-process
/// counterpart in [`Upstream::service`](crate::Upstream::service):
///
/// | reply | on the socket | in process |
/// | --- | --- | --- |
/// | [`hang`](Reply::hang) | request read, no response ever | a future that never completes |
/// | [`reset`](Reply::reset) | request read, then TCP reset (`SO_LINGER` 0) | `Err`, an `io::Error` of kind `ConnectionReset` |
/// | [`close_mid_body`](Reply::close_mid_body) | headers and part of the body, then the connection closes | a body that fails after part of its bytes |
/// | [`drip`](Reply::drip) | body chunks at an interval | the same, on `tokio::time` |
#[derive(Debug, Clone)]
pub struct Reply {
    action: Action,
    status: StatusCode,
    headers: HeaderMap,
    body: ReplyBody,
    delay: Option<Duration>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Respond,
    Hang,
    Reset,
}

#[derive(Debug, Clone)]
enum ReplyBody {
    Full(Bytes),
    Envelope {
        code: String,
        message: String,
    },
    CloseMidBody {
        sent: Bytes,
        declared: usize,
    },
    Drip {
        chunk: Bytes,
        count: usize,
        interval: Duration,
    },
}

/// What a status argument may be: a `u16` such as `503`, or a [`StatusCode`].
pub trait IntoStatusCode {
    /// The status code.
    ///
    /// # Panics
    ///
    /// When the number is not a valid status code (100 to 999).
    fn into_status_code(self) -> StatusCode;
}

impl IntoStatusCode for u16 {
    fn into_status_code(self) -> StatusCode {
        StatusCode::from_u16(self).unwrap_or_else(|_| panic!("invalid status code {self}"))
    }
}

impl IntoStatusCode for StatusCode {
    fn into_status_code(self) -> StatusCode {
        self
    }
}

fn status_may_have_body(status: StatusCode) -> bool {
    !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED)
}

impl Reply {
    fn respond(status: StatusCode, content_type: Option<HeaderValue>, body: ReplyBody) -> Reply {
        let mut headers = HeaderMap::new();
        if let Some(content_type) = content_type {
            headers.insert(CONTENT_TYPE, content_type);
        }
        Reply {
            action: Action::Respond,
            status,
            headers,
            body,
            delay: None,
        }
    }

    /// `200 OK` with the JSON body `{"ok":true}`.
    pub fn ok() -> Reply {
        Reply::respond(
            StatusCode::OK,
            Some(JSON),
            ReplyBody::Full(Bytes::from_static(br#"{"ok":true}"#)),
        )
    }

    /// The status with a small plain-text body naming it (`503 Service Unavailable`); no body for
    /// 1xx, 204 and 304.
    ///
    /// # Panics
    ///
    /// When `status` is a number that is not a valid status code.
    pub fn status(status: impl IntoStatusCode) -> Reply {
        let status = status.into_status_code();
        if !status_may_have_body(status) {
            return Reply::respond(status, None, ReplyBody::Full(Bytes::new()));
        }
        let text = match status.canonical_reason() {
            Some(reason) => format!("{} {reason}", status.as_str()),
            None => status.as_str().to_owned(),
        };
        Reply::respond(status, Some(TEXT), ReplyBody::Full(Bytes::from(text)))
    }

    /// The status with the JSON error envelope of the contract as its body:
    /// `{"error":{"code","message","details":{},"request_id","timestamp"}}`, and
    /// `content-type: application/json`.
    ///
    /// The `request_id` is the request's `x-request-id` when it has a valid one (1 to 128
    /// characters of `[A-Za-z0-9._:-]`), a generated `testkit-N` otherwise;
    /// either way the response echoes it in its own `x-request-id` header. The timestamp is the
    /// wall-clock time of the response, RFC 3339 with milliseconds.
    ///
    /// # Panics
    ///
    /// When `status` is a number that is not a valid status code.
    pub fn envelope(
        status: impl IntoStatusCode,
        code: impl Into<String>,
        message: impl Into<String>,
    ) -> Reply {
        Reply::respond(
            status.into_status_code(),
            Some(JSON),
            ReplyBody::Envelope {
                code: code.into(),
                message: message.into(),
            },
        )
    }

    /// [`Reply::status`] with a `Retry-After` header in delay-seconds (`Retry-After: 5`).
    pub fn retry_after_secs(status: impl IntoStatusCode, secs: u64) -> Reply {
        Reply::status(status).header(RETRY_AFTER, HeaderValue::from(secs))
    }

    /// [`Reply::status`] with a `Retry-After` header as an HTTP-date
    /// (`Retry-After: Wed, 25 Nov 2026 08:27:32 GMT`).
    pub fn retry_after_date(status: impl IntoStatusCode, at: SystemTime) -> Reply {
        let date = httpdate::fmt_http_date(at);
        let value = HeaderValue::from_str(&date).expect("an HTTP-date is a valid header value");
        Reply::status(status).header(RETRY_AFTER, value)
    }

    /// Never answers: the request is read and recorded, and no response ever comes.
    ///
    /// Bound it on the client side with a timeout.
    pub fn hang() -> Reply {
        Reply {
            action: Action::Hang,
            ..Reply::status(StatusCode::OK)
        }
    }

    /// Resets the connection before any response.
    ///
    /// On a [`TestServer`](crate::TestServer) the request is read in full and recorded, then the
    /// TCP connection is closed with `SO_LINGER` 0, so the client sees a reset. The in-process
    /// service fails the call with an `io::Error` of kind `ConnectionReset`.
    pub fn reset() -> Reply {
        Reply {
            action: Action::Reset,
            ..Reply::status(StatusCode::OK)
        }
    }

    /// `200 OK` whose headers announce 64 bytes (`content-length: 64`) of which only the first 16
    /// are sent before the connection closes.
    ///
    /// A client sees the response head, then an error while reading the body. In process, the
    /// body fails with an `io::Error` of kind `UnexpectedEof` after the 16 bytes.
    pub fn close_mid_body() -> Reply {
        Reply::respond(
            StatusCode::OK,
            Some(TEXT),
            ReplyBody::CloseMidBody {
                sent: Bytes::from_static(b"0123456789abcdef"),
                declared: 64,
            },
        )
    }

    /// `200 OK` whose body is `count` copies of `chunk`, each sent after waiting `interval`
    /// (`tokio::time`), so the whole body takes `count * interval`. The head is sent at once and
    /// announces the full length.
    pub fn drip(chunk: impl Into<Bytes>, count: usize, interval: Duration) -> Reply {
        Reply::respond(
            StatusCode::OK,
            Some(TEXT),
            ReplyBody::Drip {
                chunk: chunk.into(),
                count,
                interval,
            },
        )
    }

    /// Sets a response header, replacing any earlier value of the same name.
    ///
    /// # Panics
    ///
    /// When the name or value is not valid in a header.
    pub fn header<K, V>(mut self, name: K, value: V) -> Reply
    where
        K: TryInto<HeaderName>,
        K::Error: std::fmt::Debug,
        V: TryInto<HeaderValue>,
        V::Error: std::fmt::Debug,
    {
        let name = name.try_into().expect("invalid header name");
        let value = value.try_into().expect("invalid header value");
        self.headers.insert(name, value);
        self
    }

    /// Replaces the status, keeping the body and headers: a dripping or half-sent error, say
    /// (`Reply::drip(..).with_status(503)`).
    ///
    /// # Panics
    ///
    /// When `status` is a number that is not a valid status code.
    pub fn with_status(mut self, status: impl IntoStatusCode) -> Reply {
        self.status = status.into_status_code();
        self
    }

    /// Replaces the body with these bytes, sent in full. Headers are left as they are.
    pub fn body(mut self, body: impl Into<Bytes>) -> Reply {
        self.body = ReplyBody::Full(body.into());
        self
    }

    /// Waits this long (`tokio::time`) after reading the request before doing anything else:
    /// before the response head, the reset or the hang.
    pub fn delay(mut self, delay: Duration) -> Reply {
        self.delay = Some(delay).filter(|d| !d.is_zero());
        self
    }

    /// The status of the response; for [`hang`](Reply::hang) and [`reset`](Reply::reset), which
    /// send none, `200`.
    pub fn status_code(&self) -> StatusCode {
        self.status
    }

    /// The label of this reply in the record ([`Received::reply`](crate::Received::reply)):
    /// `"hang"`, `"reset"`, `"close-mid-body"`, `"drip"`, or the status code (`"503"`).
    pub fn label(&self) -> &str {
        match (self.action, &self.body) {
            (Action::Hang, _) => "hang",
            (Action::Reset, _) => "reset",
            (Action::Respond, ReplyBody::CloseMidBody { .. }) => "close-mid-body",
            (Action::Respond, ReplyBody::Drip { .. }) => "drip",
            (Action::Respond, _) => self.status.as_str(),
        }
    }

    pub(crate) fn action(&self) -> Action {
        self.action
    }

    pub(crate) fn delay_duration(&self) -> Option<Duration> {
        self.delay
    }

    /// The response of a [`Action::Respond`] reply.
    pub(crate) fn into_response(self, request_id: Option<HeaderValue>) -> Response<TestBody> {
        let mut headers = self.headers;
        let body = match self.body {
            ReplyBody::Full(bytes) => TestBody::full(bytes),
            ReplyBody::Envelope { code, message } => {
                let request_id = request_id
                    .filter(|id| is_valid_request_id(id.as_bytes()))
                    .unwrap_or_else(generated_request_id);
                let json = serde_json::json!({
                    "error": {
                        "code": code,
                        "message": message,
                        "details": {},
                        "request_id": request_id.to_str().unwrap_or_default(),
                        "timestamp": rfc3339_millis(SystemTime::now()),
                    }
                });
                headers.insert(X_REQUEST_ID, request_id);
                TestBody::full(json.to_string())
            }
            ReplyBody::CloseMidBody { sent, declared } => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(declared));
                TestBody::partial(sent)
            }
            ReplyBody::Drip {
                chunk,
                count,
                interval,
            } => {
                headers.insert(CONTENT_LENGTH, HeaderValue::from(chunk.len() * count));
                TestBody::drip(chunk, count, interval)
            }
        };
        let mut response = Response::new(body);
        *response.status_mut() = self.status;
        *response.headers_mut() = headers;
        response
    }
}

/// 1 to 128 characters of `[A-Za-z0-9._:-]`, as the contract accepts from a client.
fn is_valid_request_id(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

fn generated_request_id() -> HeaderValue {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("testkit-{n}")).expect("a valid header value")
}

/// `2026-11-25T08:27:32.123Z`.
fn rfc3339_millis(at: SystemTime) -> String {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let millis = since.subsec_millis();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    // Civil date from days since 1970-01-01 (proleptic Gregorian calendar).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_timestamps_as_rfc3339_with_millis() {
        let at = UNIX_EPOCH + Duration::from_millis(1_795_595_252_123);
        assert_eq!(rfc3339_millis(at), "2026-11-25T08:27:32.123Z");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn labels_name_the_outcome() {
        assert_eq!(Reply::ok().label(), "200");
        assert_eq!(Reply::status(503).label(), "503");
        assert_eq!(Reply::reset().label(), "reset");
        assert_eq!(Reply::hang().label(), "hang");
        assert_eq!(Reply::close_mid_body().label(), "close-mid-body");
        assert_eq!(
            Reply::drip("x", 3, Duration::from_millis(10)).label(),
            "drip"
        );
    }

    #[test]
    fn status_accepts_numbers_and_status_codes() {
        assert_eq!(
            Reply::status(429).status_code(),
            StatusCode::TOO_MANY_REQUESTS
        );
        assert_eq!(
            Reply::status(StatusCode::BAD_GATEWAY).status_code(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    #[should_panic(expected = "invalid status code")]
    fn status_rejects_invalid_numbers() {
        let _ = Reply::status(1000);
    }
}
