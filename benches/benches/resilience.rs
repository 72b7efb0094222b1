//! The resilience simulation: five scenarios under every client strategy, over many seeds, in
//! virtual time, printed as Markdown: the goal table of the fender default stack first, then
//! one table per scenario with every row's figures.
//!
//! ```text
//! cargo bench --bench resilience                          # everything
//! cargo bench --bench resilience -- --goals               # the goal table only (default stack)
//! cargo bench --bench resilience -- --only S1,S4          # some scenarios
//! cargo bench --bench resilience -- --rows default,tower  # some rows (none, naive, tower,
//!                                                         # retry, default, retry4, rate-breaker)
//! cargo bench --bench resilience -- --seeds 20            # seeds 1 to 20 in every scenario
//! cargo bench --bench resilience -- --per-caller          # a stack per caller, not one shared
//! cargo bench --bench resilience -- --threads 1           # OS threads (default: all cores)
//! ```

use std::time::Instant;

use fender_benches::sim::{Kind, Row, Scenario, Strategy, goal_table, sweep, table, verdict};

struct Options {
    kinds: Vec<Kind>,
    strategies: Vec<Strategy>,
    seeds: Option<u64>,
    goals: bool,
    per_caller: bool,
    threads: usize,
}

fn options() -> Options {
    let mut options = Options {
        kinds: Kind::ALL.to_vec(),
        strategies: Strategy::MAIN.to_vec(),
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
                options.strategies = list
                    .split(',')
                    .map(|key| {
                        Strategy::from_key(key).unwrap_or_else(|| {
                            let keys: Vec<_> = Strategy::ALL.iter().map(|s| s.key()).collect();
                            panic!("no row {key}; rows: {}", keys.join(", "))
                        })
                    })
                    .collect();
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
    if options.goals {
        options.strategies = vec![Strategy::FenderDefault];
    }
    options
}

fn main() {
    let options = options();
    let wall = Instant::now();
    let rows: Vec<Row> = options
        .strategies
        .iter()
        .map(|&s| {
            if options.per_caller {
                Row::per_caller(s)
            } else {
                Row::shared(s)
            }
        })
        .collect();
    let scenarios: Vec<Scenario> = options
        .kinds
        .iter()
        .flat_map(|&k| Scenario::of(k))
        .collect();
    let seeds = |s: &Scenario| options.seeds.unwrap_or(s.kind.default_seeds());
    let sweeps = sweep(&scenarios, &rows, seeds, options.threads);
    let simulated = wall.elapsed();

    let of = |kind: Kind, row: Option<Row>| -> Vec<_> {
        sweeps
            .iter()
            .filter(|s| s.scenario.kind == kind && row.is_none_or(|r| s.row == r))
            .collect()
    };
    let default = Row {
        strategy: Strategy::FenderDefault,
        shared_stack: !options.per_caller,
    };
    let verdicts: Vec<_> = options
        .kinds
        .iter()
        .filter_map(|&kind| verdict(kind, &of(kind, Some(default))))
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
