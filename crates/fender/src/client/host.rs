//! What the client stack keeps per host: the host's key, its circuit breaker, its server
//! pushback and its adaptive throttle, in a bounded map.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use super::breaker::BreakerCell;
use super::pushback::Pushback;
use super::throttle::Throttle;
use crate::circuit_breaker::CircuitBreakerHandle;

pub use crate::circuit_breaker::HostKey;

/// Everything the stack knows about one host.
pub(crate) struct HostState {
    pub(crate) breaker: Option<BreakerCell>,
    pub(crate) pushback: Pushback,
    pub(crate) throttle: Option<Throttle>,
    pub(crate) health: Health,
    last_used: AtomicU64,
}

/// The outcomes of a host's most recent attempts, one bit each (1 = accepted), and how many
/// were recorded (up to 63), in one word.
#[derive(Debug, Default)]
pub(crate) struct Health(AtomicU64);

/// How many recent attempts the health looks at.
const HEALTH_WINDOW: u32 = 20;
/// The share of them that must have been accepted for the host to look healthy.
const HEALTHY_SHARE: u32 = 18;

impl Health {
    pub(crate) fn record(&self, accepted: bool) {
        let _ = self.0.fetch_update(Relaxed, Relaxed, |w| {
            let count = (w >> 58).min(HEALTH_WINDOW as u64);
            let bits = ((w << 1) | u64::from(accepted)) & ((1 << HEALTH_WINDOW) - 1);
            Some((((count + 1).min(HEALTH_WINDOW as u64)) << 58) | bits)
        });
    }

    /// At least 18 of the last 20 attempts were accepted.
    pub(crate) fn is_healthy(&self) -> bool {
        let w = self.0.load(Relaxed);
        (w >> 58) as u32 >= HEALTH_WINDOW
            && (w & ((1 << HEALTH_WINDOW) - 1)).count_ones() >= HEALTHY_SHARE
    }
}

impl fmt::Debug for HostState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HostState")
            .field(
                "breaker",
                &self.breaker.as_ref().map(|b| b.handle().state()),
            )
            .field("pushback", &self.pushback)
            .finish_non_exhaustive()
    }
}

/// How a map makes the state of a new host.
pub(crate) type MakeHost = Arc<dyn Fn(&HostKey) -> HostState + Send + Sync>;

impl HostState {
    pub(crate) fn new(
        breaker: Option<BreakerCell>,
        pushback: Pushback,
        throttle: Option<Throttle>,
    ) -> Self {
        HostState {
            breaker,
            pushback,
            throttle,
            health: Health::default(),
            last_used: AtomicU64::new(0),
        }
    }

    /// Whether the host's circuit is closed (or it has no breaker): what eviction prefers.
    fn is_quiet(&self) -> bool {
        self.breaker.as_ref().is_none_or(|b| b.is_closed()) && !self.pushback.is_active()
    }
}

/// The states of the hosts a stack talks to, at most `max_keys` of them.
///
/// The mutex is held only to find (or make) a host's state. When the map is full, a new host
/// evicts one of a small sample of entries: the least recently used quiet one (closed circuit,
/// no pushback), or the least recently used if none is quiet. The sample keeps eviction O(1)
/// whatever the map's size, while open circuits of bad hosts are kept the longest.
pub(crate) struct HostMap {
    entries: Mutex<HashMap<HostKey, Arc<HostState>>>,
    max_keys: usize,
    make: MakeHost,
    base: Instant,
}

/// How many entries one eviction looks at.
const EVICTION_SAMPLE: usize = 16;

impl fmt::Debug for HostMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_map().entries(entries.iter()).finish()
    }
}

impl HostMap {
    pub(crate) fn new(max_keys: usize, make: MakeHost) -> Self {
        HostMap {
            entries: Mutex::new(HashMap::new()),
            max_keys: max_keys.max(1),
            make,
            base: Instant::now(),
        }
    }

    /// The state of `key`'s host, made if there is none.
    pub(crate) fn get_or_insert(&self, key: HostKey) -> Arc<HostState> {
        let now = u64::try_from(
            Instant::now()
                .saturating_duration_since(self.base)
                .as_millis(),
        )
        .unwrap_or(u64::MAX);
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(state) = entries.get(&key) {
            state.last_used.store(now, Relaxed);
            return state.clone();
        }
        if entries.len() >= self.max_keys {
            let victim = entries
                .iter()
                .take(EVICTION_SAMPLE)
                .min_by_key(|(_, s)| (!s.is_quiet(), s.last_used.load(Relaxed)))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                entries.remove(&victim);
            }
        }
        let state = Arc::new((self.make)(&key));
        state.last_used.store(now, Relaxed);
        entries.insert(key, state.clone());
        state
    }

    pub(crate) fn get(&self, key: &HostKey) -> Option<Arc<HostState>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).cloned()
    }

    pub(crate) fn keys(&self) -> Vec<HostKey> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<_> = entries.keys().cloned().collect();
        keys.sort();
        keys
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A handle to the per-host state of a [`ClientLayer`](super::ClientLayer) and every service
/// it made: which hosts are tracked, and each host's circuit breaker.
#[derive(Clone)]
pub struct ClientHandle {
    pub(crate) hosts: Arc<std::sync::OnceLock<Arc<HostMap>>>,
}

impl fmt::Debug for ClientHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientHandle")
            .field("hosts", &self.hosts.get())
            .finish()
    }
}

impl ClientHandle {
    /// The hosts tracked now (at most the layer's `max_keys`), sorted.
    pub fn hosts(&self) -> Vec<HostKey> {
        self.hosts.get().map(|m| m.keys()).unwrap_or_default()
    }

    /// How many hosts are tracked now.
    pub fn len(&self) -> usize {
        self.hosts.get().map_or(0, |m| m.len())
    }

    /// Whether no host is tracked yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The circuit breaker of one host, if the host is tracked and the stack has a breaker.
    pub fn breaker(&self, host: &HostKey) -> Option<CircuitBreakerHandle> {
        let state = self.hosts.get()?.get(host)?;
        state.breaker.as_ref().map(|b| b.handle())
    }

    /// How long requests to `host` are held by a server's `Retry-After` from now, if they are.
    pub fn pushback(&self, host: &HostKey) -> Option<Duration> {
        self.hosts.get()?.get(host)?.pushback.remaining()
    }
}
