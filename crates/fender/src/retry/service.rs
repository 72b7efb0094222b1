use std::mem;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::body::ReplayBody;
use super::future::{Ctx, ResponseFuture, Template};
use super::layer::RetryLayer;
use super::policy::{Config, IDEMPOTENCY_KEY, is_idempotent};
use crate::BoxError;
use crate::classify::{Classify, ContractClassifier};

/// Retries failed requests per the contract; made by [`RetryLayer`], see the
/// [module docs](super).
///
/// It takes `http::Request<B>` for any body `B` (no `Clone` needed) and hands the inner service
/// `http::Request<ReplayBody<B>>`. Its error is a [`BoxError`]: the inner service's last error,
/// unchanged, or a per-attempt timeout.
///
/// # Clone
///
/// Clones share the layer's settings and its [`RetryBudget`](super::RetryBudget): retries of
/// all clones draw on the same budget.
#[derive(Debug)]
pub struct Retry<S, C = ContractClassifier> {
    inner: S,
    config: Arc<Config<C>>,
}

impl<S> Retry<S> {
    /// Wraps `inner` with the defaults of [`RetryLayer::new`].
    pub fn new(inner: S) -> Self {
        tower_layer::Layer::layer(&RetryLayer::new(), inner)
    }

    /// The layer with the contract's defaults.
    pub fn layer() -> RetryLayer {
        RetryLayer::new()
    }
}

impl<S, C> Retry<S, C> {
    pub(crate) fn from_config(inner: S, config: Arc<Config<C>>) -> Self {
        Retry { inner, config }
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

impl<S: Clone, C> Clone for Retry<S, C> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            config: self.config.clone(),
        }
    }
}

impl<S, C, ReqB, ResB> Service<Request<ReqB>> for Retry<S, C>
where
    S: Service<Request<ReplayBody<ReqB>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
    ReqB: Body,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let config = &self.config;
        if let Some(budget) = &config.budget {
            budget.deposit();
        }
        let attempt_timeout = config.attempt_timeout;
        if config.max_attempts <= 1 {
            let future = self.inner.call(req.map(ReplayBody::passthrough));
            return ResponseFuture::new(future, attempt_timeout, None);
        }
        let (parts, body) = req.into_parts();
        let (body, source) = ReplayBody::first(body, config.body_cap);
        let Some(source) = source else {
            let future = self.inner.call(Request::from_parts(parts, body));
            return ResponseFuture::new(future, attempt_timeout, None);
        };
        let template = Template::new(&parts);
        let idempotent = config.non_idempotent
            || is_idempotent(&parts.method)
            || parts.headers.contains_key(IDEMPOTENCY_KEY);
        // Call the instance that was made ready; keep it, to make it ready again for a retry.
        let clone = self.inner.clone();
        let mut ready = mem::replace(&mut self.inner, clone);
        let future = ready.call(Request::from_parts(parts, body));
        let ctx = Ctx::new(ready, template, source, idempotent, config.clone());
        ResponseFuture::new(future, attempt_timeout, Some(ctx))
    }
}
