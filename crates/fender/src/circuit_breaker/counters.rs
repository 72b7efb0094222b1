//! Counting outcomes without a shared hot cache line: [`Counters`] (what the handle reports),
//! [`PerThreadCounters`] (where they are counted) and [`CacheAligned`].

use std::sync::atomic::AtomicUsize;

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

/// How many groups threads are spread over.
pub(crate) const THREAD_GROUPS: usize = 4;

/// The group of the current thread: threads are dealt round-robin over the groups as they
/// first count something.
#[inline]
pub(crate) fn thread_group() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static GROUP: usize = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % THREAD_GROUPS;
    }
    GROUP.with(|g| *g)
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

    /// Counts one completed call on `group`'s counters.
    #[inline]
    pub(crate) fn outcome(&self, group: usize, failure: bool) {
        let counters = &self.groups[group].0;
        if failure {
            counters.failures.fetch_add(1, Relaxed);
        } else {
            counters.successes.fetch_add(1, Relaxed);
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
