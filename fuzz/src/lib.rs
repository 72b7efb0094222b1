//! Shared pieces of fender's fuzz targets: inputs that `arbitrary` can build (headers, a body
//! script), a body that plays such a script on tokio's paused clock, the runtime the targets
//! run on, and the checks of the contract that more than one target asserts.
//!
//! Everything here drives fender through its public API only.

pub mod body;
pub mod check;
pub mod headers;

use std::future::Future;

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
}

/// Runs `future` to completion on this thread's current-thread runtime.
///
/// The runtime's clock is paused and advances by itself whenever every task waits on a timer,
/// so a body that waits a minute costs no real time, and a `tokio::time::timeout` around a
/// future that can never finish fires at once instead of hanging the fuzzer.
pub fn block_on<F: Future>(future: F) -> F::Output {
    RUNTIME.with(|rt| rt.block_on(future))
}

/// The HTTP status for a fuzzed number: every value `StatusCode::from_u16` accepts, 100..=999.
pub fn status_from(n: u16) -> http::StatusCode {
    http::StatusCode::from_u16(100 + n % 900).expect("100..=999 is a valid status")
}
