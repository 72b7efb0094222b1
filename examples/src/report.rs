//! The demo's outcome over time: success rate and upstream load per client, drawn in the
//! terminal and written as a self-contained SVG or HTML file.
//!
//! A phase table says how each client did on average; a chart says *when*. The demo fills a
//! [`Timeline`]: time cut into buckets of equal width, and for each client how many requests it
//! sent in each bucket, how many of those succeeded, and how many requests the upstream
//! received from it. Phases and breaker transitions are kept next to the buckets, so both
//! renderers can mark them.
//!
//! - [`render_terminal`] draws two panels in plain text (at most [`TerminalOptions::width`]
//!   columns, ANSI colour only when asked for): success % and upstream load, one glyph per
//!   client, the breaker's state below them and the phases along the time axis.
//! - [`write`](fn@write) draws the same two charts with plotters into an SVG file, or an HTML
//!   page that embeds it, chosen by the file's extension ([`ReportFile`]).
//!
//! ```
//! use std::time::Duration;
//! use fender_examples::report::{Phase, TerminalOptions, Timeline, render_terminal};
//!
//! let ms = Duration::from_millis;
//! let timeline = Timeline::new(ms(250))
//!     .phase(Phase::new("healthy", ms(0), ms(1000)))
//!     .series("bare", [(ms(0), true), (ms(500), false)], [ms(1), ms(501)]);
//! let chart = render_terminal(&timeline, &TerminalOptions::plain(80));
//! assert!(chart.contains("healthy"));
//! assert!(chart.lines().all(|line| line.chars().count() <= 80));
//! ```

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fender::circuit_breaker::State;
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

/// One client's requests in one time bucket.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Requests the client sent in the bucket.
    pub sent: u32,
    /// Of those, the ones that succeeded (whenever they completed).
    pub succeeded: u32,
    /// Requests from this client that reached the upstream in the bucket, retries included.
    pub arrivals: u32,
}

impl Bucket {
    /// The share of the bucket's requests that succeeded, in percent; `None` when it sent none.
    pub fn success_rate(&self) -> Option<f64> {
        (self.sent > 0).then(|| 100.0 * f64::from(self.succeeded) / f64::from(self.sent))
    }

    /// Upstream arrivals per request sent (1.0: one attempt each; 0: nothing got through);
    /// `None` when the client sent nothing in the bucket.
    pub fn load(&self) -> Option<f64> {
        (self.sent > 0).then(|| f64::from(self.arrivals) / f64::from(self.sent))
    }

    fn merge(self, other: Bucket) -> Bucket {
        Bucket {
            sent: self.sent + other.sent,
            succeeded: self.succeeded + other.succeeded,
            arrivals: self.arrivals + other.arrivals,
        }
    }
}

/// One client's buckets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Series {
    name: String,
    buckets: Vec<Bucket>,
}

impl Series {
    /// The client's name, as the legend shows it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The bucket at `index`; empty past the last event of this client.
    pub fn bucket(&self, index: usize) -> Bucket {
        self.buckets.get(index).copied().unwrap_or_default()
    }
}

/// A phase of the upstream's plan: a name and a stretch of time since the start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Phase {
    /// What the upstream does in it ("healthy", "outage", …).
    pub name: String,
    /// When it starts, since the start of the run.
    pub start: Duration,
    /// How long it lasts.
    pub len: Duration,
}

impl Phase {
    /// A phase named `name` from `start` for `len`.
    pub fn new(name: impl Into<String>, start: Duration, len: Duration) -> Phase {
        Phase {
            name: name.into(),
            start,
            len,
        }
    }

    fn end(&self) -> Duration {
        self.start + self.len
    }
}

/// A circuit breaker's state change and when it happened, since the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// When.
    pub at: Duration,
    /// The state before.
    pub from: State,
    /// The state after.
    pub to: State,
}

/// The index of the bucket of width `width` that holds the instant `at`: buckets are
/// half-open, so an instant on a boundary belongs to the later bucket.
///
/// # Panics
///
/// If `width` is zero.
pub fn bucket_index(at: Duration, width: Duration) -> usize {
    assert!(
        !width.is_zero(),
        "bucket_index: the bucket width must not be zero"
    );
    usize::try_from(at.as_nanos() / width.as_nanos()).unwrap_or(usize::MAX)
}

/// The data of a report: clients' buckets, phases and breaker transitions, and a title.
///
/// Built with consuming methods in any order; [`bucket_count`](Timeline::bucket_count) covers
/// every phase and every event, so a retry that reaches the upstream after the last phase still
/// shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Timeline {
    width: Duration,
    title: String,
    subtitle: String,
    phases: Vec<Phase>,
    transitions: Vec<Transition>,
    series: Vec<Series>,
}

impl Timeline {
    /// An empty timeline with buckets `width` wide.
    ///
    /// # Panics
    ///
    /// If `width` is zero.
    pub fn new(width: Duration) -> Timeline {
        assert!(
            !width.is_zero(),
            "Timeline::new: the bucket width must not be zero"
        );
        Timeline {
            width,
            title: String::new(),
            subtitle: String::new(),
            phases: Vec::new(),
            transitions: Vec::new(),
            series: Vec::new(),
        }
    }

    /// The title: what ran.
    pub fn title(mut self, title: impl Into<String>) -> Timeline {
        self.title = title.into();
        self
    }

    /// A second line under the title: the settings it ran with.
    pub fn subtitle(mut self, subtitle: impl Into<String>) -> Timeline {
        self.subtitle = subtitle.into();
        self
    }

    /// Adds a phase; phases are drawn in the order they are added.
    pub fn phase(mut self, phase: Phase) -> Timeline {
        self.phases.push(phase);
        self
    }

    /// Adds breaker transitions, kept in order of time.
    pub fn transitions(mut self, transitions: impl IntoIterator<Item = Transition>) -> Timeline {
        self.transitions.extend(transitions);
        self.transitions.sort_by_key(|t| t.at);
        self
    }

    /// Adds a client: when it sent each request and whether that request succeeded, and when
    /// each of its requests reached the upstream (all since the start of the run).
    pub fn series(
        mut self,
        name: impl Into<String>,
        sends: impl IntoIterator<Item = (Duration, bool)>,
        arrivals: impl IntoIterator<Item = Duration>,
    ) -> Timeline {
        fn at(buckets: &mut Vec<Bucket>, instant: Duration, width: Duration) -> &mut Bucket {
            let index = bucket_index(instant, width);
            if buckets.len() <= index {
                buckets.resize(index + 1, Bucket::default());
            }
            &mut buckets[index]
        }
        let mut buckets: Vec<Bucket> = Vec::new();
        for (sent, ok) in sends {
            let bucket = at(&mut buckets, sent, self.width);
            bucket.sent += 1;
            bucket.succeeded += u32::from(ok);
        }
        for arrived in arrivals {
            at(&mut buckets, arrived, self.width).arrivals += 1;
        }
        self.series.push(Series {
            name: name.into(),
            buckets,
        });
        self
    }

    /// The width of a bucket.
    pub fn bucket_width(&self) -> Duration {
        self.width
    }

    /// How many buckets it spans: enough for the last phase to end and the last event to fall
    /// in, 0 when there is neither.
    pub fn bucket_count(&self) -> usize {
        let phases = self
            .phases
            .iter()
            .map(|p| p.end().as_nanos().div_ceil(self.width.as_nanos()))
            .max()
            .unwrap_or(0);
        let phases = usize::try_from(phases).unwrap_or(usize::MAX);
        let events = self.series.iter().map(|s| s.buckets.len()).max();
        phases.max(events.unwrap_or(0))
    }

    /// The time the buckets span: [`bucket_count`](Timeline::bucket_count) times the width.
    pub fn span(&self) -> Duration {
        self.width
            .saturating_mul(u32::try_from(self.bucket_count()).unwrap_or(u32::MAX))
    }

    /// The clients, in the order they were added.
    pub fn clients(&self) -> &[Series] {
        &self.series
    }

    /// The phases.
    pub fn phases(&self) -> &[Phase] {
        &self.phases
    }

    /// The breaker transitions, in order of time.
    pub fn breaker_transitions(&self) -> &[Transition] {
        &self.transitions
    }

    /// The breaker's state at `at`: the state the last transition before it entered, or the
    /// state the first transition left (closed when there is none).
    fn breaker_at(&self, at: Duration) -> State {
        match self.transitions.iter().rev().find(|t| t.at < at) {
            Some(t) => t.to,
            None => self.transitions.first().map_or(State::Closed, |t| t.from),
        }
    }

    /// The largest load of any bucket of any client, at least 1.
    fn max_load(&self) -> f64 {
        self.series
            .iter()
            .flat_map(|s| s.buckets.iter().filter_map(Bucket::load))
            .fold(1.0, f64::max)
    }
}

/// A short, readable width of a bucket: `250 ms`, `1.25 s`.
fn human(d: Duration) -> String {
    if d.is_zero() {
        "0 s".to_owned()
    } else if d < Duration::from_secs(1) {
        format!("{} ms", d.as_millis())
    } else {
        let s = format!("{:.2}", d.as_secs_f64());
        format!("{} s", s.trim_end_matches('0').trim_end_matches('.'))
    }
}

// ---------------------------------------------------------------------------------------------
// The terminal chart.

/// How [`render_terminal`] draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TerminalOptions {
    /// The widest line it may write, in columns (at least 40).
    pub width: usize,
    /// Whether to colour the series and the breaker with ANSI escape codes.
    pub colour: bool,
}

impl TerminalOptions {
    /// No colour, `width` columns.
    pub fn plain(width: usize) -> TerminalOptions {
        TerminalOptions {
            width,
            colour: false,
        }
    }

    /// For standard output: 100 columns (fewer if `COLUMNS` says the terminal is narrower),
    /// colour only when standard output is a terminal and `NO_COLOR` is unset or empty.
    pub fn for_stdout() -> TerminalOptions {
        use std::io::IsTerminal;
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let columns = std::env::var("COLUMNS")
            .ok()
            .and_then(|c| c.trim().parse::<usize>().ok())
            .unwrap_or(100);
        TerminalOptions {
            width: columns.clamp(40, 100),
            colour: io::stdout().is_terminal() && !no_color,
        }
    }
}

/// ANSI colours of the series, in the order they were added, and of the breaker.
const SERIES_ANSI: [&str; 4] = ["33", "36", "35", "34"];
const OVERLAP_ANSI: &str = "1";
const MARKER_ANSI: &str = "2";
const OPEN_ANSI: &str = "31";
const LABEL_WIDTH: usize = 7;

/// One character of the chart, with its colour.
#[derive(Clone, Copy)]
struct Cell {
    glyph: char,
    colour: Option<&'static str>,
}

impl Cell {
    const BLANK: Cell = Cell {
        glyph: ' ',
        colour: None,
    };
}

/// How buckets map to columns: `group` buckets per cell, each cell `cols` columns wide.
struct Grid {
    group: usize,
    cols: usize,
    cells: usize,
}

impl Grid {
    fn new(buckets: usize, plot_width: usize) -> Grid {
        let buckets = buckets.max(1);
        let group = buckets.div_ceil(plot_width);
        let cells = buckets.div_ceil(group);
        Grid {
            group,
            cols: (plot_width / cells).max(1),
            cells,
        }
    }

    fn columns(&self) -> usize {
        self.cells * self.cols
    }

    /// The column an instant falls in, `None` past the right edge.
    fn column(&self, at: Duration, width: Duration) -> Option<usize> {
        let cell_nanos = width.as_nanos() * self.group as u128;
        let col = at.as_nanos() * self.cols as u128 / cell_nanos;
        usize::try_from(col).ok().filter(|c| *c < self.columns())
    }

    /// One series' buckets merged into cells.
    fn cell_buckets(&self, series: &Series) -> Vec<Bucket> {
        (0..self.cells)
            .map(|cell| {
                (cell * self.group..(cell + 1) * self.group)
                    .map(|i| series.bucket(i))
                    .fold(Bucket::default(), Bucket::merge)
            })
            .collect()
    }
}

/// The glyph of each series: its name's first letter when the first letters differ, else a
/// digit.
fn glyphs(series: &[Series]) -> Vec<char> {
    let firsts: Vec<char> = series
        .iter()
        .map(|s| {
            s.name
                .chars()
                .next()
                .map_or('?', |c| c.to_ascii_lowercase())
        })
        .collect();
    let distinct = firsts
        .iter()
        .enumerate()
        .all(|(i, c)| c.is_ascii_alphanumeric() && !firsts[..i].contains(c));
    if distinct {
        firsts
    } else {
        (0..series.len())
            .map(|i| char::from_digit((i % 10) as u32, 10).unwrap_or('?'))
            .collect()
    }
}

/// `text` in lines of at most `width` characters, broken between words (a word longer than a
/// line is cut).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let needed = line.chars().count() + usize::from(!line.is_empty()) + word.chars().count();
        if !line.is_empty() && needed > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
        while line.chars().count() > width {
            let rest: String = line.chars().skip(width).collect();
            line = line.chars().take(width).collect();
            lines.push(std::mem::replace(&mut line, rest));
        }
    }
    if !line.is_empty() {
        lines.push(line);
    }
    lines
}

/// One letter per breaker state, for the breaker row.
fn state_glyph(state: State) -> char {
    match state {
        State::Closed => '_',
        State::Open => 'O',
        State::HalfOpen => 'h',
        State::Recovering => 'r',
        State::ForcedOpen => 'F',
        _ => 'd',
    }
}

/// Rows of coloured characters, joined into text at the end.
struct Canvas {
    rows: Vec<Vec<Cell>>,
    width: usize,
    colour: bool,
}

impl Canvas {
    /// Uncoloured text, cut to the width.
    fn text(&mut self, text: &str) {
        self.rows
            .push(plain(text).into_iter().take(self.width).collect());
    }

    fn row(&mut self, mut row: Vec<Cell>) {
        row.truncate(self.width);
        self.rows.push(row);
    }

    fn finish(self) -> String {
        let mut out = String::new();
        for row in self.rows {
            let mut line = String::new();
            let mut current: Option<&str> = None;
            for cell in row {
                let colour = if self.colour { cell.colour } else { None };
                if colour != current {
                    if current.is_some() {
                        line.push_str("\x1b[0m");
                    }
                    if let Some(code) = colour {
                        let _ = write!(line, "\x1b[{code}m");
                    }
                    current = colour;
                }
                line.push(cell.glyph);
            }
            if current.is_some() {
                line.push_str("\x1b[0m");
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

fn plain(text: &str) -> Vec<Cell> {
    coloured(text, None)
}

fn coloured(text: &str, colour: Option<&'static str>) -> Vec<Cell> {
    text.chars().map(|glyph| Cell { glyph, colour }).collect()
}

/// A panel's vertical axis: `steps` rows above the zero row, up to `max`, and which rows to
/// label.
struct Axis {
    heading: String,
    max: f64,
    steps: usize,
    label: fn(f64) -> Option<String>,
    value: fn(&Bucket) -> Option<f64>,
}

/// What every part of the terminal chart shares: the timeline, its buckets merged into the
/// columns' cells, and the glyph of each client.
struct Plot<'a> {
    timeline: &'a Timeline,
    grid: Grid,
    glyphs: Vec<char>,
    cells: Vec<Vec<Bucket>>,
    /// The columns in which the breaker changed state.
    markers: Vec<bool>,
}

impl Plot<'_> {
    fn series_colour(index: usize) -> Option<&'static str> {
        Some(SERIES_ANSI[index % SERIES_ANSI.len()])
    }

    fn legend(&self) -> Vec<Cell> {
        let mut legend = Vec::new();
        for (i, series) in self.timeline.series.iter().enumerate() {
            legend.extend(coloured(
                &self.glyphs[i].to_string(),
                Self::series_colour(i),
            ));
            legend.extend(plain(&format!(" {}   ", series.name)));
        }
        if self.timeline.series.len() > 1 {
            legend.extend(coloured("*", Some(OVERLAP_ANSI)));
            legend.extend(plain(" together   "));
        }
        legend.extend(coloured(":", Some(MARKER_ANSI)));
        legend.extend(plain(" breaker transition"));
        legend
    }

    /// A panel: its heading, one row per step with a glyph per client and column, the
    /// breaker's transitions as `:` in empty cells, and the time axis.
    fn panel(&self, canvas: &mut Canvas, axis: &Axis) {
        let columns = self.grid.columns();
        let mut rows = vec![vec![Cell::BLANK; columns]; axis.steps + 1];
        for (s, series_cells) in self.cells.iter().enumerate() {
            let glyph = Cell {
                glyph: self.glyphs[s],
                colour: Self::series_colour(s),
            };
            for (cell, bucket) in series_cells.iter().enumerate() {
                let Some(v) = (axis.value)(bucket) else {
                    continue;
                };
                let level = ((v / axis.max).clamp(0.0, 1.0) * axis.steps as f64).round() as usize;
                let row = &mut rows[axis.steps - level];
                for slot in &mut row[cell * self.grid.cols..(cell + 1) * self.grid.cols] {
                    *slot = if slot.glyph == ' ' || slot.glyph == glyph.glyph {
                        glyph
                    } else {
                        Cell {
                            glyph: '*',
                            colour: Some(OVERLAP_ANSI),
                        }
                    };
                }
            }
        }
        canvas.text("");
        canvas.text(&axis.heading);
        for (r, row) in rows.into_iter().enumerate() {
            let v = axis.max * (axis.steps - r) as f64 / axis.steps as f64;
            let mut line = plain(&match (axis.label)(v) {
                Some(text) => format!("{text:>5} | "),
                None => "      | ".to_owned(),
            });
            line.extend(row.into_iter().zip(&self.markers).map(|(cell, &marked)| {
                if cell.glyph == ' ' && marked {
                    Cell {
                        glyph: ':',
                        colour: Some(MARKER_ANSI),
                    }
                } else {
                    cell
                }
            }));
            canvas.row(line);
        }
        canvas.text(&format!("      +{}", "-".repeat(columns + 1)));
    }

    /// The breaker's state at the end of each column.
    fn breaker(&self) -> Vec<Cell> {
        let cell_nanos = self.timeline.width.as_nanos() * self.grid.group as u128;
        let mut row = plain("breaker ");
        for c in 0..self.grid.columns() {
            let nanos = cell_nanos * (c as u128 + 1) / self.grid.cols as u128;
            let end = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
            let state = self.timeline.breaker_at(end);
            let colour = matches!(state, State::Open | State::ForcedOpen).then_some(OPEN_ANSI);
            row.push(Cell {
                glyph: state_glyph(state),
                colour,
            });
        }
        row
    }

    /// The phases along the time axis: a `|` where each starts and its name after it as far as
    /// it fits; below, the time it starts, where that fits.
    fn phases(&self) -> [String; 2] {
        let columns = self.grid.columns();
        let mut names = vec![' '; columns];
        let mut times = vec![' '; columns];
        for phase in &self.timeline.phases {
            let Some(start) = self.grid.column(phase.start, self.timeline.width) else {
                continue;
            };
            let end = self
                .grid
                .column(phase.end(), self.timeline.width)
                .unwrap_or(columns);
            names[start] = '|';
            times[start] = '|';
            for (c, ch) in (start + 1..end).zip(phase.name.chars()) {
                names[c] = ch;
            }
            let time = human(phase.start).replace(' ', "");
            if start + 1 + time.len() <= end {
                for (c, ch) in (start + 1..).zip(time.chars()) {
                    times[c] = ch;
                }
            }
        }
        [
            format!("phase   {}", names.iter().collect::<String>()),
            format!("time    {}", times.iter().collect::<String>()),
        ]
    }
}

/// The load panel's axis: 0.25x a row up to 3x, coarser above, and a labelled top row.
fn load_axis(max_load: f64) -> (f64, usize) {
    let step = if max_load <= 3.0 {
        0.25
    } else {
        (max_load / 12.0 * 2.0).ceil() / 2.0
    };
    let mut steps = ((max_load / step).ceil() as usize).max(4);
    if step < 0.5 {
        steps += steps % 2;
    }
    (step * steps as f64, steps)
}

/// Draws the timeline as text: a title, a legend, a success-rate panel (0 to 100%) and an
/// upstream-load panel (received / sent), the breaker's state over time, the phases along the
/// time axis, and `:` in the panels where the breaker changed state.
///
/// Each client is drawn with its own glyph (its name's first letter when those differ); `*`
/// marks a cell where clients coincide. A time slice in which a client sent nothing is left
/// blank for it. No line is wider than `options.width` (at least 40).
pub fn render_terminal(timeline: &Timeline, options: &TerminalOptions) -> String {
    let width = options.width.max(40);
    let grid = Grid::new(timeline.bucket_count(), width - LABEL_WIDTH - 1);
    let mut markers = vec![false; grid.columns()];
    for t in &timeline.transitions {
        if let Some(c) = grid.column(t.at, timeline.width) {
            markers[c] = true;
        }
    }
    let plot = Plot {
        timeline,
        glyphs: glyphs(&timeline.series),
        cells: timeline
            .series
            .iter()
            .map(|s| grid.cell_buckets(s))
            .collect(),
        markers,
        grid,
    };
    let mut canvas = Canvas {
        rows: Vec::new(),
        width,
        colour: options.colour,
    };

    if !timeline.title.is_empty() {
        canvas.text(&timeline.title);
    }
    for line in wrap(&timeline.subtitle, width) {
        canvas.text(&line);
    }
    canvas.row(plot.legend());

    let slice = human(timeline.width * plot.grid.group as u32);
    plot.panel(
        &mut canvas,
        &Axis {
            heading: format!("success rate: % of the requests sent in each {slice} that succeeded"),
            max: 100.0,
            steps: 8,
            label: |v| {
                (v.round() as u32)
                    .is_multiple_of(25)
                    .then(|| format!("{v:.0}%"))
            },
            value: Bucket::success_rate,
        },
    );
    let (max, steps) = load_axis(timeline.max_load());
    plot.panel(
        &mut canvas,
        &Axis {
            heading: format!(
                "upstream load: requests the upstream received / requests sent, per {slice}"
            ),
            max,
            steps,
            // Every 0.5x (the axis has a row every 0.25x or every 0.5x or more).
            label: |v| {
                let halves = v * 2.0;
                ((halves - halves.round()).abs() < 1e-9).then(|| format!("{v:.1}x"))
            },
            value: Bucket::load,
        },
    );
    canvas.row(plot.breaker());
    for line in plot.phases() {
        canvas.text(&line);
    }
    canvas.text("breaker: _ closed  O open  h half-open  r recovering");
    canvas.finish()
}

// ---------------------------------------------------------------------------------------------
// The file.

/// What [`write`](fn@write) writes, picked by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportFormat {
    /// A standalone SVG image (`.svg`).
    Svg,
    /// An HTML page with the SVG inline (`.html`, `.htm`).
    Html,
}

/// A file to write the report to, and its format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportFile {
    path: PathBuf,
    format: ReportFormat,
}

impl ReportFile {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its format.
    pub fn format(&self) -> ReportFormat {
        self.format
    }
}

/// A report file for clap's `value_parser`: a path ending in `.svg` or `.html` (`.htm`), any
/// case; anything else is refused with a message that says what is expected.
pub fn report_file(s: &str) -> Result<ReportFile, String> {
    let path = PathBuf::from(s);
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("svg") => ReportFormat::Svg,
        Some("html" | "htm") => ReportFormat::Html,
        Some(other) => {
            return Err(format!(
                "`{s}` ends in .{other}: the report is written as .svg or .html"
            ));
        }
        None => {
            return Err(format!(
                "`{s}` has no extension: name the report FILE.svg or FILE.html"
            ));
        }
    };
    if path.file_stem().is_none_or(|stem| stem.is_empty()) {
        return Err(format!("`{s}` is not a file name"));
    }
    Ok(ReportFile { path, format })
}

/// Writes the timeline's charts to `file`, as SVG or as HTML embedding the SVG.
pub fn write(timeline: &Timeline, file: &ReportFile) -> io::Result<()> {
    let svg = render_svg(timeline)?;
    let contents = match file.format {
        ReportFormat::Svg => svg,
        ReportFormat::Html => html_page(timeline, &svg),
    };
    std::fs::write(&file.path, contents)
}

/// The two charts as an SVG document.
pub fn render_svg(timeline: &Timeline) -> io::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (SVG_WIDTH, SVG_HEIGHT)).into_drawing_area();
        draw(timeline, &root).map_err(|err| io::Error::other(err.to_string()))?;
        root.present()
            .map_err(|err| io::Error::other(err.to_string()))?;
    }
    Ok(svg)
}

fn html_page(timeline: &Timeline, svg: &str) -> String {
    let escape = |s: &str| {
        s.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let title = if timeline.title.is_empty() {
        "fender demo".to_owned()
    } else {
        escape(&timeline.title)
    };
    let svg = svg.trim_start_matches(|c| c != '<');
    let svg = svg.strip_prefix("<?xml").map_or(svg, |rest| {
        rest.split_once("?>").map_or(rest, |(_, body)| body)
    });
    let style = "body{margin:1.5em;font-family:sans-serif;background:#fff}\
                 svg{max-width:100%;height:auto}";
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{title}</title>\n<style>{style}</style>\n</head>\n\
         <body>\n{svg}\n<p>{READING}</p>\n</body>\n</html>\n"
    )
}

/// How to read the charts, under them in the HTML page.
const READING: &str = "Success rate: the share of the requests sent in each time slice that \
     succeeded, whenever they completed. Upstream load: the requests the upstream received in \
     each slice, retries included, per request sent in it (1.0x: one attempt each; 0x: the \
     client held back). Shaded bands are the upstream's phases; dashed lines are the fender \
     client's circuit breaker changing state.";

const SVG_WIDTH: u32 = 1200;
const SVG_HEIGHT: u32 = 820;
const HEADER: u32 = 96;

const SERIES_RGB: [RGBColor; 4] = [
    RGBColor(230, 120, 20),
    RGBColor(31, 100, 180),
    RGBColor(150, 60, 170),
    RGBColor(40, 150, 60),
];
const BAND: RGBColor = RGBColor(236, 239, 244);

/// The colour and legend name of a marker for a transition into `state`.
fn marker_style(state: State) -> (RGBColor, &'static str) {
    match state {
        State::Open | State::ForcedOpen => (RGBColor(200, 30, 30), "breaker opens"),
        State::HalfOpen => (RGBColor(150, 150, 150), "breaker half-opens (probes)"),
        State::Recovering => (RGBColor(90, 170, 200), "breaker closes, ramping up"),
        _ => (RGBColor(40, 150, 60), "breaker closed"),
    }
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

fn draw(timeline: &Timeline, root: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
    root.fill(&WHITE)?;
    let (header, body) = root.split_vertically(HEADER);
    let title = if timeline.title.is_empty() {
        "fender demo"
    } else {
        &timeline.title
    };
    header.draw(&Text::new(
        title.to_owned(),
        (24, 14),
        ("sans-serif", 24).into_font().color(&BLACK),
    ))?;
    header.draw(&Text::new(
        timeline.subtitle.clone(),
        (24, 44),
        ("sans-serif", 14).into_font().color(&RGBColor(80, 80, 80)),
    ))?;

    // The legend, one row: the clients, then the kinds of breaker transition that happened.
    let mut x = 24;
    let y = 78;
    let font = ("sans-serif", 14).into_font().color(&BLACK);
    for (i, series) in timeline.series.iter().enumerate() {
        let colour = SERIES_RGB[i % SERIES_RGB.len()];
        header.draw(&PathElement::new(
            vec![(x, y), (x + 28, y)],
            colour.stroke_width(3),
        ))?;
        header.draw(&Circle::new((x + 14, y), 3, colour.filled()))?;
        header.draw(&Text::new(
            series.name.clone(),
            (x + 36, y - 8),
            font.clone(),
        ))?;
        x += 52 + 9 * series.name.len() as i32;
    }
    let mut kinds: Vec<(RGBColor, &str)> = Vec::new();
    for t in &timeline.transitions {
        let style = marker_style(t.to);
        if !kinds.iter().any(|k| k.1 == style.1) {
            kinds.push(style);
        }
    }
    for (colour, name) in kinds {
        header.draw(&DashedPathElement::new(
            vec![(x + 10, y - 9), (x + 10, y + 9)],
            4,
            3,
            colour.stroke_width(2),
        ))?;
        header.draw(&Text::new(name, (x + 20, y - 8), font.clone()))?;
        x += 40 + 7 * name.len() as i32;
    }

    let (top, bottom) = body.split_vertically((SVG_HEIGHT - HEADER) / 2);
    let slice = human(timeline.width);
    let success = Chart {
        caption: format!("Success rate (% of the requests sent in each {slice})"),
        y_desc: "success",
        y_max: 110.0,
        y_label: |y| format!("{y:.0}%"),
        value: Bucket::success_rate,
        x_axis: false,
    };
    success.draw(timeline, &top)?;
    let load = Chart {
        caption: format!("Upstream load (requests received / requests sent, per {slice})"),
        y_desc: "received / sent",
        y_max: (timeline.max_load() * 1.15 * 4.0).ceil() / 4.0,
        y_label: |y| format!("{y:.1}x"),
        value: Bucket::load,
        x_axis: true,
    };
    load.draw(timeline, &bottom)?;
    Ok(())
}

/// One of the two stacked charts: what it plots and how its axes read.
struct Chart {
    caption: String,
    y_desc: &'static str,
    y_max: f64,
    y_label: fn(f64) -> String,
    value: fn(&Bucket) -> Option<f64>,
    /// Whether to describe the time axis (only the bottom chart does).
    x_axis: bool,
}

impl Chart {
    fn draw(&self, timeline: &Timeline, area: &DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult {
        let Chart {
            caption,
            y_desc,
            y_max,
            y_label,
            value,
            x_axis,
        } = self;
        let (y_max, x_axis) = (*y_max, *x_axis);
        let span = timeline
            .span()
            .as_secs_f64()
            .max(timeline.width.as_secs_f64());
        let mut chart = ChartBuilder::on(area)
            .caption(caption, ("sans-serif", 17))
            .margin_left(16)
            .margin_right(28)
            .margin_bottom(if x_axis { 8 } else { 16 })
            .x_label_area_size(if x_axis { 40 } else { 24 })
            .y_label_area_size(64)
            .build_cartesian_2d(0.0..span, 0.0..y_max)?;
        let y_label = |y: &f64| y_label(*y);
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(245, 245, 245))
            .bold_line_style(RGBColor(225, 225, 225))
            .y_desc(*y_desc)
            .x_label_formatter(&|x| format!("{x:.1}"))
            .y_label_formatter(&y_label);
        if x_axis {
            mesh.x_desc("time since start (s)");
        }
        mesh.draw()?;

        // Phase bands, every other one shaded, each named at its top.
        let band_font = ("sans-serif", 13).into_font().color(&RGBColor(70, 70, 70));
        for (i, phase) in timeline.phases.iter().enumerate() {
            let (start, end) = (phase.start.as_secs_f64(), phase.end().as_secs_f64());
            if i % 2 == 1 {
                chart.draw_series(std::iter::once(Rectangle::new(
                    [(start, 0.0), (end, y_max)],
                    BAND.mix(0.7).filled(),
                )))?;
            }
            chart.draw_series(std::iter::once(PathElement::new(
                vec![(start, 0.0), (start, y_max)],
                RGBColor(190, 190, 190).stroke_width(1),
            )))?;
            chart.draw_series(std::iter::once(Text::new(
                phase.name.clone(),
                ((start + end) / 2.0, y_max),
                band_font.clone().pos(Pos::new(HPos::Center, VPos::Top)),
            )))?;
        }

        // Breaker transitions: a dashed vertical line each.
        for t in &timeline.transitions {
            let at = t.at.as_secs_f64();
            let (colour, _) = marker_style(t.to);
            chart.draw_series(std::iter::once(DashedPathElement::new(
                vec![(at, 0.0), (at, y_max * 0.93)],
                4,
                3,
                colour.mix(0.8).stroke_width(1),
            )))?;
        }

        // The clients: a line through the middle of each bucket, broken where a bucket is empty,
        // and a dot per bucket.
        let width = timeline.width.as_secs_f64();
        for (i, series) in timeline.series.iter().enumerate() {
            let colour = SERIES_RGB[i % SERIES_RGB.len()];
            let points: Vec<Option<(f64, f64)>> = (0..timeline.bucket_count())
                .map(|b| value(&series.bucket(b)).map(|v| ((b as f64 + 0.5) * width, v)))
                .collect();
            for run in points.split(Option::is_none) {
                let run: Vec<(f64, f64)> = run.iter().flatten().copied().collect();
                chart.draw_series(LineSeries::new(run, colour.stroke_width(2)))?;
            }
            chart.draw_series(
                points
                    .iter()
                    .flatten()
                    .map(|&p| Circle::new(p, 3, colour.filled())),
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Two phases of 1 s in buckets of 250 ms; "bare" always succeeds at one arrival per
    /// request, "fender" fails the second phase without reaching the upstream.
    fn sample() -> Timeline {
        let sends: Vec<Duration> = (0..40).map(|i| ms(i * 50)).collect();
        Timeline::new(ms(250))
            .title("demo (seed 7)")
            .subtitle("settings")
            .phase(Phase::new("healthy", ms(0), ms(1000)))
            .phase(Phase::new("outage", ms(1000), ms(1000)))
            .transitions([Transition {
                at: ms(1100),
                from: State::Closed,
                to: State::Open,
            }])
            .series(
                "bare",
                sends.iter().map(|&t| (t, t < ms(1000))),
                sends.iter().map(|&t| t + ms(1)),
            )
            .series(
                "fender",
                sends.iter().map(|&t| (t, t < ms(1000))),
                sends.iter().filter(|&&t| t < ms(1100)).map(|&t| t + ms(1)),
            )
    }

    #[test]
    fn an_instant_on_a_boundary_belongs_to_the_later_bucket() {
        assert_eq!(bucket_index(ms(0), ms(250)), 0);
        assert_eq!(bucket_index(ms(249), ms(250)), 0);
        assert_eq!(bucket_index(ms(250), ms(250)), 1);
        assert_eq!(bucket_index(ms(1000), ms(250)), 4);
    }

    #[test]
    fn a_timeline_without_outcomes_spans_its_phases_with_empty_buckets() {
        let timeline = Timeline::new(ms(250))
            .phase(Phase::new("healthy", ms(0), ms(1100)))
            .series("bare", [], []);
        assert_eq!(
            timeline.bucket_count(),
            5,
            "1.1 s needs 5 buckets of 250 ms"
        );
        assert_eq!(timeline.span(), ms(1250));
        let series = &timeline.clients()[0];
        assert!((0..5).all(|b| series.bucket(b) == Bucket::default()));
        assert_eq!(series.bucket(2).success_rate(), None);
        assert_eq!(series.bucket(2).load(), None);
    }

    #[test]
    fn an_empty_timeline_has_no_buckets() {
        let timeline = Timeline::new(ms(250));
        assert_eq!(timeline.bucket_count(), 0);
        assert_eq!(timeline.span(), Duration::ZERO);
    }

    #[test]
    fn sends_and_arrivals_are_counted_in_their_buckets() {
        let timeline = Timeline::new(ms(250)).series(
            "fender",
            [(ms(0), true), (ms(100), false), (ms(600), true)],
            [ms(10), ms(120), ms(300), ms(610)],
        );
        let s = &timeline.clients()[0];
        assert_eq!(
            s.bucket(0),
            Bucket {
                sent: 2,
                succeeded: 1,
                arrivals: 2
            }
        );
        assert_eq!(s.bucket(0).success_rate(), Some(50.0));
        assert_eq!(s.bucket(0).load(), Some(1.0));
        // A retry that arrives in a bucket with no sends: counted, but no rate to draw.
        assert_eq!(s.bucket(1).arrivals, 1);
        assert_eq!(s.bucket(1).load(), None);
        assert_eq!(s.bucket(2).success_rate(), Some(100.0));
    }

    #[test]
    fn arrivals_after_the_last_phase_extend_the_timeline() {
        let timeline = Timeline::new(ms(250))
            .phase(Phase::new("healthy", ms(0), ms(500)))
            .series("bare", [(ms(0), true)], [ms(0)])
            .series("fender", [(ms(400), true)], [ms(1300)]);
        assert_eq!(timeline.bucket_count(), 6);
        assert_eq!(timeline.clients()[0].bucket(5), Bucket::default());
        assert_eq!(timeline.clients()[1].bucket(5).arrivals, 1);
    }

    #[test]
    fn the_breaker_state_follows_the_transitions() {
        let timeline = Timeline::new(ms(100)).transitions([
            Transition {
                at: ms(500),
                from: State::HalfOpen,
                to: State::Closed,
            },
            Transition {
                at: ms(200),
                from: State::Closed,
                to: State::Open,
            },
        ]);
        assert_eq!(timeline.breaker_transitions()[0].at, ms(200), "sorted");
        assert_eq!(timeline.breaker_at(ms(100)), State::Closed);
        assert_eq!(timeline.breaker_at(ms(300)), State::Open);
        assert_eq!(timeline.breaker_at(ms(600)), State::Closed);
    }

    #[test]
    fn the_terminal_chart_has_both_panels_the_phases_and_the_breaker() {
        let chart = render_terminal(&sample(), &TerminalOptions::plain(100));
        let lines: Vec<&str> = chart.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= 100), "{chart}");
        assert!(!chart.contains('\x1b'), "no colour when not asked for");
        assert_eq!(lines[0], "demo (seed 7)");
        assert!(
            lines[2].contains("b bare") && lines[2].contains("f fender"),
            "{chart}"
        );

        let success = lines
            .iter()
            .position(|l| l.starts_with("success rate"))
            .unwrap();
        let load = lines
            .iter()
            .position(|l| l.starts_with("upstream load"))
            .unwrap();
        assert!(success < load);
        assert!(lines[success].contains("250 ms"), "{}", lines[success]);
        // The top row of the success panel: both at 100% in the first phase, nobody in the second.
        let top = lines[success + 1];
        assert!(top.starts_with(" 100% |"), "{top}");
        let axis = lines[success + 10];
        assert!(axis.starts_with("      +--"), "{axis}");
        let half = (axis.len() - 8) / 2;
        assert!(top[8..8 + half].chars().all(|c| c == '*'), "{top}");
        assert!(!top[8 + half..].contains(['*', 'b', 'f']), "{top}");
        let bottom = lines[success + 9];
        assert!(bottom.starts_with("   0% |"), "{bottom}");
        assert!(bottom[8 + half..].chars().all(|c| c == '*'), "{bottom}");

        // The load panel: fender drops to 0x after the breaker opens while bare stays at 1x.
        let panel: Vec<&str> = lines[load + 1..]
            .iter()
            .take_while(|l| !l.starts_with("      +"))
            .copied()
            .collect();
        let one_x = panel.iter().find(|l| l.starts_with(" 1.0x |")).unwrap();
        assert!(one_x[8 + half..].contains('b'), "{one_x}");
        assert!(panel.last().unwrap()[8 + half..].contains('f'), "{chart}");
        // The transition is marked in both panels.
        assert!(top.contains(':'), "{top}");

        let breaker = lines.iter().find(|l| l.starts_with("breaker ")).unwrap();
        assert!(breaker[8..].starts_with('_'), "{breaker}");
        assert!(breaker.ends_with('O'), "{breaker}");
        let phase = lines.iter().find(|l| l.starts_with("phase ")).unwrap();
        assert!(phase.contains("|healthy"), "{phase}");
        assert!(phase.contains("|outage"), "{phase}");
        let time = lines.iter().find(|l| l.starts_with("time ")).unwrap();
        assert!(time.contains("|0s") && time.contains("|1s"), "{time}");
    }

    #[test]
    fn the_terminal_chart_colours_only_when_asked() {
        let options = TerminalOptions {
            width: 100,
            colour: true,
        };
        let chart = render_terminal(&sample(), &options);
        assert!(chart.contains("\x1b[33m"), "{chart}");
        let plain = chart
            .replace("\x1b[0m", "")
            .split("\x1b[")
            .enumerate()
            .map(|(i, part)| {
                if i == 0 {
                    part.to_owned()
                } else {
                    part.split_once('m')
                        .map_or(part, |(_, rest)| rest)
                        .to_owned()
                }
            })
            .collect::<String>();
        assert_eq!(
            plain,
            render_terminal(&sample(), &TerminalOptions::plain(100))
        );
    }

    #[test]
    fn the_terminal_chart_fits_narrow_terminals_and_long_runs() {
        let sends: Vec<(Duration, bool)> = (0..2000).map(|i| (ms(i * 10), i % 3 > 0)).collect();
        let timeline = Timeline::new(ms(50))
            .phase(Phase::new("a phase with a long name", ms(0), ms(20_000)))
            .series("bare", sends.clone(), sends.iter().map(|s| s.0));
        for width in [40, 60, 100] {
            let chart = render_terminal(&timeline, &TerminalOptions::plain(width));
            assert!(
                chart.lines().all(|l| l.chars().count() <= width),
                "{width}:\n{chart}"
            );
        }
    }

    #[test]
    fn the_load_axis_ends_on_a_labelled_half() {
        assert_eq!(load_axis(1.0), (1.0, 4));
        assert_eq!(load_axis(1.6), (2.0, 8), "0.25x a row, up to the next 0.5x");
        assert_eq!(load_axis(3.0), (3.0, 12));
        assert_eq!(load_axis(5.0), (5.0, 10), "0.5x a row above 3x");
    }

    #[test]
    fn long_subtitles_wrap_between_words() {
        assert_eq!(wrap("aa bb cc", 5), ["aa bb", "cc"]);
        assert_eq!(wrap("abcdefg h", 3), ["abc", "def", "g h"]);
        assert!(wrap("  ", 10).is_empty());
        let timeline = Timeline::new(ms(250)).subtitle("word ".repeat(40));
        let chart = render_terminal(&timeline, &TerminalOptions::plain(60));
        let wrapped: Vec<&str> = chart
            .lines()
            .take_while(|l| l.starts_with("word"))
            .collect();
        assert_eq!(wrapped.len(), 4, "{chart}");
        assert!(wrapped.iter().all(|l| l.len() <= 60));
    }

    #[test]
    fn an_empty_timeline_still_renders() {
        let chart = render_terminal(&Timeline::new(ms(250)), &TerminalOptions::plain(100));
        assert!(chart.contains("success rate") && chart.contains("upstream load"));
    }

    #[test]
    fn report_files_must_be_svg_or_html() {
        assert_eq!(report_file("out.svg").unwrap().format(), ReportFormat::Svg);
        assert_eq!(
            report_file("a/b.HTML").unwrap().format(),
            ReportFormat::Html
        );
        assert_eq!(report_file("x.htm").unwrap().path(), Path::new("x.htm"));
        let png = report_file("out.png").unwrap_err();
        assert!(png.contains(".svg or .html"), "{png}");
        let bare = report_file("out").unwrap_err();
        assert!(bare.contains("FILE.svg"), "{bare}");
        assert!(report_file(".svg").is_err());
    }

    /// A unique directory under the system's temporary directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos();
            let dir = std::env::temp_dir().join(format!(
                "fender-report-{name}-{}-{nanos}",
                std::process::id()
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn texts(doc: &roxmltree::Document<'_>) -> Vec<String> {
        doc.descendants()
            .filter(|n| n.has_tag_name("text"))
            .filter_map(|n| n.text())
            .map(|t| t.trim().to_owned())
            .collect()
    }

    #[test]
    fn the_svg_file_parses_and_names_the_clients_phases_and_transitions() {
        let dir = TempDir::new("svg");
        let file = report_file(dir.0.join("report.svg").to_str().unwrap()).unwrap();
        write(&sample(), &file).unwrap();
        let svg = std::fs::read_to_string(file.path()).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("a well-formed SVG");
        assert!(doc.root_element().has_tag_name("svg"));
        let texts = texts(&doc);
        for expected in [
            "bare",
            "fender",
            "healthy",
            "outage",
            "breaker opens",
            "demo (seed 7)",
        ] {
            assert!(
                texts.iter().any(|t| t == expected),
                "{expected} in {texts:?}"
            );
        }
        assert!(texts.iter().any(|t| t.starts_with("Success rate")));
        assert!(texts.iter().any(|t| t.starts_with("Upstream load")));
    }

    #[test]
    fn the_html_file_embeds_the_svg_and_escapes_the_title() {
        let dir = TempDir::new("html");
        let file = report_file(dir.0.join("report.html").to_str().unwrap()).unwrap();
        write(&sample().title("a <b> & c"), &file).unwrap();
        let html = std::fs::read_to_string(file.path()).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(
            html.contains("<title>a &lt;b&gt; &amp; c</title>"),
            "{html}"
        );
        assert!(!html.contains("<?xml"));
        let start = html.find("<svg").unwrap();
        let end = html.rfind("</svg>").unwrap() + "</svg>".len();
        let doc = roxmltree::Document::parse(&html[start..end]).expect("a well-formed SVG");
        assert!(texts(&doc).iter().any(|t| t == "fender"));
    }

    #[test]
    fn an_empty_timeline_still_draws_an_svg() {
        let svg = render_svg(&Timeline::new(ms(250))).unwrap();
        roxmltree::Document::parse(&svg).expect("a well-formed SVG");
    }

    #[test]
    fn a_report_that_cannot_be_written_is_an_error() {
        let dir = TempDir::new("missing");
        let file = report_file(dir.0.join("no/such/dir/report.svg").to_str().unwrap()).unwrap();
        assert!(write(&sample(), &file).is_err());
    }
}
