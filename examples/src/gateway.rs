//! The gateway example's relay: an axum router that forwards every request to one upstream
//! through a client stack, and answers for the upstream's failures in the contract's terms.
//!
//! What the gateway's callers get:
//!
//! | the upstream … | the gateway answers |
//! | --- | --- |
//! | answers 1xx–4xx | the same status, body and end-to-end headers (`Location` on a 302, made relative when it points into the upstream; `Allow` on a 405; `Retry-After` on a 429); hop-by-hop headers are dropped, and a 4xx becomes an envelope with the gateway's request id |
//! | answers 504 | 504 `TIMEOUT` |
//! | answers 503 | 503 `SERVICE_UNAVAILABLE`, with its `Retry-After` |
//! | answers another 5xx | 502 `BAD_GATEWAY` |
//! | does not answer in time | 504 `TIMEOUT` |
//! | refuses the connection | 503 `SERVICE_UNAVAILABLE` |
//! | breaks the connection, or sends something that is not HTTP | 502 `BAD_GATEWAY` |
//! | is not even tried (the circuit is open) | 503 `SERVICE_UNAVAILABLE` with `Retry-After`, said to be local |
//!
//! A 5xx of the gateway never carries the upstream's text: its message is the gateway's own, and
//! its details say only where the failure was (`origin`: `upstream`, `transport` or `local`) and,
//! when the upstream answered, its status and its contract code (`upstream_status`,
//! `upstream_code`, the latter only when the upstream sent an envelope with a known code).
//!
//! Request bodies are streamed, not buffered: a `Content-Length` over the limit is answered 413
//! before anything is sent upstream, and a body that grows past the limit on the way fails the
//! upstream request and is answered 413 too. A body that stalls is answered 408. Both are the
//! caller's failures, so the client stack neither retries them nor counts them against the
//! upstream's circuit.

use std::error::Error as StdError;
use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use bytes::Bytes;
use fender::circuit_breaker::CircuitOpen;
use fender::classify::Class;
use fender::envelope::ErrorEnvelopeLayer;
use fender::error::{Envelope, Origin};
use fender::request_id::{RequestId, X_REQUEST_ID};
use fender::retry::Deadline;
use fender::timeout::{RequestTimeoutLayer, TimeLeft};
use fender::{ApiError, BoxError, ErrorCode};
use http::header::{self, HeaderMap, HeaderName};
use http::{HeaderValue, StatusCode, Uri};
use http_body::{Frame, SizeHint};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower::ServiceExt;
use tower::util::BoxCloneSyncService;

/// The client stack the gateway calls its upstream with.
///
/// Whatever layers it has, it takes the relayed request (its body is streamed) and returns the
/// upstream's response, with every failure as a `BoxError`.
pub type Upstream = BoxCloneSyncService<http::Request<Body>, http::Response<Incoming>, BoxError>;

/// How much of an upstream's 5xx body is read, to find its error code.
const ERROR_BODY_LIMIT: usize = 16 * 1024;
/// How long an upstream's 5xx body may take to arrive; after that its code is not reported.
const ERROR_BODY_TIMEOUT: Duration = Duration::from_secs(1);

/// The upstream's base URL: `http://host:port`, optionally with a path prefix (`/api`).
///
/// A request for `/users/42?x=1` is relayed to `{base}/users/42?x=1`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamBase {
    /// `http://host:port`, without a trailing slash.
    origin: String,
    /// `""` or a path that starts with `/` and does not end with one.
    prefix: String,
}

impl UpstreamBase {
    /// Parses an `http://` base URL; for clap's `value_parser`.
    ///
    /// `https` is refused with a hint (the connector is plain HTTP), and so is a query or
    /// fragment, which could not be combined with the relayed paths.
    pub fn parse(s: &str) -> Result<UpstreamBase, String> {
        if s.contains(['?', '#']) {
            return Err(format!(
                "the upstream URL `{s}` must not have a query or a fragment: give the base, \
                 e.g. http://127.0.0.1:3000 or http://127.0.0.1:3000/api"
            ));
        }
        let uri = crate::cli::http_url(s)?;
        let authority = uri.authority().expect("an http URL has a host").as_str();
        Ok(UpstreamBase {
            origin: format!("http://{authority}"),
            prefix: uri.path().trim_end_matches('/').to_owned(),
        })
    }

    /// The upstream URL for a relayed request's path and query.
    pub fn uri(&self, path_and_query: &str) -> Result<Uri, http::uri::InvalidUri> {
        format!("{}{}{path_and_query}", self.origin, self.prefix).parse()
    }

    /// A `Location` that points into the upstream, as the gateway's callers must follow it: the
    /// relative path under the gateway. `None` for a location elsewhere, which is kept as is.
    ///
    /// The upstream sees its own authority in `Host`, so its absolute redirects name it; relayed
    /// unchanged they would send callers around the gateway.
    pub fn relative(&self, location: &str) -> Option<String> {
        let rest = location.strip_prefix(&self.origin)?;
        let rest = rest.strip_prefix(&self.prefix)?;
        match rest.chars().next() {
            None => Some("/".to_owned()),
            Some('/') => Some(rest.to_owned()),
            Some('?' | '#') => Some(format!("/{rest}")),
            // `http://host:30001` is not under `http://host:3000`.
            Some(_) => None,
        }
    }
}

impl fmt::Display for UpstreamBase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin, self.prefix)
    }
}

/// The limits the gateway puts on what it relays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayLimits {
    /// The largest request body relayed; a larger one is answered 413.
    pub max_body: usize,
    /// How long a request or response body may go without sending anything before the
    /// gateway gives up on it.
    pub body_idle_timeout: Duration,
    /// The longest a relayed request may take, unless its caller's `x-request-timeout-ms`
    /// asks for less; what is left is forwarded upstream.
    pub deadline: Duration,
}

impl Default for RelayLimits {
    /// 8 MiB bodies, 15 s of silence, 10 s in all.
    fn default() -> Self {
        RelayLimits {
            max_body: 8 << 20,
            body_idle_timeout: Duration::from_secs(15),
            deadline: Duration::from_secs(10),
        }
    }
}

#[derive(Clone)]
struct Gateway {
    upstream: Upstream,
    base: UpstreamBase,
    limits: RelayLimits,
}

/// The gateway: every request relayed to `base` through `upstream`, behind
/// `ErrorEnvelopeLayer`.
pub fn router(upstream: Upstream, base: UpstreamBase, limits: RelayLimits) -> Router {
    Router::new()
        .fallback(relay)
        .with_state(Gateway {
            upstream,
            base,
            limits,
        })
        .layer(
            tower::ServiceBuilder::new()
                .layer(ErrorEnvelopeLayer::new())
                .layer(RequestTimeoutLayer::new(limits.deadline)),
        )
}

async fn relay(State(gateway): State<Gateway>, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let limits = gateway.limits;
    if content_length(&parts.headers).is_some_and(|n| n > limits.max_body as u64) {
        return Err(too_large(limits.max_body));
    }
    // Only the path and query are relayed, so an absolute-form request line
    // (`GET http://elsewhere/ HTTP/1.1`) cannot make the gateway an open proxy.
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri = gateway
        .base
        .uri(path)
        .map_err(|_| ApiError::invalid_request("the request path cannot be relayed"))?;

    let body = GuardedBody::caller(body, limits.max_body, limits.body_idle_timeout);
    let mut upstream_request = http::Request::new(Body::new(body));
    *upstream_request.method_mut() = parts.method;
    *upstream_request.uri_mut() = uri;
    *upstream_request.headers_mut() = request_headers(&parts.headers);
    // Forward what is left of the caller's deadline: the retry layer sends it upstream as
    // x-request-timeout-ms and never waits past it.
    if let Some(left) = parts.extensions.get::<TimeLeft>() {
        upstream_request
            .extensions_mut()
            .insert(Deadline::at(left.deadline()));
    }
    // Carry the request id across, so both services log the same id.
    if let Some(id) = parts.extensions.get::<RequestId>() {
        upstream_request
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), id.header_value().clone());
    }

    match gateway.upstream.oneshot(upstream_request).await {
        Ok(response) if response.status().is_server_error() => {
            Err(from_upstream_5xx(response).await)
        }
        Ok(response) => Ok(relay_response(
            response,
            &gateway.base,
            limits.body_idle_timeout,
        )),
        Err(err) => Err(gateway_error(ApiError::from_error(err))),
    }
}

/// The upstream's 1xx–4xx response, relayed: its status, end-to-end headers and streamed body.
///
/// A 4xx goes on to the gateway's `ErrorEnvelopeLayer`, which keeps the upstream's envelope
/// (or makes one), its `Allow`, `WWW-Authenticate` and `Retry-After`, and puts in the gateway's
/// request id.
fn relay_response(
    response: http::Response<Incoming>,
    base: &UpstreamBase,
    idle: Duration,
) -> Response {
    let (parts, body) = response.into_parts();
    let mut headers = response_headers(&parts.headers);
    let relative = headers
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|location| base.relative(location))
        .and_then(|location| HeaderValue::try_from(location).ok());
    if let Some(location) = relative {
        headers.insert(header::LOCATION, location);
    }
    let mut relayed = Response::new(Body::new(GuardedBody::upstream(body, idle)));
    *relayed.status_mut() = parts.status;
    *relayed.headers_mut() = headers;
    relayed
}

/// The gateway's own error for an upstream's 5xx response.
async fn from_upstream_5xx(response: http::Response<Incoming>) -> ApiError {
    let (parts, body) = response.into_parts();
    let retry_after = fender::retry_after::from_headers(&parts.headers, SystemTime::now());
    let code = if is_json(&parts.headers) {
        envelope_code(body).await
    } else {
        None
    };
    upstream_failure(parts.status, code.as_ref(), retry_after)
}

/// The code of an envelope body, if it is one and arrives promptly; the rest is dropped.
async fn envelope_code(body: Incoming) -> Option<ErrorCode> {
    let read = Limited::new(body, ERROR_BODY_LIMIT).collect();
    let bytes = tokio::time::timeout(ERROR_BODY_TIMEOUT, read)
        .await
        .ok()?
        .ok()?
        .to_bytes();
    let envelope: Envelope = serde_json::from_slice(&bytes).ok()?;
    Some(envelope.error.code)
}

fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            let v = v.trim().to_ascii_lowercase();
            v == "application/json" || v.ends_with("+json")
        })
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// What the gateway answers when the upstream answered `status`, a 5xx.
///
/// 504 → 504 `TIMEOUT`; 503 → 503 `SERVICE_UNAVAILABLE` with the upstream's `Retry-After`;
/// any other 5xx → 502 `BAD_GATEWAY`. The details name the upstream's status and, when it sent
/// a known contract code, that code; never its message, details or content type.
pub fn upstream_failure(
    status: StatusCode,
    upstream_code: Option<&ErrorCode>,
    retry_after: Option<Duration>,
) -> ApiError {
    let err = match status {
        StatusCode::GATEWAY_TIMEOUT => ApiError::timeout("the upstream service timed out"),
        StatusCode::SERVICE_UNAVAILABLE => {
            let err = ApiError::service_unavailable("the upstream service is unavailable");
            match retry_after {
                Some(delay) => err.with_retry_after(delay),
                None => err,
            }
        }
        _ => ApiError::bad_gateway("the upstream service failed"),
    };
    // The gateway's own words, deliberately published: a 5xx sends nothing else.
    let err = public(err)
        .with_public_detail("origin", "upstream")
        .with_public_detail("upstream_status", status.as_u16());
    match upstream_code.filter(|code| code.is_known()) {
        Some(code) => err.with_public_detail("upstream_code", code.as_str()),
        None => err,
    }
}

/// The error with its own message marked safe to publish (the gateway wrote it).
fn public(err: ApiError) -> ApiError {
    let message = err.message().to_owned();
    err.with_public_message(message)
}

/// What the gateway answers for a failure of the client stack (the call returned `Err`).
///
/// - an error that is the caller's (a 4xx, such as the body limit's 413) is answered as is;
/// - an upstream 5xx decoded by a `DecodeEnvelopeLayer` in the stack → [`upstream_failure`];
/// - a local refusal (open circuit, load shedding) → 503 `SERVICE_UNAVAILABLE` with the
///   `Retry-After` of the refusal and `origin: local`, never an `upstream_code`: the upstream was
///   not asked;
/// - a transport failure, per the contract's mapping: timeout → 504 `TIMEOUT`, refused
///   connection → 503 `SERVICE_UNAVAILABLE`, anything else → 502 `BAD_GATEWAY`, with
///   `origin: transport`.
///
/// The original error stays attached as the source, for the gateway's log.
pub fn gateway_error(err: ApiError) -> ApiError {
    let mapped = match err.origin() {
        Origin::Response if err.status().is_server_error() => {
            upstream_failure(err.status(), Some(err.code()), err.retry_after())
        }
        Origin::Response => return err,
        Origin::Local => {
            let (message, reason) = match find::<CircuitOpen>(&err) {
                Some(open) => (
                    "the gateway did not send the request: its circuit breaker for the \
                     upstream service is open",
                    open.reason().as_str(),
                ),
                None => (
                    "the gateway did not send the request: it is overloaded",
                    "overloaded",
                ),
            };
            let refused = public(ApiError::service_unavailable(message))
                .with_public_detail("origin", "local")
                .with_public_detail("reason", reason);
            match err.retry_after() {
                Some(delay) => refused.with_retry_after(delay),
                None => refused,
            }
        }
        _ => {
            let failed = match err.class() {
                Class::Timeout => ApiError::timeout("the upstream service did not answer in time"),
                Class::ConnectFailed => {
                    ApiError::service_unavailable("the upstream service refused the connection")
                }
                _ => ApiError::bad_gateway("the connection to the upstream service failed"),
            };
            public(failed).with_public_detail("origin", "transport")
        }
    };
    mapped.with_source(err)
}

/// The first `E` in the source chain of `err`.
fn find<E: StdError + 'static>(err: &ApiError) -> Option<&E> {
    let mut current: Option<&(dyn StdError + 'static)> = err.source_error().map(|e| e as _);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// The 413 of a body over the gateway's limit: `INVALID_REQUEST`, the contract's code for a
/// 4xx outside its table.
pub fn too_large(limit: usize) -> ApiError {
    ApiError::from_status(StatusCode::PAYLOAD_TOO_LARGE)
        .with_message(format!(
            "the request body is larger than the gateway's limit of {limit} bytes"
        ))
        .with_detail("limit_bytes", limit)
}

/// Headers that describe one connection, not the message (RFC 9110 §7.6.1); never relayed.
const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// `headers` without the hop-by-hop ones: the fixed list and those the `Connection` header
/// names.
fn end_to_end(headers: &HeaderMap) -> HeaderMap {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|token| HeaderName::from_bytes(token.trim().as_bytes()).ok())
        .collect();
    let mut kept = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if !HOP_BY_HOP.contains(name) && !named.contains(name) {
            kept.append(name, value.clone());
        }
    }
    kept
}

/// The caller's headers as sent upstream: the end-to-end ones, without those the gateway or its
/// client set itself (`Host` and `Content-Length` from the URL and body, `Expect`, the request
/// id, the caller's attempt count and deadline, which are not the gateway's).
pub fn request_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = end_to_end(headers);
    for name in [
        header::HOST,
        header::CONTENT_LENGTH,
        header::EXPECT,
        X_REQUEST_ID.clone(),
        HeaderName::from_static("x-attempt-count"),
        HeaderName::from_static("x-request-timeout-ms"),
    ] {
        kept.remove(name);
    }
    kept
}

/// The upstream's headers as relayed to the caller: the end-to-end ones (`Location`, `Allow`,
/// `Retry-After`, `Cache-Control`, …) without the upstream's request id, which the gateway's
/// envelope layer sets, and without `Server`, which names the upstream's software (nginx does
/// not relay it either).
pub fn response_headers(headers: &HeaderMap) -> HeaderMap {
    let mut kept = end_to_end(headers);
    kept.remove(&X_REQUEST_ID);
    kept.remove(header::SERVER);
    kept
}

pin_project! {
    /// A relayed body with an idle timeout and, for the caller's body, a size limit.
    ///
    /// Its errors say whose failure it was: for the caller's body they are `ApiError`s with a
    /// 4xx status (413 over the limit, 408 stalled, 400 unreadable), which the client stack's
    /// classifier finds in the error chain, so it neither retries them nor counts them
    /// against the upstream.
    #[derive(Debug)]
    pub struct GuardedBody<B> {
        #[pin]
        inner: B,
        #[pin]
        idle: Option<Sleep>,
        idle_timeout: Duration,
        limit: usize,
        remaining: usize,
        side: Side,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Caller,
    Upstream,
}

impl<B> GuardedBody<B> {
    /// The caller's request body: at most `limit` bytes, with at most `idle` between frames.
    pub fn caller(inner: B, limit: usize, idle: Duration) -> Self {
        GuardedBody {
            inner,
            idle: None,
            idle_timeout: idle,
            limit,
            remaining: limit,
            side: Side::Caller,
        }
    }

    /// The upstream's response body: any size, with at most `idle` between frames.
    pub fn upstream(inner: B, idle: Duration) -> Self {
        GuardedBody {
            inner,
            idle: None,
            idle_timeout: idle,
            limit: usize::MAX,
            remaining: usize::MAX,
            side: Side::Upstream,
        }
    }
}

impl<B> http_body::Body for GuardedBody<B>
where
    B: http_body::Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let deadline = Instant::now() + *this.idle_timeout;
        if this.idle.is_none() {
            this.idle.set(Some(tokio::time::sleep_until(deadline)));
        }
        let frame = match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => frame,
            Poll::Pending => {
                let idle = this.idle.as_pin_mut().expect("set above");
                ready!(idle.poll(cx));
                return Poll::Ready(Some(Err(stalled(*this.side, *this.idle_timeout))));
            }
        };
        if let Some(idle) = this.idle.as_mut().as_pin_mut() {
            idle.reset(deadline);
        }
        Poll::Ready(match frame {
            None => None,
            Some(Ok(frame)) => match frame.data_ref().map(Bytes::len) {
                Some(n) if n > *this.remaining => {
                    *this.remaining = 0;
                    Some(Err(too_large(*this.limit).into()))
                }
                Some(n) => {
                    *this.remaining -= n;
                    Some(Ok(frame))
                }
                None => Some(Ok(frame)),
            },
            Some(Err(err)) => Some(Err(match this.side {
                Side::Caller => ApiError::invalid_request("the request body could not be read")
                    .with_source(err)
                    .into(),
                Side::Upstream => err.into(),
            })),
        })
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

fn stalled(side: Side, after: Duration) -> BoxError {
    match side {
        Side::Caller => ApiError::from_status(StatusCode::REQUEST_TIMEOUT)
            .with_message(format!(
                "the request body sent nothing for {after:?}; the gateway gave up on it"
            ))
            .into(),
        Side::Upstream => ApiError::timeout(format!(
            "the upstream's response body sent nothing for {after:?}"
        ))
        .into(),
    }
}

#[cfg(test)]
mod tests;
