//! [`CircuitBreaker`], the service.

use std::fmt;
use std::hash::Hash;
use std::task::{Context, Poll};

use tower_service::Service;

use super::breaker::{Breaker, Prepared};
use super::error::CircuitOpen;
use super::future::ResponseFuture;
use super::handle::{CircuitBreakerHandle, KeyedHandle};
use super::keyed::{KeyFn, Keyed, Single, SingleSlot};
use crate::BoxError;
use crate::classify::{Classify, ContractClassifier};

/// A service behind a circuit breaker; made by
/// [`CircuitBreakerLayer`](super::CircuitBreakerLayer).
///
/// # Readiness
///
/// With one breaker, `poll_ready` first asks the breaker whether the next call will be refused:
/// the circuit is open before its next probe, forced open, half-open with every probe slot
/// taken, or recovering and the ramp does not admit this call (the ramp's draw is made here).
/// If so it returns `Ready(Ok(()))` at once without polling the inner service, so nothing of
/// the inner service (a connection, a concurrency permit) is reserved for a call that will fail
/// fast, and the following `call` returns [`CircuitOpen`](super::CircuitOpen) without touching the inner service.
/// Otherwise it forwards to the inner service's `poll_ready`. `poll_ready` never fails because
/// the circuit is open.
///
/// A half-open probe slot is taken in `call`, not in `poll_ready` (unlike tower's
/// `ConcurrencyLimit`, which reserves its permit in `poll_ready`): a service held ready for a
/// long time, by a balancer or a buffer, must not sit on one of the few probe slots and keep
/// the breaker half-open. So when the last free slot is taken by another task between
/// `poll_ready` and `call`, `call` refuses after the inner service was made ready; the inner
/// service then stays ready for the next call, as with tower's `LoadShed`. `call` also checks
/// the state again, so a call made ready just before the circuit opened is refused.
///
/// With one breaker per key the key is only known in `call`, so `poll_ready` always forwards to
/// the inner service, which all keys share.
///
/// Whatever a call takes (a probe slot) is owned from that moment by a permit that its response
/// future carries: if the inner service's `call` panics, or the future is dropped before it
/// completes, the slot is given back.
///
/// # Clone
///
/// Clones share the breaker (or the map of breakers per key); each clone has its own inner
/// service clone.
pub struct CircuitBreaker<S, C = ContractClassifier, M = Single> {
    inner: S,
    classifier: C,
    mode: M,
    /// What `poll_ready` decided about the next call.
    decision: Decision,
    /// The refusal `poll_ready` decided, kept apart from the decision so that an admission
    /// reads and writes one byte.
    refusal: Option<CircuitOpen>,
}

/// What `poll_ready` decided about the next call of a single-breaker service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// Nothing yet: `call` decides.
    Undecided,
    /// The call will be admitted, unless the state changes before it.
    Admit,
    /// A recovering circuit's ramp admitted the call.
    RampPass,
    /// The call will be refused with the kept refusal.
    Refused,
}

/// A clone is not ready: like the inner service's clone, it must be polled ready before it is
/// called.
impl<S: Clone, C: Clone, M: Clone> Clone for CircuitBreaker<S, C, M> {
    fn clone(&self) -> Self {
        CircuitBreaker::new(
            self.inner.clone(),
            self.classifier.clone(),
            self.mode.clone(),
        )
    }
}

impl<S: fmt::Debug, C: fmt::Debug, M: fmt::Debug> fmt::Debug for CircuitBreaker<S, C, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CircuitBreaker")
            .field("inner", &self.inner)
            .field("classifier", &self.classifier)
            .field("mode", &self.mode)
            .finish()
    }
}

impl<S, C, M> CircuitBreaker<S, C, M> {
    pub(crate) fn new(inner: S, classifier: C, mode: M) -> Self {
        CircuitBreaker {
            inner,
            classifier,
            mode,
            decision: Decision::Undecided,
            refusal: None,
        }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Consumes the breaker, returning the inner service.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

impl<S, C> CircuitBreaker<S, C, Single> {
    /// The handle of the breaker this service shares with its clones.
    pub fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::of_slot(self.mode.slot.clone())
    }

    fn breaker(&self) -> &Breaker {
        made(&self.mode.slot)
    }
}

impl<S, C, F, K> CircuitBreaker<S, C, Keyed<F, K>>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// The handle of the breakers this service shares with its clones.
    pub fn handle(&self) -> KeyedHandle<K> {
        KeyedHandle {
            slot: self.mode.slot.clone(),
        }
    }
}

/// The breaker of a single-breaker service's layer.
#[inline]
fn made(slot: &SingleSlot) -> &Breaker {
    slot.built
        .get()
        .expect("the layer makes the breaker before its services")
}

impl<S, C, Req, ResB> Service<Req> for CircuitBreaker<S, C, Single>
where
    S: Service<Req, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
    C: Classify,
{
    type Response = http::Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // Decided again when polled again, keeping a ramp's admission.
        let ramp_pass = self.decision == Decision::RampPass;
        match self.breaker().machine().check(ramp_pass) {
            Ok(ramp_pass) => {
                self.decision = if ramp_pass {
                    Decision::RampPass
                } else {
                    Decision::Admit
                };
            }
            Err(open) => {
                self.decision = Decision::Refused;
                self.refusal = Some(open);
                // The call will fail fast: reserve nothing of the inner service for it.
                return Poll::Ready(Ok(()));
            }
        }
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    #[inline(always)]
    fn call(&mut self, req: Req) -> Self::Future {
        let breaker = made(&self.mode.slot);
        let prepared = match std::mem::replace(&mut self.decision, Decision::Undecided) {
            Decision::Admit => Prepared(Ok(false)),
            Decision::RampPass => Prepared(Ok(true)),
            Decision::Refused => Prepared(Err(self
                .refusal
                .take()
                .expect("a refusal is kept with its decision"))),
            Decision::Undecided => breaker.prepare(),
        };
        match prepared.acquire(breaker) {
            Ok(permit) => {
                ResponseFuture::admitted(self.inner.call(req), permit, self.classifier.clone())
            }
            Err(open) => ResponseFuture::refused(open),
        }
    }
}

impl<S, C, F, K, Req, ResB> Service<Req> for CircuitBreaker<S, C, Keyed<F, K>>
where
    S: Service<Req, Response = http::Response<ResB>>,
    S::Error: Into<BoxError>,
    C: Classify,
    F: KeyFn<Req, Key = K>,
    K: Hash + Eq + Clone + fmt::Debug,
{
    type Response = http::Response<ResB>;
    type Error = BoxError;
    type Future = ResponseFuture<S::Future, C>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, req: Req) -> Self::Future {
        let set = self
            .mode
            .slot
            .get()
            .expect("the layer makes the breakers before its services");
        match set.breaker(self.mode.key_fn.key(&req)).acquire() {
            Ok(permit) => {
                ResponseFuture::admitted(self.inner.call(req), permit, self.classifier.clone())
            }
            Err(open) => ResponseFuture::refused(open),
        }
    }
}
