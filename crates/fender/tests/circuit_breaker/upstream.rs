//! The breaker in front of the testkit's scripted upstreams, in process and over real sockets.

use std::time::Duration;

use bytes::Bytes;
use fender::circuit_breaker::{CircuitBreakerLayer, CircuitOpen, HostKey, Reason, State};
use fender_testkit::{Plan, Reply, Upstream, refused_addr};
use http::Request;
use http_body_util::Full;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::time::Instant;
use tower::{Layer, ServiceExt};

#[tokio::test(start_paused = true)]
async fn a_40s_outage_reaches_the_upstream_eight_times_and_traffic_recovers_after_it() {
    // Healthy for 10 s, down (503) for 40 s, healthy again; a request every 100 ms for 90 s.
    let plan = Plan::phases()
        .then(Duration::from_secs(10), Plan::always(Reply::ok()))
        .then(Duration::from_secs(40), Plan::always(Reply::status(503)))
        .starting_now()
        .finally(Plan::always(Reply::ok()));
    let upstream = Upstream::new(plan);
    let start = Instant::now();
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let svc = layer.layer(upstream.service());

    let (mut ok, mut refused) = (0u64, 0u64);
    let mut refused_after_recovery = 0;
    for i in 0..900u64 {
        tokio::time::sleep_until(start + Duration::from_millis(100 * i)).await;
        match svc.clone().oneshot(Request::new(String::new())).await {
            Ok(res) if res.status() == 200 => ok += 1,
            Ok(res) => assert_eq!(res.status(), 503),
            Err(err) => {
                let open = err.downcast_ref::<CircuitOpen>().expect("fast-fail");
                if i >= 800 {
                    refused_after_recovery += 1;
                }
                assert!(open.reason() == Reason::Open || open.reason() == Reason::Ramp);
                refused += 1;
            }
        }
    }
    let during_outage = upstream
        .received()
        .iter()
        .filter(|r| {
            let t = r.at - start;
            t >= Duration::from_secs(10) && t < Duration::from_secs(50)
        })
        .count();
    // Five failures open it at 10.4 s; the round at 40.4 s fails on its third probe (one
    // caller, so the probes go one after another) and re-opens it until 70.6 s.
    assert_eq!(during_outage, 8);
    // 100 before the outage, about 190 after it less the ramp's refusals.
    assert!(ok > 200, "{ok}");
    assert_eq!(ok + refused + during_outage as u64, 900);
    assert_eq!(upstream.count() as u64, 900 - refused);
    assert_eq!(refused_after_recovery, 0, "the ramp is over by 80.7 s");
    assert_eq!(handle.state(), State::Closed);
    assert_eq!(handle.counters().rejections, refused);
}

#[tokio::test]
async fn refused_connections_open_it_and_then_no_connection_is_attempted() {
    let layer = CircuitBreakerLayer::new();
    let handle = layer.handle();
    let client = layer.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let uri: http::Uri = format!("http://{}/", refused_addr()).parse().unwrap();
    for _ in 0..5 {
        let err = client
            .clone()
            .oneshot(Request::get(uri.clone()).body(Full::default()).unwrap())
            .await
            .unwrap_err();
        assert!(!err.is::<CircuitOpen>(), "{err}");
    }
    assert_eq!(handle.state(), State::Open);
    let err = client
        .oneshot(Request::get(uri).body(Full::default()).unwrap())
        .await
        .unwrap_err();
    assert!(err.is::<CircuitOpen>(), "{err}");
    assert_eq!(handle.counters().failures, 5);
}

#[tokio::test]
async fn over_sockets_one_bad_host_does_not_cut_off_the_others() {
    let bad = Upstream::new(Plan::always(Reply::status(502)))
        .serve()
        .await;
    let good = Upstream::new(Plan::always(Reply::ok())).serve().await;
    let layer = CircuitBreakerLayer::new().per_host();
    let handle = layer.handle();
    let client = layer.layer(Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>());
    let get = |uri: http::Uri| {
        client
            .clone()
            .oneshot(Request::get(uri).body(Full::default()).unwrap())
    };
    for _ in 0..20 {
        match get(bad.url("/")).await {
            Ok(res) => assert_eq!(res.status(), 502),
            Err(err) => assert!(err.is::<CircuitOpen>(), "{err}"),
        }
        assert_eq!(get(good.url("/")).await.unwrap().status(), 200);
    }
    assert_eq!(bad.count(), 5);
    assert_eq!(good.count(), 20);
    let bad_key = HostKey::from_uri(&bad.url("/")).unwrap();
    assert_eq!(handle.get(&bad_key).unwrap().state(), State::Open);
    assert_eq!(
        handle
            .get(&HostKey::from_uri(&good.url("/")).unwrap())
            .unwrap()
            .state(),
        State::Closed
    );
}
