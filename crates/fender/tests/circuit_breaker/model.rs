//! Model-based test: random sequences of calls and clock moves against a simple reference
//! model of the state machine.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Counters, State};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt};

use crate::support::{Echo, Reply, req, send};

const THRESHOLD: u32 = 3;
const OPEN_MS: u64 = 10_000;
const CLOSE_AFTER: u32 = 2;

#[derive(Debug, Clone, Copy)]
enum Op {
    /// A call that completes with this status.
    Call(u16),
    /// A call whose future is dropped before it completes.
    Abandon,
    /// The clock moves on.
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::sample::select(vec![200u16, 404, 429, 500, 503]).prop_map(Op::Call),
        1 => Just(Op::Abandon),
        2 => (1u64..=12_000).prop_map(Op::Advance),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Model {
    Closed { failures: u32 },
    Open { until: u64 },
    HalfOpen { successes: u32 },
}

#[derive(Debug, Default)]
struct Reference {
    now: u64,
    counters: Counters,
}

impl Reference {
    /// Applies an admitted-or-refused call; returns whether it was admitted.
    fn call(&mut self, m: &mut Model, outcome: Option<bool>) -> bool {
        if let Model::Open { until } = *m {
            if self.now < until {
                self.counters.rejections += 1;
                return false;
            }
            *m = Model::HalfOpen { successes: 0 };
            self.counters.transitions += 1;
        }
        let Some(failure) = outcome else {
            return true; // abandoned: no outcome, and a probe's slot is given back
        };
        if failure {
            self.counters.failures += 1;
        } else {
            self.counters.successes += 1;
        }
        match *m {
            Model::Closed { failures } if failure => {
                if failures + 1 >= THRESHOLD {
                    *m = Model::Open {
                        until: self.now + OPEN_MS,
                    };
                    self.counters.transitions += 1;
                } else {
                    *m = Model::Closed {
                        failures: failures + 1,
                    };
                }
            }
            Model::Closed { .. } => *m = Model::Closed { failures: 0 },
            Model::HalfOpen { .. } if failure => {
                *m = Model::Open {
                    until: self.now + OPEN_MS,
                };
                self.counters.transitions += 1;
            }
            Model::HalfOpen { successes } => {
                if successes + 1 >= CLOSE_AFTER {
                    *m = Model::Closed { failures: 0 };
                    self.counters.transitions += 1;
                } else {
                    *m = Model::HalfOpen {
                        successes: successes + 1,
                    };
                }
            }
            Model::Open { .. } => unreachable!(),
        }
        true
    }
}

fn state_of(m: Model) -> State {
    match m {
        Model::Closed { .. } => State::Closed,
        Model::Open { .. } => State::Open,
        Model::HalfOpen { .. } => State::HalfOpen,
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let layer = CircuitBreakerLayer::new()
            .consecutive_failures(THRESHOLD)
            .open_duration(Duration::from_millis(OPEN_MS))
            .half_open_probes(1)
            .close_after(CLOSE_AFTER)
            .no_ramp();
        let handle = layer.handle();
        let echo = Echo::default();
        let svc = layer.layer(echo.clone());
        let mut model = Model::Closed { failures: 0 };
        let mut reference = Reference::default();
        for (i, op) in ops.into_iter().enumerate() {
            match op {
                Op::Advance(ms) => {
                    tokio::time::advance(Duration::from_millis(ms)).await;
                    reference.now += ms;
                }
                Op::Call(s) => {
                    let failure = s >= 500;
                    let expected = reference.call(&mut model, Some(failure));
                    let got = send(&svc, Reply::Status(s)).await;
                    prop_assert_eq!(got.is_ok(), expected, "op {} {:?}", i, op);
                }
                Op::Abandon => {
                    let expected = reference.call(&mut model, None);
                    let before = echo.calls();
                    let mut one = svc.clone();
                    one.ready().await.unwrap();
                    drop(one.call(req(Reply::Hang)));
                    prop_assert_eq!(echo.calls() - before == 1, expected, "op {} {:?}", i, op);
                }
            }
            prop_assert_eq!(handle.state(), state_of(model), "op {} {:?}", i, op);
            prop_assert_eq!(handle.counters(), reference.counters, "op {} {:?}", i, op);
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_breaker_follows_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
