//! The response future of [`CircuitBreaker`](super::CircuitBreaker).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use pin_project_lite::pin_project;
use tokio::time::Instant;

use super::error::CircuitOpen;
use super::state::{Shard, Ticket};
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
        Called { #[pin] future: F, guard: Guard<C> },
    }
}

/// Records the outcome of an admitted call; gives a probe slot back if the call is dropped
/// before it completes.
struct Guard<C> {
    breaker: Arc<Shard>,
    ticket: Ticket,
    classifier: C,
    started: Option<Instant>,
    done: bool,
}

impl<C> Drop for Guard<C> {
    fn drop(&mut self) {
        if !self.done && self.ticket.is_probe() {
            self.breaker.release_probe(self.ticket);
        }
    }
}

impl<F, C> ResponseFuture<F, C> {
    pub(crate) fn refused(error: CircuitOpen) -> Self {
        ResponseFuture {
            kind: Kind::Refused { error: Some(error) },
        }
    }

    pub(crate) fn admitted(future: F, breaker: Arc<Shard>, ticket: Ticket, classifier: C) -> Self {
        let started = breaker.slow_call.map(|_| Instant::now());
        ResponseFuture {
            kind: Kind::Called {
                future,
                guard: Guard {
                    breaker,
                    ticket,
                    classifier,
                    started,
                    done: false,
                },
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

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Refused { error } => {
                let error = error.take().expect("polled after completion");
                Poll::Ready(Err(Box::new(error)))
            }
            KindProj::Called { future, guard } => {
                let result = ready!(future.poll(cx)).map_err(Into::into);
                let outcome = match &result {
                    Ok(res) => Outcome::Response {
                        status: res.status(),
                        headers: res.headers(),
                    },
                    Err(err) => Outcome::Error(&**err),
                };
                let mut failure = guard.classifier.classify(outcome).is_failure();
                if let (Some(started), Some(threshold)) = (guard.started, guard.breaker.slow_call) {
                    failure |= started.elapsed() >= threshold;
                }
                if !guard.done {
                    guard.done = true;
                    guard.breaker.record(guard.ticket, failure);
                }
                Poll::Ready(result)
            }
        }
    }
}
