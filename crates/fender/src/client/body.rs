//! Deadlines that cover the response body, not only its head.
//!
//! A per-attempt timeout ends when the response head arrives; a body that stalls afterwards
//! would hang the caller. The composed stack wraps every successful response's body in a
//! [`DeadlineBody`]: it fails with a timeout error once the body's deadline passes (the head's
//! arrival plus [`ClientLayer::body_timeout`](super::ClientLayer::body_timeout), and at the
//! latest the request's overall deadline), like tower-http's `TimeoutBody` but for the body
//! as a whole rather than the gap between frames.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use crate::BoxError;
use crate::retry::future::after;

/// The error of a response body that did not finish before its deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyTimeout(());

impl fmt::Display for BodyTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the response body did not finish before its deadline")
    }
}

impl std::error::Error for BodyTimeout {}

/// The timeout error the contract's classifier knows, with [`BodyTimeout`] as its source.
fn elapsed() -> BoxError {
    Box::new(
        crate::ApiError::timeout("the response body did not finish in time")
            .with_class(crate::classify::Class::Timeout)
            .with_source(BodyTimeout(())),
    )
}

pin_project! {
    /// A response body with a deadline; see the [module docs](self).
    pub struct DeadlineBody<B> {
        #[pin]
        inner: B,
        // Made only when there is a deadline.
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> DeadlineBody<B> {
    /// `inner`, failing once `deadline` passes (never, with `None`).
    pub fn new(inner: B, deadline: Option<Instant>) -> Self {
        DeadlineBody {
            inner,
            sleep: deadline.map(|at| Box::pin(tokio::time::sleep_until(at))),
        }
    }

    /// The body inside.
    pub fn into_inner(self) -> B {
        self.inner
    }
}

impl<B: fmt::Debug> fmt::Debug for DeadlineBody<B> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeadlineBody")
            .field("inner", &self.inner)
            .field("deadline", &self.sleep.as_ref().map(|s| s.deadline()))
            .finish()
    }
}

impl<B> Body for DeadlineBody<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Poll::Ready(frame) = this.inner.poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        if let Some(sleep) = this.sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Some(Err(elapsed())));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Wraps the bodies of a service's responses in [`DeadlineBody`].
#[derive(Debug, Clone)]
pub struct BodyDeadline<S> {
    inner: S,
    body_timeout: Option<Duration>,
    deadline: Option<Duration>,
}

impl<S> BodyDeadline<S> {
    pub(crate) fn new(
        inner: S,
        body_timeout: Option<Duration>,
        deadline: Option<Duration>,
    ) -> Self {
        BodyDeadline {
            inner,
            body_timeout,
            deadline,
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

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, Req, B> Service<Req> for BodyDeadline<S>
where
    S: Service<Req, Response = http::Response<B>>,
{
    type Response = http::Response<DeadlineBody<B>>;
    type Error = S::Error;
    type Future = BodyDeadlineFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        // The overall deadline is read before the call, so that the inner future is built
        // last, in its place in this one.
        let overall = self.deadline.map(after);
        BodyDeadlineFuture {
            overall,
            body_timeout: self.body_timeout,
            inner: self.inner.call(req),
        }
    }
}

pin_project! {
    /// The response future of [`BodyDeadline`].
    pub struct BodyDeadlineFuture<F> {
        #[pin]
        inner: F,
        overall: Option<Instant>,
        body_timeout: Option<Duration>,
    }
}

impl<F> fmt::Debug for BodyDeadlineFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyDeadlineFuture").finish_non_exhaustive()
    }
}

impl<F, B, E> Future for BodyDeadlineFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<DeadlineBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.inner.poll(cx))?;
        let from_head = this.body_timeout.map(after);
        let deadline = match (from_head, *this.overall) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Poll::Ready(Ok(res.map(|body| DeadlineBody::new(body, deadline))))
    }
}
