//! The retry budget shared by every clone of a retrying client.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Number of slots the window is divided into.
const SLOTS: u32 = 10;
/// What one retry costs, in milli-tokens.
const RETRY_COST: i64 = 1_000;
/// Deposits are counted, and moved into the current slot (which needs the clock) once per
/// this many requests of one counter; a withdrawal also counts the ones not yet moved.
const BATCH: u64 = 16;
/// Request counters, each on cache lines of its own, that threads are spread over: threads
/// depositing at once do not fight over one line.
pub(crate) const COUNTERS: usize = 4;

/// An atomic on cache lines of its own.
#[derive(Default)]
#[repr(align(128))]
struct Padded(AtomicU64);

/// The request counter of the current thread: threads are dealt round-robin over the counters
/// as they first deposit.
#[inline]
pub(crate) fn thread_shard() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static SHARD: usize = NEXT.fetch_add(1, Ordering::Relaxed) % COUNTERS;
    }
    SHARD.try_with(|s| *s).unwrap_or(0)
}

/// A budget that caps retries at a share of recent traffic, plus a small floor.
///
/// Every request deposits `ratio` of a retry into the budget, every retry withdraws one; what
/// was deposited or withdrawn more than `window` ago is forgotten. On top of that, `floor`
/// retries per second are always allowed, so a client that sends little traffic can still retry.
/// When the budget is empty the retry layer returns the current response or error instead of
/// retrying, so a full outage costs the upstream about `1 + ratio` times the offered load, not
/// `max_attempts` times.
///
/// The default ([`RetryBudget::default`]) is 20% of the requests of the last 10 seconds plus 10
/// retries per second.
///
/// The accounting uses atomics only (no lock): the window is split into 10 slots, each one
/// packed generation + balance word updated with compare-and-swap. A request costs one atomic
/// increment of one of 4 request counters (threads are spread over them, so threads depositing
/// at once do not share a cache line); each counter credits the current slot 16 deposits at a
/// time (so the clock is read once per 16 requests), and a withdrawal also counts the up to 15
/// per counter not yet credited. Under contention the balance
/// may be overdrawn by a few retries at most, never by a share of traffic. Time comes from
/// [`tokio::time::Instant`], so paused-clock tests see exact behaviour.
///
/// Share one budget between several layers by wrapping it in an `Arc` and passing it to
/// [`RetryLayer::budget`](super::RetryLayer::budget).
///
/// ```
/// use fender::retry::RetryBudget;
/// use std::time::Duration;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// // 10% of recent traffic, at least 1 retry per second, over a 30 s window.
/// let budget = RetryBudget::new(Duration::from_secs(30), 1, 0.1);
/// budget.deposit();
/// assert!(budget.withdraw()); // the floor allows 30 retries in the window
/// # }
/// ```
#[must_use = "a builder does nothing until it is used"]
pub struct RetryBudget {
    slots: Box<[AtomicU64]>,
    /// Requests seen, per counter; every `BATCH`-th one of a counter moves a batch of deposits
    /// into a slot.
    requests: [Padded; COUNTERS],
    slot_nanos: u64,
    start: Instant,
    window: Duration,
    floor_per_sec: u32,
    ratio: f32,
    /// Milli-tokens each request deposits.
    deposit: i64,
    /// Milli-tokens always available within the window.
    reserve: i64,
}

impl RetryBudget {
    /// A budget of `ratio` retries per request over the last `window`, plus `floor_per_sec`
    /// retries per second.
    ///
    /// Must be called within a tokio runtime context only if the clock is paused; the budget
    /// reads [`tokio::time::Instant::now`].
    ///
    /// # Panics
    ///
    /// When `window` is shorter than 10 ms or longer than one day, or when `ratio` is not within
    /// `0.0..=1.0`. These are programmer errors.
    pub fn new(window: Duration, floor_per_sec: u32, ratio: f32) -> Self {
        assert!(
            window >= Duration::from_millis(10) && window <= Duration::from_secs(86_400),
            "retry budget window must be between 10 ms and one day, got {window:?}"
        );
        assert!(
            (0.0..=1.0).contains(&ratio),
            "retry budget ratio must be within 0.0..=1.0, got {ratio}"
        );
        let reserve = (f64::from(floor_per_sec) * window.as_secs_f64() * RETRY_COST as f64) as i64;
        RetryBudget {
            slots: (0..SLOTS).map(|_| AtomicU64::new(pack(0, 0))).collect(),
            requests: Default::default(),
            slot_nanos: u64::try_from((window / SLOTS).as_nanos()).unwrap_or(u64::MAX),
            start: Instant::now(),
            window,
            floor_per_sec,
            ratio,
            deposit: (f64::from(ratio) * RETRY_COST as f64).round() as i64,
            reserve,
        }
    }

    /// Records one request (the retry layer calls this once per request, not per attempt).
    ///
    /// Cheap: an atomic increment; once every 16 requests it also reads the clock and credits
    /// the current slot with the 16 deposits.
    pub fn deposit(&self) {
        self.deposit_on(thread_shard());
    }

    /// [`deposit`](Self::deposit) on counter `shard`, for a caller that already looked up its
    /// thread's.
    #[inline]
    pub(crate) fn deposit_on(&self, shard: usize) {
        if self.deposit > 0 {
            let seen = self.requests[shard % COUNTERS]
                .0
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            if seen.is_multiple_of(BATCH) {
                let generation = self.generation();
                self.add(generation, self.deposit * BATCH as i64);
            }
        }
    }

    /// Deposits counted but not yet credited to a slot (fewer than `BATCH` requests).
    fn pending(&self) -> i64 {
        let pending: u64 = self
            .requests
            .iter()
            .map(|r| r.0.load(Ordering::Relaxed) % BATCH)
            .sum();
        pending as i64 * self.deposit
    }

    /// Takes one retry from the budget; `false` when the budget is empty.
    pub fn withdraw(&self) -> bool {
        let generation = self.generation();
        let balance = self.balance(generation) + self.pending() + self.reserve;
        if balance < RETRY_COST {
            return false;
        }
        self.add(generation, -RETRY_COST);
        true
    }

    /// How many retries the budget would allow right now.
    pub fn remaining(&self) -> u64 {
        let balance = self.balance(self.generation()) + self.pending() + self.reserve;
        u64::try_from(balance / RETRY_COST).unwrap_or(0)
    }

    fn generation(&self) -> u32 {
        let elapsed = Instant::now().saturating_duration_since(self.start);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        // Wraps after 2^32 slots: comparisons below use wrapping arithmetic.
        (nanos / self.slot_nanos.max(1)) as u32
    }

    fn balance(&self, generation: u32) -> i64 {
        self.slots
            .iter()
            .map(|slot| {
                let (slot_generation, value) = unpack(slot.load(Ordering::Acquire));
                if generation.wrapping_sub(slot_generation) < SLOTS {
                    i64::from(value)
                } else {
                    0
                }
            })
            .sum()
    }

    fn add(&self, generation: u32, delta: i64) {
        let slot = &self.slots[(generation % SLOTS) as usize];
        let mut current = slot.load(Ordering::Acquire);
        loop {
            let (slot_generation, value) = unpack(current);
            let base = if slot_generation == generation {
                i64::from(value)
            } else {
                0
            };
            let new = (base + delta).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            match slot.compare_exchange_weak(
                current,
                pack(generation, new),
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }
}

fn pack(generation: u32, value: i32) -> u64 {
    (u64::from(generation) << 32) | u64::from(value as u32)
}

fn unpack(word: u64) -> (u32, i32) {
    ((word >> 32) as u32, word as u32 as i32)
}

impl Default for RetryBudget {
    /// 20% of the requests of the last 10 seconds plus 10 retries per second.
    fn default() -> Self {
        RetryBudget::new(Duration::from_secs(10), 10, 0.2)
    }
}

/// The same budget for code that already uses `tower::retry`: a `tower::retry::Policy` can
/// deposit into and withdraw from a budget it shares with fender's retry layer.
///
/// ```
/// use fender::retry::RetryBudget;
/// use tower::retry::budget::Budget;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let budget = RetryBudget::default();
/// Budget::deposit(&budget);
/// assert!(Budget::withdraw(&budget));
/// # }
/// ```
impl tower::retry::budget::Budget for RetryBudget {
    fn deposit(&self) {
        RetryBudget::deposit(self);
    }

    fn withdraw(&self) -> bool {
        RetryBudget::withdraw(self)
    }
}

impl fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RetryBudget")
            .field("window", &self.window)
            .field("floor_per_sec", &self.floor_per_sec)
            .field("ratio", &self.ratio)
            .field("remaining", &self.remaining())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn packing_round_trips() {
        for (g, v) in [(0, 0), (1, -1), (u32::MAX, i32::MIN), (7, i32::MAX)] {
            assert_eq!(unpack(pack(g, v)), (g, v));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn the_floor_alone_allows_floor_times_window_retries() {
        let budget = RetryBudget::new(Duration::from_secs(10), 2, 0.2);
        let allowed = (0..100).filter(|_| budget.withdraw()).count();
        assert_eq!(allowed, 20);
    }

    #[tokio::test(start_paused = true)]
    async fn withdrawals_are_forgotten_after_the_window() {
        let budget = RetryBudget::new(Duration::from_secs(10), 1, 0.0);
        assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 10);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!budget.withdraw());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 10);
    }

    #[tokio::test(start_paused = true)]
    async fn deposits_buy_a_share_of_retries() {
        let budget = RetryBudget::new(Duration::from_secs(10), 0, 0.2);
        for _ in 0..100 {
            budget.deposit();
        }
        assert_eq!((0..100).filter(|_| budget.withdraw()).count(), 20);
    }

    #[test]
    fn deposits_of_more_threads_than_counters_are_all_counted() {
        let budget = RetryBudget::new(Duration::from_secs(60), 0, 0.2);
        std::thread::scope(|scope| {
            for _ in 0..2 * COUNTERS {
                scope.spawn(|| (0..100).for_each(|_| budget.deposit()));
            }
        });
        assert_eq!(budget.remaining(), (2 * COUNTERS as u64 * 100) / 5);
    }

    #[test]
    #[should_panic(expected = "ratio must be within")]
    fn a_ratio_above_one_is_rejected() {
        let _ = RetryBudget::new(Duration::from_secs(10), 0, 1.5);
    }

    proptest! {
        #[test]
        fn retries_never_exceed_ratio_of_requests_plus_floor(
            requests in 0usize..2_000,
            floor in 0u32..20,
            ratio_pct in 0u32..=100,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_time().start_paused(true).build().unwrap();
            rt.block_on(async {
                let ratio = ratio_pct as f32 / 100.0;
                let budget = RetryBudget::new(Duration::from_secs(10), floor, ratio);
                let mut retries = 0usize;
                for _ in 0..requests {
                    budget.deposit();
                    for _ in 0..2 {
                        if budget.withdraw() {
                            retries += 1;
                        }
                    }
                }
                let limit = (requests as f64 * f64::from(ratio)).ceil() as usize + 10 * floor as usize + 1;
                prop_assert!(retries <= limit, "{retries} > {limit}");
                Ok(())
            })?;
        }
    }
}
