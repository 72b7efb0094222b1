//! The fender client stack over hyper-util against a URL: each attempt, then the final
//! `ApiError` or body.
//!
//! ```sh
//! cargo run --example server &             # an API to talk to
//! cargo run --example client -- http://127.0.0.1:3000/users/42
//! cargo run --example client -- http://127.0.0.1:3000/users/7
//! cargo run --example client -- http://127.0.0.1:3000/slow
//! cargo run --example client -- --method POST --data '{"email":"x"}' http://127.0.0.1:3000/users
//! cargo run --example client -- http://127.0.0.1:9/     # nothing listens: connection refused
//! ```

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use fender::circuit_breaker::CircuitBreakerLayer;
use fender::classify::Class;
use fender::envelope::DecodeEnvelopeLayer;
use fender::retry::{RetryInfo, RetryLayer};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{ServiceBuilder, ServiceExt};

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(about = "Send one request through the fender client stack and show what happens")]
struct Args {
    /// The URL to request.
    url: http::Uri,
    /// The method.
    #[arg(long, default_value = "GET")]
    method: Method,
    /// A request body (sent as JSON).
    #[arg(long)]
    data: Option<String>,
    /// An `Idempotency-Key`, which lets a POST be retried.
    #[arg(long)]
    idempotency_key: Option<String>,
    /// Per-attempt timeout in seconds.
    #[arg(long, default_value_t = 3.0)]
    timeout: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let client = ServiceBuilder::new()
        .layer(DecodeEnvelopeLayer::new())
        .layer(
            RetryLayer::new().on_retry(|attempt: u32, delay: Duration, reason: Class| {
                println!("  {reason}: attempt {attempt} in {delay:.1?}");
            }),
        )
        .layer(CircuitBreakerLayer::new())
        // Printed for every attempt, inside the retry layer.
        .map_result(
            |result: Result<http::Response<hyper::body::Incoming>, tower::BoxError>| {
                match &result {
                    Ok(res) => println!("  <- {}", res.status()),
                    Err(err) => println!("  <- no response: {err}"),
                }
                result
            },
        )
        .timeout(Duration::from_secs_f64(args.timeout))
        .service(Client::builder(TokioExecutor::new()).build_http());

    let mut request = Request::builder()
        .method(args.method.clone())
        .uri(args.url.clone());
    if args.data.is_some() {
        request = request.header("content-type", "application/json");
    }
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key);
    }
    let body = Full::new(Bytes::from(args.data.clone().unwrap_or_default()));
    let request = match request.body(body) {
        Ok(request) => request,
        Err(err) => {
            eprintln!("invalid request: {err}");
            return ExitCode::from(2);
        }
    };

    println!("-> {} {}", args.method, args.url);
    match client.oneshot(request).await {
        Ok(response) => {
            let attempts = response
                .extensions()
                .get::<RetryInfo>()
                .map_or(1, RetryInfo::attempts);
            let status = response.status();
            let body = response.into_body().collect().await.map(|b| b.to_bytes());
            println!("ok: {status} after {attempts} attempt(s)");
            match body {
                Ok(body) => println!("{}", String::from_utf8_lossy(&body)),
                Err(err) => println!("the body failed: {err}"),
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            println!("error: {err}");
            println!("  code:       {}", err.code());
            println!("  status:     {}", err.status());
            println!("  origin:     {:?}", err.origin());
            println!("  request id: {}", err.request_id().unwrap_or("-"));
            println!("  retryable:  {}", err.is_retryable());
            if let Some(delay) = err.retry_after() {
                println!("  retry after {delay:?}");
            }
            if !err.details().is_empty() {
                println!(
                    "  details:    {}",
                    serde_json::Value::Object(err.details().clone())
                );
            }
            ExitCode::FAILURE
        }
    }
}
