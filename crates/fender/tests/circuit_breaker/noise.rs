//! The trip under noise: a model of steady traffic on a paused clock, each call failing
//! independently, against a real outage.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use fender::BoxError;
use fender::circuit_breaker::{CircuitBreakerHandle, CircuitBreakerLayer, State};
use http::{Request, Response};
use tokio::sync::oneshot;
use tokio::time::{Instant, advance};
use tower::{Layer, Service, ServiceExt};

use crate::support::{Rng, send, status};

/// An upstream whose every call waits until the model answers it.
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

/// One phase of the model: `length` of calls failing independently with probability `p`.
#[derive(Debug, Clone, Copy)]
struct Phase {
    p: f64,
    length: Duration,
}

/// What one run of the model saw.
#[derive(Debug)]
struct Run {
    /// When the circuit first left `Closed`, from the start of the run.
    opened_at: Option<Duration>,
    /// The longest run of failures that counted as separate evidence: each sent after the
    /// previous counted failure completed, with no success completing in between.
    longest_run: u32,
}

/// A call of the model, sent and not yet answered.
struct InFlight {
    due: Instant,
    code: u16,
    response: Pin<Box<dyn Future<Output = Result<Response<()>, BoxError>> + Send>>,
    answer: oneshot::Sender<u16>,
    /// How many failures had counted as evidence when it was sent.
    evidence: u64,
}

const EVERY: Duration = Duration::from_millis(4); // 250 calls/s
const LATENCY: Duration = Duration::from_millis(20);

/// Drives the default breaker through `phases` with calls at 250/s, each taking 20 ms.
async fn model(seed: u64, phases: &[Phase]) -> Run {
    let layer = CircuitBreakerLayer::new();
    let handle: CircuitBreakerHandle = layer.handle();
    let gate = Gate::default();
    let mut svc = layer.layer(gate.clone());
    let mut rng = Rng(seed);
    let start = Instant::now();
    let mut in_flight: VecDeque<InFlight> = VecDeque::new();
    let (mut evidence, mut run, mut longest_run) = (0u64, 0u32, 0u32);
    for phase in phases {
        let phase_end = Instant::now() + phase.length;
        while Instant::now() < phase_end {
            let now = Instant::now();
            while in_flight.front().is_some_and(|call| call.due <= now) {
                let call = in_flight.pop_front().unwrap();
                call.answer.send(call.code).unwrap();
                assert_eq!(call.response.await.unwrap().status(), call.code);
                if call.code >= 500 {
                    if call.evidence == evidence {
                        evidence += 1;
                        run += 1;
                        longest_run = longest_run.max(run);
                    }
                } else {
                    run = 0;
                }
                if handle.state() != State::Closed {
                    return Run {
                        opened_at: Some(now - start),
                        longest_run,
                    };
                }
            }
            let code = if rng.unit() < phase.p { 503 } else { 200 };
            svc.ready().await.unwrap();
            let response = Box::pin(svc.call(Request::new(())));
            let answer = gate
                .waiting
                .lock()
                .unwrap()
                .pop()
                .expect("a closed circuit admits");
            in_flight.push_back(InFlight {
                due: now + LATENCY,
                code,
                response,
                answer,
                evidence,
            });
            advance(EVERY).await;
        }
    }
    Run {
        opened_at: None,
        longest_run,
    }
}

fn flaky(p: f64, secs: u64) -> Phase {
    Phase {
        p,
        length: Duration::from_secs(secs),
    }
}

#[tokio::test(start_paused = true)]
async fn ten_percent_independent_failures_at_250_per_second_never_open_it() {
    let mut longest = 0;
    for seed in 0..100 {
        let run = model(seed, &[flaky(0.10, 60)]).await;
        assert_eq!(run.opened_at, None, "seed {seed}: {run:?}");
        longest = longest.max(run.longest_run);
    }
    // At p = 0.1 and 250 calls/s the breaker asks for 7 pieces of evidence in a row.
    println!("the longest chance run in 100 seeds: {longest} of the 7 required");
    assert!(longest <= 4, "the longest chance run was {longest}");
}

#[tokio::test(start_paused = true)]
async fn a_real_outage_after_a_minute_of_noise_opens_it_within_a_second() {
    let mut slowest = Duration::ZERO;
    for seed in 0..10 {
        let run = model(seed, &[flaky(0.10, 60), flaky(1.0, 5)]).await;
        let opened = run.opened_at.expect("the outage opens it");
        assert!(
            opened >= Duration::from_secs(60) && opened < Duration::from_secs(61),
            "seed {seed}: opened at {opened:?}"
        );
        slowest = slowest.max(opened - Duration::from_secs(60));
    }
    println!("the slowest of 10 seeds opened {slowest:?} into the outage");
}

#[tokio::test(start_paused = true)]
async fn half_the_calls_failing_at_250_per_second_does_not_open_it_within_a_minute() {
    for seed in 0..10 {
        let run = model(seed, &[flaky(0.5, 60)]).await;
        assert_eq!(run.opened_at, None, "seed {seed}: {run:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn at_one_call_per_second_the_fifth_consecutive_failure_opens_it() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let svc = layer.layer(crate::support::Echo::default());
    for _ in 0..60 {
        send(&svc, crate::support::ok()).await.unwrap();
        advance(Duration::from_secs(1)).await;
    }
    for _ in 0..4 {
        send(&svc, crate::support::down()).await.unwrap();
        advance(Duration::from_secs(1)).await;
        assert_eq!(handle.state(), State::Closed);
    }
    send(&svc, crate::support::down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}
