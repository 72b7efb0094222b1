//! Many tasks on several threads at once: the probe limit holds exactly and the counters add up.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, Reason, State};
use http::{Request, Response, StatusCode};
use tokio::sync::{Barrier, Semaphore};
use tower::{Layer, ServiceExt, service_fn};

const TASKS: usize = 1_000;
const TRIPPERS: usize = 100;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_tasks_at_once_admit_exactly_three_probes_and_counters_add_up() {
    // A paused clock needs a single thread, so this test runs on the real clock with a 1 ms
    // open duration; it asserts nothing about time.
    let layer = CircuitBreakerLayer::new()
        .open_duration(Duration::from_millis(1))
        .no_ramp();
    let handle = layer.handle();
    let calls = Arc::new(AtomicUsize::new(0));
    // Requests with body 0 wait for a permit before answering 200; others answer their body.
    let gate = Arc::new(Semaphore::new(0));
    let upstream = {
        let (calls, gate) = (calls.clone(), gate.clone());
        service_fn(move |req: Request<u16>| {
            let (calls, gate) = (calls.clone(), gate.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                let mut code = *req.body();
                if code == 0 {
                    gate.acquire().await.unwrap().forget();
                    code = 200;
                }
                let mut res = Response::new(());
                *res.status_mut() = StatusCode::from_u16(code).unwrap();
                Ok::<_, std::convert::Infallible>(res)
            }
        })
    };
    let svc = layer.layer(upstream);

    // Trip it from 100 tasks, in five waves of 20 at once: the failures of calls in flight
    // together are one piece of evidence, so each wave counts once.
    let (mut failed, mut refused) = (0u64, 0u64);
    for _ in 0..5 {
        let tasks: Vec<_> = (0..TRIPPERS / 5)
            .map(|_| tokio::spawn(svc.clone().oneshot(Request::new(503))))
            .collect();
        for t in tasks {
            match t.await.unwrap() {
                Ok(res) => {
                    assert_eq!(res.status(), 503);
                    failed += 1;
                }
                Err(err) => {
                    assert!(err.is::<CircuitOpen>(), "{err}");
                    refused += 1;
                }
            }
        }
    }
    assert!(failed >= 5);
    // With a 1 ms open duration, late trippers may have probed (and re-opened) it already.
    assert_eq!(handle.state(), State::Open);
    let transitions_before = handle.counters().transitions;

    // Let the open duration pass, then release 1,000 tasks at once.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let calls_before = calls.load(Ordering::SeqCst);
    let barrier = Arc::new(Barrier::new(TASKS));
    let tasks: Vec<_> = (0..TASKS)
        .map(|_| {
            let barrier = barrier.clone();
            // Made outside the task: `oneshot` does nothing until polled.
            let call = svc.clone().oneshot(Request::new(0));
            tokio::spawn(async move {
                barrier.wait().await;
                call.await
            })
        })
        .collect();
    // All but the admitted probes fail fast; wait until they have.
    let settled = async {
        while tasks.iter().filter(|t| t.is_finished()).count() < TASKS - 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(60), settled)
        .await
        .expect("all but the probes fail fast");
    assert_eq!(calls.load(Ordering::SeqCst) - calls_before, 3);
    assert_eq!(handle.state(), State::HalfOpen);

    gate.add_permits(TASKS);
    let mut admitted = 0u64;
    for t in tasks {
        match t.await.unwrap() {
            Ok(res) => {
                assert_eq!(res.status(), 200);
                admitted += 1;
            }
            Err(err) => {
                let open = err.downcast_ref::<CircuitOpen>().expect("only fast-fails");
                assert_eq!(open.reason(), Reason::HalfOpenFull);
                refused += 1;
            }
        }
    }
    assert_eq!(admitted, 3);
    assert_eq!(handle.state(), State::Closed);

    let counters = handle.counters();
    assert_eq!(counters.successes, 3);
    assert_eq!(counters.failures, failed);
    assert_eq!(counters.rejections, refused);
    assert_eq!(
        counters.successes + counters.failures + counters.rejections,
        (TRIPPERS + TASKS) as u64
    );
    // Open -> HalfOpen -> Closed.
    assert_eq!(counters.transitions - transitions_before, 2);
    assert_eq!(calls.load(Ordering::SeqCst) as u64, failed + 3);
}
