//! Running one scenario under one strategy, in virtual time, and measuring it.

use std::collections::HashMap;
use std::time::Duration;

use fender_testkit::{Received, Upstream};
use http::{HeaderValue, Request};
use http_body_util::Empty;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;
use tower::ServiceExt;

use super::scenario::{LATENCY, Row, Scenario};
use super::strategy::Client;

/// Width of the windows the recovery is measured in.
const RECOVERY_WINDOW: Duration = Duration::from_secs(1);
/// Width of the windows the peak load is measured in.
const PEAK_WINDOW: Duration = Duration::from_millis(100);

/// What happened to one offered request, as its caller saw it.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    /// When it was offered, from the start of the run.
    pub offered: Duration,
    /// How long the caller waited for the final outcome.
    pub latency: Duration,
    /// Whether the caller got a 2xx.
    pub ok: bool,
}

/// The measures of one run.
#[derive(Clone, Debug)]
pub struct Measures {
    /// Requests offered by the clients.
    pub offered: usize,
    /// Offered requests whose caller got a 2xx.
    pub succeeded: usize,
    /// Requests the upstream received.
    pub upstream: usize,
    /// Requests offered during the outage, and requests the upstream received then.
    pub outage: Option<(usize, usize)>,
    /// The most upstream requests in any 100 ms window.
    pub peak: usize,
    /// The most retries (second and later attempts) in any 100 ms window.
    pub peak_retries: usize,
    /// Retries sent before the `Retry-After` of the previous attempt had expired.
    pub early_retries: usize,
    /// From the end of the outage until every later second of offered requests succeeded at
    /// 95% or more (in whole seconds); `None` when that never happened.
    pub recovery: Option<Duration>,
    /// Median latency seen by callers.
    pub p50: Duration,
    /// 99th percentile latency seen by callers.
    pub p99: Duration,
}

impl Measures {
    /// Share of offered requests that succeeded.
    pub fn success_rate(&self) -> f64 {
        self.succeeded as f64 / self.offered as f64
    }

    /// Upstream requests per offered request.
    pub fn load(&self) -> f64 {
        self.upstream as f64 / self.offered as f64
    }

    /// Upstream requests per offered request during the outage.
    pub fn outage_load(&self) -> Option<f64> {
        self.outage
            .map(|(offered, upstream)| upstream as f64 / offered as f64)
    }
}

/// Runs `scenario` under the strategy of `row` on a new current-thread runtime whose clock is paused, so
/// the run takes virtual time only and gives the same measures for the same seed.
pub fn simulate(scenario: &Scenario, row: Row, seed: u64) -> Measures {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    runtime.block_on(run(scenario, row, seed))
}

async fn run(scenario: &Scenario, row: Row, seed: u64) -> Measures {
    let start = Instant::now();
    let upstream = Upstream::new(scenario.plan(seed)).record_limit(usize::MAX);
    let shared = row.strategy.client(&upstream, seed);
    let mut offsets = SmallRng::seed_from_u64(seed ^ 0x5eed);

    let mut clients = Vec::with_capacity(scenario.clients);
    for index in 0..scenario.clients {
        let client = if row.shared_stack {
            shared.clone()
        } else {
            row.strategy
                .client(&upstream, seed.wrapping_add(1 + index as u64))
        };
        let offset = if scenario.period.is_zero() {
            Duration::ZERO
        } else {
            let millis = scenario.period.as_millis() as u64;
            Duration::from_millis(offsets.random_range(0..millis))
        };
        clients.push(tokio::spawn(offer(
            client,
            index,
            start,
            start + offset,
            scenario.period,
            start + scenario.duration,
        )));
    }
    let mut outcomes = Vec::new();
    for client in clients {
        outcomes.extend(client.await.expect("a client task"));
    }
    let received = upstream.received();
    assert_eq!(
        received.len(),
        upstream.count(),
        "the record kept everything"
    );
    measure(scenario, &outcomes, &received, start)
}

/// One client: offers a request every `period` from `first` until `end` (exactly one when
/// `period` is zero), each in a task of its own, and waits for all of them.
async fn offer(
    client: Client,
    index: usize,
    start: Instant,
    first: Instant,
    period: Duration,
    end: Instant,
) -> Vec<Outcome> {
    let mut requests = Vec::new();
    let mut at = first;
    let mut n = 0;
    while n == 0 || (!period.is_zero() && at < end) {
        tokio::time::sleep_until(at).await;
        let id = HeaderValue::try_from(format!("c{index}-{n}")).expect("a header value");
        let request = Request::get("http://upstream.test/items")
            .header("x-request-id", id)
            .body(Empty::new())
            .expect("a request");
        let client = client.clone();
        requests.push(tokio::spawn(async move {
            let offered = Instant::now();
            let result = client.oneshot(request).await;
            let ok = matches!(&result, Ok(response) if response.status().is_success());
            (offered, offered.elapsed(), ok)
        }));
        n += 1;
        at += period;
    }
    let mut outcomes = Vec::with_capacity(requests.len());
    for request in requests {
        let (offered, latency, ok) = request.await.expect("a request task");
        outcomes.push(Outcome {
            offered: offered - start,
            latency,
            ok,
        });
    }
    outcomes
}

fn measure(
    scenario: &Scenario,
    outcomes: &[Outcome],
    received: &[Received],
    start: Instant,
) -> Measures {
    let arrivals: Vec<Duration> = received.iter().map(|r| r.at - start).collect();

    // Second and later attempts of a request carry the id of the first; a retry is early when
    // it arrives before the previous attempt's answer plus its `Retry-After`.
    let mut last: HashMap<&HeaderValue, (Duration, &str)> = HashMap::new();
    let mut retries = Vec::new();
    let mut early_retries = 0;
    for (r, &at) in received.iter().zip(&arrivals) {
        let id = r
            .headers
            .get("x-request-id")
            .expect("every request has an id");
        if let Some(&(previous, reply)) = last.get(id) {
            retries.push(at);
            if let Some(wait) = scenario.retry_after()
                && reply == "429"
                && at < previous + LATENCY + wait
            {
                early_retries += 1;
            }
        }
        last.insert(id, (at, r.reply.as_str()));
    }

    let outage = scenario.outage().map(|(from, to)| {
        let during = |t: &Duration| (from..to).contains(t);
        let offered = outcomes.iter().filter(|o| during(&o.offered)).count();
        let upstream = arrivals.iter().filter(|t| during(t)).count();
        (offered, upstream)
    });
    let recovery = scenario
        .outage()
        .and_then(|(_, end)| recovery(outcomes, end, scenario.duration));

    let mut latencies: Vec<Duration> = outcomes.iter().map(|o| o.latency).collect();
    latencies.sort_unstable();
    Measures {
        offered: outcomes.len(),
        succeeded: outcomes.iter().filter(|o| o.ok).count(),
        upstream: received.len(),
        outage,
        peak: peak(arrivals),
        peak_retries: peak(retries),
        early_retries,
        recovery,
        p50: percentile(&latencies, 0.50),
        p99: percentile(&latencies, 0.99),
    }
}

/// The most times in any window of `PEAK_WINDOW`.
fn peak(mut times: Vec<Duration>) -> usize {
    times.sort_unstable();
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

/// From `recovered` on, in windows of `RECOVERY_WINDOW` by offer time: how long until every
/// later window has a success rate of 95% or more. `None` when the last window is still below.
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
    let below = |w: usize| offered[w] > 0 && (succeeded[w] as f64) < 0.95 * offered[w] as f64;
    match (0..windows).rev().find(|&w| below(w)) {
        None => Some(Duration::ZERO),
        Some(w) if w + 1 == windows => None,
        Some(w) => Some(RECOVERY_WINDOW * (w as u32 + 1)),
    }
}

/// The nearest-rank percentile of sorted `values`.
fn percentile(values: &[Duration], q: f64) -> Duration {
    if values.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * values.len() as f64).ceil() as usize;
    values[rank.clamp(1, values.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn peak_counts_the_busiest_window_of_100_ms() {
        assert_eq!(peak(Vec::new()), 0);
        assert_eq!(peak(vec![ms(0), ms(50), ms(99), ms(100), ms(150)]), 3);
        assert_eq!(peak(vec![ms(500), ms(10), ms(520), ms(599), ms(560)]), 4);
    }

    #[test]
    fn recovery_ends_after_the_last_second_below_95_percent() {
        let outcome = |offered: u64, ok: bool| Outcome {
            offered: ms(offered),
            latency: ms(10),
            ok,
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
    fn percentile_is_the_nearest_rank() {
        let values: Vec<Duration> = (1..=100).map(ms).collect();
        assert_eq!(percentile(&values, 0.50), ms(50));
        assert_eq!(percentile(&values, 0.99), ms(99));
        assert_eq!(percentile(&values[..1], 0.99), ms(1));
        assert_eq!(percentile(&[], 0.5), Duration::ZERO);
    }
}
