//! Counting outcomes without a shared hot cache line: [`Counters`] (what the handle reports),
//! [`PerThreadCounters`] (where they are counted) and [`CacheAligned`].

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

use super::local_ref::LocalRef;
use super::sync::{AtomicU64, Ordering::Relaxed};

/// A snapshot of a breaker's counters; they only grow (a reset does not clear them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Calls that completed and were not failures.
    pub successes: u64,
    /// Calls that completed as failures (slow calls included when a slow-call threshold is set).
    pub failures: u64,
    /// Calls refused without reaching the inner service.
    pub rejections: u64,
    /// State changes.
    pub transitions: u64,
}

impl std::ops::Add for Counters {
    type Output = Counters;

    fn add(self, other: Counters) -> Counters {
        Counters {
            successes: self.successes + other.successes,
            failures: self.failures + other.failures,
            rejections: self.rejections + other.rejections,
            transitions: self.transitions + other.transitions,
        }
    }
}

/// A value on cache lines of its own, so that writes to it never slow down its neighbours.
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CacheAligned<T>(pub(crate) T);

/// How many threads at a time own a group of their own.
const OWNED_GROUPS: usize = 4;

/// How many groups threads are spread over: one per owning thread, and one that every other
/// thread shares.
pub(crate) const THREAD_GROUPS: usize = OWNED_GROUPS + 1;

/// The group of the threads that own none.
pub(crate) const SHARED_GROUP: usize = OWNED_GROUPS;

/// The group a thread owns for as long as it runs (`SHARED_GROUP` when every group was taken
/// when it first counted), and the breaker reference its last completed call gave back, kept
/// for its next call (see `local_ref.rs`).
struct Claim(usize, Cell<Option<Arc<LocalRef>>>);

/// The groups owned by a running thread, one bit each.
static OWNED: AtomicUsize = AtomicUsize::new(0);

impl Claim {
    fn take() -> Claim {
        let mut owned = OWNED.load(std::sync::atomic::Ordering::Relaxed);
        loop {
            let free = (!owned).trailing_zeros() as usize;
            if cfg!(loom) || free >= OWNED_GROUPS {
                return Claim(SHARED_GROUP, Cell::new(None));
            }
            // Acquire: the previous owner's last counts are seen before this thread's first.
            match OWNED.compare_exchange_weak(
                owned,
                owned | 1 << free,
                std::sync::atomic::Ordering::Acquire,
                std::sync::atomic::Ordering::Relaxed,
            ) {
                Ok(_) => return Claim(free, Cell::new(None)),
                Err(actual) => owned = actual,
            }
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.0 < OWNED_GROUPS {
            // Release: this thread's counts are published to the next owner of the group.
            OWNED.fetch_and(!(1 << self.0), std::sync::atomic::Ordering::Release);
        }
    }
}

thread_local! {
    static CLAIM: Claim = Claim::take();
}

/// The group of the current thread: its own while it holds one, else the shared group. A
/// thread that owns its group is the only one that counts successes there, so it counts them
/// with a plain load and store instead of a locked read-modify-write.
#[inline]
pub(crate) fn thread_group() -> usize {
    // During thread teardown, after the claim was given back: count as a sharing thread.
    CLAIM.try_with(|c| c.0).unwrap_or(SHARED_GROUP)
}

/// Runs `f` with the current thread's group and its spare breaker reference; `None` during
/// thread teardown.
#[inline]
pub(crate) fn with_thread<R>(
    f: impl FnOnce(usize, &Cell<Option<Arc<LocalRef>>>) -> R,
) -> Option<R> {
    CLAIM.try_with(|c| f(c.0, &c.1)).ok()
}

#[derive(Debug)]
struct GroupCounters {
    successes: AtomicU64,
    failures: AtomicU64,
    rejections: AtomicU64,
}

/// Outcome counters kept per group of threads, each group on its own cache lines: threads
/// counting at once do not fight over one line. Reading them adds the groups up.
#[derive(Debug)]
pub(crate) struct PerThreadCounters {
    groups: [CacheAligned<GroupCounters>; THREAD_GROUPS],
}

/// What the counters hold now, summed over the groups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub(crate) successes: u64,
    pub(crate) failures: u64,
    pub(crate) rejections: u64,
}

impl Totals {
    /// Completed calls, successes and failures.
    pub(crate) fn calls(&self) -> u64 {
        self.successes + self.failures
    }
}

impl PerThreadCounters {
    pub(crate) fn new() -> Self {
        PerThreadCounters {
            groups: std::array::from_fn(|_| {
                CacheAligned(GroupCounters {
                    successes: AtomicU64::new(0),
                    failures: AtomicU64::new(0),
                    rejections: AtomicU64::new(0),
                })
            }),
        }
    }

    /// Counts one completed call: a failure on `group`'s counters, a success on those of the
    /// thread that completes it (the only thread that writes successes there, when it owns
    /// the group, so a store is enough).
    #[inline]
    pub(crate) fn outcome(&self, group: usize, failure: bool) {
        if failure {
            self.groups[group].0.failures.fetch_add(1, Relaxed);
            return;
        }
        let own = thread_group();
        let successes = &self.groups[own].0.successes;
        if own == SHARED_GROUP {
            successes.fetch_add(1, Relaxed);
        } else {
            successes.store(successes.load(Relaxed) + 1, Relaxed);
        }
    }

    /// Counts one refused call on the current thread's counters.
    pub(crate) fn rejection(&self) {
        self.groups[thread_group()]
            .0
            .rejections
            .fetch_add(1, Relaxed);
    }

    pub(crate) fn totals(&self) -> Totals {
        self.groups.iter().fold(
            Totals {
                successes: 0,
                failures: 0,
                rejections: 0,
            },
            |t, g| Totals {
                successes: t.successes + g.0.successes.load(Relaxed),
                failures: t.failures + g.0.failures.load(Relaxed),
                rejections: t.rejections + g.0.rejections.load(Relaxed),
            },
        )
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn successes_of_more_threads_than_owned_groups_are_all_counted() {
        let counters = PerThreadCounters::new();
        // Two waves, so the second one reuses the groups the first gave back.
        for _ in 0..2 {
            std::thread::scope(|scope| {
                for _ in 0..2 * THREAD_GROUPS {
                    scope.spawn(|| {
                        for i in 0..1_000 {
                            counters.outcome(i % THREAD_GROUPS, i % 10 == 0);
                        }
                    });
                }
            });
        }
        let totals = counters.totals();
        assert_eq!(totals.successes, 2 * 2 * THREAD_GROUPS as u64 * 900);
        assert_eq!(totals.failures, 2 * 2 * THREAD_GROUPS as u64 * 100);
    }
}
