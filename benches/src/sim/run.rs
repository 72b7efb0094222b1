//! Running one scenario under one strategy and one seed, in virtual time, and measuring it.

use std::time::Duration;

use fender_testkit::Upstream;
use http::{HeaderValue, Request, Uri};
use http_body_util::Empty;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tower::ServiceExt;

use super::probe::{Event, Log, Probe, REQUEST_NUMBER};
use super::scenario::{Row, Scenario};

/// Width of the windows the recovery is measured in.
const RECOVERY_WINDOW: Duration = Duration::from_secs(1);
/// Width of the windows the peak load is measured in.
const PEAK_WINDOW: Duration = Duration::from_millis(100);

/// What happened to one caller request, as its caller saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// When it was offered, from the start of the run.
    pub offered: Duration,
    /// Whether the caller got a 2xx within the caller timeout.
    pub ok: bool,
    /// How long the caller waited: until its answer, or the caller timeout.
    pub latency: Duration,
}

/// One attempt as the upstream received it, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Arrival {
    /// When, from the start of the run.
    pub at: Duration,
    /// Whether an earlier attempt of the same caller request arrived before it.
    pub retry: bool,
    /// Whether the stack that sent it had, before it arrived, received a response whose
    /// `Retry-After` had not run out at its arrival (received at + delay > arrival).
    pub under_pushback: bool,
}

/// The outage measures of a run with an outage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outage {
    /// Caller requests offered during the outage.
    pub offered: usize,
    /// Attempts that arrived at the upstream during the outage.
    pub arrivals: usize,
    /// From the end of the outage until the success rate of the requests offered in each
    /// second is 95% or more and stays so to the end of the run (whole seconds); `None` when
    /// the last second is still below.
    pub recovery: Option<Duration>,
}

impl Outage {
    /// Arrivals during the outage per request offered during the outage.
    pub fn load(&self) -> f64 {
        self.arrivals as f64 / self.offered as f64
    }
}

/// Arrivals under pushback (see [`Arrival::under_pushback`]), new requests and retries alike.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pushback {
    /// Arrivals under pushback.
    pub arrivals: usize,
    /// Of those, the retries.
    pub retries: usize,
}

/// The measures of one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Measures {
    /// The seed of the run.
    pub seed: u64,
    /// Requests offered by the callers.
    pub offered: usize,
    /// Offered requests whose caller got a 2xx within the caller timeout.
    pub succeeded: usize,
    /// Attempts that arrived at the upstream.
    pub arrivals: usize,
    /// Of those, the retries (second and later attempts of a request).
    pub retries: usize,
    /// The outage measures, for a scenario with an outage.
    pub outage: Option<Outage>,
    /// Arrivals under pushback.
    pub pushback: Pushback,
    /// The most arrivals in any 100 ms window, leaving out those at exactly t = 0.
    pub peak: usize,
    /// The median of the callers' latencies ([`Outcome::latency`]), answered or not.
    pub p50: Duration,
    /// The 99th percentile of the callers' latencies (nearest rank), answered or not.
    pub p99: Duration,
}

impl Measures {
    /// Share of offered requests that succeeded.
    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / self.offered as f64
    }

    /// Upstream arrivals per offered request.
    pub fn load(&self) -> f64 {
        self.arrivals as f64 / self.offered as f64
    }
}

/// Runs `scenario` under the strategy of `row` on a new current-thread runtime whose clock is
/// paused, so the run takes virtual time only and gives the same measures for the same seed.
pub fn simulate(scenario: &Scenario, row: Row, seed: u64) -> Measures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(run(scenario, row, seed))
}

/// One of several independent random streams drawn from one seed (splitmix64's finaliser), so
/// the upstream, the callers' offsets and the strategies never share a sequence.
fn stream(seed: u64, n: u64) -> u64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9e37_79b9_7f4a_7c15))
        .wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// When each request is offered, from the start of the run, and by which caller: every caller
/// from a random offset in the first period, one request per period, sorted by time.
fn offers(scenario: &Scenario, seed: u64) -> Vec<(Duration, u32)> {
    let mut offsets = SmallRng::seed_from_u64(stream(seed, 1));
    let mut offers = Vec::with_capacity(scenario.offered());
    for caller in 0..scenario.callers as u32 {
        if scenario.period.is_zero() {
            offers.push((Duration::ZERO, caller));
            continue;
        }
        let millis = scenario.period.as_millis() as u64;
        let mut at = Duration::from_millis(offsets.random_range(0..millis));
        while at < scenario.duration {
            offers.push((at, caller));
            at += scenario.period;
        }
    }
    offers.sort_unstable();
    offers
}

async fn run(scenario: &Scenario, row: Row, seed: u64) -> Measures {
    let start = Instant::now();
    let upstream = Upstream::new(scenario.plan(stream(seed, 0))).record_limit(0);
    let offers = offers(scenario, seed);
    let log = Log::new(start, offers.len() * 2);
    let stacks = if row.shared_stack {
        1
    } else {
        scenario.callers
    };
    let clients: Vec<_> = (0..stacks)
        .map(|stack| {
            let probe = Probe::new(&upstream, &log, stack as u32);
            row.strategy.client(probe, stream(seed, 2 + stack as u64))
        })
        .collect();

    let uri = Uri::from_static("http://upstream.test/items");
    let timeout = scenario.timeout;
    let mut tasks = Vec::with_capacity(offers.len());
    for (number, &(at, caller)) in offers.iter().enumerate() {
        let at = start + at;
        if at > Instant::now() {
            tokio::time::sleep_until(at).await;
        }
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = uri.clone();
        request
            .headers_mut()
            .insert(REQUEST_NUMBER, HeaderValue::from(number as u32));
        let client = clients[if row.shared_stack { 0 } else { caller as usize }].clone();
        // Boxed, so the task itself stays small: a task of the whole future is an aligned
        // allocation big enough to make the allocator consolidate its free lists every time.
        tasks.push(tokio::spawn(Box::pin(async move {
            let answer = tokio::time::timeout(timeout, client.oneshot(request)).await;
            let ok = matches!(answer, Ok(Ok(status)) if status.is_success());
            (ok, at.elapsed())
        })));
    }
    let mut outcomes = Vec::with_capacity(offers.len());
    for (task, &(offered, _)) in tasks.into_iter().zip(&offers) {
        let (ok, latency) = task.await.expect("a request task");
        outcomes.push(Outcome {
            offered,
            ok,
            latency,
        });
    }
    drop(clients);
    let events = log.take();
    let arrivals = classify(&events, outcomes.len(), stacks);
    assert_eq!(
        arrivals.len(),
        upstream.count(),
        "the probes saw every arrival"
    );
    measure(scenario, seed, &outcomes, &arrivals)
}

/// Classifies the arrivals of a run's `events`, for `requests` caller requests sent through
/// `stacks` client stacks: whether each is a retry, and whether it arrived under pushback.
///
/// The events are in the order they happened, so "before" is exact even within one instant
/// of virtual time: a response that reached the stack before an arrival at the same instant
/// counts for it.
pub fn classify(events: &[Event], requests: usize, stacks: usize) -> Vec<Arrival> {
    let mut seen = vec![false; requests];
    let mut pushback_until = vec![Duration::ZERO; stacks];
    let mut arrivals = Vec::with_capacity(events.len());
    for event in events {
        match *event {
            Event::Arrival { at, stack, request } => arrivals.push(Arrival {
                at,
                retry: std::mem::replace(&mut seen[request as usize], true),
                under_pushback: pushback_until[stack as usize] > at,
            }),
            Event::RetryAfter { stack, until } => {
                let latest = &mut pushback_until[stack as usize];
                *latest = (*latest).max(until);
            }
        }
    }
    arrivals
}

/// The measures of a run from its `outcomes` and its classified `arrivals` (in order of time).
pub fn measure(
    scenario: &Scenario,
    seed: u64,
    outcomes: &[Outcome],
    arrivals: &[Arrival],
) -> Measures {
    let mut pushback = Pushback::default();
    for a in arrivals.iter().filter(|a| a.under_pushback) {
        pushback.arrivals += 1;
        pushback.retries += usize::from(a.retry);
    }
    let outage = scenario.outage().map(|(from, to)| {
        let during = |t: Duration| (from..to).contains(&t);
        Outage {
            offered: outcomes.iter().filter(|o| during(o.offered)).count(),
            arrivals: arrivals.iter().filter(|a| during(a.at)).count(),
            recovery: recovery(outcomes, to, scenario.duration),
        }
    });
    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    let after_start: Vec<Duration> = arrivals
        .iter()
        .map(|a| a.at)
        .filter(|&at| at > Duration::ZERO)
        .collect();
    Measures {
        seed,
        offered: outcomes.len(),
        succeeded: outcomes.iter().filter(|o| o.ok).count(),
        arrivals: arrivals.len(),
        retries: arrivals.iter().filter(|a| a.retry).count(),
        outage,
        pushback,
        peak: peak(&after_start),
        p50: quantile(&mut latencies, 0.50),
        p99: quantile(&mut latencies, 0.99),
    }
}

/// The nearest-rank `q` quantile of `values` (reordered in place); zero when there are none.
pub fn quantile(values: &mut [Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len()) - 1;
    *values.select_nth_unstable(rank).1
}

/// The most of the sorted `times` in any window of `PEAK_WINDOW`.
fn peak(times: &[Duration]) -> usize {
    debug_assert!(times.is_sorted(), "arrivals are logged in order of time");
    let mut best = 0;
    let mut first = 0;
    for (last, &t) in times.iter().enumerate() {
        while t - times[first] >= PEAK_WINDOW {
            first += 1;
        }
        best = best.max(last + 1 - first);
    }
    best
}

/// From `recovered` on, in windows of `RECOVERY_WINDOW` by offer time up to `end`: how long
/// until every later window has a success rate of 95% or more. `None` when the last window is
/// still below.
fn recovery(outcomes: &[Outcome], recovered: Duration, end: Duration) -> Option<Duration> {
    let windows = (end.saturating_sub(recovered)).as_millis() / RECOVERY_WINDOW.as_millis();
    let windows = windows as usize;
    let mut offered = vec![0usize; windows];
    let mut succeeded = vec![0usize; windows];
    for o in outcomes.iter().filter(|o| o.offered >= recovered) {
        let w = ((o.offered - recovered).as_millis() / RECOVERY_WINDOW.as_millis()) as usize;
        if w < windows {
            offered[w] += 1;
            succeeded[w] += usize::from(o.ok);
        }
    }
    // Below 95%, in whole numbers: succeeded / offered < 19 / 20.
    let below = |w: usize| 20 * succeeded[w] < 19 * offered[w];
    match (0..windows).rev().find(|&w| below(w)) {
        None => Some(Duration::ZERO),
        Some(w) if w + 1 == windows => None,
        Some(w) => Some(RECOVERY_WINDOW * (w as u32 + 1)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn arrival(at: u64, stack: u32, request: u32) -> Event {
        Event::Arrival {
            at: ms(at),
            stack,
            request,
        }
    }

    fn retry_after(stack: u32, until: u64) -> Event {
        Event::RetryAfter {
            stack,
            until: ms(until),
        }
    }

    #[test]
    fn peak_counts_the_busiest_window_of_100_ms() {
        assert_eq!(peak(&[]), 0);
        assert_eq!(peak(&[ms(0), ms(50), ms(99), ms(100), ms(150)]), 3);
        assert_eq!(peak(&[ms(10), ms(500), ms(520), ms(560), ms(599)]), 4);
    }

    #[test]
    fn peak_leaves_out_the_arrivals_at_exactly_the_start() {
        let outcomes = [Outcome {
            offered: ms(0),
            ok: true,
            latency: ms(20),
        }; 3];
        let at = |t| Arrival {
            at: ms(t),
            retry: t > 0,
            under_pushback: false,
        };
        let arrivals = [at(0), at(0), at(0), at(1), at(1_000), at(1_050)];
        let measures = measure(&crate::sim::Scenario::s5(), 1, &outcomes, &arrivals);
        assert_eq!(measures.arrivals, 6);
        assert_eq!(measures.peak, 2, "the three at t = 0 do not count");
    }

    #[test]
    fn pushback_counts_new_requests_and_retries_until_the_retry_after_runs_out() {
        let events = [
            arrival(0, 0, 0),
            retry_after(0, 5_020),
            // A new request and a retry while the Retry-After runs: both count.
            arrival(100, 0, 1),
            arrival(1_020, 0, 0),
            // Another stack received nothing: it is not under pushback.
            arrival(1_500, 1, 2),
            // At exactly the end the Retry-After has run out.
            arrival(5_020, 0, 3),
        ];
        let arrivals = classify(&events, 4, 2);
        let flags: Vec<(bool, bool)> = arrivals
            .iter()
            .map(|a| (a.retry, a.under_pushback))
            .collect();
        assert_eq!(
            flags,
            [
                (false, false),
                (false, true),
                (true, true),
                (false, false),
                (false, false)
            ]
        );
    }

    #[test]
    fn pushback_counts_an_arrival_after_a_response_of_the_same_instant_not_before_it() {
        let events = [arrival(20, 0, 0), retry_after(0, 5_020), arrival(20, 0, 1)];
        let arrivals = classify(&events, 2, 1);
        assert!(!arrivals[0].under_pushback);
        assert!(arrivals[1].under_pushback);
    }

    #[test]
    fn pushback_lasts_until_the_latest_retry_after_received() {
        let events = [
            retry_after(0, 9_000),
            retry_after(0, 6_000),
            arrival(8_000, 0, 0),
        ];
        assert!(classify(&events, 1, 1)[0].under_pushback);
    }

    #[test]
    fn recovery_ends_after_the_last_second_below_95_percent() {
        let outcome = |offered: u64, ok: bool| Outcome {
            offered: ms(offered),
            ok,
            latency: ms(20),
        };
        // Seconds 10, 11 and 12 after a recovery at 10 s: 50%, 100%, 100%.
        let mut outcomes = vec![outcome(10_100, false), outcome(10_200, true)];
        outcomes.extend((0..20).map(|i| outcome(11_000 + 50 * i, true)));
        outcomes.extend((0..20).map(|i| outcome(12_000 + 50 * i, true)));
        assert_eq!(
            recovery(&outcomes, ms(10_000), ms(13_000)),
            Some(Duration::from_secs(1))
        );
        // 19 of 20 in second 11 is 95%: still recovered after second 10.
        outcomes[2].ok = false;
        assert_eq!(
            recovery(&outcomes, ms(10_000), ms(13_000)),
            Some(Duration::from_secs(1))
        );
        // A failing last second: not recovered within the run.
        outcomes.push(outcome(12_999, false));
        outcomes.push(outcome(12_998, false));
        assert_eq!(recovery(&outcomes, ms(10_000), ms(13_000)), None);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let mut values: Vec<Duration> = (1..=100).rev().map(ms).collect();
        assert_eq!(quantile(&mut values, 0.99), ms(99));
        assert_eq!(quantile(&mut values, 0.50), ms(50));
        assert_eq!(quantile(&mut values[..1], 0.99), ms(1));
        assert_eq!(quantile(&mut [], 0.99), Duration::ZERO);
    }

    #[test]
    fn streams_of_one_seed_differ() {
        assert_ne!(stream(7, 0), stream(7, 1));
        assert_ne!(stream(7, 0), stream(8, 0));
    }
}
