//! Integration tests of the circuit breaker layer, grouped by behaviour; time is a paused tokio
//! clock throughout, except in `stress` and over real sockets in `upstream`.

/// Asserts that a `poll_ready` result is `Ready(Ok(()))`.
macro_rules! assert_ready_ok {
    ($e:expr) => {
        assert!(matches!($e, std::task::Poll::Ready(Ok(()))), "not ready")
    };
}

/// Asserts that a poll result is `Pending`.
macro_rules! assert_pending {
    ($e:expr) => {
        assert!($e.is_pending(), "not pending")
    };
}

#[cfg(feature = "envelope")]
mod compose;
mod half_open;
mod handle;
mod hostile;
mod model;
mod noise;
mod onset;
mod per_host;
mod ramp;
mod readiness;
mod stress;
mod support;
mod tripping;
mod upstream;
