//! [`Hedge`], the service.

use std::error::Error as StdError;
use std::fmt;
use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use tokio::time::Instant;
use tower_service::Service;

use super::future::ResponseFuture;
use super::layer::Shared;
use crate::classify::{Classify, ContractClassifier};
use crate::retry::{IDEMPOTENCY_KEY, is_idempotent};

/// Hedges slow idempotent requests within a budget; made by
/// [`HedgeLayer`](super::HedgeLayer), see the [module docs](super).
///
/// It takes `http::Request<B>` with a `B: Clone` body (`Full<Bytes>`, `Empty<Bytes>`, …) and an
/// inner service that is `Clone` and whose error is a `std::error::Error` (such as
/// [`ApiError`](crate::ApiError), the error of [`ClientLayer`](crate::ClientLayer)'s stack). Its
/// error is the inner service's, unchanged.
///
/// # Clone
///
/// Clones share the layer's budget and window of recent latencies.
pub struct Hedge<S, C = ContractClassifier> {
    inner: S,
    shared: Arc<Shared<C>>,
}

impl<S, C> Hedge<S, C> {
    pub(crate) fn from_shared(inner: S, shared: Arc<Shared<C>>) -> Self {
        Hedge { inner, shared }
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

impl<S: Clone, C> Clone for Hedge<S, C> {
    fn clone(&self) -> Self {
        Hedge {
            inner: self.inner.clone(),
            shared: self.shared.clone(),
        }
    }
}

impl<S: fmt::Debug, C: fmt::Debug> fmt::Debug for Hedge<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hedge")
            .field("inner", &self.inner)
            .field("shared", &self.shared)
            .finish()
    }
}

/// Whether a request may be sent twice: an idempotent method, or an `Idempotency-Key`.
fn may_hedge<B>(request: &Request<B>) -> bool {
    is_idempotent(request.method()) || request.headers().contains_key(IDEMPOTENCY_KEY)
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for Hedge<S, C>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    S::Error: StdError + Send + Sync + 'static,
    C: Classify,
    ReqB: Clone,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqB>) -> Self::Future {
        let shared = &self.shared;
        if shared.deposit {
            shared.budget.deposit();
        }
        if !may_hedge(&request) {
            return ResponseFuture::single(self.inner.call(request), None, shared.clone());
        }
        let started = shared.delay.records().then(Instant::now);
        let Some(delay) = shared.delay.current() else {
            return ResponseFuture::single(self.inner.call(request), started, shared.clone());
        };
        let copy = request.clone();
        // Call the instance that was made ready; keep it, to make it ready again for the hedge.
        let clone = self.inner.clone();
        let mut ready = mem::replace(&mut self.inner, clone);
        let primary = ready.call(request);
        ResponseFuture::hedged(primary, started, delay, ready, copy, shared.clone())
    }
}
