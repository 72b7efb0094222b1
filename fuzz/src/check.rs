//! Checks of the contract shared by the targets.

use std::collections::HashSet;
use std::sync::OnceLock;

use fender::request_id::{MAX_REQUEST_ID_LEN, is_valid_request_id};
use fender::{ApiError, ErrorCode};
use http::{HeaderValue, StatusCode};
use serde_json::{Map, Value};

/// Texts shorter than this are not looked for when checking that a 5xx echoes nothing of the
/// inner response: short strings match by chance ("error", "null", a status number).
pub const LEAK_MIN_LEN: usize = 17;

/// Whether `id` is what a generated request id looks like: a lowercase hyphenated UUID v7,
/// valid by the contract's rule for inbound ids.
pub fn is_fresh_request_id(id: &str) -> bool {
    is_valid_request_id(id)
        && id.len() == 36
        && uuid::Uuid::parse_str(id)
            .is_ok_and(|uuid| uuid.get_version_num() == 7 && uuid.hyphenated().to_string() == id)
}

/// The contract's rule for a kept request id, written out independently of fender's: 1 to 128
/// characters of `[A-Za-z0-9._:-]`.
pub fn id_follows_contract(id: &[u8]) -> bool {
    (1..=128).contains(&id.len())
        && id
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(b))
}

/// Whether a request id an [`ApiError`] carries can be sent as it is: a valid header value,
/// non-empty and at most [`MAX_REQUEST_ID_LEN`] bytes.
pub fn is_sendable_request_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_LEN && HeaderValue::from_str(id).is_ok()
}

/// Whether `ts` is a timestamp as the contract writes it: RFC 3339, UTC, milliseconds, `Z`
/// (`2026-11-25T08:27:32.123Z`).
pub fn is_contract_timestamp(ts: &str) -> bool {
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    ts.len() == shape.len()
        && ts.bytes().zip(shape).all(|(b, &s)| match s {
            b'd' => b.is_ascii_digit(),
            _ => b == s,
        })
        && ts.parse::<jiff::Timestamp>().is_ok()
}

/// Every message fender itself writes into an envelope it makes up: each code's generic
/// message, the lowercase reason phrase of every status, and the messages of the middleware
/// and transport errors it knows.
pub fn standard_messages() -> &'static HashSet<String> {
    static MESSAGES: OnceLock<HashSet<String>> = OnceLock::new();
    MESSAGES.get_or_init(|| {
        let mut messages = HashSet::new();
        for code in ErrorCode::ALL {
            messages.insert(ApiError::from(code).message().to_owned());
        }
        for n in 100..=999 {
            let status = StatusCode::from_u16(n).expect("100..=999 is a valid status");
            messages.insert(ApiError::from_status(status).message().to_owned());
        }
        for error in known_errors() {
            messages.insert(ApiError::from_error(error).message().to_owned());
        }
        messages
    })
}

/// One error of each kind whose mapping fender knows.
fn known_errors() -> Vec<fender::BoxError> {
    use std::io::{Error, ErrorKind};
    let mut errors: Vec<fender::BoxError> = vec![
        Box::new(tower::timeout::error::Elapsed::new()),
        Box::new(tower::load_shed::error::Overloaded::new()),
    ];
    for kind in [
        ErrorKind::ConnectionRefused,
        ErrorKind::ConnectionReset,
        ErrorKind::ConnectionAborted,
        ErrorKind::BrokenPipe,
        ErrorKind::TimedOut,
        ErrorKind::UnexpectedEof,
        ErrorKind::Other,
    ] {
        errors.push(Box::new(Error::from(kind)));
    }
    errors
}

/// The five fields of an envelope body, typed as the contract says.
#[derive(Debug, Clone)]
pub struct EnvelopeFields {
    /// `error.code`.
    pub code: String,
    /// `error.message`.
    pub message: String,
    /// `error.details`.
    pub details: Map<String, Value>,
    /// `error.request_id`.
    pub request_id: String,
    /// `error.timestamp`.
    pub timestamp: String,
}

/// Reads `body` as the contract's envelope, `{"error":{"code","message","details",
/// "request_id","timestamp"}}`, with every field present and of its type; `Err` says what is
/// wrong.
pub fn envelope_fields(body: &[u8]) -> Result<EnvelopeFields, String> {
    let json: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let error = json
        .get("error")
        .and_then(Value::as_object)
        .ok_or("no `error` object")?;
    let text = |field: &str| -> Result<String, String> {
        error
            .get(field)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("`error.{field}` is not a string"))
    };
    let code = text("code")?;
    if code.is_empty() {
        return Err("`error.code` is empty".into());
    }
    Ok(EnvelopeFields {
        code,
        message: text("message")?,
        details: error
            .get("details")
            .and_then(Value::as_object)
            .cloned()
            .ok_or("`error.details` is not an object")?,
        request_id: text("request_id")?,
        timestamp: text("timestamp")?,
    })
}

/// The texts of an inner response a 5xx must not echo: its body (as text), every string and
/// key of the body if it is JSON, and the text of any error the inner service or body failed
/// with.
pub fn inner_texts(body: &[u8], errors: &[String]) -> Vec<String> {
    let mut texts = vec![String::from_utf8_lossy(body).into_owned()];
    if let Ok(json) = serde_json::from_slice::<Value>(body) {
        strings_of(&json, &mut texts);
    }
    texts.extend(errors.iter().cloned());
    texts.retain(|t| t.len() >= LEAK_MIN_LEN);
    texts
}

/// Every string and object key inside `value`.
pub fn strings_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Object(map) => {
            for (key, v) in map {
                out.push(key.clone());
                strings_of(v, out);
            }
        }
        _ => {}
    }
}

/// The inner text that `field` of a 5xx envelope echoes, if any: `field` contains one of
/// `inner` (each at least [`LEAK_MIN_LEN`] bytes), or is itself that long and part of one. A
/// field that is one of fender's [`standard_messages`] echoes nothing.
pub fn echoed<'a>(field: &str, inner: &'a [String]) -> Option<&'a str> {
    if standard_messages().contains(field) {
        return None;
    }
    inner
        .iter()
        .find(|text| {
            field.contains(text.as_str()) || (field.len() >= LEAK_MIN_LEN && text.contains(field))
        })
        .map(String::as_str)
}
