//! Deadlines that travel: a server keeps to the time its caller will still wait.
//!
//! A fender client sends every attempt's remaining time in `x-request-timeout-ms` (see
//! [`retry`](crate::retry), which also sends `x-attempt-count`). [`RequestTimeoutLayer`], on the
//! server, enforces the smaller of that and the server's own timeout, never more than the
//! server's maximum (a client cannot ask for more time than the server grants), and makes the
//! deadline visible to handlers as a [`TimeLeft`] extension, so work for a caller that has gone
//! can stop early. When the time runs out the request fails with tower's `Elapsed`, which
//! [`ErrorEnvelopeLayer`](crate::envelope::ErrorEnvelopeLayer) answers as 504 `TIMEOUT`.
//!
//! The documented server stack puts it right inside the envelope layer:
//!
//! ```
//! use std::time::Duration;
//! use axum::{Router, routing::get};
//! use fender::envelope::ErrorEnvelopeLayer;
//! use fender::timeout::{RequestTimeoutLayer, TimeLeft};
//! use tower::ServiceBuilder;
//!
//! async fn report(time: axum::Extension<TimeLeft>) -> String {
//!     format!("{} ms left", time.remaining().as_millis())
//! }
//!
//! let app: Router = Router::new().route("/report", get(report)).layer(
//!     ServiceBuilder::new()
//!         .layer(ErrorEnvelopeLayer::new())
//!         // 10 s unless the caller asks for less; never more than 30 s.
//!         .layer(RequestTimeoutLayer::new(Duration::from_secs(10)).max(Duration::from_secs(30))),
//! );
//! # let _ = app;
//! ```
//!
//! An `x-request-timeout-ms` that is not a whole number of milliseconds is ignored (the
//! server's own timeout applies); `0` is read as 1 ms, the least a client sends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{HeaderMap, Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_layer::Layer;
use tower_service::Service;

use crate::BoxError;
pub use crate::headers::{X_ATTEMPT_COUNT, X_REQUEST_TIMEOUT_MS};

/// When the request's deadline passes, in its extensions for handlers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeLeft {
    deadline: Instant,
}

impl TimeLeft {
    /// The time left now (zero once it has passed).
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }

    /// When it passes (tokio's clock).
    pub fn deadline(&self) -> Instant {
        self.deadline
    }
}

/// Enforces the caller's `x-request-timeout-ms` and the server's own timeout; see the
/// [module docs](self).
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct RequestTimeoutLayer {
    default: Duration,
    max: Duration,
}

impl RequestTimeoutLayer {
    /// The server's own timeout, used when the caller sends none and as the upper bound of what
    /// a caller may ask for (until [`max`](Self::max) raises it).
    ///
    /// # Panics
    ///
    /// When `timeout` is zero.
    pub fn new(timeout: Duration) -> Self {
        assert!(
            !timeout.is_zero(),
            "RequestTimeoutLayer::new: the timeout must not be zero"
        );
        RequestTimeoutLayer {
            default: timeout,
            max: timeout,
        }
    }

    /// The most a caller may ask for (default: the server's own timeout). A caller asking for
    /// more gets this.
    ///
    /// # Panics
    ///
    /// When `max` is zero.
    pub fn max(mut self, max: Duration) -> Self {
        assert!(
            !max.is_zero(),
            "RequestTimeoutLayer::max: the maximum must not be zero"
        );
        self.max = max;
        self
    }

    /// The time this server gives a request with these headers.
    pub fn budget(&self, headers: &HeaderMap) -> Duration {
        match asked(headers) {
            Some(asked) => asked.min(self.max),
            None => self.default.min(self.max),
        }
    }
}

/// The caller's `x-request-timeout-ms`, if it is a whole number.
fn asked(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(X_REQUEST_TIMEOUT_MS)?.to_str().ok()?;
    let ms: u64 = value.trim().parse().ok()?;
    Some(Duration::from_millis(ms.max(1)))
}

impl<S> Layer<S> for RequestTimeoutLayer {
    type Service = RequestTimeout<S>;

    fn layer(&self, inner: S) -> RequestTimeout<S> {
        RequestTimeout {
            inner,
            layer: *self,
        }
    }
}

/// The service of [`RequestTimeoutLayer`].
#[derive(Debug, Clone)]
pub struct RequestTimeout<S> {
    inner: S,
    layer: RequestTimeoutLayer,
}

impl<S> RequestTimeout<S> {
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

impl<S, B, ResB> Service<Request<B>> for RequestTimeout<S>
where
    S: Service<Request<B>, Response = Response<ResB>>,
    S::Error: Into<BoxError>,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let budget = self.layer.budget(req.headers());
        let now = Instant::now();
        let deadline = now
            .checked_add(budget)
            .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365));
        req.extensions_mut().insert(TimeLeft { deadline });
        ResponseFuture {
            inner: self.inner.call(req),
            sleep: tokio::time::sleep_until(deadline),
        }
    }
}

pin_project! {
    /// The response future of [`RequestTimeout`].
    pub struct ResponseFuture<F> {
        #[pin]
        inner: F,
        #[pin]
        sleep: Sleep,
    }
}

impl<F> fmt::Debug for ResponseFuture<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("deadline", &self.sleep.deadline())
            .finish_non_exhaustive()
    }
}

impl<F, T, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<T, E>>,
    E: Into<BoxError>,
{
    type Output = Result<T, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        if let Poll::Ready(result) = this.inner.poll(cx) {
            return Poll::Ready(result.map_err(Into::into));
        }
        ready!(this.sleep.poll(cx));
        Poll::Ready(Err(Box::new(tower::timeout::error::Elapsed::new())))
    }
}
