//! The goals of the fender default stack, one per scenario, checked against a sweep's runs.
//!
//! Every check is on whole numbers (`succeeded * 1000 >= 998 * offered`, not floats), on every
//! seed of the sweep: a goal holds when its worst seed meets it. S6's goal compares two rows
//! seed by seed: the default stack with a hedge layer outside it, and without.

use std::time::Duration;

use super::report::{count, load, millis, pct, ratio, recovery};
use super::run::Measures;
use super::scenario::Kind;
use super::strategy::Strategy;
use super::sweep::Sweep;

/// One goal and how a sweep did against it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// The scenario.
    pub kind: Kind,
    /// The goal, as the table heading says it.
    pub goal: &'static str,
    /// The figures the verdict rests on.
    pub figures: String,
    /// Whether every seed met the goal.
    pub pass: bool,
}

/// `num / den >= per_mille / 1000`, exactly.
fn at_least(num: usize, den: usize, per_mille: usize) -> bool {
    num * 1000 >= per_mille * den
}

/// `num / den <= per_cent / 100`, exactly.
fn at_most(num: usize, den: usize, per_cent: usize) -> bool {
    num * 100 <= per_cent * den
}

/// The goal of `kind`, as written in the goal table.
pub fn goal(kind: Kind) -> &'static str {
    match kind {
        Kind::S1 => "S1: worst seed ≥ 99.8%, load ≤ 1.12x",
        Kind::S2 => "S2: worst seed ≥ 57.5% at ≤ 1.25x",
        Kind::S3 => "S3: outage load ≤ 0.05x and recovery ≤ 40 s, each outage length",
        Kind::S4 => "S4: arrivals under pushback = 0 and success ≥ 66.7%",
        Kind::S5 => "S5: ≥ 90% success and peak ≤ 150 per 100 ms",
        Kind::S6 => "S6: + hedge at p95: caller p99 ≥ 5x lower at ≤ 5% extra load",
        Kind::S7 => "S7: mean ≥ 88%, worst seed ≥ 35% (one open period), load ≤ 1.5x",
    }
}

/// The rows the goal of `kind` is checked on: the default stack, and for S6 also the default
/// stack with a hedge layer outside it.
pub fn goal_strategies(kind: Kind) -> &'static [Strategy] {
    match kind {
        Kind::S6 => &[Strategy::FenderDefault, Strategy::FenderHedge],
        _ => &[Strategy::FenderDefault],
    }
}

/// The verdict on the sweeps of `kind` (several for S3, one per outage length; one for the
/// others), all of the same row; for S6, one sweep of each of [`goal_strategies`]. `None` when
/// a sweep it needs is missing.
pub fn verdict(kind: Kind, sweeps: &[&Sweep]) -> Option<Verdict> {
    let first = sweeps.first()?;
    let runs = || sweeps.iter().flat_map(|s| s.runs.iter());
    let (figures, pass) = match kind {
        Kind::S7 => {
            let mean = first.mean(Measures::success_rate);
            let worst = first.worst_success();
            let pass = mean >= 0.88
                && runs().all(|r| {
                    at_least(r.succeeded, r.offered, 350) && at_most(r.arrivals, r.offered, 150)
                });
            let figures = format!(
                "mean {}; worst seed {} (seed {}, {}); worst load {}",
                pct(mean),
                pct(worst.success_rate()),
                worst.seed,
                load(worst.load(), 2),
                load(first.worst_load().load(), 2)
            );
            (figures, pass)
        }
        Kind::S1 | Kind::S2 => {
            let (success, max_load) = if kind == Kind::S1 {
                (998, 112)
            } else {
                (575, 125)
            };
            let worst = first.worst_success();
            let heaviest = first.worst_load();
            let pass = runs().all(|r| {
                at_least(r.succeeded, r.offered, success)
                    && at_most(r.arrivals, r.offered, max_load)
            });
            let figures = format!(
                "worst seed {} (seed {}, {}); worst load {}",
                pct(worst.success_rate()),
                worst.seed,
                load(worst.load(), 2),
                load(heaviest.load(), 2)
            );
            (figures, pass)
        }
        Kind::S3 => {
            let forty = Duration::from_secs(40);
            let pass = runs().all(|r| {
                r.outage.is_some_and(|o| {
                    at_most(o.arrivals, o.offered, 5) && o.recovery.is_some_and(|d| d <= forty)
                })
            });
            let figures = sweeps
                .iter()
                .map(|s| {
                    let outage = s
                        .scenario
                        .outage()
                        .map_or(0, |(from, to)| (to - from).as_secs());
                    let (_, load_high) = s.outage_load_range().unwrap_or((0.0, 0.0));
                    let (_, slowest) = s.recovery_range().unwrap_or((None, None));
                    format!("{outage} s: {}, {}", load(load_high, 3), recovery(slowest))
                })
                .collect::<Vec<_>>()
                .join("; ");
            (figures, pass)
        }
        Kind::S4 => {
            let pass =
                runs().all(|r| r.pushback.arrivals == 0 && at_least(r.succeeded, r.offered, 667));
            let most = runs()
                .max_by_key(|r| (r.pushback.arrivals, std::cmp::Reverse(r.seed)))
                .expect("a run");
            let worst = first.worst_success();
            let figures = format!(
                "{} under pushback (seed {}); worst success {}",
                count(most.pushback.arrivals),
                most.seed,
                pct(worst.success_rate())
            );
            (figures, pass)
        }
        Kind::S6 => return hedge_verdict(sweeps),
        Kind::S5 => {
            let pass = runs().all(|r| at_least(r.succeeded, r.offered, 900) && r.peak <= 150);
            let worst = first.worst_success();
            let (_, peak) = first.range(|r: &Measures| r.peak);
            let figures = format!(
                "worst success {} (seed {}); highest peak {peak}",
                pct(worst.success_rate()),
                worst.seed
            );
            (figures, pass)
        }
    };
    Some(Verdict {
        kind,
        goal: goal(kind),
        figures,
        pass,
    })
}

/// S6: seed by seed, the hedged row's caller p99 at most a fifth of the default row's, and its
/// arrivals at most 105% of the default row's.
fn hedge_verdict(sweeps: &[&Sweep]) -> Option<Verdict> {
    let of = |strategy| sweeps.iter().find(|s| s.row.strategy == strategy);
    let base = of(Strategy::FenderDefault)?;
    let hedged = of(Strategy::FenderHedge)?;
    let pairs: Vec<(&Measures, &Measures)> = base.runs.iter().zip(&hedged.runs).collect();
    let (base_run, hedged_run) = *pairs.first()?;
    debug_assert_eq!(
        base_run.seed, hedged_run.seed,
        "runs of both rows in order of seed"
    );
    let pass = pairs
        .iter()
        .all(|(b, h)| h.p99 * 5 <= b.p99 && h.arrivals * 100 <= 105 * b.arrivals);
    // The seed where hedging helps least, and the one where it costs most.
    let gain = |(b, h): &(&Measures, &Measures)| b.p99.as_secs_f64() / h.p99.as_secs_f64();
    let extra = |(b, h): &(&Measures, &Measures)| h.arrivals as f64 / b.arrivals as f64;
    let least = pairs
        .iter()
        .min_by(|x, y| gain(x).total_cmp(&gain(y)))
        .expect("a pair");
    let most = pairs
        .iter()
        .max_by(|x, y| extra(x).total_cmp(&extra(y)))
        .expect("a pair");
    let figures = format!(
        "worst seed {}: p99 {} vs {} ({} lower); heaviest load {} the default's",
        least.0.seed,
        millis(least.1.p99),
        millis(least.0.p99),
        ratio(gain(least)),
        load(extra(most), 3)
    );
    Some(Verdict {
        kind: Kind::S6,
        goal: goal(Kind::S6),
        figures,
        pass,
    })
}
