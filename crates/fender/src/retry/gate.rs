//! The hook that lets a composed client stack admit and account for every attempt the retry
//! loop makes.
//!
//! A plain [`RetryLayer`](super::RetryLayer) has no gate ([`NoGate`], which costs nothing). The
//! composed [`ClientLayer`](crate::client::ClientLayer) plugs in its per-host state: before an
//! attempt the gate says whether it may go now, must wait (a server's `Retry-After` is still
//! running) or is refused locally (an open circuit, throttling); after the attempt the gate hears
//! the attempt's one [`Class`], the same verdict the retry decision uses, so the breaker and the
//! retry loop can never disagree about an attempt.

use std::time::Duration;

use crate::BoxError;
use crate::classify::Class;

/// What a [`Gate`] says about the next attempt.
#[derive(Debug)]
pub enum Admission<P> {
    /// Send it now; the permit is handed back with the attempt's outcome.
    Go(P),
    /// Ask again after this long (the request waits, within its deadline).
    Wait(Duration),
    /// Do not send it: fail the request with this error (a local refusal, never retried).
    Refuse(BoxError),
}

/// What the gate knows about the request asking to be admitted.
#[derive(Debug, Clone, Copy)]
pub struct AdmitContext {
    /// The attempt about to be made (1 for the first).
    pub attempt: u32,
    /// The time the request may still wait before its deadline, when it has one.
    pub remaining: Option<Duration>,
    /// The longest server-asked wait the request accepts (the layer's `retry_after_cap`).
    pub max_wait: Duration,
}

/// Per-attempt admission and accounting, shared by every request of a retry service.
///
/// Implemented by [`NoGate`] (admits everything, records nothing) and by the composed client
/// stack's per-host state. `Scope` is what one request keeps between its attempts (for the
/// client stack: its host's state), `Permit` what one admitted attempt holds until its outcome
/// is known; dropping a permit without recording it means the attempt was cancelled.
pub trait Gate: Clone + Send + Sync + 'static {
    /// What one request carries between attempts.
    type Scope: Send + Sync + 'static;
    /// What one admitted attempt holds until its outcome is recorded.
    type Permit: Send + 'static;

    /// The scope of a request, from its head.
    fn scope(&self, parts: &http::request::Parts) -> Self::Scope;

    /// Whether the next attempt may go now.
    fn admit(&self, scope: &Self::Scope, ctx: AdmitContext) -> Admission<Self::Permit>;

    /// The outcome of an admitted attempt: its class, and the `Retry-After` a 429 or 503 asked
    /// for.
    fn record(
        &self,
        scope: &Self::Scope,
        permit: Self::Permit,
        class: Class,
        retry_after: Option<Duration>,
    );

    /// Whether the request's upstream looks healthy now (most recent attempts succeeded): a
    /// retry then needs no token from the budget, since it is likely to succeed and cannot
    /// amplify an outage. `false` unless the gate tracks health.
    fn healthy(&self, _scope: &Self::Scope) -> bool {
        false
    }

    /// Whether this gate needs the verdict of each attempt; `false` lets the retry loop skip
    /// classifying a request that cannot be retried anyway.
    fn observes(&self) -> bool {
        true
    }
}

/// The gate of a plain retry layer: every attempt goes, nothing is recorded.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoGate;

impl Gate for NoGate {
    type Scope = ();
    type Permit = ();

    fn scope(&self, _parts: &http::request::Parts) {}

    fn admit(&self, _scope: &(), _ctx: AdmitContext) -> Admission<()> {
        Admission::Go(())
    }

    fn record(&self, _scope: &(), _permit: (), _class: Class, _retry_after: Option<Duration>) {}

    fn observes(&self) -> bool {
        false
    }
}
