//! The response future of [`Hedge`](super::Hedge).

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::layer::Shared;
use crate::classify::{Classify, Outcome};

pin_project! {
    /// The response future of [`Hedge`](super::Hedge): the primary attempt, and after the delay
    /// perhaps a hedge racing it.
    ///
    /// It resolves to the first good answer, or to the answer that came last when both copies
    /// failed; the other copy still in flight is dropped then. Dropping the future cancels both.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<B>>,
    {
        #[pin]
        primary: Option<S::Future>,
        #[pin]
        backup: Backup<S, B, S::Future>,
        // When the primary was sent, while its latency is still to be recorded.
        started: Option<Instant>,
        shared: Arc<Shared<C>>,
    }
}

pin_project! {
    /// The hedge's side of the race.
    #[project = BackupProj]
    enum Backup<S, B, F> {
        // The delay runs; the service and the copy of the request wait with it.
        Waiting { #[pin] sleep: Sleep, spare: Option<(S, Request<B>)> },
        // The delay ran out; the service is being made ready.
        Readying { spare: Option<(S, Request<B>)> },
        // The hedge is in flight.
        Running { #[pin] future: F },
        // No hedge: not wanted, refused by the budget, or over.
        Idle,
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    /// A request that is not hedged; `started` is set when its latency is recorded.
    pub(crate) fn single(
        primary: S::Future,
        started: Option<Instant>,
        shared: Arc<Shared<C>>,
    ) -> Self {
        ResponseFuture {
            primary: Some(primary),
            backup: Backup::Idle,
            started,
            shared,
        }
    }

    /// A request hedged with `copy`, sent through `spare`, if still unanswered after `delay`.
    pub(crate) fn hedged(
        primary: S::Future,
        started: Option<Instant>,
        delay: Duration,
        spare: S,
        copy: Request<B>,
        shared: Arc<Shared<C>>,
    ) -> Self {
        ResponseFuture {
            primary: Some(primary),
            backup: Backup::Waiting {
                sleep: tokio::time::sleep(delay),
                spare: Some((spare, copy)),
            },
            started,
            shared,
        }
    }
}

impl<S, B, F> Backup<S, B, F> {
    fn is_running(self: Pin<&mut Self>) -> bool {
        matches!(self.project(), BackupProj::Running { .. })
    }
}

/// Whether an answer wins the race: anything the classifier would not retry.
fn is_good<C, ResB, E>(classifier: &C, result: &Result<Response<ResB>, E>) -> bool
where
    C: Classify,
    E: StdError + Send + Sync + 'static,
{
    !classifier.classify(Outcome::of(result)).is_retryable()
}

impl<S, B, C, ResB> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: StdError + Send + Sync + 'static,
    C: Classify,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        // The primary first, so one that answers as the delay runs out is not hedged.
        if let Some(primary) = this.primary.as_mut().as_pin_mut()
            && let Poll::Ready(result) = primary.poll(cx)
        {
            this.primary.set(None);
            if let Some(started) = this.started.take() {
                this.shared.delay.record(started.elapsed());
            }
            // A failure before the hedge was sent is the answer: retrying is the retry
            // layer's job. A failure while the hedge runs waits for the hedge.
            if !this.backup.as_mut().is_running() || is_good(&this.shared.classifier, &result) {
                this.backup.set(Backup::Idle);
                return Poll::Ready(result);
            }
        }
        loop {
            match this.backup.as_mut().project() {
                BackupProj::Waiting { sleep, spare } => {
                    ready!(sleep.poll(cx));
                    let spare = spare.take();
                    this.backup.set(Backup::Readying { spare });
                }
                BackupProj::Readying { spare } => {
                    let (service, _) = spare.as_mut().expect("a spare until the hedge is sent");
                    match service.poll_ready(cx) {
                        Poll::Pending => return Poll::Pending,
                        Poll::Ready(Ok(())) if this.shared.budget.withdraw() => {
                            let (mut service, copy) = spare.take().expect("checked above");
                            tracing::debug!(method = %copy.method(), uri = %copy.uri(), "hedge sent");
                            let future = service.call(copy);
                            this.backup.set(Backup::Running { future });
                        }
                        // Refused by the budget, or the service failed: the primary goes alone.
                        Poll::Ready(_) => {
                            this.backup.set(Backup::Idle);
                            return Poll::Pending;
                        }
                    }
                }
                BackupProj::Running { future } => {
                    let result = ready!(future.poll(cx));
                    this.backup.set(Backup::Idle);
                    if this.primary.is_none() {
                        // The primary failed earlier: this is the last answer, good or not.
                        return Poll::Ready(result);
                    }
                    if is_good(&this.shared.classifier, &result) {
                        // The hedge wins; the primary, cancelled, took at least this long.
                        if let Some(started) = this.started.take() {
                            this.shared.delay.record(started.elapsed());
                        }
                        this.primary.set(None);
                        return Poll::Ready(result);
                    }
                    // The hedge failed while the primary runs: the primary has the last word.
                    return Poll::Pending;
                }
                BackupProj::Idle => return Poll::Pending,
            }
        }
    }
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<B>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let backup = match &self.backup {
            Backup::Waiting { .. } => "waiting",
            Backup::Readying { .. } => "readying",
            Backup::Running { .. } => "running",
            Backup::Idle => "idle",
        };
        f.debug_struct("ResponseFuture")
            .field("primary", &self.primary.is_some())
            .field("backup", &backup)
            .finish_non_exhaustive()
    }
}
