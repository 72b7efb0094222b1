//! The resilience simulation: every scenario under every strategy, in virtual time, printed as
//! Markdown tables.
//!
//! ```text
//! cargo bench --bench resilience                       # everything, seed 7
//! cargo bench --bench resilience -- --seed 3           # another seed
//! cargo bench --bench resilience -- --scenario outage  # the scenarios whose name contains "outage"
//! cargo bench --bench resilience -- --outage 61        # a 61 s outage instead of 60 s
//! cargo bench --bench resilience -- --sweep 20         # success rates over seeds 1 to 20
//! ```

use std::time::{Duration, Instant};

use fender_benches::sim::{Failure, LATENCY, Scenario, simulate, sweep_table, table};

fn main() {
    let mut seed = 7;
    let mut only = None;
    let mut outage = None;
    let mut sweep = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--seed" => seed = number(args.next(), "--seed"),
            "--outage" => outage = Some(Duration::from_secs(number(args.next(), "--outage"))),
            "--sweep" => sweep = Some(number(args.next(), "--sweep")),
            "--scenario" => only = Some(args.next().expect("--scenario takes a name")),
            // `cargo bench` passes `--bench`; other harness flags mean nothing here.
            _ => {}
        }
    }
    let wall = Instant::now();
    for mut scenario in Scenario::all() {
        if only
            .as_ref()
            .is_some_and(|only| !scenario.name.contains(only.as_str()))
        {
            continue;
        }
        if let (Some(length), Failure::Outage { outage, .. }) = (outage, &mut scenario.failure) {
            *outage = length;
        }
        if let Some(seeds) = sweep {
            let started = Instant::now();
            let rows: Vec<_> = scenario
                .rows
                .iter()
                .map(|&row| {
                    let runs = (1..=seeds)
                        .map(|seed| simulate(&scenario, row, seed))
                        .collect();
                    (row, runs)
                })
                .collect();
            println!("### {}: seeds 1 to {seeds}\n", scenario.name);
            println!(
                "Simulated in {:.2} s of wall time.\n",
                started.elapsed().as_secs_f64()
            );
            println!("{}", sweep_table(&rows, 0.999));
            continue;
        }
        let started = Instant::now();
        let rows: Vec<_> = scenario
            .rows
            .iter()
            .map(|&row| (row, simulate(&scenario, row, seed)))
            .collect();
        let offered = rows.first().map_or(0, |(_, m)| m.offered);
        let load = if scenario.period.is_zero() {
            "offering one request each, all at the same instant".to_owned()
        } else {
            format!(
                "each offering one request every {} s for {} s",
                scenario.period.as_secs(),
                scenario.duration.as_secs()
            )
        };
        println!("### {}\n", scenario.name);
        if let (Some(length), Failure::Outage { .. }) = (outage, scenario.failure) {
            println!("(Outage set to {} s by --outage.)\n", length.as_secs());
        }
        println!(
            "{} clients {load}: {offered} offered requests; upstream latency {} ms; seed {seed}; \
             simulated in {:.2} s of wall time.\n",
            scenario.clients,
            LATENCY.as_millis(),
            started.elapsed().as_secs_f64(),
        );
        println!("{}", table(&scenario, &rows));
    }
    println!(
        "All scenarios in {:.1} s of wall time.",
        wall.elapsed().as_secs_f64()
    );
}

fn number(arg: Option<String>, flag: &str) -> u64 {
    arg.and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("{flag} takes a whole number"))
}
