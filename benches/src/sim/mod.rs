//! A resilience simulation in virtual time: many clients, one scripted upstream, a scenario of
//! failures, and a client strategy (no retry, the contract's naive loop, `tower::retry`,
//! fender's retry layer alone or outside its circuit breaker).
//!
//! Every run uses a current-thread tokio runtime with a paused clock, so minutes of scenario
//! take a fraction of a second and a seed gives exactly the same numbers every time. The
//! upstream is `fender_testkit`'s in-process [`Upstream`](fender_testkit::Upstream); its record
//! (arrival times and replies) gives the load measures, the callers' outcomes give success and
//! latency.

mod report;
mod run;
mod scenario;
mod strategy;

pub use report::{sweep_table, table};
pub use run::{Measures, Outcome, simulate};
pub use scenario::{Column, Failure, LATENCY, Row, Scenario};
pub use strategy::{Client, NaiveRetry, RequestBody, Strategy, TowerPolicy, TowerRng};

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tower::retry::backoff::{Backoff, ExponentialBackoffMaker, MakeBackoff};

    use super::*;

    fn small(failure: Failure, rows: Vec<Row>) -> Scenario {
        Scenario {
            name: "test",
            failure,
            clients: 20,
            period: Duration::from_secs(1),
            duration: Duration::from_secs(60),
            rows,
            columns: Vec::new(),
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_measures() {
        let row = Row::shared(Strategy::FenderRetry);
        let scenario = small(Failure::Transient(0.3), vec![row]);
        let first = simulate(&scenario, row, 3);
        let second = simulate(&scenario, row, 3);
        assert_eq!(format!("{first:?}"), format!("{second:?}"));
        assert_eq!(first.offered, 20 * 60);
        assert!(first.upstream > first.offered, "some requests were retried");
    }

    #[test]
    fn naive_clients_retry_a_herd_in_one_wave_and_full_jitter_spreads_it() {
        let mut herd = small(Failure::Herd { failed: 200 }, Vec::new());
        herd.clients = 200;
        herd.period = Duration::ZERO;
        herd.duration = Duration::ZERO;

        let naive = simulate(&herd, Row::per_client(Strategy::Naive), 1);
        assert_eq!(naive.offered, 200);
        assert_eq!(naive.succeeded, 200);
        assert_eq!(naive.upstream, 400);
        assert_eq!(naive.peak_retries, 200, "every retry in the same 100 ms");

        let fender = simulate(&herd, Row::per_client(Strategy::FenderRetry), 1);
        assert_eq!(fender.succeeded, 200);
        assert_eq!(fender.upstream, 400);
        assert!(
            fender.peak_retries < 60,
            "full jitter spreads retries over 1 s, got a peak of {}",
            fender.peak_retries
        );
    }

    #[test]
    fn fender_waits_out_retry_after_and_the_naive_loop_does_not() {
        let scenario = small(
            Failure::RetryAfter {
                share: 0.3,
                secs: 5,
            },
            Vec::new(),
        );
        let fender = simulate(&scenario, Row::shared(Strategy::FenderRetry), 5);
        assert!(fender.upstream > fender.offered, "429s were retried");
        assert_eq!(fender.early_retries, 0);
        assert!(fender.p99 >= Duration::from_secs(5));

        let naive = simulate(&scenario, Row::shared(Strategy::Naive), 5);
        assert!(naive.early_retries > 0);
        assert_eq!(naive.early_retries, naive.upstream - naive.offered);
    }

    #[test]
    fn the_breaker_sheds_an_outage_and_recovers_within_open_duration_plus_ramp() {
        let mut scenario = small(
            Failure::Outage {
                healthy: Duration::from_secs(10),
                outage: Duration::from_secs(40),
            },
            Vec::new(),
        );
        scenario.duration = Duration::from_secs(100);

        let breaker = simulate(&scenario, Row::shared(Strategy::FenderRetryBreaker), 2);
        let load = breaker.outage_load().expect("an outage");
        assert!(load < 0.1, "the open circuit kept the load at {load}");
        let recovery = breaker.recovery.expect("recovered within the run");
        assert!(
            recovery <= Duration::from_secs(40),
            "recovered in {recovery:?}"
        );

        let naive = simulate(&scenario, Row::shared(Strategy::Naive), 2);
        let load = naive.outage_load().expect("an outage");
        assert!(load > 2.5, "three attempts per request, got {load}");
        assert_eq!(naive.recovery, Some(Duration::ZERO));
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
