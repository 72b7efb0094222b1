//! The resilience simulation: every scenario under every strategy, in virtual time, printed as
//! Markdown tables. `cargo bench --bench resilience` (optionally `-- --seed N`).

use std::time::Instant;

use fender_benches::sim::{LATENCY, Scenario, simulate, table};

fn main() {
    let mut seed = 7;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        if arg == "--seed" {
            seed = args
                .next()
                .and_then(|s| s.parse().ok())
                .expect("--seed takes a number");
        }
    }
    let wall = Instant::now();
    for scenario in Scenario::all() {
        let started = Instant::now();
        let rows: Vec<_> = scenario
            .rows
            .iter()
            .map(|&row| (row, simulate(&scenario, row, seed)))
            .collect();
        let offered = rows.first().map_or(0, |(_, m)| m.offered);
        let load = if scenario.period.is_zero() {
            "one request each, all at the same instant".to_owned()
        } else {
            format!(
                "each offering one request every {} s for {} s",
                scenario.period.as_secs(),
                scenario.duration.as_secs()
            )
        };
        println!("### {}\n", scenario.name);
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
