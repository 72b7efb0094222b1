//! Recording outcomes: what a completed call does to the state machine.
//!
//! A closed circuit counts a run of failures, and opens when the run is long enough (see
//! `chance.rs` for how long). Failures of calls that were in flight together are one piece of
//! evidence: a failure counts only if no other failure counted since its call was sent (the
//! call's ticket carries the evidence count of its admission; the first failure to advance it
//! wins). A success of the current round ends the run. Outcomes of an earlier round (an older
//! epoch) change only the counters.

use super::chance;
use super::machine::{Machine, Ticket, Transition};
use super::policy::Trip;
use super::state_word::{Fields, Kind, RoundWord, StateWord};
use super::sync::{
    self,
    Ordering::{AcqRel, Acquire},
};

impl Machine {
    /// Records the outcome of an admitted call, counting it on thread group `group`.
    #[inline]
    pub(crate) fn record(&self, group: usize, ticket: Ticket, failure: bool) {
        self.counters.outcome(group, failure);
        let transition = match ticket {
            Ticket::Untracked => None,
            Ticket::Probe { epoch } => self.record_probe(epoch, failure),
            Ticket::Closed { epoch, evidence } => match self.config.trip {
                Trip::Consecutive(min) => self.record_closed(epoch, evidence, failure, min),
                Trip::Rate(_) => self.record_rate(epoch, failure),
            },
        };
        if let Some(transition) = transition {
            self.report(transition);
        }
    }

    fn record_closed(
        &self,
        epoch: u64,
        evidence: u64,
        failure: bool,
        min: u64,
    ) -> Option<Transition> {
        let w = self.load();
        if !w.is_closed() || w.epoch() != epoch {
            return None;
        }
        let hot = &self.hot.0;
        if !failure {
            // The common case reads the run and writes nothing.
            let mut current = hot.run.load(Acquire);
            while let Fields::Current(1.., _) = RoundWord::from_bits(current).fields(epoch) {
                let reset = RoundWord::new(epoch, 0, 0).bits();
                match hot
                    .run
                    .compare_exchange_weak(current, reset, AcqRel, Acquire)
                {
                    Ok(_) => break,
                    Err(actual) => current = actual,
                }
            }
            return None;
        }
        let now_ms = self.ms(sync::now());
        let counted = hot
            .evidence
            .compare_exchange(evidence, evidence + 1, AcqRel, Acquire)
            .is_ok();
        if !counted {
            // In flight with a failure that already counted: the same piece of evidence.
            self.recent.note(now_ms, self.counters.totals());
            return None;
        }
        let mut current = hot.run.load(Acquire);
        let (run, required) = loop {
            let (run, required) = RoundWord::from_bits(current).counts(epoch)?;
            let required = if run == 0 {
                self.required_run(min, now_ms)
            } else {
                u64::from(required)
            };
            let run = u64::from(run) + 1;
            let next = RoundWord::new(epoch, run as u16, required as u16);
            match hot
                .run
                .compare_exchange_weak(current, next.bits(), AcqRel, Acquire)
            {
                Ok(_) => break (run, required),
                Err(actual) => current = actual,
            }
        };
        self.recent.note(now_ms, self.counters.totals());
        (run >= required).then(|| self.trip(w))?
    }

    /// The run that opens the circuit, for a run starting now (see `chance.rs`).
    fn required_run(&self, min: u64, now_ms: u64) -> u64 {
        if !self.config.chance_runs {
            return min;
        }
        // What was seen before the run: the failure that starts it is not part of it.
        let mut totals = self.counters.totals();
        totals.failures = totals.failures.saturating_sub(1);
        chance::required_run(min, self.recent.seen(now_ms, totals))
    }

    fn record_rate(&self, epoch: u64, failure: bool) -> Option<Transition> {
        let Trip::Rate(rate) = self.config.trip else {
            return None;
        };
        let w = self.load();
        if !w.is_closed() || w.epoch() != epoch {
            return None;
        }
        let window = self.window.as_ref().expect("rate mode has a window");
        let tally = window.record(failure, self.ms(sync::now()));
        let trips = failure
            && tally.calls >= u64::from(rate.min_calls)
            && tally.failures as f64 >= rate.threshold * tally.calls as f64;
        trips.then(|| self.trip(w))?
    }

    /// Opens a closed circuit of `w`'s round, unless something else moved it first.
    fn trip(&self, mut w: StateWord) -> Option<Transition> {
        let epoch = w.epoch();
        while w.is_closed() && w.epoch() == epoch {
            match self.open_from(w) {
                Ok(transition) => return Some(transition),
                Err(actual) => w = actual,
            }
        }
        None
    }

    fn record_probe(&self, epoch: u64, failure: bool) -> Option<Transition> {
        let mut w = self.load();
        if w.kind() != Kind::HalfOpen || w.epoch() != epoch {
            return None;
        }
        if failure {
            while w.kind() == Kind::HalfOpen && w.epoch() == epoch {
                match self.open_from(w) {
                    Ok(transition) => return Some(transition),
                    Err(actual) => w = actual,
                }
            }
            return None;
        }
        let mut current = self.probes.load(Acquire);
        let successes = loop {
            let Fields::Current(in_flight, successes) = RoundWord::from_bits(current).fields(epoch)
            else {
                return None;
            };
            let successes = successes.saturating_add(1);
            let next = RoundWord::new(epoch, in_flight.saturating_sub(1), successes);
            match self
                .probes
                .compare_exchange_weak(current, next.bits(), AcqRel, Acquire)
            {
                Ok(_) => break successes,
                Err(actual) => current = actual,
            }
        };
        if u32::from(successes) < self.config.close_after {
            return None;
        }
        while w.kind() == Kind::HalfOpen && w.epoch() == epoch {
            match self.close_from(w) {
                Ok(transition) => return Some(transition),
                Err(actual) => w = actual,
            }
        }
        None
    }

    /// A call that will record no outcome (its future was dropped, or the inner service
    /// panicked in `call`): a probe gives its slot back.
    pub(crate) fn cancel(&self, ticket: Ticket) {
        if let Ticket::Probe { epoch } = ticket {
            self.release_probe(epoch);
        }
    }
}
