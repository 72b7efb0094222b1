//! One breaker per host or per key, in a bounded map.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, HostKey, Reason, State};
use http::Request;
use tokio::time::advance;
use tower::{Layer, ServiceExt};

use crate::support::*;

#[tokio::test(start_paused = true)]
async fn per_host_breakers_are_isolated() {
    let layer = CircuitBreakerLayer::new().per_host();
    let handle = layer.handle();
    let echo = Echo::default();
    let svc = layer.layer(echo.clone());
    for _ in 0..5 {
        svc.clone()
            .oneshot(host_req("bad.example", down()))
            .await
            .unwrap();
    }
    let err = svc
        .clone()
        .oneshot(host_req("bad.example", ok()))
        .await
        .unwrap_err();
    assert_eq!(open_of(&err).reason(), Reason::Open);
    for _ in 0..20 {
        let res = svc
            .clone()
            .oneshot(host_req("good.example:8080", ok()))
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
    let bad = handle
        .get(&HostKey::new("http", "bad.example", None))
        .unwrap();
    let good = handle
        .get(&HostKey::new("http", "good.example", Some(8080)))
        .unwrap();
    assert_eq!(bad.state(), State::Open);
    assert_eq!(good.state(), State::Closed);
    assert_eq!(good.counters().successes, 20);
    assert_eq!(handle.len(), 2);
    assert_eq!(echo.calls(), 25);
}

#[tokio::test(start_paused = true)]
async fn the_number_of_keys_is_bounded_and_open_circuits_are_kept_longest() {
    let layer = CircuitBreakerLayer::new().per_host().max_keys(3);
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    let call = |host: String, reply| svc.clone().oneshot(host_req(&host, reply));
    for _ in 0..5 {
        call("h1".into(), down()).await.unwrap();
    }
    advance(Duration::from_millis(10)).await;
    call("h2".into(), ok()).await.unwrap();
    advance(Duration::from_millis(10)).await;
    call("h3".into(), ok()).await.unwrap();
    advance(Duration::from_millis(10)).await;
    call("h4".into(), ok()).await.unwrap();
    let mut keys: Vec<String> = handle.keys().iter().map(|k| k.host().to_owned()).collect();
    keys.sort();
    assert_eq!(keys, ["h1", "h3", "h4"]);
    // A flood of hostile hosts never grows the map, and the open circuit of h1 survives it.
    for i in 0..1_000 {
        advance(Duration::from_millis(1)).await;
        call(format!("attacker-{i}.example"), ok()).await.unwrap();
        assert!(handle.len() <= 3);
    }
    assert_eq!(
        handle
            .get(&HostKey::new("http", "h1", None))
            .unwrap()
            .state(),
        State::Open
    );
    let err = call("h1".into(), ok()).await.unwrap_err();
    assert_eq!(open_of(&err).reason(), Reason::Open);
}

#[tokio::test(start_paused = true)]
async fn a_key_function_picks_the_breaker() {
    let layer = CircuitBreakerLayer::new()
        .consecutive_failures(1)
        .key_fn(|req: &Request<Reply>| matches!(req.body(), Reply::Reset));
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    send(&svc, Reply::Reset).await.unwrap_err();
    assert_eq!(handle.get(&true).unwrap().state(), State::Open);
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.get(&false).unwrap().state(), State::Open);
    handle.reset_all();
    assert_eq!(handle.get(&true).unwrap().state(), State::Closed);
    assert_eq!(handle.counters().failures, 2);
}

#[tokio::test(start_paused = true)]
async fn twenty_thousand_hosts_through_1024_keys_keep_1024_and_every_open_circuit() {
    let layer = CircuitBreakerLayer::new().per_host();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    let call = |host: String, reply| svc.clone().oneshot(host_req(&host, reply));
    for bad in 0..10 {
        for _ in 0..5 {
            call(format!("bad-{bad}.example"), down()).await.unwrap();
        }
    }
    for i in 0..20_000 {
        call(format!("host-{i}.example"), ok()).await.unwrap();
    }
    assert_eq!(handle.len(), 1_024);
    for bad in 0..10 {
        let key = HostKey::new("http", &format!("bad-{bad}.example"), None);
        assert_eq!(handle.get(&key).expect("kept").state(), State::Open);
    }
}

#[tokio::test(start_paused = true)]
async fn keyed_settings_work_before_or_after_per_host_and_the_handle_sees_them() {
    // max_keys before per_host(), the rest after it, and the handle taken in between.
    let layer = CircuitBreakerLayer::new().max_keys(2).per_host();
    let handle = layer.handle();
    let layer = layer
        .consecutive_failures(2)
        .open_duration(Duration::from_secs(5));
    let svc = layer.layer(Echo::default());
    let call = |host: &str, reply| svc.clone().oneshot(host_req(host, reply));
    call("a.example", down()).await.unwrap();
    call("a.example", down()).await.unwrap();
    let a = handle
        .get(&HostKey::new("http", "a.example", None))
        .unwrap();
    assert_eq!(a.state(), State::Open);
    let err = call("a.example", ok()).await.unwrap_err();
    assert_eq!(open_of(&err).retry_after(), Duration::from_secs(5));
    for host in ["b.example", "c.example", "d.example"] {
        call(host, ok()).await.unwrap();
    }
    assert_eq!(handle.len(), 2);
    assert_eq!(a.state(), State::Open);
}
