//! Many seeds of a scenario under a strategy, run in parallel, and what they add up to.

use std::cmp::Ordering;
use std::sync::Mutex;
use std::sync::atomic::{self, AtomicUsize};
use std::time::Duration;

use super::run::{Measures, simulate};
use super::scenario::{Row, Scenario};

/// The runs of one scenario under one row, one per seed, in order of seed.
#[derive(Clone, Debug)]
pub struct Sweep {
    /// The scenario.
    pub scenario: Scenario,
    /// The row.
    pub row: Row,
    /// One run per seed.
    pub runs: Vec<Measures>,
}

/// Compares two success rates exactly (by cross-multiplying the counts).
fn by_success(a: &Measures, b: &Measures) -> Ordering {
    (a.succeeded as u128 * b.offered as u128).cmp(&(b.succeeded as u128 * a.offered as u128))
}

/// Compares two loads exactly.
fn by_load(a: &Measures, b: &Measures) -> Ordering {
    (a.arrivals as u128 * b.offered as u128).cmp(&(b.arrivals as u128 * a.offered as u128))
}

impl Sweep {
    /// The mean over seeds of `measure`.
    pub fn mean(&self, measure: impl Fn(&Measures) -> f64) -> f64 {
        self.runs.iter().map(measure).sum::<f64>() / self.runs.len() as f64
    }

    /// The worst seed: the run with the lowest success rate (of equal ones, the lowest seed).
    ///
    /// # Panics
    ///
    /// When the sweep has no runs.
    pub fn worst_success(&self) -> &Measures {
        self.runs
            .iter()
            .reduce(|worst, run| match by_success(run, worst) {
                Ordering::Less => run,
                Ordering::Equal if run.seed < worst.seed => run,
                _ => worst,
            })
            .expect("a sweep of at least one seed")
    }

    /// The run with the highest load (of equal ones, the lowest seed).
    ///
    /// # Panics
    ///
    /// When the sweep has no runs.
    pub fn worst_load(&self) -> &Measures {
        self.runs
            .iter()
            .reduce(|worst, run| match by_load(run, worst) {
                Ordering::Greater => run,
                Ordering::Equal if run.seed < worst.seed => run,
                _ => worst,
            })
            .expect("a sweep of at least one seed")
    }

    /// The lowest and highest of `measure` over seeds.
    pub fn range<T: Ord + Copy>(&self, measure: impl Fn(&Measures) -> T) -> (T, T) {
        let mut values = self.runs.iter().map(measure);
        let first = values.next().expect("a sweep of at least one seed");
        values.fold((first, first), |(low, high), v| (low.min(v), high.max(v)))
    }

    /// The lowest and highest outage load over seeds, for a scenario with an outage.
    pub fn outage_load_range(&self) -> Option<(f64, f64)> {
        let loads: Option<Vec<f64>> = self
            .runs
            .iter()
            .map(|r| r.outage.map(|o| o.load()))
            .collect();
        let loads = loads?;
        let low = loads.iter().copied().fold(f64::INFINITY, f64::min);
        let high = loads.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        Some((low, high))
    }

    /// The shortest and the longest recovery over seeds (`None`: not recovered within the
    /// run, which is longer than any), for a scenario with an outage.
    pub fn recovery_range(&self) -> Option<(Option<Duration>, Option<Duration>)> {
        let recoveries: Option<Vec<Option<Duration>>> = self
            .runs
            .iter()
            .map(|r| r.outage.map(|o| o.recovery))
            .collect();
        let recoveries = recoveries?;
        // `None` sorts first among `Option`s; make it the longest.
        let key = |r: &Option<Duration>| r.map_or((1, Duration::ZERO), |d| (0, d));
        let low = *recoveries.iter().min_by_key(|r| key(r))?;
        let high = *recoveries.iter().max_by_key(|r| key(r))?;
        Some((low, high))
    }
}

/// One run to do: a scenario, a row, a seed.
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// The scenario.
    pub scenario: Scenario,
    /// The row.
    pub row: Row,
    /// The seed.
    pub seed: u64,
}

/// Runs every job on `threads` OS threads (each run on a runtime of its own), and gives the
/// measures in the order of `jobs`. The biggest scenarios start first, so the threads finish
/// together.
pub fn run_jobs(jobs: &[Job], threads: usize) -> Vec<Measures> {
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(jobs[i].scenario.offered()));
    let next = AtomicUsize::new(0);
    let results = Mutex::new(vec![None; jobs.len()]);
    std::thread::scope(|scope| {
        for _ in 0..threads.clamp(1, jobs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let n = next.fetch_add(1, atomic::Ordering::Relaxed);
                    let Some(&i) = order.get(n) else { break };
                    let job = jobs[i];
                    let measures = simulate(&job.scenario, job.row, job.seed);
                    results.lock().expect("no run panicked")[i] = Some(measures);
                }
            });
        }
    });
    results
        .into_inner()
        .expect("no run panicked")
        .into_iter()
        .map(|m| m.expect("every job ran"))
        .collect()
}

/// Runs `scenarios` × `rows` × seeds `1..=seeds(scenario)` on `threads` threads, and gives one
/// [`Sweep`] per scenario and row, scenarios outermost.
pub fn sweep(
    scenarios: &[Scenario],
    rows: &[Row],
    seeds: impl Fn(&Scenario) -> u64,
    threads: usize,
) -> Vec<Sweep> {
    sweep_rows(scenarios, |_| rows.to_vec(), seeds, threads)
}

/// Like [`sweep`], with rows of each scenario's own: every scenario × `rows(scenario)` × seeds
/// `1..=seeds(scenario)`, all on the same `threads` threads.
pub fn sweep_rows(
    scenarios: &[Scenario],
    rows: impl Fn(&Scenario) -> Vec<Row>,
    seeds: impl Fn(&Scenario) -> u64,
    threads: usize,
) -> Vec<Sweep> {
    let mut jobs = Vec::new();
    for scenario in scenarios {
        for row in rows(scenario) {
            for seed in 1..=seeds(scenario) {
                jobs.push(Job {
                    scenario: *scenario,
                    row,
                    seed,
                });
            }
        }
    }
    let mut measures = run_jobs(&jobs, threads).into_iter();
    let mut sweeps = Vec::new();
    for scenario in scenarios {
        for row in rows(scenario) {
            let runs = measures.by_ref().take(seeds(scenario) as usize).collect();
            sweeps.push(Sweep {
                scenario: *scenario,
                row,
                runs,
            });
        }
    }
    sweeps
}
