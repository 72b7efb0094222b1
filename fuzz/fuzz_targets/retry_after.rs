//! `fender::retry_after` on any header value, in both of its forms.
//!
//! Invariants: no panic; delay-seconds parse to their value (saturating); an HTTP-date parses
//! to its distance from now (zero when past); whatever delay parses, written back as
//! delay-seconds by `to_header_value` or as an HTTP-date, parses to the same delay again.
#![no_main]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::Arbitrary;
use fender::retry_after::{from_headers, parse, to_header_value, whole_seconds_rounded_up};
use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

/// 9999-12-31T23:59:59Z, the last second an HTTP-date can write.
const LAST_HTTP_DATE: u64 = 253_402_300_799;

#[derive(Arbitrary, Debug)]
enum Value {
    /// Any bytes.
    Raw(Vec<u8>),
    /// An HTTP-date (IMF-fixdate) at this second, with bytes around it.
    Date {
        secs: u64,
        before: Vec<u8>,
        after: Vec<u8>,
    },
    /// Delay-seconds, with spaces around.
    Seconds { secs: u64, pad: u8 },
}

#[derive(Arbitrary, Debug)]
struct Input {
    now: u64,
    value: Value,
}

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs % (LAST_HTTP_DATE + 1))
}

fuzz_target!(|input: Input| {
    let now = at(input.now);
    let (bytes, expected) = match &input.value {
        Value::Raw(bytes) => (bytes.clone(), None),
        Value::Date {
            secs,
            before,
            after,
        } => {
            let date = at(*secs);
            let mut bytes = before.clone();
            bytes.extend_from_slice(httpdate::fmt_http_date(date).as_bytes());
            bytes.extend_from_slice(after);
            let bare = before.is_empty() && after.is_empty();
            let delay = date.duration_since(now).unwrap_or(Duration::ZERO);
            (bytes, bare.then_some(delay))
        }
        Value::Seconds { secs, pad } => {
            let pad = " ".repeat(usize::from(pad % 4));
            let text = format!("{pad}{secs}{pad}");
            (text.into_bytes(), Some(Duration::from_secs(*secs)))
        }
    };
    let Ok(value) = HeaderValue::from_bytes(&bytes) else {
        return;
    };
    let parsed = parse(&value, now);

    // Delay-seconds, checked against the grammar written out here.
    if let Ok(text) = value.to_str() {
        let digits = text.trim();
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            let secs = digits.bytes().fold(0u64, |n, d| {
                n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
            });
            assert_eq!(parsed, Some(Duration::from_secs(secs)), "{text:?}");
        }
    }
    if let Some(expected) = expected {
        assert_eq!(parsed, Some(expected), "{value:?} at {now:?}");
    }
    let mut headers = http::HeaderMap::new();
    headers.insert(http::header::RETRY_AFTER, value.clone());
    assert_eq!(from_headers(&headers, now), parsed);

    let Some(delay) = parsed else {
        return;
    };
    // Both forms count whole seconds from a whole-second `now`.
    assert_eq!(delay.subsec_nanos(), 0, "{value:?} gave {delay:?}");
    assert_eq!(whole_seconds_rounded_up(delay), delay.as_secs());

    let seconds = to_header_value(delay);
    assert_eq!(
        parse(&seconds, now),
        Some(delay),
        "delay-seconds {seconds:?}"
    );

    let now_secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
    if let Some(then) = now_secs.checked_add(delay.as_secs())
        && then <= LAST_HTTP_DATE
    {
        let date = HeaderValue::from_str(&httpdate::fmt_http_date(at(then))).unwrap();
        assert_eq!(parse(&date, now), Some(delay), "HTTP-date {date:?}");
    }
});
