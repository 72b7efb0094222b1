//! Both faces in one process: an axum server behind `ErrorEnvelopeLayer` that relays every
//! request to an upstream through the fender client stack. The upstream's answers are relayed
//! (with their `Location`, `Allow`, `Retry-After`, …); its failures become the gateway's own
//! clean 502/503/504 envelopes, and request ids are carried across.
//!
//! ```sh
//! cargo run --example server &                                 # the upstream on 127.0.0.1:3000
//! cargo run --example gateway -- http://127.0.0.1:3000 &        # the gateway on 127.0.0.1:3001
//! curl -i localhost:3001/users/42 -H 'x-request-id: trace-1'    # 200, relayed
//! curl -i localhost:3001/users/7                                # 404 from upstream, same code
//! curl -i -X DELETE localhost:3001/users/42                     # 405, with the upstream's Allow
//! curl -i localhost:3001/slow                                   # 504 TIMEOUT after retries
//! cargo run --example gateway -- --help                         # every limit and timeout
//! ```
//!
//! Stop the upstream and call again: 503 (connection refused, `origin: transport`), then, once
//! the circuit is open, 503 with `Retry-After` and `origin: local`: the gateway did not even try.
//!
//! The relay, its status mapping and its header filtering are in `src/gateway.rs`, with their
//! tests; this file is the client stack and the command line.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::retry::RetryLayer;
use fender_examples::cli;
use fender_examples::gateway::{RelayLimits, Upstream, UpstreamBase, router};
use fender_examples::serve::{ServeOptions, serve};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::ServiceBuilder;
use tower::util::BoxCloneSyncService;

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(
    name = "gateway",
    about = "Relay every request to an upstream through the fender client stack",
    after_help = "Needs the upstream's base URL, e.g. http://127.0.0.1:3000 (start one with \
                  `cargo run --example server`)."
)]
struct Args {
    /// The upstream's base URL: http://host:port, optionally with a path prefix
    /// (http only: the connector is plain HTTP).
    #[arg(value_name = "UPSTREAM_URL", value_parser = UpstreamBase::parse)]
    upstream: UpstreamBase,
    /// The address to listen on.
    #[arg(value_name = "LISTEN_ADDR", default_value = "127.0.0.1:3001")]
    listen: SocketAddr,
    /// Seconds each attempt at the upstream may take, until its response headers (0.001 to 300).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = cli::timeout_secs)]
    attempt_timeout: Duration,
    /// Seconds a request may take in all, retries and their backoff included (0.001 to 300; at
    /// least the attempt timeout).
    #[arg(long, value_name = "SECS", default_value = "10", value_parser = cli::timeout_secs)]
    deadline: Duration,
    /// The largest request body relayed (1 byte to 4GiB); larger ones are answered 413.
    #[arg(long, value_name = "BYTES", default_value = "8MiB", value_parser = cli::byte_size)]
    max_body: usize,
    /// Seconds a request or response body may send nothing before it is given up (0.001 to 300).
    #[arg(long, value_name = "SECS", default_value = "15", value_parser = cli::timeout_secs)]
    body_idle_timeout: Duration,
    #[command(flatten)]
    serve: ServeOptions,
}

/// The client stack the gateway calls its upstream with: retries outside the circuit breaker,
/// the per-attempt timeout innermost.
fn upstream_client(attempt_timeout: Duration, deadline: Duration) -> Upstream {
    let client = ServiceBuilder::new()
        .layer(
            RetryLayer::new()
                .base_delay(Duration::from_millis(200))
                .max_delay(Duration::from_secs(2))
                .deadline(deadline),
        )
        .layer(CircuitBreakerLayer::new().open_duration(Duration::from_secs(10)))
        .timeout(attempt_timeout)
        .service(Client::builder(TokioExecutor::new()).build_http());
    BoxCloneSyncService::new(client)
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,fender=debug".into()),
        )
        .init();
    let args = Args::parse();
    if args.deadline < args.attempt_timeout {
        Args::command()
            .error(
                ErrorKind::ValueValidation,
                format!(
                    "--deadline ({:?}) must be at least --attempt-timeout ({:?})",
                    args.deadline, args.attempt_timeout
                ),
            )
            .exit();
    }
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("error: cannot listen on {}: {err}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let limits = RelayLimits {
        max_body: args.max_body,
        body_idle_timeout: args.body_idle_timeout,
        deadline: args.deadline,
    };
    let app = router(
        upstream_client(args.attempt_timeout, args.deadline),
        args.upstream.clone(),
        limits,
    );
    let addr = listener.local_addr().unwrap_or(args.listen);
    println!("gateway on http://{addr} relaying to {}", args.upstream);
    println!(
        "  upstream: {:?} per attempt, {:?} in all; bodies up to {} bytes (else 413), {:?} idle",
        args.attempt_timeout, args.deadline, limits.max_body, limits.body_idle_timeout
    );
    println!("  connections: {}", args.serve);
    serve(listener, app, &args.serve).await;
    ExitCode::SUCCESS
}
