//! The crate's internal API to circuit breakers, which the [`CircuitBreaker`] service and
//! composed client stacks are built on:
//!
//! - [`BreakerSet::breaker`]`(key) -> Breaker`: the breaker of one key (per host, or any key),
//!   made on first use; at most `max_keys` are kept, evicted in O(1) (see `keyed_map.rs`).
//! - [`Breaker::acquire`]`() -> Result<Permit, CircuitOpen>`: admits or refuses one call now,
//!   counting a refusal.
//! - [`Permit::record`]`(self, failure)`: the call's outcome (a call slower than the
//!   slow-call threshold is a failure). Dropping a permit without recording cancels the call:
//!   a probe's slot is freed and no outcome is counted.
//! - [`Breaker::prepare`] then [`Prepared::acquire`]: the same admission split in two, for a
//!   service that decides in `poll_ready` (without reserving anything) and admits in `call`.
//!
//! [`CircuitBreaker`]: super::CircuitBreaker

use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use super::error::CircuitOpen;
use super::keyed_map::KeyedMap;
use super::local_ref::{self, LocalRef, LocalRefs};
use super::machine::{Machine, Ticket};
use super::policy::Config;
use super::state::State;
use super::sync;

/// One circuit breaker, as services hold it; cloning is one reference count.
#[derive(Clone)]
pub(crate) struct Breaker {
    refs: Arc<LocalRefs>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.machine(), f)
    }
}

impl Breaker {
    /// A fresh breaker, closed, of this configuration (and key, for a keyed set).
    pub(crate) fn new(config: Arc<Config>, key: Option<Arc<str>>) -> Self {
        Breaker {
            refs: Arc::new(LocalRefs::new(Machine::new(config, key))),
        }
    }

    /// Admits or refuses one call now, counting a refusal.
    #[inline]
    pub(crate) fn acquire(&self) -> Result<Permit, CircuitOpen> {
        self.prepare().acquire(self)
    }

    /// Decides whether the next call will be refused, without reserving anything and without
    /// counting: a recovering circuit's ramp draws here, and a probe slot is only taken by
    /// [`Prepared::acquire`].
    #[inline]
    pub(crate) fn prepare(&self) -> Prepared {
        Prepared(self.machine().check(false))
    }

    #[inline]
    pub(crate) fn machine(&self) -> &Arc<Machine> {
        self.refs.machine()
    }
}

/// A decision made ahead of a call; see [`Breaker::prepare`].
#[derive(Debug)]
pub(crate) struct Prepared(pub(super) Result<bool, CircuitOpen>);

impl Prepared {
    /// Admits or refuses the call: a prepared refusal is final (the inner service was not made
    /// ready for it); otherwise the breaker decides again, now. A refusal is counted.
    #[inline(always)]
    pub(crate) fn acquire(self, breaker: &Breaker) -> Result<Permit, CircuitOpen> {
        let ramp_pass = match self.0 {
            Ok(ramp_pass) => ramp_pass,
            Err(open) => {
                breaker.machine().count_rejection();
                return Err(open);
            }
        };
        let local = breaker.refs.take_current();
        if let Some(ticket) = local.machine.admit_closed() {
            return Ok(Permit {
                started: local.slow_call.map(|_| sync::now()),
                local: Some(local),
                ticket,
            });
        }
        let (result, transition) = local.machine.admit(ramp_pass);
        // From here the permit owns what the admission took: a panic anywhere after (in the
        // callback, in the inner service's `call`) gives it back.
        let permit = match result {
            Ok(ticket) => Ok(Permit {
                started: local.slow_call.map(|_| sync::now()),
                local: Some(local),
                ticket,
            }),
            Err(open) => {
                local_ref::give_back(local);
                Err(open)
            }
        };
        if let Some(transition) = transition {
            breaker.machine().report(transition);
        }
        permit
    }
}

/// One admitted call. Record its outcome with [`record`](Self::record); dropping it
/// unrecorded cancels the call (a probe frees its slot, nothing is counted).
pub(crate) struct Permit {
    /// Taken out only when the permit is dropped, to be given back to the thread.
    local: Option<Arc<LocalRef>>,
    /// What the call was admitted as; [`Ticket::Untracked`] once its outcome is recorded, so
    /// that dropping the permit then cancels nothing.
    ticket: Ticket,
    started: Option<Instant>,
}

impl fmt::Debug for Permit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit")
            .field("ticket", &self.ticket)
            .finish_non_exhaustive()
    }
}

impl Permit {
    /// Records the call's outcome; a call slower than the slow-call threshold is a failure
    /// whatever `failure` says.
    #[inline]
    pub(crate) fn record(mut self, failure: bool) {
        self.complete(failure);
    }

    /// [`record`](Self::record) in place, for a permit kept in a response future; the permit
    /// is then spent (dropping it cancels nothing).
    #[inline(always)]
    pub(crate) fn complete(&mut self, failure: bool) {
        let ticket = std::mem::replace(&mut self.ticket, Ticket::Untracked);
        let local = self.local();
        let slow = match (self.started, local.slow_call) {
            (Some(started), Some(threshold)) => sync::now() - started >= threshold,
            _ => false,
        };
        local.machine.record(local.group, ticket, failure || slow);
    }

    /// Records the failure of a retry on a closed circuit: counted in the failure rate the
    /// trip rule reads, but no new evidence (its request's first failure was).
    pub(crate) fn record_repeat_failure(mut self) {
        let ticket = std::mem::replace(&mut self.ticket, Ticket::Untracked);
        let local = self.local();
        local.machine.record_repeat_failure(local.group, ticket);
    }

    #[inline]
    fn local(&self) -> &LocalRef {
        self.local
            .as_deref()
            .expect("a permit keeps its reference until dropped")
    }
}

impl Drop for Permit {
    #[inline]
    fn drop(&mut self) {
        // A recorded permit holds an untracked ticket: nothing to cancel.
        if let Some(local) = self.local.take() {
            local.machine.cancel(self.ticket);
            local_ref::give_back(local);
        }
    }
}

/// A keyed set of breakers, at most `max_keys` of them; see `keyed_map.rs`.
///
/// A plain mutex guards the map: it is held only to find (or make) a key's breaker, never while
/// a call runs, and never for more than a constant amount of work.
pub(crate) struct BreakerSet<K> {
    config: Arc<Config>,
    entries: Mutex<KeyedMap<K, Breaker>>,
}

impl<K: fmt::Debug> fmt::Debug for BreakerSet<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_map().entries(entries.iter()).finish()
    }
}

/// Breakers eviction keeps as long as there are others: every circuit that is not closed.
fn tripped(breaker: &Breaker) -> bool {
    breaker.machine().state() != State::Closed
}

impl<K> BreakerSet<K>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    pub(crate) fn new(config: Arc<Config>) -> Self {
        BreakerSet {
            entries: Mutex::new(KeyedMap::new()),
            config,
        }
    }

    /// The configuration every breaker of the set is made from.
    pub(crate) fn config(&self) -> &Config {
        &self.config
    }

    /// The breaker of `key`, made if there is none. At the limit, a new key evicts the least
    /// recently used breaker whose circuit is closed (or, if every circuit is tripped, the least
    /// recently used one), so the open circuits of bad hosts are kept longest. O(1), amortized.
    pub(crate) fn breaker(&self, key: K) -> Breaker {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(breaker) = entries.get(&key, tripped) {
            return breaker.clone();
        }
        if entries.len() >= self.config.max_keys {
            entries.evict(tripped);
        }
        let label: Arc<str> = Arc::from(format!("{key:?}"));
        let breaker = Breaker::new(self.config.clone(), Some(label));
        entries.insert(key, breaker.clone());
        breaker
    }

    /// The breaker of `key`, if it has one now (without counting as a use).
    pub(crate) fn get(&self, key: &K) -> Option<Breaker> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.peek(key).cloned()
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn snapshot(&self) -> Vec<(K, Breaker)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .map(|(k, b)| (k.clone(), b.clone()))
            .collect()
    }
}
