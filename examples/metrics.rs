//! fender's metrics, printed: a scripted scenario through `ClientLayer` and a server with
//! `ErrorEnvelopeLayer`, both on loopback, then every metric the layers recorded.
//!
//! ```sh
//! cargo run --example metrics
//! cargo run --example metrics -- --outage 12 --open-ms 300
//! cargo run --example metrics -- --help
//! ```
//!
//! The scenario: a scripted upstream behind an envelope server. The client sends requests while
//! the upstream is flaky (a 503, a 429 with `Retry-After: 1`, retried), while it is down (the
//! host's circuit opens and later requests fail locally), after it has recovered (a probe
//! closes the circuit), and to a path the server does not know (a 404 envelope). A debugging
//! recorder stands in for an exporter (Prometheus, OpenTelemetry, statsd, ...): install yours
//! in its place and the same series reach it.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::retry::RetryLayer;
use fender::{ClientLayer, ErrorEnvelopeLayer};
use fender_testkit::{Plan, Reply, TestBody, Upstream, serve_service};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::{Layer, ServiceExt};

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(
    name = "metrics",
    about = "Run a short scripted scenario through the fender client stack and an envelope \
             server on loopback, then print every metric the layers recorded"
)]
struct Args {
    /// How many replies in a row the upstream fails while it is down (1 to 100).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=100))]
    outage: u16,
    /// How long the host's circuit stays open, in milliseconds (10 to 5000).
    #[arg(long, value_name = "MS", default_value_t = 200,
          value_parser = clap::value_parser!(u64).range(10..=5000))]
    open_ms: u64,
    /// How many requests the client sends while the upstream is down (1 to 100).
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u16).range(1..=100))]
    down_requests: u16,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("no other recorder is installed in this example");
    fender::metrics::describe();

    // The upstream: flaky, then down for `outage` replies, then healthy for good.
    let mut replies = vec![
        Reply::status(503),
        Reply::ok(),
        Reply::retry_after_secs(429, 1),
        Reply::ok(),
    ];
    replies.extend((0..args.outage).map(|_| Reply::status(503)));
    replies.push(Reply::ok());
    let upstream = Upstream::new(Plan::sequence(replies));

    // The server: every error leaves as an envelope; one path it does not know.
    let app = {
        let upstream = upstream.service();
        tower::service_fn(move |req: Request<Incoming>| {
            let upstream = upstream.clone();
            async move {
                if req.uri().path() == "/missing" {
                    let mut res = Response::new(TestBody::empty());
                    *res.status_mut() = StatusCode::NOT_FOUND;
                    return Ok::<_, Infallible>(res);
                }
                Ok(upstream.oneshot(req).await.unwrap_or_else(|_| {
                    let mut res = Response::new(TestBody::empty());
                    *res.status_mut() = StatusCode::BAD_GATEWAY;
                    res
                }))
            }
        })
    };
    let server = serve_service(ErrorEnvelopeLayer::new().layer(app)).await;

    // The client: the composed stack, with short backoffs and a quick breaker for the demo.
    let client = ClientLayer::new()
        .retry(
            RetryLayer::new()
                .base_delay(Duration::from_millis(20))
                .max_delay(Duration::from_millis(100)),
        )
        .breaker(
            CircuitBreakerLayer::new()
                .consecutive_failures(3)
                .open_duration(Duration::from_millis(args.open_ms))
                .no_ramp(),
        )
        .no_throttle()
        .attempt_timeout(Duration::from_secs(2))
        .layer(Client::builder(TokioExecutor::new()).build_http());
    let send = |path: &'static str| {
        let client = client.clone();
        let uri = server.url(path);
        async move {
            let req = Request::get(uri).body(Full::new(Bytes::new())).unwrap();
            match client.oneshot(req).await {
                Ok(res) => {
                    println!("  GET {path} -> {}", res.status());
                    true
                }
                Err(err) => {
                    println!("  GET {path} -> {} {}", err.status(), err.code());
                    false
                }
            }
        }
    };

    println!("flaky upstream:");
    send("/orders").await;
    send("/orders").await;
    println!("upstream down:");
    for _ in 0..args.down_requests {
        send("/orders").await;
    }
    println!("the upstream is back; waiting for the circuit's next probe:");
    // A half-open round that fails reopens the circuit for longer: wait for each open period.
    let mut wait = Duration::from_millis(args.open_ms + 50);
    for _ in 0..6 {
        tokio::time::sleep(wait).await;
        if send("/orders").await {
            break;
        }
        wait *= 2;
    }
    send("/orders").await;
    println!("a path the server does not know:");
    send("/missing").await;

    println!();
    println!("metrics:");
    let mut lines: Vec<String> = snapshotter
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, unit, _, value)| {
            let key = key.key();
            let labels: Vec<String> = key
                .labels()
                .map(|l| format!("{}=\"{}\"", l.key(), l.value()))
                .collect();
            let value = match value {
                DebugValue::Counter(n) => n.to_string(),
                DebugValue::Gauge(v) => v.to_string(),
                DebugValue::Histogram(values) => {
                    let sum: f64 = values.iter().map(|v| v.into_inner()).sum();
                    let max = values.iter().map(|v| v.into_inner()).fold(0.0, f64::max);
                    format!("count={} sum={sum:.3} max={max:.3}", values.len())
                }
            };
            let unit = unit
                .map(|u| format!(" ({})", u.as_str()))
                .unwrap_or_default();
            format!("  {}{{{}}} {value}{unit}", key.name(), labels.join(","))
        })
        .collect();
    lines.sort();
    for line in lines {
        println!("{line}");
    }
}
