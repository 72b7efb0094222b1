//! The client stack's gate: per-host admission and accounting for every attempt of the retry
//! loop.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use super::breaker::BreakerPermit;
use super::host::{HostMap, HostRef, HostState};
use super::pushback::Verdict;
use crate::ApiError;
use crate::classify::Class;
use crate::retry::gate::{Admission, AdmitContext, Gate};

/// Admits attempts by their host's state and records their verdicts there.
#[derive(Clone, Debug)]
pub struct HostGate {
    pub(crate) hosts: Arc<HostMap>,
}

/// One admitted attempt: its breaker permit, and whether it is a pushback probe.
#[derive(Debug)]
pub struct HostPermit {
    breaker: Option<BreakerPermit>,
    retry: bool,
    /// The host of a pushback probe, whose place a cancelled probe gives back; `None` for any
    /// other attempt, which needs no reference of its own (its verdict is recorded through the
    /// request's scope).
    probe: Option<Arc<HostState>>,
}

impl std::fmt::Debug for BreakerPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BreakerPermit")
    }
}

impl Drop for HostPermit {
    fn drop(&mut self) {
        if let Some(host) = self.probe.take() {
            host.pushback.cancel_probe();
        }
    }
}

/// The host state a request keeps between its attempts.
#[derive(Debug)]
pub struct HostScope {
    host: HostRef,
}

impl Gate for HostGate {
    type Scope = HostScope;
    type Permit = HostPermit;

    fn scope(&self, parts: &http::request::Parts) -> HostScope {
        HostScope {
            host: self.hosts.get_or_insert_for(parts),
        }
    }

    fn admit(&self, scope: &HostScope, ctx: AdmitContext) -> Admission<HostPermit> {
        let host = scope.host.state();
        let probe = match host.pushback.admit(ctx.remaining, ctx.max_wait) {
            Verdict::Go { probe } => probe,
            Verdict::Wait(wait) => return Admission::Wait(wait),
            Verdict::Refuse(err) => return Admission::Refuse(Box::new(crate::metrics::held(err))),
        };
        let refuse = |err: crate::BoxError| {
            if probe {
                host.pushback.cancel_probe();
            }
            Admission::Refuse(err)
        };
        // The throttle sheds new requests; retries are the budget's to bound.
        if ctx.attempt == 1
            && let Some(throttle) = &host.throttle
            && throttle.reject()
        {
            crate::metrics::throttled();
            return refuse(Box::new(
                ApiError::service_unavailable(
                    "the upstream is failing most requests: this one was shed locally",
                )
                .with_retry_after(Duration::from_secs(1))
                .with_class(Class::Rejected),
            ));
        }
        let breaker = match host.breaker.as_ref().map(|b| b.acquire()) {
            None => None,
            Some(Ok(permit)) => Some(permit),
            Some(Err(open)) => return refuse(Box::new(open)),
        };
        Admission::Go(HostPermit {
            breaker,
            retry: ctx.attempt > 1,
            probe: probe.then(|| host.clone()),
        })
    }

    fn healthy(&self, scope: &HostScope) -> bool {
        scope.host.state().health.is_healthy()
    }

    fn record(
        &self,
        scope: &HostScope,
        mut permit: HostPermit,
        class: Class,
        retry_after: Option<Duration>,
    ) {
        let probe = permit.probe.take().is_some();
        let host = scope.host.state();
        if let Some(breaker) = permit.breaker.take() {
            // A retry that fails again while the circuit is closed is no new evidence: its
            // request's first failure was counted. Without this a herd that failed together
            // (one piece of evidence) would trip the breaker with its own retries. It still
            // counts in the failure rate, which the trip rule reads: leaving it out would make
            // a flaky host look healthier than it is.
            let repeat = permit.retry
                && class.is_failure()
                && host.breaker.as_ref().is_some_and(|b| b.is_closed());
            if repeat {
                breaker.record_repeat_failure();
            } else {
                breaker.record(class.is_failure());
            }
        }
        // One clock reading, measured once from the base the map and its throttles share.
        let elapsed = self.hosts.since_base(Instant::now());
        if let Some(throttle) = &host.throttle {
            throttle.record_since(class, elapsed, scope.host.group());
        }
        self.hosts.mark_used(host, elapsed);
        host.health
            .record(!class.is_failure() && class != Class::RateLimited);
        let status = match class {
            Class::RateLimited => Some(StatusCode::TOO_MANY_REQUESTS),
            Class::ServerError => Some(StatusCode::SERVICE_UNAVAILABLE),
            _ => None,
        };
        host.pushback.record(probe, class, status, retry_after);
    }
}
