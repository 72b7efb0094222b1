//! Integration tests of `fender::hedge::HedgeLayer`: every timing fact on a paused clock, plus
//! a real socket with the layer outside `ClientLayer`.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use fender::hedge::HedgeLayer;
use fender::retry::{IDEMPOTENCY_KEY, RetryBudget};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use tokio::time::Instant;
use tower::{Layer, Service, ServiceExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// What the upstream does with one call: after a while, a status or a reset connection.
#[derive(Clone, Copy, Debug)]
enum Step {
    Status(u64, u16),
    Reset(u64),
}

/// An upstream whose n-th call follows the n-th step (the last one repeats). Every response
/// carries `x-call: n`; every call future dropped before it finished is counted.
#[derive(Clone)]
struct Scripted {
    steps: Arc<Vec<Step>>,
    calls: Arc<AtomicUsize>,
    cancelled: Arc<AtomicUsize>,
}

impl Scripted {
    fn new(steps: impl IntoIterator<Item = Step>) -> Self {
        Scripted {
            steps: Arc::new(steps.into_iter().collect()),
            calls: Arc::default(),
            cancelled: Arc::default(),
        }
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn cancelled(&self) -> usize {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// Counts its call as cancelled when dropped before `done`.
struct Guard {
    cancelled: Arc<AtomicUsize>,
    done: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if !self.done {
            self.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

type Answer = Result<Response<Full<Bytes>>, io::Error>;

impl Service<Request<Full<Bytes>>> for Scripted {
    type Response = Response<Full<Bytes>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), io::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _request: Request<Full<Bytes>>) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let step = self.steps[n.min(self.steps.len() - 1)];
        let guard = Guard {
            cancelled: self.cancelled.clone(),
            done: false,
        };
        Box::pin(async move {
            let mut guard = guard;
            let (after, status) = match step {
                Step::Status(after, status) => (after, Some(status)),
                Step::Reset(after) => (after, None),
            };
            tokio::time::sleep(ms(after)).await;
            guard.done = true;
            match status {
                Some(status) => Ok(Response::builder()
                    .status(status)
                    .header("x-call", n)
                    .body(Full::new(Bytes::new()))
                    .unwrap()),
                None => Err(io::ErrorKind::ConnectionReset.into()),
            }
        })
    }
}

fn request(method: Method) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri("http://api.test/items")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

fn call_number(response: &Response<Full<Bytes>>) -> &str {
    response.headers()["x-call"].to_str().unwrap()
}

/// Sends one request through `layer` over `upstream`; gives the answer and how long it took.
async fn send(layer: &HedgeLayer, upstream: &Scripted, method: Method) -> (Answer, Duration) {
    let start = Instant::now();
    let answer = layer.layer(upstream.clone()).oneshot(request(method)).await;
    (answer, start.elapsed())
}

mod race {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_slow_primary_is_hedged_after_the_delay_and_the_fast_hedge_wins() {
        let upstream = Scripted::new([Step::Status(1_000, 200), Step::Status(10, 200)]);
        let layer = HedgeLayer::after(ms(100));
        let (answer, took) = send(&layer, &upstream, Method::GET).await;
        let response = answer.unwrap();
        assert_eq!(call_number(&response), "1", "the hedge's answer");
        assert_eq!(took, ms(110));
        assert_eq!(upstream.calls(), 2);
        assert_eq!(upstream.cancelled(), 1, "the slow primary was dropped");
        tokio::time::advance(ms(2_000)).await;
        assert_eq!(upstream.calls(), 2, "never a third copy");
    }

    #[tokio::test(start_paused = true)]
    async fn a_fast_primary_is_never_hedged() {
        let upstream = Scripted::new([Step::Status(10, 200)]);
        let layer = HedgeLayer::after(ms(50));
        for _ in 0..20 {
            let (answer, took) = send(&layer, &upstream, Method::GET).await;
            assert_eq!(answer.unwrap().status(), StatusCode::OK);
            assert_eq!(took, ms(10));
        }
        tokio::time::advance(ms(1_000)).await;
        assert_eq!(upstream.calls(), 20);
        assert_eq!(upstream.cancelled(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_answering_as_the_delay_runs_out_is_not_hedged() {
        let upstream = Scripted::new([Step::Status(50, 200)]);
        let (answer, _) = send(&HedgeLayer::after(ms(50)), &upstream, Method::GET).await;
        assert_eq!(call_number(&answer.unwrap()), "0");
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_failing_before_the_delay_is_returned_without_a_hedge() {
        let upstream = Scripted::new([Step::Status(10, 503), Step::Status(10, 200)]);
        let (answer, took) = send(&HedgeLayer::after(ms(50)), &upstream, Method::GET).await;
        assert_eq!(answer.unwrap().status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(took, ms(10));
        assert_eq!(upstream.calls(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_primary_failing_while_the_hedge_runs_waits_for_the_hedge() {
        // Hedge sent at 100 ms; the primary fails at 150 ms; the hedge answers at 200 ms.
        let upstream = Scripted::new([Step::Status(150, 503), Step::Status(100, 200)]);
        let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, Method::GET).await;
        let response = answer.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(call_number(&response), "1");
        assert_eq!(took, ms(200));
    }

    #[tokio::test(start_paused = true)]
    async fn a_reset_hedge_does_not_win_and_the_primary_answers() {
        let upstream = Scripted::new([Step::Status(300, 200), Step::Reset(10)]);
        let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, Method::GET).await;
        assert_eq!(call_number(&answer.unwrap()), "0");
        assert_eq!(took, ms(300));
        assert_eq!(upstream.cancelled(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn when_both_copies_fail_the_caller_gets_the_one_that_failed_last() {
        // The hedge fails first (500 at 150 ms), the primary last (503 at 200 ms).
        let upstream = Scripted::new([Step::Status(200, 503), Step::Status(50, 500)]);
        let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, Method::GET).await;
        let response = answer.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(call_number(&response), "0");
        assert_eq!(took, ms(200));

        // The primary fails first (503 at 150 ms), the hedge last (a reset at 200 ms).
        let upstream = Scripted::new([Step::Status(150, 503), Step::Reset(100)]);
        let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, Method::GET).await;
        assert_eq!(answer.unwrap_err().kind(), io::ErrorKind::ConnectionReset);
        assert_eq!(took, ms(200));
    }

    #[tokio::test(start_paused = true)]
    async fn an_answer_that_would_not_be_retried_wins_even_when_it_is_an_error_status() {
        let upstream = Scripted::new([Step::Status(1_000, 200), Step::Status(10, 404)]);
        let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, Method::GET).await;
        assert_eq!(answer.unwrap().status(), StatusCode::NOT_FOUND);
        assert_eq!(took, ms(110));
        assert_eq!(upstream.cancelled(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn dropping_the_response_future_cancels_both_copies() {
        let upstream = Scripted::new([Step::Status(1_000, 200)]);
        let service = HedgeLayer::after(ms(100)).layer(upstream.clone());
        let answer = tokio::time::timeout(ms(300), service.oneshot(request(Method::GET))).await;
        assert!(answer.is_err(), "the caller gave up first");
        assert_eq!((upstream.calls(), upstream.cancelled()), (2, 2));
    }

    #[tokio::test(start_paused = true)]
    async fn a_custom_classifier_decides_what_wins() {
        use fender::classify::{Class, Classify, ContractClassifier, Outcome};
        // This upstream answers 409 while it replicates: not an answer worth keeping.
        let classifier = |outcome: Outcome<'_>| match outcome {
            Outcome::Response {
                status: StatusCode::CONFLICT,
                ..
            } => Class::ServerError,
            other => ContractClassifier.classify(other),
        };
        let upstream = Scripted::new([Step::Status(300, 200), Step::Status(10, 409)]);
        let service = HedgeLayer::after(ms(100))
            .classifier(classifier)
            .layer(upstream.clone());
        let response = service.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
    }
}

mod idempotency {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_post_without_an_idempotency_key_is_never_hedged() {
        for method in [Method::POST, Method::PATCH] {
            let upstream = Scripted::new([Step::Status(1_000, 200), Step::Status(10, 200)]);
            let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, method).await;
            assert_eq!(call_number(&answer.unwrap()), "0");
            assert_eq!(took, ms(1_000));
            assert_eq!(upstream.calls(), 1);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_with_an_idempotency_key_is_hedged() {
        let upstream = Scripted::new([Step::Status(1_000, 200), Step::Status(10, 200)]);
        let mut post = request(Method::POST);
        post.headers_mut()
            .insert(IDEMPOTENCY_KEY, "order-42".parse().unwrap());
        let service = HedgeLayer::after(ms(100)).layer(upstream.clone());
        let response = service.oneshot(post).await.unwrap();
        assert_eq!(call_number(&response), "1");
    }

    #[tokio::test(start_paused = true)]
    async fn put_and_delete_are_hedged() {
        for method in [Method::PUT, Method::DELETE, Method::HEAD] {
            let upstream = Scripted::new([Step::Status(1_000, 200), Step::Status(10, 200)]);
            let (answer, took) = send(&HedgeLayer::after(ms(100)), &upstream, method).await;
            assert_eq!(call_number(&answer.unwrap()), "1");
            assert_eq!(took, ms(110));
        }
    }
}

mod budget {
    use super::*;
    use futures_util::future::join_all;

    /// Sends `n` requests at once through one service of `layer`; gives the upstream calls.
    async fn burst(layer: HedgeLayer, upstream: &Scripted, n: usize) -> usize {
        let service = layer.layer(upstream.clone());
        let answers = join_all((0..n).map(|_| service.clone().oneshot(request(Method::GET)))).await;
        assert!(answers.iter().all(|a| a.is_ok()));
        upstream.calls()
    }

    #[tokio::test(start_paused = true)]
    async fn the_budget_bounds_hedges_to_five_percent_of_requests_plus_the_floor() {
        // Every copy is slow, so every request asks for a hedge.
        let upstream = Scripted::new([Step::Status(1_000, 200)]);
        let calls = burst(HedgeLayer::after(ms(10)), &upstream, 1_000).await;
        // 5% of 1,000 requests, plus the floor of one per second over the 10 s window.
        assert_eq!(calls - 1_000, 50 + 10);
        assert_eq!(
            upstream.cancelled(),
            60,
            "each hedged request dropped one copy"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_shared_budget_is_drawn_on_but_not_filled_by_the_hedge_layer() {
        let upstream = Scripted::new([Step::Status(1_000, 200)]);
        // No deposits from anyone: only the floor, 2 per second over 10 s.
        let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 2, 0.5));
        let layer = HedgeLayer::after(ms(10)).budget(budget.clone());
        let calls = burst(layer, &upstream, 100).await;
        assert_eq!(calls - 100, 20);
        assert_eq!(budget.remaining(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hedge_the_budget_refuses_is_not_sent_and_the_primary_answers() {
        let upstream = Scripted::new([Step::Status(1_000, 200)]);
        let budget = Arc::new(RetryBudget::new(Duration::from_secs(10), 0, 0.0));
        let layer = HedgeLayer::after(ms(10)).budget(budget);
        let (answer, took) = send(&layer, &upstream, Method::GET).await;
        assert_eq!(answer.unwrap().status(), StatusCode::OK);
        assert_eq!(took, ms(1_000));
        assert_eq!(upstream.calls(), 1);
    }
}

mod percentile {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn percentile_mode_hedges_only_once_enough_primaries_are_timed() {
        // Calls 0..10 are the first ten requests: 100 ms, except a slow fifth one, which is
        // not hedged since the delay is not known yet. Then p50 = 100 ms: the eleventh request
        // (call 10, slow) is hedged at 100 ms and its hedge (call 11) answers in 10 ms.
        let mut steps = vec![Step::Status(100, 200); 12];
        steps[4] = Step::Status(1_000, 200);
        steps[10] = Step::Status(1_000, 200);
        steps[11] = Step::Status(10, 200);
        let upstream = Scripted::new(steps);
        let layer = HedgeLayer::percentile(0.5).min_samples(10);
        for n in 0..10 {
            let (answer, took) = send(&layer, &upstream, Method::GET).await;
            assert_eq!(call_number(&answer.unwrap()), n.to_string());
            assert_eq!(took, ms(if n == 4 { 1_000 } else { 100 }));
        }
        assert_eq!(upstream.calls(), 10, "no hedge before ten samples");
        let (answer, took) = send(&layer, &upstream, Method::GET).await;
        assert_eq!(call_number(&answer.unwrap()), "11");
        assert_eq!(took, ms(110));
    }

    #[tokio::test(start_paused = true)]
    async fn the_percentile_delay_is_raised_to_its_floor() {
        let upstream = Scripted::new([Step::Status(1, 200)]);
        let layer = HedgeLayer::percentile(0.9).min_samples(1).min_delay(ms(40));
        send(&layer, &upstream, Method::GET).await.0.unwrap();
        // p90 is 1 ms, the floor 40 ms: a request of 30 ms is not hedged.
        let upstream = Scripted::new([Step::Status(30, 200)]);
        let service = layer.layer(upstream.clone());
        service.oneshot(request(Method::GET)).await.unwrap();
        assert_eq!(upstream.calls(), 1);
        // A request of 60 ms is hedged at 40 ms.
        let upstream = Scripted::new([Step::Status(60, 200), Step::Status(10, 200)]);
        let (answer, took) = send(&layer, &upstream, Method::GET).await;
        assert_eq!(call_number(&answer.unwrap()), "1");
        assert_eq!(took, ms(50));
    }

    #[tokio::test(start_paused = true)]
    async fn posts_are_not_timed() {
        let upstream = Scripted::new([Step::Status(100, 200)]);
        let layer = HedgeLayer::percentile(0.5).min_samples(1);
        send(&layer, &upstream, Method::POST).await.0.unwrap();
        // Had the POST been timed, this GET would be hedged at 100 ms.
        let slow = Scripted::new([Step::Status(1_000, 200), Step::Status(10, 200)]);
        let (_, took) = send(&layer, &slow, Method::GET).await;
        assert_eq!(took, ms(1_000), "no sample yet, so no hedge");
        assert_eq!(slow.calls(), 1);
    }
}

#[cfg(all(feature = "circuit-breaker", feature = "envelope"))]
mod socket {
    use super::*;
    use fender::ClientLayer;
    use fender_testkit::{Plan, Reply, Upstream};
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;

    #[tokio::test]
    async fn a_slow_request_is_hedged_over_a_real_socket_outside_the_client_stack() {
        let upstream = Upstream::new(Plan::sequence([
            Reply::ok()
                .header("x-copy", "primary")
                .delay(Duration::from_secs(5)),
            Reply::ok().header("x-copy", "hedge"),
        ]));
        let server = upstream.serve().await;
        let client = tower::ServiceBuilder::new()
            .layer(HedgeLayer::after(ms(50)))
            .layer(ClientLayer::new())
            .service(Client::builder(TokioExecutor::new()).build_http());
        let request = Request::get(server.url("/items"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let response: Response<_> = client.oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["x-copy"], "hedge");
        assert_eq!(server.count(), 2);
    }
}
