//! The fault layer injects its shares, reproducibly for a seed.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fender_testkit::{FaultLayer, InjectedError};
use http::{Request, Response, StatusCode};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt, service_fn};

#[derive(Debug, Default, PartialEq)]
struct Tally {
    passed: usize,
    aborted: usize,
    errors: usize,
    delayed: usize,
    inner_calls: usize,
    outcomes: Vec<char>,
}

/// Sends `n` requests through the layer, one at a time, and counts what happened.
async fn run(layer: FaultLayer, n: usize) -> Tally {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let svc = layer.layer(service_fn(move |_req: Request<String>| {
        counter.fetch_add(1, Ordering::Relaxed);
        async { Ok::<_, Infallible>(Response::new(String::from("fine"))) }
    }));
    let mut tally = Tally::default();
    for _ in 0..n {
        let start = Instant::now();
        let outcome = svc.clone().oneshot(Request::new(String::new())).await;
        let waited = start.elapsed();
        if waited == Duration::from_millis(50) {
            tally.delayed += 1;
        } else {
            assert_eq!(waited, Duration::ZERO);
        }
        match outcome {
            Ok(response) if response.status() == StatusCode::OK => {
                assert_eq!(response.into_body(), "fine");
                tally.passed += 1;
                tally.outcomes.push('p');
            }
            Ok(response) => {
                assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
                assert!(response.into_body().is_empty());
                tally.aborted += 1;
                tally.outcomes.push('a');
            }
            Err(err) => {
                assert!(err.is::<InjectedError>(), "{err}");
                assert_eq!(err.to_string(), "fault injected");
                tally.errors += 1;
                tally.outcomes.push('e');
            }
        }
    }
    tally.inner_calls = calls.load(Ordering::Relaxed);
    tally
}

fn chaos(seed: u64) -> FaultLayer {
    FaultLayer::new(seed)
        .abort(0.10, StatusCode::SERVICE_UNAVAILABLE)
        .error(0.05)
        .delay(0.20, Duration::from_millis(50))
}

#[tokio::test(start_paused = true)]
async fn injects_each_fault_into_its_share_of_requests() {
    let n = 10_000;

    let tally = run(chaos(42), n).await;

    let share = |count: usize| count as f64 / n as f64;
    assert!(
        (share(tally.aborted) - 0.10).abs() < 0.015,
        "{}",
        share(tally.aborted)
    );
    assert!(
        (share(tally.errors) - 0.05).abs() < 0.01,
        "{}",
        share(tally.errors)
    );
    assert!(
        (share(tally.delayed) - 0.20).abs() < 0.02,
        "{}",
        share(tally.delayed)
    );
    assert_eq!(tally.passed + tally.aborted + tally.errors, n);
    // Aborts and errors never reach the inner service.
    assert_eq!(tally.inner_calls, tally.passed);
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_gives_the_same_faults() {
    let a = run(chaos(7), 500).await;
    let b = run(chaos(7), 500).await;
    let c = run(chaos(8), 500).await;

    assert_eq!(a, b);
    assert_ne!(a.outcomes, c.outcomes);
}

#[tokio::test(start_paused = true)]
async fn a_layer_without_faults_passes_everything_through() {
    let tally = run(FaultLayer::new(1), 200).await;

    assert_eq!(tally.passed, 200);
    assert_eq!(tally.delayed, 0);
    assert_eq!(tally.inner_calls, 200);
}

#[tokio::test(start_paused = true)]
async fn delays_hold_the_inner_future_back() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let mut svc = FaultLayer::new(3)
        .delay(1.0, Duration::from_secs(2))
        .layer(service_fn(move |_req: Request<String>| {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok::<_, Infallible>(Response::new(String::new()))
            }
        }));
    let start = Instant::now();

    let response = svc
        .ready()
        .await
        .unwrap()
        .call(Request::new(String::new()))
        .await
        .unwrap();

    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(start.elapsed(), Duration::from_secs(2));
    assert_eq!(calls.load(Ordering::Relaxed), 1);
}

#[test]
#[should_panic(expected = "more than 1.0")]
fn abort_and_error_shares_may_not_exceed_one() {
    let _ = FaultLayer::new(1).abort(0.6, 503).error(0.5);
}

#[test]
#[should_panic(expected = "within 0.0 and 1.0")]
fn shares_are_fractions() {
    let _ = FaultLayer::new(1).delay(1.5, Duration::from_secs(1));
}
