//! Integration tests of the circuit breaker layer; time is a paused tokio clock throughout.

#[cfg(feature = "envelope")]
mod compose;
mod model;
mod stress;
mod support;
mod upstream;

use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, FailureRate, Reason, State};
use fender::classify::{Class, ContractClassifier, Outcome};
use fender::{ApiError, BoxError, ErrorCode};
use http::{Request, Response, StatusCode};
use tokio::time::advance;
use tower::{Layer, Service, ServiceBuilder, ServiceExt};

use support::{Counting, Echo, Reply, host_req, open_of, req, send, status};

const SEQ: std::sync::atomic::Ordering = std::sync::atomic::Ordering::SeqCst;

macro_rules! assert_ready_ok {
    ($e:expr) => {
        assert!(matches!($e, Poll::Ready(Ok(()))), "not ready")
    };
}

macro_rules! assert_pending {
    ($e:expr) => {
        assert!($e.is_pending(), "not pending")
    };
}

fn ok() -> Reply {
    Reply::Status(200)
}

fn down() -> Reply {
    Reply::Status(503)
}

/// Starts a call (admission happens here) and returns its future unpolled.
async fn start<S>(svc: &S, reply: Reply) -> S::Future
where
    S: Service<Request<Reply>, Error = BoxError> + Clone,
{
    let mut svc = svc.clone();
    svc.ready().await.unwrap();
    svc.call(req(reply))
}

/// Trips a default breaker with five 503s.
async fn trip<S>(svc: &S)
where
    S: Service<Request<Reply>, Response = Response<()>, Error = BoxError> + Clone,
{
    for _ in 0..5 {
        let res = send(svc, down()).await.unwrap();
        assert_eq!(res.status(), 503);
    }
}

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
async fn while_open_the_inner_service_is_neither_polled_nor_called() {
    let (mock, mut upstream) = tower_test::mock::pair::<Request<()>, Response<()>>();
    let counting = Counting::new(mock);
    let (polls, calls) = (counting.polls.clone(), counting.calls.clone());
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let mut svc = tower_test::mock::Spawn::new(layer.layer(counting));

    upstream.allow(5);
    for _ in 0..5 {
        assert_ready_ok!(svc.poll_ready());
        let fut = svc.call(Request::new(()));
        let (_, reply) = upstream.next_request().await.unwrap();
        reply.send_response(status(502));
        assert_eq!(fut.await.unwrap().status(), 502);
    }
    assert_eq!(handle.state(), State::Open);
    let (polls_at_open, calls_at_open) = (polls.load(SEQ), calls.load(SEQ));

    // The mock has no capacity left: if the breaker polled it, poll_ready would be pending.
    for _ in 0..50 {
        assert_ready_ok!(svc.poll_ready());
        let err = svc.call(Request::new(())).await.unwrap_err();
        assert_eq!(open_of(&err).reason(), Reason::Open);
        advance(Duration::from_millis(599)).await;
    }
    advance(Duration::from_millis(49)).await; // 29.999 s after opening
    assert_ready_ok!(svc.poll_ready());
    svc.call(Request::new(())).await.unwrap_err();
    assert_eq!(polls.load(SEQ), polls_at_open);
    assert_eq!(calls.load(SEQ), calls_at_open);
    assert_pending!(upstream.poll_request());

    // At 30 s the breaker forwards readiness again: the mock is polled (and pending).
    advance(Duration::from_millis(1)).await;
    assert_pending!(svc.poll_ready());
    assert_eq!(polls.load(SEQ), polls_at_open + 1);
    assert_eq!(handle.counters().rejections, 51);
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
async fn three_successful_probes_close_it_and_one_failure_reopens_it() {
    let layer = CircuitBreakerLayer::new().no_ramp();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    send(&svc, ok()).await.unwrap();
    send(&svc, Reply::Status(404)).await.unwrap();
    assert_eq!(handle.state(), State::HalfOpen);
    send(&svc, down()).await.unwrap();
    assert_eq!(handle.state(), State::Open);
    let err = send(&svc, ok()).await.unwrap_err();
    assert_eq!(open_of(&err).retry_after(), Duration::from_secs(30));

    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    for _ in 0..100 {
        send(&svc, ok()).await.unwrap();
    }
}

/// Trips, waits and closes a default breaker, leaving it at the start of its ramp.
async fn close_into_ramp<S>(svc: &S)
where
    S: Service<Request<Reply>, Response = Response<()>, Error = BoxError> + Clone,
{
    trip(svc).await;
    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        send(svc, ok()).await.unwrap();
    }
}

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
    let bad = handle.get(&"bad.example".to_owned()).unwrap();
    let good = handle.get(&"good.example:8080".to_owned()).unwrap();
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
    let mut keys = handle.keys();
    keys.sort();
    assert_eq!(keys, ["h1", "h3", "h4"]);
    // A flood of hostile hosts never grows the map, and the open circuit of h1 survives it.
    for i in 0..1_000 {
        advance(Duration::from_millis(1)).await;
        call(format!("attacker-{i}.example"), ok()).await.unwrap();
        assert!(handle.len() <= 3);
    }
    assert_eq!(handle.get(&"h1".to_owned()).unwrap().state(), State::Open);
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
#[should_panic(expected = "consecutive_failures: must be at least 1")]
fn zero_consecutive_failures_is_rejected_where_it_is_set() {
    let _ = CircuitBreakerLayer::new().consecutive_failures(0);
}

#[test]
#[should_panic(expected = "half_open_probes")]
fn zero_probes_is_rejected_where_it_is_set() {
    let _ = CircuitBreakerLayer::new().half_open_probes(0);
}

#[test]
#[should_panic(expected = "can never be reached")]
fn a_minimum_above_the_window_is_rejected() {
    let _ = FailureRate::count(10).min_calls(11);
}

#[tokio::test(start_paused = true)]
async fn services_held_ready_do_not_sit_on_probe_slots() {
    let layer = CircuitBreakerLayer::new().no_ramp();
    let handle = layer.handle();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    // Ten clones made ready and kept, as a balancer or a buffer would.
    let mut held = Vec::new();
    for _ in 0..10 {
        let mut one = svc.clone();
        one.ready().await.unwrap();
        held.push(one);
    }
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    assert_eq!(handle.state(), State::Closed);
    // A ready clone is still usable afterwards.
    let res = held[0].call(req(ok())).await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test(start_paused = true)]
async fn calls_the_ramp_refuses_never_poll_the_inner_service() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let counting = Counting::new(Echo::default());
    let (polls, calls) = (counting.polls.clone(), counting.calls.clone());
    let svc = layer.layer(counting);
    close_into_ramp(&svc).await;
    assert_eq!(handle.state(), State::Recovering);
    let (polls_before, calls_before) = (polls.load(SEQ), calls.load(SEQ));
    let mut refused = 0;
    for _ in 0..1_000 {
        if send(&svc, ok()).await.is_err() {
            refused += 1;
        }
    }
    assert!(refused > 850, "{refused}");
    assert_eq!(polls.load(SEQ) - polls_before, 1_000 - refused);
    assert_eq!(calls.load(SEQ) - calls_before, 1_000 - refused);
}

#[tokio::test(start_paused = true)]
async fn every_transition_emits_a_tracing_event() {
    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buf {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Buf::default();
    let writer = buf.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let layer = CircuitBreakerLayer::new().no_ramp();
    let svc = layer.layer(Echo::default());
    trip(&svc).await;
    advance(Duration::from_secs(30)).await;
    for _ in 0..3 {
        send(&svc, ok()).await.unwrap();
    }
    let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
