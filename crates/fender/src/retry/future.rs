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
use super::gate::{Admission, AdmitContext, Gate, NoGate};
use super::policy::{Config, RetryInfo};
use crate::BoxError;
use crate::classify::{Class, Classify, Outcome};

pin_project! {
    /// The response future of [`Retry`](super::Retry): calls, waits, calls again.
    ///
    /// Dropping it cancels the attempt in flight or the delay; nothing more is sent.
    pub struct ResponseFuture<S, B, C, G = NoGate>
    where
        S: Service<Request<ReplayBody<B>>>,
        G: Gate,
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
        // The classifier of a single attempt sent without a retry context, when the gate
        // wants its verdict.
        classifier: Option<C>,
        // The last result and its class, while a deferred retry waits for the budget.
        held: Option<(Result<S::Response, BoxError>, Class)>,
        gate: GateState<G>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F> {
        Calling { #[pin] future: F },
        Waiting,
        Admitting,
        Readying,
        Refused { error: Option<BoxError> },
        Done,
    }
}

/// The gate of a request: the gate itself, the request's scope and the permit of the attempt in
/// flight.
pub(crate) struct GateState<G: Gate> {
    gate: G,
    scope: G::Scope,
    permit: Option<G::Permit>,
}

impl<G: Gate> GateState<G> {
    pub(crate) fn new(gate: G, scope: G::Scope, permit: Option<G::Permit>) -> Self {
        GateState {
            gate,
            scope,
            permit,
        }
    }
}

/// What a later attempt needs: the service, the request to send again, the settings.
pub(crate) struct Ctx<S, B, C> {
    service: S,
    /// The head and body source to build each retry from; `None` when the request cannot be
    /// retried (it is only waiting for its first admission).
    replay: Option<(Template, Source<B>)>,
    /// The first request, while it waits to be admitted.
    first: Option<Request<ReplayBody<B>>>,
    idempotent: bool,
    config: Arc<Config<C>>,
    /// When the request's deadline passes, if it has one.
    deadline: Option<Instant>,
    history: Option<Box<History>>,
    /// The budget refused a retry once and the request waits to ask again.
    deferred: bool,
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
        replay: Option<(Template, Source<B>)>,
        first: Option<Request<ReplayBody<B>>>,
        idempotent: bool,
        config: Arc<Config<C>>,
        deadline: Option<Instant>,
    ) -> Self {
        Ctx {
            service,
            replay,
            first,
            idempotent,
            config,
            deadline,
            history: None,
            deferred: false,
        }
    }

    /// The time left before the deadline, when there is one.
    fn remaining(&self) -> Option<Duration> {
        Some(self.deadline?.saturating_duration_since(Instant::now()))
    }

    /// The next request to send, attempt number `attempt`: the waiting first one, or a replay,
    /// with its attempt number and the time left before its deadline in its headers.
    fn next_request(&mut self, attempt: u32) -> Request<ReplayBody<B>> {
        let mut req = match self.first.take() {
            Some(first) => first,
            None => {
                let (template, source) = self
                    .replay
                    .as_ref()
                    .expect("only a replayable request is sent again");
                template.request(source.body())
            }
        };
        super::deadline::stamp(req.headers_mut(), attempt, self.remaining());
        req
    }
}

impl<S, B, C: Classify> Ctx<S, B, C> {
    /// After attempt number `attempt` ended as `class` (with the server asking for `asked`):
    /// the delay before the next attempt, or `None` to return the attempt's result.
    fn decide(
        &mut self,
        class: Class,
        asked: Option<Duration>,
        attempt: u32,
        gate: GateView,
    ) -> Option<Next> {
        let config = &*self.config;
        if !class.is_retryable() {
            return None;
        }
        let (template, source) = self.replay.as_ref()?;
        let method = &template.method;
        let uri = Redacted(&template.uri);
        if attempt >= config.max_attempts {
            tracing::debug!(%method, %uri, attempts = attempt, reason = %class, "not retrying: attempts exhausted");
            return None;
        }
        if !self.idempotent && !class.never_reached_upstream() {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the request is not idempotent");
            return None;
        }
        if !source.is_replayable() {
            tracing::debug!(%method, %uri, reason = %class, "not retrying: the request body exceeded the replay cap");
            return None;
        }
        if let Some(asked) = asked
            && asked > config.retry_after_cap
        {
            tracing::debug!(%method, %uri, retry_after = ?asked, cap = ?config.retry_after_cap, "not retrying: Retry-After exceeds the cap");
            return None;
        }
        // A server's Retry-After lengthens the contract's backoff, never shortens it.
        let history = self.history.get_or_insert_with(|| History::new(config));
        let backoff = config
            .backoff
            .delay(attempt, history.previous, &mut history.rng);
        let delay = asked.map_or(backoff, |asked| asked.max(backoff));
        if let Some(remaining) = self.remaining() {
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
            && !gate.healthy
            && !budget.withdraw()
        {
            if !gate.defers || self.deferred {
                tracing::debug!(%method, %uri, reason = %class, "not retrying: the retry budget is exhausted");
                return None;
            }
            // A herd's retries must spread before the budget can allow them: wait one more
            // backoff period, then ask again (the host may look healthy by then).
            let history = self.history.get_or_insert_with(|| History::new(config));
            let extra = config.backoff.delay(attempt + 1, delay, &mut history.rng);
            let wait = delay.saturating_add(extra);
            if let Some(remaining) = self.remaining()
                && wait.saturating_add(config.attempt_timeout.unwrap_or_default()) >= remaining
            {
                tracing::debug!(%method, %uri, reason = %class, "not retrying: the retry budget is exhausted");
                return None;
            }
            tracing::debug!(%method, %uri, reason = %class, ?wait, "the retry budget is exhausted: asking again later");
            self.deferred = true;
            return Some(Next::Defer(wait));
        }
        self.announce(class, delay, attempt);
        Some(Next::Retry(delay))
    }

    /// Logs a retry about to happen, runs the callback and keeps its delay.
    fn announce(&mut self, class: Class, delay: Duration, attempt: u32) {
        let config = &*self.config;
        let Some((template, _)) = self.replay.as_ref() else {
            return;
        };
        let method = &template.method;
        let uri = Redacted(&template.uri);
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
    }

    /// After a deferral: whether the budget (or the host's health) now allows the retry.
    fn budget_allows(&self, healthy: bool) -> bool {
        healthy || self.config.budget.as_ref().is_none_or(|b| b.withdraw())
    }
}

/// What the retry loop does next.
enum Next {
    /// Retry after this delay.
    Retry(Duration),
    /// The budget said no: wait this long, then ask it again.
    Defer(Duration),
}

/// What the gate tells a retry decision.
#[derive(Clone, Copy)]
struct GateView {
    /// The host looks healthy now: a retry needs no budget.
    healthy: bool,
    /// A retry the budget refuses may wait and ask again.
    defers: bool,
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
/// [`ApiError`](crate::ApiError) in the error's source chain.
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
            let api = crate::classify::find_api_error(&**err)?;
            api.retry_after().filter(|_| asks(api.status()))
        }
    }
}

/// The class of an attempt's result, by the layer's classifier.
fn classify<C: Classify, T>(classifier: &C, result: &Result<Response<T>, BoxError>) -> Class {
    match result {
        Ok(res) => classifier.classify(Outcome::Response {
            status: res.status(),
            headers: res.headers(),
        }),
        Err(err) => classifier.classify(Outcome::Error(&**err)),
    }
}

/// A URI as logs show it: scheme, host, port and path; never userinfo or the query.
pub(crate) struct Redacted<'a>(pub(crate) &'a Uri);

impl fmt::Display for Redacted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(authority) = uri.authority() {
            f.write_str(authority.host())?;
            if let Some(port) = authority.port_u16() {
                write!(f, ":{port}")?;
            }
        }
        f.write_str(uri.path())
    }
}

/// `now + d`, saturating at a far future instead of overflowing.
pub(crate) fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d)
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30))
}

impl<S, B, C, G> ResponseFuture<S, B, C, G>
where
    S: Service<Request<ReplayBody<B>>>,
    G: Gate,
{
    /// An attempt already sent.
    pub(crate) fn calling(
        future: S::Future,
        attempt_timeout: Option<Duration>,
        retry: Option<Ctx<S, B, C>>,
        classifier: Option<C>,
        gate: GateState<G>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            timer: attempt_timeout.map(|t| Box::pin(tokio::time::sleep_until(after(t)))),
            timing_attempt: attempt_timeout.is_some(),
            attempt: 1,
            attempt_timeout,
            retry,
            classifier,
            held: None,
            gate,
        }
    }

    /// A first attempt the gate asked to wait `delay` before it is admitted.
    pub(crate) fn waiting(
        delay: Duration,
        attempt_timeout: Option<Duration>,
        retry: Ctx<S, B, C>,
        gate: GateState<G>,
    ) -> Self {
        ResponseFuture {
            state: State::Waiting,
            timer: Some(Box::pin(tokio::time::sleep_until(after(delay)))),
            timing_attempt: false,
            attempt: 0,
            attempt_timeout,
            retry: Some(retry),
            classifier: None,
            held: None,
            gate,
        }
    }

    /// A request the gate refused before its first attempt.
    pub(crate) fn refused(error: BoxError, gate: GateState<G>) -> Self {
        ResponseFuture {
            state: State::Refused { error: Some(error) },
            timer: None,
            timing_attempt: false,
            attempt: 0,
            attempt_timeout: None,
            retry: None,
            classifier: None,
            held: None,
            gate,
        }
    }
}

fn arm(timer: &mut Option<Pin<Box<Sleep>>>, at: Instant) {
    match timer {
        Some(sleep) => sleep.as_mut().reset(at),
        None => *timer = Some(Box::pin(tokio::time::sleep_until(at))),
    }
}

/// The shortest wait a gate may ask for, so that a gate saying "wait 0" cannot spin.
const MIN_GATE_WAIT: Duration = Duration::from_millis(1);

impl<S, B, C, G, ResB> Future for ResponseFuture<S, B, C, G>
where
    S: Service<Request<ReplayBody<B>>, Response = Response<ResB>> + Clone,
    S::Error: Into<BoxError>,
    C: Classify,
    G: Gate,
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
                    let gate = &mut *this.gate;
                    let observes = gate.gate.observes();
                    let Some(ctx) = this.retry.as_mut().filter(|c| c.replay.is_some()) else {
                        if observes {
                            // Classified once, with the same rules a retry would use.
                            let class = match (this.retry.as_ref(), this.classifier.as_ref()) {
                                (Some(ctx), _) => classify(&ctx.config.classifier, &result),
                                (None, Some(classifier)) => classify(classifier, &result),
                                (None, None) => classify_plain(&result),
                            };
                            record(gate, class, &result, this.retry.as_ref());
                        }
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    let class = classify(&ctx.config.classifier, &result);
                    let asked = if matches!(class, Class::RateLimited | Class::ServerError) {
                        server_delay(&result, ctx.config.wall_clock)
                    } else {
                        None
                    };
                    if observes && let Some(permit) = gate.permit.take() {
                        gate.gate.record(&gate.scope, permit, class, asked);
                    }
                    let view = GateView {
                        healthy: observes && gate.gate.healthy(&gate.scope),
                        defers: observes,
                    };
                    let delay = match ctx.decide(class, asked, *this.attempt, view) {
                        None => {
                            this.state.set(State::Done);
                            return Poll::Ready(finish(result, *this.attempt, ctx));
                        }
                        Some(Next::Retry(delay)) => delay,
                        Some(Next::Defer(wait)) => {
                            // Kept, to be returned if the budget still says no.
                            *this.held = Some((result, class));
                            this.state.set(State::Waiting);
                            arm(this.timer, after(wait));
                            continue;
                        }
                    };
                    // The failed attempt, its response and its body are dropped here, before
                    // the next attempt starts.
                    drop(result);
                    if delay.is_zero() {
                        this.state.set(State::Admitting);
                    } else {
                        this.state.set(State::Waiting);
                        arm(this.timer, after(delay));
                    }
                }
                StateProj::Waiting => {
                    if let Some(timer) = this.timer.as_mut() {
                        ready!(timer.as_mut().poll(cx));
                    }
                    this.state.set(State::Admitting);
                }
                StateProj::Admitting => {
                    let ctx = this
                        .retry
                        .as_mut()
                        .expect("only a request with a retry context is admitted later");
                    if let Some((result, class)) = this.held.take() {
                        let gate = &*this.gate;
                        if !ctx.budget_allows(gate.gate.healthy(&gate.scope)) {
                            this.state.set(State::Done);
                            return Poll::Ready(finish(result, *this.attempt, ctx));
                        }
                        ctx.announce(class, Duration::ZERO, *this.attempt);
                    }
                    let admit = AdmitContext {
                        attempt: *this.attempt + 1,
                        remaining: ctx.remaining(),
                        max_wait: ctx.config.retry_after_cap,
                    };
                    let gate = &mut *this.gate;
                    match gate.gate.admit(&gate.scope, admit) {
                        Admission::Go(permit) => {
                            gate.permit = Some(permit);
                            this.state.set(State::Readying);
                        }
                        Admission::Wait(delay) => {
                            this.state.set(State::Waiting);
                            arm(this.timer, after(delay.max(MIN_GATE_WAIT)));
                        }
                        Admission::Refuse(error) => {
                            this.state.set(State::Done);
                            return Poll::Ready(Err(error));
                        }
                    }
                }
                StateProj::Readying => {
                    let ctx = this
                        .retry
                        .as_mut()
                        .expect("only a request with a retry context is sent later");
                    if let Err(err) = ready!(ctx.service.poll_ready(cx)) {
                        // The permit is dropped unrecorded: the attempt never happened.
                        this.gate.permit = None;
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err.into()));
                    }
                    let clone = ctx.service.clone();
                    let mut ready = mem::replace(&mut ctx.service, clone);
                    *this.attempt += 1;
                    let future = ready.call(ctx.next_request(*this.attempt));
                    this.state.set(State::Calling { future });
                    if let Some(timeout) = *this.attempt_timeout {
                        arm(this.timer, after(timeout));
                        *this.timing_attempt = true;
                    }
                }
                StateProj::Refused { error } => {
                    let error = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    this.state.set(State::Done);
                    return Poll::Ready(Err(error));
                }
                StateProj::Done => panic!("ResponseFuture polled after completion"),
            }
        }
    }
}

/// The class of a single attempt sent without a retry context, by the contract's rules.
fn classify_plain<T>(result: &Result<Response<T>, BoxError>) -> Class {
    classify(&crate::classify::ContractClassifier, result)
}

/// Hands the outcome of the last attempt of a request that will not be retried to the gate.
fn record<G: Gate, S, B, C, T>(
    gate: &mut GateState<G>,
    class: Class,
    result: &Result<Response<T>, BoxError>,
    ctx: Option<&Ctx<S, B, C>>,
) {
    let Some(permit) = gate.permit.take() else {
        return;
    };
    let asked = if matches!(class, Class::RateLimited | Class::ServerError) {
        let clock = ctx.map_or(std::time::SystemTime::now as fn() -> _, |c| {
            c.config.wall_clock
        });
        server_delay(result, clock)
    } else {
        None
    };
    gate.gate.record(&gate.scope, permit, class, asked);
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

impl<S, B, C, G> fmt::Debug for ResponseFuture<S, B, C, G>
where
    S: Service<Request<ReplayBody<B>>>,
    G: Gate,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture")
            .field("attempt", &self.attempt)
            .field("retryable", &self.retry.is_some())
            .finish_non_exhaustive()
    }
}
