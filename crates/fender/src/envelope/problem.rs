//! RFC 9457 problem details: the second wire format of an error (CONTRACT.md §6, §9).
//!
//! A [`Problem`] is the same error as the [`Envelope`], in the members RFC 9457 defines plus
//! the envelope's fields as extension members:
//!
//! | member | from the envelope |
//! | --- | --- |
//! | `type` | a URI per code: the type base (default [`DEFAULT_TYPE_BASE`]) and the code in lower case with hyphens, `urn:fender:error:not-found` |
//! | `title` | fixed per code: the code's generic message; for a code outside the contract, the status's reason phrase |
//! | `status` | the HTTP status of the response |
//! | `detail` | `message`, under the same rule: a 5xx sends its code's generic message |
//! | `instance` | `urn:uuid:<request id>` when the request id is a UUID; absent otherwise |
//! | `code`, `request_id`, `timestamp`, `details` | as in the envelope |

use std::borrow::Cow;
use std::fmt::Write as _;

use http::header::{CONTENT_TYPE, VARY};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use crate::error::{Envelope, EnvelopeError};
use crate::request_id::is_valid_request_id;
use crate::{ApiError, ErrorCode};

/// The media type of a problem details document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The default base of the `type` URI: `urn:fender:error:`, so `NOT_FOUND` has the type
/// `urn:fender:error:not-found`.
///
/// A URN names the kind of error without pretending that a page describes it: RFC 9457 tells
/// consumers not to dereference `type` automatically, and a made-up `https://` base would point
/// at a host nobody runs. A server that publishes pages for its errors sets its own base with
/// [`ErrorEnvelopeLayer::problem_type_base`](super::ErrorEnvelopeLayer::problem_type_base)
/// (`https://api.example.com/problems/`). Clients recognise codes in types of this base only;
/// they read the `code` member first anyway.
pub const DEFAULT_TYPE_BASE: &str = "urn:fender:error:";

/// When [`ErrorEnvelopeLayer`](super::ErrorEnvelopeLayer) answers in problem details rather
/// than the envelope.
///
/// The default is [`Negotiate`](Self::Negotiate): the envelope for every client that does not
/// ask otherwise (no `Accept`, `*/*`, `application/json`, a browser's list, a malformed
/// header), and problem details for a client whose `Accept` strictly prefers
/// `application/problem+json` to `application/json`. This is HTTP's own content negotiation,
/// as a compression layer honours `Accept-Encoding`: existing clients see no change, and a
/// client that asks for the standard format gets it without a redeploy of the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProblemDetails {
    /// Problem details when `Accept` strictly prefers them to `application/json`; the envelope
    /// otherwise. Error responses carry `Vary: Accept`, so caches keep the two apart.
    #[default]
    Negotiate,
    /// Problem details for every error response, whatever `Accept` says.
    Always,
    /// The envelope for every error response, whatever `Accept` says.
    Never,
}

/// An RFC 9457 problem details document (`application/problem+json`) carrying the contract's
/// envelope fields as extension members.
///
/// [`ApiError::to_problem`] makes one with every member filled in (but `instance` for a
/// request id that is not a UUID); the server layer renders exactly that. Decoding is as lenient
/// as RFC 9457 asks of consumers: every member is optional, a member of the wrong type is
/// ignored as if it were absent, and unknown members are ignored.
///
/// ```
/// use fender::ApiError;
/// use fender::envelope::Problem;
///
/// let problem = ApiError::not_found("no order 7")
///     .with_request_id("0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a")
///     .to_problem();
/// assert_eq!(problem.problem_type.as_deref(), Some("urn:fender:error:not-found"));
/// assert_eq!(problem.title.as_deref(), Some("resource not found"));
/// assert_eq!(problem.status, Some(404));
/// assert_eq!(problem.detail.as_deref(), Some("no order 7"));
/// assert_eq!(
///     problem.instance.as_deref(),
///     Some("urn:uuid:0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a")
/// );
///
/// // A wrong type for a member is ignored, unknown members too.
/// let sent: Problem = serde_json::from_str(r#"{"status":"404","detail":"gone","x":1}"#).unwrap();
/// assert_eq!(sent.status, None);
/// assert_eq!(sent.detail.as_deref(), Some("gone"));
/// ```
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// `type`: a URI naming the kind of problem; absent means `about:blank`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub problem_type: Option<String>,
    /// `title`: a short summary, the same for every occurrence of the type.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `status`: the HTTP status the server meant. A client goes by the response's own status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// `detail`: the envelope's message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// `instance`: this occurrence, `urn:uuid:<request id>`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Extension `code`: the contract's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<ErrorCode>,
    /// Extension `request_id`: as in the `x-request-id` response header.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Extension `timestamp`: RFC 3339, UTC, millisecond precision.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    /// Extension `details`: the envelope's details; `{}` when there are none.
    pub details: Map<String, Value>,
}

impl Problem {
    /// The problem of `envelope` sent with `status`, its `type` under `type_base`.
    ///
    /// This is only a change of form: the envelope already says what may leave the server
    /// ([`ApiError::to_envelope`]).
    pub fn from_envelope(envelope: &Envelope, status: StatusCode, type_base: &str) -> Self {
        let e = &envelope.error;
        let request_id = e.request_id.clone();
        Problem {
            problem_type: Some(type_uri(type_base, &e.code)),
            title: Some(title(&e.code, status).into_owned()),
            status: Some(status.as_u16()),
            detail: Some(e.message.clone()),
            instance: request_id.as_deref().and_then(instance_of),
            code: Some(e.code.clone()),
            request_id,
            timestamp: e.timestamp.clone(),
            details: e.details.clone(),
        }
    }

    /// The same problem with its `type` under `base` instead (for a problem with a `code`).
    ///
    /// ```
    /// use fender::ApiError;
    ///
    /// let problem = ApiError::conflict("order 9 has shipped")
    ///     .to_problem()
    ///     .with_type_base("https://api.example.com/problems/");
    /// assert_eq!(
    ///     problem.problem_type.as_deref(),
    ///     Some("https://api.example.com/problems/conflict")
    /// );
    /// ```
    #[must_use]
    pub fn with_type_base(mut self, base: &str) -> Self {
        if let Some(code) = &self.code {
            self.problem_type = Some(type_uri(base, code));
        }
        self
    }

    /// Reads a problem from a JSON object, leniently (see the [type docs](Self)); `None` for
    /// any other JSON value.
    pub fn from_json(value: Value) -> Option<Self> {
        let Value::Object(mut members) = value else {
            return None;
        };
        let mut string = |name: &str| match members.remove(name) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        };
        let problem_type = string("type");
        let title = string("title");
        let detail = string("detail");
        let instance = string("instance");
        let request_id = string("request_id");
        let timestamp = string("timestamp");
        let code = string("code").and_then(|c| c.parse().ok());
        let status = members
            .get("status")
            .and_then(Value::as_u64)
            .and_then(|n| u16::try_from(n).ok());
        let details = match members.remove("details") {
            Some(Value::Object(details)) => details,
            _ => Map::new(),
        };
        Some(Problem {
            problem_type,
            title,
            status,
            detail,
            instance,
            code,
            request_id,
            timestamp,
            details,
        })
    }

    /// The code this problem names: its `code` member, else the code of a `type` under
    /// [`DEFAULT_TYPE_BASE`] that is one of the contract's eleven.
    pub fn error_code(&self) -> Option<ErrorCode> {
        self.code
            .clone()
            .or_else(|| self.problem_type.as_deref().and_then(code_of_type))
    }
}

impl<'de> Deserialize<'de> for Problem {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        Problem::from_json(value)
            .ok_or_else(|| serde::de::Error::custom("a problem details document is an object"))
    }
}

impl ApiError {
    /// The RFC 9457 problem this error is sent as, with the default type base
    /// ([`DEFAULT_TYPE_BASE`]); [`Problem::with_type_base`] changes it.
    ///
    /// It is [`to_envelope`](Self::to_envelope) in the other form, so a 5xx's `detail` is its
    /// code's generic message and its `details` only what was marked public.
    pub fn to_problem(&self) -> Problem {
        Problem::from_envelope(&self.to_envelope(), self.status(), DEFAULT_TYPE_BASE)
    }

    /// The error from a decoded problem and the response's status.
    ///
    /// - The status is `status`, the response's; a `status` member that says otherwise is
    ///   ignored (an intermediary may have changed the response, and the retry and breaker
    ///   decisions go by what was received).
    /// - The code is the `code` member, else the code of a `type` of ours (see
    ///   [`Problem::error_code`]), else the nearest code for the status.
    /// - The message is `detail`, else `title`, else the status's generic message.
    /// - The request id is a valid `request_id`, else the UUID of an `instance` of the form
    ///   `urn:uuid:<id>`; the decoder falls back to the `x-request-id` header after that.
    pub fn from_problem(problem: Problem, status: StatusCode) -> Self {
        let code = problem
            .error_code()
            .unwrap_or_else(|| ErrorCode::from_status(status));
        let message = [problem.detail, problem.title]
            .into_iter()
            .flatten()
            .find(|m| !m.trim().is_empty())
            .unwrap_or_else(|| ApiError::from_status(status).message().to_owned());
        let request_id = problem
            .request_id
            .filter(|id| is_valid_request_id(id))
            .or_else(|| {
                let instance = problem.instance.as_deref()?;
                let uuid = strip_prefix_ignore_case(instance, "urn:uuid:")?;
                hyphenated_uuid(uuid)?;
                Some(uuid.to_owned())
            });
        let envelope = Envelope {
            error: EnvelopeError {
                code,
                message,
                details: problem.details,
                request_id,
                timestamp: problem.timestamp,
            },
        };
        ApiError::from_envelope(envelope, status)
    }
}

/// The form one error response takes, chosen from the request when the layer is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wire {
    /// Problem details rather than the envelope.
    pub(crate) problem: bool,
    /// The choice depended on `Accept`: the response says so with `Vary: Accept`.
    pub(crate) vary: bool,
}

impl Wire {
    /// The form for a request with `headers` under `mode`.
    pub(crate) fn choose(mode: ProblemDetails, headers: &HeaderMap) -> Wire {
        match mode {
            ProblemDetails::Negotiate => Wire {
                problem: super::accept::prefers_problem(headers),
                vary: true,
            },
            ProblemDetails::Always => Wire {
                problem: true,
                vary: false,
            },
            ProblemDetails::Never => Wire {
                problem: false,
                vary: false,
            },
        }
    }
}

/// Adds `accept` to the response's `Vary`, unless it is listed already (or `*` is).
pub(crate) fn vary_on_accept(headers: &mut HeaderMap) {
    let listed = headers
        .get_all(VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|name| name == "*" || name.eq_ignore_ascii_case("accept"));
    if !listed {
        headers.append(VARY, HeaderValue::from_static("accept"));
    }
}

/// Whether `headers` name the problem media type as the content type (parameters allowed).
pub(crate) fn has_problem_media_type(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case(PROBLEM_JSON))
}

/// Whether a JSON body sent without the problem media type is a problem document all the
/// same: an object with a string `type` and a numeric `status`, the members a producer of
/// problem details always has reason to send. A bare `{"detail": ..}` or `{"message": ..}` of
/// some other API is not taken for one.
pub(crate) fn looks_like_problem(value: &Value) -> bool {
    value.get("type").is_some_and(Value::is_string)
        && value.get("status").is_some_and(Value::is_u64)
}

/// The code's part of a type URI: lower case, `_` as `-`, anything but letters, digits, `-`,
/// `.`, `~` percent-encoded.
fn slug(code: &ErrorCode) -> String {
    let mut slug = String::with_capacity(code.as_str().len());
    for byte in code.as_str().bytes() {
        match byte {
            b'_' => slug.push('-'),
            b if b.is_ascii_alphanumeric() || b"-.~".contains(&b) => {
                slug.push(char::from(b.to_ascii_lowercase()));
            }
            b => {
                let _ = write!(slug, "%{b:02X}");
            }
        }
    }
    slug
}

/// The `type` of `code` under `base`.
pub(crate) fn type_uri(base: &str, code: &ErrorCode) -> String {
    format!("{base}{}", slug(code))
}

/// The contract's code of a type under [`DEFAULT_TYPE_BASE`].
fn code_of_type(ty: &str) -> Option<ErrorCode> {
    let slug = strip_prefix_ignore_case(ty, DEFAULT_TYPE_BASE)?;
    ErrorCode::ALL
        .into_iter()
        .find(|code| self::slug(code) == slug)
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// The fixed title of a code: its generic message; for a code outside the contract, which has
/// no message of its own, the status's reason phrase.
fn title(code: &ErrorCode, status: StatusCode) -> Cow<'static, str> {
    match (code, status.canonical_reason()) {
        (ErrorCode::Other(_), Some(reason)) => Cow::Owned(reason.to_ascii_lowercase()),
        (ErrorCode::Other(_), None) => {
            Cow::Borrowed(ErrorCode::from_status(status).generic_message())
        }
        (code, _) => Cow::Borrowed(code.generic_message()),
    }
}

/// `urn:uuid:<id>` for a request id that is a UUID. Any other id would be a relative
/// reference, which a consumer resolves against the request's URI into a different resource, so
/// it stays in `request_id` alone.
fn instance_of(request_id: &str) -> Option<String> {
    let uuid = hyphenated_uuid(request_id)?;
    Some(format!("urn:uuid:{}", uuid.hyphenated()))
}

/// A UUID in its 36-character hyphenated form (in either case), and no other of the forms
/// `uuid` parses (32 bare digits, braces, a URN).
fn hyphenated_uuid(s: &str) -> Option<uuid::Uuid> {
    if s.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_code_has_a_type_under_the_base_that_maps_back() {
        for code in ErrorCode::ALL {
            let ty = type_uri(DEFAULT_TYPE_BASE, &code);
            assert!(ty.starts_with("urn:fender:error:"), "{ty}");
            assert_eq!(code_of_type(&ty), Some(code.clone()), "{ty}");
            assert_eq!(
                code_of_type(&ty.to_ascii_uppercase()),
                None,
                "the code part is case-sensitive"
            );
        }
        assert_eq!(
            type_uri(DEFAULT_TYPE_BASE, &ErrorCode::RateLimitExceeded),
            "urn:fender:error:rate-limit-exceeded"
        );
        assert_eq!(
            code_of_type("urn:FENDER:error:not-found"),
            Some(ErrorCode::NotFound)
        );
        assert_eq!(code_of_type("https://example.com/not-found"), None);
        assert_eq!(code_of_type("about:blank"), None);
    }

    #[test]
    fn codes_outside_the_contract_get_an_escaped_type_and_the_reason_phrase_as_title() {
        let code = ErrorCode::Other("QUOTA_EXHAUSTED".into());
        assert_eq!(type_uri("urn:x:", &code), "urn:x:quota-exhausted");
        let odd = ErrorCode::Other("A B/é".into());
        assert_eq!(type_uri("urn:x:", &odd), "urn:x:a%20b%2F%C3%A9");
        assert_eq!(
            title(&code, StatusCode::PAYMENT_REQUIRED),
            "payment required"
        );
        assert_eq!(
            code_of_type("urn:fender:error:quota-exhausted"),
            None,
            "not one of ours"
        );
    }

    #[test]
    fn instance_is_a_uuid_urn_or_absent() {
        assert_eq!(
            instance_of("0193A5C2-7B1E-7C3A-9A61-1F2E3D4C5B6A").as_deref(),
            Some("urn:uuid:0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a")
        );
        assert_eq!(instance_of("checkout-991"), None);
        assert_eq!(instance_of("a:b"), None);
    }

    #[test]
    fn a_5xx_problem_says_only_what_its_envelope_says() {
        let problem = ApiError::internal()
            .with_message("pg: password authentication failed")
            .with_detail("dsn", "postgres://app@10.0.0.3")
            .to_problem();
        assert_eq!(problem.detail.as_deref(), Some("internal server error"));
        assert!(problem.details.is_empty());
        let text = serde_json::to_string(&problem).unwrap();
        assert!(
            !text.contains("pg:") && !text.contains("10.0.0.3"),
            "{text}"
        );
    }

    #[test]
    fn rendering_writes_the_rfc_members_then_the_extensions() {
        let problem = ApiError::validation([("email", "must be a valid email address")])
            .with_request_id("req-1")
            .to_problem();
        let v = serde_json::to_value(&problem).unwrap();
        assert_eq!(v["type"], "urn:fender:error:validation-error");
        assert_eq!(v["title"], "request validation failed");
        assert_eq!(v["status"], 422);
        assert_eq!(v["detail"], "email must be a valid email address");
        assert!(v.get("instance").is_none(), "req-1 is no UUID: {v}");
        assert_eq!(v["code"], "VALIDATION_ERROR");
        assert_eq!(v["request_id"], "req-1");
        assert_eq!(v["details"]["fields"][0]["field"], "email");
    }

    #[test]
    fn decoding_ignores_members_of_the_wrong_type() {
        let problem = Problem::from_json(json!({
            "type": 7, "title": ["x"], "status": "500", "detail": null,
            "instance": {}, "code": 12, "request_id": false, "timestamp": 1.5,
            "details": "none", "extra": {"deep": [1, 2]}
        }))
        .unwrap();
        assert_eq!(problem.problem_type, None);
        assert_eq!(problem.status, None);
        assert_eq!(problem.code, None);
        assert!(problem.details.is_empty());
        let err = ApiError::from_problem(problem, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
        assert_eq!(err.message(), "service temporarily unavailable");
        assert_eq!(err.request_id(), None);
        assert!(Problem::from_json(json!([1, 2])).is_none());
        assert!(
            Problem::from_json(json!({"status": 70000}))
                .unwrap()
                .status
                .is_none()
        );
    }

    #[test]
    fn the_code_comes_from_code_then_type_then_status() {
        let by_type = json!({"type": "urn:fender:error:conflict", "detail": "stale"});
        let err = ApiError::from_problem(
            Problem::from_json(by_type).unwrap(),
            StatusCode::BAD_REQUEST,
        );
        assert_eq!(err.code(), &ErrorCode::Conflict);
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let both = json!({"type": "urn:fender:error:conflict", "code": "FORBIDDEN"});
        let err = ApiError::from_problem(Problem::from_json(both).unwrap(), StatusCode::FORBIDDEN);
        assert_eq!(err.code(), &ErrorCode::Forbidden);
        let foreign = json!({"type": "https://example.com/out-of-credit", "title": "You do not have enough credit."});
        let err =
            ApiError::from_problem(Problem::from_json(foreign).unwrap(), StatusCode::FORBIDDEN);
        assert_eq!(err.code(), &ErrorCode::Forbidden);
        assert_eq!(err.message(), "You do not have enough credit.");
    }

    #[test]
    fn the_request_id_comes_from_request_id_then_a_uuid_instance() {
        let id = "0193a5c2-7b1e-7c3a-9a61-1f2e3d4c5b6a";
        let cases = [
            (
                json!({"request_id": "r-1", "instance": format!("urn:uuid:{id}")}),
                Some("r-1"),
            ),
            (
                json!({"request_id": "bad id\n", "instance": format!("urn:uuid:{id}")}),
                Some(id),
            ),
            (json!({"instance": format!("URN:UUID:{id}")}), Some(id)),
            (json!({"instance": "urn:uuid:not-a-uuid"}), None),
            (json!({"instance": "/orders/7"}), None),
        ];
        for (value, expected) in cases {
            let err = ApiError::from_problem(
                Problem::from_json(value.clone()).unwrap(),
                StatusCode::NOT_FOUND,
            );
            assert_eq!(err.request_id(), expected, "{value}");
        }
    }

    #[test]
    fn bodies_without_the_media_type_count_only_with_type_and_status() {
        assert!(looks_like_problem(
            &json!({"type": "about:blank", "status": 404})
        ));
        assert!(!looks_like_problem(&json!({"detail": "Not found."})));
        assert!(!looks_like_problem(
            &json!({"type": "about:blank", "status": "404"})
        ));
        assert!(!looks_like_problem(&json!({"type": 1, "status": 404})));
    }
}
