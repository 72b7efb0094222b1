//! [`Plan`]: which [`Reply`] each request gets.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::time::Instant;

use crate::reply::Reply;
use crate::upstream::Received;

/// Which [`Reply`] the n-th request gets: always the same, a fixed sequence, a seeded random mix,
/// phases over time, or a closure.
///
/// ```
/// use std::time::Duration;
/// use fender_testkit::{Plan, Reply};
///
/// // Two failures, then success (repeated for every later request).
/// let flaky = Plan::sequence([Reply::status(503), Reply::status(503), Reply::ok()]);
/// // A reproducible mix: about 20% 503, 5% resets, the rest 200.
/// let chaos = Plan::random(7)
///     .with(0.20, Reply::status(503))
///     .with(0.05, Reply::reset())
///     .otherwise(Reply::ok());
/// // Healthy for 10 s, down for 30 s, then healthy again.
/// let outage = Plan::phases()
///     .then(Duration::from_secs(10), Plan::always(Reply::ok()))
///     .then(Duration::from_secs(30), Plan::always(Reply::status(503)))
///     .finally(Plan::always(Reply::ok()));
/// // Anything else.
/// let by_method = Plan::from_fn(|req| {
///     if req.method == http::Method::POST { Reply::status(500) } else { Reply::ok() }
/// });
/// # let _ = (flaky, chaos, outage, by_method);
/// ```
///
/// A plan counts its own requests: a sequence nested in a phase starts at its first element
/// when the phase sees its first request. A [`Reply`] converts into [`Plan::always`].
pub struct Plan {
    kind: Kind,
    served: AtomicUsize,
}

enum Kind {
    Always(Reply),
    Sequence(Vec<Reply>),
    Random {
        rng: Mutex<SmallRng>,
        choices: Vec<(f64, Reply)>,
        otherwise: Reply,
    },
    Phases {
        phases: Vec<(Duration, Plan)>,
        finally: Option<Box<Plan>>,
        start: OnceLock<Instant>,
    },
    FromFn(Box<dyn Fn(&Received) -> Reply + Send + Sync>),
}

impl Plan {
    fn new(kind: Kind) -> Plan {
        Plan {
            kind,
            served: AtomicUsize::new(0),
        }
    }

    /// Every request gets `reply`.
    pub fn always(reply: Reply) -> Plan {
        Plan::new(Kind::Always(reply))
    }

    /// The n-th request gets the n-th reply; once the replies run out, the last one repeats.
    ///
    /// # Panics
    ///
    /// When `replies` is empty.
    pub fn sequence(replies: impl IntoIterator<Item = Reply>) -> Plan {
        let replies: Vec<Reply> = replies.into_iter().collect();
        assert!(
            !replies.is_empty(),
            "Plan::sequence needs at least one reply"
        );
        Plan::new(Kind::Sequence(replies))
    }

    /// A seeded random mix; add replies with their shares with [`RandomPlan::with`] and finish
    /// with [`RandomPlan::otherwise`]. The same seed gives the same replies in the same order.
    pub fn random(seed: u64) -> RandomPlan {
        RandomPlan {
            seed,
            choices: Vec::new(),
            total: 0.0,
        }
    }

    /// Plans that take turns over time (`tokio::time`), each for a duration; add them with
    /// [`PhasedPlan::then`]. The clock starts at the first request the plan sees, or when
    /// [`PhasedPlan::starting_now`] is called.
    pub fn phases() -> PhasedPlan {
        PhasedPlan {
            phases: Vec::new(),
            start: OnceLock::new(),
        }
    }

    /// The closure picks the reply. The [`Received`] it gets has an empty
    /// [`reply`](Received::reply) label; everything else is filled in.
    pub fn from_fn<F>(f: F) -> Plan
    where
        F: Fn(&Received) -> Reply + Send + Sync + 'static,
    {
        Plan::new(Kind::FromFn(Box::new(f)))
    }

    /// The reply for the next request.
    pub(crate) fn next(&self, request: &Received) -> Reply {
        let n = self.served.fetch_add(1, Ordering::Relaxed);
        match &self.kind {
            Kind::Always(reply) => reply.clone(),
            Kind::Sequence(replies) => replies[n.min(replies.len() - 1)].clone(),
            Kind::Random {
                rng,
                choices,
                otherwise,
            } => {
                let draw: f64 = rng
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .random_range(0.0..1.0);
                let mut upper = 0.0;
                for (share, reply) in choices {
                    upper += share;
                    if draw < upper {
                        return reply.clone();
                    }
                }
                otherwise.clone()
            }
            Kind::Phases {
                phases,
                finally,
                start,
            } => {
                let now = Instant::now();
                let elapsed = now.saturating_duration_since(*start.get_or_init(|| now));
                let mut end = Duration::ZERO;
                for (duration, plan) in phases {
                    end += *duration;
                    if elapsed < end {
                        return plan.next(request);
                    }
                }
                match finally {
                    Some(plan) => plan.next(request),
                    None => phases
                        .last()
                        .expect("a phased plan has at least one phase")
                        .1
                        .next(request),
                }
            }
            Kind::FromFn(f) => f(request),
        }
    }
}

impl From<Reply> for Plan {
    fn from(reply: Reply) -> Self {
        Plan::always(reply)
    }
}

impl fmt::Debug for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Always(reply) => f.debug_tuple("Always").field(reply).finish(),
            Kind::Sequence(replies) => f.debug_tuple("Sequence").field(replies).finish(),
            Kind::Random {
                choices, otherwise, ..
            } => f
                .debug_struct("Random")
                .field("choices", choices)
                .field("otherwise", otherwise)
                .finish_non_exhaustive(),
            Kind::Phases {
                phases, finally, ..
            } => f
                .debug_struct("Phases")
                .field("phases", phases)
                .field("finally", finally)
                .finish_non_exhaustive(),
            Kind::FromFn(_) => f.debug_tuple("FromFn").finish_non_exhaustive(),
        }
    }
}

/// The builder of [`Plan::random`].
#[derive(Debug)]
pub struct RandomPlan {
    seed: u64,
    choices: Vec<(f64, Reply)>,
    total: f64,
}

impl RandomPlan {
    /// About `share` of the requests (0.0 to 1.0) get `reply`.
    ///
    /// # Panics
    ///
    /// When `share` is not within 0.0 to 1.0, or the shares add up to more than 1.0.
    pub fn with(mut self, share: f64, reply: Reply) -> RandomPlan {
        assert!(
            (0.0..=1.0).contains(&share),
            "a share is within 0.0 and 1.0, got {share}"
        );
        self.total += share;
        assert!(
            self.total <= 1.0 + 1e-9,
            "the shares of a random plan add up to {}, more than 1.0",
            self.total
        );
        self.choices.push((share, reply));
        self
    }

    /// The requests not given one of the other replies get `reply`.
    pub fn otherwise(self, reply: Reply) -> Plan {
        Plan::new(Kind::Random {
            rng: Mutex::new(SmallRng::seed_from_u64(self.seed)),
            choices: self.choices,
            otherwise: reply,
        })
    }
}

/// Without [`otherwise`](RandomPlan::otherwise), the remaining requests get [`Reply::ok`].
impl From<RandomPlan> for Plan {
    fn from(plan: RandomPlan) -> Self {
        plan.otherwise(Reply::ok())
    }
}

/// The builder of [`Plan::phases`].
#[derive(Debug)]
pub struct PhasedPlan {
    phases: Vec<(Duration, Plan)>,
    start: OnceLock<Instant>,
}

impl PhasedPlan {
    /// For `duration` after the previous phase ends, requests go to `plan`.
    pub fn then(mut self, duration: Duration, plan: impl Into<Plan>) -> PhasedPlan {
        self.phases.push((duration, plan.into()));
        self
    }

    /// Starts the clock now (`tokio::time::Instant::now()`) instead of at the first request.
    pub fn starting_now(self) -> PhasedPlan {
        let _ = self.start.set(Instant::now());
        self
    }

    /// After the last phase, requests go to `plan`.
    pub fn finally(self, plan: impl Into<Plan>) -> Plan {
        Plan::new(Kind::Phases {
            phases: self.phases,
            finally: Some(Box::new(plan.into())),
            start: self.start,
        })
    }
}

/// Without [`finally`](PhasedPlan::finally), the last phase lasts forever.
///
/// # Panics
///
/// When there are no phases.
impl From<PhasedPlan> for Plan {
    fn from(plan: PhasedPlan) -> Self {
        assert!(!plan.phases.is_empty(), "a phased plan needs a phase");
        Plan::new(Kind::Phases {
            phases: plan.phases,
            finally: None,
            start: plan.start,
        })
    }
}
