//! The `metrics` feature: every metric of the table in `fender::metrics`, with its labels and
//! values, recorded by a debugging recorder on a paused clock.
//!
//! Each test runs on its own current-thread runtime inside `metrics::with_local_recorder`, so
//! every task of the test (the ones it spawns too) records into its own recorder.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use fender::circuit_breaker::{CircuitBreakerLayer, HostKey};
use fender::classify::{Class, Classify, ContractClassifier, Outcome};
use fender::metrics::*;
use fender::retry::{RetryBudget, RetryLayer};
use fender::{ApiError, ClientLayer, ErrorCode, ErrorEnvelopeLayer};
use fender_testkit::{Plan, Reply, Upstream};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn get(uri: &str) -> Request<Full<Bytes>> {
    Request::get(uri).body(Full::new(Bytes::new())).unwrap()
}

fn host(uri: &str) -> String {
    let (parts, ()) = Request::get(uri).body(()).unwrap().into_parts();
    HostKey::of_parts(&parts).to_string()
}

/// What a test recorded.
struct Recorded(Vec<(String, Vec<(String, String)>, DebugValue)>);

impl Recorded {
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<&DebugValue> {
        self.0.iter().find_map(|(n, l, value)| {
            let same = n == name
                && l.len() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v));
            same.then_some(value)
        })
    }

    /// A counter's value; 0 when it was never recorded.
    fn counter(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        match self.find(name, labels) {
            Some(DebugValue::Counter(n)) => *n,
            Some(other) => panic!("{name} is not a counter: {other:?}"),
            None => 0,
        }
    }

    fn gauge(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        match self.find(name, labels)? {
            DebugValue::Gauge(v) => Some(v.into_inner()),
            other => panic!("{name} is not a gauge: {other:?}"),
        }
    }

    fn histogram(&self, name: &str, labels: &[(&str, &str)]) -> Vec<f64> {
        match self.find(name, labels) {
            Some(DebugValue::Histogram(values)) => values.iter().map(|v| v.into_inner()).collect(),
            Some(other) => panic!("{name} is not a histogram: {other:?}"),
            None => Vec::new(),
        }
    }

    /// Every series of `name`.
    fn series(&self, name: &str) -> usize {
        self.0.iter().filter(|(n, ..)| n == name).count()
    }
}

/// Runs a test on a paused current-thread runtime with its own recorder, and returns what was
/// recorded.
fn recorded<F: Future<Output = ()>>(test: impl FnOnce() -> F) -> Recorded {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(test());
    });
    Recorded(
        snapshotter
            .snapshot()
            .into_vec()
            .into_iter()
            .map(|(key, _, _, value)| {
                let (name, labels) = key.into_parts().1.into_parts();
                let labels = labels
                    .into_iter()
                    .map(|l| (l.key().to_owned(), l.value().to_owned()))
                    .collect();
                (name.as_str().to_owned(), labels, value)
            })
            .collect(),
    )
}

mod retry {
    use super::*;

    #[test]
    fn a_retried_request_counts_each_attempt_with_its_latency_and_the_retry_by_reason() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Plan::sequence([
                Reply::status(503).delay(ms(250)),
                Reply::ok().delay(ms(40)),
            ]));
            let res = RetryLayer::new()
                .no_budget()
                .layer(upstream.service())
                .oneshot(get("http://api.test/orders/42?token=secret"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::OK);
        });
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "success")]), 1);
        assert_eq!(m.series(REQUESTS_TOTAL), 1);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "server_error")]), 1);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "success")]), 1);
        assert_eq!(
            m.histogram(ATTEMPT_DURATION_SECONDS, &[("class", "server_error")]),
            [0.25]
        );
        assert_eq!(
            m.histogram(ATTEMPT_DURATION_SECONDS, &[("class", "success")]),
            [0.04]
        );
        assert_eq!(m.counter(RETRIES_TOTAL, &[("reason", "server_error")]), 1);
        assert_eq!(m.series(RETRIES_TOTAL), 1);
        assert_eq!(m.counter(RETRY_BUDGET_REFUSALS_TOTAL, &[]), 0);
    }

    #[test]
    fn a_timed_out_attempt_is_timed_at_its_timeout() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Reply::hang());
            let err = RetryLayer::new()
                .max_attempts(2)
                .no_budget()
                .attempt_timeout(ms(500))
                .layer(upstream.service())
                .oneshot(get("http://slow.test/"))
                .await
                .unwrap_err();
            assert_eq!(
                Class::Timeout,
                ContractClassifier.classify(Outcome::Error(&*err))
            );
        });
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "timeout")]), 2);
        assert_eq!(
            m.histogram(ATTEMPT_DURATION_SECONDS, &[("class", "timeout")]),
            [0.5, 0.5]
        );
        assert_eq!(m.counter(RETRIES_TOTAL, &[("reason", "timeout")]), 1);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "timeout")]), 1);
    }

    #[test]
    fn a_retry_the_budget_refuses_is_counted_and_the_request_ends_with_its_last_class() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Reply::status(502));
            let res = RetryLayer::new()
                .budget(RetryBudget::new(Duration::from_secs(10), 0, 0.0))
                .layer(upstream.service())
                .oneshot(get("http://api.test/"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
            assert_eq!(upstream.count(), 1);
        });
        assert_eq!(m.counter(RETRY_BUDGET_REFUSALS_TOTAL, &[]), 1);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "server_error")]), 1);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "server_error")]), 1);
        assert_eq!(m.series(RETRIES_TOTAL), 0);
    }

    #[test]
    fn the_layers_own_classifier_decides_the_class_of_attempts_and_retries() {
        let m = recorded(|| async {
            // This upstream's 409 means "still replicating": transient, by this classifier.
            let classifier = |outcome: Outcome<'_>| match outcome {
                Outcome::Response {
                    status: StatusCode::CONFLICT,
                    ..
                } => Class::ServerError,
                other => ContractClassifier.classify(other),
            };
            let upstream = Upstream::new(Plan::sequence([Reply::status(409), Reply::status(404)]));
            let res = RetryLayer::new()
                .max_attempts(2)
                .no_budget()
                .classifier(classifier)
                .layer(upstream.service())
                .oneshot(get("http://api.test/"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND);
        });
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "server_error")]), 1);
        assert_eq!(m.counter(RETRIES_TOTAL, &[("reason", "server_error")]), 1);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "client_error")]), 1);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "client_error")]), 1);
        assert_eq!(m.series(REQUESTS_TOTAL), 1);
    }

    #[test]
    fn a_request_sent_once_counts_one_attempt_and_one_request() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Reply::status(404).delay(ms(30)));
            let res = RetryLayer::new()
                .max_attempts(1)
                .layer(upstream.service())
                .oneshot(get("http://api.test/"))
                .await
                .unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND);
        });
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "client_error")]), 1);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "client_error")]), 1);
        assert_eq!(
            m.histogram(ATTEMPT_DURATION_SECONDS, &[("class", "client_error")]),
            [0.03]
        );
        assert_eq!(m.series(RETRIES_TOTAL), 0);
    }
}

mod breaker {
    use super::*;

    #[test]
    fn a_standalone_breaker_reports_its_state_and_refusals_under_the_fixed_key() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Reply::status(503));
            let svc = CircuitBreakerLayer::new()
                .consecutive_failures(2)
                .layer(upstream.service());
            for _ in 0..2 {
                let res = svc.clone().oneshot(get("http://a.test/")).await.unwrap();
                assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
            }
            assert!(svc.oneshot(get("http://a.test/")).await.is_err());
            assert_eq!(upstream.count(), 2);
        });
        assert_eq!(UNKEYED_BREAKER, "default");
        assert_eq!(m.gauge(CIRCUIT_STATE, &[("key", "default")]), Some(1.0));
        assert_eq!(
            m.counter(
                CIRCUIT_TRANSITIONS_TOTAL,
                &[("key", "default"), ("from", "closed"), ("to", "open")]
            ),
            1
        );
        assert_eq!(m.series(CIRCUIT_TRANSITIONS_TOTAL), 1);
        assert_eq!(
            m.counter(LOCAL_REJECTIONS_TOTAL, &[("reason", "circuit_open")]),
            1
        );
    }

    #[test]
    fn a_breaker_per_host_reports_closed_when_it_is_made() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Reply::ok());
            let svc = CircuitBreakerLayer::new()
                .per_host()
                .layer(upstream.service());
            svc.oneshot(get("http://b.test/path/123")).await.unwrap();
        });
        assert_eq!(
            m.gauge(CIRCUIT_STATE, &[("key", &host("http://b.test/"))]),
            Some(0.0)
        );
        assert_eq!(m.series(CIRCUIT_STATE), 1);
        assert_eq!(m.series(CIRCUIT_TRANSITIONS_TOTAL), 0);
    }
}

mod client {
    use super::*;

    #[test]
    fn the_client_stack_reports_a_hosts_circuit_through_open_half_open_and_back() {
        let key = host("http://down.test/");
        let m = recorded(|| async {
            let upstream = Upstream::new(
                Plan::phases()
                    .then(Duration::from_secs(5), Reply::status(503))
                    .finally(Reply::ok()),
            );
            let layer = ClientLayer::new()
                .retry(RetryLayer::new().max_attempts(1))
                .breaker(
                    CircuitBreakerLayer::new()
                        .consecutive_failures(3)
                        .open_duration(Duration::from_secs(10))
                        .close_after(1)
                        .no_ramp(),
                )
                .no_throttle();
            let svc = layer.layer(upstream.service());
            for _ in 0..3 {
                let err = svc
                    .clone()
                    .oneshot(get("http://down.test/"))
                    .await
                    .unwrap_err();
                assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
            }
            // Open: refused locally, never sent.
            let err = svc
                .clone()
                .oneshot(get("http://down.test/"))
                .await
                .unwrap_err();
            assert_eq!(err.class(), Class::Rejected);
            assert_eq!(upstream.count(), 3);
            tokio::time::advance(Duration::from_secs(11)).await;
            // The probe succeeds and closes the circuit.
            svc.oneshot(get("http://down.test/")).await.unwrap();
        });
        let transition = |from, to| {
            m.counter(
                CIRCUIT_TRANSITIONS_TOTAL,
                &[("key", &key), ("from", from), ("to", to)],
            )
        };
        assert_eq!(transition("closed", "open"), 1);
        assert_eq!(transition("open", "half_open"), 1);
        assert_eq!(transition("half_open", "closed"), 1);
        assert_eq!(m.series(CIRCUIT_TRANSITIONS_TOTAL), 3);
        assert_eq!(m.gauge(CIRCUIT_STATE, &[("key", &key)]), Some(0.0));
        assert_eq!(
            m.counter(LOCAL_REJECTIONS_TOTAL, &[("reason", "circuit_open")]),
            1
        );
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "rejected")]), 1);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "server_error")]), 3);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "success")]), 1);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "rejected")]), 0);
        assert_eq!(m.counter(ATTEMPTS_TOTAL, &[("class", "server_error")]), 3);
    }

    /// A failure that opens a one-failure breaker on `flaky.test`, then, after its open period,
    /// one probe that succeeds: the circuit is left half-open with `close_after(2)`, and
    /// recovering with `close_after(1)`.
    async fn trip_and_probe_once(close_after: u32, replies: Vec<Reply>) {
        let upstream = Upstream::new(Plan::sequence(replies));
        let layer = ClientLayer::new()
            .retry(RetryLayer::new().max_attempts(1))
            .breaker(
                CircuitBreakerLayer::new()
                    .consecutive_failures(1)
                    .open_duration(Duration::from_secs(1))
                    .half_open_probes(1)
                    .close_after(close_after)
                    .ramp(Duration::from_secs(30)),
            )
            .no_throttle();
        let svc = layer.layer(upstream.service());
        let _ = svc.clone().oneshot(get("http://flaky.test/")).await;
        tokio::time::advance(Duration::from_secs(2)).await;
        svc.oneshot(get("http://flaky.test/")).await.unwrap();
    }

    #[test]
    fn the_circuit_gauge_reads_two_while_half_open_and_three_while_recovering() {
        let key = host("http://flaky.test/");
        let m =
            recorded(|| trip_and_probe_once(2, vec![Reply::status(503), Reply::ok(), Reply::ok()]));
        // One probe of two came back: still half-open.
        assert_eq!(m.gauge(CIRCUIT_STATE, &[("key", &key)]), Some(2.0));
        let m = recorded(|| trip_and_probe_once(1, vec![Reply::status(503), Reply::ok()]));
        assert_eq!(m.gauge(CIRCUIT_STATE, &[("key", &key)]), Some(3.0));
        assert_eq!(
            m.counter(
                CIRCUIT_TRANSITIONS_TOTAL,
                &[("key", &key), ("from", "half_open"), ("to", "recovering")]
            ),
            1
        );
    }

    #[test]
    fn a_request_a_servers_retry_after_holds_too_long_is_a_pushback_rejection() {
        let m = recorded(|| async {
            let upstream = Upstream::new(Reply::retry_after_secs(503, 30));
            let layer = ClientLayer::new().retry(
                RetryLayer::new()
                    .max_attempts(1)
                    .deadline(Duration::from_secs(10)),
            );
            let svc = layer.layer(upstream.service());
            let _ = svc
                .clone()
                .oneshot(get("http://maint.test/"))
                .await
                .unwrap_err();
            let err = svc.oneshot(get("http://maint.test/")).await.unwrap_err();
            assert_eq!(err.code(), &ErrorCode::ServiceUnavailable);
            assert_eq!(upstream.count(), 1);
        });
        assert_eq!(
            m.counter(LOCAL_REJECTIONS_TOTAL, &[("reason", "pushback")]),
            1
        );
        assert_eq!(m.series(LOCAL_REJECTIONS_TOTAL), 1);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "server_error")]), 1);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "rejected")]), 1);
    }

    #[test]
    fn requests_the_throttle_sheds_are_throttle_rejections_and_never_attempts() {
        let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let seen = sent.clone();
        let m = recorded(|| async move {
            let upstream = Upstream::new(Reply::status(503));
            let layer = ClientLayer::new()
                .retry(RetryLayer::new().max_attempts(1))
                .no_breaker();
            let svc = layer.layer(upstream.service());
            for _ in 0..200 {
                let _ = svc.clone().oneshot(get("http://sick.test/")).await;
            }
            seen.store(
                upstream.count() as u64,
                std::sync::atomic::Ordering::Relaxed,
            );
        });
        let sent = sent.load(std::sync::atomic::Ordering::Relaxed);
        let shed = m.counter(LOCAL_REJECTIONS_TOTAL, &[("reason", "throttle")]);
        assert!(shed > 0, "a host failing every request is throttled");
        assert_eq!(shed + sent, 200);
        assert_eq!(m.counter(REQUESTS_TOTAL, &[("class", "rejected")]), shed);
        assert_eq!(
            m.counter(ATTEMPTS_TOTAL, &[("class", "server_error")]),
            sent
        );
        assert_eq!(m.series(ATTEMPTS_TOTAL), 1);
    }
}

mod envelope {
    use super::*;

    #[test]
    fn the_server_counts_envelopes_by_code_and_status_class_and_never_an_unknown_code() {
        let m = recorded(|| async {
            let svc = ErrorEnvelopeLayer::new().layer(tower::service_fn(
                |req: Request<Full<Bytes>>| async move {
                    let mut res = Response::new(Full::new(Bytes::new()));
                    match req.uri().path() {
                        "/missing" => *res.status_mut() = StatusCode::NOT_FOUND,
                        "/down" => *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE,
                        "/quota" => {
                            let api = ApiError::new(
                                ErrorCode::Other("QUOTA_EXHAUSTED".into()),
                                "over quota",
                            )
                            .with_status(StatusCode::TOO_MANY_REQUESTS);
                            *res.status_mut() = api.status();
                            res.extensions_mut().insert(api);
                        }
                        "/odd" => *res.status_mut() = StatusCode::from_u16(700).unwrap(),
                        _ => {}
                    }
                    Ok::<_, std::convert::Infallible>(res)
                },
            ));
            for path in ["/missing", "/missing", "/down", "/quota", "/odd", "/fine"] {
                let uri = format!("http://server.test{path}");
                svc.clone().oneshot(get(&uri)).await.unwrap();
            }
        });
        let envelopes = |code, class| {
            m.counter(
                ENVELOPE_RESPONSES_TOTAL,
                &[("code", code), ("status_class", class)],
            )
        };
        assert_eq!(envelopes("NOT_FOUND", "4xx"), 2);
        assert_eq!(envelopes("SERVICE_UNAVAILABLE", "5xx"), 1);
        assert_eq!(envelopes("OTHER", "4xx"), 1);
        assert_eq!(envelopes("INTERNAL_ERROR", "other"), 1);
        assert_eq!(m.series(ENVELOPE_RESPONSES_TOTAL), 4);
    }
}

#[test]
fn every_name_has_the_prefix_and_no_label_value_is_a_path_a_query_or_a_peers_string() {
    let m = recorded(|| async {
        let upstream = Upstream::new(Plan::sequence([Reply::status(500), Reply::ok()]));
        let svc = ClientLayer::new().layer(upstream.service());
        svc.oneshot(get("http://user:pw@api.test/orders/42?token=secret"))
            .await
            .unwrap();
        let server = ErrorEnvelopeLayer::new().layer(tower::service_fn(
            |_req: Request<Full<Bytes>>| async {
                let api = ApiError::new(ErrorCode::Other("SECRET_CODE".into()), "no");
                let mut res = Response::new(Full::new(Bytes::new()));
                *res.status_mut() = api.status();
                res.extensions_mut().insert(api);
                Ok::<_, std::convert::Infallible>(res)
            },
        ));
        server.oneshot(get("http://server.test/x/y")).await.unwrap();
    });
    assert!(!m.0.is_empty());
    for (name, labels, _) in &m.0 {
        assert!(name.starts_with("fender_"), "{name}");
        for (_, value) in labels {
            for secret in [
                "/orders",
                "42",
                "token",
                "secret",
                "user",
                "pw",
                "SECRET_CODE",
                "/x",
            ] {
                assert!(!value.contains(secret), "{name}: {value}");
            }
        }
    }
    assert_eq!(m.counter(RETRIES_TOTAL, &[("reason", "server_error")]), 1);
}

#[test]
fn describe_tells_the_recorder_every_metric_of_the_table() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, describe);
    // The debugging recorder keeps descriptions of the metrics it has seen: record one of each.
    metrics::with_local_recorder(&recorder, || {
        for name in [
            REQUESTS_TOTAL,
            ATTEMPTS_TOTAL,
            RETRIES_TOTAL,
            RETRY_BUDGET_REFUSALS_TOTAL,
            LOCAL_REJECTIONS_TOTAL,
            CIRCUIT_TRANSITIONS_TOTAL,
            ENVELOPE_RESPONSES_TOTAL,
        ] {
            metrics::counter!(name).increment(1);
        }
        metrics::gauge!(CIRCUIT_STATE).set(0.0);
        metrics::histogram!(ATTEMPT_DURATION_SECONDS).record(0.0);
    });
    let snapshot = snapshotter.snapshot().into_vec();
    assert_eq!(snapshot.len(), 9);
    for (key, unit, description, _) in snapshot {
        assert!(description.is_some(), "{}", key.key().name());
        if key.key().name() == ATTEMPT_DURATION_SECONDS {
            assert_eq!(unit, Some(metrics::Unit::Seconds));
        }
    }
}
