//! `poll_ready` and `call`: what reaches the inner service, and when.

use std::time::Duration;

use fender::circuit_breaker::{CircuitBreakerLayer, Reason, State};
use http::{Request, Response};
use tokio::time::advance;
use tower::{Layer, Service, ServiceExt};

use crate::support::*;

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
