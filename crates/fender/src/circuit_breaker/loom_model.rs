//! loom models of the state word and the probe slots: every interleaving of a few threads
//! admitting, recording and cancelling calls across closed → open → half-open, including a
//! panicking callback. Run with
//! `RUSTFLAGS="--cfg loom" cargo test -p fender --release --lib loom`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::time::Duration;

use loom::thread;

use super::breaker::Breaker;
use super::policy::{Config, Trip};
use super::state::State;
use super::sync::model_clock;

const OPEN: Duration = Duration::from_millis(10);

fn breaker(probes: u32, close_after: u32, threshold: u64) -> Breaker {
    breaker_with(Config {
        trip: Trip::Consecutive(threshold),
        chance_runs: false,
        open_duration: OPEN,
        probes,
        close_after,
        ramp_on: false,
        seed: Some(7),
        ..Config::default()
    })
}

fn breaker_with(config: Config) -> Breaker {
    Breaker::new(Arc::new(config), None)
}

/// Trips a fresh breaker of threshold 1 and lets its open duration pass.
fn open_and_wait(b: &Breaker) {
    b.acquire().expect("closed").record(true);
    assert_eq!(b.machine().state(), State::Open);
    model_clock::advance(OPEN);
}

/// Checks `f` under every interleaving loom finds (up to three preemptions), and prints how
/// many it ran.
fn model(name: &str, f: impl Fn() + Sync + Send + 'static) {
    let runs = Arc::new(AtomicUsize::new(0));
    let counted = runs.clone();
    let mut builder = loom::model::Builder::new();
    builder.preemption_bound = Some(3);
    builder.check(move || {
        counted.fetch_add(1, SeqCst);
        f();
    });
    println!("{name}: {} interleavings", runs.load(SeqCst));
}

/// Counts probes in flight as the threads see them (a plain atomic: loom switches threads only
/// at its own atomics, so this observes the model's order without adding interleavings).
#[derive(Default)]
struct InFlight {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl InFlight {
    fn enter(&self) {
        let now = self.now.fetch_add(1, SeqCst) + 1;
        self.most.fetch_max(now, SeqCst);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

#[test]
fn loom_probe_slots_never_exceed_the_limit_with_outcomes_and_cancellations() {
    model(
        "loom_probe_slots_never_exceed_the_limit_with_outcomes_and_cancellations",
        || {
            let b = breaker(1, 2, 1);
            open_and_wait(&b);
            let seen = Arc::new(InFlight::default());
            let threads: Vec<_> = (0..2)
                .map(|i| {
                    let (b, seen) = (b.clone(), seen.clone());
                    thread::spawn(move || {
                        let Ok(permit) = b.acquire() else { return };
                        seen.enter();
                        seen.leave();
                        if i == 0 {
                            permit.record(false);
                        } else {
                            drop(permit); // cancelled
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            assert!(seen.most.load(SeqCst) <= 1);
            // No slot leaked: the next probe is admitted, whatever happened before.
            let state = b.machine().state();
            assert!(matches!(state, State::HalfOpen), "{state:?}");
            b.acquire().expect("a free probe slot").record(false);
        },
    );
}

#[test]
fn loom_concurrent_probe_outcomes_make_exactly_one_transition() {
    model(
        "loom_concurrent_probe_outcomes_make_exactly_one_transition",
        || {
            let b = breaker(2, 1, 1);
            open_and_wait(&b);
            let good = b.acquire().expect("first probe");
            let bad = b.acquire().expect("second probe");
            let before = b.machine().counters().transitions;
            let t = thread::spawn(move || good.record(false));
            bad.record(true);
            t.join().unwrap();
            let state = b.machine().state();
            assert!(matches!(state, State::Closed | State::Open), "{state:?}");
            assert_eq!(b.machine().counters().transitions, before + 1);
            if state == State::Closed {
                b.acquire().expect("closed").record(false);
            }
        },
    );
}

#[test]
fn loom_concurrent_failed_probes_reopen_it_once() {
    model("loom_concurrent_failed_probes_reopen_it_once", || {
        // Two failed probes re-open a round that two successes would close.
        let b = breaker(2, 2, 1);
        open_and_wait(&b);
        let first = b.acquire().expect("first probe");
        let second = b.acquire().expect("second probe");
        let before = b.machine().counters().transitions;
        let t = thread::spawn(move || first.record(true));
        second.record(true);
        t.join().unwrap();
        assert_eq!(b.machine().state(), State::Open);
        assert_eq!(b.machine().counters().transitions, before + 1);
    });
}

#[test]
fn loom_a_failed_probe_that_decides_nothing_frees_its_slot() {
    model(
        "loom_a_failed_probe_that_decides_nothing_frees_its_slot",
        || {
            let b = breaker(2, 2, 1);
            open_and_wait(&b);
            let good = b.acquire().expect("first probe");
            let bad = b.acquire().expect("second probe");
            let t = thread::spawn(move || good.record(false));
            bad.record(true);
            t.join().unwrap();
            // One success and one failure of two each: the round goes on, both slots free.
            assert_eq!(b.machine().state(), State::HalfOpen);
            let next = b.acquire().expect("a freed slot");
            let other = b.acquire().expect("the other freed slot");
            next.record(false);
            assert_eq!(b.machine().state(), State::Closed);
            drop(other);
        },
    );
}

#[test]
fn loom_concurrent_failures_trip_a_closed_circuit_once() {
    model(
        "loom_concurrent_failures_trip_a_closed_circuit_once",
        || {
            let b = breaker(1, 1, 2);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || {
                        if let Ok(p) = b.acquire() {
                            p.record(true);
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap();
            }
            let counters = b.machine().counters();
            match b.machine().state() {
                // Sent one after the other: two pieces of evidence.
                State::Open => assert_eq!(counters.transitions, 1),
                // In flight together: one piece; the next failure is the second.
                State::Closed => {
                    assert_eq!(counters.transitions, 0);
                    b.acquire().expect("closed").record(true);
                    assert_eq!(b.machine().state(), State::Open);
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(counters.failures, 2);
        },
    );
}

#[test]
fn loom_a_panicking_callback_on_the_way_to_half_open_leaks_no_slot() {
    model(
        "loom_a_panicking_callback_on_the_way_to_half_open_leaks_no_slot",
        || {
            let b = breaker_with(Config {
                trip: Trip::Consecutive(1),
                chance_runs: false,
                open_duration: OPEN,
                probes: 1,
                ramp_on: false,
                seed: Some(7),
                on_state_change: Some(Arc::new(|change| {
                    if change.to == State::HalfOpen {
                        panic!("a bug in the callback");
                    }
                })),
                ..Config::default()
            });
            open_and_wait(&b);
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let b = b.clone();
                    thread::spawn(move || b.acquire().map(drop).is_ok())
                })
                .collect();
            let admitted = threads
                .into_iter()
                .map(|t| t.join().unwrap())
                .filter(|&ok| ok)
                .count();
            assert!(admitted >= 1);
            assert_eq!(b.machine().state(), State::HalfOpen);
            b.acquire().expect("no slot leaked").record(false);
        },
    );
}

#[test]
fn loom_a_stale_probe_cannot_free_a_slot_of_a_later_round() {
    model(
        "loom_a_stale_probe_cannot_free_a_slot_of_a_later_round",
        || {
            let b = breaker(1, 1, 1);
            open_and_wait(&b);
            let stale = b.acquire().expect("probe of the first round");
            let t = thread::spawn(move || drop(stale));
            // A new round: reset, trip, wait, probe.
            b.machine().reset();
            open_and_wait(&b);
            let current = b.acquire();
            t.join().unwrap();
            if let Ok(current) = current {
                assert!(
                    b.acquire().is_err(),
                    "two probes in flight with a limit of one"
                );
                drop(current);
            }
            b.acquire().expect("a free probe slot").record(false);
        },
    );
}
