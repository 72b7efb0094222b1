//! The atomics and the clock the state machine runs on: std's and tokio's, or loom's atomics
//! and a model clock when the crate is built with `--cfg loom` to model-check the machine.

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{AtomicU32, AtomicU64, fence};
pub(crate) use std::sync::atomic::Ordering;
#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{AtomicU32, AtomicU64, fence};

/// The breaker's clock.
#[cfg(not(loom))]
pub(crate) fn now() -> tokio::time::Instant {
    tokio::time::Instant::now()
}

/// The breaker's clock under loom: a fixed origin plus what the model moved it by, so that
/// every interleaving sees the same times.
#[cfg(loom)]
pub(crate) fn now() -> tokio::time::Instant {
    model_clock::now()
}

#[cfg(loom)]
pub(crate) mod model_clock {
    use std::cell::Cell;
    use std::time::Duration;

    use tokio::time::Instant;

    thread_local! {
        static ORIGIN: Instant = Instant::now();
        static OFFSET: Cell<Duration> = const { Cell::new(Duration::ZERO) };
    }

    pub(crate) fn now() -> Instant {
        ORIGIN.with(|origin| *origin + OFFSET.with(Cell::get))
    }

    /// Moves the model clock on (outside the threads of a model).
    pub(crate) fn advance(by: Duration) {
        OFFSET.with(|offset| offset.set(offset.get() + by));
    }
}
