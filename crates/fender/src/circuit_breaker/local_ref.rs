//! [`LocalRef`]: a thread group's own reference to a breaker.

use std::sync::Arc;
use std::time::Duration;

use super::counters::{THREAD_GROUPS, thread_group};
use super::machine::Machine;

/// One thread group's reference to a machine, with what a completing call needs at hand.
///
/// Every admitted call keeps its breaker alive until it completes. Cloning one shared `Arc`
/// for that would make every call on every thread write the same reference count; a call
/// clones the `LocalRef` of its thread's group instead, on cache lines of its own.
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

    /// The reference of the current thread's group.
    #[inline]
    pub(crate) fn current(&self) -> &Arc<LocalRef> {
        &self.refs[thread_group()]
    }

    pub(crate) fn machine(&self) -> &Arc<Machine> {
        &self.machine
    }
}
