//! The circuit breaker of one host, as the client stack drives it: admit an attempt, record its
//! verdict. A thin face on the breaker's internal API (`circuit_breaker::breaker`).

use std::sync::Arc;

use super::host::HostKey;
use crate::circuit_breaker::breaker::{Breaker, Permit};
use crate::circuit_breaker::policy::Config;
use crate::circuit_breaker::{CircuitBreakerHandle, CircuitOpen, State};

/// One host's breaker.
pub(crate) struct BreakerCell {
    breaker: Breaker,
}

impl BreakerCell {
    pub(crate) fn new(config: Arc<Config>, key: &HostKey) -> Self {
        BreakerCell {
            breaker: Breaker::new(config, Some(Arc::from(key.to_string()))),
        }
    }

    /// Admits one attempt now, or refuses it (the refusal is counted).
    pub(crate) fn acquire(&self) -> Result<BreakerPermit, CircuitOpen> {
        self.breaker.acquire().map(BreakerPermit)
    }

    pub(crate) fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle::of_breaker(self.breaker.clone())
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(
            self.breaker.machine().state(),
            State::Closed | State::Disabled
        )
    }
}

/// One admitted attempt; dropped without [`record`](Self::record), it was cancelled and gives its
/// probe slot back.
pub(crate) struct BreakerPermit(Permit);

impl BreakerPermit {
    /// Records the attempt's outcome; a slow call counts as a failure when a threshold is set.
    pub(crate) fn record(self, failure: bool) {
        self.0.record(failure);
    }

    /// Records a retry that failed again on a closed circuit: part of the failure rate, not
    /// new evidence for a trip.
    pub(crate) fn record_repeat_failure(self) {
        self.0.record_repeat_failure();
    }
}
