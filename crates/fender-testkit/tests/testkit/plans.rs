//! Which reply the n-th request gets.

use std::time::Duration;

use bytes::Bytes;
use fender_testkit::{Plan, Reply, Upstream};
use http::Request;
use http_body_util::Empty;
use tower::ServiceExt;

/// Sends `n` requests in process and returns the labels of the replies.
async fn labels(upstream: &Upstream, n: usize) -> Vec<String> {
    for _ in 0..n {
        let request = Request::get("/").body(Empty::<Bytes>::new()).unwrap();
        // A reset is an error in process; only the record matters here.
        let _ = upstream.service().oneshot(request).await;
    }
    upstream.received().into_iter().map(|r| r.reply).collect()
}

#[tokio::test]
async fn a_sequence_repeats_its_last_reply() {
    let upstream = Upstream::new(Plan::sequence([
        Reply::status(503),
        Reply::status(502),
        Reply::ok(),
    ]));

    assert_eq!(
        labels(&upstream, 5).await,
        ["503", "502", "200", "200", "200"]
    );
}

#[tokio::test]
async fn a_reply_is_a_plan_that_always_gives_it() {
    let upstream = Upstream::new(Reply::status(418));

    assert_eq!(labels(&upstream, 3).await, ["418", "418", "418"]);
}

#[tokio::test]
async fn random_plans_are_reproducible_for_a_seed() {
    let plan = |seed| {
        Plan::random(seed)
            .with(0.20, Reply::status(503))
            .with(0.05, Reply::reset())
            .otherwise(Reply::ok())
    };
    let a = labels(&Upstream::new(plan(7)), 200).await;
    let b = labels(&Upstream::new(plan(7)), 200).await;
    let c = labels(&Upstream::new(plan(8)), 200).await;

    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[tokio::test]
async fn random_plans_give_each_reply_its_share() {
    let upstream = Upstream::new(
        Plan::random(42)
            .with(0.20, Reply::status(503))
            .with(0.05, Reply::reset())
            .otherwise(Reply::ok()),
    );
    let n = 10_000;

    let labels = labels(&upstream, n).await;

    let share = |label: &str| labels.iter().filter(|l| *l == label).count() as f64 / n as f64;
    assert!((share("503") - 0.20).abs() < 0.02, "503: {}", share("503"));
    assert!(
        (share("reset") - 0.05).abs() < 0.01,
        "reset: {}",
        share("reset")
    );
    assert!((share("200") - 0.75).abs() < 0.02, "200: {}", share("200"));
}

#[test]
#[should_panic(expected = "more than 1.0")]
fn random_shares_may_not_exceed_one() {
    let _ = Plan::random(1)
        .with(0.7, Reply::status(503))
        .with(0.4, Reply::ok());
}

#[tokio::test(start_paused = true)]
async fn phases_follow_the_paused_clock() {
    let upstream = Upstream::new(
        Plan::phases()
            .then(Duration::from_secs(10), Plan::always(Reply::ok()))
            .then(Duration::from_secs(30), Plan::always(Reply::status(503)))
            .finally(Plan::always(Reply::status(204))),
    );

    // The clock starts at the first request.
    tokio::time::advance(Duration::from_secs(100)).await;
    labels(&upstream, 1).await;
    tokio::time::advance(Duration::from_millis(9_999)).await;
    labels(&upstream, 1).await;
    tokio::time::advance(Duration::from_millis(1)).await;
    labels(&upstream, 1).await;
    tokio::time::advance(Duration::from_millis(29_999)).await;
    labels(&upstream, 1).await;
    tokio::time::advance(Duration::from_millis(1)).await;
    let all = labels(&upstream, 2).await;

    assert_eq!(all, ["200", "200", "503", "503", "204", "204"]);
}

#[tokio::test(start_paused = true)]
async fn plans_nested_in_phases_count_their_own_requests() {
    let upstream = Upstream::new(
        Plan::phases()
            .then(Duration::from_secs(5), Reply::ok())
            .then(
                Duration::from_secs(5),
                Plan::sequence([Reply::status(500), Reply::status(502)]),
            ),
    );

    labels(&upstream, 2).await;
    tokio::time::advance(Duration::from_secs(5)).await;
    labels(&upstream, 1).await;
    // Without `finally`, the last phase goes on.
    tokio::time::advance(Duration::from_secs(60)).await;
    let all = labels(&upstream, 2).await;

    assert_eq!(all, ["200", "200", "500", "502", "502"]);
}

#[tokio::test]
async fn from_fn_sees_the_request() {
    let upstream = Upstream::new(Plan::from_fn(|req| {
        if req.uri.path() == "/down" {
            Reply::status(503)
        } else {
            Reply::ok()
        }
    }));
    for path in ["/up", "/down", "/up"] {
        let request = Request::get(path).body(Empty::<Bytes>::new()).unwrap();
        upstream.service().oneshot(request).await.unwrap();
    }

    let labels: Vec<String> = upstream.received().into_iter().map(|r| r.reply).collect();
    assert_eq!(labels, ["200", "503", "200"]);
}

#[tokio::test(start_paused = true)]
async fn phases_can_start_their_clock_at_creation() {
    let upstream = Upstream::new(
        Plan::phases()
            .then(Duration::from_secs(10), Reply::ok())
            .starting_now()
            .finally(Reply::status(503)),
    );

    tokio::time::advance(Duration::from_secs(10)).await;

    assert_eq!(labels(&upstream, 1).await, ["503"]);
}
