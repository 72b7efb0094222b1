//! What the client stack keeps per host: the host's key, its circuit breaker, its server
//! pushback and its adaptive throttle, in a bounded map.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use http::Uri;

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
        // A word that would not change (a full window of the same outcome) is not written:
        // the healthy steady state then only reads a line every caller shares.
        let _ = self.0.fetch_update(Relaxed, Relaxed, |w| {
            let count = (w >> 58).min(HEALTH_WINDOW as u64);
            let bits = ((w << 1) | u64::from(accepted)) & ((1 << HEALTH_WINDOW) - 1);
            let next = (((count + 1).min(HEALTH_WINDOW as u64)) << 58) | bits;
            (next != w).then_some(next)
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

/// A host's key as the parts of a URI spell it, in any case and without a port filled in:
/// looked up in a map of [`HostKey`]s without making one.
pub(crate) trait HostView {
    /// The scheme, in any case.
    fn scheme(&self) -> &str;
    /// The host, in any case.
    fn host(&self) -> &str;
    /// The port, with the scheme's default filled in.
    fn port(&self) -> Option<u16>;
}

impl HostView for HostKey {
    fn scheme(&self) -> &str {
        HostKey::scheme(self)
    }
    fn host(&self) -> &str {
        HostKey::host(self)
    }
    fn port(&self) -> Option<u16> {
        HostKey::port(self)
    }
}

/// The host of a URI with an authority, borrowed from it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UriHost<'a> {
    scheme: &'a str,
    host: &'a str,
    port: Option<u16>,
}

impl<'a> UriHost<'a> {
    /// The host of `uri`, or `None` when it has no authority; by the rule of
    /// [`HostKey::from_uri`].
    pub(crate) fn of(uri: &'a Uri) -> Option<Self> {
        let (host, port) = split_authority(uri.authority()?.as_str());
        let scheme = uri.scheme_str().unwrap_or("http");
        Some(UriHost {
            scheme,
            host,
            port: port.or_else(|| HostKey::default_port_of(scheme)),
        })
    }

    /// The owned key.
    pub(crate) fn to_key(self) -> HostKey {
        HostKey::new(self.scheme, self.host, self.port)
    }
}

/// The host and port of an already validated authority, as `Authority::host` and
/// `Authority::port_u16` find them (credentials dropped, an IPv6 host kept in its brackets, a
/// port that is not a `u16` ignored), with byte searches instead of their string patterns.
fn split_authority(authority: &str) -> (&str, Option<u16>) {
    let bytes = authority.as_bytes();
    let start = bytes
        .iter()
        .rposition(|&b| b == b'@')
        .map_or(0, |at| at + 1);
    let host_port = &authority[start..];
    let end = if host_port.starts_with('[') {
        host_port
            .find(']')
            .map_or(host_port.len(), |close| close + 1)
    } else {
        host_port.find(':').unwrap_or(host_port.len())
    };
    let (host, rest) = host_port.split_at(end);
    let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
    (host, port)
}

impl HostView for UriHost<'_> {
    fn scheme(&self) -> &str {
        self.scheme
    }
    fn host(&self) -> &str {
        self.host
    }
    fn port(&self) -> Option<u16> {
        self.port
    }
}

impl<'a> Borrow<dyn HostView + 'a> for HostKey {
    fn borrow(&self) -> &(dyn HostView + 'a) {
        self
    }
}

impl PartialEq for dyn HostView + '_ {
    fn eq(&self, other: &Self) -> bool {
        // Keys are stored lowercase and most URIs spell them so: a plain comparison first.
        fn same(a: &str, b: &str) -> bool {
            a == b || a.eq_ignore_ascii_case(b)
        }
        self.port() == other.port()
            && same(self.host(), other.host())
            && same(self.scheme(), other.scheme())
    }
}

impl Eq for dyn HostView + '_ {}

impl Hash for dyn HostView + '_ {
    fn hash<H: Hasher>(&self, state: &mut H) {
        hash_lowercase(self.scheme(), state);
        hash_lowercase(self.host(), state);
        self.port().hash(state);
    }
}

/// Hashes `s` lowercased as `str::hash` hashes a lowercase string, without allocating for the
/// common short host.
fn hash_lowercase<H: Hasher>(s: &str, state: &mut H) {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return s.hash(state);
    }
    let mut buf = [0u8; 256];
    match buf.get_mut(..s.len()) {
        Some(buf) => {
            buf.copy_from_slice(s.as_bytes());
            buf.make_ascii_lowercase();
            // ASCII lowercasing keeps UTF-8 valid.
            std::str::from_utf8(buf).unwrap_or_default().hash(state);
        }
        None => s.to_ascii_lowercase().hash(state),
    }
}

/// How the host map hashes its keys: a multiply-and-rotate over eight bytes at a time from a
/// seed drawn per map, finished with splitmix. SipHash, the standard map's hasher, spent more
/// instructions on a host's few short fields than the rest of the lookup; the map is bounded
/// by `max_keys` and its seed is random, so colliding keys can neither be made in advance nor
/// make a lookup cost more than a scan of that many entries.
#[derive(Debug, Clone, Copy)]
struct HostHashing {
    seed: u64,
}

impl std::hash::BuildHasher for HostHashing {
    type Hasher = HostHasher;

    fn build_hasher(&self) -> HostHasher {
        HostHasher(self.seed)
    }
}

#[derive(Debug)]
struct HostHasher(u64);

impl HostHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for HostHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            // The length keeps "a" and "a\0" apart.
            self.add(u64::from_le_bytes(word) ^ ((rest.len() as u64) << 59));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u16(&mut self, n: u16) {
        self.add(u64::from(n));
    }

    fn write_isize(&mut self, n: isize) {
        self.add(n as u64);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        crate::circuit_breaker::ramp::splitmix(self.0)
    }
}

/// The states of the hosts a stack talks to, at most `max_keys` of them.
///
/// A known host is found under a read lock, by a key borrowed from the request's URI; only a
/// new host takes the write lock and allocates its key. When the map is full, a new host
/// evicts one of a small sample of entries: the least recently used quiet one (closed circuit,
/// no pushback), or the least recently used if none is quiet. The sample keeps eviction O(1)
/// whatever the map's size, while open circuits of bad hosts are kept the longest.
///
/// In front of the map, each group of threads keeps the few hosts it used last
/// ([`HostCache`]), found by the URI's authority as it is spelled: a request to one of them
/// takes no shared lock, hashes nothing, and clones a reference of its own group's, so threads
/// calling one busy host write no cache line in common.
pub(crate) struct HostMap {
    entries: RwLock<HashMap<HostKey, Arc<HostState>, HostHashing>>,
    max_keys: usize,
    make: MakeHost,
    base: Instant,
    /// Bumped by every eviction: a cached host of an older generation is looked up again.
    generation: AtomicU64,
    caches: [HostCache; CACHE_GROUPS],
}

/// How many entries one eviction looks at.
const EVICTION_SAMPLE: usize = 16;

/// How many groups of threads keep a cache of their own, and count a throttle's attempts in a
/// ring of their own (a thread's group is fixed when it first needs one, in turn).
pub(crate) const CACHE_GROUPS: usize = 4;
/// How many hosts each group's cache holds.
const CACHE_WAYS: usize = 4;
/// The scheme a cached host is filed under when the request's URI has no authority (its
/// `Host` header is the authority then).
const ORIGIN_FORM: &str = "/";

/// The cache group of the current thread.
pub(crate) fn cache_group() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static GROUP: usize = NEXT.fetch_add(1, Relaxed) % CACHE_GROUPS;
    }
    // During thread teardown: any group will do, the lock keeps it correct.
    GROUP.try_with(|g| *g).unwrap_or(0)
}

/// The hosts one group of threads used last, on cache lines of its own. The lock is the
/// group's own, so it is all but never contended.
#[repr(align(128))]
#[derive(Default)]
struct HostCache(Mutex<CacheWays>);

#[derive(Default)]
struct CacheWays {
    ways: [Option<Cached>; CACHE_WAYS],
    /// The way the next miss replaces.
    next: usize,
}

/// A host as one request spelled it: its URI's scheme and authority (or its `Host` header),
/// byte for byte.
struct Cached {
    generation: u64,
    scheme: Box<str>,
    authority: Box<str>,
    host: Arc<LocalHost>,
}

/// One cache group's reference to a host's state: a request clones this (a count on its
/// group's line) instead of the state's own `Arc`, which every group would write.
#[repr(align(128))]
pub(crate) struct LocalHost {
    pub(crate) state: Arc<HostState>,
    /// The cache group it belongs to.
    group: usize,
}

/// The host state one request holds: through its cache group's reference when the host came
/// from the cache, else directly.
pub(crate) enum HostRef {
    Local(Arc<LocalHost>),
    Shared(Arc<HostState>),
}

impl HostRef {
    /// The state.
    #[inline]
    pub(crate) fn state(&self) -> &Arc<HostState> {
        match self {
            HostRef::Local(local) => &local.state,
            HostRef::Shared(state) => state,
        }
    }

    /// The cache group of the thread that looked it up (the current thread's, if it did not
    /// come from a cache): where per-group counts of the host go.
    #[inline]
    pub(crate) fn group(&self) -> usize {
        match self {
            HostRef::Local(local) => local.group,
            HostRef::Shared(_) => cache_group(),
        }
    }
}

impl fmt::Debug for HostRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self.state(), f)
    }
}

impl fmt::Debug for HostMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_map().entries(entries.iter()).finish()
    }
}

impl HostMap {
    /// A map whose clock starts at `base` (its hosts' throttles count from the same).
    pub(crate) fn new(max_keys: usize, make: MakeHost, base: Instant) -> Self {
        HostMap {
            entries: RwLock::new(HashMap::with_hasher(HostHashing { seed: rand_seed() })),
            max_keys: max_keys.max(1),
            make,
            base,
            generation: AtomicU64::new(0),
            caches: Default::default(),
        }
    }

    /// The time from the map's base to `at`.
    pub(crate) fn since_base(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.base)
    }

    /// `at` in milliseconds since the map was made.
    fn millis(&self, at: Instant) -> u64 {
        Self::millis_of(self.since_base(at))
    }

    fn millis_of(elapsed: Duration) -> u64 {
        // Not `as_millis`, whose u128 division is a library call.
        elapsed
            .as_secs()
            .saturating_mul(1_000)
            .saturating_add(u64::from(elapsed.subsec_millis()))
    }

    /// Marks `state` used at `now`: what eviction goes by. The gate marks a host when it
    /// records an attempt's verdict, with the time it reads for the throttle anyway, so that a
    /// lookup reads no clock.
    /// `elapsed` is the time since the map's base ([`since_base`](Self::since_base)).
    pub(crate) fn mark_used(&self, state: &HostState, elapsed: Duration) {
        let now = Self::millis_of(elapsed);
        // Written once a millisecond at most, not by every caller of a busy host.
        if state.last_used.load(Relaxed) != now {
            state.last_used.store(now, Relaxed);
        }
    }

    /// The state of the host of a request's head, made if there is none; by the rule of
    /// [`HostKey::of_parts`], without making a key for a host already known, and from the
    /// thread group's cache for a host it used last.
    pub(crate) fn get_or_insert_for(&self, parts: &http::request::Parts) -> HostRef {
        let uri = &parts.uri;
        // The host as the request spells it: the URI's scheme and authority, or for a URI
        // without one, a scheme no URI has and the `Host` header.
        let (scheme, spelled) = match uri.authority() {
            Some(authority) => (uri.scheme_str().unwrap_or(""), authority.as_str()),
            None => match parts.headers.get(http::header::HOST).map(|h| h.to_str()) {
                None => (ORIGIN_FORM, ""),
                Some(Ok(host)) => (ORIGIN_FORM, host),
                Some(Err(_)) => {
                    return HostRef::Shared(self.get_or_insert(HostKey::of_parts(parts)));
                }
            },
        };
        let generation = self.generation.load(Relaxed);
        let group = cache_group();
        let cache = &self.caches[group].0;
        if let Some(host) = Self::cached(cache, generation, scheme, spelled) {
            return HostRef::Local(host);
        }
        self.miss(parts, group, generation, scheme, spelled)
    }

    /// [`get_or_insert_for`](Self::get_or_insert_for) of a host its thread group's cache does
    /// not hold as the request spells it.
    #[inline(never)]
    fn miss(
        &self,
        parts: &http::request::Parts,
        group: usize,
        generation: u64,
        scheme: &str,
        spelled: &str,
    ) -> HostRef {
        let uri = &parts.uri;
        let cache = &self.caches[group].0;
        // Userinfo is left out, so that the cache never holds credentials: an authority that
        // has some is looked up again without it (one without, the common case, was matched as
        // it is spelled, without a search for the `@`).
        let spelled = match uri.authority() {
            Some(_) => match spelled.rsplit_once('@') {
                Some((_, host)) => {
                    if let Some(host) = Self::cached(cache, generation, scheme, host) {
                        return HostRef::Local(host);
                    }
                    host
                }
                None => spelled,
            },
            None => spelled,
        };
        let state = match UriHost::of(uri) {
            Some(view) => match self.find(&view) {
                Some(state) => state,
                None => self.insert(view.to_key()),
            },
            None => self.get_or_insert(HostKey::of_parts(parts)),
        };
        let host = Arc::new(LocalHost { state, group });
        let mut cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        let way = cache.next;
        cache.next = (way + 1) % CACHE_WAYS;
        cache.ways[way] = Some(Cached {
            generation,
            scheme: scheme.into(),
            authority: spelled.into(),
            host: host.clone(),
        });
        HostRef::Local(host)
    }

    /// The host a cache group holds for `scheme` and `authority` as spelled, if it is of the
    /// current generation.
    // Always inlined: as a call, its arguments and the returned reference cost more than the
    // scan of four ways.
    #[inline(always)]
    fn cached(
        cache: &Mutex<CacheWays>,
        generation: u64,
        scheme: &str,
        authority: &str,
    ) -> Option<Arc<LocalHost>> {
        let cache = cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .ways
            .iter()
            .flatten()
            .find(|c| {
                c.generation == generation && *c.authority == *authority && *c.scheme == *scheme
            })
            .map(|c| c.host.clone())
    }

    /// The state of `key`'s host, made if there is none.
    pub(crate) fn get_or_insert(&self, key: HostKey) -> Arc<HostState> {
        if let Some(state) = self.find(&key) {
            return state;
        }
        self.insert(key)
    }

    /// A known host's state.
    fn find(&self, view: &dyn HostView) -> Option<Arc<HostState>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(view).cloned()
    }

    /// The state of `key`'s host, made now unless another caller just made it.
    fn insert(&self, key: HostKey) -> Arc<HostState> {
        let now = self.millis(Instant::now());
        let mut entries = self.entries.write().unwrap_or_else(PoisonError::into_inner);
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
                // Cached references to the victim are looked up again.
                self.generation.fetch_add(1, Relaxed);
            }
        }
        let state = Arc::new((self.make)(&key));
        state.last_used.store(now, Relaxed);
        entries.insert(key, state.clone());
        state
    }

    pub(crate) fn get(&self, key: &HostKey) -> Option<Arc<HostState>> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        entries.get(key).cloned()
    }

    pub(crate) fn keys(&self) -> Vec<HostKey> {
        let entries = self.entries.read().unwrap_or_else(PoisonError::into_inner);
        let mut keys: Vec<_> = entries.keys().cloned().collect();
        keys.sort();
        keys
    }

    pub(crate) fn len(&self) -> usize {
        self.entries
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// A seed that differs from map to map and from run to run, without a random number generator:
/// the standard library's per-map keys, hashed.
fn rand_seed() -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64)
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn parts(uri: &str) -> http::request::Parts {
        http::Request::get(uri).body(()).unwrap().into_parts().0
    }

    /// A map of at most `capacity` hosts, each with default pushback and nothing else.
    fn host_map(capacity: usize) -> HostMap {
        use super::super::pushback::PushbackConfig;
        let make: MakeHost =
            Arc::new(|_| HostState::new(None, Pushback::new(PushbackConfig::default(), 1), None));
        HostMap::new(capacity, make, Instant::now())
    }

    #[test]
    fn authorities_split_as_the_http_crate_splits_them() {
        for text in [
            "api.example",
            "api.example:8080",
            "API.Example:80",
            "bob:pw@api.example:8443",
            "a@b@api.example",
            "[::1]",
            "[::1]:9000",
            "u@[fe80::1]:1",
            "127.0.0.1:0",
            "host:",
            "host:99999",
        ] {
            let authority: http::uri::Authority = text.parse().unwrap();
            assert_eq!(
                split_authority(authority.as_str()),
                (authority.host(), authority.port_u16()),
                "{text}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn requests_to_one_host_in_any_spelling_share_its_state() {
        let map = host_map(4);
        let first = map.get_or_insert_for(&parts("http://Api.Example/a"));
        let second = map.get_or_insert_for(&parts("HTTP://api.example:80/b?c"));
        let again = map.get_or_insert_for(&parts("http://Api.Example/c"));
        let by_key = map.get_or_insert(HostKey::new("http", "api.example", Some(80)));
        assert!(Arc::ptr_eq(first.state(), second.state()));
        assert!(Arc::ptr_eq(first.state(), again.state()));
        assert!(Arc::ptr_eq(first.state(), &by_key));
        let other = map.get_or_insert_for(&parts("https://api.example/"));
        assert!(!Arc::ptr_eq(first.state(), other.state()));
        let origin_form = map.get_or_insert_for(&parts("/path"));
        assert!(Arc::ptr_eq(
            origin_form.state(),
            &map.get_or_insert(HostKey::default())
        ));
        assert!(Arc::ptr_eq(
            origin_form.state(),
            map.get_or_insert_for(&parts("/other")).state()
        ));
        let mut with_host = parts("/path");
        with_host
            .headers
            .insert(http::header::HOST, "API.example".parse().unwrap());
        assert!(Arc::ptr_eq(
            first.state(),
            map.get_or_insert_for(&with_host).state()
        ));
        assert!(Arc::ptr_eq(
            first.state(),
            map.get_or_insert_for(&with_host).state()
        ));
        let with_credentials = map.get_or_insert_for(&parts("http://user:secret@api.example/"));
        assert!(Arc::ptr_eq(first.state(), with_credentials.state()));
        assert_eq!(map.len(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn a_cache_holds_no_credentials_and_serves_their_host_from_the_plain_spelling() {
        let map = host_map(4);
        let with_credentials = map.get_or_insert_for(&parts("http://user:secret@api.example/"));
        let plain = map.get_or_insert_for(&parts("http://api.example/"));
        let again = map.get_or_insert_for(&parts("http://other:pw@api.example/x"));
        assert!(Arc::ptr_eq(with_credentials.state(), plain.state()));
        assert!(Arc::ptr_eq(with_credentials.state(), again.state()));
        let cache = map.caches[cache_group()].0.lock().unwrap();
        let spelled: Vec<_> = cache.ways.iter().flatten().map(|c| &*c.authority).collect();
        assert_eq!(spelled, ["api.example"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_host_evicted_from_the_map_is_not_served_from_a_threads_cache() {
        let map = host_map(1);
        let first = map.get_or_insert_for(&parts("http://a.example/"));
        let cached = map.get_or_insert_for(&parts("http://a.example/"));
        assert!(Arc::ptr_eq(first.state(), cached.state()));
        // A second host evicts the first from a map of one.
        map.get_or_insert_for(&parts("http://b.example/"));
        assert_eq!(map.keys(), vec![HostKey::new("http", "b.example", None)]);
        let later = map.get_or_insert_for(&parts("http://a.example/"));
        assert!(!Arc::ptr_eq(first.state(), later.state()));
        assert_eq!(map.keys(), vec![HostKey::new("http", "a.example", None)]);
    }

    #[test]
    fn a_uri_host_finds_its_key_in_a_map_in_any_case() {
        let mut map = std::collections::HashMap::new();
        map.insert(HostKey::new("https", "api.example", None), 1);
        let uri: Uri = "HTTPS://Api.EXAMPLE:443/x".parse().unwrap();
        let view = UriHost::of(&uri).unwrap();
        assert_eq!(map.get(&view as &dyn HostView), Some(&1));
        assert_eq!(view.to_key(), HostKey::new("https", "api.example", None));
        let other: Uri = "https://api.example:8443/".parse().unwrap();
        let other = UriHost::of(&other).unwrap();
        assert_eq!(map.get(&other as &dyn HostView), None);
        assert!(UriHost::of(&Uri::from_static("/path")).is_none());
    }

    #[test]
    fn a_view_hashes_like_its_key() {
        use std::hash::BuildHasher;
        let state = std::collections::hash_map::RandomState::new();
        let key = HostKey::new("http", "host.example", Some(8080));
        let uri: Uri = "http://HOST.example:8080/".parse().unwrap();
        let view = UriHost::of(&uri).unwrap();
        assert_eq!(state.hash_one(&key), state.hash_one(&view as &dyn HostView));
        let long = "A".repeat(300);
        let uri: Uri = format!("http://{long}/").parse().unwrap();
        let view = UriHost::of(&uri).unwrap();
        assert_eq!(
            state.hash_one(view.to_key()),
            state.hash_one(&view as &dyn HostView)
        );
    }
}
