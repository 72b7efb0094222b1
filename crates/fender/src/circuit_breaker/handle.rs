//! Handles to read and steer breakers from outside the service stack.

use std::fmt;
use std::hash::Hash;
use std::sync::Arc;

use super::keyed::KeyMap;
use super::state::{Breaker, Counters, State};

/// A handle to one circuit breaker, shared with every clone of the service.
///
/// Get it from [`CircuitBreakerLayer::handle`](super::CircuitBreakerLayer::handle) or
/// [`CircuitBreaker::handle`](super::CircuitBreaker::handle); cloning it is cheap.
#[derive(Clone)]
pub struct CircuitBreakerHandle {
    pub(crate) breaker: Arc<Breaker>,
}

impl fmt::Debug for CircuitBreakerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.breaker, f)
    }
}

impl CircuitBreakerHandle {
    /// The current state.
    ///
    /// Transitions driven by time happen on the next call: an open circuit whose open
    /// duration has passed reads [`State::Open`] until a call arrives and becomes the first
    /// probe.
    pub fn state(&self) -> State {
        self.breaker.state()
    }

    /// The counters so far.
    pub fn counters(&self) -> Counters {
        self.breaker.counters()
    }

    /// Opens the circuit until [`force_closed`](Self::force_closed) or [`reset`](Self::reset):
    /// every call fails fast with [`Reason::ForcedOpen`](super::Reason::ForcedOpen).
    pub fn force_open(&self) {
        self.breaker.force_open();
    }

    /// Disables the breaker until [`force_open`](Self::force_open) or [`reset`](Self::reset):
    /// every call goes through and nothing trips it. Counters keep counting.
    pub fn force_closed(&self) {
        self.breaker.force_closed();
    }

    /// Back to a fresh closed circuit (no ramp), forgetting failures counted so far.
    /// Calls in flight when it happens no longer count toward a transition. The counters are
    /// kept.
    pub fn reset(&self) {
        self.breaker.reset();
    }
}

/// A handle to the breakers of a layer that keeps one breaker per key.
///
/// Breakers are made on the first call with a key and may be evicted when the map is full;
/// [`get`](Self::get) sees the ones alive now.
pub struct KeyedHandle<K> {
    pub(crate) map: Arc<KeyMap<K>>,
}

impl<K> Clone for KeyedHandle<K> {
    fn clone(&self) -> Self {
        KeyedHandle {
            map: self.map.clone(),
        }
    }
}

impl<K: fmt::Debug> fmt::Debug for KeyedHandle<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedHandle")
            .field("breakers", &self.map)
            .finish()
    }
}

impl<K> KeyedHandle<K>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    /// The handle of `key`'s breaker, if it has one now.
    pub fn get(&self, key: &K) -> Option<CircuitBreakerHandle> {
        self.map
            .get(key)
            .map(|breaker| CircuitBreakerHandle { breaker })
    }

    /// The keys that have a breaker now.
    pub fn keys(&self) -> Vec<K> {
        self.map.snapshot().into_iter().map(|(k, _)| k).collect()
    }

    /// How many keys have a breaker now (never more than the layer's `max_keys`).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key has a breaker yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The counters of the breakers alive now, added up (an evicted key's counts are gone).
    pub fn counters(&self) -> Counters {
        self.map
            .snapshot()
            .into_iter()
            .fold(Counters::default(), |sum, (_, b)| sum + b.counters())
    }

    /// Resets every breaker alive now.
    pub fn reset_all(&self) {
        for (_, breaker) in self.map.snapshot() {
            breaker.reset();
        }
    }
}
