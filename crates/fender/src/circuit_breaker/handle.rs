//! Handles to read and steer breakers from outside the service stack.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::Ordering::AcqRel;
use std::sync::{Arc, OnceLock};

use super::breaker::{Breaker, BreakerSet};
use super::counters::Counters;
use super::keyed::SingleSlot;
use super::machine::Machine;
use super::state::State;

/// A handle to one circuit breaker, shared with every clone of the service.
///
/// Get it from [`CircuitBreakerLayer::handle`](super::CircuitBreakerLayer::handle) (at any
/// point: before or after the layer's other settings), from
/// [`CircuitBreaker::handle`](super::CircuitBreaker::handle) or from a [`KeyedHandle`];
/// cloning it is cheap. Until the layer has made a service, the breaker does not exist yet: the
/// handle reads it as closed with zero counters, and an order given through it
/// ([`force_open`](Self::force_open), [`force_closed`](Self::force_closed),
/// [`reset`](Self::reset)) is applied when the breaker is made.
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    target: Target,
}

#[derive(Clone)]
enum Target {
    /// The breaker of a single-breaker layer, made on its first `layer()`.
    Slot(Arc<SingleSlot>),
    /// One breaker of a keyed layer.
    Made(Breaker),
}

const NO_ORDER: u8 = 0;
const FORCE_OPEN: u8 = 1;
const FORCE_CLOSED: u8 = 2;

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.machine() {
            Some(machine) => fmt::Debug::fmt(machine, f),
            None => f.write_str("CircuitBreakerHandle(not made yet)"),
        }
    }
}

/// Applies an order a handle gave before the breaker was made.
fn apply(machine: &Machine, order: u8) {
    match order {
        FORCE_OPEN => machine.force_open(),
        FORCE_CLOSED => machine.force_closed(),
        _ => {}
    }
}

impl SingleSlot {
    /// The breaker, made from `make` if it does not exist yet, with any pending order applied.
    pub(crate) fn get_or_make(&self, make: impl FnOnce() -> Breaker) -> &Breaker {
        let breaker = self.built.get_or_init(make);
        apply(breaker.machine(), self.pending.swap(NO_ORDER, AcqRel));
        breaker
    }
}

impl CircuitBreakerHandle {
    pub(crate) fn of_slot(slot: Arc<SingleSlot>) -> Self {
        CircuitBreakerHandle {
            target: Target::Slot(slot),
        }
    }

    pub(crate) fn of_breaker(breaker: Breaker) -> Self {
        CircuitBreakerHandle {
            target: Target::Made(breaker),
        }
    }

    fn machine(&self) -> Option<&Arc<Machine>> {
        match &self.target {
            Target::Slot(slot) => slot.built.get().map(Breaker::machine),
            Target::Made(breaker) => Some(breaker.machine()),
        }
    }

    /// Gives an order: now, or when the breaker is made.
    fn order(&self, order: u8, now: impl Fn(&Machine)) {
        if let Some(machine) = self.machine() {
            return now(machine);
        }
        let Target::Slot(slot) = &self.target else {
            return;
        };
        slot.pending
            .store(order, std::sync::atomic::Ordering::Release);
        // Made meanwhile: whoever takes the order out applies it, exactly once.
        if let Some(breaker) = slot.built.get() {
            apply(breaker.machine(), slot.pending.swap(NO_ORDER, AcqRel));
        }
    }

    /// The current state.
    ///
    /// Transitions driven by time happen on the next call: an open circuit whose open
    /// duration has passed reads [`State::Open`] until a call arrives and becomes the first
    /// probe.
    pub fn state(&self) -> State {
        if let Some(machine) = self.machine() {
            return machine.state();
        }
        match &self.target {
            Target::Slot(slot) => match slot.pending.load(std::sync::atomic::Ordering::Acquire) {
                FORCE_OPEN => State::ForcedOpen,
                FORCE_CLOSED => State::Disabled,
                _ => State::Closed,
            },
            Target::Made(_) => State::Closed,
        }
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.machine().map(|m| m.counters()).unwrap_or_default()
    }

    /// Opens the circuit until [`force_closed`](Self::force_closed) or [`reset`](Self::reset):
    /// every call fails fast with [`Reason::ForcedOpen`](super::Reason::ForcedOpen).
    pub fn force_open(&self) {
        self.order(FORCE_OPEN, Machine::force_open);
    }

    /// Disables the breaker until [`force_open`](Self::force_open) or [`reset`](Self::reset):
    /// every call goes through and nothing trips it. Counters keep counting.
    pub fn force_closed(&self) {
        self.order(FORCE_CLOSED, Machine::force_closed);
    }

    /// Back to a fresh closed circuit (no ramp), forgetting failures counted so far.
    /// Calls in flight when it happens no longer count toward a transition. The counters are
    /// kept.
    pub fn reset(&self) {
        self.order(NO_ORDER, Machine::reset);
    }
}

/// A handle to the breakers of a layer that keeps one breaker per key.
///
/// Breakers are made on the first call with a key and may be evicted when the map is full;
/// [`get`](Self::get) sees the ones alive now. A handle taken before the layer made a service
/// sees the breakers its services make.
pub struct KeyedHandle<K> {
    pub(crate) slot: Arc<OnceLock<BreakerSet<K>>>,
}

impl<K> Clone for KeyedHandle<K> {
    fn clone(&self) -> Self {
        KeyedHandle {
            slot: self.slot.clone(),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for KeyedHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHandle")
            .field("breakers", &self.slot.get())
            .finish()
    }
}

impl<K> KeyedHandle<K>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// The handle of `key`'s breaker, if it has one now.
    pub fn get(&self, key: &K) -> Option<CircuitBreakerHandle> {
        self.slot
            .get()?
            .get(key)
            .map(CircuitBreakerHandle::of_breaker)
    }

    fn snapshot(&self) -> Vec<(K, Breaker)> {
        self.slot
            .get()
            .map(BreakerSet::snapshot)
            .unwrap_or_default()
    }

    /// The keys that have a breaker now.
    pub fn keys(&self) -> Vec<K> {
        self.snapshot().into_iter().map(|(k, _)| k).collect()
    }

    /// How many keys have a breaker now (never more than the layer's `max_keys`).
    pub fn len(&self) -> usize {
        self.slot.get().map_or(0, BreakerSet::len)
    }

    /// Whether no key has a breaker yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters of the breakers alive now, added up (an evicted key's counts are gone).
    pub fn counters(&self) -> Counters {
        self.snapshot()
            .into_iter()
            .fold(Counters::default(), |sum, (_, b)| {
                sum + b.machine().counters()
            })
    }

    /// Resets every breaker alive now.
    pub fn reset_all(&self) {
        for (_, breaker) in self.snapshot() {
            breaker.machine().reset();
        }
    }
}
