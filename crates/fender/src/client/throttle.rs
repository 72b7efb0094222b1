//! Client-side adaptive throttling (the Google SRE book's "Handling Overload"): when a host
//! accepts too few of the requests sent to it, a share of new attempts is refused locally, in
//! proportion to how sick the host is, instead of all or nothing.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

use crate::circuit_breaker::ramp::splitmix;
use crate::classify::Class;

/// The throttle's settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ThrottleConfig {
    /// `K`: how many requests per accepted one are sent before any is refused (default 2).
    pub(crate) k: f64,
    /// The window the counts cover (default 10 s).
    pub(crate) window: Duration,
    /// The most of the attempts that are ever refused (default 0.8).
    pub(crate) max_reject: f64,
    /// Attempts the window must hold before anything is refused (default 20).
    pub(crate) min_requests: u64,
}

impl Default for ThrottleConfig {
    fn default() -> Self {
        ThrottleConfig {
            k: 2.0,
            window: Duration::from_secs(10),
            max_reject: 0.8,
            min_requests: 20,
        }
    }
}

const BUCKETS: usize = 10;

#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    id: u64,
    requests: u64,
    accepts: u64,
}

/// One host's throttle: requests and accepts over a sliding window of buckets.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    base: Instant,
    state: Mutex<([Bucket; BUCKETS], u64)>,
}

impl Throttle {
    pub(crate) fn new(config: ThrottleConfig, seed: u64) -> Self {
        Throttle {
            config,
            base: Instant::now(),
            state: Mutex::new(([Bucket::default(); BUCKETS], seed)),
        }
    }

    fn bucket_id(&self) -> u64 {
        let width = (self.config.window / BUCKETS as u32).as_nanos().max(1);
        (Instant::now()
            .saturating_duration_since(self.base)
            .as_nanos()
            / width) as u64
    }

    /// Whether the next attempt is refused locally.
    ///
    /// Unlike the book's formula, a local refusal does not count as a request: counted, it
    /// makes every rejection rate an equilibrium when the host accepts half of what it gets, and
    /// over a minute at 50% failures the shed share drifts (in the simulation, up to a third of
    /// the traffic). Counting only attempts sent, the throttle sheds nothing while the host
    /// accepts at least `1/K` of them, and `1 - K · accepted/sent` of new requests below that.
    pub(crate) fn reject(&self) -> bool {
        let id = self.bucket_id();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let (buckets, rng) = &mut *state;
        let (mut requests, mut accepts) = (0u64, 0u64);
        for b in buckets.iter().filter(|b| b.id + BUCKETS as u64 > id) {
            requests += b.requests;
            accepts += b.accepts;
        }
        if requests < self.config.min_requests {
            return false;
        }
        let p = ((requests as f64 - self.config.k * accepts as f64) / (requests as f64 + 1.0))
            .clamp(0.0, self.config.max_reject);
        if p <= 0.0 {
            return false;
        }
        *rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let draw = (splitmix(*rng) >> 11) as f64 / (1u64 << 53) as f64;
        draw < p
    }

    /// Counts one attempt and whether the host accepted it (anything but a failure or a 429).
    pub(crate) fn record(&self, class: Class) {
        let accepted = !class.is_failure() && class != Class::RateLimited;
        let id = self.bucket_id();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = current(&mut state.0, id);
        bucket.requests += 1;
        bucket.accepts += u64::from(accepted);
    }
}

fn current(buckets: &mut [Bucket; BUCKETS], id: u64) -> &mut Bucket {
    let bucket = &mut buckets[(id % BUCKETS as u64) as usize];
    if bucket.id != id {
        *bucket = Bucket {
            id,
            requests: 0,
            accepts: 0,
        };
    }
    bucket
}
