//! Markdown tables of the sweeps.
//!
//! Success rates are rounded down and loads rounded up, so a figure just short of a goal
//! never prints as meeting it.

use std::fmt::Write;
use std::time::Duration;

use super::goals::Verdict;
use super::run::Measures;
use super::scenario::Kind;
use super::sweep::Sweep;

/// `99.84%`: a share, rounded down to two decimals.
pub fn pct(rate: f64) -> String {
    format!("{:.2}%", (rate * 10_000.0).floor() / 100.0)
}

/// `1.12x`: a load, rounded up to `decimals`.
pub fn load(value: f64, decimals: i32) -> String {
    let scale = 10f64.powi(decimals);
    // Less a hair, so a value that is exactly on a step after float arithmetic stays on it.
    let steps = (value * scale - 1e-9).ceil();
    let steps = if steps > 0.0 { steps } else { 0.0 };
    format!("{:.*}x", decimals as usize, steps / scale)
}

/// `40 ms`, `1,020 ms`: a latency in whole milliseconds, rounded up.
pub fn millis(d: Duration) -> String {
    format!("{} ms", count(d.as_micros().div_ceil(1_000) as usize))
}

/// `25.0x`: how many times smaller, rounded down to one decimal.
pub fn ratio(value: f64) -> String {
    format!("{:.1}x", (value * 10.0).floor() / 10.0)
}

/// `9 s`, or `not in the run`.
pub fn recovery(d: Option<Duration>) -> String {
    d.map_or_else(
        || "not in the run".to_owned(),
        |d| format!("{} s", d.as_secs()),
    )
}

/// `7,404`.
pub fn count(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `low–high`, or one figure when they are the same.
fn range(low: String, high: String) -> String {
    if low == high {
        low
    } else {
        format!("{low}–{high}")
    }
}

/// The goal table: one column per goal, one row for the fender default stack.
pub fn goal_table(verdicts: &[Verdict]) -> String {
    let mut out = String::from("| |");
    for v in verdicts {
        let _ = write!(out, " {} |", v.goal);
    }
    out.push_str("\n| --- |");
    for _ in verdicts {
        out.push_str(" --- |");
    }
    out.push_str("\n| fender default stack |");
    for v in verdicts {
        let verdict = if v.pass { "PASS" } else { "FAIL" };
        let _ = write!(out, " **{verdict}**: {} |", v.figures);
    }
    out.push('\n');
    out
}

/// The table of `kind`, from its sweeps (for S3 one per outage length and row, outage lengths
/// outermost; for the others one per row), each row's figures over its seeds.
pub fn table(kind: Kind, sweeps: &[&Sweep]) -> String {
    match kind {
        Kind::S1 | Kind::S2 | Kind::S7 => transient_table(sweeps),
        Kind::S3 => outage_table(sweeps),
        Kind::S4 => pushback_table(sweeps),
        Kind::S5 => herd_table(sweeps),
        Kind::S6 => tail_table(sweeps),
    }
}

fn transient_table(sweeps: &[&Sweep]) -> String {
    let mut out = String::from(
        "| strategy | mean success | mean load | worst seed | its success | its load | worst load |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in sweeps {
        let worst = s.worst_success();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            s.row.label(),
            pct(s.mean(Measures::success_rate)),
            load(s.mean(Measures::load), 2),
            worst.seed,
            pct(worst.success_rate()),
            load(worst.load(), 2),
            load(s.worst_load().load(), 2),
        );
    }
    out
}

fn outage_table(sweeps: &[&Sweep]) -> String {
    // Rows in first-seen order, outage lengths in first-seen order.
    let mut rows = Vec::new();
    let mut lengths = Vec::new();
    for s in sweeps {
        if !rows.contains(&s.row) {
            rows.push(s.row);
        }
        let length = s.scenario.outage().map(|(from, to)| to - from);
        if !lengths.contains(&length) {
            lengths.push(length);
        }
    }
    let mut out = String::from("| strategy |");
    for length in &lengths {
        let secs = length.map_or(0, |d| d.as_secs());
        let _ = write!(out, " {secs} s: outage load | {secs} s: recovery |");
    }
    out.push_str("\n| --- |");
    for _ in &lengths {
        out.push_str(" ---: | ---: |");
    }
    out.push('\n');
    for row in rows {
        let _ = write!(out, "| {} |", row.label());
        for length in &lengths {
            let sweep = sweeps
                .iter()
                .find(|s| s.row == row && s.scenario.outage().map(|(f, t)| t - f) == *length);
            match sweep {
                Some(s) => {
                    let (low, high) = s.outage_load_range().unwrap_or((0.0, 0.0));
                    let (fast, slow) = s.recovery_range().unwrap_or((None, None));
                    let _ = write!(
                        out,
                        " {} | {} |",
                        range(load(low, 3), load(high, 3)),
                        recovery_range(fast, slow)
                    );
                }
                None => out.push_str(" | |"),
            }
        }
        out.push('\n');
    }
    out
}

fn recovery_range(fast: Option<Duration>, slow: Option<Duration>) -> String {
    match (fast, slow) {
        (Some(a), Some(b)) if a != b => format!("{}–{} s", a.as_secs(), b.as_secs()),
        (Some(a), None) => format!("{} s – not in the run", a.as_secs()),
        _ => recovery(slow),
    }
}

fn pushback_table(sweeps: &[&Sweep]) -> String {
    let mut out = String::from(
        "| strategy | arrivals under pushback | of those, retries | success | load |\n\
         | --- | ---: | ---: | ---: | ---: |\n",
    );
    for s in sweeps {
        let (low, high) = s.range(|r| r.pushback.arrivals);
        let (retries_low, retries_high) = s.range(|r| r.pushback.retries);
        let (success_low, success_high) = s.range(|r| r.succeeded);
        let offered = s.runs[0].offered as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} |",
            s.row.label(),
            range(count(low), count(high)),
            range(count(retries_low), count(retries_high)),
            range(
                pct(success_low as f64 / offered),
                pct(success_high as f64 / offered)
            ),
            load(s.worst_load().load(), 2),
        );
    }
    out
}

fn herd_table(sweeps: &[&Sweep]) -> String {
    let mut out = String::from(
        "| strategy | success | peak arrivals / 100 ms after t = 0 | load |\n\
         | --- | ---: | ---: | ---: |\n",
    );
    for s in sweeps {
        let (success_low, success_high) = s.range(|r| r.succeeded);
        let (peak_low, peak_high) = s.range(|r| r.peak);
        let offered = s.runs[0].offered as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            s.row.label(),
            range(
                pct(success_low as f64 / offered),
                pct(success_high as f64 / offered)
            ),
            range(count(peak_low), count(peak_high)),
            load(s.worst_load().load(), 2),
        );
    }
    out
}

fn tail_table(sweeps: &[&Sweep]) -> String {
    let mut out = String::from(
        "| strategy | success | caller p50 | caller p99 | p99, worst seed | mean load | worst load |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in sweeps {
        let (success_low, success_high) = s.range(|r| r.succeeded);
        let (p50_low, p50_high) = s.range(|r| r.p50);
        let (p99_low, p99_high) = s.range(|r| r.p99);
        let slowest = s
            .runs
            .iter()
            .max_by_key(|r| (r.p99, std::cmp::Reverse(r.seed)))
            .expect("a run");
        let offered = s.runs[0].offered as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} (seed {}) | {} | {} |",
            s.row.label(),
            range(
                pct(success_low as f64 / offered),
                pct(success_high as f64 / offered)
            ),
            range(millis(p50_low), millis(p50_high)),
            range(millis(p99_low), millis(p99_high)),
            millis(slowest.p99),
            slowest.seed,
            load(s.mean(Measures::load), 3),
            load(s.worst_load().load(), 3),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_round_down_and_loads_round_up() {
        assert_eq!(pct(0.99799), "99.79%");
        assert_eq!(pct(2.0 / 3.0), "66.66%");
        assert_eq!(load(1.1201, 2), "1.13x");
        assert_eq!(load(1.12, 2), "1.12x");
        assert_eq!(load(0.0, 3), "0.000x");
    }

    #[test]
    fn latencies_round_up_and_ratios_down() {
        assert_eq!(millis(Duration::from_micros(40_001)), "41 ms");
        assert_eq!(millis(Duration::from_secs(1)), "1,000 ms");
        assert_eq!(ratio(24.99), "24.9x");
    }

    #[test]
    fn counts_have_thousands_separators() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(7404), "7,404");
        assert_eq!(count(1_234_567), "1,234,567");
    }
}
