//! [`LocalRef`]: a thread group's own reference to a breaker.

use std::sync::Arc;
use std::time::Duration;

use super::counters::{SHARED_GROUP, THREAD_GROUPS, with_thread};
use super::machine::Machine;

/// One thread group's reference to a machine, with what a completing call needs at hand.
///
/// Every admitted call keeps its breaker alive until it completes. Cloning one shared `Arc`
/// for that would make every call on every thread write the same reference count; a call
/// takes a reference to the `LocalRef` of its thread's group instead, on cache lines of its
/// own. A completed call gives its reference to the thread that completes it, which keeps one
/// spare for its next call: a thread calling one breaker reuses it and writes no reference
/// count at all (so a thread keeps at most one breaker alive after its services are gone,
/// until it calls another breaker or ends).
#[derive(Debug)]
#[repr(align(128))]
pub(crate) struct LocalRef {
    pub(crate) machine: Arc<Machine>,
    pub(crate) group: usize,
    pub(crate) slow_call: Option<Duration>,
}

/// A machine and one [`LocalRef`] to it per thread group.
#[derive(Debug)]
pub(crate) struct LocalRefs {
    machine: Arc<Machine>,
    refs: [Arc<LocalRef>; THREAD_GROUPS],
}

impl LocalRefs {
    pub(crate) fn new(machine: Machine) -> Self {
        let machine = Arc::new(machine);
        LocalRefs {
            refs: std::array::from_fn(|group| {
                Arc::new(LocalRef {
                    machine: machine.clone(),
                    group,
                    slow_call: machine.config.slow_call,
                })
            }),
            machine,
        }
    }

    /// The reference of the current thread's group, for a permit: the thread's spare when it
    /// is this one, so that a thread calling one breaker writes no reference count; else a
    /// clone.
    #[inline]
    pub(crate) fn take_current(&self) -> Arc<LocalRef> {
        with_thread(|group, spare| {
            let mine = &self.refs[group];
            match spare.take() {
                Some(kept) if Arc::ptr_eq(&kept, mine) => kept,
                other => {
                    spare.set(other);
                    mine.clone()
                }
            }
        })
        .unwrap_or_else(|| self.refs[SHARED_GROUP].clone())
    }

    pub(crate) fn machine(&self) -> &Arc<Machine> {
        &self.machine
    }
}

/// Keeps a completed permit's reference as the thread's spare, for the thread's next call
/// (dropping the one kept before, if any).
#[inline]
pub(crate) fn give_back(local: Arc<LocalRef>) {
    // During thread teardown the reference is dropped with the closure.
    let _ = with_thread(move |_, spare| drop(spare.replace(Some(local))));
}
