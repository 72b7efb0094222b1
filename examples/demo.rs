//! The whole contract in one command: a misbehaving upstream, a bare client and the fender
//! client stack, side by side.
//!
//! ```sh
//! cargo run --example demo                    # about 40 s
//! cargo run --example demo -- --phase-secs 1  # a few seconds
//! cargo run --example demo -- --help
//! cargo run --example demo -- --phase-secs 1 --report demo.svg   # or demo.html
//! ```
//!
//! The upstream is an axum app behind `ErrorEnvelopeLayer` on 127.0.0.1. Its handler asks a
//! `fender_testkit` plan what to do with each request, and the plan moves through five phases:
//!
//! 1. healthy;
//! 2. rate limited: each client may send 3/4 of its rate per second; past that it gets 429
//!    with `Retry-After` until the second is over, and a request sent while that wait runs is
//!    refused too and extends the block, as many public APIs treat clients that ignore
//!    `Retry-After`;
//! 3. flaky: 30% of requests get 503, 10% a connection reset;
//! 4. a full outage: every request gets 503;
//! 5. recovery.
//!
//! Two clients send the same seeded workload at the same time over real TCP: a bare hyper-util
//! client, and `ClientLayer::new()` (envelope decoding, retry, per-host `Retry-After` holds,
//! adaptive throttling, circuit breaker, per-attempt timeout) with the contract's times scaled
//! down by one factor. The tables at the end compare them, and the lines under them show what
//! the rate limiter saw of each client and what the recovery cost against the breaker's bound.
//!
//! Below the tables, a chart in the terminal shows the same run over time: the success rate and
//! the upstream load (requests received per request sent) of both clients, the breaker's state
//! and the phases (`--no-chart` leaves it out; it is in colour unless `NO_COLOR` is set or the
//! output is not a terminal). `--report FILE.svg` or `--report FILE.html` also writes those
//! charts to a self-contained file to share.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use clap::Parser;
use fender::ClientLayer;
use fender::circuit_breaker::{CircuitBreakerLayer, State as CircuitState, StateChange};
use fender::envelope::ErrorEnvelopeLayer;
use fender::error::Origin;
use fender::retry::RetryLayer;
use fender::{ApiError, retry_after};
use fender_examples::report::{self, ReportFile, TerminalOptions, Timeline, Transition};
use fender_testkit::{Plan, Reply, ResetConnection, Upstream, UpstreamService, serve_service};
use http::{HeaderValue, Method};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use indicatif::{ProgressBar, ProgressStyle};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use tokio::time::Instant;
use tower::{ServiceBuilder, ServiceExt};

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(
    name = "demo",
    about = "fender against a misbehaving upstream: a bare hyper-util client and the fender client stack, side by side"
)]
struct Args {
    /// Length of a phase in seconds, 0.001 to 600 (the flaky phase, the outage and the recovery
    /// last 1.5x, 2x and 1.5x as long).
    #[arg(long, value_name = "SECS", default_value_t = 5.0, value_parser = phase_secs,
          allow_negative_numbers = true)]
    phase_secs: f64,
    /// Requests per second each client sends, 1 to 1000.
    #[arg(long, default_value_t = 40, value_parser = clap::value_parser!(u32).range(1..=1000),
          allow_negative_numbers = true)]
    rate: u32,
    /// Seed of the workload and of the upstream's faults.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Print plain lines instead of a progress bar.
    #[arg(long)]
    quiet: bool,
    /// Also write the charts to FILE: an SVG image (`.svg`) or an HTML page (`.html`).
    #[arg(long, value_name = "FILE", value_parser = fender_examples::report::report_file)]
    report: Option<ReportFile>,
    /// Leave out the chart that follows the tables in the terminal.
    #[arg(long)]
    no_chart: bool,
}

/// The length of a phase: positive, finite, at most 10 minutes.
fn phase_secs(s: &str) -> Result<f64, String> {
    fender_examples::cli::seconds_at_most(s, Duration::from_secs(600)).map(|d| d.as_secs_f64())
}

/// One phase of the upstream's plan.
struct Phase {
    name: &'static str,
    start: Duration,
    len: Duration,
}

fn phases(unit: Duration) -> Vec<Phase> {
    let mut start = Duration::ZERO;
    [
        ("healthy", 1.0),
        ("rate limited", 1.0),
        ("flaky", 1.5),
        ("outage", 2.0),
        ("recovery", 1.5),
    ]
    .into_iter()
    .map(|(name, factor)| {
        let len = unit.mul_f64(factor);
        let phase = Phase { name, start, len };
        start += len;
        phase
    })
    .collect()
}

fn phase_at(phases: &[Phase], elapsed: Duration) -> usize {
    phases.iter().rposition(|p| elapsed >= p.start).unwrap_or(0)
}

/// The time-scaled settings of the fender client. The contract's times (1 s backoff base,
/// 30 s maximum delay, 30 s open circuits, a 10 s ramp) are too slow for a demo, so all of
/// them are multiplied by one factor, `unit / 75 s` (a 5 s phase gives 1/15).
struct Settings {
    attempt_timeout: Duration,
    base_delay: Duration,
    max_delay: Duration,
    open_duration: Duration,
    ramp: Duration,
}

impl Settings {
    fn scaled(unit: Duration) -> Settings {
        let scale = |contract: Duration| contract.mul_f64(unit.as_secs_f64() / 75.0);
        Settings {
            attempt_timeout: Duration::from_secs(1),
            base_delay: scale(Duration::from_secs(1)),
            max_delay: scale(Duration::from_secs(30)),
            open_duration: scale(Duration::from_secs(30)),
            ramp: scale(Duration::from_secs(10)),
        }
    }
}

/// The fender client stack: `ClientLayer::new()` with the demo's time-scaled settings and a
/// retry counter per phase; the trip rule is the default.
fn fender_stack(
    settings: &Settings,
    seed: u64,
    retries: &Arc<Vec<AtomicU64>>,
    phase_starts: &Arc<Vec<Duration>>,
    start: Instant,
    on_change: impl Fn(&StateChange) + Send + Sync + 'static,
) -> ServiceBuilder<tower::layer::util::Stack<ClientLayer, tower::layer::util::Identity>> {
    let retries = retries.clone();
    let starts = phase_starts.clone();
    ServiceBuilder::new().layer(
        ClientLayer::new()
            .retry(
                RetryLayer::new()
                    .base_delay(settings.base_delay)
                    .max_delay(settings.max_delay)
                    .rng_seed(seed)
                    .on_retry(move |_attempt, _delay, _reason| {
                        let elapsed = start.elapsed();
                        let phase = starts.iter().rposition(|s| elapsed >= *s).unwrap_or(0);
                        retries[phase].fetch_add(1, Ordering::Relaxed);
                    }),
            )
            .breaker(
                CircuitBreakerLayer::new()
                    .open_duration(settings.open_duration)
                    .ramp(settings.ramp)
                    .seed(seed)
                    .on_state_change(on_change),
            )
            .attempt_timeout(settings.attempt_timeout),
    )
}

/// The upstream's handler: the plan decides; errors become `ApiError`s that the envelope layer
/// renders, resets reset the TCP connection.
async fn handler(State(backend): State<UpstreamService>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let reset = parts.extensions.get::<ResetConnection>().cloned();
    let Ok(body) = body.collect().await else {
        return ApiError::invalid_request("the request body could not be read").into_response();
    };
    let forwarded = http::Request::from_parts(parts, Full::new(body.to_bytes()));
    match backend.oneshot(forwarded).await {
        Ok(reply) if reply.status().is_success() => axum::Json(json!({"ok": true})).into_response(),
        Ok(reply) => {
            let mut err = ApiError::from_status(reply.status());
            if let Some(delay) = retry_after::from_headers(reply.headers(), SystemTime::now()) {
                err = err.with_retry_after(delay);
            }
            err.into_response()
        }
        Err(_) => {
            if let Some(reset) = reset {
                reset.reset();
            }
            ApiError::internal().into_response()
        }
    }
}

/// The upstream's rate limiter: each client (`x-demo-client`) may send `quota` requests per
/// one-second window. Past the quota the client is told `429` with `Retry-After` until the
/// window ends, and a request it sends while that wait runs is refused too and extends its
/// block by a second, as many public APIs penalise clients that ignore `Retry-After`.
struct Limiter {
    quota: u32,
    clients: Mutex<BTreeMap<Vec<u8>, Window>>,
}

/// What the limiter saw of one client.
#[derive(Clone, Copy, Default)]
struct Standing {
    /// Requests it refused with `429`.
    refused: u64,
    /// Of those, requests sent while a `Retry-After` the client had been given still ran.
    while_told_to_wait: u64,
}

/// One client's standing with the limiter.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    admitted: u32,
    blocked_until: Option<Instant>,
    standing: Standing,
}

impl Limiter {
    const WINDOW: Duration = Duration::from_secs(1);

    fn new(quota: u32) -> Limiter {
        Limiter {
            quota,
            clients: Mutex::new(BTreeMap::new()),
        }
    }

    /// The reply to a request that arrived at `at`.
    fn reply(&self, request: &fender_testkit::Received, ok: Reply) -> Reply {
        let client = request
            .headers
            .get("x-demo-client")
            .map(|v| v.as_bytes().to_vec())
            .unwrap_or_default();
        let at = request.at;
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        let window = clients.entry(client).or_insert(Window {
            start: at,
            admitted: 0,
            blocked_until: None,
            standing: Standing::default(),
        });
        if let Some(until) = window.blocked_until {
            if at < until {
                // Sent while told to wait: refused, and the block grows.
                let until = until.max(at + Self::WINDOW);
                window.blocked_until = Some(until);
                window.standing.refused += 1;
                window.standing.while_told_to_wait += 1;
                return Self::too_many(until - at);
            }
            window.blocked_until = None;
        }
        if at >= window.start + Self::WINDOW {
            let windows = (at - window.start).as_secs();
            window.start += Self::WINDOW * u32::try_from(windows).unwrap_or(u32::MAX);
            window.admitted = 0;
        }
        if window.admitted < self.quota {
            window.admitted += 1;
            return ok;
        }
        let until = window.start + Self::WINDOW;
        window.blocked_until = Some(until);
        window.standing.refused += 1;
        Self::too_many(until - at)
    }

    /// What the limiter saw of the client named `client`.
    fn standing(&self, client: &str) -> Standing {
        let clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        clients
            .get(client.as_bytes())
            .map(|w| w.standing)
            .unwrap_or_default()
    }

    /// `429` with the wait in whole seconds, rounded up.
    fn too_many(wait: Duration) -> Reply {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        Reply::retry_after_secs(429, secs.max(1))
    }
}

/// The flaky phase's draw for one attempt, in [0, 1): a function of the seed, the workload's
/// request number and the attempt (`x-attempt-count`, 1 when absent), so both clients meet the
/// same fault on the same request's first attempt and the comparison is paired.
fn fault_draw(seed: u64, request: &fender_testkit::Received) -> f64 {
    let number = |name: &str| {
        request
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
    };
    let index = number("x-demo-request").unwrap_or(u64::MAX);
    let attempt = number(fender::headers::X_ATTEMPT_COUNT.as_str()).unwrap_or(1);
    let mixed = seed
        ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ attempt.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    SmallRng::seed_from_u64(mixed).random()
}

fn upstream_plan(phases: &[Phase], seed: u64, limiter: Arc<Limiter>) -> Plan {
    let ok = || Reply::ok().delay(Duration::from_millis(2));
    let healthy = || Plan::always(ok());
    Plan::phases()
        .then(phases[0].len, healthy())
        .then(
            phases[1].len,
            Plan::from_fn(move |request| limiter.reply(request, ok())),
        )
        .then(
            phases[2].len,
            Plan::from_fn(move |request| match fault_draw(seed, request) {
                draw if draw < 0.30 => Reply::status(503),
                draw if draw < 0.40 => Reply::reset(),
                _ => ok(),
            }),
        )
        .then(phases[3].len, Plan::always(Reply::status(503)))
        .starting_now()
        .finally(healthy())
}

/// What one request came to, as the application saw it.
struct Outcome {
    phase: usize,
    /// When it was sent, since the start of the run.
    sent: Duration,
    ok: bool,
    latency: Duration,
    fast_fail: bool,
    error: Option<ApiError>,
}

#[derive(Default)]
struct Outcomes(Mutex<Vec<Outcome>>);

impl Outcomes {
    fn push(&self, outcome: Outcome) {
        self.0.lock().unwrap().push(outcome);
    }
}

/// The seeded workload: which request the i-th one is.
#[derive(Clone, Copy)]
enum Kind {
    Get(u32),
    PostWithKey(u32),
    Post(u32),
}

fn request(kind: Kind, base: &str, client: &'static str, i: usize) -> http::Request<Full<Bytes>> {
    let builder = http::Request::builder()
        .header("x-demo-client", client)
        .header("x-demo-request", i);
    match kind {
        Kind::Get(item) => builder
            .method(Method::GET)
            .uri(format!("{base}/items/{item}")),
        Kind::PostWithKey(_) => builder
            .method(Method::POST)
            .uri(format!("{base}/orders"))
            .header("idempotency-key", format!("order-{i}")),
        Kind::Post(_) => builder.method(Method::POST).uri(format!("{base}/orders")),
    }
    .body(Full::new(match kind {
        Kind::Get(_) => Bytes::new(),
        Kind::PostWithKey(qty) | Kind::Post(qty) => Bytes::from(format!("{{\"qty\":{qty}}}")),
    }))
    .expect("a valid request")
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("demo failed: {err}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let unit = Duration::from_secs_f64(args.phase_secs);
    let phases = phases(unit);
    let total = phases.last().map(|p| p.start + p.len).unwrap_or_default();
    let settings = Settings::scaled(unit);

    println!(
        "fender demo: one upstream, two clients, the same seeded workload (seed {})",
        args.seed
    );
    println!(
        "  phases: {}",
        phases
            .iter()
            .map(|p| format!("{} {:.1}s", p.name, p.len.as_secs_f64()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  workload: {} requests/s per client; 80% GET, 10% POST with Idempotency-Key, 10% POST without",
        args.rate
    );
    println!(
        "  fender client: ClientLayer::new(), the contract's times multiplied by {:.4} (contract values in brackets):",
        unit.as_secs_f64() / 75.0
    );
    println!(
        "    retry 3 attempts, backoff base {:.1?} [1s], max {:.1?} [30s], ±20% jitter; Retry-After held per host",
        settings.base_delay, settings.max_delay
    );
    println!(
        "    breaker per host: the contract's 5 consecutive failures (not on runs the failure rate makes likely), open {:.2}s [30s], 3 probes, ramp {:.2}s [10s]",
        settings.open_duration.as_secs_f64(),
        settings.ramp.as_secs_f64()
    );
    println!("    adaptive throttling per host (K = 2, at most 80% shed)");
    println!(
        "    per-attempt timeout {:?} (the bare client gets the same timeout per request)",
        settings.attempt_timeout
    );
    println!();

    // The upstream: an axum app behind the envelope layer, its handler following the plan.
    let limiter = Arc::new(Limiter::new((args.rate * 3).div_ceil(4)));
    let backend = Upstream::new(upstream_plan(&phases, args.seed, limiter.clone()));
    let app = Router::new()
        .fallback(handler)
        .with_state(backend.service())
        .layer(ErrorEnvelopeLayer::new());
    let server = serve_service(app.into_service::<hyper::body::Incoming>()).await;
    let base = format!("http://{}", server.addr());
    let start = Instant::now();

    // Progress and breaker transitions.
    let bar = if args.quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
                .expect("a valid template"),
        );
        bar
    };
    let transitions = Arc::new(Mutex::new(Vec::new()));
    let timed_transitions: Arc<Mutex<Vec<Transition>>> = Arc::default();
    let on_change = {
        let bar = bar.clone();
        let transitions = transitions.clone();
        let timed_transitions = timed_transitions.clone();
        move |change: &StateChange| {
            let at = start.elapsed();
            let line = format!(
                "[{:>5.1}s] circuit {} -> {}",
                at.as_secs_f64(),
                change.from,
                change.to
            );
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line.clone());
            }
            transitions.lock().unwrap().push(line);
            timed_transitions.lock().unwrap().push(Transition {
                at,
                from: change.from,
                to: change.to,
            });
        }
    };

    // The two clients.
    let bare = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let retries: Arc<Vec<AtomicU64>> =
        Arc::new((0..phases.len()).map(|_| AtomicU64::new(0)).collect());
    let phase_starts: Arc<Vec<Duration>> = Arc::new(phases.iter().map(|p| p.start).collect());
    let fender_client = fender_stack(
        &settings,
        args.seed,
        &retries,
        &phase_starts,
        start,
        on_change,
    )
    .service(Client::builder(TokioExecutor::new()).build_http());

    // The workload, sent by both clients at the same instants.
    let bare_outcomes = Arc::new(Outcomes::default());
    let fender_outcomes = Arc::new(Outcomes::default());
    let mut rng = SmallRng::seed_from_u64(args.seed);
    let count = (total.as_secs_f64() * f64::from(args.rate)).round() as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(args.rate));
    let mut tasks = tokio::task::JoinSet::new();
    let mut current_phase = usize::MAX;
    for i in 0..count {
        let due = start + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due).await;
        let phase = phase_at(&phases, due - start);
        if phase != current_phase {
            current_phase = phase;
            let line = format!(
                "[{:>5.1}s] upstream phase: {}",
                (due - start).as_secs_f64(),
                phases[phase].name
            );
            if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
            bar.set_message(phases[phase].name);
        }
        bar.set_position((due - start).as_millis() as u64);
        let roll: f64 = rng.random();
        let n: u32 = rng.random_range(1..1000);
        let kind = if roll < 0.80 {
            Kind::Get(n)
        } else if roll < 0.90 {
            Kind::PostWithKey(n % 9 + 1)
        } else {
            Kind::Post(n % 9 + 1)
        };

        let client = bare.clone();
        let req = request(kind, &base, "bare", i);
        let outcomes = bare_outcomes.clone();
        let timeout = settings.attempt_timeout;
        tasks.spawn(async move {
            let began = Instant::now();
            let result = tokio::time::timeout(timeout, async {
                let res = client.request(req).await?;
                let status = res.status();
                res.into_body().collect().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>(status)
            })
            .await;
            let ok = matches!(result, Ok(Ok(status)) if status.is_success());
            outcomes.push(Outcome {
                phase,
                sent: due - start,
                ok,
                latency: began.elapsed(),
                fast_fail: false,
                error: None,
            });
        });

        let client = fender_client.clone();
        let req = request(kind, &base, "fender", i);
        let outcomes = fender_outcomes.clone();
        tasks.spawn(async move {
            let began = Instant::now();
            let result = match client.oneshot(req).await {
                Ok(res) => res
                    .into_body()
                    .collect()
                    .await
                    .map(|_| ())
                    .map_err(ApiError::from_error),
                Err(err) => Err(err),
            };
            let latency = began.elapsed();
            outcomes.push(match result {
                Ok(()) => Outcome {
                    phase,
                    sent: due - start,
                    ok: true,
                    latency,
                    fast_fail: false,
                    error: None,
                },
                Err(err) => Outcome {
                    phase,
                    sent: due - start,
                    ok: false,
                    latency,
                    fast_fail: err.origin() == Origin::Local,
                    error: Some(err),
                },
            });
        });
    }
    bar.set_message("draining");
    let drain = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(joined) = tasks.join_next().await {
            joined?;
        }
        Ok::<_, tokio::task::JoinError>(())
    })
    .await;
    bar.finish_and_clear();
    match drain {
        Err(_) => return Err("requests were still running 30 s after the workload ended".into()),
        Ok(Err(err)) => return Err(format!("a request task failed: {err}").into()),
        Ok(Ok(())) => {}
    }

    let received = backend.received();
    report(
        &phases,
        &bare_outcomes.0.lock().unwrap(),
        &fender_outcomes.0.lock().unwrap(),
        &received,
        start,
        &retries,
    );
    let transition_count = transitions.lock().unwrap().len();
    println!("\nbreaker transitions: {transition_count}");
    let (bare_standing, fender_standing) = (limiter.standing("bare"), limiter.standing("fender"));
    println!(
        "rate limited: refused with 429: bare {}, fender {}; of those sent while the server's Retry-After still ran: bare {}, fender {}",
        bare_standing.refused,
        fender_standing.refused,
        bare_standing.while_told_to_wait,
        fender_standing.while_told_to_wait
    );
    recovery_bound(
        &phases[phases.len() - 1],
        &fender_outcomes.0.lock().unwrap(),
        phases.len() - 1,
        &timed_transitions.lock().unwrap(),
        settings.ramp,
        args.rate,
    );
    draw(
        &args,
        &settings,
        &phases,
        [
            ("bare", &bare_outcomes.0.lock().unwrap()[..]),
            ("fender", &fender_outcomes.0.lock().unwrap()[..]),
        ],
        &received,
        start,
        &timed_transitions.lock().unwrap(),
    )?;
    if bare_outcomes.0.lock().unwrap().is_empty() || received.is_empty() {
        return Err("no request completed".into());
    }
    server.shutdown().await;
    Ok(())
}

/// Prints what the recovery phase cost the fender client against what its breaker allows:
/// the rest of the open period that was running when the upstream healed, plus the ramp.
fn recovery_bound(
    phase: &Phase,
    fender: &[Outcome],
    index: usize,
    changes: &[Transition],
    ramp: Duration,
    rate: u32,
) {
    let lost = fender.iter().filter(|o| o.phase == index && !o.ok).count();
    let before = changes.iter().rfind(|c| c.at < phase.start).map(|c| c.to);
    let open_into_phase = match before {
        Some(CircuitState::Open | CircuitState::HalfOpen | CircuitState::ForcedOpen) => changes
            .iter()
            .find(|c| {
                c.at >= phase.start
                    && matches!(c.to, CircuitState::Recovering | CircuitState::Closed)
            })
            .map_or(phase.len, |c| c.at - phase.start),
        _ => Duration::ZERO,
    };
    let bound = open_into_phase + ramp;
    let bound_requests = (bound.as_secs_f64() * f64::from(rate)).ceil() as usize;
    println!(
        "recovery: fender lost {lost} requests ({:.2} s of traffic); bound: the circuit stayed open {:.2} s into the phase, plus the {:.2} s ramp = {:.2} s ({bound_requests} requests): {}",
        lost as f64 / f64::from(rate),
        open_into_phase.as_secs_f64(),
        ramp.as_secs_f64(),
        bound.as_secs_f64(),
        if lost <= bound_requests {
            "within"
        } else {
            "OVER"
        }
    );
}

#[derive(Default)]
struct Row {
    offered: usize,
    ok: usize,
    fast_fails: usize,
    latencies: Vec<Duration>,
}

impl Row {
    fn add(&mut self, o: &Outcome) {
        self.offered += 1;
        self.ok += usize::from(o.ok);
        self.fast_fails += usize::from(o.fast_fail);
        self.latencies.push(o.latency);
    }

    fn percentile(&mut self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let rank =
            ((p * self.latencies.len() as f64).ceil() as usize).clamp(1, self.latencies.len());
        self.latencies[rank - 1]
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn report(
    phases: &[Phase],
    bare: &[Outcome],
    fender: &[Outcome],
    received: &[fender_testkit::Received],
    start: Instant,
    retries: &[AtomicU64],
) {
    // Requests the upstream received, by client and by the phase they arrived in.
    let mut upstream: BTreeMap<(&str, usize), usize> = BTreeMap::new();
    for r in received {
        let client = match r.headers.get("x-demo-client").map(HeaderValue::as_bytes) {
            Some(b"bare") => "bare",
            Some(b"fender") => "fender",
            _ => continue,
        };
        let phase = phase_at(phases, r.at.saturating_duration_since(start));
        *upstream.entry((client, phase)).or_default() += 1;
        *upstream.entry((client, usize::MAX)).or_default() += 1;
    }

    println!(
        "\n| phase | client | success | upstream received | load (received / offered) | p50 | p99 | fast-fails | retries |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let names: Vec<&str> = phases.iter().map(|p| p.name).chain(["total"]).collect();
    for (index, name) in names.iter().enumerate() {
        let key = if *name == "total" { usize::MAX } else { index };
        for (client, outcomes) in [("bare", bare), ("fender", fender)] {
            let mut row = Row::default();
            for o in outcomes
                .iter()
                .filter(|o| key == usize::MAX || o.phase == key)
            {
                row.add(o);
            }
            let got = upstream.get(&(client, key)).copied().unwrap_or(0);
            let retried = if client == "bare" {
                "-".to_owned()
            } else if key == usize::MAX {
                retries
                    .iter()
                    .map(|r| r.load(Ordering::Relaxed))
                    .sum::<u64>()
                    .to_string()
            } else {
                retries[key].load(Ordering::Relaxed).to_string()
            };
            let success = if row.offered == 0 {
                0.0
            } else {
                100.0 * row.ok as f64 / row.offered as f64
            };
            let load = if row.offered == 0 {
                0.0
            } else {
                got as f64 / row.offered as f64
            };
            println!(
                "| {name} | {client} | {success:.1}% | {got} | {load:.2}x | {} | {} | {} | {retried} |",
                ms(row.percentile(0.50)),
                ms(row.percentile(0.99)),
                if client == "bare" {
                    "-".to_owned()
                } else {
                    row.fast_fails.to_string()
                },
            );
        }
    }

    // Why the fender client failed requests without sending them, phase by phase.
    let mut local: BTreeMap<(usize, String), usize> = BTreeMap::new();
    for o in fender {
        if let Some(err) = o.error.as_ref().filter(|e| e.origin() == Origin::Local) {
            *local
                .entry((o.phase, err.message().to_owned()))
                .or_default() += 1;
        }
    }
    if !local.is_empty() {
        println!("\nfast-fails of the fender client, by phase and reason:");
        for ((phase, message), count) in &local {
            println!("  [{}] {count} x \"{message}\"", phases[*phase].name);
        }
    }

    println!("\nsample errors as the application sees them (fender client):");
    let mut seen = Vec::new();
    for o in fender {
        let Some(err) = &o.error else { continue };
        let key = (
            err.code().as_str().to_owned(),
            err.origin(),
            err.message().to_owned(),
        );
        if seen.contains(&key) {
            continue;
        }
        seen.push(key);
        println!(
            "  [{}] {} {:?} retryable={} request_id={} message=\"{}\"",
            phases[o.phase].name,
            err.code(),
            err.origin(),
            err.is_retryable(),
            err.request_id().unwrap_or("-"),
            err.message()
        );
        if seen.len() == 8 {
            break;
        }
    }
}

/// The run over time: the terminal chart unless `--no-chart`, and the `--report` file.
fn draw(
    args: &Args,
    settings: &Settings,
    phases: &[Phase],
    clients: [(&str, &[Outcome]); 2],
    received: &[fender_testkit::Received],
    start: Instant,
    transitions: &[Transition],
) -> Result<(), String> {
    if args.no_chart && args.report.is_none() {
        return Ok(());
    }
    // Four buckets a phase unit, so the charts have the same shape whatever `--phase-secs`.
    let unit = Duration::from_secs_f64(args.phase_secs);
    let mut timeline = Timeline::new(unit / 4)
        .title(format!(
            "fender demo: bare hyper-util client vs fender ClientLayer (seed {})",
            args.seed
        ))
        .subtitle(format!(
            "{} requests/s per client, phase unit {:.1} s; fender: per-attempt timeout {:?}, \
             backoff base {:.1?}, breaker open {:.1} s, ramp {:.1} s",
            args.rate,
            unit.as_secs_f64(),
            settings.attempt_timeout,
            settings.base_delay,
            settings.open_duration.as_secs_f64(),
            settings.ramp.as_secs_f64(),
        ))
        .transitions(transitions.iter().copied());
    for p in phases {
        timeline = timeline.phase(report::Phase::new(p.name, p.start, p.len));
    }
    for (name, outcomes) in clients {
        let arrivals = received
            .iter()
            .filter(|r| {
                r.headers.get("x-demo-client").map(HeaderValue::as_bytes) == Some(name.as_bytes())
            })
            .map(|r| r.at.saturating_duration_since(start));
        timeline = timeline.series(name, outcomes.iter().map(|o| (o.sent, o.ok)), arrivals);
    }
    if !args.no_chart {
        println!();
        print!(
            "{}",
            report::render_terminal(&timeline, &TerminalOptions::for_stdout())
        );
    }
    if let Some(file) = &args.report {
        report::write(&timeline, file).map_err(|err| {
            format!(
                "could not write the report to {}: {err}",
                file.path().display()
            )
        })?;
        println!("\nreport written to {}", file.path().display());
    }
    Ok(())
}
