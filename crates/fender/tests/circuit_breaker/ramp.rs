//! The gradual ramp after the circuit closes.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Reason, State};
use tokio::time::advance;
use tower::Layer;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn during_the_ramp_the_admitted_share_follows_the_schedule() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    close_into_ramp(&svc).await;
    assert_eq!(handle.state(), State::Recovering);

    let mut elapsed = Duration::ZERO;
    for at in [0u64, 2_500, 5_000, 7_500, 9_000] {
        advance(Duration::from_millis(at) - elapsed).await;
        elapsed = Duration::from_millis(at);
        let before = echo.calls();
        let mut ramp_refusals = 0;
        for _ in 0..2_000 {
            if let Err(err) = send(&svc, ok()).await {
                assert_eq!(open_of(&err).reason(), Reason::Ramp);
                ramp_refusals += 1;
            }
        }
        let admitted = (echo.calls() - before) as f64 / 2_000.0;
        let expected = 0.1 + 0.9 * at as f64 / 10_000.0;
        assert!(
            (admitted - expected).abs() < 0.02,
            "at {at} ms: admitted {admitted}, expected {expected}"
        );
        assert_eq!(ramp_refusals + (echo.calls() - before), 2_000);
    }
    advance(Duration::from_secs(1)).await;
    let before = echo.calls();
    for _ in 0..500 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(echo.calls() - before, 500);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn failures_during_the_ramp_count() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    close_into_ramp(&svc).await;
    let before = echo.calls();
    // Refused calls are not outcomes: only the five admitted failures count.
    while handle.state() == State::Recovering {
        let _ = send(&svc, down()).await;
    }
    assert_eq!(echo.calls() - before, 5);
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn without_a_ramp_everything_goes_through_once_closed() {
    let layer = CircuitBreakerLayer::new().no_ramp();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    close_into_ramp(&svc).await;
    let before = echo.calls();
    for _ in 0..1_000 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(echo.calls() - before, 1_000);
}
