//! The scenarios: what the upstream does, and the load the clients offer.

use std::time::Duration;

use fender_testkit::{Plan, Reply};

use super::strategy::Strategy;

/// How long the upstream takes to answer any request, in every scenario.
pub const LATENCY: Duration = Duration::from_millis(10);

/// What the upstream does.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Failure {
    /// Each request independently gets a 503 with this probability, else a 200.
    Transient(f64),
    /// 200s for `healthy`, then 503 to everything for `outage`, then 200s again.
    Outage {
        /// How long the upstream is healthy before the outage.
        healthy: Duration,
        /// How long the outage lasts.
        outage: Duration,
    },
    /// Each request independently gets a 429 with `Retry-After: secs` with this probability.
    RetryAfter {
        /// The share of requests that are refused.
        share: f64,
        /// The `Retry-After` value, in seconds.
        secs: u64,
    },
    /// The first `failed` requests get a 503 (they all arrive at the same instant), every
    /// later one a 200.
    Herd {
        /// How many requests fail.
        failed: usize,
    },
}

/// Which measures a scenario's table shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// Share of offered requests whose caller got a 2xx.
    Success,
    /// Upstream requests per offered request, over the whole run.
    Load,
    /// Upstream requests per offered request, during the outage.
    OutageLoad,
    /// The most upstream requests in any 100 ms window.
    Peak,
    /// The most retries (second and later attempts) in any 100 ms window.
    PeakRetries,
    /// Retries that reached the upstream before the `Retry-After` of the previous attempt.
    EarlyRetries,
    /// From the end of the outage until every later second of offered requests succeeds at
    /// 95% or more.
    Recovery,
    /// Median latency seen by callers (offer to final outcome, fast-fails included).
    P50,
    /// 99th percentile of that latency.
    P99,
}

impl Column {
    /// The column heading.
    pub fn heading(self) -> &'static str {
        match self {
            Column::Success => "success",
            Column::Load => "upstream req / offered",
            Column::OutageLoad => "… during outage",
            Column::Peak => "peak req / 100 ms",
            Column::PeakRetries => "peak retries / 100 ms",
            Column::EarlyRetries => "retries before Retry-After",
            Column::Recovery => "recovery to ≥ 95%",
            Column::P50 => "p50",
            Column::P99 => "p99",
        }
    }
}

/// A row of a table: a strategy, and whether the clients share one stack of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The strategy.
    pub strategy: Strategy,
    /// `true`: all clients share one client stack (one budget, one breaker), like the callers
    /// inside one service instance; `false`: each client has a stack of its own, like
    /// independent processes.
    pub shared_stack: bool,
}

impl Row {
    /// All clients share one stack of `strategy`.
    pub fn shared(strategy: Strategy) -> Row {
        Row {
            strategy,
            shared_stack: true,
        }
    }

    /// Each client has its own stack of `strategy`.
    pub fn per_client(strategy: Strategy) -> Row {
        Row {
            strategy,
            shared_stack: false,
        }
    }

    /// The row label: the strategy, and how the stack is shared.
    pub fn label(&self) -> String {
        let sharing = if self.shared_stack {
            "shared stack"
        } else {
            "stack per client"
        };
        format!("{}, {sharing}", self.strategy)
    }
}

/// One scenario: the upstream's behaviour and the offered load.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The table heading.
    pub name: &'static str,
    /// What the upstream does.
    pub failure: Failure,
    /// How many clients offer requests.
    pub clients: usize,
    /// Each client offers one request every `period` (open loop: a retry does not delay the
    /// next offer), from a random offset in the first period; with `period` zero each client
    /// offers exactly one request, all at the same instant.
    pub period: Duration,
    /// How long requests are offered.
    pub duration: Duration,
    /// The rows of the table.
    pub rows: Vec<Row>,
    /// The columns of the table.
    pub columns: Vec<Column>,
}

impl Scenario {
    /// The five scenarios of the benchmark, at full size.
    pub fn all() -> Vec<Scenario> {
        use Column::*;
        let steady = |name, failure, columns: Vec<Column>| Scenario {
            name,
            failure,
            clients: 100,
            period: Duration::from_secs(1),
            duration: Duration::from_secs(180),
            rows: Strategy::MAIN.into_iter().map(Row::shared).collect(),
            columns,
        };
        let mut transient10 = steady(
            "10% transient 503s",
            Failure::Transient(0.10),
            vec![Success, Load, Peak, P50, P99],
        );
        transient10
            .rows
            .insert(4, Row::shared(Strategy::FenderRetry4));
        transient10
            .rows
            .push(Row::shared(Strategy::FenderRetryRateBreaker));
        let mut transient50 = steady(
            "50% transient 503s",
            Failure::Transient(0.50),
            vec![Success, Load, Peak, P50, P99],
        );
        transient50
            .rows
            .push(Row::shared(Strategy::FenderRetryRateBreaker));
        let mut outage = steady(
            "60 s full outage, then recovery",
            Failure::Outage {
                healthy: Duration::from_secs(30),
                outage: Duration::from_secs(60),
            },
            vec![Success, Load, OutageLoad, Peak, Recovery, P50, P99],
        );
        outage.rows.extend([
            Row::shared(Strategy::FenderRetryRateBreaker),
            Row::per_client(Strategy::FenderRetry),
            Row::per_client(Strategy::FenderRetryBreaker),
        ]);
        let mut herd = Scenario {
            name: "thundering herd: 1,000 clients fail at the same instant",
            failure: Failure::Herd { failed: 1000 },
            clients: 1000,
            period: Duration::ZERO,
            duration: Duration::ZERO,
            rows: Strategy::MAIN.into_iter().map(Row::per_client).collect(),
            columns: vec![Success, Load, Peak, PeakRetries, P50, P99],
        };
        herd.rows.extend([
            Row::shared(Strategy::FenderRetry),
            Row::shared(Strategy::FenderRetryBreaker),
        ]);
        vec![
            transient10,
            transient50,
            outage,
            steady(
                "429 with Retry-After: 5 on 20% of requests",
                Failure::RetryAfter {
                    share: 0.20,
                    secs: 5,
                },
                vec![Success, Load, EarlyRetries, Peak, P50, P99],
            ),
            herd,
        ]
    }

    /// The upstream's plan. Call it inside the simulation's runtime: phases start when it is
    /// called.
    pub fn plan(&self, seed: u64) -> Plan {
        let ok = || Reply::ok().delay(LATENCY);
        let unavailable = || Reply::status(503).delay(LATENCY);
        match self.failure {
            Failure::Transient(share) => Plan::random(seed)
                .with(share, unavailable())
                .otherwise(ok()),
            Failure::Outage { healthy, outage } => Plan::phases()
                .then(healthy, Plan::always(ok()))
                .then(outage, Plan::always(unavailable()))
                .starting_now()
                .finally(Plan::always(ok())),
            Failure::RetryAfter { share, secs } => Plan::random(seed)
                .with(share, Reply::retry_after_secs(429, secs).delay(LATENCY))
                .otherwise(ok()),
            Failure::Herd { failed } => {
                Plan::sequence((0..failed).map(|_| unavailable()).chain([ok()]))
            }
        }
    }

    /// When the outage starts and ends, from the start of the run.
    pub fn outage(&self) -> Option<(Duration, Duration)> {
        match self.failure {
            Failure::Outage { healthy, outage } => Some((healthy, healthy + outage)),
            _ => None,
        }
    }

    /// The `Retry-After` the upstream sends, if it sends one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self.failure {
            Failure::RetryAfter { secs, .. } => Some(Duration::from_secs(secs)),
            _ => None,
        }
    }
}
