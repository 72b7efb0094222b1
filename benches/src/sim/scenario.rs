//! The scenarios: what the upstream does, and the load the callers offer.

use std::fmt;
use std::time::Duration;

use fender_testkit::{Plan, Reply};

use super::strategy::Strategy;

/// How long the upstream takes to answer any request, in every scenario (but for S6's slow
/// responses).
pub const LATENCY: Duration = Duration::from_millis(20);

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
    /// Every request arriving from `from` until `until` gets a 429 with `Retry-After: secs`;
    /// every other one a 200.
    Pushback {
        /// When the upstream starts refusing, from the start of the run.
        from: Duration,
        /// When it stops refusing.
        until: Duration,
        /// The `Retry-After` value, in seconds.
        secs: u64,
    },
    /// Every request arriving in the first `failing` of the run gets a 503, every later one
    /// a 200.
    Startup {
        /// How long the upstream fails from the start of the run.
        failing: Duration,
    },
    /// 200s for `healthy`, then each request independently gets a 503 with probability `p`:
    /// an upstream that turns flaky after a healthy period.
    Onset {
        /// How long the upstream is healthy before it turns flaky.
        healthy: Duration,
        /// The share of 503s after that.
        p: f64,
    },
    /// Every request is answered 200; each one independently, with probability `share`, after
    /// `slow` instead of [`LATENCY`].
    HeavyTail {
        /// The share of slow responses.
        share: f64,
        /// How long a slow response takes.
        slow: Duration,
    },
}

/// Which of the seven scenarios a [`Scenario`] is: it picks the measures its table shows, the
/// goal that applies to it and the rows it runs by default.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// 10% transient 503s.
    S1,
    /// 50% transient 503s.
    S2,
    /// A full outage between two healthy periods.
    S3,
    /// 429 with `Retry-After` for a while.
    S4,
    /// A herd of callers that all fail at once.
    S5,
    /// A heavy tail: a few responses are very slow.
    S6,
    /// A healthy upstream that turns flaky (40% transient 503s), at modest traffic.
    S7,
}

impl Kind {
    /// All seven, in order.
    pub const ALL: [Kind; 7] = [
        Kind::S1,
        Kind::S2,
        Kind::S3,
        Kind::S4,
        Kind::S5,
        Kind::S6,
        Kind::S7,
    ];

    /// `"S1"` to `"S7"`.
    pub fn id(self) -> &'static str {
        match self {
            Kind::S1 => "S1",
            Kind::S2 => "S2",
            Kind::S3 => "S3",
            Kind::S4 => "S4",
            Kind::S5 => "S5",
            Kind::S6 => "S6",
            Kind::S7 => "S7",
        }
    }

    /// The kind named `id` (`"S1"`, case-insensitive).
    pub fn from_id(id: &str) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.id().eq_ignore_ascii_case(id))
    }

    /// How many seeds a sweep runs unless told otherwise: 100 for the transient scenarios (S7
    /// included), 10
    /// for the others, whose only random inputs are the callers' offsets and the strategies'
    /// jitter (and, for S6, the slow responses: 300 of them per run).
    pub fn default_seeds(self) -> u64 {
        match self {
            Kind::S1 | Kind::S2 | Kind::S7 => 100,
            Kind::S3 | Kind::S4 | Kind::S5 | Kind::S6 => 10,
        }
    }

    /// The strategies its table shows unless told otherwise: [`Strategy::MAIN`] for S1 to S5;
    /// for S6, which is about hedging, the default stack with and without a hedge layer.
    pub fn strategies(self) -> &'static [Strategy] {
        match self {
            Kind::S6 => &[Strategy::FenderDefault, Strategy::FenderHedge],
            _ => &Strategy::MAIN,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// A row of a table: a strategy, and whether the callers share one stack of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row {
    /// The strategy.
    pub strategy: Strategy,
    /// `true`: all callers share one client stack (one budget, one breaker), like the callers
    /// inside one service instance; `false`: each caller has a stack of its own, like
    /// independent processes.
    pub shared_stack: bool,
}

impl Row {
    /// All callers share one stack of `strategy`.
    pub fn shared(strategy: Strategy) -> Row {
        Row {
            strategy,
            shared_stack: true,
        }
    }

    /// Each caller has its own stack of `strategy`.
    pub fn per_caller(strategy: Strategy) -> Row {
        Row {
            strategy,
            shared_stack: false,
        }
    }

    /// The row label: the strategy, and "stack per caller" when the stack is not shared.
    pub fn label(&self) -> String {
        if self.shared_stack {
            self.strategy.name().to_owned()
        } else {
            format!("{}, stack per caller", self.strategy.name())
        }
    }
}

/// One scenario: the upstream's behaviour and the offered load.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scenario {
    /// Which of the five it is.
    pub kind: Kind,
    /// What the upstream does.
    pub failure: Failure,
    /// How many callers offer requests.
    pub callers: usize,
    /// Each caller offers one `GET` every `period` (open loop: a slow or retried request does
    /// not delay the next offer), from a random offset within the first period; with `period`
    /// zero each caller offers exactly one request, all at the start of the run.
    pub period: Duration,
    /// How long requests are offered.
    pub duration: Duration,
    /// A request not answered within this time of its offer is a failure for its caller (its
    /// future is dropped then, retries and all).
    pub timeout: Duration,
}

impl Scenario {
    /// The steady load of S1 to S4: 50 callers, one `GET` every 200 ms each (250 requests/s),
    /// a 30 s caller timeout.
    fn steady(kind: Kind, failure: Failure, duration: Duration) -> Scenario {
        Scenario {
            kind,
            failure,
            callers: 50,
            period: Duration::from_millis(200),
            duration,
            timeout: Duration::from_secs(30),
        }
    }

    /// S1: each attempt gets a 503 with probability 0.10, for 60 s.
    pub fn s1() -> Scenario {
        Scenario::steady(Kind::S1, Failure::Transient(0.10), Duration::from_secs(60))
    }

    /// S2: each attempt gets a 503 with probability 0.50, for 60 s.
    pub fn s2() -> Scenario {
        Scenario::steady(Kind::S2, Failure::Transient(0.50), Duration::from_secs(60))
    }

    /// S3: healthy for 30 s, 503 to everything for `outage`, healthy for 60 s.
    pub fn s3(outage: Duration) -> Scenario {
        let healthy = Duration::from_secs(30);
        Scenario::steady(
            Kind::S3,
            Failure::Outage { healthy, outage },
            healthy + outage + Duration::from_secs(60),
        )
    }

    /// The outage lengths S3 runs with.
    pub const OUTAGES: [u64; 3] = [45, 60, 70];

    /// S4: 429 with `Retry-After: 5` to every request arriving from 10 s to 30 s; 60 s.
    pub fn s4() -> Scenario {
        Scenario::steady(
            Kind::S4,
            Failure::Pushback {
                from: Duration::from_secs(10),
                until: Duration::from_secs(30),
                secs: 5,
            },
            Duration::from_secs(60),
        )
    }

    /// S5: 1,000 callers, one `GET` each at the start; 503 for the first second, healthy after;
    /// a 30 s caller timeout.
    pub fn s5() -> Scenario {
        Scenario {
            kind: Kind::S5,
            failure: Failure::Startup {
                failing: Duration::from_secs(1),
            },
            callers: 1000,
            period: Duration::ZERO,
            duration: Duration::ZERO,
            timeout: Duration::from_secs(30),
        }
    }

    /// S6: 50 callers, one `GET` every 200 ms each (250 requests/s) for 60 s; every response a
    /// 200, 2% of them (independently, seeded) after 1 s, the others after 20 ms.
    pub fn s6() -> Scenario {
        Scenario::steady(
            Kind::S6,
            Failure::HeavyTail {
                share: 0.02,
                slow: Duration::from_secs(1),
            },
            Duration::from_secs(60),
        )
    }

    /// S7: 8 callers, one `GET` every 200 ms each (40 requests/s), for 60 s; the upstream is
    /// healthy for the first 10 s, then each attempt gets a 503 with probability 0.40. The
    /// breaker has seen no failure when the first ones come, so the contract's 5 consecutive
    /// failures may open it; what matters is that it does not keep a host that serves 60% of
    /// its requests cut off.
    pub fn s7() -> Scenario {
        Scenario {
            callers: 8,
            ..Scenario::steady(
                Kind::S7,
                Failure::Onset {
                    healthy: Duration::from_secs(10),
                    p: 0.40,
                },
                Duration::from_secs(60),
            )
        }
    }

    /// The scenarios of `kind`: one, or three for S3 (one per outage length).
    pub fn of(kind: Kind) -> Vec<Scenario> {
        match kind {
            Kind::S1 => vec![Scenario::s1()],
            Kind::S2 => vec![Scenario::s2()],
            Kind::S3 => Scenario::OUTAGES
                .into_iter()
                .map(|secs| Scenario::s3(Duration::from_secs(secs)))
                .collect(),
            Kind::S4 => vec![Scenario::s4()],
            Kind::S5 => vec![Scenario::s5()],
            Kind::S6 => vec![Scenario::s6()],
            Kind::S7 => vec![Scenario::s7()],
        }
    }

    /// The requests the callers offer in one run.
    pub fn offered(&self) -> usize {
        if self.period.is_zero() {
            self.callers
        } else {
            let per_caller = self.duration.as_nanos().div_ceil(self.period.as_nanos());
            self.callers * per_caller as usize
        }
    }

    /// A one-line description: the failure and the offered load.
    pub fn describe(&self) -> String {
        let failure = match self.failure {
            Failure::Transient(share) => format!("each attempt 503 with p = {share:.2}"),
            Failure::Outage { healthy, outage } => format!(
                "healthy {} s, 503 for {} s, healthy {} s",
                healthy.as_secs(),
                outage.as_secs(),
                (self.duration - healthy - outage).as_secs()
            ),
            Failure::Pushback { from, until, secs } => format!(
                "429 + Retry-After: {secs} to every arrival in {}..{} s",
                from.as_secs(),
                until.as_secs()
            ),
            Failure::Startup { failing } => {
                format!("503 for the first {} s, healthy after", failing.as_secs())
            }
            Failure::Onset { healthy, p } => format!(
                "healthy {} s, then each attempt 503 with p = {p:.2}",
                healthy.as_secs()
            ),
            Failure::HeavyTail { share, slow } => format!(
                "every attempt 200, after {} ms with p = {share:.2}",
                slow.as_millis()
            ),
        };
        let load = if self.period.is_zero() {
            format!("{} callers, one GET each at t = 0", self.callers)
        } else {
            format!(
                "{} callers, one GET every {} ms each for {} s",
                self.callers,
                self.period.as_millis(),
                self.duration.as_secs()
            )
        };
        format!(
            "{failure}; {load} ({} offered); upstream latency {} ms; caller timeout {} s",
            self.offered(),
            LATENCY.as_millis(),
            self.timeout.as_secs()
        )
    }

    /// The upstream's plan. Call it inside the simulation's runtime at the start of the run:
    /// phases start when it is called.
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
            Failure::Pushback { from, until, secs } => Plan::phases()
                .then(from, Plan::always(ok()))
                .then(
                    until - from,
                    Plan::always(Reply::retry_after_secs(429, secs).delay(LATENCY)),
                )
                .starting_now()
                .finally(Plan::always(ok())),
            Failure::Startup { failing } => Plan::phases()
                .then(failing, Plan::always(unavailable()))
                .starting_now()
                .finally(Plan::always(ok())),
            Failure::Onset { healthy, p } => Plan::phases()
                .then(healthy, Plan::always(ok()))
                .starting_now()
                .finally(Plan::random(seed).with(p, unavailable()).otherwise(ok())),
            Failure::HeavyTail { share, slow } => Plan::random(seed)
                .with(share, Reply::ok().delay(slow))
                .otherwise(ok()),
        }
    }

    /// When the outage starts and ends, from the start of the run.
    pub fn outage(&self) -> Option<(Duration, Duration)> {
        match self.failure {
            Failure::Outage { healthy, outage } => Some((healthy, healthy + outage)),
            _ => None,
        }
    }
}
