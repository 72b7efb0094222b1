//! Markdown tables of the measures.

use std::fmt::Write;
use std::time::Duration;

use super::run::Measures;
use super::scenario::{Column, Row, Scenario};

/// One Markdown table: a row per strategy, the scenario's columns.
pub fn table(scenario: &Scenario, rows: &[(Row, Measures)]) -> String {
    let mut out = String::from("| strategy |");
    for column in &scenario.columns {
        let _ = write!(out, " {} |", column.heading());
    }
    out.push_str("\n| --- |");
    for _ in &scenario.columns {
        out.push_str(" ---: |");
    }
    out.push('\n');
    for (row, measures) in rows {
        let _ = write!(out, "| {} |", row.label());
        for &column in &scenario.columns {
            let _ = write!(out, " {} |", cell(column, measures));
        }
        out.push('\n');
    }
    out
}

/// One Markdown table of success rates over several seeds: a row per strategy, its lowest,
/// median and highest success rate, and how many seeds reached `goal`.
pub fn sweep_table(rows: &[(Row, Vec<Measures>)], goal: f64) -> String {
    let mut out = format!(
        "| strategy | lowest success | median | highest | seeds ≥ {}% |\n| --- | ---: | ---: | ---: | ---: |\n",
        goal * 100.0
    );
    for (row, runs) in rows {
        let mut rates: Vec<f64> = runs.iter().map(Measures::success_rate).collect();
        rates.sort_by(f64::total_cmp);
        let pct = |rate: f64| format!("{:.2}%", (rate * 10_000.0).floor() / 100.0);
        let reached = rates.iter().filter(|&&rate| rate >= goal).count();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {reached} of {} |",
            row.label(),
            pct(rates.first().copied().unwrap_or(0.0)),
            pct(rates.get(rates.len() / 2).copied().unwrap_or(0.0)),
            pct(rates.last().copied().unwrap_or(0.0)),
            rates.len(),
        );
    }
    out
}

fn cell(column: Column, m: &Measures) -> String {
    match column {
        // Rounded down, so a rate just under a goal never prints as meeting it.
        Column::Success => format!("{:.2}%", (m.success_rate() * 10_000.0).floor() / 100.0),
        Column::Load => format!("{:.2}x", m.load()),
        Column::OutageLoad => m
            .outage_load()
            .map_or_else(|| "–".to_owned(), |load| format!("{load:.3}x")),
        Column::Peak => m.peak.to_string(),
        Column::PeakRetries => m.peak_retries.to_string(),
        Column::EarlyRetries => m.early_retries.to_string(),
        Column::Recovery => m.recovery.map_or_else(
            || "not in the run".to_owned(),
            |d| format!("{} s", d.as_secs()),
        ),
        Column::P50 => duration(m.p50),
        Column::P99 => duration(m.p99),
    }
}

/// `10 ms`, `1.52 s`.
pub(crate) fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.2} s", d.as_secs_f64())
    }
}
