//! The words the state machine is made of.
//!
//! - [`StateWord`]: `[kind: 3 bits][epoch: 61 bits]`, the one word every transition
//!   compare-and-swaps. Each transition bumps the epoch, so exactly one caller wins it, and an
//!   outcome admitted under an older epoch can tell that its round is over. 2^61 transitions
//!   would take centuries at any rate a CPU can swap a word, so the epoch never wraps.
//! - [`RoundWord`]: `[tag: 32 bits][two 16-bit fields]`, what one round counts beside the
//!   state word (the probes of a half-open round, the failure run of a closed one), tagged with
//!   the low 32 bits of the round's epoch. A round starts with its word holding an older tag,
//!   which reads as zeros: nobody resets it, so a late write of an old round cannot land
//!   after the reset. Every writer first checks the round's full epoch in the state word, then
//!   compare-and-swaps the round word expecting its tag: a stale outcome can only reach a later
//!   round's counts if its thread stalls between those two instructions while 2^32 rounds go
//!   by.
//! - [`Mark`]: `[tag: 24 bits][milliseconds: 40 bits]`, the time of a round (when an open
//!   circuit admits its first probe, when a ramp began), written by the winner of the
//!   transition right after its swap. A reader that sees the new epoch before the mark treats
//!   the transition as having just happened.

use super::state::State;
use super::sync::{
    AtomicU64,
    Ordering::{AcqRel, Acquire},
};

/// The kind of state a [`StateWord`] is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Closed = 0,
    Recovering = 1,
    Open = 2,
    HalfOpen = 3,
    ForcedOpen = 4,
    Disabled = 5,
}

impl Kind {
    pub(crate) fn state(self) -> State {
        match self {
            Kind::Closed => State::Closed,
            Kind::Recovering => State::Recovering,
            Kind::Open => State::Open,
            Kind::HalfOpen => State::HalfOpen,
            Kind::ForcedOpen => State::ForcedOpen,
            Kind::Disabled => State::Disabled,
        }
    }

    fn from_bits(bits: u64) -> Kind {
        match bits {
            0 => Kind::Closed,
            1 => Kind::Recovering,
            2 => Kind::Open,
            3 => Kind::HalfOpen,
            4 => Kind::ForcedOpen,
            _ => Kind::Disabled,
        }
    }
}

const KIND_SHIFT: u32 = 61;
const EPOCH_MASK: u64 = (1 << KIND_SHIFT) - 1;

/// `[kind: 3 bits][epoch: 61 bits]`; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StateWord(u64);

impl StateWord {
    pub(crate) const INITIAL: StateWord = StateWord(0);

    pub(crate) fn new(kind: Kind, epoch: u64) -> StateWord {
        StateWord(((kind as u64) << KIND_SHIFT) | (epoch & EPOCH_MASK))
    }

    pub(crate) fn from_bits(bits: u64) -> StateWord {
        StateWord(bits)
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    pub(crate) fn kind(self) -> Kind {
        Kind::from_bits(self.0 >> KIND_SHIFT)
    }

    pub(crate) fn epoch(self) -> u64 {
        self.0 & EPOCH_MASK
    }

    /// Closed or recovering: outcomes count toward a trip.
    pub(crate) fn is_closed(self) -> bool {
        matches!(self.kind(), Kind::Closed | Kind::Recovering)
    }

    /// The word of a transition to `kind`: the next epoch.
    pub(crate) fn next(self, kind: Kind) -> StateWord {
        StateWord::new(kind, self.epoch() + 1)
    }
}

/// `[tag: 32 bits][high: 16 bits][low: 16 bits]`; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RoundWord(u64);

/// The largest value of a [`RoundWord`] field.
pub(crate) const FIELD_MAX: u16 = u16::MAX;

fn tag(epoch: u64) -> u32 {
    epoch as u32
}

/// Where a round word stands relative to one round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fields {
    /// The word belongs to the round: these are its counts.
    Current(u16, u16),
    /// The word belongs to an earlier round: this round has counted nothing yet.
    Fresh,
    /// The word belongs to a later round: the caller's round is over.
    Later,
}

impl RoundWord {
    pub(crate) fn new(epoch: u64, high: u16, low: u16) -> RoundWord {
        RoundWord((u64::from(tag(epoch)) << 32) | (u64::from(high) << 16) | u64::from(low))
    }

    pub(crate) fn from_bits(bits: u64) -> RoundWord {
        RoundWord(bits)
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    /// The word as round `epoch` sees it. Tags compare on a circle: a word up to 2^31 rounds
    /// behind is earlier, up to 2^31 ahead is later.
    pub(crate) fn fields(self, epoch: u64) -> Fields {
        let behind = tag(epoch).wrapping_sub((self.0 >> 32) as u32) as i32;
        match behind {
            0 => Fields::Current((self.0 >> 16) as u16, self.0 as u16),
            b if b > 0 => Fields::Fresh,
            _ => Fields::Later,
        }
    }

    /// The counts of round `epoch`, zeros if it has counted nothing, `None` if it is over.
    pub(crate) fn counts(self, epoch: u64) -> Option<(u16, u16)> {
        match self.fields(epoch) {
            Fields::Current(high, low) => Some((high, low)),
            Fields::Fresh => Some((0, 0)),
            Fields::Later => None,
        }
    }
}

/// Moves the round word `word` of round `epoch` from its fields to `next(fields)`, retrying
/// while other writers move it first; `None` from `next` leaves it as it is. Returns the fields
/// written, or `None` when nothing was.
#[inline]
pub(crate) fn update_round(
    word: &AtomicU64,
    epoch: u64,
    next: impl Fn(Fields) -> Option<(u16, u16)>,
) -> Option<(u16, u16)> {
    let mut current = word.load(Acquire);
    loop {
        let (high, low) = next(RoundWord::from_bits(current).fields(epoch))?;
        let bits = RoundWord::new(epoch, high, low).bits();
        match word.compare_exchange_weak(current, bits, AcqRel, Acquire) {
            Ok(_) => return Some((high, low)),
            Err(actual) => current = actual,
        }
    }
}

const MARK_SHIFT: u32 = 40;
const MARK_MS_MASK: u64 = (1 << MARK_SHIFT) - 1;
const MARK_TAG_MASK: u64 = (1 << 24) - 1;

/// `[tag: 24 bits][milliseconds: 40 bits]`; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark(u64);

impl Mark {
    /// The largest time a mark holds: 34 years of milliseconds.
    pub(crate) const MAX_MS: u64 = MARK_MS_MASK;

    pub(crate) fn new(epoch: u64, ms: u64) -> Mark {
        Mark(((epoch & MARK_TAG_MASK) << MARK_SHIFT) | ms.min(MARK_MS_MASK))
    }

    pub(crate) fn from_bits(bits: u64) -> Mark {
        Mark(bits)
    }

    pub(crate) fn bits(self) -> u64 {
        self.0
    }

    /// The milliseconds of round `epoch`, if its writer has published them.
    pub(crate) fn of(self, epoch: u64) -> Option<u64> {
        (self.0 >> MARK_SHIFT == epoch & MARK_TAG_MASK).then_some(self.0 & MARK_MS_MASK)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn state_word_fields_round_trip_and_the_epoch_uses_61_bits() {
        let w = StateWord::new(Kind::HalfOpen, EPOCH_MASK);
        assert_eq!(w.kind(), Kind::HalfOpen);
        assert_eq!(w.epoch(), (1 << 61) - 1);
        let w = StateWord::new(Kind::Open, 1 << 21);
        assert_eq!(w.epoch(), 1 << 21, "no 21-bit wrap");
        assert_eq!(w.next(Kind::HalfOpen).epoch(), (1 << 21) + 1);
        assert!(StateWord::new(Kind::Recovering, 7).is_closed());
        assert!(!StateWord::new(Kind::Disabled, 7).is_closed());
    }

    #[test]
    fn a_round_word_of_an_earlier_round_reads_as_zeros_and_of_a_later_one_as_over() {
        let w = RoundWord::new(10, 3, 2);
        assert_eq!(w.fields(10), Fields::Current(3, 2));
        assert_eq!(w.counts(11), Some((0, 0)));
        assert_eq!(w.counts(9), None);
        // The tag is 32 bits: a round 2^21 later is not mistaken for this one.
        assert_eq!(w.counts(10 + (1 << 21)), Some((0, 0)));
        // Tags compare on a circle across the 32-bit boundary.
        let near_wrap = RoundWord::new(u64::from(u32::MAX), 1, 1);
        assert_eq!(near_wrap.fields(1 << 32), Fields::Fresh);
        assert_eq!(
            RoundWord::new(1 << 32, 1, 1).counts(u64::from(u32::MAX)),
            None
        );
    }

    #[test]
    fn a_mark_is_read_only_by_its_round() {
        let m = Mark::new(5, 1_234);
        assert_eq!(m.of(5), Some(1_234));
        assert_eq!(m.of(6), None);
        assert_eq!(Mark::new(1, u64::MAX).of(1), Some(Mark::MAX_MS));
    }
}
