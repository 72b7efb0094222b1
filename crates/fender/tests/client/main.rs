//! Integration tests of `fender::ClientLayer`, the composed client stack: every timing fact on a
//! paused clock, plus a real socket.

use std::time::Duration;

use bytes::Bytes;
use fender::circuit_breaker::{CircuitBreakerLayer, State};
use fender::client::HostKey;
use fender::{ApiError, ClientLayer, ErrorCode, Origin, RetryLayer};
use fender_testkit::{Plan, Reply, Upstream};
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn key(uri: &str) -> HostKey {
    let (parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
    HostKey::of_parts(&parts)
}

async fn call<S>(svc: &mut S, uri: &str) -> Result<http::Response<S::Body>, ApiError>
where
    S: Service<
            Request<Full<Bytes>>,
            Response = http::Response<<S as HasBody>::Body>,
            Error = ApiError,
        > + HasBody,
{
    svc.ready().await?.call(get(uri)).await
}

/// Names the response body type of a stack, so the helper above stays generic.
trait HasBody {
    type Body;
}

impl<S, B> HasBody for S
where
    S: Service<Request<Full<Bytes>>, Response = http::Response<B>>,
{
    type Body = B;
}

mod timeouts {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn five_timed_out_attempts_open_the_circuit_and_the_next_request_fails_at_once() {
        let upstream = Upstream::new(Reply::hang());
        let mut svc = ClientLayer::new()
            .retry(RetryLayer::new().max_attempts(1))
            .attempt_timeout(secs(1))
            .layer(upstream.service());
        for _ in 0..5 {
            let err = call(&mut svc, "http://hangs.test/").await.unwrap_err();
            assert_eq!(err.code(), &ErrorCode::Timeout);
        }
        assert_eq!(upstream.count(), 5);
        let start = Instant::now();
        let err = call(&mut svc, "http://hangs.test/").await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
        assert_eq!(err.origin(), Origin::Local);
        assert!(err.retry_after().is_some_and(|d| d > Duration::ZERO));
        assert_eq!(
            upstream.count(),
            5,
            "the open circuit never reached the upstream"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn timed_out_attempts_are_retried_and_counted_by_the_breaker() {
        let upstream = Upstream::new(Plan::sequence([Reply::hang(), Reply::ok()]));
        let layer = ClientLayer::new().attempt_timeout(secs(1));
        let handle = layer.handle();
        let mut svc = layer.layer(upstream.service());
        let res = call(&mut svc, "http://slow.test/").await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(upstream.count(), 2);
        let counters = handle
            .breaker(&key("http://slow.test/"))
            .unwrap()
            .counters();
        assert_eq!((counters.failures, counters.successes), (1, 1));
    }
}

mod per_host {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn failures_of_one_host_never_refuse_requests_to_another() {
        let upstream = Upstream::new(Plan::from_fn(|req| {
            if req.uri.host() == Some("down.test") {
                Reply::status(503)
            } else {
                Reply::ok()
            }
        }));
        let layer = ClientLayer::new().retry(RetryLayer::new().max_attempts(1));
        let handle = layer.handle();
        let mut svc = layer.layer(upstream.service());
        for _ in 0..10 {
            let _ = call(&mut svc, "http://down.test/").await;
        }
        assert_eq!(
            handle.breaker(&key("http://down.test/")).unwrap().state(),
            State::Open
        );
        for _ in 0..10 {
            let res = call(&mut svc, "http://up.test/").await.unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        }
        assert_eq!(
            handle.breaker(&key("http://up.test/")).unwrap().state(),
            State::Closed
        );
    }

    #[test]
    fn host_keys_are_scheme_host_and_port_without_userinfo() {
        let k = key("https://alice:s3cret@API.Example/path?q=1");
        assert_eq!(k.to_string(), "https://api.example:443");
        assert_eq!(key("http://api.example/").port(), Some(80));
        assert_eq!(
            key("http://api.example:8080/").to_string(),
            "http://api.example:8080"
        );
        assert_ne!(key("http://api.example/"), key("https://api.example/"));
    }

    #[tokio::test(start_paused = true)]
    async fn the_host_map_stays_within_max_keys() {
        let upstream = Upstream::new(Reply::ok());
        let layer = ClientLayer::new().max_keys(8);
        let handle = layer.handle();
        let mut svc = layer.layer(upstream.service());
        for n in 0..100 {
            call(&mut svc, &format!("http://host{n}.test/"))
                .await
                .unwrap();
        }
        assert_eq!(handle.len(), 8);
    }
}

mod handle {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_handle_taken_before_the_settings_sees_the_services_state_changes() {
        let upstream = Upstream::new(Reply::status(503));
        let layer = ClientLayer::new();
        let handle = layer.handle();
        let layer = layer
            .retry(RetryLayer::new().max_attempts(1))
            .breaker(CircuitBreakerLayer::new().open_duration(secs(5)))
            .max_keys(4);
        let mut svc = layer.layer(upstream.service());
        for _ in 0..5 {
            let _ = call(&mut svc, "http://a.test/").await;
        }
        assert_eq!(handle.hosts(), [key("http://a.test/")]);
        assert_eq!(
            handle.breaker(&key("http://a.test/")).unwrap().state(),
            State::Open
        );
    }
}

mod pushback {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_holds_new_requests_to_the_host_until_it_runs_out() {
        let upstream = Upstream::new(Plan::sequence([
            Reply::retry_after_secs(429, 5),
            Reply::ok(),
        ]));
        let layer = ClientLayer::new().retry(RetryLayer::new().max_attempts(1));
        let mut svc = layer.layer(upstream.service());
        let err = call(&mut svc, "http://busy.test/").await.unwrap_err();
        assert_eq!(err.status(), StatusCode::TOO_MANY_REQUESTS);
        // A new request waits for the server's 5 s before it is sent.
        let start = Instant::now();
        let res = call(&mut svc, "http://busy.test/").await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(start.elapsed(), secs(5));
        let received = upstream.received();
        assert_eq!(received.len(), 2);
        assert_eq!(received[1].at - received[0].at, secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_cannot_wait_fails_at_once_with_the_servers_code_and_the_time_left() {
        let upstream = Upstream::new(Reply::retry_after_secs(503, 30));
        let layer = ClientLayer::new().retry(RetryLayer::new().max_attempts(1).deadline(secs(10)));
        let mut svc = layer.layer(upstream.service());
        let _ = call(&mut svc, "http://maint.test/").await.unwrap_err();
        tokio::time::advance(secs(1)).await;
        let start = Instant::now();
        let err = call(&mut svc, "http://maint.test/").await.unwrap_err();
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
        assert_eq!(err.origin(), Origin::Local);
        assert_eq!(err.retry_after(), Some(secs(29)));
        assert_eq!(upstream.count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn held_requests_are_released_a_few_at_a_time_then_ramped() {
        let upstream = Upstream::new(Plan::sequence([
            Reply::retry_after_secs(429, 2),
            Reply::ok().delay(Duration::from_millis(100)),
        ]));
        let layer = ClientLayer::new().retry(RetryLayer::new().max_attempts(1));
        let mut svc = layer.layer(upstream.service());
        let _ = call(&mut svc, "http://herd.test/").await.unwrap_err();
        let mut waiting = Vec::new();
        for _ in 0..50 {
            let fut = ServiceExt::<Request<Full<Bytes>>>::ready(&mut svc)
                .await
                .unwrap()
                .call(get("http://herd.test/"));
            waiting.push(tokio::spawn(fut));
        }
        tokio::time::sleep(secs(2) + Duration::from_millis(50)).await;
        // The hold ended: three probes went, the rest wait for one to come back.
        assert_eq!(upstream.count(), 1 + 3);
        for task in waiting {
            assert_eq!(task.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        let received = upstream.received();
        let released: Vec<_> = received[1..].iter().map(|r| r.at).collect();
        let first = released[0];
        let within_100ms = released
            .iter()
            .filter(|&&at| at - first < Duration::from_millis(100))
            .count();
        assert!(
            within_100ms < 10,
            "{within_100ms} released in the first 100 ms"
        );
        assert_eq!(released.len(), 50);
    }
}

mod socket {
    use super::*;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    #[tokio::test]
    async fn the_readme_client_works_over_a_real_socket() {
        let upstream = Upstream::new(Plan::sequence([Reply::status(503), Reply::ok()]));
        let server = upstream.serve().await;
        let client = tower::ServiceBuilder::new()
            .layer(
                ClientLayer::new().retry(RetryLayer::new().base_delay(Duration::from_millis(10))),
            )
            .service(Client::builder(TokioExecutor::new()).build_http());
        let res = client
            .oneshot(get(&server.url("/items").to_string()))
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(upstream.count(), 2);
    }

    #[tokio::test]
    async fn an_envelope_error_over_a_socket_becomes_one_api_error() {
        let upstream = Upstream::new(Reply::envelope(404, "NOT_FOUND", "no such item"));
        let server = upstream.serve().await;
        let client = ServiceBuilderExt::client(Client::builder(TokioExecutor::new()).build_http());
        let err = client
            .oneshot(get(&server.url("/items/9").to_string()))
            .await
            .unwrap_err();
        assert_eq!(err.code(), &ErrorCode::NotFound);
        assert_eq!(err.message(), "no such item");
        assert_eq!(upstream.count(), 1);
    }

    struct ServiceBuilderExt;

    impl ServiceBuilderExt {
        fn client<S>(inner: S) -> fender::client::ClientStack<S> {
            ClientLayer::new().layer(inner)
        }
    }
}

mod body_deadline {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test(start_paused = true)]
    async fn a_body_that_stalls_fails_at_the_body_timeout_instead_of_hanging() {
        // 10 chunks, one every 2 s: the head arrives at once, the body would take 20 s.
        let upstream = Upstream::new(Reply::drip("x", 10, secs(2)));
        let mut svc = ClientLayer::new()
            .attempt_timeout(secs(3))
            .body_timeout(secs(5))
            .layer(upstream.service());
        let res = call(&mut svc, "http://drip.test/").await.unwrap();
        let start = Instant::now();
        let err = res.into_body().collect().await.unwrap_err();
        assert_eq!(start.elapsed(), secs(5));
        let api = err.downcast_ref::<ApiError>().unwrap();
        assert_eq!(api.code(), &ErrorCode::Timeout);
        assert!(
            api.source_error()
                .is_some_and(|e| e.is::<fender::client::BodyTimeout>())
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_deadline_covers_the_body() {
        let upstream = Upstream::new(Reply::drip("x", 10, secs(2)));
        let mut svc = ClientLayer::new()
            .retry(RetryLayer::new().deadline(secs(7)))
            .layer(upstream.service());
        let start = Instant::now();
        let res = call(&mut svc, "http://drip.test/").await.unwrap();
        let err = res.into_body().collect().await.unwrap_err();
        assert_eq!(start.elapsed(), secs(7));
        assert!(err.downcast_ref::<ApiError>().is_some());
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_that_finishes_in_time_is_untouched() {
        let upstream = Upstream::new(Reply::drip("ab", 3, secs(1)));
        let mut svc = ClientLayer::new()
            .body_timeout(secs(5))
            .layer(upstream.service());
        let res = call(&mut svc, "http://drip.test/").await.unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ababab");
    }
}

mod herd {
    use super::*;

    /// The busiest 100 ms of arrivals after the first wave.
    fn peak_after_first_wave(upstream: &Upstream, start: Instant) -> usize {
        let mut times: Vec<_> = upstream
            .received()
            .iter()
            .map(|r| r.at - start)
            .filter(|&at| at > Duration::ZERO)
            .collect();
        times.sort();
        let mut peak = 0;
        let mut low = 0;
        for high in 0..times.len() {
            while times[high] - times[low] >= Duration::from_millis(100) {
                low += 1;
            }
            peak = peak.max(high - low + 1);
        }
        peak
    }

    #[tokio::test(start_paused = true)]
    async fn a_herd_that_failed_together_is_spread_and_then_allowed_through() {
        let upstream = Upstream::new(
            Plan::phases()
                .starting_now()
                .then(secs(1), Reply::status(503).delay(Duration::from_millis(20)))
                .finally(Reply::ok().delay(Duration::from_millis(20))),
        );
        let start = Instant::now();
        let layer = ClientLayer::new();
        let handle = layer.handle();
        let svc = layer.layer(upstream.service());
        let tasks: Vec<_> = (0..1000)
            .map(|_| tokio::spawn(svc.clone().oneshot(get("http://herd.test/"))))
            .collect();
        let mut ok = 0;
        let mut errors = std::collections::BTreeMap::new();
        for task in tasks {
            match task.await.unwrap() {
                Ok(_) => ok += 1,
                Err(e) => {
                    *errors
                        .entry(format!("{} {:?} {}", e.code(), e.origin(), e.message()))
                        .or_insert(0) += 1
                }
            }
        }
        assert!(ok >= 900, "{ok} of 1000 succeeded: {errors:?}");
        let peak = peak_after_first_wave(&upstream, start);
        assert!(peak <= 150, "{peak} arrivals in the busiest 100 ms");
        let breaker = handle.breaker(&key("http://herd.test/")).unwrap();
        assert_eq!(
            breaker.state(),
            State::Closed,
            "a herd's own retries do not trip it"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_sustained_outage_is_not_retried_beyond_the_budget() {
        let upstream = Upstream::new(Reply::status(503));
        let layer = ClientLayer::new().no_breaker();
        let svc = layer.layer(upstream.service());
        let tasks: Vec<_> = (0..500)
            .map(|_| tokio::spawn(svc.clone().oneshot(get("http://down.test/"))))
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err());
        }
        // 500 first attempts, then no more than the budget's 20% and its floor.
        assert!(
            upstream.count() <= 500 + 100 + 10 * 5,
            "{}",
            upstream.count()
        );
    }
}
