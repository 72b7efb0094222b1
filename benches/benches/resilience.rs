//! The resilience simulation: six scenarios under every client strategy, over many seeds, in
//! virtual time, printed as Markdown: the goal table of the fender default stack first, then
//! one table per scenario with every row's figures.
//!
//! S1 to S5 run the five main rows; S6 (a heavy tail) runs the default stack with and without
//! a hedge layer.
//!
//! ```text
//! cargo bench --bench resilience                          # everything
//! cargo bench --bench resilience -- --goals               # the goal table only (default stack)
//! cargo bench --bench resilience -- --only S1,S4          # some scenarios
//! cargo bench --bench resilience -- --rows default,tower  # some rows, in every scenario (none,
//!                                                         # naive, tower, retry, default, retry4,
//!                                                         # rate-breaker, hedge, hedge-fixed)
//! cargo bench --bench resilience -- --seeds 20            # seeds 1 to 20 in every scenario
//! cargo bench --bench resilience -- --per-caller          # a stack per caller, not one shared
//! cargo bench --bench resilience -- --threads 1           # OS threads (default: all cores)
//! ```

use std::time::Instant;

use fender_benches::sim::{
    Kind, Row, Scenario, Strategy, goal_strategies, goal_table, sweep_rows, table, verdict,
};

struct Options {
    kinds: Vec<Kind>,
    /// The rows of every scenario, when given; otherwise each scenario's own.
    strategies: Option<Vec<Strategy>>,
    seeds: Option<u64>,
    goals: bool,
    per_caller: bool,
    threads: usize,
}

fn options() -> Options {
    let mut options = Options {
        kinds: Kind::ALL.to_vec(),
        strategies: None,
        seeds: None,
        goals: false,
        per_caller: false,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--only" => {
                let list = args.next().expect("--only takes scenarios: S1,S3");
                options.kinds = list
                    .split(',')
                    .map(|id| Kind::from_id(id).unwrap_or_else(|| panic!("no scenario {id}")))
                    .collect();
            }
            "--rows" => {
                let list = args.next().expect("--rows takes rows: default,tower");
                let strategies = list
                    .split(',')
                    .map(|key| {
                        Strategy::from_key(key).unwrap_or_else(|| {
                            let keys: Vec<_> = Strategy::ALL.iter().map(|s| s.key()).collect();
                            panic!("no row {key}; rows: {}", keys.join(", "))
                        })
                    })
                    .collect();
                options.strategies = Some(strategies);
            }
            "--seeds" => options.seeds = Some(number(args.next(), "--seeds").max(1)),
            "--threads" => options.threads = number(args.next(), "--threads").max(1) as usize,
            "--goals" => options.goals = true,
            "--per-caller" => options.per_caller = true,
            // `cargo bench` passes `--bench`; other harness flags mean nothing here.
            _ => {}
        }
    }
    options.kinds.sort_unstable();
    options.kinds.dedup();
    options
}

impl Options {
    /// The strategies `kind` runs: the goal's rows under `--goals`, the given ones under
    /// `--rows`, else the scenario's own.
    fn strategies(&self, kind: Kind) -> Vec<Strategy> {
        if self.goals {
            goal_strategies(kind).to_vec()
        } else if let Some(strategies) = &self.strategies {
            strategies.clone()
        } else {
            kind.strategies().to_vec()
        }
    }

    fn row(&self, strategy: Strategy) -> Row {
        if self.per_caller {
            Row::per_caller(strategy)
        } else {
            Row::shared(strategy)
        }
    }
}

fn main() {
    let options = options();
    let wall = Instant::now();
    let rows = |s: &Scenario| -> Vec<Row> {
        let strategies = options.strategies(s.kind);
        strategies.into_iter().map(|s| options.row(s)).collect()
    };
    let scenarios: Vec<Scenario> = options
        .kinds
        .iter()
        .flat_map(|&k| Scenario::of(k))
        .collect();
    let seeds = |s: &Scenario| options.seeds.unwrap_or(s.kind.default_seeds());
    let sweeps = sweep_rows(&scenarios, rows, seeds, options.threads);
    let simulated = wall.elapsed();

    let of = |kind: Kind, rows: Option<&[Strategy]>| -> Vec<_> {
        sweeps
            .iter()
            .filter(|s| {
                s.scenario.kind == kind
                    && rows.is_none_or(|rows| {
                        rows.iter().any(|&strategy| s.row == options.row(strategy))
                    })
            })
            .collect()
    };
    let verdicts: Vec<_> = options
        .kinds
        .iter()
        .filter_map(|&kind| verdict(kind, &of(kind, Some(goal_strategies(kind)))))
        .collect();

    println!("## Resilience simulation\n");
    if !verdicts.is_empty() {
        println!("### Goals of the fender default stack\n");
        println!("{}", goal_table(&verdicts));
    }
    if !options.goals {
        for &kind in &options.kinds {
            let sweeps = of(kind, None);
            let Some(first) = sweeps.first() else {
                continue;
            };
            let seeds = first.runs.len();
            let plural = if seeds == 1 { "" } else { "s" };
            println!("### {kind}: {seeds} seed{plural}\n");
            for s in Scenario::of(kind) {
                println!("- {}", s.describe());
            }
            println!();
            println!("{}", table(kind, &sweeps));
        }
    }
    let runs: usize = sweeps.iter().map(|s| s.runs.len()).sum();
    println!(
        "{runs} runs on {} threads in {:.2} s of wall time ({:.2} s simulating).",
        options.threads,
        wall.elapsed().as_secs_f64(),
        simulated.as_secs_f64()
    );
}

fn number(arg: Option<String>, flag: &str) -> u64 {
    arg.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{flag} takes a whole number"))
}
