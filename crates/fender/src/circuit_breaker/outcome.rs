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
use super::state_word::{Fields, Kind, RoundWord, StateWord, update_round};
use super::sync::{
    self,
    Ordering::{AcqRel, Acquire, Relaxed},
};

impl Machine {
    /// Records the outcome of an admitted call, counting it on thread group `group`.
    #[inline]
    pub(crate) fn record(&self, group: usize, ticket: Ticket, failure: bool) {
        self.counters.outcome(group, failure);
        if let (false, Ticket::Closed { epoch, .. }, Trip::Consecutive(_)) =
            (failure, ticket, self.config.trip)
        {
            // A success only ends a run of failures: with none running (the common case)
            // there is nothing to write, whatever the state word says.
            let run = RoundWord::from_bits(self.hot.0.run.load(Acquire));
            if !matches!(run.fields(epoch), Fields::Current(1.., _)) {
                return;
            }
        }
        self.record_outcome(ticket, failure);
    }

    /// The rest of [`record`](Self::record), past the counters: what the outcome does to the
    /// state machine.
    fn record_outcome(&self, ticket: Ticket, failure: bool) {
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

    /// A retry's failure on a closed circuit (see `Permit::record_repeat_failure`): it counts
    /// in the outcome totals, and so in the failure rate, but not in the run. Anything else
    /// (the circuit moved on since the call was admitted) is recorded as usual.
    pub(crate) fn record_repeat_failure(&self, group: usize, ticket: Ticket) {
        match ticket {
            Ticket::Closed { epoch, .. } if self.load().epoch() == epoch => {
                self.counters.outcome(group, true);
                self.recent
                    .note(self.ms(sync::now()), self.counters.totals());
            }
            _ => self.record(group, ticket, true),
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

    /// The run that opens the circuit, for a run starting now (see `chance.rs`). What the run
    /// saw before it began is kept in `run_seen`, for a close to restore.
    fn required_run(&self, min: u64, now_ms: u64) -> u64 {
        if !self.config.chance_runs {
            return min;
        }
        // What was seen before the run: the failure that starts it is not part of it.
        let mut totals = self.counters.totals();
        totals.failures = totals.failures.saturating_sub(1);
        let seen = self.recent.seen(now_ms, totals);
        let [calls, failures, span] = seen.map_or([0; 3], |s| [s.calls, s.failures, s.span_ms]);
        let kept = [calls, failures, span, totals.calls(), totals.failures];
        for (slot, value) in self.run_seen.iter().zip(kept) {
            slot.store(value, Relaxed);
        }
        chance::required_run(min, seen)
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

    /// A probe's outcome. A half-open round closes the circuit on its `close_after`-th
    /// success and re-opens it on its `reopen_after`-th failure in a row (a success ends a run
    /// of failed probes), whichever comes first; a failed probe before that gives its slot to
    /// the next probe.
    fn record_probe(&self, epoch: u64, failure: bool) -> Option<Transition> {
        let mut w = self.load();
        if w.kind() != Kind::HalfOpen || w.epoch() != epoch {
            return None;
        }
        let decided = if failure {
            let failures = self.count_probe_failure(epoch)?;
            self.release_probe(epoch);
            u32::from(failures) >= self.config.reopen_failures()
        } else {
            let successes = self.count_probe_success(epoch)?;
            self.end_probe_failure_run(epoch);
            u32::from(successes) >= self.config.close_after
        };
        if !decided {
            return None;
        }
        while w.kind() == Kind::HalfOpen && w.epoch() == epoch {
            let moved = if failure {
                self.open_from(w)
            } else {
                self.close_from(w)
            };
            match moved {
                Ok(transition) => return Some(transition),
                Err(actual) => w = actual,
            }
        }
        None
    }

    /// Frees the probe's slot and counts its success; the round's successes so far, or `None`
    /// if the round is over.
    fn count_probe_success(&self, epoch: u64) -> Option<u16> {
        update_round(&self.probes, epoch, |fields| match fields {
            Fields::Current(in_flight, successes) => {
                Some((in_flight.saturating_sub(1), successes.saturating_add(1)))
            }
            Fields::Fresh | Fields::Later => None,
        })
        .map(|(_, successes)| successes)
    }

    /// Ends the run of failed probes of round `epoch` after a successful one.
    fn end_probe_failure_run(&self, epoch: u64) {
        update_round(&self.probe_failures, epoch, |fields| match fields {
            Fields::Current(all, 1..) => Some((all, 0)),
            _ => None,
        });
    }

    /// Counts a failed probe of round `epoch`; the round's failed probes in a row so far, or
    /// `None` if the round is over.
    fn count_probe_failure(&self, epoch: u64) -> Option<u16> {
        update_round(&self.probe_failures, epoch, |fields| {
            let (all, in_a_row) = match fields {
                Fields::Current(all, in_a_row) => (all, in_a_row),
                Fields::Fresh => (0, 0),
                Fields::Later => return None,
            };
            Some((all.saturating_add(1), in_a_row.saturating_add(1)))
        })
        .map(|(_, in_a_row)| in_a_row)
    }

    /// A call that will record no outcome (its future was dropped, or the inner service
    /// panicked in `call`): a probe gives its slot back.
    #[inline]
    pub(crate) fn cancel(&self, ticket: Ticket) {
        if let Ticket::Probe { epoch } = ticket {
            self.release_probe(epoch);
        }
    }
}
