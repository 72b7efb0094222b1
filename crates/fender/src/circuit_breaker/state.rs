//! The public vocabulary of a breaker's state: [`State`] and [`StateChange`].

use std::fmt;
use std::sync::Arc;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls go through; failures are counted.
    Closed,
    /// Closed recently: a growing share of calls goes through, the rest fail fast.
    Recovering,
    /// Calls fail fast until the next probe. An open circuit whose open duration has passed
    /// stays `Open` until the next call, which becomes the first probe.
    Open,
    /// A limited number of probe calls go through; the rest fail fast.
    HalfOpen,
    /// Forced open through the handle: every call fails fast until forced closed or reset.
    ForcedOpen,
    /// Forced closed through the handle: the breaker lets everything through and never trips.
    Disabled,
}

impl State {
    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Recovering => "recovering",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced open",
            State::Disabled => "disabled",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change, as reported to the `on_state_change` callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The breaker's key (its `Debug` form) when the layer keeps one breaker per key. For
    /// [`per_host`](super::CircuitBreakerLayer::per_host) it is `scheme://host:port`, never
    /// credentials, path or query.
    pub key: Option<Arc<str>>,
}
