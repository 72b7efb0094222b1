//! Probes after the open duration: how many, what closes and re-opens the circuit.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Reason, State};
use tokio::time::advance;
use tower::Layer;

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn at_30s_exactly_it_admits_probes_no_more_than_three_in_flight() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    trip(&svc).await;
    advance(Duration::from_millis(29_999)).await;
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).retry_after(), Duration::from_millis(1));
    advance(Duration::from_millis(1)).await;

    let probes = [
        start(&svc, Reply::Hang).await,
        start(&svc, Reply::Hang).await,
        start(&svc, Reply::Hang).await,
    ];
    assert_eq!(handle.state(), State::HalfOpen);
    for _ in 0..10 {
        let err = send(&svc, ok()).await.unwrap_err();
        assert_eq!(open_of(&err).reason(), Reason::HalfOpenFull);
    }
    assert_eq!(echo.calls(), 5 + 3);
    drop(probes);
}

#[tokio::test(start_paused = true)]
async fn a_dropped_probe_frees_its_slot() {
    let layer = CircuitBreakerLayer::new().no_ramp();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    let first = start(&svc, Reply::Hang).await;
    let second = start(&svc, Reply::Hang).await;
    // A probe cancelled by a timeout while in flight.
    let timed_out =
        tokio::time::timeout(Duration::from_secs(1), start(&svc, Reply::Hang).await).await;
    assert!(timed_out.is_err());
    drop(first);
    // Both slots are free again: two more probes go through, a third is refused.
    let third = start(&svc, Reply::Hang).await;
    let fourth = start(&svc, Reply::Hang).await;
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).reason(), Reason::HalfOpenFull);
    assert_eq!(echo.calls(), 5 + 5);
    drop((second, third, fourth));
    // With every probe gone, three successes close it.
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn three_successful_probes_close_it_and_three_failed_ones_reopen_it() {
    let layer = CircuitBreakerLayer::new().no_ramp();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    send(&svc, ok()).await.unwrap();
    send(&svc, Reply::Status(404)).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
    // Two failed probes do not decide the round: it is 2 successes to 2 failures.
    send(&svc, down()).await.unwrap();
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
    // The third failure does.
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).retry_after(), Duration::from_secs(30));

    advance(Duration::from_secs(30)).await;
    // A new round counts from zero: one failure, then three successes close it.
    send(&svc, down()).await.unwrap();
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    for _ in 0..100 {
        send(&svc, ok()).await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn reopen_after_one_restores_the_classic_rule() {
    let layer = CircuitBreakerLayer::new().no_ramp().reopen_after(1);
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    send(&svc, ok()).await.unwrap();
    send(&svc, ok()).await.unwrap();
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn an_outage_fails_the_round_on_the_probes_in_flight_together() {
    // Three probes go out at once and all fail: the round is decided by them, and nothing
    // else reaches the upstream, as under the classic rule.
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    let probes = [
        start(&svc, Reply::Slow(100, 503)).await,
        start(&svc, Reply::Slow(100, 503)).await,
        start(&svc, Reply::Slow(100, 503)).await,
    ];
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).reason(), Reason::HalfOpenFull);
    for probe in probes {
        assert_eq!(probe.await.unwrap().status(), 503);
    }
    assert_eq!(handle.state(), State::Open);
    assert_eq!(echo.calls(), 5 + 3);
}

#[tokio::test(start_paused = true)]
async fn a_growing_open_duration_doubles_with_jitter_up_to_its_cap() {
    let layer = CircuitBreakerLayer::new()
        .open_duration(Duration::from_secs(10))
        .max_open_duration(Duration::from_secs(40))
        .close_after(1)
        .no_ramp()
        .seed(7);
    let svc = layer.layer(Echo::default());
    let wait = |svc| async move {
        let err = send(svc, ok()).await.unwrap_err();
        open_of(&err).retry_after()
    };
    trip(&svc).await;
    assert_eq!(wait(&svc).await, Duration::from_secs(10));
    let mut nominal = 10;
    for _ in 0..4 {
        advance(wait(&svc).await).await;
        send(&svc, down()).await.unwrap(); // the probe fails
        nominal = (nominal * 2).min(40);
        let got = wait(&svc).await;
        assert!(
            got >= Duration::from_secs(nominal / 2) && got <= Duration::from_secs(nominal),
            "{got:?} not within [{}, {nominal}] s",
            nominal / 2
        );
    }
    // A successful probe closes it, and the next trip starts from the plain duration again.
    advance(wait(&svc).await).await;
    send(&svc, ok()).await.unwrap();
    trip(&svc).await;
    assert_eq!(wait(&svc).await, Duration::from_secs(10));
}

#[test]
#[should_panic(expected = "half_open_probes")]
fn zero_probes_is_rejected_where_it_is_set() {
    let _ = CircuitBreakerLayer::new().half_open_probes(0);
}

#[test]
#[should_panic(expected = "reopen_after: must be 1 to 65535, got 0")]
fn a_round_that_no_failure_could_end_is_rejected_where_it_is_set() {
    let _ = CircuitBreakerLayer::new().reopen_after(0);
}

#[tokio::test(start_paused = true)]
async fn the_largest_reopen_count_keeps_a_failing_host_half_open_and_probing() {
    // 65,535 failures in a row are allowed; well short of them the circuit is still half-open,
    // and its probe slots are all free again after each failure.
    let layer = CircuitBreakerLayer::new().no_ramp().reopen_after(65_535);
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    for _ in 0..1_000 {
        send(&svc, down()).await.unwrap();
    }
    assert_eq!(handle.state(), State::HalfOpen);
    assert_eq!(echo.calls(), 5 + 1_000);
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
}
