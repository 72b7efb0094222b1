//! Arbitrary response headers, biased towards the ones fender reads.

use arbitrary::Arbitrary;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// A header name: one fender looks at, or any bytes (dropped if they are not a valid name).
#[derive(Arbitrary, Debug, Clone)]
pub enum NameChoice {
    /// `content-type`.
    ContentType,
    /// `x-request-id`.
    RequestId,
    /// `retry-after`.
    RetryAfter,
    /// `content-length`.
    ContentLength,
    /// `allow`.
    Allow,
    /// `www-authenticate`.
    WwwAuthenticate,
    /// Any other name.
    Other(Vec<u8>),
}

/// A header value: a well-known one, or any bytes (dropped if they are not a valid value).
#[derive(Arbitrary, Debug, Clone)]
pub enum ValueChoice {
    /// `application/json`.
    Json,
    /// `Application/JSON; charset=utf-8`, to check the content type is matched without case.
    JsonMixedCase,
    /// `text/plain; charset=utf-8`.
    TextPlain,
    /// `text/html`.
    Html,
    /// Delay-seconds.
    Seconds(u32),
    /// An HTTP-date this many seconds after the Unix epoch.
    Date(u32),
    /// Any bytes.
    Raw(Vec<u8>),
}

impl ValueChoice {
    /// The value, if it is a valid header value.
    pub fn to_value(&self) -> Option<HeaderValue> {
        match self {
            ValueChoice::Json => Some(HeaderValue::from_static("application/json")),
            ValueChoice::JsonMixedCase => {
                Some(HeaderValue::from_static("Application/JSON; charset=utf-8"))
            }
            ValueChoice::TextPlain => Some(HeaderValue::from_static("text/plain; charset=utf-8")),
            ValueChoice::Html => Some(HeaderValue::from_static("text/html")),
            ValueChoice::Seconds(secs) => Some(HeaderValue::from(*secs)),
            ValueChoice::Date(secs) => {
                let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::from(*secs));
                HeaderValue::from_str(&httpdate::fmt_http_date(at)).ok()
            }
            ValueChoice::Raw(bytes) => HeaderValue::from_bytes(bytes).ok(),
        }
    }
}

/// One header of a fuzzed message.
#[derive(Arbitrary, Debug, Clone)]
pub struct Header {
    /// Its name.
    pub name: NameChoice,
    /// Its value.
    pub value: ValueChoice,
}

impl Header {
    /// The header's name, if it is a valid one.
    pub fn to_name(&self) -> Option<HeaderName> {
        use http::header::*;
        Some(match &self.name {
            NameChoice::ContentType => CONTENT_TYPE,
            NameChoice::RequestId => HeaderName::from_static("x-request-id"),
            NameChoice::RetryAfter => RETRY_AFTER,
            NameChoice::ContentLength => CONTENT_LENGTH,
            NameChoice::Allow => ALLOW,
            NameChoice::WwwAuthenticate => WWW_AUTHENTICATE,
            NameChoice::Other(bytes) => return HeaderName::from_bytes(bytes).ok(),
        })
    }
}

/// The headers that are valid, appended in order (a name may repeat).
pub fn header_map(headers: &[Header]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for header in headers {
        if let (Some(name), Some(value)) = (header.to_name(), header.value.to_value()) {
            map.append(name, value);
        }
    }
    map
}
