//! Integration tests of `fender::retry`: every timing fact on a paused clock.

mod socket;
mod support;

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fender::classify::Class;
use fender::retry::{Jitter, ReplayBody, RetryBudget, RetryInfo, RetryLayer};
use fender::{ApiError, BoxError};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};
use tower_test::mock;

use support::{Reply, Script, body_text, get, pattern, request, streamed};

type Req = Request<Full<Bytes>>;

pub(crate) fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// The default layer with jitter off and no budget, so delays are the nominal schedule.
fn exact() -> RetryLayer {
    RetryLayer::new().jitter(Jitter::None).no_budget()
}

#[tokio::test(start_paused = true)]
async fn retries_follow_the_nominal_one_then_two_second_schedule_with_jitter_off() {
    let script = Script::always(Reply::status(503));
    let start = Instant::now();
    let res = exact()
        .layer(script.clone())
        .oneshot(get("http://up/a"))
        .await
        .unwrap();
    assert_eq!(script.gaps(), [secs(1), secs(2)]);
    assert_eq!(start.elapsed(), secs(3));
    let info = res.extensions().get::<RetryInfo>().unwrap();
    assert_eq!(info.attempts(), 3);
    assert_eq!(info.delays(), [secs(1), secs(2)]);
    assert_eq!(info.total_delay(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn gives_up_after_three_attempts_and_returns_the_last_503() {
    let script = Script::always(Reply::status(503));
    let res = RetryLayer::new()
        .no_budget()
        .layer(script.clone())
        .oneshot(get("http://up/a"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(script.count(), 3);
    assert_eq!(body_text(res).await, "call 3");
}

#[tokio::test(start_paused = true)]
async fn each_jitter_keeps_delays_within_its_bounds() {
    let nominal = [secs(1), secs(2), secs(4), secs(8)];
    for jitter in [Jitter::Full, Jitter::Equal, Jitter::Decorrelated] {
        let script = Script::always(Reply::status(500));
        let mut svc = RetryLayer::new()
            .max_attempts(5)
            .jitter(jitter)
            .rng_seed(42)
            .no_budget()
            .layer(script.clone());
        let mut all = Vec::new();
        for _ in 0..40 {
            let before = script.count();
            let res = ServiceExt::<Req>::ready(&mut svc)
                .await
                .unwrap()
                .call(get("http://up/"))
                .await
                .unwrap();
            let delays = res
                .extensions()
                .get::<RetryInfo>()
                .unwrap()
                .delays()
                .to_vec();
            // What the upstream saw matches what the layer reports.
            let seen = script.seen();
            let gaps: Vec<Duration> = seen[before..]
                .windows(2)
                .map(|w| w[1].at - w[0].at)
                .collect();
            assert_eq!(gaps, delays, "{jitter:?}");
            let mut previous = secs(1);
            for (i, d) in delays.iter().copied().enumerate() {
                let (low, high) = match jitter {
                    Jitter::Full => (Duration::ZERO, nominal[i]),
                    Jitter::Equal => (nominal[i] / 2, nominal[i]),
                    _ => (secs(1), (previous * 3).min(secs(30))),
                };
                assert!(
                    d >= low && d <= high,
                    "{jitter:?} retry {}: {d:?} not in [{low:?}, {high:?}]",
                    i + 1
                );
                previous = d;
            }
            all.extend(delays);
        }
        // The delays are actually random.
        all.sort();
        all.dedup();
        assert!(
            all.len() > 100,
            "{jitter:?}: only {} distinct delays",
            all.len()
        );
    }
}

#[tokio::test(start_paused = true)]
async fn client_errors_and_permanent_server_errors_are_not_retried() {
    for status in [400, 401, 403, 404, 409, 422, 501, 505] {
        let script = Script::new([Reply::status(status), Reply::status(200)]);
        let res = exact()
            .layer(script.clone())
            .oneshot(get("http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status);
        assert_eq!(script.count(), 1, "{status} was retried");
        assert!(res.extensions().get::<RetryInfo>().is_none());
    }
}

#[tokio::test(start_paused = true)]
async fn each_retryable_status_is_retried() {
    for status in [429, 500, 502, 503, 504] {
        let script = Script::new([Reply::status(status), Reply::status(200)]);
        let res = exact()
            .layer(script.clone())
            .oneshot(get("http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{status}");
        assert_eq!(script.count(), 2, "{status}");
        assert_eq!(res.extensions().get::<RetryInfo>().unwrap().attempts(), 2);
    }
}

#[tokio::test(start_paused = true)]
async fn a_connection_reset_is_retried() {
    let script = Script::new([
        Reply::Io(io::ErrorKind::ConnectionReset),
        Reply::status(200),
    ]);
    let res = exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn the_last_error_is_returned_unchanged_after_the_last_attempt() {
    let script = Script::always(Reply::Io(io::ErrorKind::ConnectionReset));
    let err = exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap_err();
    assert_eq!(script.count(), 3);
    let io = err
        .downcast_ref::<io::Error>()
        .expect("the io error itself");
    assert_eq!(io.kind(), io::ErrorKind::ConnectionReset);
}

#[tokio::test(start_paused = true)]
async fn retryable_api_errors_are_retried_and_others_are_not() {
    let script = Script::new([
        Reply::error(|| ApiError::service_unavailable("down").into()),
        Reply::status(200),
    ]);
    let res = exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.count(), 2);

    let script = Script::always(Reply::error(|| ApiError::not_found("gone").into()));
    let err = exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap_err();
    assert_eq!(script.count(), 1);
    assert_eq!(
        err.downcast_ref::<ApiError>().unwrap().status(),
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(start_paused = true)]
async fn a_local_fast_fail_is_never_retried() {
    let script = Script::always(Reply::error(|| {
        tower::load_shed::error::Overloaded::new().into()
    }));
    let err = exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap_err();
    assert_eq!(script.count(), 1);
    assert!(err.is::<tower::load_shed::error::Overloaded>());
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_sets_the_delay_to_the_millisecond() {
    let script = Script::new([
        Reply::with_header(429, "retry-after", "5"),
        Reply::status(200),
    ]);
    // Full jitter would pick a delay in [0, 1 s]: the server's 5 s wins.
    let res = RetryLayer::new()
        .rng_seed(3)
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.gaps(), [Duration::from_millis(5_000)]);
}

pub(crate) fn fixed_now() -> SystemTime {
    SystemTime::UNIX_EPOCH + secs(1_800_000_000)
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_sets_the_delay_to_the_millisecond() {
    let date = httpdate::fmt_http_date(fixed_now() + secs(7));
    let script = Script::new([
        Reply::with_header(503, "retry-after", date),
        Reply::status(200),
    ]);
    let res = RetryLayer::new()
        .wall_clock(fixed_now)
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.gaps(), [Duration::from_millis(7_000)]);
}

#[tokio::test(start_paused = true)]
async fn retry_after_over_the_cap_is_returned_at_once() {
    let script = Script::always(Reply::with_header(503, "retry-after", "120"));
    let start = Instant::now();
    let res = RetryLayer::new()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
    assert_eq!(script.count(), 1);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(res.headers()["retry-after"], "120");

    // A higher cap obeys the same answer.
    let script = Script::new([
        Reply::with_header(503, "retry-after", "120"),
        Reply::status(200),
    ]);
    let res = RetryLayer::new()
        .retry_after_cap(secs(180))
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.gaps(), [secs(120)]);
}

#[tokio::test(start_paused = true)]
async fn an_unparseable_retry_after_falls_back_to_the_backoff() {
    let script = Script::new([
        Reply::with_header(503, "retry-after", "soon"),
        Reply::status(200),
    ]);
    exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(script.gaps(), [secs(1)]);
}

#[tokio::test(start_paused = true)]
async fn idempotent_methods_are_retried() {
    for method in [
        Method::GET,
        Method::HEAD,
        Method::OPTIONS,
        Method::TRACE,
        Method::PUT,
        Method::DELETE,
    ] {
        let script = Script::new([Reply::status(503), Reply::status(204)]);
        let res = exact()
            .layer(script.clone())
            .oneshot(request(method.clone(), "http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NO_CONTENT, "{method}");
        assert_eq!(script.count(), 2, "{method}");
    }
}

#[tokio::test(start_paused = true)]
async fn post_and_patch_are_not_retried_without_an_idempotency_key() {
    for method in [Method::POST, Method::PATCH] {
        let script = Script::new([Reply::status(503), Reply::status(200)]);
        let res = exact()
            .layer(script.clone())
            .oneshot(request(method.clone(), "http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE, "{method}");
        assert_eq!(script.count(), 1, "{method}");
    }
    // Nor after a reset: the server may have processed the request.
    let script = Script::new([
        Reply::Io(io::ErrorKind::ConnectionReset),
        Reply::status(200),
    ]);
    let err = exact()
        .layer(script.clone())
        .oneshot(request(Method::POST, "http://up/"))
        .await;
    assert!(err.is_err());
    assert_eq!(script.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn post_with_an_idempotency_key_is_retried_with_the_same_key() {
    let script = Script::new([Reply::status(503), Reply::status(201)]);
    let mut req = request(Method::POST, "http://up/orders");
    req.headers_mut()
        .insert("idempotency-key", "order-7".parse().unwrap());
    let res = exact().layer(script.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let seen = script.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.method == Method::POST && s.headers["idempotency-key"] == "order-7")
    );
}

#[tokio::test(start_paused = true)]
async fn post_after_a_refused_connection_is_retried() {
    let script = Script::new([
        Reply::Io(io::ErrorKind::ConnectionRefused),
        Reply::status(201),
    ]);
    let res = exact()
        .layer(script.clone())
        .oneshot(request(Method::POST, "http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(script.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn post_is_retried_on_explicit_opt_in() {
    let script = Script::new([Reply::status(502), Reply::status(201)]);
    let res = exact()
        .retry_non_idempotent(true)
        .layer(script.clone())
        .oneshot(request(Method::POST, "http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(script.count(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_streamed_10_kib_body_reaches_the_upstream_identically_on_every_attempt() {
    let data = pattern(10 * 1024);
    let script = Script::always(Reply::status(503));
    let req = Request::put("http://up/blob")
        .body(streamed(&data, 1000))
        .unwrap();
    let res = exact().layer(script.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let seen = script.seen();
    assert_eq!(seen.len(), 3);
    for s in &seen {
        assert_eq!(s.body, data);
    }
}

#[tokio::test(start_paused = true)]
async fn a_1_mib_body_is_sent_once_and_intact() {
    let data = pattern(1024 * 1024);
    // Streamed without a size hint: found too large while it is sent.
    let script = Script::always(Reply::status(503));
    let req = Request::put("http://up/blob")
        .body(streamed(&data, 16 * 1024))
        .unwrap();
    let res = exact().layer(script.clone()).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, data);

    // With an exact size: known too large before it is sent.
    let script = Script::always(Reply::status(503));
    let req = Request::put("http://up/blob")
        .body(Full::new(data.clone()))
        .unwrap();
    exact().layer(script.clone()).oneshot(req).await.unwrap();
    let seen = script.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body, data);
}

#[tokio::test(start_paused = true)]
async fn a_body_just_under_a_custom_cap_is_replayed() {
    let data = pattern(4096);
    let script = Script::new([Reply::status(503), Reply::status(200)]);
    let req = Request::put("http://up/blob")
        .body(streamed(&data, 100))
        .unwrap();
    let res = exact()
        .max_replay_body(4096)
        .layer(script.clone())
        .oneshot(req)
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(script.seen().iter().all(|s| s.body == data));
}

#[tokio::test(start_paused = true)]
async fn the_budget_keeps_upstream_load_near_1_2x_during_a_full_outage() {
    let script = Script::always(Reply::status(503));
    // 20% of traffic plus 1 retry per second, over 10 s.
    let budget = RetryBudget::new(secs(10), 1, 0.2);
    let layer = RetryLayer::new().base_delay(Duration::ZERO).budget(budget);
    let svc = layer.layer(script.clone());
    // 500 requests per second for 20 s, from 4 clones of the client.
    let clones: Vec<_> = (0..4).map(|_| svc.clone()).collect();
    let requests = 10_000;
    for i in 0..requests {
        let mut client = clones[i % 4].clone();
        let res = ServiceExt::<Req>::ready(&mut client)
            .await
            .unwrap()
            .call(get("http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
        tokio::time::advance(Duration::from_millis(2)).await;
    }
    let load = script.count() as f64 / requests as f64;
    assert!((1.15..=1.25).contains(&load), "upstream load {load:.3}x");
}

#[tokio::test(start_paused = true)]
async fn without_a_budget_a_full_outage_triples_the_load() {
    let script = Script::always(Reply::status(503));
    let mut svc = RetryLayer::new()
        .base_delay(Duration::ZERO)
        .no_budget()
        .layer(script.clone());
    for _ in 0..100 {
        ServiceExt::<Req>::ready(&mut svc)
            .await
            .unwrap()
            .call(get("http://up/"))
            .await
            .unwrap();
    }
    assert_eq!(script.count(), 300);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_stops_retries_that_would_not_finish_in_time() {
    let script = Script::always(Reply::status(503));
    let start = Instant::now();
    let res = exact()
        .max_attempts(10)
        .deadline(Duration::from_millis(2_500))
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    // Attempts at 0 s and 1 s; the next would start at 3 s, past the deadline.
    assert_eq!(script.count(), 2);
    assert_eq!(start.elapsed(), secs(1));
    assert_eq!(body_text(res).await, "call 2");
}

#[tokio::test(start_paused = true)]
async fn the_deadline_counts_the_attempt_timeout() {
    let script = Script::always(Reply::status(503));
    let res = exact()
        .max_attempts(10)
        .attempt_timeout(secs(2))
        .deadline(secs(4))
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    // The retry at 1 s may run until 3 s: allowed; the next at 3 s could run until 5 s: not.
    assert_eq!(script.count(), 2);
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test(start_paused = true)]
async fn a_slow_attempt_times_out_and_is_retried() {
    let script = Script::new([
        Reply::Slow(secs(60), Box::new(Reply::status(200))),
        Reply::status(200),
    ]);
    let start = Instant::now();
    let res = exact()
        .attempt_timeout(secs(2))
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "call 2");
    // 2 s timeout, 1 s backoff.
    assert_eq!(start.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn the_first_attempts_time_runs_from_its_first_poll() {
    // A future made and left unpolled for longer than the attempt timeout still gives its
    // attempt the whole timeout once polled; the attempt answers after 1.5 s of a 2 s limit.
    let script = Script::new([Reply::Slow(
        Duration::from_millis(1_500),
        Box::new(Reply::status(200)),
    )]);
    let mut svc = exact().attempt_timeout(secs(2)).layer(script.clone());
    let fut = ServiceExt::<Req>::ready(&mut svc)
        .await
        .unwrap()
        .call(get("http://up/"));
    tokio::time::advance(secs(5)).await;
    let start = Instant::now();
    let res = fut.await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.count(), 1);
    assert_eq!(start.elapsed(), Duration::from_millis(1_500));
}

#[tokio::test(start_paused = true)]
async fn when_every_attempt_times_out_the_caller_gets_a_timeout_error() {
    let script = Script::always(Reply::Slow(secs(60), Box::new(Reply::status(200))));
    let err = exact()
        .attempt_timeout(secs(1))
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap_err();
    assert!(err.is::<tower::timeout::error::Elapsed>());
    assert_eq!(script.count(), 3);
    assert_eq!(fender::classify::classify_error(&*err), Class::Timeout);
}

#[tokio::test(start_paused = true)]
async fn on_retry_sees_the_attempt_the_delay_and_the_reason() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let script = Script::new([
        Reply::status(503),
        Reply::Io(io::ErrorKind::ConnectionReset),
        Reply::status(200),
    ]);
    exact()
        .on_retry(move |attempt: u32, delay: Duration, reason: Class| {
            sink.lock().unwrap().push((attempt, delay, reason));
        })
        .layer(script)
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(
        *events.lock().unwrap(),
        [
            (2, secs(1), Class::ServerError),
            (3, secs(2), Class::Transport)
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_first_attempt_success_carries_no_retry_info() {
    let script = Script::always(Reply::status(200));
    let res = RetryLayer::new()
        .layer(script)
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert!(res.extensions().get::<RetryInfo>().is_none());
}

#[tokio::test(start_paused = true)]
async fn max_attempts_one_disables_retries() {
    let script = Script::always(Reply::status(503));
    RetryLayer::new()
        .max_attempts(1)
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(script.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_budget() {
    let script = Script::always(Reply::status(503));
    // No share of traffic, a floor of 1 retry per second over 10 s: 10 retries in all.
    let layer = RetryLayer::new()
        .base_delay(Duration::ZERO)
        .max_attempts(2)
        .budget(RetryBudget::new(secs(10), 1, 0.0));
    let svc = layer.layer(script.clone());
    for _ in 0..30 {
        svc.clone().oneshot(get("http://up/")).await.unwrap();
    }
    assert_eq!(script.count(), 30 + 10);
}

type MockReq = Request<ReplayBody<Full<Bytes>>>;
type MockRes = Response<Full<Bytes>>;

fn status(code: u16) -> MockRes {
    let mut res = Response::new(Full::new(Bytes::new()));
    *res.status_mut() = StatusCode::from_u16(code).unwrap();
    res
}

#[tokio::test(start_paused = true)]
async fn readiness_is_polled_before_each_retry() {
    let (mock, mut handle) = mock::pair::<MockReq, MockRes>();
    handle.allow(1);
    let mut svc = exact().layer(mock);
    let call = svc.ready().await.unwrap().call(get("http://up/"));
    let task = tokio::spawn(call);

    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(503));
    // The inner service has no capacity: after the 1 s backoff the retry waits for readiness.
    let waited = tokio::time::timeout(secs(30), handle.next_request()).await;
    assert!(
        waited.is_err(),
        "a retry was sent to a service that was not ready"
    );

    handle.allow(1);
    let (_, send) = handle.next_request().await.unwrap();
    send.send_response(status(200));
    let res = task.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.extensions().get::<RetryInfo>().unwrap().attempts(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_readiness_error_before_a_retry_is_returned() {
    let (mock, mut handle) = mock::pair::<MockReq, MockRes>();
    let mut svc = exact().layer(mock);
    let task = tokio::spawn(svc.ready().await.unwrap().call(get("http://up/")));
    let (_, send) = handle.next_request().await.unwrap();
    handle.send_error("inner service broke");
    send.send_response(status(503));
    let err = task.await.unwrap().unwrap_err();
    assert_eq!(err.to_string(), "inner service broke");
}

#[tokio::test(start_paused = true)]
async fn the_inner_service_is_called_exactly_three_times() {
    let (mock, mut handle) = mock::pair::<MockReq, MockRes>();
    let mut svc = RetryLayer::new().no_budget().layer(mock);
    let task = tokio::spawn(svc.ready().await.unwrap().call(get("http://up/")));
    for _ in 0..3 {
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(req.uri(), "http://up/");
        send.send_response(status(500));
    }
    let res = task.await.unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let more = tokio::time::timeout(secs(120), handle.next_request()).await;
    assert!(
        matches!(more, Ok(None) | Err(_)),
        "a fourth attempt was made"
    );
}

#[tokio::test(start_paused = true)]
async fn dropping_the_future_mid_backoff_sends_nothing_more() {
    let script = Script::always(Reply::status(503));
    let mut fut = Box::pin(exact().layer(script.clone()).oneshot(get("http://up/")));
    tokio::select! {
        _ = &mut fut => panic!("finished before the backoff"),
        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
    }
    assert_eq!(script.count(), 1);
    drop(fut);
    tokio::time::sleep(secs(120)).await;
    assert_eq!(script.count(), 1);
}

#[tokio::test(start_paused = true)]
async fn the_failed_attempts_response_is_dropped_before_the_next_attempt() {
    // A response body that notes when it is dropped.
    struct Tracked(Arc<AtomicUsize>);
    impl Drop for Tracked {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let dropped = Arc::new(AtomicUsize::new(0));
    let calls = Arc::new(AtomicUsize::new(0));
    let (d, c) = (dropped.clone(), calls.clone());
    let inner = tower::service_fn(move |_req: Request<ReplayBody<Full<Bytes>>>| {
        let n = c.fetch_add(1, Ordering::SeqCst);
        // When the second attempt starts, the first response must be gone.
        assert_eq!(
            d.load(Ordering::SeqCst),
            n,
            "attempt {} started before the previous response was dropped",
            n + 1
        );
        let mut res = Response::new(Tracked(d.clone()));
        *res.status_mut() = if n < 2 {
            StatusCode::BAD_GATEWAY
        } else {
            StatusCode::OK
        };
        async move { Ok::<_, BoxError>(res) }
    });
    let res = exact()
        .layer(inner)
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(dropped.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn request_head_and_extensions_are_identical_on_every_attempt() {
    #[derive(Clone, Debug, PartialEq)]
    struct Tag(u32);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let inner = tower::service_fn(move |req: Request<ReplayBody<Full<Bytes>>>| {
        s.lock().unwrap().push((
            req.method().clone(),
            req.uri().clone(),
            req.headers().clone(),
            req.extensions().get::<Tag>().cloned(),
        ));
        let n = s.lock().unwrap().len();
        async move {
            let body = req.into_body().collect().await?.to_bytes();
            assert_eq!(body, "payload");
            Ok::<_, BoxError>(status(if n < 3 { 503 } else { 200 }))
        }
    });
    let mut req = Request::put("http://up/x?y=1")
        .header("x-a", "1")
        .body(Full::new(Bytes::from_static(b"payload")))
        .unwrap();
    req.extensions_mut().insert(Tag(9));
    let res = exact().layer(inner).oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 3);
    for s in seen.iter() {
        assert_eq!(s.0, Method::PUT);
        assert_eq!(s.1, "http://up/x?y=1");
        assert_eq!(s.2["x-a"], "1");
        assert_eq!(s.3, Some(Tag(9)));
    }
}

#[test]
#[should_panic(expected = "max_attempts must be at least 1")]
fn zero_attempts_is_rejected() {
    let _ = RetryLayer::new().max_attempts(0);
}

#[test]
#[should_panic(expected = "must not exceed max_delay")]
fn a_base_delay_above_the_max_is_rejected_when_the_layer_is_built() {
    let layer = RetryLayer::new().base_delay(secs(31));
    let _ = layer.layer(tower::service_fn(|_: Req| async {
        Ok::<_, std::convert::Infallible>(Response::new(Full::new(Bytes::new())))
    }));
}

#[test]
#[should_panic(expected = "ratio must be within")]
fn a_budget_ratio_outside_zero_to_one_is_rejected() {
    let _ = RetryBudget::new(secs(10), 10, -0.1);
}

/// Checks at compile time that `svc` and the future of one call of it are `Send`.
fn assert_service_and_future_send<S>(svc: S)
where
    S: Service<Req> + Send,
    S::Future: Send,
{
    fn assert_send<T: Send>(_: &T) {}
    assert_send(&svc);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let fut = svc.oneshot(get("http://up/"));
    assert_send(&fut);
}

#[test]
fn the_service_and_its_future_are_send_for_multithreaded_clients() {
    assert_service_and_future_send(RetryLayer::new().layer(Script::always(Reply::status(200))));
}

#[tokio::test(start_paused = true)]
async fn a_decoded_api_error_with_retry_after_sets_the_delay() {
    let script = Script::new([
        Reply::error(|| {
            ApiError::service_unavailable("maintenance")
                .with_retry_after(secs(4))
                .into()
        }),
        Reply::status(200),
    ]);
    let res = RetryLayer::new()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(script.gaps(), [secs(4)]);
}

/// Records the fields of every event at INFO or above from the retry module, per thread.
///
/// Installed once as the global subscriber, so no callsite interest is cached as "never" by a
/// test running on another thread; each test reads the events of its own (current-thread
/// runtime) thread.
struct Capture;

type Fields = Vec<(String, String)>;

thread_local! {
    static EVENTS: std::cell::RefCell<Vec<Fields>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        struct Visit(Fields);
        impl tracing::field::Visit for Visit {
            fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
                self.0
                    .push((field.name().to_string(), format!("{value:?}")));
            }
        }
        if *event.metadata().level() <= tracing::Level::INFO
            && event.metadata().target().starts_with("fender::retry")
        {
            let mut fields = Visit(Vec::new());
            event.record(&mut fields);
            EVENTS.with(|events| events.borrow_mut().push(fields.0));
        }
    }
}

fn capture_events() {
    use tracing_subscriber::layer::SubscriberExt;
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        tracing::subscriber::set_global_default(tracing_subscriber::registry().with(Capture))
            .expect("no other global subscriber in this test binary");
    });
    EVENTS.with(|events| events.borrow_mut().clear());
}

#[tokio::test(start_paused = true)]
async fn each_retry_emits_one_event_with_attempt_delay_reason_method_and_redacted_uri() {
    capture_events();
    let script = Script::new([Reply::status(502), Reply::status(504), Reply::status(200)]);
    exact()
        .layer(script)
        .oneshot(get("http://alice:s3cret@up/things?id=3"))
        .await
        .unwrap();
    let events = EVENTS.with(|events| events.borrow().clone());
    assert_eq!(events.len(), 2);
    for (event, (attempt, delay)) in events.iter().zip([("2", "1000"), ("3", "2000")]) {
        let field = |name: &str| {
            event
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| panic!("no {name} in {event:?}"))
        };
        assert_eq!(field("attempt"), attempt);
        assert_eq!(field("delay_ms"), delay);
        assert_eq!(field("reason"), "server error");
        assert_eq!(field("method"), "GET");
        // Userinfo and the query string never reach the logs.
        assert_eq!(field("uri"), "http://up/things");
    }
}

#[cfg(feature = "circuit-breaker")]
#[tokio::test(start_paused = true)]
async fn retries_stop_at_an_open_circuit_and_its_fast_fail_is_returned() {
    use fender::circuit_breaker::{CircuitBreakerLayer, CircuitOpen};
    let script = Script::always(Reply::status(503));
    // Retry outside the breaker: every attempt passes the breaker.
    let client = exact().layer(
        CircuitBreakerLayer::new()
            .consecutive_failures(2)
            .no_ramp()
            .layer(script.clone()),
    );
    let start = Instant::now();
    let err = client.clone().oneshot(get("http://up/")).await.unwrap_err();
    // Two 503s open the circuit; the third attempt fails fast and is not retried.
    assert!(err.is::<CircuitOpen>(), "{err}");
    assert_eq!(script.count(), 2);
    assert_eq!(start.elapsed(), secs(3));

    let start = Instant::now();
    let err = client.oneshot(get("http://up/")).await.unwrap_err();
    assert!(err.is::<CircuitOpen>());
    assert_eq!(script.count(), 2);
    assert_eq!(start.elapsed(), Duration::ZERO);
}

mod hostile_durations {
    //! Durations at the edge of what `Instant` can hold: saturate, never panic.
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_huge_retry_after_under_an_unbounded_cap_does_not_panic() {
        let script = Script::new([
            Reply::with_header(429, "retry-after", "18446744073709551615"),
            Reply::status(200),
        ]);
        let svc = RetryLayer::new()
            .retry_after_cap(Duration::MAX)
            .layer(script.clone());
        let pending = tokio::spawn(svc.oneshot(get("http://up/")));
        tokio::time::advance(secs(3_600)).await;
        // The retry waits (practically forever); the caller's task is alive and can drop it.
        assert!(!pending.is_finished());
        assert_eq!(script.count(), 1);
        pending.abort();
        assert!(pending.await.unwrap_err().is_cancelled());
    }

    #[tokio::test(start_paused = true)]
    async fn an_attempt_timeout_of_duration_max_does_not_panic_on_the_first_retry() {
        let script = Script::new([Reply::status(503), Reply::status(200)]);
        let res = exact()
            .attempt_timeout(Duration::MAX)
            .layer(script.clone())
            .oneshot(get("http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(script.count(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn base_and_max_delays_of_duration_max_do_not_panic() {
        let script = Script::new([Reply::status(503), Reply::status(200)]);
        let svc = RetryLayer::new()
            .max_delay(Duration::MAX)
            .base_delay(Duration::MAX)
            .no_budget()
            .layer(script.clone());
        let pending = tokio::spawn(svc.oneshot(get("http://up/")));
        tokio::time::advance(secs(86_400)).await;
        assert!(!pending.is_finished());
        assert_eq!(script.count(), 1);
        pending.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_deadline_of_duration_max_is_no_deadline() {
        let script = Script::new([Reply::status(503), Reply::status(200)]);
        let res = exact()
            .deadline(Duration::MAX)
            .layer(script.clone())
            .oneshot(get("http://up/"))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
}

#[tokio::test(start_paused = true)]
async fn retry_after_zero_never_shortens_the_backoff() {
    let script = Script::always(Reply::with_header(503, "retry-after", "0"));
    let start = Instant::now();
    exact()
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    // Three attempts on the contract's 1 s, 2 s schedule, not within a millisecond.
    assert_eq!(script.gaps(), [secs(1), secs(2)]);
    assert_eq!(start.elapsed(), secs(3));
}

#[tokio::test(start_paused = true)]
async fn base_and_max_delay_may_be_set_in_any_order() {
    // 45 s is above the default 30 s maximum, but the final pair is valid.
    let script = Script::new([Reply::status(503), Reply::status(200)]);
    exact()
        .base_delay(secs(45))
        .max_delay(secs(60))
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(script.gaps(), [secs(45)]);
}

#[tokio::test(start_paused = true)]
async fn the_budget_is_shared_with_tower_retry_code_through_its_budget_trait() {
    use tower::retry::budget::Budget;
    // One retry per request, no floor.
    let budget = Arc::new(RetryBudget::new(secs(10), 0, 1.0));
    // tower-side code records two requests: two tokens.
    Budget::deposit(&*budget);
    Budget::deposit(&*budget);
    // The fender side records one more and spends two on its retries.
    let script = Script::always(Reply::status(503));
    exact()
        .budget(budget.clone())
        .layer(script.clone())
        .oneshot(get("http://up/"))
        .await
        .unwrap();
    assert_eq!(script.count(), 3);
    // One token is left for the tower side.
    assert!(Budget::withdraw(&*budget));
    assert!(!Budget::withdraw(&*budget));
}

mod attempt_headers {
    //! Every attempt says its number and, with a deadline, the time left.
    use super::*;
    use fender::retry::{Deadline, X_ATTEMPT_COUNT, X_REQUEST_TIMEOUT_MS};

    fn header(req: &Request<ReplayBody<Full<Bytes>>>, name: &http::HeaderName) -> Option<String> {
        req.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[tokio::test(start_paused = true)]
    async fn every_attempt_carries_its_number() {
        let (svc, mut handle) =
            mock::pair::<Request<ReplayBody<Full<Bytes>>>, Response<Full<Bytes>>>();
        let svc = exact().layer(svc);
        let call = tokio::spawn(svc.oneshot(get("http://up/")));
        for n in 1..=3 {
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(
                header(&req, &X_ATTEMPT_COUNT).as_deref(),
                Some(&*n.to_string())
            );
            assert_eq!(
                header(&req, &X_REQUEST_TIMEOUT_MS),
                None,
                "no deadline, no header"
            );
            let status = if n < 3 { 503 } else { 200 };
            send.send_response(
                Response::builder()
                    .status(status)
                    .body(Full::new(Bytes::new()))
                    .unwrap(),
            );
        }
        assert_eq!(call.await.unwrap().unwrap().status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn with_a_deadline_every_attempt_carries_the_time_left() {
        let (svc, mut handle) =
            mock::pair::<Request<ReplayBody<Full<Bytes>>>, Response<Full<Bytes>>>();
        let svc = exact().deadline(secs(10)).layer(svc);
        let call = tokio::spawn(svc.oneshot(get("http://up/")));
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(
            header(&req, &X_REQUEST_TIMEOUT_MS).as_deref(),
            Some("10000")
        );
        tokio::time::advance(Duration::from_millis(250)).await;
        send.send_response(
            Response::builder()
                .status(503)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        );
        // The retry goes 1 s later, with what is left.
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(header(&req, &X_ATTEMPT_COUNT).as_deref(), Some("2"));
        assert_eq!(header(&req, &X_REQUEST_TIMEOUT_MS).as_deref(), Some("8750"));
        send.send_response(Response::new(Full::new(Bytes::new())));
        call.await.unwrap().unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_per_request_deadline_extension_wins_when_it_is_earlier() {
        let (svc, mut handle) =
            mock::pair::<Request<ReplayBody<Full<Bytes>>>, Response<Full<Bytes>>>();
        let svc = exact().deadline(secs(10)).layer(svc);
        let mut req = get("http://up/");
        req.extensions_mut()
            .insert(Deadline::after(Duration::from_millis(150)));
        let call = tokio::spawn(svc.oneshot(req));
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(header(&req, &X_REQUEST_TIMEOUT_MS).as_deref(), Some("150"));
        send.send_response(
            Response::builder()
                .status(503)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        );
        // No retry fits in the 150 ms: the 503 is returned.
        assert_eq!(
            call.await.unwrap().unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_time_left_is_at_least_one_millisecond() {
        let (svc, mut handle) =
            mock::pair::<Request<ReplayBody<Full<Bytes>>>, Response<Full<Bytes>>>();
        let svc = exact().layer(svc);
        let mut req = get("http://up/");
        req.extensions_mut()
            .insert(Deadline::after(Duration::from_micros(10)));
        let call = tokio::spawn(svc.oneshot(req));
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(header(&req, &X_REQUEST_TIMEOUT_MS).as_deref(), Some("1"));
        send.send_response(Response::new(Full::new(Bytes::new())));
        call.await.unwrap().unwrap();
    }
}

/// How the layer clones its inner service: only for an attempt after the first.
mod clones {
    use super::*;
    use std::sync::atomic::AtomicBool;
    use std::task::{Context, Poll};

    /// Answers 503 to the first `failures` calls of all its clones, then 200; counts its
    /// clones and refuses a call that was not made ready first.
    struct Counted {
        clones: Arc<AtomicUsize>,
        calls: Arc<AtomicUsize>,
        failures: usize,
        ready: AtomicBool,
    }

    impl Counted {
        fn new(failures: usize) -> (Self, Arc<AtomicUsize>, Arc<AtomicUsize>) {
            let (clones, calls) = (Arc::default(), Arc::default());
            let svc = Counted {
                clones: Arc::clone(&clones),
                calls: Arc::clone(&calls),
                failures,
                ready: AtomicBool::new(false),
            };
            (svc, clones, calls)
        }
    }

    impl Clone for Counted {
        fn clone(&self) -> Self {
            self.clones.fetch_add(1, Ordering::Relaxed);
            Counted {
                clones: Arc::clone(&self.clones),
                calls: Arc::clone(&self.calls),
                failures: self.failures,
                // A clone is not ready, as tower's services are not.
                ready: AtomicBool::new(false),
            }
        }
    }

    impl<B> Service<Request<B>> for Counted {
        type Response = Response<Full<Bytes>>;
        type Error = BoxError;
        type Future = std::future::Ready<Result<Response<Full<Bytes>>, BoxError>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
            self.ready.store(true, Ordering::Relaxed);
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _req: Request<B>) -> Self::Future {
            assert!(
                self.ready.swap(false, Ordering::Relaxed),
                "called without poll_ready"
            );
            let n = self.calls.fetch_add(1, Ordering::Relaxed);
            let status = if n < self.failures { 503 } else { 200 };
            let res = Response::builder()
                .status(status)
                .body(Full::new(Bytes::new()))
                .unwrap();
            std::future::ready(Ok(res))
        }
    }

    /// One `GET` through the long-lived `svc`, made ready first, answered 200.
    async fn get_ok<S>(svc: &mut S)
    where
        S: Service<Req, Response = Response<Full<Bytes>>, Error = BoxError>,
    {
        let res = ServiceExt::<Req>::ready(svc)
            .await
            .unwrap()
            .call(get("http://up/"))
            .await;
        assert_eq!(res.unwrap().status(), StatusCode::OK);
    }

    #[tokio::test(start_paused = true)]
    async fn requests_that_are_not_retried_clone_the_inner_service_once_in_all() {
        let (inner, clones, calls) = Counted::new(0);
        let mut svc = exact().layer(inner);
        for _ in 0..20 {
            get_ok(&mut svc).await;
        }
        assert_eq!(calls.load(Ordering::Relaxed), 20);
        // The copy a retry of this thread's requests would be cloned from; no clone per call.
        assert_eq!(clones.load(Ordering::Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn each_retry_is_sent_through_a_fresh_clone_made_ready_first() {
        let (inner, clones, calls) = Counted::new(2);
        let mut svc = exact().layer(inner);
        get_ok(&mut svc).await;
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        // The kept copy, then one clone of it for each of the two retries.
        assert_eq!(clones.load(Ordering::Relaxed), 3);
        // The service the caller made ready was called once and is ready to be made ready
        // again: the next request goes through it, not through a copy.
        get_ok(&mut svc).await;
        assert_eq!(clones.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn a_send_service_that_is_not_sync_still_makes_send_futures() {
        // tower's `BoxCloneService` is `Send` but not `Sync`.
        let inner: tower::util::BoxCloneService<Request<ReplayBody<Full<Bytes>>>, _, BoxError> =
            tower::util::BoxCloneService::new(Script::always(Reply::status(200)));
        assert_service_and_future_send(RetryLayer::new().layer(inner));
    }
}
