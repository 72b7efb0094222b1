//! [`Probe`]: the innermost service of every client stack, between it and the upstream. It
//! logs what the upstream receives and what the stack receives back, in the order it happens.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, SystemTime};

use fender::BoxError;
use fender_testkit::{TestBody, Upstream, UpstreamService};
use http::header::HeaderName;
use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tokio::time::Instant;
use tower::Service;

/// The header that numbers each caller request (`0`, `1`, …); every attempt of a request
/// carries its number, since every strategy replays the headers.
pub const REQUEST_NUMBER: HeaderName = HeaderName::from_static("x-request-id");

/// One entry of a run's [`Log`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The upstream received an attempt.
    Arrival {
        /// When, from the start of the run.
        at: Duration,
        /// Which client stack sent it (always 0 when the callers share one).
        stack: u32,
        /// The number of the caller request it is an attempt of.
        request: u32,
    },
    /// A client stack received a response with a valid `Retry-After`.
    RetryAfter {
        /// Which client stack.
        stack: u32,
        /// When that `Retry-After` runs out: the time the response was received plus its
        /// delay, from the start of the run.
        until: Duration,
    },
}

/// Everything the probes of one run saw, in order. Shared by every probe of the run.
#[derive(Clone, Debug)]
pub struct Log {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Log {
    /// An empty log whose times are measured from `start`, with room for `capacity` events.
    pub fn new(start: Instant, capacity: usize) -> Log {
        Log {
            start,
            events: Arc::new(Mutex::new(Vec::with_capacity(capacity))),
        }
    }

    fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(event);
    }

    fn now(&self) -> Duration {
        Instant::now() - self.start
    }

    /// The events so far, taken out of the log.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(&mut *self.events.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The service under each client stack: it forwards every attempt to the upstream and logs
/// its arrival, and logs each response that carries a `Retry-After`.
///
/// # Clone
///
/// Clones share the upstream and the log, and belong to the same stack.
#[derive(Clone, Debug)]
pub struct Probe {
    inner: UpstreamService,
    log: Log,
    stack: u32,
}

impl Probe {
    /// The probe under client stack number `stack`, in front of `upstream`, logging to `log`.
    pub fn new(upstream: &Upstream, log: &Log, stack: u32) -> Probe {
        Probe {
            inner: upstream.service(),
            log: log.clone(),
            stack,
        }
    }
}

impl<B> Service<Request<B>> for Probe
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Response = Response<TestBody>;
    type Error = BoxError;
    type Future = ProbeFuture<B>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Service::<Request<B>>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let number = request
            .headers()
            .get(&REQUEST_NUMBER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .expect("every simulated request carries its number");
        self.log.push(Event::Arrival {
            at: self.log.now(),
            stack: self.stack,
            request: number,
        });
        ProbeFuture {
            inner: self.inner.call(request),
            log: self.log.clone(),
            stack: self.stack,
        }
    }
}

pin_project! {
    /// The response future of [`Probe`].
    #[derive(Debug)]
    pub struct ProbeFuture<B> {
        #[pin]
        inner: fender_testkit::ResponseFuture<B>,
        log: Log,
        stack: u32,
    }
}

impl<B> Future for ProbeFuture<B>
where
    B: Body,
    B::Error: Into<BoxError>,
{
    type Output = Result<Response<TestBody>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let result = ready!(this.inner.poll(cx));
        if let Ok(response) = &result
            && let Some(delay) =
                fender::retry_after::from_headers(response.headers(), SystemTime::now())
        {
            this.log.push(Event::RetryAfter {
                stack: *this.stack,
                until: this.log.now() + delay,
            });
        }
        Poll::Ready(result)
    }
}
