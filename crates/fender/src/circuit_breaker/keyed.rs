//! One breaker per key (per upstream host, or any key a function picks), with a bounded map.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::time::Instant;

use super::policy::Config;
use super::state::{Breaker, Shard, Shared, State};

/// Picks the key of a request, for a layer that keeps one breaker per key.
///
/// Implemented by [`PerHost`] and by every `Fn(&Req) -> K` closure that is
/// `Clone + Send + Sync + 'static`.
pub trait KeyFn<Req>: Clone + Send + Sync + 'static {
    /// The key.
    type Key: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static;

    /// The key of one request.
    fn key(&self, req: &Req) -> Self::Key;
}

impl<F, Req, K> KeyFn<Req> for F
where
    F: Fn(&Req) -> K + Clone + Send + Sync + 'static,
    K: Hash + Eq + Clone + fmt::Debug + Send + Sync + 'static,
{
    type Key = K;

    fn key(&self, req: &Req) -> K {
        self(req)
    }
}

/// Keys requests by their URI authority (`host:port`, lowercased), falling back to the `Host`
/// header, then to the empty string.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerHost;

impl<B> KeyFn<http::Request<B>> for PerHost {
    type Key = String;

    fn key(&self, req: &http::Request<B>) -> String {
        if let Some(authority) = req.uri().authority() {
            return authority.as_str().to_ascii_lowercase();
        }
        req.headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_ascii_lowercase)
            .unwrap_or_default()
    }
}

/// The mode of a layer that keeps one breaker for all calls (the default).
#[derive(Debug, Clone)]
pub struct Single {
    pub(crate) breaker: Arc<Shared>,
}

/// The mode of a layer that keeps one breaker per key.
#[derive(Clone)]
pub struct Keyed<F, K> {
    pub(crate) key_fn: F,
    pub(crate) map: Arc<KeyMap<K>>,
}

impl<F, K: fmt::Debug> fmt::Debug for Keyed<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("map", &self.map)
            .finish_non_exhaustive()
    }
}

/// The breakers of a keyed layer, at most `max_keys` of them.
///
/// A plain mutex guards the map: it is held only to find (or make) a key's breaker, never while
/// a call runs. When the map is full, a new key evicts the least recently used key whose
/// circuit is closed (or, if every circuit is tripped, the least recently used key), so the
/// memory stays bounded whatever keys arrive, and open circuits of bad hosts are kept longest.
pub(crate) struct KeyMap<K> {
    pub(crate) config: Arc<Config>,
    entries: Mutex<HashMap<K, Shared>>,
    /// The clock of the breakers' `last_used` marks.
    base: Instant,
}

impl<K: fmt::Debug> fmt::Debug for KeyMap<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_map().entries(entries.iter()).finish()
    }
}

impl<K> KeyMap<K>
where
    K: Hash + Eq + Clone + fmt::Debug,
{
    pub(crate) fn new(config: Arc<Config>) -> Self {
        KeyMap {
            config,
            entries: Mutex::new(HashMap::new()),
            base: Instant::now(),
        }
    }

    /// The breaker of `key`, made if there is none.
    pub(crate) fn breaker(&self, key: K) -> Arc<Shard> {
        let now = Instant::now()
            .saturating_duration_since(self.base)
            .as_millis() as u64;
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(breaker) = entries.get(&key) {
            breaker.touch(now);
            return breaker.local();
        }
        if entries.len() >= self.config.max_keys {
            let victim = entries
                .iter()
                .min_by_key(|(_, b)| (b.state() != State::Closed, b.last_used()))
                .map(|(k, _)| k.clone());
            if let Some(victim) = victim {
                entries.remove(&victim);
            }
        }
        let label: Arc<str> = Arc::from(format!("{key:?}"));
        let breaker = Shared::new(Breaker::new(self.config.clone(), Some(label)));
        breaker.touch(now);
        let local = breaker.local();
        entries.insert(key, breaker);
        local
    }

    pub(crate) fn get(&self, key: &K) -> Option<Arc<Breaker>> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).map(|b| b.breaker().clone())
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    pub(crate) fn snapshot(&self) -> Vec<(K, Arc<Breaker>)> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .iter()
            .map(|(k, b)| (k.clone(), b.breaker().clone()))
            .collect()
    }
}
