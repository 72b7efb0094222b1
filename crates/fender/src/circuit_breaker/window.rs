//! Lock-free sliding windows for the failure-rate trip mode.
//!
//! Both windows are approximate only while outcomes race with a reset (a transition): an
//! outcome recorded at that moment may land in the fresh window. Counting is exact otherwise.

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use super::policy::WindowKind;

/// The outcome counts a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
}

#[derive(Debug)]
pub(crate) enum Window {
    Count(CountWindow),
    Time(TimeWindow),
}

impl Window {
    pub(crate) fn new(kind: WindowKind) -> Self {
        match kind {
            WindowKind::Count(n) => Window::Count(CountWindow::new(n as usize)),
            WindowKind::Time(period) => Window::Time(TimeWindow::new(period)),
        }
    }

    /// Records one outcome at `now_ms` (milliseconds since the breaker's base) and returns the
    /// window's tally including it.
    pub(crate) fn record(&self, failure: bool, now_ms: u64) -> Tally {
        match self {
            Window::Count(w) => w.record(failure),
            Window::Time(w) => w.record(failure, now_ms),
        }
    }

    pub(crate) fn clear(&self) {
        match self {
            Window::Count(w) => w.clear(),
            Window::Time(w) => w.clear(),
        }
    }
}

/// The last N outcomes in a ring of slots (0 empty, 1 success, 2 failure).
#[derive(Debug)]
pub(crate) struct CountWindow {
    slots: Box<[AtomicU8]>,
    cursor: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

const EMPTY: u8 = 0;
const OK: u8 = 1;
const FAILED: u8 = 2;

impl CountWindow {
    fn new(size: usize) -> Self {
        CountWindow {
            slots: (0..size).map(|_| AtomicU8::new(EMPTY)).collect(),
            cursor: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        }
    }

    fn record(&self, failure: bool) -> Tally {
        let i = (self.cursor.fetch_add(1, Relaxed) % self.slots.len() as u64) as usize;
        let new = if failure { FAILED } else { OK };
        let old = self.slots[i].swap(new, Relaxed);
        let calls = if old == EMPTY {
            self.calls.fetch_add(1, Relaxed) + 1
        } else {
            self.calls.load(Relaxed)
        };
        let failures = match (old == FAILED, failure) {
            (false, true) => self.failures.fetch_add(1, Relaxed) + 1,
            (true, false) => self.failures.fetch_sub(1, Relaxed) - 1,
            _ => self.failures.load(Relaxed),
        };
        Tally { calls, failures }
    }

    fn clear(&self) {
        for slot in self.slots.iter() {
            slot.store(EMPTY, Relaxed);
        }
        self.cursor.store(0, Relaxed);
        self.calls.store(0, Relaxed);
        self.failures.store(0, Relaxed);
    }
}

/// The outcomes of the last period in ten buckets; each bucket is one word:
/// `[bucket number: 24 bits][calls: 20 bits][failures: 20 bits]`.
#[derive(Debug)]
pub(crate) struct TimeWindow {
    buckets: [AtomicU64; BUCKETS],
    bucket_ms: u64,
}

const BUCKETS: usize = 10;
const ID_BITS: u32 = 24;
const ID_MASK: u64 = (1 << ID_BITS) - 1;
const COUNT_MASK: u64 = (1 << 20) - 1;

impl TimeWindow {
    fn new(period: Duration) -> Self {
        let bucket_ms = (period.as_millis() as u64 / BUCKETS as u64).max(1);
        TimeWindow {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
            bucket_ms,
        }
    }

    fn record(&self, failure: bool, now_ms: u64) -> Tally {
        // Bucket numbers start at 1 so that 0 means "never used".
        let id = (now_ms / self.bucket_ms + 1) & ID_MASK;
        let bucket = &self.buckets[(id % BUCKETS as u64) as usize];
        let mut current = bucket.load(Relaxed);
        loop {
            let (calls, failures) = if current >> 40 == id {
                ((current >> 20) & COUNT_MASK, current & COUNT_MASK)
            } else {
                (0, 0)
            };
            // Saturate rather than overflow into the neighbouring field.
            let calls = (calls + 1).min(COUNT_MASK);
            let failures = (failures + u64::from(failure)).min(calls);
            let next = (id << 40) | (calls << 20) | failures;
            match bucket.compare_exchange_weak(current, next, Relaxed, Relaxed) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.tally(id)
    }

    fn tally(&self, id: u64) -> Tally {
        let mut tally = Tally {
            calls: 0,
            failures: 0,
        };
        for bucket in &self.buckets {
            let word = bucket.load(Relaxed);
            let bucket_id = word >> 40;
            let age = id.wrapping_sub(bucket_id) & ID_MASK;
            if bucket_id != 0 && (age as usize) < BUCKETS {
                tally.calls += (word >> 20) & COUNT_MASK;
                tally.failures += word & COUNT_MASK;
            }
        }
        tally
    }

    fn clear(&self) {
        for bucket in &self.buckets {
            bucket.store(0, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn count_window_forgets_the_oldest_outcome() {
        let w = CountWindow::new(4);
        for failure in [true, true, false, false] {
            w.record(failure);
        }
        assert_eq!(
            w.record(false),
            Tally {
                calls: 4,
                failures: 1
            }
        );
        assert_eq!(
            w.record(false),
            Tally {
                calls: 4,
                failures: 0
            }
        );
        assert_eq!(
            w.record(true),
            Tally {
                calls: 4,
                failures: 1
            }
        );
        w.clear();
        assert_eq!(
            w.record(true),
            Tally {
                calls: 1,
                failures: 1
            }
        );
    }

    #[test]
    fn time_window_drops_buckets_older_than_the_period() {
        let w = TimeWindow::new(Duration::from_secs(10));
        assert_eq!(
            w.record(true, 0),
            Tally {
                calls: 1,
                failures: 1
            }
        );
        assert_eq!(
            w.record(false, 5_000),
            Tally {
                calls: 2,
                failures: 1
            }
        );
        assert_eq!(
            w.record(false, 9_999),
            Tally {
                calls: 3,
                failures: 1
            }
        );
        // The bucket of t=0 (0..1s) has left the window at 10s.
        assert_eq!(
            w.record(false, 10_000),
            Tally {
                calls: 3,
                failures: 0
            }
        );
        // Long after, everything is gone.
        assert_eq!(
            w.record(true, 60_000),
            Tally {
                calls: 1,
                failures: 1
            }
        );
    }
}
