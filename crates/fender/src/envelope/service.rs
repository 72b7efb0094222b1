//! [`ErrorEnvelope`], the server-side service.

use std::any::Any;
use std::convert::Infallible;
use std::error::Error as StdError;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::header::Entry;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::accept::KeptAccept;
use super::future::{RequestLine, ResponseFuture};
use super::layer::Config;
use super::problem::ProblemDetails;
use crate::BoxError;
use crate::error::EdgeRenders;
use crate::request_id::{RequestId, X_REQUEST_ID, new_request_id, resolve_request_id};

/// The service of [`ErrorEnvelopeLayer`](super::ErrorEnvelopeLayer).
///
/// # Clone
///
/// Clones copy the layer's settings (two sizes, a timeout, the problem details mode and, if
/// set, an `Arc` of the `map_error` function and one of the problem type base, which they
/// share); they hold no per-request state.
#[derive(Debug)]
pub struct ErrorEnvelope<S> {
    inner: S,
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
            inner,
            config,
            ready_error: None,
        }
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

impl<S, ReqBody, ResBody> Service<Request<ReqBody>> for ErrorEnvelope<S>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: Into<BoxError>,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<super::EnvelopeBody<ResBody>>;
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
        // One lookup of the header both reads the inbound id and, when it is not kept, sets ours.
        let id = match req.headers_mut().entry(&X_REQUEST_ID) {
            Entry::Occupied(mut inbound) => {
                let id = resolve_request_id(Some(inbound.get()));
                if inbound.get() != id.header_value() {
                    inbound.insert(id.header_value().clone());
                }
                id
            }
            Entry::Vacant(slot) => {
                let id = new_request_id();
                slot.insert(id.header_value().clone());
                id
            }
        };
        if let Some(err) = self.ready_error.take() {
            return ResponseFuture::failed(err, id, self.config.clone(), line, accept);
        }
        req.extensions_mut().insert(id.clone());
        let called = {
            // A service may answer in `call` already: it too leaves errors to this layer.
            let _edge = EdgeRenders::enter();
            // Panics are caught here and in the future's polls, rather than by tower-http's
            // catch-panic, which boxes the body of every response, successes included.
            catch_unwind(AssertUnwindSafe(|| self.inner.call(req)))
        };
        match called {
            Ok(future) => ResponseFuture::new(future, id, self.config.clone(), line, accept),
            Err(panic) => ResponseFuture::panicked(
                Panicked::new("handler", &*panic),
                id,
                self.config.clone(),
                line,
                accept,
            ),
        }
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

/// The request id of a response, as the envelope layer set it.
pub(crate) fn id_str(id: &RequestId) -> &str {
    id.header_value().to_str().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::task::{Context, Poll};

    use bytes::Bytes;
    use http::{Request, Response, StatusCode};
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    use tower_service::Service;

    use super::ErrorEnvelope;
    use crate::envelope::EnvelopeBody;

    /// A service that panics in `call` itself, before it makes a future.
    #[derive(Clone)]
    struct PanicsInCall;

    impl Service<Request<Full<Bytes>>> for PanicsInCall {
        type Response = Response<Full<Bytes>>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Self::Response, Infallible>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<Full<Bytes>>) -> Self::Future {
            panic!("broken before answering")
        }
    }

    #[tokio::test]
    async fn a_panic_in_the_inner_call_is_a_500_envelope_with_the_request_id() {
        let res = ErrorEnvelope::new(PanicsInCall)
            .oneshot(Request::new(Full::new(Bytes::new())))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert!(res.body().is_envelope());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "INTERNAL_ERROR");
        assert_eq!(json["error"]["request_id"], id.as_str());
        assert!(
            !String::from_utf8_lossy(&body).contains("broken before answering"),
            "the panic message is logged, never sent"
        );
    }

    #[tokio::test]
    async fn a_success_carries_the_inner_body_itself() {
        let ok = tower::service_fn(|_: Request<Full<Bytes>>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"hello"))))
        });
        let res = ErrorEnvelope::new(ok)
            .oneshot(Request::new(Full::new(Bytes::new())))
            .await
            .unwrap();
        // The inner body's own type, not a box of it: its exact size is still known.
        let res: Response<EnvelopeBody<Full<Bytes>>> = res;
        assert_eq!(res.status(), StatusCode::OK);
        assert!(!res.body().is_envelope());
        assert_eq!(http_body::Body::size_hint(res.body()).exact(), Some(5));
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello");
    }
}
