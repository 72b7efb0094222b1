//! Server pushback per host: a `Retry-After` on a 429 or 503 holds every request to the host
//! until it runs out, then a few probes go, then a ramp releases the rest.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use crate::ApiError;
use crate::circuit_breaker::ramp::{RampSequence, splitmix};
use crate::classify::Class;

/// How a host's pushback is released after the server's wait ran out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PushbackConfig {
    /// Requests sent at once when a hold ends, before one of them comes back.
    pub(crate) probes: u32,
    /// How long the ramp from a tenth of the traffic to all of it takes after a probe succeeds.
    pub(crate) ramp: Duration,
    /// How often a request that waits for the release asks again.
    pub(crate) poll: Duration,
}

impl Default for PushbackConfig {
    fn default() -> Self {
        PushbackConfig {
            probes: 3,
            ramp: Duration::from_secs(2),
            poll: Duration::from_millis(50),
        }
    }
}

/// Where one host's pushback stands.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Every request waits until `until`; `status` is what the server said (429 or 503).
    Held { until: Instant, status: StatusCode },
    /// The hold ran out: `in_flight` probes are out, the rest wait for one to come back.
    Probing { in_flight: u32, status: StatusCode },
    /// A probe came back well: a growing share goes, the rest wait a little.
    Ramp { start: Instant },
}

/// One host's pushback. The common path (no pushback) is one relaxed atomic load.
pub(crate) struct Pushback {
    active: AtomicBool,
    phase: Mutex<Option<Phase>>,
    config: PushbackConfig,
    jitter: AtomicU64,
    /// Picks the requests a ramp lets go, as the breaker's ramp does.
    ramp: RampSequence,
}

impl fmt::Debug for Pushback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pushback")
            .field("phase", &*self.lock())
            .finish_non_exhaustive()
    }
}

/// What the pushback says about one attempt.
pub(crate) enum Verdict {
    /// Go; `probe` says it is one of the probes after a hold.
    Go { probe: bool },
    /// Wait this long, then ask again.
    Wait(Duration),
    /// Fail now, with this error.
    Refuse(ApiError),
}

impl Pushback {
    pub(crate) fn new(config: PushbackConfig, seed: u64) -> Self {
        Pushback {
            active: AtomicBool::new(false),
            phase: Mutex::new(None),
            config,
            jitter: AtomicU64::new(seed),
            ramp: RampSequence::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Phase>> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Relaxed)
    }

    /// How long requests are still held, if they are.
    pub(crate) fn remaining(&self) -> Option<Duration> {
        match *self.lock() {
            Some(Phase::Held { until, .. }) => {
                Some(until.saturating_duration_since(Instant::now()))
            }
            _ => None,
        }
    }

    /// A short, jittered wait for a request waiting on the release (between 0.5 and 1.5 times
    /// the poll interval), so waiting requests do not ask again in lockstep.
    fn poll(&self) -> Duration {
        let r = splitmix(
            self.jitter
                .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed),
        );
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64;
        self.config.poll.mul_f64(0.5 + fraction)
    }

    /// Whether an attempt may go now. `remaining` is the time the request may still wait and
    /// `max_wait` the longest server wait it accepts.
    pub(crate) fn admit(&self, remaining: Option<Duration>, max_wait: Duration) -> Verdict {
        if !self.is_active() {
            return Verdict::Go { probe: false };
        }
        let now = Instant::now();
        let fits = |wait: Duration| wait <= max_wait && remaining.is_none_or(|r| wait < r);
        let mut phase = self.lock();
        loop {
            match *phase {
                None => return Verdict::Go { probe: false },
                Some(Phase::Held { until, status }) => {
                    if now < until {
                        let wait = until - now;
                        return if fits(wait) {
                            Verdict::Wait(wait)
                        } else {
                            Verdict::Refuse(refusal(status, wait))
                        };
                    }
                    *phase = Some(Phase::Probing {
                        in_flight: 0,
                        status,
                    });
                }
                Some(Phase::Probing { in_flight, status }) => {
                    if in_flight < self.config.probes {
                        *phase = Some(Phase::Probing {
                            in_flight: in_flight + 1,
                            status,
                        });
                        return Verdict::Go { probe: true };
                    }
                    let wait = self.poll();
                    return if fits(wait) {
                        Verdict::Wait(wait)
                    } else {
                        Verdict::Refuse(refusal(status, Duration::from_secs(1)))
                    };
                }
                Some(Phase::Ramp { start }) => {
                    let elapsed = now.saturating_duration_since(start);
                    if elapsed >= self.config.ramp {
                        *phase = None;
                        self.active.store(false, Ordering::Relaxed);
                        return Verdict::Go { probe: false };
                    }
                    let share = 0.1 + 0.9 * elapsed.as_secs_f64() / self.config.ramp.as_secs_f64();
                    if self.ramp.draw(share) {
                        return Verdict::Go { probe: false };
                    }
                    let wait = self.poll();
                    return if fits(wait) {
                        Verdict::Wait(wait)
                    } else {
                        Verdict::Go { probe: false }
                    };
                }
            }
        }
    }

    /// The outcome of an attempt to the host: a `Retry-After` starts (or extends) a hold; a
    /// probe that came back without one starts the ramp.
    pub(crate) fn record(
        &self,
        probe: bool,
        class: Class,
        status: Option<StatusCode>,
        retry_after: Option<Duration>,
    ) {
        if let (Some(wait), Some(status)) = (retry_after, status) {
            let until = crate::retry::future::after(wait);
            let mut phase = self.lock();
            let until = match *phase {
                Some(Phase::Held { until: current, .. }) => current.max(until),
                _ => until,
            };
            *phase = Some(Phase::Held { until, status });
            self.active.store(true, Ordering::Relaxed);
            return;
        }
        if !probe {
            return;
        }
        let mut phase = self.lock();
        if let Some(Phase::Probing { in_flight, status }) = *phase {
            if class == Class::RateLimited {
                // Pushed back again without a wait: keep probing.
                *phase = Some(Phase::Probing {
                    in_flight: in_flight.saturating_sub(1),
                    status,
                });
            } else {
                *phase = Some(Phase::Ramp {
                    start: Instant::now(),
                });
            }
        }
    }

    /// A probe that was cancelled gives its place back.
    pub(crate) fn cancel_probe(&self) {
        let mut phase = self.lock();
        if let Some(Phase::Probing { in_flight, status }) = *phase {
            *phase = Some(Phase::Probing {
                in_flight: in_flight.saturating_sub(1),
                status,
            });
        }
    }
}

/// The error of a request that cannot wait for the host's pushback: the server's code and
/// status, the time left as its `retry_after`, a local origin.
fn refusal(status: StatusCode, wait: Duration) -> ApiError {
    let err = if status == StatusCode::TOO_MANY_REQUESTS {
        ApiError::rate_limit_exceeded("the upstream asked this client to wait")
    } else {
        ApiError::service_unavailable("the upstream asked this client to wait")
    };
    err.with_status(status)
        .with_retry_after(wait)
        .with_class(Class::Rejected)
}
