//! The two modes of a layer: one breaker ([`Single`]), or one per key ([`Keyed`]), which a
//! [`KeyFn`] such as [`PerHost`] picks from each request.

use std::fmt;
use std::hash::Hash;
use std::sync::atomic::AtomicU8;
use std::sync::{Arc, OnceLock};

use super::breaker::{Breaker, BreakerSet};
use super::host_key::HostKey;

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

/// Keys requests by scheme, host and port ([`HostKey`]), never by credentials, path or query.
#[derive(Debug, Clone, Copy, Default)]
pub struct PerHost;

impl<B> KeyFn<http::Request<B>> for PerHost {
    type Key = HostKey;

    fn key(&self, req: &http::Request<B>) -> HostKey {
        HostKey::of_request(req)
    }
}

/// The mode of a layer that keeps one breaker for all calls (the default).
#[derive(Debug, Clone)]
pub struct Single {
    pub(crate) slot: Arc<SingleSlot>,
}

/// The mode of a layer that keeps one breaker per key.
#[derive(Clone)]
pub struct Keyed<F, K> {
    pub(crate) key_fn: F,
    pub(crate) slot: Arc<OnceLock<BreakerSet<K>>>,
}

impl<F, K: fmt::Debug> fmt::Debug for Keyed<F, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyed")
            .field("breakers", &self.slot.get())
            .finish_non_exhaustive()
    }
}

/// Where the single breaker of a layer lives: made once, from the final configuration, on the
/// first `layer()`; shared by the layer's clones, its services and every handle, whenever they
/// were taken. A handle that forces the breaker before it exists leaves the order here.
#[derive(Debug, Default)]
pub(crate) struct SingleSlot {
    pub(crate) built: OnceLock<Breaker>,
    /// A handle operation made before the breaker existed (see `handle.rs`).
    pub(crate) pending: AtomicU8,
}
