//! The state machine of one breaker: admission, and the transitions between states.
//!
//! Everything is a compare-and-swap on the [`StateWord`] (see `state_word.rs`), plus
//! epoch-tagged [`RoundWord`]s for what a round counts: the probes of a half-open round
//! (`[tag][in flight][successes]`) and the failure run of a closed one (`[tag][run][required
//! run]`). No lock, no allocation. Outcomes are recorded in `outcome.rs`.
//!
//! User code (the `on_state_change` callback) runs only after a transition is complete, its
//! bookkeeping done and any probe slot owned by a permit, and its panics are caught and logged:
//! a callback cannot leave the machine half-updated.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::chance::RecentRate;
use super::counters::{CacheAligned, Counters, PerThreadCounters};
use super::error::{CircuitOpen, Reason};
use super::policy::{Config, Trip};
use super::ramp::{self, GOLDEN, RampSequence, splitmix};
use super::state::{State, StateChange};
use super::state_word::{Fields, Kind, Mark, RoundWord, StateWord, update_round};
use super::sync::{
    self, AtomicU32, AtomicU64,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use super::window::Window;

/// The wait reported when it is not known exactly (probe slots taken, ramp).
const HINT: Duration = Duration::from_secs(1);

/// What a call was admitted as; its outcome is recorded against it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ticket {
    /// Admitted by a closed (or recovering) circuit of epoch `epoch`, when `evidence` failures
    /// had counted: its failure counts toward a trip only if no other failure counted since.
    Closed { epoch: u64, evidence: u64 },
    /// A probe holding one of the probe slots of the half-open round `epoch`.
    Probe { epoch: u64 },
    /// Admitted by a disabled breaker: only the counters see it.
    Untracked,
}

/// A transition that happened, to report once the caller has finished its bookkeeping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a transition is reported with Machine::report"]
pub(crate) struct Transition {
    pub(crate) from: State,
    pub(crate) to: State,
}

/// The words every call reads, on cache lines of their own; written only by failures and
/// transitions.
#[derive(Debug)]
pub(super) struct Hot {
    pub(super) word: AtomicU64,
    /// Failures counted as evidence so far (see [`Ticket::Closed`]).
    pub(super) evidence: AtomicU64,
    /// The failure run of the current closed round: `[tag][run][required run]`.
    pub(super) run: AtomicU64,
}

/// One circuit breaker's state machine.
pub(crate) struct Machine {
    pub(super) hot: CacheAligned<Hot>,
    /// The probes of the current half-open round: `[tag][in flight][successes]`.
    pub(super) probes: AtomicU64,
    /// The failed probes of the current half-open round: `[tag][all of them][in a row]`.
    pub(super) probe_failures: AtomicU64,
    mark: AtomicU64,
    /// Failed half-open rounds in a row, for the growing open duration.
    retrips: AtomicU32,
    /// What the current run of failures saw before it began (calls, failures, span in ms; all
    /// zero for none) and the outcome totals then (calls, failures), kept so that a close can
    /// restore the history (see [`restore_history`](Self::restore_history)).
    pub(super) run_seen: [AtomicU64; 5],
    ramp: RampSequence,
    rng: AtomicU64,
    transitions: AtomicU64,
    pub(super) window: Option<Window>,
    pub(super) recent: RecentRate,
    pub(super) counters: PerThreadCounters,
    base: Instant,
    pub(crate) config: Arc<Config>,
    key: Option<Arc<str>>,
}

impl fmt::Debug for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .field("key", &self.key)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Machine {
    pub(crate) fn new(config: Arc<Config>, key: Option<Arc<str>>) -> Self {
        let window = match config.trip {
            Trip::Rate(rate) => Some(Window::new(rate.window)),
            Trip::Consecutive(_) => None,
        };
        let seed = config.seed.unwrap_or_else(rand::random);
        crate::metrics::breaker_made(key.as_ref());
        Machine {
            hot: CacheAligned(Hot {
                word: AtomicU64::new(StateWord::INITIAL.bits()),
                evidence: AtomicU64::new(0),
                run: AtomicU64::new(RoundWord::new(0, 0, 0).bits()),
            }),
            probes: AtomicU64::new(RoundWord::new(0, 0, 0).bits()),
            probe_failures: AtomicU64::new(RoundWord::new(0, 0, 0).bits()),
            mark: AtomicU64::new(0),
            retrips: AtomicU32::new(0),
            run_seen: std::array::from_fn(|_| AtomicU64::new(0)),
            ramp: RampSequence::new(),
            rng: AtomicU64::new(seed),
            transitions: AtomicU64::new(0),
            window,
            recent: RecentRate::new(),
            counters: PerThreadCounters::new(),
            base: sync::now(),
            config,
            key,
        }
    }

    #[inline]
    pub(super) fn load(&self) -> StateWord {
        StateWord::from_bits(self.hot.0.word.load(Acquire))
    }

    /// One compare-and-swap of the state word.
    pub(super) fn swap(&self, current: StateWord, new: StateWord) -> Result<(), StateWord> {
        self.hot
            .0
            .word
            .compare_exchange(current.bits(), new.bits(), AcqRel, Acquire)
            .map(drop)
            .map_err(StateWord::from_bits)
    }

    /// Milliseconds since the machine was made.
    pub(super) fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_millis() as u64
    }

    /// `now + d` in milliseconds since `base`, rounded up so that it is never early.
    fn deadline_ms(&self, now: Instant, d: Duration) -> u64 {
        let nanos = (now.saturating_duration_since(self.base) + d).as_nanos();
        (nanos.div_ceil(1_000_000) as u64).min(Mark::MAX_MS)
    }

    fn instant_of(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    fn mark_of(&self, epoch: u64) -> Option<u64> {
        Mark::from_bits(self.mark.load(Acquire)).of(epoch)
    }

    fn set_mark(&self, epoch: u64, ms: u64) {
        self.mark.store(Mark::new(epoch, ms).bits(), Release);
    }

    pub(crate) fn state(&self) -> State {
        self.load().kind().state()
    }

    pub(crate) fn counters(&self) -> Counters {
        let totals = self.counters.totals();
        Counters {
            successes: totals.successes,
            failures: totals.failures,
            rejections: totals.rejections,
            transitions: self.transitions.load(Relaxed),
        }
    }

    pub(crate) fn count_rejection(&self) {
        self.counters.rejection();
        crate::metrics::circuit_refused();
    }

    /// The probes in flight in half-open round `epoch`.
    fn probes_in_flight(&self, epoch: u64) -> u16 {
        RoundWord::from_bits(self.probes.load(Acquire))
            .counts(epoch)
            .map_or(0, |(in_flight, _)| in_flight)
    }

    /// Decides, before the inner service is polled, whether the next call will be refused:
    /// an open circuit before its next probe, a forced-open one, a half-open one with every
    /// probe slot taken, or a recovering one whose ramp does not admit this call. `Ok(true)`
    /// means the ramp admitted it (pass that to [`admit`](Self::admit)). Nothing is reserved:
    /// probe slots are only taken by `admit`.
    #[inline]
    pub(crate) fn check(&self, ramp_pass: bool) -> Result<bool, CircuitOpen> {
        let w = self.load();
        match w.kind() {
            Kind::Open => match self.open_until(w.epoch()) {
                Some(wait) => Err(CircuitOpen::new(Reason::Open, wait)),
                None => Ok(false),
            },
            Kind::HalfOpen if self.probes_in_flight(w.epoch()) as u32 >= self.config.probes => {
                Err(CircuitOpen::new(Reason::HalfOpenFull, HINT))
            }
            Kind::ForcedOpen => Err(self.forced_open()),
            Kind::Recovering if !ramp_pass => match self.ramp_share(w.epoch()) {
                Some(share) => self.draw(share).map(|()| true),
                None => Ok(false),
            },
            _ => Ok(ramp_pass),
        }
    }

    fn forced_open(&self) -> CircuitOpen {
        CircuitOpen::new(Reason::ForcedOpen, self.config.open_duration)
    }

    /// How long the open round `epoch` still refuses calls; `None` once a probe may go.
    fn open_until(&self, epoch: u64) -> Option<Duration> {
        let Some(until) = self.mark_of(epoch) else {
            // The winner of the transition has not published the time yet: it just opened.
            return Some(self.config.open_duration);
        };
        let (now, until) = (sync::now(), self.instant_of(until));
        (now < until).then(|| until - now)
    }

    /// The share the ramp of epoch `e` admits now, or `None` once the ramp is over.
    fn ramp_share(&self, epoch: u64) -> Option<f64> {
        let ramp = self.config.ramp()?;
        let elapsed = match self.mark_of(epoch) {
            Some(start) => self.ms(sync::now()).saturating_sub(start),
            None => 0,
        };
        ramp::share(ramp, elapsed)
    }

    fn draw(&self, share: f64) -> Result<(), CircuitOpen> {
        if self.ramp.draw(share) {
            Ok(())
        } else {
            Err(CircuitOpen::new(Reason::Ramp, HINT))
        }
    }

    /// Admits or refuses a call now; `ramp_pass` says the ramp already admitted it in
    /// [`check`](Self::check). A refusal is counted. A transition made on the way (to
    /// half-open, or from recovering to closed) is returned to be reported once the ticket is
    /// owned by a permit.
    pub(crate) fn admit(
        &self,
        ramp_pass: bool,
    ) -> (Result<Ticket, CircuitOpen>, Option<Transition>) {
        let mut transition = None;
        let result = self.try_admit(ramp_pass, &mut transition);
        if result.is_err() {
            self.count_rejection();
        }
        (result, transition)
    }

    fn try_admit(
        &self,
        ramp_pass: bool,
        transition: &mut Option<Transition>,
    ) -> Result<Ticket, CircuitOpen> {
        let mut w = self.load();
        loop {
            let epoch = w.epoch();
            match w.kind() {
                Kind::Closed => return Ok(self.closed_ticket(epoch)),
                Kind::Disabled => return Ok(Ticket::Untracked),
                Kind::ForcedOpen => return Err(self.forced_open()),
                Kind::Recovering => match self.ramp_share(epoch) {
                    Some(_) if ramp_pass => return Ok(self.closed_ticket(epoch)),
                    Some(share) => return self.draw(share).map(|()| self.closed_ticket(epoch)),
                    // The ramp is over: closed, in the same round (the run goes on).
                    None => match self.swap(w, StateWord::new(Kind::Closed, epoch)) {
                        Ok(()) => {
                            *transition = Some(Transition {
                                from: State::Recovering,
                                to: State::Closed,
                            });
                            return Ok(self.closed_ticket(epoch));
                        }
                        Err(actual) => w = actual,
                    },
                },
                Kind::Open => {
                    if let Some(wait) = self.open_until(epoch) {
                        return Err(CircuitOpen::new(Reason::Open, wait));
                    }
                    let half = w.next(Kind::HalfOpen);
                    match self.swap(w, half) {
                        Ok(()) => {
                            *transition = Some(Transition {
                                from: State::Open,
                                to: State::HalfOpen,
                            });
                            w = half;
                        }
                        Err(actual) => w = actual,
                    }
                }
                Kind::HalfOpen => match self.take_probe_slot(w) {
                    Ok(true) => return Ok(Ticket::Probe { epoch }),
                    Ok(false) => w = self.load(),
                    Err(full) => return Err(full),
                },
            }
        }
    }

    /// The common case of [`admit`](Self::admit), small enough to inline into the caller: the
    /// ticket of a call a closed circuit admits (no transition, nothing to count), or `None`
    /// when the circuit is in any other state and `admit` must decide.
    #[inline]
    pub(crate) fn admit_closed(&self) -> Option<Ticket> {
        let w = self.load();
        (w.kind() == Kind::Closed).then(|| self.closed_ticket(w.epoch()))
    }

    #[inline]
    fn closed_ticket(&self, epoch: u64) -> Ticket {
        Ticket::Closed {
            epoch,
            evidence: self.hot.0.evidence.load(Acquire),
        }
    }

    /// Takes a probe slot of the half-open round `w`: `Ok(true)` when taken, `Ok(false)` when
    /// the round ended meanwhile (decide again), an error when every slot is taken.
    fn take_probe_slot(&self, w: StateWord) -> Result<bool, CircuitOpen> {
        let epoch = w.epoch();
        let mut current = self.probes.load(Acquire);
        loop {
            let Some((in_flight, successes)) = RoundWord::from_bits(current).counts(epoch) else {
                return Ok(false);
            };
            if u32::from(in_flight) >= self.config.probes {
                return Err(CircuitOpen::new(Reason::HalfOpenFull, HINT));
            }
            let next = RoundWord::new(epoch, in_flight + 1, successes);
            match self
                .probes
                .compare_exchange_weak(current, next.bits(), AcqRel, Acquire)
            {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if self.load() == w {
            return Ok(true);
        }
        // The round ended between the two words: give the slot back and decide again.
        self.release_probe(epoch);
        Ok(false)
    }

    /// Gives back a probe slot of round `epoch` that will record no outcome.
    pub(super) fn release_probe(&self, epoch: u64) {
        update_round(&self.probes, epoch, |fields| match fields {
            Fields::Current(in_flight @ 1.., successes) => Some((in_flight - 1, successes)),
            _ => None,
        });
    }

    /// Opens the circuit from the closed or half-open word `w`.
    pub(super) fn open_from(&self, w: StateWord) -> Result<Transition, StateWord> {
        let from = w.kind().state();
        let retrips = if w.kind() == Kind::HalfOpen {
            self.retrips.load(Relaxed) + 1
        } else {
            0
        };
        let duration = self.open_duration(retrips);
        let open = w.next(Kind::Open);
        self.swap(w, open)?;
        self.set_mark(open.epoch(), self.deadline_ms(sync::now(), duration));
        self.retrips.store(retrips, Relaxed);
        self.recent.clear();
        Ok(Transition {
            from,
            to: State::Open,
        })
    }

    /// Closes the circuit from the half-open word `w`, starting the ramp if there is one.
    pub(super) fn close_from(&self, w: StateWord) -> Result<Transition, StateWord> {
        let kind = if self.config.ramp().is_some() {
            Kind::Recovering
        } else {
            Kind::Closed
        };
        let closed = w.next(kind);
        let now_ms = self.ms(sync::now());
        // The closed circuit starts from the failure rate the tripping run saw before it began,
        // as if the open period had not happened: a host that kept failing a share of its calls
        // is not cut off again by the first run that share makes likely, and the run that
        // tripped (evidence of an outage, not of noise) and the probes are left out. Nobody
        // notes outcomes of the new round before the swap, so this cannot lose one.
        self.restore_history(w.epoch(), now_ms);
        self.swap(w, closed)?;
        if kind == Kind::Recovering {
            self.set_mark(closed.epoch(), now_ms);
        }
        self.retrips.store(0, Relaxed);
        if let Some(window) = &self.window {
            window.clear();
        }
        Ok(Transition {
            from: State::HalfOpen,
            to: kind.state(),
        })
    }

    /// The failure-rate history a closed circuit starts from, as of `now_ms`, after the round
    /// of half-open round `epoch`, as if the open period had not happened. A round whose probes
    /// all succeeded closes on a recovered host: the history is the rate the tripping run saw
    /// before it began (the run was an outage, not noise). A round that saw a failed probe
    /// closes on a host that still fails some calls: the run and the probes are part of its
    /// rate too, so its first chance run does not cut it off again.
    fn restore_history(&self, epoch: u64, now_ms: u64) {
        let [pre_calls, pre_failures, pre_span, run_calls, run_failures] =
            self.run_seen.each_ref().map(|a| a.load(Relaxed));
        let mixed = RoundWord::from_bits(self.probe_failures.load(Acquire))
            .counts(epoch)
            .is_some_and(|(all, _)| all > 0);
        self.recent.clear();
        let ms = now_ms.saturating_sub(pre_span);
        if mixed {
            // Everything since the snapshot the run was judged from (or since the run began).
            self.recent.restore(
                ms,
                run_calls.saturating_sub(pre_calls),
                run_failures.saturating_sub(pre_failures),
            );
        } else if pre_calls > 0 {
            let totals = self.counters.totals();
            self.recent.restore(
                ms,
                totals.calls().saturating_sub(pre_calls),
                totals.failures.saturating_sub(pre_failures),
            );
        }
    }

    /// The open duration after `retrips` failed half-open rounds: the configured duration on
    /// the first trip; with a growing duration, doubled per round, capped, and jittered down to
    /// as little as half.
    fn open_duration(&self, retrips: u32) -> Duration {
        let nominal = self.config.nominal_open_duration(retrips);
        if self.config.max_open_duration.is_none() || retrips == 0 {
            return nominal;
        }
        let r = splitmix(self.rng.fetch_add(GOLDEN, Relaxed));
        let fraction = (r >> 11) as f64 / (1u64 << 53) as f64;
        nominal.mul_f64(0.5 + 0.5 * fraction)
    }

    /// Moves to `kind` unconditionally (handle operations).
    fn force(&self, kind: Kind) {
        let mut w = self.load();
        while let Err(actual) = self.swap(w, w.next(kind)) {
            w = actual;
        }
        if kind == Kind::Closed {
            self.retrips.store(0, Relaxed);
            self.recent.clear();
            if let Some(window) = &self.window {
                window.clear();
            }
        }
        let (from, to) = (w.kind().state(), kind.state());
        if from != to {
            self.report(Transition { from, to });
        }
    }

    pub(crate) fn force_open(&self) {
        self.force(Kind::ForcedOpen);
    }

    pub(crate) fn force_closed(&self) {
        self.force(Kind::Disabled);
    }

    pub(crate) fn reset(&self) {
        self.force(Kind::Closed);
    }

    /// Counts, logs and reports a completed transition to the callback. A panicking callback
    /// is logged at ERROR and otherwise ignored: the transition is already complete.
    pub(crate) fn report(&self, Transition { from, to }: Transition) {
        self.transitions.fetch_add(1, Relaxed);
        crate::metrics::breaker_transition(self.key.as_ref(), from, to);
        let key = self.key.as_deref().unwrap_or("");
        match to {
            State::Open | State::ForcedOpen => tracing::warn!(
                target: "fender::circuit_breaker",
                key,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state change"
            ),
            _ => tracing::info!(
                target: "fender::circuit_breaker",
                key,
                from = from.as_str(),
                to = to.as_str(),
                "circuit breaker state change"
            ),
        }
        let Some(callback) = &self.config.on_state_change else {
            return;
        };
        let change = StateChange {
            from,
            to,
            key: self.key.clone(),
        };
        if let Err(panic) = catch_unwind(AssertUnwindSafe(|| callback(&change))) {
            let message = panic
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
                .unwrap_or("a non-string payload");
            tracing::error!(
                target: "fender::circuit_breaker",
                key,
                from = from.as_str(),
                to = to.as_str(),
                panic = message,
                "the on_state_change callback panicked; the breaker carries on"
            );
        }
    }
}
