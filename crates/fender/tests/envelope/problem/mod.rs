//! RFC 9457 problem details, the second wire format: what the server layer answers for which
//! `Accept`, that everything the envelope path does holds for problem+json too, and that
//! clients decode both forms into the same `ApiError`.

use axum::Router;
use axum::http::header;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use crate::server::assert_timestamp;
use crate::support::{self, HttpClient, json, send};

mod client;
mod hostile;
mod server;

/// A `GET` of `uri` with this `Accept`.
pub(crate) fn get_accepting(uri: http::Uri, accept: &str) -> Request<Full<Bytes>> {
    Request::get(uri)
        .header(header::ACCEPT, accept)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// Sends `GET path` with `Accept: application/problem+json` to `app` on a testkit socket.
pub(crate) async fn fetch_problem(app: Router, path: &str) -> (http::response::Parts, Bytes) {
    let server = fender_testkit::serve_service(app).await;
    let client: HttpClient = support::client();
    send(&client, get_accepting(server.url(path), PROBLEM)).await
}

pub(crate) const PROBLEM: &str = "application/problem+json";

/// Asserts that a response is a problem details document with this status and code, with the
/// members the layer always writes, and returns its JSON.
pub(crate) fn assert_problem(
    parts: &http::response::Parts,
    body: &Bytes,
    status: u16,
    code: &str,
) -> Value {
    assert_eq!(parts.status, status, "{}", String::from_utf8_lossy(body));
    assert_eq!(parts.headers[header::CONTENT_TYPE], PROBLEM);
    assert_eq!(
        parts.headers[header::CONTENT_LENGTH],
        body.len().to_string().as_str()
    );
    let v = json(body);
    assert_eq!(v["status"], status, "{v}");
    assert_eq!(v["code"], code, "{v}");
    let slug = code.to_ascii_lowercase().replace('_', "-");
    assert_eq!(v["type"], format!("urn:fender:error:{slug}"), "{v}");
    assert!(v["title"].as_str().is_some_and(|t| !t.is_empty()), "{v}");
    assert!(v["detail"].as_str().is_some_and(|d| !d.is_empty()), "{v}");
    assert!(v["details"].is_object(), "{v}");
    assert!(v.get("error").is_none(), "not an envelope: {v}");
    let id = parts.headers["x-request-id"].to_str().unwrap();
    assert_eq!(
        v["request_id"], id,
        "the document and the header carry the same id"
    );
    if uuid::Uuid::parse_str(id).is_ok() {
        assert_eq!(v["instance"], format!("urn:uuid:{id}"), "{v}");
    } else {
        assert!(v.get("instance").is_none(), "{v}");
    }
    assert_timestamp(v["timestamp"].as_str().unwrap());
    v
}
