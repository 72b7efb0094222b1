//! The `Retry-After` header (RFC 9110 §10.2.3): parse either form, write delay-seconds.
//!
//! ```
//! use fender::retry_after;
//! use http::HeaderValue;
//! use std::time::{Duration, SystemTime};
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
//! assert_eq!(retry_after::parse(&HeaderValue::from_static("5"), now), Some(Duration::from_secs(5)));
//! let date = HeaderValue::from_str(&httpdate::fmt_http_date(now + Duration::from_secs(7))).unwrap();
//! assert_eq!(retry_after::parse(&date, now), Some(Duration::from_secs(7)));
//! assert_eq!(retry_after::parse(&HeaderValue::from_static("soon"), now), None);
//! assert_eq!(retry_after::to_header_value(Duration::from_millis(1_200)), "2");
//! ```

use std::time::{Duration, SystemTime};

use http::HeaderValue;

/// The delay a `Retry-After` value asks for, measured from `now` for the HTTP-date form.
///
/// A date in the past means "now" (zero delay). Anything unparseable is `None`: the caller
/// falls back to its own backoff.
pub fn parse(value: &HeaderValue, now: SystemTime) -> Option<Duration> {
    let text = value.to_str().ok()?.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        // Huge values saturate rather than fail: they are still "longer than any cap".
        return Some(Duration::from_secs(text.parse::<u64>().unwrap_or(u64::MAX)));
    }
    let date = httpdate::parse_http_date(text).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The delay of a response's `Retry-After` header, if it has a valid one.
pub fn from_headers(headers: &http::HeaderMap, now: SystemTime) -> Option<Duration> {
    headers
        .get(http::header::RETRY_AFTER)
        .and_then(|v| parse(v, now))
}

/// A delay as `Retry-After` delay-seconds, rounded up to whole seconds (and at least 1 for any
/// non-zero delay, so a client never reads "retry now" from a server that asked it to wait).
pub fn to_header_value(delay: Duration) -> HeaderValue {
    HeaderValue::from(whole_seconds_rounded_up(delay))
}

/// A delay in whole seconds, rounded up.
pub fn whole_seconds_rounded_up(delay: Duration) -> u64 {
    delay.as_secs() + u64::from(delay.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms_and_ignores_garbage() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let p = |s: &str| parse(&HeaderValue::from_str(s).unwrap(), now);
        assert_eq!(p("0"), Some(Duration::ZERO));
        assert_eq!(p(" 120 "), Some(Duration::from_secs(120)));
        assert_eq!(
            p("99999999999999999999999"),
            Some(Duration::from_secs(u64::MAX))
        );
        assert_eq!(p("-1"), None);
        assert_eq!(p("1.5"), None);
        assert_eq!(p(""), None);
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(p(&past), Some(Duration::ZERO));
        assert_eq!(parse(&HeaderValue::from_bytes(b"\xff").unwrap(), now), None);
    }

    #[test]
    fn header_values_round_up() {
        assert_eq!(to_header_value(Duration::ZERO), "0");
        assert_eq!(to_header_value(Duration::from_nanos(1)), "1");
        assert_eq!(to_header_value(Duration::from_secs(30)), "30");
        assert_eq!(to_header_value(Duration::from_millis(29_001)), "30");
    }
}
