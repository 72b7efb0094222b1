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
//! cargo run --example client -- --help
//! ```
//!
//! The connector is plain HTTP: `https://` URLs are refused up front (put a TLS connector such
//! as hyper-rustls's in place of `build_http()` to reach them).

use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use fender::ApiError;
use fender::ClientLayer;
use fender::client::DeadlineBody;
use fender::retry::{RetryInfo, RetryLayer};
use fender_examples::cli;
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tower::{Service, ServiceBuilder, ServiceExt};

/// How much of a successful response's body is printed.
const PRINT_LIMIT: usize = 64 * 1024;

/// Command-line settings.
#[derive(Parser, Debug)]
#[command(
    name = "client",
    about = "Send one request through the fender client stack and show what happens",
    after_help = "Needs a URL, e.g. http://127.0.0.1:3000/users/42 (start a server with \
                  `cargo run --example server`)."
)]
struct Args {
    /// The URL to request: http://host[:port]/path (http only: the connector is plain HTTP).
    #[arg(value_parser = cli::http_url)]
    url: Uri,
    /// The method (any case: post is sent as POST).
    #[arg(long, default_value = "GET", value_parser = cli::method)]
    method: Method,
    /// A request body, which must be JSON (it is sent as application/json).
    #[arg(long, value_parser = json_body)]
    data: Option<String>,
    /// An `Idempotency-Key`, which lets a POST be retried.
    #[arg(long, value_parser = cli::header_value)]
    idempotency_key: Option<HeaderValue>,
    /// Seconds each attempt may take (0.001 to 300).
    #[arg(long, value_name = "SECS", default_value = "3", value_parser = cli::timeout_secs,
          allow_negative_numbers = true)]
    timeout: Duration,
}

fn json_body(s: &str) -> Result<String, String> {
    serde_json::from_str::<serde_json::Value>(s)
        .map(|_| s.to_owned())
        .map_err(|err| format!("the body must be JSON, it is sent as application/json: {err}"))
}

/// The fender client stack, printing every attempt: `ClientLayer` with a retry callback, and a
/// line per attempt from just above the HTTP client.
fn client(
    timeout: Duration,
) -> impl Service<
    Request<Full<Bytes>>,
    Response = http::Response<DeadlineBody<Incoming>>,
    Error = ApiError,
> {
    ServiceBuilder::new()
        .layer(
            ClientLayer::new()
                .retry(RetryLayer::new().on_retry(|attempt, delay, reason| {
                    println!("  {reason}: attempt {attempt} in {delay:.1?}");
                }))
                .attempt_timeout(timeout)
                .body_timeout(Duration::from_secs(30)),
        )
        // Printed for every attempt, under the retry loop.
        .map_result(
            |result: Result<http::Response<Incoming>, hyper_util::client::legacy::Error>| {
                match &result {
                    Ok(res) => println!("  <- {}", res.status()),
                    Err(err) => println!("  <- no response: {err}"),
                }
                result
            },
        )
        .service(Client::builder(TokioExecutor::new()).build_http())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let client = client(args.timeout);

    let mut request = Request::builder()
        .method(args.method.clone())
        .uri(args.url.clone());
    if args.data.is_some() {
        request = request.header("content-type", "application/json");
    }
    if let Some(key) = &args.idempotency_key {
        request = request.header("idempotency-key", key.clone());
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
            let body = Limited::new(response.into_body(), PRINT_LIMIT)
                .collect()
                .await
                .map(|b| b.to_bytes());
            println!("ok: {status} after {attempts} attempt(s)");
            match body {
                Ok(body) => println!("{}", String::from_utf8_lossy(&body)),
                Err(err) if err.is::<http_body_util::LengthLimitError>() => {
                    println!("(the body is larger than {PRINT_LIMIT} bytes; not printed)");
                }
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
