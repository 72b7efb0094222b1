//! Model-based test: random sequences of calls and clock moves against a simple reference
//! model of the state machine.
//!
//! The breakers here use `strict_consecutive()`: the reference opens on exactly the
//! `THRESHOLD`-th failure in a row, without the longer runs the default asks for under noise
//! (that rule has its own tests in `noise`). The overlapping model follows the grouping of
//! failures of calls in flight together: a failure counts only if no other failure counted
//! since its call began.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Counters, State};
use proptest::prelude::*;
use tower::{Layer, Service, ServiceExt};

use crate::support::{Echo, Reply, req, send};

const THRESHOLD: u32 = 3;
const OPEN_MS: u64 = 10_000;
const CLOSE_AFTER: u32 = 2;
/// Failed probes in a row that re-open a half-open circuit: the default, as many as close it.
const REOPEN_AFTER: u32 = CLOSE_AFTER;

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
    HalfOpen { successes: u32, failures: u32 },
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
            *m = Model::HalfOpen {
                successes: 0,
                failures: 0,
            };
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
            Model::HalfOpen {
                successes,
                failures,
            } if failure => {
                if failures + 1 >= REOPEN_AFTER {
                    *m = Model::Open {
                        until: self.now + OPEN_MS,
                    };
                    self.counters.transitions += 1;
                } else {
                    *m = Model::HalfOpen {
                        successes,
                        failures: failures + 1,
                    };
                }
            }
            Model::HalfOpen { successes, .. } => {
                if successes + 1 >= CLOSE_AFTER {
                    *m = Model::Closed { failures: 0 };
                    self.counters.transitions += 1;
                } else {
                    *m = Model::HalfOpen {
                        successes: successes + 1,
                        failures: 0,
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
            .strict_consecutive()
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
    #![proptest_config(ProptestConfig {
        cases: 256,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_breaker_follows_the_reference_model(ops in prop::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}

/// Calls that overlap: each is started, then finished with a status or dropped, in any order.
mod overlapping {
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::{Arc, Mutex};
    use std::task::{Context, Poll};
    use std::time::Duration;

    use fender::BoxError;
    use fender::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, Counters, State};
    use http::{Request, Response};
    use proptest::prelude::*;
    use tokio::sync::oneshot;
    use tower::{Layer, Service, ServiceExt};

    use crate::support::status;

    const THRESHOLD: u32 = 3;
    const OPEN_MS: u64 = 10_000;
    const PROBES: u32 = 2;
    const CLOSE_AFTER: u32 = 2;
    const REOPEN_AFTER: u32 = CLOSE_AFTER;

    /// An upstream whose every call waits until the test sends it a status.
    #[derive(Clone, Default)]
    struct Gate {
        waiting: Arc<Mutex<Vec<oneshot::Sender<u16>>>>,
    }

    impl Service<Request<()>> for Gate {
        type Response = Response<()>;
        type Error = BoxError;
        type Future = Pin<Box<dyn Future<Output = Result<Response<()>, BoxError>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: Request<()>) -> Self::Future {
            let (tx, rx) = oneshot::channel();
            self.waiting.lock().unwrap().push(tx);
            Box::pin(async move { Ok(status(rx.await?)) })
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Op {
        Begin,
        Finish(usize, u16),
        Drop(usize),
        Advance(u64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => Just(Op::Begin),
            3 => (any::<usize>(), prop::sample::select(vec![200u16, 404, 503]))
                .prop_map(|(i, s)| Op::Finish(i, s)),
            1 => any::<usize>().prop_map(Op::Drop),
            // Mostly long enough to reach the next probe, so that old calls outlive transitions.
            2 => prop_oneof![1 => 1u64..=9_999, 3 => 10_000u64..=12_000].prop_map(Op::Advance),
        ]
    }

    #[derive(Debug, Clone, Copy, PartialEq)]
    enum Model {
        Closed {
            failures: u32,
        },
        Open {
            until: u64,
        },
        HalfOpen {
            in_flight: u32,
            successes: u32,
            failures: u32,
        },
    }

    #[derive(Debug, Clone, Copy)]
    struct Ticket {
        probe: bool,
        epoch: u64,
        /// Failures counted as evidence when the call began.
        evidence: u64,
    }

    #[derive(Debug)]
    struct Reference {
        state: Model,
        epoch: u64,
        evidence: u64,
        now: u64,
        counters: Counters,
    }

    impl Reference {
        fn to(&mut self, state: Model) {
            self.state = state;
            self.epoch += 1;
            self.counters.transitions += 1;
        }

        fn begin(&mut self) -> Option<Ticket> {
            if let Model::Open { until } = self.state {
                if self.now < until {
                    self.counters.rejections += 1;
                    return None;
                }
                self.to(Model::HalfOpen {
                    in_flight: 0,
                    successes: 0,
                    failures: 0,
                });
            }
            match &mut self.state {
                Model::Closed { .. } => Some(Ticket {
                    probe: false,
                    epoch: self.epoch,
                    evidence: self.evidence,
                }),
                Model::HalfOpen { in_flight, .. } if *in_flight < PROBES => {
                    *in_flight += 1;
                    Some(Ticket {
                        probe: true,
                        epoch: self.epoch,
                        evidence: self.evidence,
                    })
                }
                _ => {
                    self.counters.rejections += 1;
                    None
                }
            }
        }

        fn finish(&mut self, t: Ticket, failure: bool) {
            if failure {
                self.counters.failures += 1;
            } else {
                self.counters.successes += 1;
            }
            if t.epoch != self.epoch {
                return;
            }
            let open = Model::Open {
                until: self.now + OPEN_MS,
            };
            match self.state {
                Model::Closed { failures } if !t.probe => {
                    if !failure {
                        self.state = Model::Closed { failures: 0 };
                    } else if t.evidence != self.evidence {
                        // In flight with a failure that counted since it began: no new evidence.
                    } else if failures + 1 >= THRESHOLD {
                        self.evidence += 1;
                        self.to(open);
                    } else {
                        self.evidence += 1;
                        self.state = Model::Closed {
                            failures: failures + 1,
                        };
                    }
                }
                Model::HalfOpen {
                    in_flight,
                    successes,
                    failures,
                } if t.probe => {
                    if failure && failures + 1 >= REOPEN_AFTER {
                        self.to(open);
                    } else if failure {
                        self.state = Model::HalfOpen {
                            in_flight: in_flight - 1,
                            successes,
                            failures: failures + 1,
                        };
                    } else if successes + 1 >= CLOSE_AFTER {
                        self.to(Model::Closed { failures: 0 });
                    } else {
                        self.state = Model::HalfOpen {
                            in_flight: in_flight - 1,
                            successes: successes + 1,
                            failures: 0,
                        };
                    }
                }
                _ => {}
            }
        }

        fn drop_call(&mut self, t: Ticket) {
            let current = t.probe && t.epoch == self.epoch;
            if let (Model::HalfOpen { in_flight, .. }, true) = (&mut self.state, current) {
                *in_flight -= 1;
            }
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
                .half_open_probes(PROBES)
                .close_after(CLOSE_AFTER)
                .strict_consecutive()
                .no_ramp();
            let handle = layer.handle();
            let gate = Gate::default();
            let svc = layer.layer(gate.clone());
            let mut reference = Reference {
                state: Model::Closed { failures: 0 },
                epoch: 0,
                evidence: 0,
                now: 0,
                counters: Counters::default(),
            };
            let mut pending = Vec::new();
            for (i, op) in ops.into_iter().enumerate() {
                match op {
                    Op::Advance(ms) => {
                        tokio::time::advance(Duration::from_millis(ms)).await;
                        reference.now += ms;
                    }
                    Op::Begin => {
                        let expected = reference.begin();
                        let mut one = svc.clone();
                        one.ready().await.unwrap();
                        let fut = one.call(Request::new(()));
                        let sender = gate.waiting.lock().unwrap().pop();
                        prop_assert_eq!(sender.is_some(), expected.is_some(), "op {} {:?}", i, op);
                        match (sender, expected) {
                            (Some(tx), Some(ticket)) => pending.push((fut, tx, ticket)),
                            _ => {
                                let err = fut.await.unwrap_err();
                                prop_assert!(err.is::<CircuitOpen>());
                            }
                        }
                    }
                    Op::Finish(n, code) if !pending.is_empty() => {
                        let (fut, tx, ticket) = pending.remove(n % pending.len());
                        reference.finish(ticket, code >= 500);
                        tx.send(code).unwrap();
                        prop_assert_eq!(fut.await.unwrap().status(), code);
                    }
                    Op::Drop(n) if !pending.is_empty() => {
                        let (fut, _tx, ticket) = pending.remove(n % pending.len());
                        reference.drop_call(ticket);
                        drop(fut);
                    }
                    _ => {}
                }
                prop_assert_eq!(
                    handle.state(),
                    state_of(reference.state),
                    "op {} {:?}",
                    i,
                    op
                );
                prop_assert_eq!(handle.counters(), reference.counters, "op {} {:?}", i, op);
            }
            Ok(())
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 512,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn overlapping_calls_follow_the_reference_model(ops in prop::collection::vec(op(), 1..200)) {
            run(ops)?;
        }
    }
}
