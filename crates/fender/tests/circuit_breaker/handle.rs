//! The handle, the clones that share a breaker, the callback and the log.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Reason, State};
use tokio::time::advance;
use tower::{Layer, ServiceBuilder};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn force_open_force_closed_and_reset() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());

    handle.force_open();
    assert_eq!(handle.state(), State::ForcedOpen);
    advance(Duration::from_secs(3_600)).await;
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).reason(), Reason::ForcedOpen);
    assert_eq!(echo.calls(), 0);

    handle.force_closed();
    assert_eq!(handle.state(), State::Disabled);
    for _ in 0..20 {
        send(&svc, down()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Disabled);
    assert_eq!(handle.counters().failures, 20);

    handle.reset();
    assert_eq!(handle.state(), State::Closed);
    trip(&svc).await;
    assert_eq!(handle.state(), State::Open);
    handle.reset();
    assert_eq!(send(&svc, ok()).await.unwrap().status(), 200);
    assert_eq!(handle.state(), State::Closed);
}

#[tokio::test(start_paused = true)]
async fn every_clone_shares_the_breaker_and_the_callback_sees_every_transition() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let layer = CircuitBreakerLayer::new().on_state_change(move |change| {
        record.lock().unwrap().push((change.from, change.to));
    });
    let handle = layer.handle();
    let svc = ServiceBuilder::new().layer(layer).service(Echo::default());
    let clones: Vec<_> = (0..5).map(|_| svc.clone()).collect();
    for clone in &clones {
        send(clone, down()).await.unwrap();
    }
    assert_eq!(svc.handle().state(), State::Open);
    send(&svc, ok()).await.unwrap_err();
    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    advance(Duration::from_secs(10)).await;
    send(&svc, ok()).await.unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        [
            (State::Closed, State::Open),
            (State::Open, State::HalfOpen),
            (State::HalfOpen, State::Recovering),
            (State::Recovering, State::Closed),
        ]
    );
    let counters = handle.counters();
    assert_eq!(counters.transitions, 4);
    assert_eq!(counters.failures, 5);
    assert_eq!(counters.successes, 4);
    assert_eq!(counters.rejections, 1);
}

#[tokio::test(start_paused = true)]
async fn every_transition_emits_a_tracing_event() {
    let (logs, _guard) = Logs::capture();

    let layer = CircuitBreakerLayer::new().no_ramp();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    let log = logs.text();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("circuit breaker state change"))
        .collect();
    assert_eq!(lines.len(), 3, "{log}");
    assert!(
        lines[0].contains("WARN") && lines[0].contains("to=\"open\""),
        "{log}"
    );
    assert!(lines[1].contains("from=\"open\"") && lines[1].contains("to=\"half-open\""));
    assert!(lines[2].contains("to=\"closed\""), "{log}");
}

#[tokio::test(start_paused = true)]
async fn a_handle_taken_before_the_setters_sees_the_services_breaker() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let layer = layer
        .open_duration(Duration::from_secs(5))
        .consecutive_failures(2)
        .no_ramp();
    let svc = layer.layer(Echo::default());
    send(&svc, down()).await.unwrap();
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    assert_eq!(handle.counters().failures, 2);
    advance(Duration::from_secs(5)).await;
    send(&svc, ok()).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
}
