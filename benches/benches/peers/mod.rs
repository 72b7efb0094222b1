//! The shape of the minimal overhead shape and the peers fender is measured against, shared by
//! the `overhead` and `allocations` benchmarks.
//!
//! The shape: a `GET /` with no headers and a 4-byte static `Full<Bytes>` body; an inner
//! `tower::service_fn` that answers 200 at once without reading the body; one long-lived handle
//! driven with `ready().await` then `call().await` on a current-thread runtime.

#![allow(dead_code)] // each benchmark binary uses its own part of this module

use std::convert::Infallible;
use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use pin_project_lite::pin_project;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::rng::HasherRng;
use tower::{Layer, Service, service_fn};
use tower_resilience::circuitbreaker::CircuitBreakerLayer as TrCircuitBreakerLayer;
use tower_resilience::retry::{RetryBudgetBuilder, RetryLayer as TrRetryLayer};

/// The response of the inner service: 200 with an empty body.
pub(crate) type Res = Response<Full<Bytes>>;

/// The request of the shape: `GET /`, no headers, a 4-byte static body.
pub(crate) fn ping() -> Request<Full<Bytes>> {
    ping_with(Bytes::from_static(b"ping"))
}

/// `GET /` with no headers and `body`.
pub(crate) fn ping_with(body: Bytes) -> Request<Full<Bytes>> {
    let mut req = Request::new(Full::new(body));
    *req.uri_mut() = http::Uri::from_static("/");
    req
}

/// The inner service: answers 200 at once, without reading the request body.
pub(crate) fn answer<B>() -> impl Service<
    Request<B>,
    Response = Res,
    Error = Infallible,
    Future = impl Future<Output = Result<Res, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_req: Request<B>| async {
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
    })
}

/// A `tower::retry` policy close to the contract: 3 attempts on 5xx, the standard exponential
/// backoff (1 s to 30 s, full jitter), a `TpsBudget` of 20% of the last 10 s plus 10 retries a
/// second, the request cloned for a retry (`Full<Bytes>` is `Clone`).
#[derive(Clone)]
pub(crate) struct Attempts {
    left: usize,
    backoff: ExponentialBackoff,
    budget: Arc<TpsBudget>,
}

impl Attempts {
    /// The policy, with a budget of its own.
    pub(crate) fn new() -> Self {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            1.0,
            HasherRng::default(),
        )
        .expect("a valid backoff");
        Attempts {
            left: 2,
            backoff: maker.make_backoff(),
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        }
    }
}

impl<B: Clone, RB, E> tower::retry::Policy<Request<B>, Response<RB>, E> for Attempts {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _req: &mut Request<B>,
        result: &mut Result<Response<RB>, E>,
    ) -> Option<Self::Future> {
        match result {
            Ok(res) if !res.status().is_server_error() => {
                self.budget.deposit();
                None
            }
            _ if self.left > 0 && self.budget.withdraw() => {
                self.left -= 1;
                Some(self.backoff.next_backoff())
            }
            _ => None,
        }
    }

    fn clone_request(&mut self, req: &Request<B>) -> Option<Request<B>> {
        Some(req.clone())
    }
}

/// `tower::retry` with [`Attempts`].
pub(crate) fn tower_retry<S>(inner: S) -> tower::retry::Retry<Attempts, S> {
    tower::retry::RetryLayer::new(Attempts::new()).layer(inner)
}

/// `inner` behind tower-http's `SetRequestHeader` writing `x-attempt-count: 1`, and nothing
/// else: the cost of the contract's header on its own, the floor of any retry that keeps the
/// contract in this shape.
pub(crate) fn stamped<S>(
    inner: S,
) -> tower_http::set_header::SetRequestHeader<S, http::HeaderValue> {
    tower_http::set_header::SetRequestHeaderLayer::overriding(
        fender::headers::X_ATTEMPT_COUNT,
        http::HeaderValue::from_static("1"),
    )
    .layer(inner)
}

/// [`tower_retry`] doing the contract's job on the happy path: each attempt carries
/// `x-attempt-count`, set by tower-http's `SetRequestHeader` inside the retry (so every attempt
/// says `1`; the happy path only ever sends the first). It is the same work fender's retry
/// does for the header, with the parts other projects use for it.
pub(crate) fn tower_retry_stamped<S, B>(
    inner: S,
) -> tower::retry::Retry<Attempts, tower_http::set_header::SetRequestHeader<S, http::HeaderValue>>
where
    S: Service<Request<B>>,
{
    tower_retry(stamped(inner))
}

/// `inner` behind the two headers the contract puts on every request a client sends, written
/// by tower-http (`SetRequestId` with fender's UUID v7 generator, which also puts the id in the
/// extensions, and `SetRequestHeader` for `x-attempt-count: 1`), and nothing else: the floor
/// of any client stack that keeps the contract.
pub(crate) fn contract_headers<S>(
    inner: S,
) -> tower_http::request_id::SetRequestId<
    tower_http::set_header::SetRequestHeader<S, http::HeaderValue>,
    fender::request_id::MakeRequestUuidV7,
> {
    tower_http::request_id::SetRequestIdLayer::x_request_id(fender::request_id::MakeRequestUuidV7)
        .layer(stamped(inner))
}

/// tower-resilience's retry: 3 attempts, exponential backoff from 1 s, 5xx retried, a
/// token-bucket budget of 10 retries a second (100 at most).
pub(crate) fn tower_resilience_retry<Res, E>()
-> TrRetryLayer<Request<Full<Bytes>>, Response<Res>, E> {
    let budget = RetryBudgetBuilder::new()
        .token_bucket()
        .tokens_per_second(10.0)
        .max_tokens(100)
        .build()
        .expect("a valid budget");
    TrRetryLayer::builder()
        .max_attempts(3)
        .exponential_backoff(Duration::from_secs(1))
        .retry_on_response(|res: &Response<Res>| res.status().is_server_error())
        .budget(budget)
        .build()
}

/// tower-resilience's breaker: `consecutive_failures(5)`, 30 s open, 5xx are failures.
pub(crate) fn with_tower_resilience_breaker<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    Req: Send + 'static,
    B: Send + 'static,
{
    TrCircuitBreakerLayer::builder()
        .consecutive_failures(5)
        .wait_duration_in_open(Duration::from_secs(30))
        .classify_response(|res: &Response<B>| res.status().is_server_error())
        .build()
        .expect("a valid breaker")
        .layer(inner)
}

pin_project! {
    /// Turns a 5xx response into `Err`, for breakers that only count errors.
    pub(crate) struct StatusAsError<F> {
        #[pin]
        inner: F,
    }
}

/// A failed outcome as failsafe and recloser see it: a 5xx response or an error.
#[derive(Debug)]
#[allow(dead_code)] // read through `Debug` only
pub(crate) enum Failed<B, E> {
    Status(Response<B>),
    Error(E),
}

impl<F, B, E> Future for StatusAsError<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<B>, Failed<B, E>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Poll::Ready(match ready!(self.project().inner.poll(cx)) {
            Ok(res) if res.status().is_server_error() => Err(Failed::Status(res)),
            Ok(res) => Ok(res),
            Err(e) => Err(Failed::Error(e)),
        })
    }
}

/// A tower service behind failsafe's breaker.
pub(crate) struct Failsafe<S, P> {
    inner: S,
    breaker: failsafe::StateMachine<P, ()>,
}

impl<S: Clone, P> Clone for Failsafe<S, P> {
    fn clone(&self) -> Self {
        Failsafe {
            inner: self.inner.clone(),
            breaker: self.breaker.clone(),
        }
    }
}

impl<S, P, Req, B> Service<Req> for Failsafe<S, P>
where
    S: Service<Req, Response = Response<B>>,
    P: failsafe::FailurePolicy + Send + Sync,
{
    type Response = Response<B>;
    type Error = failsafe::Error<Failed<B, S::Error>>;
    type Future = failsafe::futures::ResponseFuture<StatusAsError<S::Future>, P, (), failsafe::Any>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| failsafe::Error::Inner(Failed::Error(e)))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        use failsafe::futures::CircuitBreaker;
        self.breaker.call(StatusAsError {
            inner: self.inner.call(req),
        })
    }
}

/// failsafe's breaker: `consecutive_failures(5, constant(30 s))`.
pub(crate) fn with_failsafe<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send,
    B: Debug,
{
    let policy = failsafe::failure_policy::consecutive_failures(
        5,
        failsafe::backoff::constant(Duration::from_secs(30)),
    );
    Failsafe {
        inner,
        breaker: failsafe::Config::new().failure_policy(policy).build(),
    }
}

/// A tower service behind recloser's breaker.
#[derive(Clone)]
pub(crate) struct Recloser<S> {
    inner: S,
    breaker: recloser::AsyncRecloser,
}

impl<S, Req, B> Service<Req> for Recloser<S>
where
    S: Service<Req, Response = Response<B>>,
{
    type Response = Response<B>;
    type Error = recloser::Error<Failed<B, S::Error>>;
    type Future = recloser::RecloserFuture<StatusAsError<S::Future>, recloser::AnyError>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(|e| recloser::Error::Inner(Failed::Error(e)))
    }

    fn call(&mut self, req: Req) -> Self::Future {
        self.breaker.call(StatusAsError {
            inner: self.inner.call(req),
        })
    }
}

/// recloser's breaker with its defaults (error rate 50% over 100 calls, 30 s open).
pub(crate) fn with_recloser<S, Req, B>(
    inner: S,
) -> impl Service<Req, Response = Response<B>, Error: Debug> + Clone + Send
where
    S: Service<Req, Response = Response<B>, Error = Infallible> + Clone + Send,
    B: Debug,
{
    Recloser {
        inner,
        breaker: recloser::AsyncRecloser::from(recloser::Recloser::default()),
    }
}

/// `iters` calls through one long-lived handle, driven with `ready().await` then
/// `call().await`, timed.
pub(crate) async fn calls<S, Req, B, F>(mut svc: S, iters: u64, make: F) -> std::time::Duration
where
    S: Service<Req, Response = Response<B>>,
    S::Error: Debug,
    F: Fn() -> Req,
{
    use tower::ServiceExt;
    let start = std::time::Instant::now();
    for _ in 0..iters {
        let res = svc.ready().await.unwrap().call(make()).await;
        std::hint::black_box(res.unwrap());
    }
    start.elapsed()
}

/// `iters` calls on each of two threads at once, each on a current-thread runtime of its own,
/// through clones of `svc`; the slower thread's time.
pub(crate) fn run_two<S, Req, B>(svc: S, iters: u64, make: fn() -> Req) -> std::time::Duration
where
    S: Service<Req, Response = Response<B>> + Clone + Send,
    S::Error: Debug,
{
    let barrier = std::sync::Barrier::new(2);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (svc, barrier) = (svc.clone(), &barrier);
                scope.spawn(move || {
                    let rt = fender_benches::runtime();
                    barrier.wait();
                    rt.block_on(calls(svc, iters, make))
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .max()
            .unwrap()
    })
}
