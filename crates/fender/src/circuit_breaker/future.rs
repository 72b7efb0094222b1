//! The response future of [`CircuitBreaker`](super::CircuitBreaker).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;

use super::breaker::Permit;
use super::error::CircuitOpen;
use crate::BoxError;
use crate::classify::{Classify, Outcome};

pin_project! {
    /// The response future of [`CircuitBreaker`](super::CircuitBreaker): the inner call, whose
    /// outcome the breaker records, or an already-ready [`CircuitOpen`] error.
    pub struct ResponseFuture<F, C> {
        #[pin]
        kind: Kind<F, C>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F, C> {
        Refused { error: Option<CircuitOpen> },
        Called { #[pin] future: F, permit: Option<Permit>, classifier: C },
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn refused(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Refused { error: Some(error) },
        }
    }

    /// An admitted call: `permit` records its outcome, or cancels it if the future is dropped
    /// first.
    pub(crate) fn admitted(future: F, permit: Permit, classifier: C) -> Self {
        ResponseFuture {
            kind: Kind::Called {
                future,
                permit: Some(permit),
                classifier,
            },
        }
    }
}

impl<F, C> fmt::Debug for ResponseFuture<F, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Refused { .. } => "refused",
            Kind::Called { .. } => "called",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish_non_exhaustive()
    }
}

impl<F, C, B, E> Future for ResponseFuture<F, C>
where
    F: Future<Output = Result<http::Response<B>, E>>,
    E: Into<BoxError>,
    C: Classify,
{
    type Output = Result<http::Response<B>, BoxError>;

    #[inline(always)]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { error } => Poll::Ready(Err(refusal(error))),
            KindProj::Called {
                future,
                permit,
                classifier,
            } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                let outcome = match &result {
                    Ok(res) => Outcome::Response {
                        status: res.status(),
                        headers: res.headers(),
                    },
                    Err(err) => Outcome::Error(&**err),
                };
                let failure = classifier.classify(outcome).is_failure();
                // Recorded in place, then released where it lies: the permit is not moved out
                // of the future.
                if let Some(permit) = permit.as_mut() {
                    permit.complete(failure);
                }
                *permit = None;
                Poll::Ready(result)
            }
        }
    }
}

/// The error of a refused call, boxed once; out of line, so that the admitted path stays small
/// enough to inline into the caller.
#[cold]
#[inline(never)]
fn refusal(error: &mut Option<CircuitOpen>) -> BoxError {
    Box::new(error.take().expect("polled after completion"))
}
