//! When is a run of failures evidence of an outage, and when is it chance?
//!
//! A run of `n` failures in a row is likely by chance when calls fail often anyway: at a 10%
//! failure rate and 250 calls a second, five in a row happen about twice a minute. The breaker
//! therefore asks for a longer run the more failures it saw just before the run began: the
//! run must be at least the configured length (5), and long enough that the expected number of
//! runs that long in the next [`HORIZON_MS`] by chance, `r·H·p^n`, is below [`ALPHA`], where
//! `p` and `r` are the failure and call rates observed over the ~10 s before the run.
//!
//! The rates come from the breaker's own outcome counters, which every call already bumps:
//! [`RecentRate`] keeps a snapshot of them per 2.5 s tick, taken by the first failure of each
//! tick, so the closed path pays nothing for it and a quiet breaker keeps no history (no
//! failures before a run mean `p = 0`, and the configured length). A small prior of
//! [`PRIOR_CALLS`] successes keeps a handful of calls from making `p` look large.

use super::counters::Totals;
use super::sync::{AtomicU64, Ordering::*, fence};

/// The horizon of the chance-run test: one minute.
pub(crate) const HORIZON_MS: f64 = 60_000.0;
/// The expected number of chance runs per horizon the test accepts: 1%.
pub(crate) const ALPHA: f64 = 0.01;
/// Successes assumed before any are seen, so that a few calls cannot make `p` large.
pub(crate) const PRIOR_CALLS: f64 = 20.0;
/// The longest run the test ever asks for.
pub(crate) const MAX_RUN: u64 = u16::MAX as u64;

/// Rates are taken over at least a second: a burst of a few calls is not a rate.
const MIN_SPAN_MS: u64 = 1_000;

const TICK_MS: u64 = 2_500;
const SLOTS: usize = 4;

const BUSY: u64 = 1;
const VALID: u64 = 2;

/// The outcome totals at one moment of one tick.
#[derive(Debug)]
struct Snapshot {
    /// `[milliseconds: 62 bits][valid][busy]`, 0 when empty.
    stamp: AtomicU64,
    calls: AtomicU64,
    failures: AtomicU64,
}

/// Snapshots of the outcome totals, one per tick over the last ~10 s; see the module docs.
///
/// A snapshot is written by the one thread that claims its slot (a compare-and-swap on the
/// stamp) and read like a sequence lock: a reader that sees the stamp change under it skips the
/// snapshot. Nothing waits.
#[derive(Debug)]
pub(crate) struct RecentRate {
    slots: [Snapshot; SLOTS],
}

/// The rates seen before a run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Seen {
    pub(crate) calls: u64,
    pub(crate) failures: u64,
    pub(crate) span_ms: u64,
}

impl RecentRate {
    pub(crate) fn new() -> Self {
        RecentRate {
            slots: std::array::from_fn(|_| Snapshot {
                stamp: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            }),
        }
    }

    /// Records the totals at `now_ms` if this tick has no snapshot yet (called on failures).
    pub(crate) fn note(&self, now_ms: u64, totals: Totals) {
        let tick = now_ms / TICK_MS;
        let slot = &self.slots[(tick % SLOTS as u64) as usize];
        let stamp = slot.stamp.load(Acquire);
        if stamp & VALID != 0 && (stamp >> 2) / TICK_MS == tick || stamp & BUSY != 0 {
            return;
        }
        if slot
            .stamp
            .compare_exchange(stamp, BUSY, Acquire, Relaxed)
            .is_err()
        {
            return;
        }
        fence(Release);
        slot.calls.store(totals.calls(), Relaxed);
        slot.failures.store(totals.failures, Relaxed);
        slot.stamp.store((now_ms << 2) | VALID, Release);
    }

    /// The calls and failures since the oldest snapshot of the last ~10 s, up to `totals`
    /// (which should not include the failure that started the run), or `None` if there is none.
    pub(crate) fn seen(&self, now_ms: u64, totals: Totals) -> Option<Seen> {
        let oldest_tick = (now_ms / TICK_MS).saturating_sub(SLOTS as u64 - 1);
        let mut best: Option<(u64, u64, u64)> = None;
        for slot in &self.slots {
            let before = slot.stamp.load(Acquire);
            if before & VALID == 0 {
                continue;
            }
            let (calls, failures) = (slot.calls.load(Relaxed), slot.failures.load(Relaxed));
            fence(Acquire);
            if slot.stamp.load(Relaxed) != before {
                continue;
            }
            let ms = before >> 2;
            if ms / TICK_MS < oldest_tick || ms > now_ms {
                continue;
            }
            if best.is_none_or(|(b, ..)| ms < b) {
                best = Some((ms, calls, failures));
            }
        }
        best.map(|(ms, calls, failures)| Seen {
            calls: totals.calls().saturating_sub(calls),
            failures: totals.failures.saturating_sub(failures),
            span_ms: now_ms - ms,
        })
    }

    /// Replaces the history with one snapshot: `calls` and `failures` as the totals at `ms`,
    /// which must lie within the last ~10 s. A close uses it to start from the rate the tripping
    /// run saw before it began.
    pub(crate) fn restore(&self, ms: u64, calls: u64, failures: u64) {
        let slot = &self.slots[((ms / TICK_MS) % SLOTS as u64) as usize];
        slot.stamp.store(BUSY, Relaxed);
        fence(Release);
        slot.calls.store(calls, Relaxed);
        slot.failures.store(failures, Relaxed);
        slot.stamp.store((ms << 2) | VALID, Release);
    }

    /// Forgets every snapshot (when the circuit opens, closes or is reset).
    pub(crate) fn clear(&self) {
        for slot in &self.slots {
            slot.stamp.store(0, Release);
        }
    }
}

/// The run of failures that opens the circuit, given the configured minimum and what was seen
/// before the run; see the module docs.
pub(crate) fn required_run(min: u64, seen: Option<Seen>) -> u64 {
    let Some(seen) = seen else { return min };
    let p = seen.failures as f64 / (seen.calls as f64 + PRIOR_CALLS);
    if p <= 0.0 {
        return min;
    }
    if p >= 1.0 {
        return MAX_RUN;
    }
    // Expected runs by chance over the horizon = chances · p^n, with one chance per call.
    let chances = seen.calls as f64 * HORIZON_MS / seen.span_ms.max(MIN_SPAN_MS) as f64;
    if chances <= ALPHA {
        return min;
    }
    let n = ((ALPHA / chances).ln() / p.ln()).floor() as u64 + 1;
    n.clamp(min, MAX_RUN)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn seen(p: f64, per_sec: u64, secs: u64) -> Option<Seen> {
        let calls = per_sec * secs;
        Some(Seen {
            calls,
            failures: (calls as f64 * p) as u64,
            span_ms: secs * 1_000,
        })
    }

    #[test]
    fn no_failures_before_the_run_ask_for_the_configured_length() {
        assert_eq!(required_run(5, None), 5);
        assert_eq!(required_run(5, seen(0.0, 250, 10)), 5);
        // One call a second with 10% failures: a run of 5 happens by chance once a day.
        assert_eq!(required_run(5, seen(0.1, 1, 10)), 5);
    }

    #[test]
    fn noise_at_high_traffic_asks_for_a_longer_run() {
        // 250 calls/s, 10%: 15,000 chances a minute, 0.1^7 · 15,000 = 0.0015 < 1%.
        assert_eq!(required_run(5, seen(0.1, 250, 10)), 7);
        // 250 calls/s, 50%: 2^-21 · 15,000 = 0.007.
        assert_eq!(required_run(5, seen(0.5, 250, 10)), 21);
        // A sick upstream (90% failures) is not cut off by a run of 5.
        assert!(required_run(5, seen(0.9, 250, 10)) > 100);
        assert!(required_run(5, seen(1.0, 250, 10)) > 1_000);
    }

    #[test]
    fn a_handful_of_calls_does_not_make_the_failure_rate_look_large() {
        let few = Some(Seen {
            calls: 3,
            failures: 2,
            span_ms: 12,
        });
        assert_eq!(required_run(5, few), 5);
    }

    #[test]
    fn snapshots_cover_the_last_ten_seconds_and_clear() {
        let rate = RecentRate::new();
        let totals = |calls: u64, failures: u64| Totals {
            successes: calls - failures,
            failures,
            rejections: 0,
        };
        assert_eq!(rate.seen(1_000, totals(10, 1)), None);
        rate.note(1_000, totals(10, 1));
        rate.note(1_200, totals(12, 2)); // same tick: kept as it was
        rate.note(3_000, totals(500, 40));
        let got = rate.seen(9_000, totals(2_000, 200)).unwrap();
        assert_eq!(
            got,
            Seen {
                calls: 1_990,
                failures: 199,
                span_ms: 8_000
            }
        );
        // 12 s later the tick of t = 1 s has left the window.
        let got = rate.seen(11_000, totals(2_500, 250)).unwrap();
        assert_eq!(got.span_ms, 8_000);
        rate.clear();
        assert_eq!(rate.seen(11_000, totals(2_500, 250)), None);
    }
}
