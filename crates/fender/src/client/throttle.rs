//! Client-side adaptive throttling (the Google SRE book's "Handling Overload"): when a host
//! accepts too few of the requests sent to it, a share of new attempts is refused locally, in
//! proportion to how sick the host is, instead of all or nothing.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use tokio::time::Instant;

use super::host::CACHE_GROUPS;
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

/// One bucket is one word: the low bits of its id (a tag), then requests, then accepts.
const COUNT_BITS: u32 = 22;
const COUNT_MAX: u64 = (1 << COUNT_BITS) - 1;
const TAG_MASK: u64 = (1 << (64 - 2 * COUNT_BITS)) - 1;

fn pack(tag: u64, requests: u64, accepts: u64) -> u64 {
    (tag << (2 * COUNT_BITS)) | (requests << COUNT_BITS) | accepts
}

fn tag(word: u64) -> u64 {
    word >> (2 * COUNT_BITS)
}

fn requests(word: u64) -> u64 {
    (word >> COUNT_BITS) & COUNT_MAX
}

fn accepts(word: u64) -> u64 {
    word & COUNT_MAX
}

/// One host's throttle: requests and accepts over a sliding window of buckets.
///
/// Lock-free: each bucket is one atomic word holding the low 20 bits of its id (a bucket is a
/// tenth of the window, so a tag repeats only after 2^20 of them: 12 days with the default
/// window) and its two counts (up to 2^22 each, where they saturate). Counting an attempt is
/// one compare-and-swap on the current bucket (which also clears a bucket left from an earlier
/// turn of the ring); deciding reads the ten words of each group.
///
/// Every attempt is counted, so the ring is the one line of a host every caller writes. Each
/// group of threads (the host map's cache groups) therefore counts into a ring of its own, on
/// cache lines of its own, and a decision adds the rings up: threads calling one busy host
/// write no line in common, and only a host that has failed in the window is read at all.
#[derive(Debug)]
pub(crate) struct Throttle {
    config: ThrottleConfig,
    base: Instant,
    /// The bucket width in nanoseconds.
    width: u64,
    rings: [Ring; CACHE_GROUPS],
    /// One more than the id of the latest bucket that counted an attempt the host did not
    /// accept (0: none yet). Written only when one is counted, so a healthy host's callers
    /// share its line read-only; while it is out of the window, nothing can be refused.
    unaccepted: AtomicU64,
    rng: AtomicU64,
}

/// One group's buckets, alone on its cache lines.
#[derive(Debug, Default)]
#[repr(align(128))]
struct Ring([AtomicU64; BUCKETS]);

impl Throttle {
    /// A throttle counting from `base` (the host map's, so that the gate measures the time
    /// since it once for both; see [`record_since`](Self::record_since)).
    pub(crate) fn new(config: ThrottleConfig, seed: u64, base: Instant) -> Self {
        let width = u64::try_from((config.window / BUCKETS as u32).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        Throttle {
            config,
            base,
            width,
            rings: Default::default(),
            unaccepted: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
        }
    }

    fn bucket_id(&self, now: Instant) -> u64 {
        self.bucket_of(now.saturating_duration_since(self.base))
    }

    /// The bucket of a time `elapsed` after the base.
    fn bucket_of(&self, elapsed: Duration) -> u64 {
        let nanos = elapsed
            .as_secs()
            .saturating_mul(1_000_000_000)
            .saturating_add(u64::from(elapsed.subsec_nanos()));
        nanos / self.width
    }

    /// Whether the next attempt is refused locally.
    ///
    /// Unlike the book's formula, a local refusal does not count as a request: counted, it
    /// makes every rejection rate an equilibrium when the host accepts half of what it gets, and
    /// over a minute at 50% failures the shed share drifts (in the simulation, up to a third of
    /// the traffic). Counting only attempts sent, the throttle sheds nothing while the host
    /// accepts at least `1/K` of them, and `1 - K · accepted/sent` of new requests below that.
    pub(crate) fn reject(&self) -> bool {
        // Without an unaccepted attempt in the window, sent equals accepted and, with K at
        // least 1, nothing is refused: the ten buckets need not be read (nor, if there never
        // was one, the clock).
        let unaccepted = self.unaccepted.load(Relaxed);
        if self.config.k >= 1.0 && unaccepted == 0 {
            return false;
        }
        let id = self.bucket_id(Instant::now());
        if self.config.k >= 1.0 && unaccepted + BUCKETS as u64 <= id + 1 {
            return false;
        }
        let (sent, accepted) = self.window_counts(id);
        if sent < self.config.min_requests {
            return false;
        }
        let p = ((sent as f64 - self.config.k * accepted as f64) / (sent as f64 + 1.0))
            .clamp(0.0, self.config.max_reject);
        if p <= 0.0 {
            return false;
        }
        let rng = self
            .rng
            .fetch_add(0x9E37_79B9_7F4A_7C15, Relaxed)
            .wrapping_add(0x9E37_79B9_7F4A_7C15);
        let draw = (splitmix(rng) >> 11) as f64 / (1u64 << 53) as f64;
        draw < p
    }

    /// The attempts sent and accepted in the window that ends with bucket `id`, over every
    /// group's ring.
    fn window_counts(&self, id: u64) -> (u64, u64) {
        let (mut sent, mut accepted) = (0u64, 0u64);
        let current = id % BUCKETS as u64;
        for slot in 0..BUCKETS {
            // The one id within the window this slot can hold: the latest at or before `id`.
            let back = if slot as u64 <= current {
                current - slot as u64
            } else {
                current + BUCKETS as u64 - slot as u64
            };
            let Some(expected) = id.checked_sub(back) else {
                continue;
            };
            for ring in &self.rings {
                let word = ring.0[slot].load(Relaxed);
                if tag(word) == expected & TAG_MASK {
                    sent += requests(word);
                    accepted += accepts(word);
                }
            }
        }
        (sent, accepted)
    }

    /// Counts one attempt that ended at `now` and whether the host accepted it (anything but a
    /// failure or a 429).
    #[cfg(test)]
    fn record(&self, class: Class, now: Instant) {
        self.record_since(
            class,
            now.saturating_duration_since(self.base),
            super::host::cache_group(),
        );
    }

    /// [`record`](Self::record) of an attempt that ended `elapsed` after the base, counted in
    /// the ring of cache group `group` (see [`HostRef::group`](super::host::HostRef::group)).
    pub(crate) fn record_since(&self, class: Class, elapsed: Duration, group: usize) {
        let accepted = u64::from(!class.is_failure() && class != Class::RateLimited);
        let id = self.bucket_of(elapsed);
        let current = id & TAG_MASK;
        let bucket = &self.rings[group % CACHE_GROUPS].0[(id % BUCKETS as u64) as usize];
        if accepted == 0 {
            self.unaccepted.fetch_max(id + 1, Relaxed);
        }
        let _ = bucket.fetch_update(Relaxed, Relaxed, |word| {
            let (sent, accepts) = if tag(word) == current {
                (requests(word), accepts(word))
            } else {
                (0, 0)
            };
            Some(pack(
                current,
                (sent + 1).min(COUNT_MAX),
                (accepts + accepted).min(COUNT_MAX),
            ))
        });
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::client::host::cache_group;

    #[tokio::test(start_paused = true)]
    async fn sheds_nothing_while_the_host_accepts_half_and_some_once_it_accepts_none() {
        let throttle = Throttle::new(ThrottleConfig::default(), 7, Instant::now());
        for i in 0..100 {
            let class = if i % 2 == 0 {
                Class::Success
            } else {
                Class::ServerError
            };
            throttle.record(class, Instant::now());
        }
        assert!((0..1_000).all(|_| !throttle.reject()));
        for _ in 0..400 {
            throttle.record(Class::ServerError, Instant::now());
        }
        let shed = (0..1_000).filter(|_| throttle.reject()).count();
        // p = (500 - 2 * 50) / 501, about 0.8 (the cap).
        assert!((700..=900).contains(&shed), "shed {shed} of 1,000");
    }

    #[tokio::test(start_paused = true)]
    async fn counts_older_than_the_window_are_forgotten() {
        let throttle = Throttle::new(ThrottleConfig::default(), 7, Instant::now());
        for _ in 0..100 {
            throttle.record(Class::ServerError, Instant::now());
        }
        assert!(throttle.reject() || throttle.reject() || throttle.reject());
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!((0..1_000).all(|_| !throttle.reject()));
        // A slot reused on the next turn of the ring starts from zero.
        throttle.record(Class::ServerError, Instant::now());
        let word = throttle.rings[cache_group()].0
            [(throttle.bucket_id(Instant::now()) % BUCKETS as u64) as usize]
            .load(Relaxed);
        assert_eq!((requests(word), accepts(word)), (1, 0));
        assert_eq!(
            throttle.window_counts(throttle.bucket_id(Instant::now())),
            (1, 0)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn refuses_again_once_failures_return_after_a_window_without_any() {
        let throttle = Throttle::new(ThrottleConfig::default(), 7, Instant::now());
        for _ in 0..100 {
            throttle.record(Class::ServerError, Instant::now());
        }
        assert!((0..100).any(|_| throttle.reject()));
        tokio::time::advance(Duration::from_secs(11)).await;
        for _ in 0..100 {
            throttle.record(Class::Success, Instant::now());
        }
        assert!((0..1_000).all(|_| !throttle.reject()));
        // Failures in the window again: the buckets are read and the host is shed.
        for _ in 0..400 {
            throttle.record(Class::RateLimited, Instant::now());
        }
        assert!((0..100).any(|_| throttle.reject()));
    }

    #[tokio::test(start_paused = true)]
    async fn counts_of_every_thread_group_are_added_up() {
        let throttle =
            std::sync::Arc::new(Throttle::new(ThrottleConfig::default(), 7, Instant::now()));
        // More threads than groups, so that some share a ring and every ring is used.
        let threads: Vec<_> = (0..2 * CACHE_GROUPS)
            .map(|_| {
                let throttle = throttle.clone();
                let now = Instant::now();
                std::thread::spawn(move || {
                    for i in 0..50 {
                        let class = if i < 5 {
                            Class::Success
                        } else {
                            Class::ServerError
                        };
                        throttle.record(class, now);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let id = throttle.bucket_id(Instant::now());
        let n = 2 * CACHE_GROUPS as u64;
        assert_eq!(throttle.window_counts(id), (50 * n, 5 * n));
        // p = (400 - 2 * 40) / 401, about 0.8 (the cap), from the total of all the rings.
        let shed = (0..1_000).filter(|_| throttle.reject()).count();
        assert!((700..=900).contains(&shed), "shed {shed} of 1,000");
    }

    #[test]
    fn counts_saturate_instead_of_spilling_into_the_tag() {
        let word = pack(5, COUNT_MAX, COUNT_MAX);
        assert_eq!(
            (tag(word), requests(word), accepts(word)),
            (5, COUNT_MAX, COUNT_MAX)
        );
    }
}
