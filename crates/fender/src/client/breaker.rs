//! The circuit breaker of one host, as the client stack drives it: admit an attempt, record its
//! verdict.

use std::sync::Arc;

use tokio::time::Instant;

use super::host::HostKey;
use crate::circuit_breaker::CircuitBreakerHandle;
use crate::circuit_breaker::CircuitOpen;
use crate::circuit_breaker::State;
use crate::circuit_breaker::policy::Config;
use crate::circuit_breaker::state::{Breaker, Shard, Shared, Ticket};

/// One host's breaker.
pub(crate) struct BreakerCell {
    shared: Shared,
}

impl BreakerCell {
    pub(crate) fn new(config: Arc<Config>, key: &HostKey) -> Self {
        BreakerCell {
            shared: Shared::new(Breaker::new(config, Some(Arc::from(key.to_string())))),
        }
    }

    /// Admits one attempt now, or refuses it (the refusal is counted).
    pub(crate) fn acquire(&self) -> Result<BreakerPermit, CircuitOpen> {
        let shard = self.shared.local();
        let ticket = shard.admit(false)?;
        let started = shard.slow_call.map(|_| Instant::now());
        Ok(BreakerPermit {
            shard,
            ticket,
            started,
            done: false,
        })
    }

    pub(crate) fn handle(&self) -> CircuitBreakerHandle {
        CircuitBreakerHandle {
            breaker: self.shared.breaker().clone(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.shared.state(), State::Closed | State::Disabled)
    }
}

/// One admitted attempt; dropped without [`record`](Self::record), it was cancelled and gives its
/// probe slot back.
pub(crate) struct BreakerPermit {
    shard: Arc<Shard>,
    ticket: Ticket,
    started: Option<Instant>,
    done: bool,
}

impl BreakerPermit {
    /// Records the attempt's outcome; a slow call counts as a failure when a threshold is set.
    pub(crate) fn record(mut self, failure: bool) {
        let slow = match (self.started, self.shard.slow_call) {
            (Some(started), Some(threshold)) => started.elapsed() >= threshold,
            _ => false,
        };
        self.done = true;
        self.shard.record(self.ticket, failure || slow);
    }
}

impl Drop for BreakerPermit {
    fn drop(&mut self) {
        if !self.done && self.ticket.is_probe() {
            self.shard.release_probe(self.ticket);
        }
    }
}
