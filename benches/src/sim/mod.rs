//! A resilience simulation in virtual time: callers, one client stack (or one per caller), one
//! scripted upstream, five scenarios of failures and one of slow responses, and a row per
//! client strategy (no retry, the contract's naive loop, `tower::retry`, fender's retry alone,
//! fender's default stack; for the slow responses, the default stack with and without hedging).
//!
//! Every run uses a current-thread tokio runtime with a paused clock, so minutes of scenario
//! take a fraction of a second and a seed gives exactly the same numbers every time; seeds run
//! in parallel on OS threads, a runtime each. The upstream is `fender_testkit`'s in-process
//! [`Upstream`](fender_testkit::Upstream). Under each client stack sits a [`Probe`] that logs
//! every arrival at the upstream and every `Retry-After` the stack receives, in the order they
//! happen; the callers' outcomes give the success rates.
//!
//! The measures, exactly:
//!
//! - **success**: the share of caller requests answered 2xx within the caller timeout (30 s
//!   of its offer);
//! - **load**: upstream arrivals per offered request; **outage load**: arrivals during the
//!   outage per request offered during the outage;
//! - **recovery**: seconds from the end of the outage until the success rate of the requests
//!   offered in each second is 95% or more and stays so to the end of the run;
//! - **arrivals under pushback**: arrivals at `t` whose stack had, before `t`, received a
//!   response whose `Retry-After` had not run out at `t` (received at + delay > `t`), new
//!   requests and retries alike;
//! - **peak**: the most arrivals in any 100 ms window, leaving out those at exactly t = 0;
//! - **caller p50, p99**: percentiles (nearest rank) of the time from each offer until its
//!   caller got an answer, or gave up at the caller timeout;
//! - **worst seed**: the seed with the lowest success rate.

mod goals;
mod probe;
mod report;
mod run;
mod scenario;
mod strategy;
mod sweep;

pub use goals::{Verdict, goal, goal_strategies, verdict};
pub use probe::{Event, Log, Probe, ProbeFuture, REQUEST_NUMBER};
pub use report::{count, goal_table, load, millis, pct, ratio, recovery, table};
pub use run::{
    Arrival, Measures, Outage, Outcome, Pushback, classify, measure, quantile, simulate,
};
pub use scenario::{Failure, Kind, LATENCY, Row, Scenario};
pub use strategy::{
    Client, HEDGE_AFTER, NaiveRetry, RequestBody, Strategy, TowerPolicy, TowerRng, boxed,
    fender_default, fender_hedged,
};
pub use sweep::{Job, Sweep, run_jobs, sweep, sweep_rows};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::retry::backoff::{Backoff, ExponentialBackoffMaker, MakeBackoff};

    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// A small steady scenario: `callers` callers, one request every `period` for `duration`.
    fn small(failure: Failure, callers: usize, period: Duration, duration: Duration) -> Scenario {
        Scenario {
            kind: Kind::S1,
            failure,
            callers,
            period,
            duration,
            timeout: secs(30),
        }
    }

    /// `callers` callers, one request each at t = 0.
    fn herd(failure: Failure, callers: usize) -> Scenario {
        Scenario {
            kind: Kind::S5,
            failure,
            callers,
            period: Duration::ZERO,
            duration: Duration::ZERO,
            timeout: secs(30),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_measures_on_any_number_of_threads() {
        let scenario = small(
            Failure::Transient(0.3),
            5,
            Duration::from_millis(200),
            secs(10),
        );
        let row = Row::shared(Strategy::FenderDefault);
        let first = simulate(&scenario, row, 3);
        assert_eq!(first, simulate(&scenario, row, 3));
        assert_eq!(first.offered, 5 * 50);
        assert!(first.arrivals > first.offered, "some requests were retried");
        assert_eq!(first.arrivals - first.retries, first.offered);

        let swept = sweep(&[scenario], &[row], |_| 3, 2);
        assert_eq!(swept[0].runs[2], first, "seed 3, third in order of seed");
        assert_ne!(swept[0].runs[0], first, "another seed, other measures");
    }

    #[test]
    fn a_request_not_answered_within_the_caller_timeout_fails() {
        // The naive loop's second attempt leaves 1.02 s after the offer, answered at 1.04 s.
        let mut scenario = herd(Failure::Startup { failing: secs(1) }, 1);
        let row = Row::shared(Strategy::Naive);
        scenario.timeout = Duration::from_millis(1_030);
        let late = simulate(&scenario, row, 1);
        assert_eq!((late.succeeded, late.arrivals), (0, 2));
        scenario.timeout = Duration::from_millis(1_040);
        assert_eq!(simulate(&scenario, row, 1).succeeded, 1);
    }

    #[test]
    fn peak_leaves_out_the_first_wave_at_t_zero() {
        let scenario = herd(
            Failure::Startup {
                failing: Duration::from_millis(1),
            },
            200,
        );
        let none = simulate(&scenario, Row::shared(Strategy::NoRetry), 1);
        assert_eq!((none.arrivals, none.peak), (200, 0));

        let naive = simulate(&scenario, Row::per_caller(Strategy::Naive), 1);
        assert_eq!((naive.succeeded, naive.arrivals), (200, 400));
        assert_eq!(naive.peak, 200, "every retry at 1.02 s, in one window");

        let fender = simulate(&scenario, Row::per_caller(Strategy::FenderRetry), 1);
        assert_eq!((fender.succeeded, fender.arrivals), (200, 400));
        assert!(
            fender.peak < 100,
            "proportional jitter spreads the retries over 400 ms, got a peak of {}",
            fender.peak
        );
    }

    #[test]
    fn pushback_counts_new_requests_not_only_retries() {
        let scenario = small(
            Failure::Pushback {
                from: secs(2),
                until: secs(4),
                secs: 1,
            },
            5,
            Duration::from_millis(200),
            secs(10),
        );
        let none = simulate(&scenario, Row::shared(Strategy::NoRetry), 1);
        assert_eq!(none.retries, 0);
        assert_eq!(none.pushback.retries, 0);
        // From the first 429's answer (2.02 s and a bit) to the last one's plus 1 s (5.02 s):
        // about 3 s of 25 requests/s.
        assert!(
            (60..=80).contains(&none.pushback.arrivals),
            "{:?}",
            none.pushback
        );
        // The 10 requests per 2 s of 429s fail; no more, no fewer.
        assert_eq!(none.offered - none.succeeded, 50);
    }

    #[test]
    fn fender_waits_out_retry_after_and_the_naive_loop_does_not() {
        // One request per caller, a stack per caller: only a request's own 429 pushes back.
        let scenario = small(
            Failure::Pushback {
                from: Duration::ZERO,
                until: secs(8),
                secs: 5,
            },
            20,
            secs(10),
            secs(10),
        );
        let fender = simulate(&scenario, Row::per_caller(Strategy::FenderRetry), 5);
        assert!(fender.retries > 0, "429s were retried");
        assert_eq!(fender.pushback, Pushback::default());

        let naive = simulate(&scenario, Row::per_caller(Strategy::Naive), 5);
        assert!(naive.pushback.arrivals > 0);
        assert_eq!(naive.pushback.arrivals, naive.pushback.retries);
    }

    #[test]
    fn the_default_stack_sheds_an_outage_and_recovers_within_open_duration_plus_ramp() {
        let mut scenario = small(
            Failure::Outage {
                healthy: secs(10),
                outage: secs(40),
            },
            20,
            secs(1),
            secs(100),
        );
        scenario.kind = Kind::S3;

        let default = simulate(&scenario, Row::shared(Strategy::FenderDefault), 2);
        let outage = default.outage.expect("an outage");
        assert_eq!(outage.offered, 20 * 40);
        assert!(
            outage.load() < 0.1,
            "the open circuit kept the load at {outage:?}"
        );
        let recovery = outage.recovery.expect("recovered within the run");
        assert!(recovery <= secs(40), "recovered in {recovery:?}");

        let naive = simulate(&scenario, Row::shared(Strategy::Naive), 2);
        let outage = naive.outage.expect("an outage");
        assert!(
            outage.load() > 2.5,
            "three attempts per request, got {outage:?}"
        );
        assert_eq!(outage.recovery, Some(Duration::ZERO));
    }

    fn run(seed: u64, succeeded: usize, arrivals: usize) -> Measures {
        Measures {
            seed,
            offered: 1000,
            succeeded,
            arrivals,
            retries: arrivals - 1000,
            outage: None,
            pushback: Pushback::default(),
            peak: 0,
            p50: Duration::from_millis(20),
            p99: Duration::from_millis(20),
        }
    }

    fn sweep_of(runs: Vec<Measures>) -> Sweep {
        Sweep {
            scenario: Scenario::s1(),
            row: Row::shared(Strategy::FenderDefault),
            runs,
        }
    }

    #[test]
    fn the_worst_seed_is_the_one_with_the_lowest_success() {
        let sweep = sweep_of(vec![
            run(1, 999, 1100),
            run(2, 990, 1050),
            run(3, 995, 1120),
            run(4, 990, 1010),
        ]);
        let worst = sweep.worst_success();
        assert_eq!(
            (worst.seed, worst.succeeded),
            (2, 990),
            "of equals, the lowest seed"
        );
        assert_eq!(sweep.worst_load().seed, 3);
        assert!((sweep.mean(Measures::success_rate) - 0.9935).abs() < 1e-12);
    }

    #[test]
    fn a_goal_holds_only_when_every_seed_meets_it_exactly() {
        // 99.8% of 1000 is 998; a load of 1.12x is 1120 arrivals.
        let pass = sweep_of(vec![run(1, 998, 1120), run(2, 1000, 1000)]);
        assert!(verdict(Kind::S1, &[&pass]).expect("a verdict").pass);
        let short = sweep_of(vec![run(1, 997, 1000), run(2, 1000, 1000)]);
        assert!(!verdict(Kind::S1, &[&short]).expect("a verdict").pass);
        let heavy = sweep_of(vec![run(1, 1000, 1121), run(2, 1000, 1000)]);
        assert!(!verdict(Kind::S1, &[&heavy]).expect("a verdict").pass);
    }

    /// A small S6: 20 callers at 100 requests/s for 20 s, 2% of responses after 1 s.
    fn small_tail() -> Scenario {
        let mut scenario = small(
            Failure::HeavyTail {
                share: 0.02,
                slow: secs(1),
            },
            20,
            Duration::from_millis(200),
            secs(20),
        );
        scenario.kind = Kind::S6;
        scenario
    }

    #[test]
    fn hedging_cuts_the_heavy_tail_for_a_few_percent_more_load() {
        let scenario = small_tail();
        let default = simulate(&scenario, Row::shared(Strategy::FenderDefault), 4);
        assert_eq!(default.succeeded, default.offered);
        assert_eq!(default.arrivals, default.offered, "nothing to retry");
        assert_eq!(default.p50, LATENCY);
        assert_eq!(default.p99, secs(1), "2% of answers take 1 s");

        let hedged = simulate(&scenario, Row::shared(Strategy::FenderHedge), 4);
        assert_eq!(hedged.succeeded, hedged.offered);
        assert_eq!(hedged.p50, LATENCY, "the usual request is not hedged");
        assert!(
            hedged.p99 * 5 <= default.p99,
            "p99 {:?} against {:?}",
            hedged.p99,
            default.p99
        );
        let extra = hedged.arrivals - hedged.offered;
        assert!(
            extra * 100 <= 5 * hedged.offered,
            "{extra} hedges for {} requests",
            hedged.offered
        );
        assert!(extra > 0, "the slow ones were hedged");

        let verdict = verdict(
            Kind::S6,
            &[
                &sweep_of_row(Strategy::FenderDefault, default),
                &sweep_of_row(Strategy::FenderHedge, hedged),
            ],
        )
        .expect("both rows");
        assert!(verdict.pass, "{verdict:?}");
    }

    #[test]
    fn a_fixed_hedge_delay_waits_for_its_delay() {
        let scenario = small_tail();
        let fixed = simulate(&scenario, Row::shared(Strategy::FenderHedgeFixed), 4);
        assert_eq!(fixed.p50, LATENCY);
        // A slow primary is hedged at 30 ms and the hedge answers 20 ms later.
        assert_eq!(fixed.p99, HEDGE_AFTER + LATENCY);
    }

    fn sweep_of_row(strategy: Strategy, run: Measures) -> Sweep {
        Sweep {
            scenario: small_tail(),
            row: Row::shared(strategy),
            runs: vec![run],
        }
    }

    #[tokio::test]
    async fn a_stack_whose_error_is_an_api_error_boxes_into_a_client() {
        let stack = tower::service_fn(|_: http::Request<RequestBody>| async {
            Err::<http::Response<()>, _>(fender::ApiError::service_unavailable("down"))
        });
        let client = boxed(stack);
        let error = tower::ServiceExt::oneshot(client, http::Request::new(Default::default()))
            .await
            .expect_err("the stack failed");
        let api = error
            .downcast_ref::<fender::ApiError>()
            .expect("the ApiError, boxed");
        assert_eq!(*api.code(), fender::ErrorCode::ServiceUnavailable);
    }

    /// Why tower's rows match the naive loop's: `ExponentialBackoff` computes its jitter from
    /// whole seconds and sub-second nanoseconds separately and truncates each, so a base of
    /// exactly 1 s gets no jitter at all.
    #[tokio::test(start_paused = true)]
    async fn tower_backoff_jitter_vanishes_on_a_whole_second_base() {
        for seed in 0..100 {
            let rng = TowerRng::seeded(seed);
            let mut maker = ExponentialBackoffMaker::new(
                Duration::from_secs(1),
                Duration::from_secs(30),
                1.0,
                rng,
            )
            .unwrap();
            let mut backoff = maker.make_backoff();
            let now = tokio::time::Instant::now();
            assert_eq!(
                backoff.next_backoff().deadline() - now,
                Duration::from_secs(1)
            );
            let second = backoff.next_backoff().deadline() - now;
            assert!(second == Duration::from_secs(2) || second == Duration::from_secs(3));
        }
    }
}
