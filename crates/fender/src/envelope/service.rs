//! [`ErrorEnvelope`], the server-side service.

use std::any::Any;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use http_body_util::Full;
use tower_http::catch_panic::{CatchPanic, ResponseForPanic};
use tower_service::Service;

use super::accept::KeptAccept;
use super::future::{RequestLine, ResponseFuture};
use super::layer::Config;
use super::problem::ProblemDetails;
use crate::error::EdgeRenders;
use crate::request_id::{RequestId, X_REQUEST_ID, resolve_request_id};
use crate::{ApiError, BoxError};

/// The service of [`ErrorEnvelopeLayer`](super::ErrorEnvelopeLayer).
///
/// # Clone
///
/// Clones copy the layer's settings (two sizes, a timeout, the problem details mode and, if
/// set, an `Arc` of the `map_error` function and one of the problem type base, which they
/// share); they hold no per-request state.
#[derive(Debug)]
pub struct ErrorEnvelope<S> {
    inner: CatchPanic<S, PanicToEnvelope>,
    // By value, not in an `Arc`: each response future takes a copy, and with no `map_error`
    // that copy touches no reference count shared by the threads serving requests.
    config: Config,
    /// The inner service failed readiness; the next call answers this error as an envelope.
    ready_error: Option<BoxError>,
}

impl<S: Clone> Clone for ErrorEnvelope<S> {
    fn clone(&self) -> Self {
        ErrorEnvelope {
            inner: self.inner.clone(),
            config: self.config.clone(),
            ready_error: None,
        }
    }
}

impl<S> ErrorEnvelope<S> {
    /// Wraps `inner` with the contract's behaviour.
    pub fn new(inner: S) -> Self {
        Self::with_config(inner, Config::default())
    }

    pub(crate) fn with_config(inner: S, config: Config) -> Self {
        ErrorEnvelope {
            inner: CatchPanic::custom(inner, PanicToEnvelope),
            config,
            ready_error: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        self.inner.get_ref()
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        self.inner.get_mut()
    }

    /// The inner service, unwrapped.
    pub fn into_inner(self) -> S {
        self.inner.into_inner()
    }
}

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ErrorEnvelope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<super::EnvelopeBody<super::InnerBody>>;
    type Error = Infallible;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // A readiness error is answered on the next call, so the client gets an envelope (an
        // overloaded inner service: 503) and not a dropped connection.
        if self.ready_error.is_some() {
            return Poll::Ready(Ok(()));
        }
        match self.inner.poll_ready(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Ready(Err(err)) => {
                self.ready_error = Some(err.into());
                Poll::Ready(Ok(()))
            }
        }
    }

    fn call(&mut self, mut req: Request<ReqBody>) -> Self::Future {
        // Read before the id is inserted: a lookup in an empty header map is free.
        let line = RequestLine::of(&req);
        // Only an error response is negotiated: keep the `Accept`, parse it if one is rendered.
        let accept = if self.config.problem_details == ProblemDetails::Negotiate {
            KeptAccept::of(req.headers())
        } else {
            KeptAccept::default()
        };
        let inbound = req.headers().get(&X_REQUEST_ID);
        let id = resolve_request_id(inbound);
        if inbound != Some(id.header_value()) {
            req.headers_mut()
                .insert(X_REQUEST_ID.clone(), id.header_value().clone());
        }
        if let Some(err) = self.ready_error.take() {
            return ResponseFuture::failed(err, id, self.config.clone(), line, accept);
        }
        req.extensions_mut().insert(id.clone());
        let future = {
            // A service may answer in `call` already: it too leaves errors to this layer.
            let _edge = EdgeRenders::enter();
            self.inner.call(req)
        };
        ResponseFuture::new(future, id, self.config.clone(), line, accept)
    }
}

/// Displays an error and its source chain: `a: b: c`.
pub(crate) struct DisplayChain<'a>(pub(crate) &'a (dyn StdError + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        for e in crate::classify::chain(self.0).skip(1) {
            write!(f, ": {e}")?;
        }
        Ok(())
    }
}

/// A panic caught in code of the inner service (its handler, or an error body the layer
/// reads), as the source of the 500 it becomes: logged, never sent.
#[derive(Debug)]
pub(crate) struct Panicked {
    what: &'static str,
    message: String,
}

impl Panicked {
    /// The panic of `what` ("handler", "the error body") with the payload `panic` carried.
    pub(crate) fn new(what: &'static str, panic: &(dyn Any + Send)) -> Self {
        let message = if let Some(s) = panic.downcast_ref::<&str>() {
            (*s).to_owned()
        } else if let Some(s) = panic.downcast_ref::<String>() {
            s.clone()
        } else {
            "a panic with a non-string payload".to_owned()
        };
        Panicked { what, message }
    }
}

impl fmt::Display for Panicked {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} panicked: {}", self.what, self.message)
    }
}

impl StdError for Panicked {}

/// tower-http's catch-panic answers with a 500 that carries an [`ApiError`] for the edge to
/// render with the request id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PanicToEnvelope;

impl ResponseForPanic for PanicToEnvelope {
    type ResponseBody = Full<Bytes>;

    fn response_for_panic(&mut self, err: Box<dyn Any + Send + 'static>) -> Response<Full<Bytes>> {
        // The body is rendered at the edge, with the request's id; keep this one empty.
        let api = ApiError::internal().with_source(Panicked::new("handler", &*err));
        let mut res = Response::new(Full::new(Bytes::new()));
        *res.status_mut() = api.status();
        res.extensions_mut().insert(api);
        res
    }
}

/// The request id of a response, as the envelope layer set it.
pub(crate) fn id_str(id: &RequestId) -> &str {
    id.header_value().to_str().unwrap_or_default()
}
