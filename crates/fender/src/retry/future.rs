//! The response future of [`Retry`](super::Retry).

use std::fmt;
use std::future::Future;
use std::mem;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::{Request, Response};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};
use tower_service::Service;

pub(crate) use super::attempt::{Ctx, after};
use super::attempt::{GateView, Next, classify, server_delay};
use super::body::ReplayBody;
use super::gate::{Admission, AdmitContext, Gate, NoGate};
use super::policy::RetryInfo;
use crate::BoxError;
use crate::classify::{Class, Classify};

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
        // The last result and its class, while a deferred retry waits for the budget; boxed,
        // since few requests defer and every future carries this field.
        held: Option<Box<(Result<S::Response, BoxError>, Class)>>,
        gate: GateState<G>,
        started: crate::metrics::Stopwatch,
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

impl<S, B, C, G> ResponseFuture<S, B, C, G>
where
    S: Service<Request<ReplayBody<B>>>,
    G: Gate,
{
    /// An attempt already sent.
    #[inline]
    pub(crate) fn calling(
        future: S::Future,
        attempt_timeout: Option<Duration>,
        retry: Option<Ctx<S, B, C>>,
        classifier: Option<C>,
        gate: GateState<G>,
    ) -> Self {
        ResponseFuture {
            state: State::Calling { future },
            // Armed when the attempt is first pending: an attempt that answers on its first
            // poll needs no timer, and so no allocation and no entry in the timer wheel.
            timer: None,
            timing_attempt: attempt_timeout.is_some(),
            attempt: 1,
            attempt_timeout,
            retry,
            classifier,
            held: None,
            gate,
            started: crate::metrics::Stopwatch::start(),
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
            started: crate::metrics::Stopwatch::start(),
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
            started: crate::metrics::Stopwatch::start(),
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
                            let Some(timeout) =
                                this.attempt_timeout.filter(|_| *this.timing_attempt)
                            else {
                                return Poll::Pending;
                            };
                            let timer = match this.timer {
                                Some(timer) => timer,
                                // The first attempt's timer, armed on its first `Pending`: its
                                // time runs from here. A later attempt's was armed when sent.
                                None => this
                                    .timer
                                    .insert(Box::pin(tokio::time::sleep_until(after(timeout)))),
                            };
                            if timer.as_mut().poll(cx).is_pending() {
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
                        crate::metrics::unretried(
                            this.started,
                            this.retry.as_ref().map(|c| &c.config.classifier),
                            this.classifier.as_ref(),
                            &result,
                        );
                        this.state.set(State::Done);
                        return Poll::Ready(result);
                    };
                    let class = classify(&ctx.config.classifier, &result);
                    crate::metrics::attempt_done(class, this.started);
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
                    // Most attempts end in a class that is never retried: no call to decide.
                    let next = if class.is_retryable() {
                        ctx.decide(class, asked, *this.attempt, view)
                    } else {
                        None
                    };
                    let delay = match next {
                        None => {
                            crate::metrics::request_done(class);
                            this.state.set(State::Done);
                            if *this.attempt <= 1 {
                                // Most requests: returned as they came, not moved through
                                // `finish`.
                                return Poll::Ready(result);
                            }
                            return Poll::Ready(finish(result, *this.attempt, ctx));
                        }
                        Some(Next::Retry(delay)) => delay,
                        Some(Next::Defer(wait)) => {
                            // Kept, to be returned if the budget still says no.
                            *this.held = Some(Box::new((result, class)));
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
                    if let Some((result, class)) = this.held.take().map(|held| *held) {
                        let gate = &*this.gate;
                        if !ctx.budget_allows(gate.gate.healthy(&gate.scope)) {
                            crate::metrics::budget_refused();
                            crate::metrics::request_done(class);
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
                            crate::metrics::request_done(Class::Rejected);
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
                    // Kept while it is not ready, so that what it reserved is not lost.
                    let service = match &mut ctx.service {
                        Some(service) => service,
                        none => none.insert(ctx.config.service()),
                    };
                    if let Err(err) = ready!(service.poll_ready(cx)) {
                        // The permit is dropped unrecorded: the attempt never happened.
                        this.gate.permit = None;
                        this.state.set(State::Done);
                        return Poll::Ready(Err(err.into()));
                    }
                    let mut ready = ctx
                        .service
                        .take()
                        .expect("the attempt's service was made ready");
                    *this.attempt += 1;
                    let future = ready.call(ctx.next_request(*this.attempt));
                    this.state.set(State::Calling { future });
                    *this.started = crate::metrics::Stopwatch::start();
                    if let Some(timeout) = *this.attempt_timeout {
                        arm(this.timer, after(timeout));
                        *this.timing_attempt = true;
                    }
                }
                StateProj::Refused { error } => {
                    let error = error
                        .take()
                        .expect("ResponseFuture polled after completion");
                    crate::metrics::request_done(Class::Rejected);
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
    if attempts <= 1 {
        // Most requests: nothing to add, and the response is not moved again.
        return result;
    }
    result.map(|mut res| {
        res.extensions_mut().insert(RetryInfo {
            attempts,
            delays: ctx
                .history
                .as_mut()
                .map(|h| mem::take(&mut h.delays))
                .unwrap_or_default(),
        });
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
