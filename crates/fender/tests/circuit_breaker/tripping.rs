//! Which outcomes count, and when the circuit opens.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, FailureRate, Reason, State};
use fender::classify::{Class, ContractClassifier, Outcome};
use fender::{ApiError, ErrorCode};
use http::StatusCode;
use tokio::time::advance;
use tower::{Layer, ServiceBuilder};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn opens_after_exactly_five_consecutive_failures() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    for _ in 0..4 {
        assert_eq!(send(&svc, down()).await.unwrap().status(), 503);
        assert_eq!(handle.state(), State::Closed);
    }
    assert_eq!(send(&svc, down()).await.unwrap().status(), 503);
    assert_eq!(handle.state(), State::Open);
    let err = send(&svc, ok()).await.unwrap_err();
    let open = open_of(&err);
    assert_eq!(open.reason(), Reason::Open);
    assert_eq!(open.retry_after(), Duration::from_secs(30));
    assert_eq!(echo.calls(), 5);
}

#[tokio::test(start_paused = true)]
async fn a_success_in_between_resets_the_failure_count() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    for _ in 0..4 {
        send(&svc, down()).await.unwrap();
    }
    send(&svc, ok()).await.unwrap();
    for _ in 0..4 {
        send(&svc, Reply::Reset).await.unwrap_err();
    }
    assert_eq!(handle.state(), State::Closed);
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn client_errors_429_and_permanent_5xx_never_open_it() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    for round in 0..20 {
        for s in [400, 401, 404, 409, 422, 429, 501] {
            let res = send(&svc, Reply::Status(s)).await.unwrap();
            assert_eq!(res.status(), s, "round {round}");
        }
    }
    assert_eq!(handle.state(), State::Closed);
    let counters = handle.counters();
    assert_eq!(counters.failures, 0);
    assert_eq!(counters.successes, 140);
    assert_eq!(echo.calls(), 140);
}

#[tokio::test(start_paused = true)]
async fn transport_errors_and_timeouts_are_failures() {
    let layer = CircuitBreakerLayer::new().consecutive_failures(4);
    let handle = layer.handle();
    let svc = ServiceBuilder::new()
        .layer(layer)
        .timeout(Duration::from_secs(1))
        .service(Echo::default());
    send(&svc, Reply::Reset).await.unwrap_err();
    send(&svc, Reply::Reset).await.unwrap_err();
    let err = send(&svc, Reply::Slow(5_000, 200)).await.unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>(), "{err}");
    assert_eq!(handle.state(), State::Closed);
    send(&svc, Reply::Hang).await.unwrap_err();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.counters().failures, 4);
}

#[tokio::test(start_paused = true)]
async fn the_open_error_counts_down_to_the_next_probe_and_maps_to_503() {
    let layer = CircuitBreakerLayer::new();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_millis(10_500)).await;
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).retry_after(), Duration::from_millis(19_500));
    assert_eq!(err.to_string(), "circuit open, next probe in 19.500s");
    let api = ApiError::from_error(err);
    assert_eq!(api.code(), &ErrorCode::ServiceUnavailable);
    assert_eq!(api.retry_after(), Some(Duration::from_millis(19_500)));
    assert_eq!(api.class(), Class::Rejected);
    assert!(!api.is_retryable());
    let res = api.into_http_response();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "20");
}

#[tokio::test(start_paused = true)]
async fn rate_mode_trips_only_after_the_minimum_calls() {
    let layer = CircuitBreakerLayer::new()
        .failure_rate(FailureRate::count(20).threshold(0.5).min_calls(10));
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    for _ in 0..9 {
        send(&svc, down()).await.unwrap();
    }
    assert_eq!(
        handle.state(),
        State::Closed,
        "100% failures but only 9 calls"
    );
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn rate_mode_trips_exactly_at_the_threshold() {
    let layer = CircuitBreakerLayer::new()
        .failure_rate(FailureRate::count(100).threshold(0.5).min_calls(10));
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    for _ in 0..6 {
        send(&svc, ok()).await.unwrap();
    }
    for failures in 1..=5 {
        send(&svc, down()).await.unwrap();
        assert_eq!(
            handle.state(),
            State::Closed,
            "{failures} of {}",
            6 + failures
        );
    }
    // 6 of 12: 50%.
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn time_window_forgets_failures_older_than_the_window() {
    let rate = FailureRate::time(Duration::from_secs(10))
        .threshold(0.5)
        .min_calls(4);
    let layer = CircuitBreakerLayer::new().failure_rate(rate);
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    for _ in 0..3 {
        send(&svc, down()).await.unwrap();
    }
    advance(Duration::from_secs(11)).await;
    send(&svc, down()).await.unwrap();
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    send(&svc, down()).await.unwrap();
    // 2 failures in 5 calls inside the window: below 50%.
    assert_eq!(handle.state(), State::Closed);
    send(&svc, down()).await.unwrap();
    // 3 in 6.
    assert_eq!(handle.state(), State::Open);
}

#[tokio::test(start_paused = true)]
async fn slow_calls_count_as_failures() {
    let layer = CircuitBreakerLayer::new()
        .consecutive_failures(2)
        .slow_call_threshold(Duration::from_secs(1));
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    send(&svc, Reply::Slow(900, 200)).await.unwrap();
    assert_eq!(handle.counters().failures, 0);
    let res = send(&svc, Reply::Slow(1_500, 200)).await.unwrap();
    assert_eq!(res.status(), 200);
    send(&svc, Reply::Slow(1_000, 200)).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.counters().failures, 2);
}

#[tokio::test(start_paused = true)]
async fn a_user_classifier_replaces_the_contract() {
    // 409 means "still replicating": a failure here; everything else per the contract.
    let classifier = |outcome: Outcome<'_>| match outcome {
        Outcome::Response {
            status: StatusCode::CONFLICT,
            ..
        } => Class::ServerError,
        other => fender::classify::Classify::classify(&ContractClassifier, other),
    };
    let layer = CircuitBreakerLayer::new().classifier(classifier);
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    for _ in 0..5 {
        send(&svc, Reply::Status(409)).await.unwrap();
    }
    assert_eq!(handle.state(), State::Open);

    let lenient = CircuitBreakerLayer::new().classifier(|_: Outcome<'_>| Class::Success);
    let handle = lenient.handle();
    let svc = lenient.layer(Echo::default());
    for _ in 0..50 {
        send(&svc, down()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
}

#[test]
#[should_panic(expected = "consecutive_failures: must be at least 1")]
fn zero_consecutive_failures_is_rejected_where_it_is_set() {
    let _ = CircuitBreakerLayer::new().consecutive_failures(0);
}

#[test]
#[should_panic(expected = "can never be reached")]
fn a_minimum_above_the_window_is_rejected_when_the_layer_makes_its_breaker() {
    // The window is set first here, but the order of the settings never matters: the check is
    // made once the configuration is final.
    let layer = CircuitBreakerLayer::new().failure_rate(FailureRate::count(10).min_calls(11));
    let _ = layer.layer(Echo::default());
}
