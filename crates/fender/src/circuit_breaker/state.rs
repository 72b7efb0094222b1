//! The breaker itself: one atomic state word, lock-free transitions.
//!
//! The state word is `[kind: 3 bits][epoch: 21 bits][payload: 40 bits]`. Every transition
//! between kinds is one compare-and-swap on it that also bumps the epoch, so exactly one caller
//! wins each transition, and an outcome admitted under an older epoch can never move the
//! current state. The payload is the consecutive-failure count when closed, and the probes in
//! flight and successful probes (20 bits each) when half-open.
//!
//! Times (when an open circuit admits its first probe, when a ramp began) live in a second word,
//! `[epoch: 21 bits][milliseconds since the breaker was made: 43 bits]`, written by the winner of
//! the transition right after its swap. A reader that sees the new epoch before the time carries
//! it treats the transition as having just happened.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{
    AtomicU32, AtomicU64, AtomicUsize,
    Ordering::{AcqRel, Acquire, Relaxed, Release},
};
use std::time::Duration;

use tokio::time::Instant;

use super::error::{CircuitOpen, Reason};
use super::policy::{Config, Trip};
use super::window::Window;

/// The state of a circuit breaker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Calls go through; failures are counted.
    Closed,
    /// Closed recently: a growing share of calls goes through, the rest fail fast.
    Recovering,
    /// Calls fail fast until the next probe. An open circuit whose open duration has passed
    /// stays `Open` until the next call, which becomes the first probe.
    Open,
    /// A limited number of probe calls go through; the rest fail fast.
    HalfOpen,
    /// Forced open through the handle: every call fails fast until forced closed or reset.
    ForcedOpen,
    /// Forced closed through the handle: the breaker lets everything through and never trips.
    Disabled,
}

impl State {
    /// A short lowercase name, for logs and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Recovering => "recovering",
            State::Open => "open",
            State::HalfOpen => "half-open",
            State::ForcedOpen => "forced open",
            State::Disabled => "disabled",
        }
    }

    fn from_kind(kind: u64) -> State {
        match kind {
            CLOSED => State::Closed,
            RECOVERING => State::Recovering,
            OPEN => State::Open,
            HALF_OPEN => State::HalfOpen,
            FORCED_OPEN => State::ForcedOpen,
            _ => State::Disabled,
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One state change, as reported to the `on_state_change` callback.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StateChange {
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
    /// The breaker's key (its `Debug` form) when the layer keeps one breaker per key.
    pub key: Option<Arc<str>>,
}

/// A snapshot of a breaker's counters; they only grow (a reset does not clear them).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Calls that completed and were not failures.
    pub successes: u64,
    /// Calls that completed as failures (slow calls included when a slow-call threshold is set).
    pub failures: u64,
    /// Calls refused without reaching the inner service.
    pub rejections: u64,
    /// State changes.
    pub transitions: u64,
}

impl std::ops::Add for Counters {
    type Output = Counters;

    fn add(self, other: Counters) -> Counters {
        Counters {
            successes: self.successes + other.successes,
            failures: self.failures + other.failures,
            rejections: self.rejections + other.rejections,
            transitions: self.transitions + other.transitions,
        }
    }
}

const CLOSED: u64 = 0;
const RECOVERING: u64 = 1;
const OPEN: u64 = 2;
const HALF_OPEN: u64 = 3;
const FORCED_OPEN: u64 = 4;
const DISABLED: u64 = 5;

const KIND_SHIFT: u32 = 61;
const EPOCH_SHIFT: u32 = 40;
const EPOCH_MASK: u64 = (1 << 21) - 1;
const PAYLOAD_MASK: u64 = (1 << 40) - 1;
const HALF_SHIFT: u32 = 20;
const HALF_MASK: u64 = (1 << 20) - 1;
const MARK_SHIFT: u32 = 43;
const MARK_MS_MASK: u64 = (1 << 43) - 1;

fn kind(w: u64) -> u64 {
    w >> KIND_SHIFT
}

fn epoch(w: u64) -> u64 {
    (w >> EPOCH_SHIFT) & EPOCH_MASK
}

fn payload(w: u64) -> u64 {
    w & PAYLOAD_MASK
}

fn word(kind: u64, epoch: u64, payload: u64) -> u64 {
    (kind << KIND_SHIFT) | ((epoch & EPOCH_MASK) << EPOCH_SHIFT) | (payload & PAYLOAD_MASK)
}

fn is_closed(w: u64) -> bool {
    matches!(kind(w), CLOSED | RECOVERING)
}

/// The wait reported when it is not known exactly (probe slots taken, ramp).
const HINT: Duration = Duration::from_secs(1);

/// What a call was admitted as; recorded when it completes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    kind: TicketKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TicketKind {
    /// Admitted by a closed (or recovering) circuit: its outcome counts toward tripping.
    Closed,
    /// A half-open probe holding one of the probe slots.
    Probe,
    /// Admitted by a disabled breaker: only the counters see it.
    Untracked,
}

impl Ticket {
    pub(crate) fn is_probe(&self) -> bool {
        self.kind == TicketKind::Probe
    }
}

/// Counters striped over cache lines, so that threads counting at once do not fight over one.
struct Striped {
    stripes: [Padded<Stripe>; STRIPES],
}

const STRIPES: usize = 4;

#[derive(Default)]
struct Stripe {
    successes: AtomicU64,
    failures: AtomicU64,
    rejections: AtomicU64,
}

#[derive(Default)]
#[repr(align(128))]
struct Padded<T>(T);

fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Relaxed) % STRIPES;
    }
    INDEX.with(|i| *i)
}

impl Striped {
    fn new() -> Self {
        Striped {
            stripes: Default::default(),
        }
    }

    fn stripe(&self) -> &Stripe {
        &self.stripes[stripe_index()].0
    }

    fn sum(&self) -> (u64, u64, u64) {
        self.stripes.iter().fold((0, 0, 0), |(s, f, r), p| {
            (
                s + p.0.successes.load(Relaxed),
                f + p.0.failures.load(Relaxed),
                r + p.0.rejections.load(Relaxed),
            )
        })
    }
}

/// A breaker as services hold it: the breaker, plus one reference to it per stripe.
///
/// Every admitted call's future keeps the breaker alive until it completes. Cloning one shared
/// `Arc` for that would make every call on every thread write the same reference count; each
/// call clones the reference of its thread's stripe instead, on a cache line of its own.
pub(crate) struct Shared {
    breaker: Arc<Breaker>,
    shards: [Arc<Shard>; STRIPES],
}

/// One stripe's reference to a breaker, with what a completing call needs at hand.
#[repr(align(128))]
pub(crate) struct Shard {
    breaker: Arc<Breaker>,
    stripe: usize,
    pub(crate) slow_call: Option<Duration>,
}

impl std::ops::Deref for Shard {
    type Target = Breaker;

    fn deref(&self) -> &Breaker {
        &self.breaker
    }
}

impl Shard {
    /// Records the outcome of an admitted call, counting it on this shard's stripe.
    pub(crate) fn record(&self, ticket: Ticket, failure: bool) {
        self.breaker.record_at(self.stripe, ticket, failure);
    }
}

impl std::ops::Deref for Shared {
    type Target = Breaker;

    fn deref(&self) -> &Breaker {
        &self.breaker
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.breaker, f)
    }
}

impl Shared {
    pub(crate) fn new(breaker: Breaker) -> Self {
        let breaker = Arc::new(breaker);
        Shared {
            shards: std::array::from_fn(|stripe| {
                Arc::new(Shard {
                    breaker: breaker.clone(),
                    stripe,
                    slow_call: breaker.config.slow_call,
                })
            }),
            breaker,
        }
    }

    /// The reference of the current thread's stripe.
    pub(crate) fn local(&self) -> Arc<Shard> {
        self.shards[stripe_index()].clone()
    }

    pub(crate) fn breaker(&self) -> &Arc<Breaker> {
        &self.breaker
    }
}

/// One circuit breaker.
pub(crate) struct Breaker {
    word: Padded<AtomicU64>,
    mark: AtomicU64,
    /// Failed half-open rounds in a row, for the growing open duration.
    retrips: AtomicU32,
    ramp_seq: AtomicU64,
    rng: AtomicU64,
    transitions: AtomicU64,
    /// When the breaker was last used, in milliseconds on its key map's clock (keyed breakers
    /// only), for eviction.
    last_used: AtomicU64,
    window: Option<Window>,
    counters: Striped,
    base: Instant,
    pub(crate) config: Arc<Config>,
    key: Option<Arc<str>>,
}

impl fmt::Debug for Breaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Breaker")
            .field("state", &self.state())
            .field("key", &self.key)
            .field("counters", &self.counters())
            .finish_non_exhaustive()
    }
}

impl Breaker {
    pub(crate) fn new(config: Arc<Config>, key: Option<Arc<str>>) -> Self {
        let window = match config.trip {
            Trip::Rate(rate) => Some(Window::new(rate.window)),
            Trip::Consecutive(_) => None,
        };
        let seed = config.seed.unwrap_or_else(rand::random);
        Breaker {
            word: Padded(AtomicU64::new(word(CLOSED, 0, 0))),
            mark: AtomicU64::new(0),
            retrips: AtomicU32::new(0),
            ramp_seq: AtomicU64::new(0),
            rng: AtomicU64::new(seed),
            transitions: AtomicU64::new(0),
            last_used: AtomicU64::new(0),
            window,
            counters: Striped::new(),
            base: Instant::now(),
            config,
            key,
        }
    }

    fn ms(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.base).as_millis() as u64
    }

    /// `now + d` in milliseconds since `base`, rounded up so that it is never early.
    fn deadline_ms(&self, now: Instant, d: Duration) -> u64 {
        let nanos = (now.saturating_duration_since(self.base) + d).as_nanos();
        (nanos.div_ceil(1_000_000) as u64).min(MARK_MS_MASK)
    }

    fn instant_of(&self, ms: u64) -> Instant {
        self.base + Duration::from_millis(ms)
    }

    /// The time mark of epoch `e`, if its writer has published it.
    fn mark_of(&self, e: u64) -> Option<u64> {
        let m = self.mark.load(Acquire);
        (m >> MARK_SHIFT == e).then_some(m & MARK_MS_MASK)
    }

    fn set_mark(&self, e: u64, ms: u64) {
        self.mark
            .store((e << MARK_SHIFT) | (ms & MARK_MS_MASK), Release);
    }

    pub(crate) fn touch(&self, ms: u64) {
        self.last_used.store(ms, Relaxed);
    }

    pub(crate) fn last_used(&self) -> u64 {
        self.last_used.load(Relaxed)
    }

    pub(crate) fn state(&self) -> State {
        State::from_kind(kind(self.word.0.load(Acquire)))
    }

    pub(crate) fn counters(&self) -> Counters {
        let (successes, failures, rejections) = self.counters.sum();
        Counters {
            successes,
            failures,
            rejections,
            transitions: self.transitions.load(Relaxed),
        }
    }

    pub(crate) fn count_rejection(&self) {
        self.counters.stripe().rejections.fetch_add(1, Relaxed);
    }

    /// Decides, before the inner service is polled, whether the next call will be refused:
    /// an open circuit before its next probe, a forced-open one, a half-open one with every probe
    /// slot taken, or a recovering one whose ramp does not admit this call. `Ok(true)` means the
    /// ramp admitted it (pass that to [`admit`](Self::admit)). Nothing is reserved: probe slots
    /// are only taken by `admit`.
    pub(crate) fn prepare(&self, ramp_pass: bool) -> Result<bool, CircuitOpen> {
        let w = self.word.0.load(Acquire);
        match kind(w) {
            OPEN => {
                let now = Instant::now();
                match self.mark_of(epoch(w)) {
                    None => Err(CircuitOpen::new(Reason::Open, self.config.open_duration)),
                    Some(until) => {
                        let until = self.instant_of(until);
                        if now < until {
                            Err(CircuitOpen::new(Reason::Open, until - now))
                        } else {
                            Ok(false)
                        }
                    }
                }
            }
            HALF_OPEN if (payload(w) >> HALF_SHIFT) >= u64::from(self.config.probes) => {
                Err(CircuitOpen::new(Reason::HalfOpenFull, HINT))
            }
            FORCED_OPEN => Err(CircuitOpen::new(
                Reason::ForcedOpen,
                self.config.open_duration,
            )),
            RECOVERING if !ramp_pass => match self.ramp_share(epoch(w)) {
                Some(share) => self.draw(share).map(|()| true),
                None => Ok(false),
            },
            _ => Ok(ramp_pass),
        }
    }

    /// The share the ramp of epoch `e` admits now, or `None` once the ramp is over.
    fn ramp_share(&self, e: u64) -> Option<f64> {
        let ramp = self.config.ramp?;
        let elapsed = match self.mark_of(e) {
            Some(start) => self.ms(Instant::now()).saturating_sub(start),
            None => 0,
        };
        let window = ramp.window.as_millis() as u64;
        (elapsed < window)
            .then(|| ramp.start_share + (1.0 - ramp.start_share) * elapsed as f64 / window as f64)
    }

    /// One ramp admission: the next point of the sequence against the share.
    fn draw(&self, share: f64) -> Result<(), CircuitOpen> {
        let k = self.ramp_seq.fetch_add(1, Relaxed);
        if admitted(k, share) {
            Ok(())
        } else {
            Err(CircuitOpen::new(Reason::Ramp, HINT))
        }
    }

    /// Decides whether a call may go through now; `ramp_pass` says the ramp already admitted
    /// it in [`prepare`](Self::prepare). A refusal is counted.
    pub(crate) fn admit(&self, ramp_pass: bool) -> Result<Ticket, CircuitOpen> {
        let result = self.try_admit(ramp_pass);
        if result.is_err() {
            self.count_rejection();
        }
        result
    }

    fn try_admit(&self, ramp_pass: bool) -> Result<Ticket, CircuitOpen> {
        let mut w = self.word.0.load(Acquire);
        loop {
            let e = epoch(w);
            match kind(w) {
                CLOSED => {
                    return Ok(Ticket {
                        epoch: e,
                        kind: TicketKind::Closed,
                    });
                }
                DISABLED => {
                    return Ok(Ticket {
                        epoch: e,
                        kind: TicketKind::Untracked,
                    });
                }
                FORCED_OPEN => {
                    return Err(CircuitOpen::new(
                        Reason::ForcedOpen,
                        self.config.open_duration,
                    ));
                }
                RECOVERING => {
                    let ticket = Ticket {
                        epoch: e,
                        kind: TicketKind::Closed,
                    };
                    match self.ramp_share(e) {
                        Some(_) if ramp_pass => return Ok(ticket),
                        Some(share) => return self.draw(share).map(|()| ticket),
                        None => {
                            let closed = word(CLOSED, e, payload(w));
                            match self.word.0.compare_exchange(w, closed, AcqRel, Acquire) {
                                Ok(_) => {
                                    self.emit(State::Recovering, State::Closed);
                                    return Ok(ticket);
                                }
                                // Someone else moved it: decide again on the new word.
                                Err(actual) => w = actual,
                            }
                        }
                    }
                }
                OPEN => {
                    let now = Instant::now();
                    let Some(until) = self.mark_of(e) else {
                        return Err(CircuitOpen::new(Reason::Open, self.config.open_duration));
                    };
                    let until = self.instant_of(until);
                    if now < until {
                        return Err(CircuitOpen::new(Reason::Open, until - now));
                    }
                    let half = word(HALF_OPEN, e + 1, 1 << HALF_SHIFT);
                    match self.word.0.compare_exchange(w, half, AcqRel, Acquire) {
                        Ok(_) => {
                            self.emit(State::Open, State::HalfOpen);
                            return Ok(Ticket {
                                epoch: (e + 1) & EPOCH_MASK,
                                kind: TicketKind::Probe,
                            });
                        }
                        Err(actual) => w = actual,
                    }
                }
                _ => {
                    // Half-open: take a probe slot if one is free.
                    let in_flight = payload(w) >> HALF_SHIFT;
                    if in_flight >= u64::from(self.config.probes) {
                        return Err(CircuitOpen::new(Reason::HalfOpenFull, HINT));
                    }
                    let next = w + (1 << HALF_SHIFT);
                    match self.word.0.compare_exchange_weak(w, next, AcqRel, Acquire) {
                        Ok(_) => {
                            return Ok(Ticket {
                                epoch: e,
                                kind: TicketKind::Probe,
                            });
                        }
                        Err(actual) => w = actual,
                    }
                }
            }
        }
    }

    /// Records the outcome of an admitted call, counting it on stripe `stripe`.
    fn record_at(&self, stripe: usize, ticket: Ticket, failure: bool) {
        let stripe = &self.counters.stripes[stripe].0;
        if failure {
            stripe.failures.fetch_add(1, Relaxed);
        } else {
            stripe.successes.fetch_add(1, Relaxed);
        }
        match ticket.kind {
            TicketKind::Untracked => {}
            TicketKind::Probe => self.record_probe(ticket.epoch, failure),
            TicketKind::Closed => match self.config.trip {
                Trip::Consecutive(threshold) => {
                    self.record_consecutive(ticket.epoch, failure, threshold)
                }
                Trip::Rate(rate) => {
                    let w = self.word.0.load(Acquire);
                    if !is_closed(w) || epoch(w) != ticket.epoch {
                        return;
                    }
                    let window = self.window.as_ref().expect("rate mode has a window");
                    let tally = window.record(failure, self.ms(Instant::now()));
                    if failure
                        && tally.calls >= u64::from(rate.min_calls)
                        && tally.failures as f64 >= rate.threshold * tally.calls as f64
                    {
                        let mut w = w;
                        while is_closed(w) && epoch(w) == ticket.epoch {
                            match self.open_from(w) {
                                Ok(()) => return,
                                Err(actual) => w = actual,
                            }
                        }
                    }
                }
            },
        }
    }

    fn record_consecutive(&self, e: u64, failure: bool, threshold: u64) {
        let mut w = self.word.0.load(Acquire);
        loop {
            if !is_closed(w) || epoch(w) != e {
                return;
            }
            let next = if failure {
                let count = payload(w) + 1;
                if count >= threshold {
                    match self.open_from(w) {
                        Ok(()) => return,
                        Err(actual) => {
                            w = actual;
                            continue;
                        }
                    }
                }
                w + 1
            } else if payload(w) == 0 {
                // The common case: nothing to reset, no write to the shared word.
                return;
            } else {
                w & !PAYLOAD_MASK
            };
            match self.word.0.compare_exchange_weak(w, next, AcqRel, Acquire) {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
    }

    fn record_probe(&self, e: u64, failure: bool) {
        let mut w = self.word.0.load(Acquire);
        loop {
            if kind(w) != HALF_OPEN || epoch(w) != e {
                return;
            }
            if failure {
                match self.open_from(w) {
                    Ok(()) => return,
                    Err(actual) => {
                        w = actual;
                        continue;
                    }
                }
            }
            let in_flight = (payload(w) >> HALF_SHIFT).saturating_sub(1);
            let successes = (payload(w) & HALF_MASK) + 1;
            if successes >= u64::from(self.config.close_after) {
                match self.close_from(w) {
                    Ok(()) => return,
                    Err(actual) => {
                        w = actual;
                        continue;
                    }
                }
            }
            let next = word(HALF_OPEN, e, (in_flight << HALF_SHIFT) | successes);
            match self.word.0.compare_exchange_weak(w, next, AcqRel, Acquire) {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
    }

    /// A probe that never completed (its future was dropped) gives its slot back.
    pub(crate) fn release_probe(&self, ticket: Ticket) {
        let mut w = self.word.0.load(Acquire);
        while kind(w) == HALF_OPEN && epoch(w) == ticket.epoch && payload(w) >> HALF_SHIFT > 0 {
            match self
                .word
                .0
                .compare_exchange_weak(w, w - (1 << HALF_SHIFT), AcqRel, Acquire)
            {
                Ok(_) => return,
                Err(actual) => w = actual,
            }
        }
    }

    /// Opens the circuit from the closed or half-open word `w`.
    fn open_from(&self, w: u64) -> Result<(), u64> {
        let from = State::from_kind(kind(w));
        let retrips = if kind(w) == HALF_OPEN {
            self.retrips.load(Relaxed) + 1
        } else {
            0
        };
        let duration = self.open_duration(retrips);
        let e = (epoch(w) + 1) & EPOCH_MASK;
        self.word
            .0
            .compare_exchange(w, word(OPEN, e, 0), AcqRel, Acquire)?;
        self.set_mark(e, self.deadline_ms(Instant::now(), duration));
        self.retrips.store(retrips, Relaxed);
        self.emit(from, State::Open);
        Ok(())
    }

    /// Closes the circuit from the half-open word `w`, starting the ramp if there is one.
    fn close_from(&self, w: u64) -> Result<(), u64> {
        let e = (epoch(w) + 1) & EPOCH_MASK;
        let (k, to) = match self.config.ramp {
            Some(_) => (RECOVERING, State::Recovering),
            None => (CLOSED, State::Closed),
        };
        self.word
            .0
            .compare_exchange(w, word(k, e, 0), AcqRel, Acquire)?;
        if k == RECOVERING {
            self.set_mark(e, self.ms(Instant::now()));
        }
        self.retrips.store(0, Relaxed);
        if let Some(window) = &self.window {
            window.clear();
        }
        self.emit(State::HalfOpen, to);
        Ok(())
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
    fn force(&self, k: u64) {
        let mut w = self.word.0.load(Acquire);
        loop {
            let next = word(k, epoch(w) + 1, 0);
            match self.word.0.compare_exchange_weak(w, next, AcqRel, Acquire) {
                Ok(_) => break,
                Err(actual) => w = actual,
            }
        }
        if k == CLOSED {
            self.retrips.store(0, Relaxed);
            if let Some(window) = &self.window {
                window.clear();
            }
        }
        let (from, to) = (State::from_kind(kind(w)), State::from_kind(k));
        if from != to {
            self.emit(from, to);
        }
    }

    pub(crate) fn force_open(&self) {
        self.force(FORCED_OPEN);
    }

    pub(crate) fn force_closed(&self) {
        self.force(DISABLED);
    }

    pub(crate) fn reset(&self) {
        self.force(CLOSED);
    }

    fn emit(&self, from: State, to: State) {
        self.transitions.fetch_add(1, Relaxed);
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
        if let Some(callback) = &self.config.on_state_change {
            callback(&StateChange {
                from,
                to,
                key: self.key.clone(),
            });
        }
    }
}

const GOLDEN: u64 = 0x9E37_79B9_7F4A_7C15;

/// Whether the `k`-th call of a ramp is in the admitted `share`: the Weyl sequence `k·φ mod 1`
/// spreads admissions evenly for any share, deterministically and without shared state beyond
/// one counter.
fn admitted(k: u64, share: f64) -> bool {
    let point = (k.wrapping_mul(GOLDEN) >> 11) as f64 / (1u64 << 53) as f64;
    point < share
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(GOLDEN);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weyl_admission_matches_the_share() {
        for share in [0.1, 0.25, 0.5, 0.9] {
            let n = 10_000u64;
            let got = (0..n).filter(|&k| admitted(k, share)).count() as f64 / n as f64;
            assert!((got - share).abs() < 0.01, "share {share}: got {got}");
        }
    }

    #[test]
    fn word_fields_round_trip() {
        let w = word(HALF_OPEN, EPOCH_MASK, (3 << HALF_SHIFT) | 2);
        assert_eq!(kind(w), HALF_OPEN);
        assert_eq!(epoch(w), EPOCH_MASK);
        assert_eq!(payload(w) >> HALF_SHIFT, 3);
        assert_eq!(payload(w) & HALF_MASK, 2);
        // The epoch wraps without touching the kind.
        assert_eq!(kind(word(OPEN, EPOCH_MASK + 1, 0)), OPEN);
        assert_eq!(epoch(word(OPEN, EPOCH_MASK + 1, 0)), 0);
    }
}
