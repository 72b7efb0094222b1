use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::attempt::ConfigRefs;
use super::body::ReplayBody;
use super::future::{Ctx, GateState, ResponseFuture};
use super::gate::{Admission, AdmitContext, Gate, NoGate};
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
pub struct Retry<S, C = ContractClassifier, G = NoGate> {
    inner: S,
    config: Arc<ConfigRefs<S, C>>,
    gate: G,
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

impl<S, C, G> Retry<S, C, G> {
    pub(crate) fn from_config(inner: S, config: Arc<Config<C>>, gate: G) -> Self {
        Retry {
            inner,
            config: Arc::new(ConfigRefs::new(config)),
            gate,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably. Retries go through a copy of it made at the first call that
    /// could be retried (see the [module docs](super)), which a change made here does not reach.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwraps the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: Clone, C, G: Clone> Clone for Retry<S, C, G> {
    fn clone(&self) -> Self {
        Retry {
            inner: self.inner.clone(),
            config: self.config.clone(),
            gate: self.gate.clone(),
        }
    }
}

impl<S, C, G, ReqB, ResB> Service<Request<ReqB>> for Retry<S, C, G>
where
    S: Service<Request<ReplayBody<ReqB>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
    G: Gate,
    ReqB: Body,
{
    type Response = Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S, ReqB, C, G>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (config, shard) = self.config.current();
        if let Some(budget) = &config.budget {
            budget.deposit_on(shard);
        }
        let attempt_timeout = config.attempt_timeout;
        let (mut parts, body) = req.into_parts();
        let scope = self.gate.scope(&parts);
        let deadline = super::deadline::of(&parts, config.deadline);
        let remaining =
            deadline.map(|at| at.saturating_duration_since(tokio::time::Instant::now()));
        let admission = self.gate.admit(
            &scope,
            AdmitContext {
                attempt: 1,
                remaining,
                max_wait: config.retry_after_cap,
            },
        );
        let (permit, wait) = match admission {
            Admission::Go(permit) => (Some(permit), None),
            Admission::Wait(delay) => (None, Some(delay)),
            Admission::Refuse(error) => {
                return ResponseFuture::refused(
                    error,
                    GateState::new(self.gate.clone(), scope, None),
                );
            }
        };
        let gate = GateState::new(self.gate.clone(), scope, permit);
        // The head is copied before the first attempt's stamp: a retry stamps its own, and a
        // request without headers then has an empty map to copy, which allocates nothing.
        let (body, replay) = if config.max_attempts <= 1 {
            (ReplayBody::passthrough(body), None)
        } else {
            ReplayBody::first(body, config.body_cap, &parts)
        };
        super::deadline::stamp(&mut parts.headers, 1, remaining);
        let idempotent = config.non_idempotent
            || is_idempotent(&parts.method)
            || parts.headers.contains_key(IDEMPOTENCY_KEY);
        let request = Request::from_parts(parts, body);
        if let Some(delay) = wait {
            // Sent later, through a clone of the group's copy; `self.inner` stays ready for
            // the next call.
            config.keep_service(&self.inner);
            let ctx = Ctx::new(replay, Some(request), idempotent, config.clone(), deadline);
            return ResponseFuture::waiting(delay, attempt_timeout, ctx, gate);
        }
        // Called on the instance that was made ready; a retry goes through a clone of the
        // group's copy of it, made only then.
        let future = self.inner.call(request);
        let (ctx, classifier) = match replay {
            Some(replay) => (
                Some({
                    config.keep_service(&self.inner);
                    Ctx::new(Some(replay), None, idempotent, config.clone(), deadline)
                }),
                None,
            ),
            None => (
                None,
                self.gate.observes().then(|| config.classifier.clone()),
            ),
        };
        ResponseFuture::calling(future, attempt_timeout, ctx, classifier, gate)
    }
}
