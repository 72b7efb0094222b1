//! The response future of [`Retry`](super::Retry).

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Extensions, HeaderMap, Method, Request, Response, StatusCode, Uri, Version};
use pin_project_lite::pin_project;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

use super::body::{ReplayBody, Source};
use super::policy::{Config, RetryInfo};
use crate::BoxError;
use crate::classify::{Classify, Outcome};
use crate::error::ApiError;

pin_project! {
    /// The response future of [`Retry`](super::Retry): calls, waits, calls again.
    ///
    /// Dropping it cancels the attempt in flight or the delay; nothing more is sent.
    pub struct ResponseFuture<S, B, C>
    where
        S: Service<Request<ReplayBody<B>>>,
    {
        #[pin]
        state: State<S::Future>,
        // The per-attempt timeout while an attempt runs, the backoff delay while waiting.
        // Boxed and made on first use, so the common future stays small and allocation-free.
        timer: Option<Pin<Box<Sleep>>>,
        timing_attempt: bool,
        attempt: u32,
        attempt_timeout: Option<Duration>,
        retry: Option<Ctx<S, B, C>>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting,
        Readying,
        Done,
    }
}

/// What a retry needs: the service, the request to send again, the settings.
pub(crate) struct Ctx<S, B, C> {
    service: S,
    template: Template,
    source: Source<B>,
    idempotent: bool,
    config: Arc<Config<C>>,
    started: Option<Instant>,
    history: Option<Box<History>>,
}

/// What only a request that is being retried needs.
struct History {
    delays: Vec<Duration>,
    previous: Duration,
    rng: SmallRng,
}

/// The head of the request, kept to build each retry.
pub(crate) struct Template {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    extensions: Extensions,
}

impl Template {
    pub(crate) fn new(parts: &http::request::Parts) -> Self {
        Template {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            version: parts.version,
            headers: parts.headers.clone(),
            extensions: parts.extensions.clone(),
        }
    }

    fn request<B>(&self, body: B) -> Request<B> {
        let mut req = Request::new(body);
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.version_mut() = self.version;
        *req.headers_mut() = self.headers.clone();
        *req.extensions_mut() = self.extensions.clone();
        req
    }
}

impl<S, B, C> Ctx<S, B, C> {
    pub(crate) fn new(
        service: S,
        template: Template,
        source: Source<B>,
        idempotent: bool,
        config: Arc<Config<C>>,
    ) -> Self {
        let started = config.deadline.map(|_| Instant::now());
        Ctx {
            service,
            template,
            source,
            idempotent,
            config,
            started,
            history: None,
        }
    }
}

impl<S, B, C: Classify> Ctx<S, B, C> {
    /// After attempt number `attempt` ended with `result`: the delay before the next attempt,
    /// or `None` to return `result`.
    fn decide<T>(
        &mut self,
        result: &Result<Response<T>, BoxError>,
        attempt: u32,
    ) -> Option<Duration> {
        let config = &*self.config;
        let class = match result {
            Ok(res) => config.classifier.classify(Outcome::Response {
                status: res.status(),
                headers: res.headers(),
            }),
            Err(err) => config.classifier.classify(Outcome::Error(&**err)),
        };
        if !class.is_retryable() {
            return None;
        }
        let method = &self.template.method;
        let uri = &self.template.uri;
        if attempt >= config.max_attempts {
            tracing::debug!(%method, %uri, attempts = attempt, reason = %class, "not retrying: attempts exhausted");
            return None;
        }
        if !self.idempotent && !class.never_reached_upstream() {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the request is not idempotent");
            return None;
        }
        if !self.source.is_replayable() {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the request body exceeded the replay cap");
            return None;
        }
        let delay = match server_delay(result, config.wall_clock) {
            Some(asked) if asked > config.retry_after_cap => {
                tracing::debug!(%method, %uri, retry_after = ?asked, cap = ?config.retry_after_cap, "not retrying: Retry-After exceeds the cap");
                return None;
            }
            Some(asked) => asked,
            None => {
                let history = self.history.get_or_insert_with(|| History::new(config));
                config
                    .backoff
                    .delay(attempt, history.previous, &mut history.rng)
            }
        };
        if let (Some(deadline), Some(started)) = (config.deadline, self.started) {
            let remaining = deadline.saturating_sub(started.elapsed());
            let fits = match config.attempt_timeout {
                Some(timeout) => delay.saturating_add(timeout) <= remaining,
                None => delay < remaining,
            };
            if !fits {
                tracing::debug!(%method, %uri, ?delay, ?remaining, "not retrying: the next attempt would not finish before the deadline");
                return None;
            }
        }
        if let Some(budget) = &config.budget
            && !budget.withdraw()
        {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the retry budget is exhausted");
            return None;
        }
        let next = attempt + 1;
        tracing::info!(
            attempt = next,
            delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            reason = %class,
            %method,
            %uri,
            "retrying request"
        );
        if let Some(callback) = &config.on_retry {
            callback.on_retry(next, delay, class);
        }
        let history = self.history.get_or_insert_with(|| History::new(config));
        history.previous = delay;
        history.delays.push(delay);
        Some(delay)
    }
}

impl History {
    fn new<C>(config: &Config<C>) -> Box<Self> {
        let rng = match config.seed {
            Some(seed) => SmallRng::seed_from_u64(
                seed.wrapping_add(config.sequence.fetch_add(1, Ordering::Relaxed)),
            ),
            None => SmallRng::from_rng(&mut rand::rng()),
        };
        Box::new(History {
            delays: Vec::new(),
            previous: Duration::ZERO,
            rng,
        })
    }
}

/// The delay a 429 or 503 asks for with `Retry-After`, from the response or a decoded
/// [`ApiError`].
fn server_delay<T>(
    result: &Result<Response<T>, BoxError>,
    now: fn() -> std::time::SystemTime,
) -> Option<Duration> {
    let asks = |status: StatusCode| {
        status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
    };
    match result {
        Ok(res) if asks(res.status()) => crate::retry_after::from_headers(res.headers(), now()),
        Ok(_) => None,
        Err(err) => {
            let mut current: Option<&(dyn std::error::Error + 'static)> = Some(&**err);
            while let Some(e) = current {
                if let Some(api) = e.downcast_ref::<ApiError>() {
                    return api.retry_after().filter(|_| asks(api.status()));
                }
                current = e.source();
            }
            None
        }
    }
}

impl<S, B, C> ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
{
    pub(crate) fn new(
        future: S::Future,
        attempt_timeout: Option<Duration>,
        retry: Option<Ctx<S, B, C>>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            timer: attempt_timeout.map(|t| Box::pin(tokio::time::sleep(t))),
            timing_attempt: attempt_timeout.is_some(),
            attempt: 1,
            attempt_timeout,
            retry,
        }
    }
}

fn arm(timer: &mut Option<Pin<Box<Sleep>>>, at: Instant) {
    match timer {
        Some(sleep) => sleep.as_mut().reset(at),
        None => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
    }
}

impl<S, B, C, ResB> Future for ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
{
    type Output = Result<Response<ResB>, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Calling { future } => {
                    let result = match future.poll(cx) {
                        Poll::Ready(result) => result.map_err(Into::into),
                        Poll::Pending => {
                            let timed_out = *this.timing_attempt
                                && this
                                    .timer
                                    .as_mut()
                                    .is_some_and(|t| t.as_mut().poll(cx).is_ready());
                            if !timed_out {
                                return Poll::Pending;
                            }
                            Err(BoxError::from(tower::timeout::error::Elapsed::new()))
                        }
                    };
                    *this.timing_attempt = false;
                    let Some(ctx) = this.retry.as_mut() else {
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    let Some(delay) = ctx.decide(&result, *this.attempt) else {
                        this.state.set(State::Done);
                        return Poll::Ready(finish(result, *this.attempt, ctx));
                    };
                    // The failed attempt, its response and its body are dropped here, before
                    // the next attempt starts.
                    drop(result);
                    if delay.is_zero() {
                        this.state.set(State::Readying);
                    } else {
                        this.state.set(State::Waiting);
                        arm(this.timer, Instant::now() + delay);
                    }
                }
                StateProj::Waiting => {
                    if let Some(timer) = this.timer.as_mut() {
                        ready!(timer.as_mut().poll(cx));
                    }
                    this.state.set(State::Readying);
                }
                StateProj::Readying => {
                    let ctx = this
                        .retry
                        .as_mut()
                        .expect("only a retryable request waits for a retry");
                    if let Err(err) = ready!(ctx.service.poll_ready(cx)) {
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err.into()));
                    }
                    let clone = ctx.service.clone();
                    let mut ready = mem::replace(&mut ctx.service, clone);
                    let future = ready.call(ctx.template.request(ctx.source.body()));
                    *this.attempt += 1;
                    this.state.set(State::Calling { future });
                    if let Some(timeout) = *this.attempt_timeout {
                        arm(this.timer, Instant::now() + timeout);
                        *this.timing_attempt = true;
                    }
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

fn finish<S, B, C, T>(
    result: Result<Response<T>, BoxError>,
    attempts: u32,
    ctx: &mut Ctx<S, B, C>,
) -> Result<Response<T>, BoxError> {
    result.map(|mut res| {
        if attempts > 1 {
            res.extensions_mut().insert(RetryInfo {
                attempts,
                delays: ctx
                    .history
                    .as_mut()
                    .map(|h| mem::take(&mut h.delays))
                    .unwrap_or_default(),
            });
        }
        res
    })
}

impl<S, B, C> fmt::Debug for ResponseFuture<S, B, C>
where
    S: Service<Request<ReplayBody<B>>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .field("retryable", &self.retry.is_some())
            .finish_non_exhaustive()
    }
}
