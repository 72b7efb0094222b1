//! The resilience simulation: every scenario under every strategy, in virtual time, printed as
//! Markdown tables. `cargo bench --bench resilience` (optionally `-- --seed N`).

use std::time::Instant;

use fender_benches::sim::{Scenario, simulate, table};

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
            .strategies
            .iter()
            .map(|&strategy| (strategy, simulate(&scenario, strategy, seed)))
            .collect();
        let offered = rows.first().map_or(0, |(_, m)| m.offered);
        println!("### {}\n", scenario.name);
        println!(
            "{} clients, {}, {} offered requests, seed {seed}, {} stack{}. Simulated in {:.1} s.\n",
            scenario.clients,
            if scenario.period.is_zero() {
                "one request each at the same instant".to_owned()
            } else {
                format!(
                    "one request each every {} s for {} s",
                    scenario.period.as_secs(),
                    scenario.duration.as_secs()
                )
            },
            offered,
            if scenario.shared_stack {
                "one shared client"
            } else {
                "one client"
            },
            if scenario.shared_stack {
                ""
            } else {
                " per client"
            },
            started.elapsed().as_secs_f64(),
        );
        println!("{}", table(&scenario, &rows));
    }
    println!(
        "All scenarios in {:.1} s of wall time.",
        wall.elapsed().as_secs_f64()
    );
}
