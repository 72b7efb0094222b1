//! The client strategies compared by the simulation: how a caller's request reaches the upstream.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fender::BoxError;
use fender::circuit_breaker::{CircuitBreakerLayer, FailureRate};
use fender::client::ClientStack;
use fender::hedge::HedgeLayer;
use fender::retry::RetryLayer;
use fender_testkit::TestBody;
use http::{Request, Response, StatusCode};
use http_body_util::Empty;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use tower::retry::Policy;
use tower::retry::backoff::{Backoff, ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use tower::retry::budget::{Budget, TpsBudget};
use tower::util::BoxCloneService;
use tower::{Layer, Service, ServiceExt};

use super::probe::Probe;

/// The body of every simulated request (the simulation sends `GET`s).
pub type RequestBody = Empty<Bytes>;

/// A client stack as the simulation drives it: any strategy, boxed, answering with the status
/// its caller finally gets (the body is not needed by any measure).
pub type Client = BoxCloneService<Request<RequestBody>, StatusCode, BoxError>;

/// Boxes a client stack of any response body and any error that converts into [`BoxError`]
/// (a middleware's `BoxError`, or a decoded `fender::ApiError`) into a [`Client`].
pub fn boxed<S, B, E>(stack: S) -> Client
where
    S: Service<Request<RequestBody>, Response = Response<B>, Error = E> + Clone + Send + 'static,
    S::Future: Send + 'static,
    E: Into<BoxError> + 'static,
    B: 'static,
{
    BoxCloneService::new(stack.map_response(|r| r.status()).map_err(Into::into))
}

/// The "fender default stack" row: what fender offers a client by default, `ClientLayer::new()`
/// as the README builds it; this is the one place to change when the default changes. `seed`
/// seeds the layers' random sources.
pub fn fender_default(inner: Probe, seed: u64) -> Client {
    boxed(default_stack(inner, seed))
}

/// The stack of [`fender_default`], unboxed, for the rows that wrap it.
fn default_stack(inner: Probe, seed: u64) -> ClientStack<Probe> {
    fender::ClientLayer::new()
        .retry(RetryLayer::new().rng_seed(seed))
        .breaker(CircuitBreakerLayer::new().seed(seed))
        .layer(inner)
}

/// The fixed delay of the [`Strategy::FenderHedgeFixed`] row: a little over the upstream's
/// usual latency ([`LATENCY`](super::scenario::LATENCY), 20 ms).
pub const HEDGE_AFTER: Duration = Duration::from_millis(30);

/// The default stack with `hedge` outside it: [`fender_default`] plus hedging, with the hedge
/// layer's own budget (5% of requests plus one per second).
pub fn fender_hedged(inner: Probe, seed: u64, hedge: HedgeLayer) -> Client {
    boxed(hedge.layer(default_stack(inner, seed)))
}

/// One way of calling the upstream: a row of every table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// One attempt, no retry.
    NoRetry,
    /// The contract's original pseudo-code, as written: 3 attempts, a delay of 1 s · 2^(n-1)
    /// after attempt n, no jitter, no budget, no breaker; retries 429, 500, 502, 503 and 504.
    Naive,
    /// `tower::retry` with its `ExponentialBackoff` (1 s base, 30 s max, jitter 1.0) and a
    /// `TpsBudget` of 20% over 10 s plus 10 retries per second, 3 attempts.
    Tower,
    /// `fender::retry::RetryLayer::new()` alone: 3 attempts, 1 s base, full jitter, the
    /// default budget.
    FenderRetry,
    /// [`fender_default`]: the stack fender offers by default.
    FenderDefault,
    /// Like [`Strategy::FenderRetry`] with `max_attempts(4)`: what one more attempt buys.
    FenderRetry4,
    /// `RetryLayer::new()` outside a breaker that trips on a failure rate of 50% over the last
    /// 100 calls (once 20 are in) instead of 5 consecutive failures.
    FenderRetryRateBreaker,
    /// [`fender_hedged`] with `HedgeLayer::percentile(0.95)`: the default stack, and a hedge
    /// for a request still unanswered at the 95th percentile of recent latencies.
    FenderHedge,
    /// [`fender_hedged`] with `HedgeLayer::after(HEDGE_AFTER)`: a hedge after a fixed 30 ms.
    FenderHedgeFixed,
}

impl Strategy {
    /// The five rows the tables of S1 to S5 show unless told otherwise.
    pub const MAIN: [Strategy; 5] = [
        Strategy::NoRetry,
        Strategy::Naive,
        Strategy::Tower,
        Strategy::FenderRetry,
        Strategy::FenderDefault,
    ];

    /// Every strategy, the extra rows last.
    pub const ALL: [Strategy; 9] = [
        Strategy::NoRetry,
        Strategy::Naive,
        Strategy::Tower,
        Strategy::FenderRetry,
        Strategy::FenderDefault,
        Strategy::FenderRetry4,
        Strategy::FenderRetryRateBreaker,
        Strategy::FenderHedge,
        Strategy::FenderHedgeFixed,
    ];

    /// The row label.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::NoRetry => "none (one attempt)",
            Strategy::Naive => "naive loop (seed)",
            Strategy::Tower => "tower::retry + TpsBudget",
            Strategy::FenderRetry => "fender retry alone",
            Strategy::FenderDefault => "fender default stack",
            Strategy::FenderRetry4 => "fender retry, 4 attempts",
            Strategy::FenderRetryRateBreaker => "fender retry + breaker on 50% of 100 calls",
            Strategy::FenderHedge => "fender default stack + hedge at p95",
            Strategy::FenderHedgeFixed => "fender default stack + hedge after 30 ms",
        }
    }

    /// The short name that selects the row on the command line.
    pub fn key(self) -> &'static str {
        match self {
            Strategy::NoRetry => "none",
            Strategy::Naive => "naive",
            Strategy::Tower => "tower",
            Strategy::FenderRetry => "retry",
            Strategy::FenderDefault => "default",
            Strategy::FenderRetry4 => "retry4",
            Strategy::FenderRetryRateBreaker => "rate-breaker",
            Strategy::FenderHedge => "hedge",
            Strategy::FenderHedgeFixed => "hedge-fixed",
        }
    }

    /// The strategy whose [`key`](Strategy::key) is `key`.
    pub fn from_key(key: &str) -> Option<Strategy> {
        Strategy::ALL.into_iter().find(|s| s.key() == key)
    }

    /// A client stack of this strategy over `inner`. Each call builds a new stack with state
    /// of its own (budget, breaker, random source seeded with `seed`); clones of the returned
    /// client share that state.
    pub fn client(self, inner: Probe, seed: u64) -> Client {
        match self {
            Strategy::NoRetry => boxed(inner),
            Strategy::Naive => boxed(NaiveRetry { inner }),
            Strategy::Tower => {
                let policy = TowerPolicy::new(seed);
                boxed(tower::retry::RetryLayer::new(policy).layer(inner))
            }
            Strategy::FenderRetry => boxed(RetryLayer::new().rng_seed(seed).layer(inner)),
            Strategy::FenderDefault => fender_default(inner, seed),
            Strategy::FenderRetry4 => boxed(
                RetryLayer::new()
                    .max_attempts(4)
                    .rng_seed(seed)
                    .layer(inner),
            ),
            Strategy::FenderRetryRateBreaker => {
                let rate = FailureRate::count(100).threshold(0.5).min_calls(20);
                let breaker = CircuitBreakerLayer::new()
                    .failure_rate(rate)
                    .seed(seed)
                    .layer(inner);
                boxed(RetryLayer::new().rng_seed(seed).layer(breaker))
            }
            Strategy::FenderHedge => fender_hedged(inner, seed, HedgeLayer::percentile(0.95)),
            Strategy::FenderHedgeFixed => {
                fender_hedged(inner, seed, HedgeLayer::after(HEDGE_AFTER))
            }
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A copy of a bodiless request: method, URI, version and headers.
fn copy(request: &Request<RequestBody>) -> Request<RequestBody> {
    let mut copy = Request::new(Empty::new());
    *copy.method_mut() = request.method().clone();
    *copy.uri_mut() = request.uri().clone();
    *copy.version_mut() = request.version();
    *copy.headers_mut() = request.headers().clone();
    copy
}

/// What the contract's table marks retryable: 429, 500, 502, 503, 504.
fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 500 | 502 | 503 | 504)
}

/// The original pseudo-code of the contract, line for line:
///
/// ```text
/// const MAX_RETRIES = 3;
/// const BASE_DELAY = 1000; // 1 second
/// async function apiRequestWithRetry(request, attempt = 1) {
///   try { return await makeRequest(request); }
///   catch (error) {
///     if (attempt >= MAX_RETRIES || !isRetryable(error)) { throw error; }
///     const delay = BASE_DELAY * Math.pow(2, attempt - 1);
///     await sleep(delay);
///     return apiRequestWithRetry(request, attempt + 1);
///   }
/// }
/// ```
///
/// `makeRequest` "throws" on a non-2xx response or a transport error; `isRetryable` is the
/// contract's table (429, 500, 502, 503, 504). A transport error has no row in that table, so
/// it is not retried (no scenario produces one).
#[derive(Clone, Debug)]
pub struct NaiveRetry<S> {
    inner: S,
}

const MAX_RETRIES: u32 = 3;
const BASE_DELAY: Duration = Duration::from_millis(1000);

impl<S> Service<Request<RequestBody>> for NaiveRetry<S>
where
    S: Service<Request<RequestBody>, Response = Response<TestBody>, Error = BoxError>
        + Clone
        + Send
        + 'static,
    S::Future: Send,
{
    type Response = Response<TestBody>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<TestBody>, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // Readiness is awaited before each attempt, inside the loop.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<RequestBody>) -> Self::Future {
        let inner = self.inner.clone();
        Box::pin(api_request_with_retry(inner, request))
    }
}

async fn api_request_with_retry<S>(
    mut inner: S,
    request: Request<RequestBody>,
) -> Result<Response<TestBody>, BoxError>
where
    S: Service<Request<RequestBody>, Response = Response<TestBody>, Error = BoxError>,
{
    let mut attempt = 1;
    loop {
        let result = inner.ready().await?.call(copy(&request)).await;
        let retryable = match &result {
            Ok(response) if response.status().is_success() => return result,
            Ok(response) => retryable_status(response.status()),
            Err(_) => false,
        };
        if attempt >= MAX_RETRIES || !retryable {
            return result;
        }
        let delay = BASE_DELAY * 2u32.pow(attempt - 1);
        tokio::time::sleep(delay).await;
        attempt += 1;
    }
}

/// A seeded random source for tower's backoff (`tower::util::rng::Rng`).
#[derive(Clone, Debug)]
pub struct TowerRng(SmallRng);

impl TowerRng {
    /// A source seeded with `seed`.
    pub fn seeded(seed: u64) -> Self {
        TowerRng(SmallRng::seed_from_u64(seed))
    }
}

impl tower::util::rng::Rng for TowerRng {
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
}

/// A `tower::retry::Policy` as close to the contract as tower allows: 3 attempts; retries 429,
/// 500, 502, 503, 504 and transport errors; `ExponentialBackoff` from 1 s (max 30 s) with
/// jitter 1.0, tower's jitter being *added* to the nominal delay (uniform in
/// `[nominal, 2·nominal]`, since tower cannot wait less than its base); a `TpsBudget` with
/// the same parameters as fender's default (10 s, 10 retries/s, 20%), deposited once per
/// request as fender does.
///
/// Tower clones the policy for every request, so each request's backoff starts from a copy of
/// the same random state: requests from one policy draw the same jitter sequence. A client
/// stack with its own seed draws its own.
#[derive(Clone, Debug)]
pub struct TowerPolicy {
    retries_left: u32,
    deposited: bool,
    backoff: ExponentialBackoff<TowerRng>,
    budget: Arc<TpsBudget>,
}

impl TowerPolicy {
    /// The policy described above, its jitter seeded with `seed`.
    pub fn new(seed: u64) -> Self {
        let mut maker = ExponentialBackoffMaker::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            1.0,
            TowerRng::seeded(seed),
        )
        .expect("valid backoff");
        TowerPolicy {
            retries_left: MAX_RETRIES - 1,
            deposited: false,
            backoff: maker.make_backoff(),
            budget: Arc::new(TpsBudget::new(Duration::from_secs(10), 10, 0.2)),
        }
    }
}

impl Policy<Request<RequestBody>, Response<TestBody>, BoxError> for TowerPolicy {
    type Future = tokio::time::Sleep;

    fn retry(
        &mut self,
        _request: &mut Request<RequestBody>,
        result: &mut Result<Response<TestBody>, BoxError>,
    ) -> Option<Self::Future> {
        if !self.deposited {
            self.deposited = true;
            self.budget.deposit();
        }
        let retryable = match result {
            Ok(response) => retryable_status(response.status()),
            Err(_) => true,
        };
        if !retryable || self.retries_left == 0 || !self.budget.withdraw() {
            return None;
        }
        self.retries_left -= 1;
        Some(self.backoff.next_backoff())
    }

    fn clone_request(&mut self, request: &Request<RequestBody>) -> Option<Request<RequestBody>> {
        Some(copy(request))
    }
}
