//! The client side: [`DecodeEnvelopeLayer`], [`decode_error`] and [`error_for_status`].

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use http::response::Parts;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

use super::body::{BoundedRead, ReadBounded};
use super::problem::{Problem, has_problem_media_type, looks_like_problem};
use crate::error::Envelope;
use crate::request_id::{X_REQUEST_ID, is_valid_request_id, new_request_id};
use crate::{ApiError, BoxError};

/// How much of an error body is read by default: 64 KiB. The rest is discarded unread.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// Turns every failure of a client into `Err(ApiError)`; see the [module docs](super).
///
/// ```
/// use fender::envelope::DecodeEnvelopeLayer;
/// use std::time::Duration;
///
/// let layer = DecodeEnvelopeLayer::new()
///     .body_limit(16 * 1024)
///     .body_timeout(Duration::from_secs(2));
/// # let _ = layer;
/// ```
#[derive(Debug, Clone, Copy)]
#[must_use = "a builder does nothing until it is used"]
pub struct DecodeEnvelopeLayer {
    config: DecodeConfig,
}

#[derive(Debug, Clone, Copy)]
struct DecodeConfig {
    body_limit: usize,
    body_timeout: Duration,
    generate_request_id: bool,
}

impl Default for DecodeEnvelopeLayer {
    fn default() -> Self {
        DecodeEnvelopeLayer {
            config: DecodeConfig {
                body_limit: DEFAULT_BODY_LIMIT,
                body_timeout: DEFAULT_BODY_TIMEOUT,
                generate_request_id: true,
            },
        }
    }
}

impl DecodeEnvelopeLayer {
    /// The layer with the contract's behaviour.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many bytes of an error body are read (default 64 KiB).
    ///
    /// # Panics
    ///
    /// If `limit` is 0.
    pub fn body_limit(mut self, limit: usize) -> Self {
        assert!(limit > 0, "the error body limit must be at least one byte");
        self.config.body_limit = limit;
        self
    }

    /// How long an error body may take to arrive (default 10 s); after that the error is
    /// decoded from what arrived.
    pub fn body_timeout(mut self, timeout: Duration) -> Self {
        self.config.body_timeout = timeout;
        self
    }

    /// Whether outgoing requests without an `x-request-id` get a new UUID v7 one (default on).
    pub fn generate_request_id(mut self, on: bool) -> Self {
        self.config.generate_request_id = on;
        self
    }
}

impl<S> Layer<S> for DecodeEnvelopeLayer {
    type Service = DecodeEnvelope<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeEnvelope {
            inner,
            config: self.config,
        }
    }
}

/// The service of [`DecodeEnvelopeLayer`].
///
/// # Clone
///
/// Clones are independent; the settings are copied.
#[derive(Debug, Clone)]
pub struct DecodeEnvelope<S> {
    inner: S,
    config: DecodeConfig,
}

impl<S> DecodeEnvelope<S> {
    /// Wraps `inner` with the default settings.
    pub fn new(inner: S) -> Self {
        DecodeEnvelopeLayer::new().layer(inner)
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for DecodeEnvelope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<ResBody>;
    type Error = ApiError;
    type Future = DecodeFuture<S::Future, ResBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ApiError>> {
        self.inner
            .poll_ready(cx)
            .map_err(|err| ApiError::from_error(err.into()))
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        let sent_id = match req.headers().get(&X_REQUEST_ID) {
            Some(id) => SentId::Given(id.clone()),
            None if self.config.generate_request_id => {
                let id = new_request_id().into_header_value();
                let sent = match id.as_bytes().try_into() {
                    Ok(text) => SentId::Made(text),
                    Err(_) => SentId::Given(id.clone()),
                };
                req.headers_mut().insert(X_REQUEST_ID.clone(), id);
                sent
            }
            None => SentId::None,
        };
        DecodeFuture {
            future: Some(self.inner.call(req)),
            reading: None,
            sent_id,
            config: self.config,
        }
    }
}

/// The request id a request was sent with, kept for the error its response may become.
#[derive(Debug)]
enum SentId {
    None,
    /// An id this layer made (a UUID's 36 characters), copied: cheaper than a clone of the
    /// header value's shared bytes and its drop, on every request.
    Made([u8; 36]),
    /// The caller's.
    Given(HeaderValue),
}

impl SentId {
    fn as_str(&self) -> Option<&str> {
        match self {
            SentId::None => None,
            SentId::Made(text) => std::str::from_utf8(text).ok(),
            SentId::Given(value) => value.to_str().ok(),
        }
    }
}

pin_project! {
    /// The response future of [`DecodeEnvelope`].
    pub struct DecodeFuture<F, B> {
        // The inner call, until its response arrives. A plain field rather than a state of an
        // enum, so that `call` builds the inner future in place instead of moving it in.
        #[pin]
        future: Option<F>,
        // The error body being read, after an error response; boxed, since few requests get
        // there and every future would carry its room.
        reading: Option<Pin<Box<Reading<B>>>>,
        sent_id: SentId,
        config: DecodeConfig,
    }
}

pin_project! {
    /// The read of an error response's body, bounded in size and time.
    struct Reading<B> {
        #[pin]
        read: ReadBounded<B>,
        #[pin]
        deadline: tokio::time::Sleep,
        parts: Option<Parts>,
    }
}

impl<F, B> std::fmt::Debug for DecodeFuture<F, B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeFuture")
            .field("sent_id", &self.sent_id)
            .finish_non_exhaustive()
    }
}

impl<F, B, E> Future for DecodeFuture<F, B>
where
    F: Future<Output = Result<Response<B>, E>>,
    E: Into<BoxError>,
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<B>, ApiError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(reading) = this.reading.as_mut() {
            return poll_reading(reading.as_mut(), cx, this.sent_id.as_str());
        }
        let future = this
            .future
            .as_mut()
            .as_pin_mut()
            .expect("polled after completion");
        match ready!(future.poll(cx)) {
            Ok(res) if res.status().as_u16() < 400 => Poll::Ready(Ok(res)),
            Ok(res) => {
                this.future.set(None);
                let (parts, body) = res.into_parts();
                let reading = this.reading.insert(Box::pin(Reading {
                    read: ReadBounded::new(body, this.config.body_limit),
                    deadline: tokio::time::sleep(this.config.body_timeout),
                    parts: Some(parts),
                }));
                // Poll the body right away: it usually has arrived already.
                poll_reading(reading.as_mut(), cx, this.sent_id.as_str())
            }
            Err(err) => {
                let api = ApiError::from_error(err.into());
                Poll::Ready(Err(with_id(api, this.sent_id.as_str())))
            }
        }
    }
}

fn poll_reading<B>(
    reading: Pin<&mut Reading<B>>,
    cx: &mut Context<'_>,
    sent_id: Option<&str>,
) -> Poll<Result<Response<B>, ApiError>>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let reading = reading.project();
    let read = match reading.read.poll(cx) {
        Poll::Ready(read) => read,
        Poll::Pending => {
            ready!(reading.deadline.poll(cx));
            BoundedRead {
                bytes: bytes::Bytes::new(),
                truncated: false,
                failed: Some("the error body did not arrive in time".into()),
            }
        }
    };
    let parts = reading.parts.take().expect("polled after completion");
    Poll::Ready(Err(decode_parts(&parts, read, sent_id)))
}

fn with_id(api: ApiError, id: Option<&str>) -> ApiError {
    match id {
        Some(id) if api.request_id().is_none() => api.with_request_id(id),
        _ => api,
    }
}

/// The error of an error response whose body (or its first `limit` bytes) has been read.
fn decode_parts(parts: &Parts, read: BoundedRead, sent_id: Option<&str>) -> ApiError {
    let status = parts.status;
    let decoded = match (&read.failed, read.truncated) {
        (None, false) => error_from_json(&read.bytes, status, &parts.headers),
        _ => None,
    };
    let mut api = match decoded {
        Some(api) => api,
        None => {
            let why = if read.failed.is_some() {
                "its body could not be read"
            } else if read.truncated {
                "its body was larger than the error body limit"
            } else if read.bytes.is_empty() {
                "its body was empty"
            } else {
                "its body was not an error envelope"
            };
            let content_type = parts
                .headers
                .get(http::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("none");
            ApiError::from_status(status)
                .with_message(format!(
                    "the server answered {} {} and {why}",
                    status.as_u16(),
                    status.canonical_reason().unwrap_or("")
                ))
                .with_detail("content_type", content_type)
        }
    };
    if api.request_id().is_none() {
        let header_id = parts
            .headers
            .get(&X_REQUEST_ID)
            .and_then(|v| v.to_str().ok())
            .filter(|id| is_valid_request_id(id));
        api = with_id(api, header_id.or(sent_id));
    }
    if let Some(delay) = crate::retry_after::from_headers(&parts.headers, SystemTime::now()) {
        api = api.with_retry_after(delay);
    }
    if let Some(err) = read.failed {
        api = api.with_source(err);
    }
    api
}

/// The error a complete JSON error body carries, in either wire format: an envelope, or an
/// RFC 9457 problem document. The envelope is tried first, whatever the content type; a
/// problem is one when `headers` say `application/problem+json`, or when an object has a
/// string `type` and a numeric `status` (see [`looks_like_problem`]). `None` for anything
/// else: the caller falls back to the status.
pub(crate) fn error_from_json(
    bytes: &[u8],
    status: http::StatusCode,
    headers: &http::HeaderMap,
) -> Option<ApiError> {
    if let Ok(envelope) = serde_json::from_slice::<Envelope>(bytes) {
        return Some(ApiError::from_envelope(envelope, status));
    }
    let value = serde_json::from_slice::<serde_json::Value>(bytes).ok()?;
    if !has_problem_media_type(headers) && !looks_like_problem(&value) {
        return None;
    }
    Problem::from_json(value).map(|problem| ApiError::from_problem(problem, status))
}

/// Decodes an error response into its [`ApiError`], reading at most 64 KiB of its body.
///
/// The response is taken to be an error whatever its status; see [`error_for_status`] to let
/// successes through. Without a layer there is no body timeout: wrap the call in
/// `tokio::time::timeout` if the server may stall.
pub async fn decode_error<B>(response: Response<B>) -> ApiError
where
    B: Body,
    B::Error: Into<BoxError>,
{
    decode_error_with_limit(response, DEFAULT_BODY_LIMIT).await
}

/// [`decode_error`] with a body limit of `limit` bytes.
pub async fn decode_error_with_limit<B>(response: Response<B>, limit: usize) -> ApiError
where
    B: Body,
    B::Error: Into<BoxError>,
{
    let (parts, body) = response.into_parts();
    let read = ReadBounded::new(body, limit).await;
    decode_parts(&parts, read, None)
}

/// `Ok(response)` for a 1xx–3xx response, `Err(ApiError)` decoded from its body otherwise.
pub async fn error_for_status<B>(response: Response<B>) -> Result<Response<B>, ApiError>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    if response.status().as_u16() < 400 {
        Ok(response)
    } else {
        Err(decode_error(response).await)
    }
}
