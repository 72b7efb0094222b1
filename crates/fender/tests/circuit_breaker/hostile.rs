//! Hostile inputs: panicking callbacks and inner services, epochs held across wraps, floods
//! of hosts, credentials in URIs.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Reason, State};
use futures_util::FutureExt;
use http::Request;
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn a_callback_that_panics_on_the_way_to_half_open_leaves_no_probe_slot_taken() {
    let layer = CircuitBreakerLayer::new()
        .half_open_probes(1)
        .no_ramp()
        .on_state_change(|change| {
            if change.to == State::HalfOpen {
                panic!("a bug in the user's callback");
            }
        });
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    let (logs, _guard) = Logs::capture();
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    // The call that moves the circuit to half-open runs the callback, which panics.
    let first = AssertUnwindSafe(send(&svc, ok())).catch_unwind().await;
    assert!(
        matches!(first, Ok(Ok(_))),
        "the callback's panic reached the caller"
    );
    // A healthy upstream is probed again and the circuit closes.
    for _ in 0..3 {
        send(&svc, ok()).await.expect("a free probe slot");
    }
    assert_eq!(handle.state(), State::Closed);
    let log = logs.text();
    assert!(
        log.lines()
            .any(|l| l.contains("ERROR") && l.contains("on_state_change")),
        "{log}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_inner_call_that_panics_while_half_open_gives_its_probe_slot_back() {
    let layer = CircuitBreakerLayer::new().half_open_probes(1).no_ramp();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    let mut one = svc.clone();
    one.ready().await.unwrap();
    let panicked = std::panic::catch_unwind(AssertUnwindSafe(|| {
        drop(one.call(req(Reply::PanicInCall)));
    }));
    assert!(panicked.is_err());
    assert_eq!(handle.state(), State::HalfOpen);
    for _ in 0..3 {
        send(&svc, ok()).await.expect("a free probe slot");
    }
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(echo.calls(), 5 + 1 + 3);
}

#[tokio::test(start_paused = true)]
async fn a_probe_held_across_two_million_state_changes_cannot_free_a_later_slot() {
    let layer = CircuitBreakerLayer::new().half_open_probes(1).no_ramp();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    let held = start(&svc, Reply::Hang).await;
    // 2^21 - 2 resets, a trip and a probe: 2^21 state changes after the held probe's, the
    // period of a 21-bit epoch.
    for _ in 0..(1u32 << 21) - 2 {
        handle.reset();
    }
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    let current = start(&svc, Reply::Hang).await;
    assert_eq!(handle.state(), State::HalfOpen);
    drop(held);
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).reason(), Reason::HalfOpenFull);
    assert_eq!(echo.calls(), 5 + 1 + 5 + 1);
    drop(current);
}

#[tokio::test(start_paused = true)]
async fn per_host_keys_carry_no_credentials_path_or_case() {
    let keys = Arc::new(Mutex::new(Vec::new()));
    let seen = keys.clone();
    let layer = CircuitBreakerLayer::new()
        .on_state_change(move |change| {
            seen.lock()
                .unwrap()
                .push(change.key.as_deref().map(str::to_owned));
        })
        .per_host();
    let svc = layer.layer(Echo::default());
    let (logs, _guard) = Logs::capture();
    let uris = [
        "https://alice:s3cret@API.Example/a?token=t0p",
        "https://bob:hunter2@api.example:443/b",
        "https://api.example/c",
        "https://API.EXAMPLE:443/d?x=1",
        "https://carol@api.example/e",
    ];
    for uri in uris {
        let mut req = Request::new(down());
        *req.uri_mut() = uri.parse().unwrap();
        svc.clone().oneshot(req).await.unwrap();
    }
    // One breaker for the five: the fifth failure opened it.
    let keys = keys.lock().unwrap().clone();
    assert_eq!(keys, [Some("https://api.example:443".to_owned())]);
    let log = logs.text();
    assert!(log.contains("circuit breaker state change"), "{log}");
    for secret in [
        "alice", "s3cret", "bob", "hunter2", "carol", "token", ":443/",
    ] {
        assert!(!log.contains(secret), "{secret} in {log}");
    }
}
