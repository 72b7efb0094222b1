//! The response future of [`ErrorEnvelope`](super::ErrorEnvelope).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::response::Parts;
use http::{HeaderValue, Method, Response};
use http_body::Body;
use http_body_util::BodyExt;
use pin_project_lite::pin_project;

use super::InnerBody;
use super::accept::KeptAccept;
use super::body::{BoundedRead, EnvelopeBody, ReadBounded};
use super::decode::error_from_json;
use super::layer::Config;
use super::problem::{PROBLEM_JSON, Problem, Wire, has_problem_media_type, vary_on_accept};
use super::service::{DisplayChain, Panicked, id_str};
use crate::classify::chain;
use crate::error::EdgeRenders;
use crate::request_id::{RequestId, X_REQUEST_ID};
use crate::{ApiError, BoxError};

/// What the log line of an error says about its request.
#[derive(Debug)]
pub(crate) struct RequestLine {
    pub(crate) method: Method,
    pub(crate) uri: http::Uri,
    /// The caller's `x-attempt-count` (1 when it sent none or nonsense), so logs show which
    /// requests were retries.
    pub(crate) attempt: u32,
}

impl RequestLine {
    pub(crate) fn of<B>(req: &http::Request<B>) -> Self {
        // A lookup hashes the name even in an empty map.
        let headers = req.headers();
        let attempt = (!headers.is_empty())
            .then(|| headers.get(crate::headers::X_ATTEMPT_COUNT))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|&n| n >= 1)
            .unwrap_or(1);
        RequestLine {
            method: req.method().clone(),
            uri: req.uri().clone(),
            attempt,
        }
    }
}

pin_project! {
    /// The response future of [`ErrorEnvelope`](super::ErrorEnvelope).
    pub struct ResponseFuture<F> {
        #[pin]
        state: State<F>,
        id: Option<RequestId>,
        config: Config,
        line: RequestLine,
        accept: KeptAccept,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling {
            #[pin]
            future: F,
        },
        Failed {
            error: Option<BoxError>,
        },
        // The inner service panicked in `call`.
        Panicked {
            panic: Option<Panicked>,
        },
        // Boxed: only an error response with a body worth reading gets here, and unboxed its
        // head, reader and timer would make every success's future (moved by each `.await`)
        // twice as large.
        Reading {
            reading: Pin<Box<Reading>>,
        },
    }
}

pin_project! {
    /// An inner error body being read, against its deadline.
    #[project = ReadingProj]
    struct Reading {
        #[pin]
        read: ReadBounded<InnerBody>,
        #[pin]
        deadline: tokio::time::Sleep,
        parts: Option<Parts>,
    }
}

impl<F> std::fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("request_id", &self.id)
            .finish_non_exhaustive()
    }
}

impl<F> ResponseFuture<F> {
    pub(crate) fn new(
        future: F,
        id: RequestId,
        config: Config,
        line: RequestLine,
        accept: KeptAccept,
    ) -> Self {
        Self::in_state(State::Calling { future }, id, config, line, accept)
    }

    pub(crate) fn failed(
        error: BoxError,
        id: RequestId,
        config: Config,
        line: RequestLine,
        accept: KeptAccept,
    ) -> Self {
        let state = State::Failed { error: Some(error) };
        Self::in_state(state, id, config, line, accept)
    }

    pub(crate) fn panicked(
        panicked: Panicked,
        id: RequestId,
        config: Config,
        line: RequestLine,
        accept: KeptAccept,
    ) -> Self {
        let state = State::Panicked {
            panic: Some(panicked),
        };
        Self::in_state(state, id, config, line, accept)
    }

    fn in_state(
        state: State<F>,
        id: RequestId,
        config: Config,
        line: RequestLine,
        accept: KeptAccept,
    ) -> Self {
        ResponseFuture {
            state,
            id: Some(id),
            config,
            line,
            accept,
        }
    }
}

impl<F, ResBody, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<ResBody>, E>>,
    E: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Output = Result<Response<EnvelopeBody<ResBody>>, std::convert::Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            let (parts, api) = match this.state.as_mut().project() {
                StateProj::Calling { future } => match ready!({
                    let _edge = EdgeRenders::enter();
                    // The handler's code runs in this poll: a panic in it is a 500 envelope.
                    match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
                        Ok(poll) => poll.map(Ok),
                        Err(panic) => Poll::Ready(Err(Panicked::new("handler", &*panic))),
                    }
                }) {
                    Err(panicked) => (empty_parts(), ApiError::internal().with_source(panicked)),
                    Ok(Ok(res)) if res.status().as_u16() < 400 => {
                        let (mut parts, body) = res.into_parts();
                        let id = this.id.take().expect("polled after completion");
                        parts
                            .headers
                            .insert(X_REQUEST_ID.clone(), id.into_header_value());
                        return Poll::Ready(Ok(Response::from_parts(
                            parts,
                            EnvelopeBody::inner(body),
                        )));
                    }
                    Ok(Ok(res)) => {
                        let (mut parts, body) = res.into_parts();
                        if let Some(api) = parts.extensions.remove::<ApiError>() {
                            (parts, api)
                        } else if worth_reading(&parts) {
                            // Boxed here, on the way to an error, so the reader has one type.
                            let body = InnerBody::new(body.map_err(Into::into));
                            let read = ReadBounded::new(body, this.config.body_limit);
                            this.state.set(State::Reading {
                                reading: Box::pin(Reading {
                                    read,
                                    deadline: tokio::time::sleep(this.config.body_timeout),
                                    parts: Some(parts),
                                }),
                            });
                            continue;
                        } else {
                            let api = ApiError::from_status(parts.status);
                            (parts, api)
                        }
                    }
                    Ok(Err(err)) => (empty_parts(), map_error(err.into(), this.config)),
                },
                StateProj::Panicked { panic } => {
                    let panicked = panic.take().expect("polled after completion");
                    (empty_parts(), ApiError::internal().with_source(panicked))
                }
                StateProj::Failed { error } => {
                    let err = error.take().expect("polled after completion");
                    (empty_parts(), map_error(err, this.config))
                }
                StateProj::Reading { reading } => {
                    let ReadingProj {
                        mut read,
                        deadline,
                        parts,
                    } = reading.as_mut().project();
                    // The body is the inner service's code running on this task: a panic in it
                    // must not take the connection down with it.
                    let read = match catch_unwind(AssertUnwindSafe(|| read.as_mut().poll(cx))) {
                        Ok(Poll::Ready(read)) => Ok(read),
                        Ok(Poll::Pending) => {
                            ready!(deadline.poll(cx));
                            Ok(BoundedRead::failed("the error body did not arrive in time"))
                        }
                        Err(panic) => Err(Panicked::new("the error body", &*panic)),
                    };
                    let parts = parts.take().expect("polled after completion");
                    match read {
                        Ok(read) => {
                            let api = from_error_body(&parts, read, this.config);
                            (parts, api)
                        }
                        Err(panicked) => {
                            (empty_parts(), ApiError::internal().with_source(panicked))
                        }
                    }
                }
            };
            let id = this.id.take().expect("polled after completion");
            let how = Rendering {
                wire: negotiate(this.config, this.accept),
                type_base: this.config.problem_type_base(),
            };
            return Poll::Ready(Ok(render(parts, api, &id, this.line, how)));
        }
    }
}

/// The form of an error response: [`Wire::choose`] on the request's headers, with the parse of
/// its `Accept` done only now.
fn negotiate(config: &Config, accept: &KeptAccept) -> Wire {
    // What the mode says without an `Accept`; when the choice depends on one, the kept one.
    let mut wire = Wire::choose(config.problem_details, &http::HeaderMap::new());
    if wire.vary {
        wire.problem = accept.prefers_problem();
    }
    wire
}

fn empty_parts() -> Parts {
    Response::new(()).into_parts().0
}

/// The contract's mapping of an inner error, after the user's own.
fn map_error(err: BoxError, config: &Config) -> ApiError {
    if let Some(api) = config
        .map_error
        .as_ref()
        .and_then(|map| chain(&*err).find_map(&**map))
    {
        return api.with_source(err);
    }
    ApiError::from_error(err)
}

fn content_type_is(parts: &Parts, prefix: &str) -> bool {
    parts
        .headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with(prefix))
}

/// A JSON body: `application/json` or `application/problem+json`.
fn is_json(parts: &Parts) -> bool {
    content_type_is(parts, "application/json") || has_problem_media_type(&parts.headers)
}

/// A JSON error body may already be an envelope (or the same error as problem details); a
/// plain-text 4xx body may be a usable message. Anything else (a 5xx text, HTML, binary) is
/// never read: it is never echoed.
fn worth_reading(parts: &Parts) -> bool {
    is_json(parts) || (parts.status.is_client_error() && content_type_is(parts, "text/plain"))
}

fn from_error_body(parts: &Parts, read: BoundedRead, config: &Config) -> ApiError {
    let status = parts.status;
    if is_json(parts)
        && !read.truncated
        && read.failed.is_none()
        && let Some(api) = error_from_json(&read.bytes, status, &parts.headers)
    {
        return api;
    }
    let api = ApiError::from_status(status);
    if let Some(err) = read.failed {
        // Logged with the response, never sent.
        return api.with_source(err);
    }
    if !status.is_client_error() || read.truncated {
        return api;
    }
    if !content_type_is(parts, "text/plain") {
        return api;
    }
    match std::str::from_utf8(&read.bytes).map(str::trim) {
        Ok(text)
            if !text.is_empty()
                && text.len() <= config.max_message_len
                && !text.chars().any(char::is_control) =>
        {
            api.with_message(text.to_owned())
        }
        _ => api,
    }
}

/// How an error response is written: in which form, with which problem type base.
#[derive(Debug, Clone, Copy)]
struct Rendering<'a> {
    wire: Wire,
    type_base: &'a str,
}

fn render<B>(
    mut parts: Parts,
    api: ApiError,
    id: &RequestId,
    line: &RequestLine,
    how: Rendering<'_>,
) -> Response<EnvelopeBody<B>> {
    let api = api.with_request_id(id_str(id));
    crate::metrics::envelope_sent(&api);
    log(&api, line);
    super::strip_representation_headers(&mut parts.headers);
    let json = if how.wire.problem {
        let content_type = HeaderValue::from_static(PROBLEM_JSON);
        api.render_with(&mut parts, content_type, |api| {
            let problem = Problem::from_envelope(&api.to_envelope(), api.status(), how.type_base);
            serde_json::to_vec(&problem).expect("a problem serializes")
        })
    } else {
        api.render_into(&mut parts)
    };
    if how.wire.vary {
        vary_on_accept(&mut parts.headers);
    }
    Response::from_parts(parts, EnvelopeBody::envelope(json))
}

fn log(api: &ApiError, line: &RequestLine) {
    let request_id = api.request_id().unwrap_or_default();
    let status = api.status().as_u16();
    let code = api.code().as_str();
    // Everything but a 4xx is the server's failure: a 5xx, and statuses past 599 too.
    if !api.status().is_client_error() {
        match api.source_error() {
            Some(source) => tracing::error!(
                request_id, status, code, method = %line.method, uri = %line.uri,
                attempt = line.attempt, error = %DisplayChain(source), "{}", api.message()
            ),
            None => tracing::error!(
                request_id, status, code, method = %line.method, uri = %line.uri,
                attempt = line.attempt, "{}", api.message()
            ),
        }
    } else {
        tracing::debug!(
            request_id, status, code, method = %line.method, uri = %line.uri,
            attempt = line.attempt, "{}", api.message()
        );
    }
}
